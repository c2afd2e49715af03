"""Read the stored archive for backtests; reads only, decides nothing.

Functions take an open :class:`watcher.store.Store`; items are read in batches by id so a
backtest over a large archive holds one batch in memory at a time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from watcher.store import Store
from watcher.store.errors import store_call
from watcher.store.rows import feed_from_row, item_from_row, to_text
from watcher.types import FeedState, StoredItem

BATCH_SIZE = 500
_IN_WINDOW = "(first_seen_at >= :since OR published_at >= :since)"


@store_call
def count_items_since(store: Store, since: datetime) -> int:
    """How many items were first seen or published at or after ``since``."""
    sql = f"SELECT count(*) FROM items WHERE {_IN_WINDOW}"
    return int(_execute(store, sql, {"since": to_text(since)}).fetchone()[0])


@store_call
def items_since(
    store: Store, since: datetime, batch_size: int = BATCH_SIZE
) -> Iterator[list[tuple[StoredItem, FeedState]]]:
    """Items first seen or published at or after ``since``, oldest id first, in batches."""
    feeds = {f.id: f for f in _feeds(store)}
    last_id = 0
    sql = f"SELECT * FROM items WHERE {_IN_WINDOW} AND id > :after ORDER BY id LIMIT :limit"
    while True:
        params = {"since": to_text(since), "after": last_id, "limit": batch_size}
        rows = list(_query(store, sql, params))
        if not rows:
            return
        last_id = rows[-1]["id"]
        yield [(item_from_row(r, "unchanged"), feeds[r["feed_id"]]) for r in rows]


def _feeds(store: Store) -> list[FeedState]:
    return [feed_from_row(r) for r in _query(store, "SELECT * FROM feeds", {})]


def _query(store: Store, sql: str, params: dict[str, object]) -> list[dict[str, Any]]:
    return list(store.db.query(sql, params))


def _execute(store: Store, sql: str, params: dict[str, object]) -> sqlite3.Cursor:
    return store.db.execute(sql, params)
