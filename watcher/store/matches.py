"""SQL of the ``matches`` table and its ``_match_evidence``: which rule matched which item,
with the matched terms and what its alerts show; decides nothing. A poll writes them
through apply.py.
"""

from __future__ import annotations

from watcher.store import Store
from watcher.store.errors import store_call
from watcher.store.rows import decode_list, terms_from_text


@store_call
def match_terms(store: Store, item_id: int, rule_id: str) -> tuple[str, ...]:
    """The terms of the latest match of ``rule_id`` on the item; () when it never matched."""
    text = store.scalar(
        "SELECT terms FROM matches WHERE item_id = ? AND rule_id = ? ORDER BY id DESC LIMIT 1",
        [item_id, rule_id],
    )
    return terms_from_text(text)


@store_call
def match_evidence(
    store: Store, item_id: int, rule_id: str
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The terms and snippets of the rule's latest match on the item, as stored when it
    was matched: ((), ()) when it never matched, no snippets when it was matched before
    evidence was kept (``_match_evidence``, migration 0012)."""
    row = store.db.execute(
        "SELECT m.terms, e.snippets FROM matches m"
        " LEFT JOIN _match_evidence e ON e.match_id = m.id"
        " WHERE m.item_id = ? AND m.rule_id = ? ORDER BY m.id DESC LIMIT 1",
        [item_id, rule_id],
    ).fetchone()
    if row is None:
        return (), ()
    return terms_from_text(row[0]), tuple(str(s) for s in decode_list(row[1]))


@store_call
def match_fields(store: Store, item_id: int, rule_id: str) -> tuple[str, ...]:
    """The fields the rule's latest match on the item was found in (in FIELDS order), as
    stored when it was matched; () when it never matched or was matched before evidence
    was kept."""
    text = store.scalar(
        "SELECT e.fields FROM matches m LEFT JOIN _match_evidence e ON e.match_id = m.id"
        " WHERE m.item_id = ? AND m.rule_id = ? ORDER BY m.id DESC LIMIT 1",
        [item_id, rule_id],
    )
    return tuple(str(f) for f in decode_list(text))
