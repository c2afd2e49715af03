"""Retention: prune what ``retention`` and ``poll_log_retention`` say is too old.

Unmatched items first seen longer ago than ``retention`` go (with their full-text rows);
items a rule matched, items an alert lists, and every alert are kept. ``polls`` rows
older than ``poll_log_retention`` go. Work is done in small batches, each its own short
transaction, so a poll is never blocked for long. Called at the end of ``watcher poll``
and scheduled by the daemon; holds no SQL itself (see :mod:`watcher.store.prune`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from watcher.store import Store
from watcher.store.prune import (
    Cursor,
    prune_items_batch,
    prune_polls_batch,
    prune_story_keys_batch,
)
from watcher.types import Settings

log = logging.getLogger(__name__)

DEFAULT_BATCH = 500


@dataclass(frozen=True)
class PruneReport:
    items: int = 0  # items deleted
    polls: int = 0  # polls rows deleted
    story_keys: int = 0  # internal story keys forgotten
    batches: int = 0
    duration_ms: int = 0


def prune_archive(
    store: Store, settings: Settings, now: datetime, batch: int = DEFAULT_BATCH
) -> PruneReport:
    """Delete old unmatched items and old poll rows, ``batch`` rows per transaction."""
    began = time.monotonic()
    items_before = now - timedelta(seconds=settings.retention_s)
    polls_before = now - timedelta(seconds=settings.poll_log_retention_s)
    items, item_batches = _prune_items(store, items_before, batch)
    polls, poll_batches = _drain(lambda: prune_polls_batch(store, polls_before, batch), batch)
    keys, key_batches = _drain(lambda: prune_story_keys_batch(store, items_before, batch), batch)
    report = PruneReport(
        items=items,
        polls=polls,
        story_keys=keys,
        batches=item_batches + poll_batches + key_batches,
        duration_ms=int((time.monotonic() - began) * 1000),
    )
    if items or polls:
        log.info(
            "pruned items=%d polls=%d batches=%d ms=%d",
            items,
            polls,
            report.batches,
            report.duration_ms,
        )
    return report


def _prune_items(store: Store, before: datetime, batch: int) -> tuple[int, int]:
    """Walk old items in first-seen order, deleting the unmatched ones of each batch."""
    deleted = batches = 0
    cursor = Cursor()
    while True:
        result = prune_items_batch(store, before, cursor, batch)
        deleted += result.deleted
        batches += 1
        if result.scanned < batch:
            return deleted, batches
        cursor = result.cursor


def _drain(step: Callable[[], int], batch: int) -> tuple[int, int]:
    """Call ``step`` until a batch deletes fewer than ``batch`` rows."""
    total = batches = 0
    while True:
        done = step()
        total += done
        batches += 1
        if done < batch:
            return total, batches
