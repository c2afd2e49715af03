"""SQL that reads one item whole, as ``watcher show`` shows it: the item, its feed, its
article, the rules that matched it and the alerts that list it; decides nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from watcher.store import Store
from watcher.store.errors import store_call
from watcher.store.rows import from_text, item_from_row, required_time, terms_from_text
from watcher.types import StoredItem


@dataclass(frozen=True)
class RecordedMatch:
    """A ``matches`` row of the item: the rule, its terms, when."""

    rule_id: str
    terms: tuple[str, ...]
    matched_at: datetime


@dataclass(frozen=True)
class ItemRecord:
    """An item with what is kept about it beside its text."""

    item: StoredItem
    feed_name: str
    feed_title: str | None
    updated_at: datetime | None
    language: str | None
    article_text: str | None
    article_fetched_at: datetime | None
    article_error: str | None
    matches: tuple[RecordedMatch, ...]
    alert_ids: tuple[int, ...]  # alerts that list the item, oldest first


_MATCHES = """
SELECT rule_id, terms, matched_at FROM matches WHERE item_id = ? ORDER BY matched_at, id
"""
_ALERTS = """
SELECT DISTINCT alerts.id FROM alerts, json_each(alerts.item_ids) AS j
WHERE j.value = ? ORDER BY alerts.id
"""


@store_call
def item_record(store: Store, item_id: int) -> ItemRecord | None:
    """The item ``item_id`` with its feed, article, matches and alerts; None if there is none."""
    row = store.one(
        "SELECT items.*, feeds.name AS feed_name, feeds.title AS feed_title"
        " FROM items JOIN feeds ON feeds.id = items.feed_id WHERE items.id = ?",
        [item_id],
    )
    if row is None:
        return None
    matches = tuple(
        RecordedMatch(r["rule_id"], terms_from_text(r["terms"]), required_time(r["matched_at"]))
        for r in store.db.query(_MATCHES, [item_id])
    )
    alerts = tuple(int(r[0]) for r in store.db.execute(_ALERTS, [item_id]))
    return ItemRecord(
        item=item_from_row(row, "unchanged"),
        feed_name=row["feed_name"],
        feed_title=row["feed_title"],
        updated_at=from_text(row["updated_at"]),
        language=row["language"],
        article_text=row["article_text"],
        article_fetched_at=from_text(row["article_fetched_at"]),
        article_error=row["article_error"],
        matches=matches,
        alert_ids=alerts,
    )
