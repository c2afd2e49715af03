"""Filling ``items_fts`` from ``_fts_queue``, in batches off the poll's transaction; no search.

The poll's writer only queues item ids (triggers on ``items``, in its own transaction); an
indexer (a thread of ``watcher poll`` and ``watcher run``, the store as it opens after an
upgrade, ``watcher search --wait``) then reads a batch of queued items, normalises their
fields with no lock held, and swaps their rows of ``items_fts`` in one short transaction.
Two indexers may run at once: each change bumps the queue row's ``gen``, and a batch only
removes the rows it read, unchanged since, so the last change of an item is always indexed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

from watcher.store.errors import store_call
from watcher.text import index_form

BATCH = 500  # items per transaction: a few tenths of a second of the writer's lock at most
# Items per second assumed before an indexer measured its own pace (a 2-core machine
# indexes 2.5 KB items about this fast; the estimate only words "about N s").
ASSUMED_RATE = 3000.0
INDEXED_FIELDS = ("title", "summary_text", "content_text", "article_text")

# How a rebuild shows its progress: (total items, label) -> a context manager giving a
# callable that takes the items just done. The command line sets a progress bar for a
# terminal here; None shows nothing.
ProgressBar = Callable[[int, str], AbstractContextManager[Callable[[int], None]]]
progress_bar: ProgressBar | None = None

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # the store imports this module when it opens
    from watcher.store import Store


@dataclass(frozen=True)
class IndexLag:
    """How far ``items_fts`` is behind ``items``: queued items, and about how long."""

    items: int
    seconds: float

    def describe(self) -> str:
        """``index 1,240 items behind, about 2 s``."""
        noun = "item" if self.items == 1 else "items"
        return f"index {self.items:,} {noun} behind, about {_duration(self.seconds)}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


@store_call
def index_lag(store: Store, rate: float = ASSUMED_RATE) -> IndexLag:
    """The items waiting for the index (0 when it is current)."""
    count = int(store.scalar("SELECT count(*) FROM _fts_queue") or 0)
    return IndexLag(count, count / rate)


@store_call
def index_batch(store: Store, limit: int = BATCH) -> int:
    """Index up to ``limit`` queued items (the oldest ids first); returns how many were
    taken off the queue (0: nothing queued). Deleted items leave the index."""
    queued = store.db.execute(
        "SELECT item_id, gen FROM _fts_queue ORDER BY item_id LIMIT ?", [limit]
    ).fetchall()
    if not queued:
        return 0
    ids = [row[0] for row in queued]
    marks = ", ".join("?" * len(ids))
    rows = store.db.execute(
        f"SELECT id, {', '.join(INDEXED_FIELDS)} FROM items WHERE id IN ({marks})", ids
    ).fetchall()
    # Normalising is the slow part: done before the write lock is taken.
    values = [(row[0], *(index_form(text or "") for text in row[1:])) for row in rows]
    with store.transaction():
        store.db.execute(f"DELETE FROM items_fts WHERE rowid IN ({marks})", ids)
        store.db.conn.executemany(
            "INSERT INTO items_fts (rowid, title, summary_text, content_text, article_text)"
            " VALUES (?, ?, ?, ?, ?)",
            values,
        )
        store.db.conn.executemany(
            "DELETE FROM _fts_queue WHERE item_id = ? AND gen = ?", [tuple(r) for r in queued]
        )
    return len(queued)


@store_call
def catch_up(
    store: Store,
    *,
    until: float | None = None,
    progress: Callable[[int], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> int:
    """Index queued items until none is left, ``time.monotonic()`` passes ``until``, or
    ``stop()`` says so; ``progress(n)`` after each batch. Returns how many were indexed."""
    done = 0
    while until is None or time.monotonic() < until:
        if stop is not None and stop():
            break
        taken = index_batch(store)
        if not taken:
            break
        done += taken
        if progress is not None:
            progress(taken)
    return done


@store_call
def rebuild_index(store: Store) -> int:
    """Index every queued item now, as the migration that rebuilds ``items_fts`` asks;
    a progress bar through ``progress_bar``. A crash part-way loses nothing: the items
    not yet indexed stay queued for the next indexer."""
    total = index_lag(store).items
    if not total:
        return 0
    log.info("rebuilding search index items=%d", total)
    started = time.monotonic()
    bar = progress_bar(total, "indexing for search") if progress_bar else nullcontext(None)
    with bar as update:
        done = catch_up(store, progress=update)
    log.info("rebuilt search index items=%d seconds=%.1f", done, time.monotonic() - started)
    return done
