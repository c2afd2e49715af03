"""SQL of the ``matches`` table: which rule matched which item, with the matched terms;
decides nothing.
"""

from __future__ import annotations

from datetime import datetime

from watcher.store import Store
from watcher.store.errors import store_call
from watcher.store.rows import encode_json, terms_from_text, to_text
from watcher.types import Match


@store_call
def add_match(store: Store, item_id: int, match: Match, now: datetime) -> int:
    """Record that a rule matched an item, with the matched terms; returns the row id."""
    cursor = store.db.execute(
        "INSERT INTO matches (item_id, rule_id, terms, matched_at) VALUES (?, ?, ?, ?)",
        [item_id, match.rule_id, encode_json(list(match.terms)), to_text(now)],
    )
    return int(cursor.lastrowid or 0)


@store_call
def match_terms(store: Store, item_id: int, rule_id: str) -> tuple[str, ...]:
    """The terms of the latest match of ``rule_id`` on the item; () when it never matched."""
    text = store.scalar(
        "SELECT terms FROM matches WHERE item_id = ? AND rule_id = ? ORDER BY id DESC LIMIT 1",
        [item_id, rule_id],
    )
    return terms_from_text(text)
