"""Retention SQL: delete old unmatched items and old poll rows, one small batch at a time.

Each call is one short ``BEGIN IMMEDIATE`` transaction, so a poll waiting for the write
lock waits for one batch at most. Decides nothing about *when* to prune (see
:mod:`watcher.archive.retention`). Deleting an item deletes its ``items_fts`` row (trigger).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime

from watcher.exceptions import StoreError
from watcher.store import Store
from watcher.store.errors import store_call
from watcher.store.rows import to_text

# Candidates in first-seen order (the items_first_seen index), resuming after a cursor.
# An item is kept when a rule matched it, an alert lists it, or it is the newest item
# (so its id is never handed out again by SQLite).
_OLD_ITEMS = """
SELECT id, first_seen_at FROM items
WHERE first_seen_at < :before AND (first_seen_at, id) > (:after_at, :after_id)
ORDER BY first_seen_at, id
LIMIT :batch
"""
_KEPT = """
SELECT value FROM json_each(:ids) AS c
WHERE EXISTS (SELECT 1 FROM matches WHERE matches.item_id = c.value)
   OR c.value = (SELECT max(id) FROM items)
   OR c.value IN (SELECT j.value FROM alerts, json_each(alerts.item_ids) AS j)
"""
_DELETE_ITEMS = "DELETE FROM items WHERE id IN (SELECT value FROM json_each(:ids))"
_DELETE_POLLS = """
DELETE FROM polls WHERE id IN (
    SELECT id FROM polls WHERE started_at < :before ORDER BY started_at LIMIT :batch)
"""
_DELETE_KEYS = """
DELETE FROM _story_keys WHERE rowid IN (
    SELECT k.rowid FROM _story_keys AS k
    WHERE k.first_at < :before
      AND NOT EXISTS (SELECT 1 FROM items WHERE items.story_id = k.story_id)
    LIMIT :batch)
"""


@dataclass(frozen=True)
class Cursor:
    """Where the last batch stopped: (first_seen_at, id) of its last candidate."""

    first_seen_at: str = ""
    id: int = 0


@dataclass(frozen=True)
class ItemBatch:
    deleted: int
    scanned: int  # candidates looked at; fewer than the batch size means the end
    cursor: Cursor


@store_call
def prune_items_batch(store: Store, before: datetime, cursor: Cursor, batch: int) -> ItemBatch:
    """Delete up to ``batch`` unmatched, unalerted items first seen before ``before``."""
    try:
        with store.transaction():
            rows = store.db.execute(
                _OLD_ITEMS,
                {
                    "before": to_text(before),
                    "after_at": cursor.first_seen_at,
                    "after_id": cursor.id,
                    "batch": batch,
                },
            ).fetchall()
            if not rows:
                return ItemBatch(0, 0, cursor)
            ids = json.dumps([r[0] for r in rows])
            kept = {r[0] for r in store.db.execute(_KEPT, {"ids": ids})}
            doomed = json.dumps([r[0] for r in rows if r[0] not in kept])
            deleted = store.db.execute(_DELETE_ITEMS, {"ids": doomed}).rowcount
    except sqlite3.Error as e:
        raise StoreError(f"pruning items failed: {store.path}: {e}") from e
    last = rows[-1]
    return ItemBatch(deleted, len(rows), Cursor(last[1], int(last[0])))


@store_call
def prune_polls_batch(store: Store, before: datetime, batch: int) -> int:
    """Delete up to ``batch`` ``polls`` rows started before ``before``; returns how many."""
    return _delete(store, _DELETE_POLLS, before, batch, "polls")


@store_call
def prune_story_keys_batch(store: Store, before: datetime, batch: int) -> int:
    """Forget story keys older than ``before`` whose story has no item left."""
    return _delete(store, _DELETE_KEYS, before, batch, "story keys")


def _delete(store: Store, sql: str, before: datetime, batch: int, what: str) -> int:
    try:
        with store.transaction():
            return int(store.db.execute(sql, {"before": to_text(before), "batch": batch}).rowcount)
    except sqlite3.Error as e:
        raise StoreError(f"pruning {what} failed: {store.path}: {e}") from e
