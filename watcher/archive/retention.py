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

from watcher.exceptions import StoreError
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
    error: str | None = None  # why pruning stopped early (it is tried again next time)


def prune_archive(
    store: Store, settings: Settings, now: datetime, batch: int = DEFAULT_BATCH
) -> PruneReport:
    """Delete old unmatched items and old poll rows, ``batch`` rows per transaction.

    Never raises a StoreError: a failure (say, a lock held past the busy timeout) stops
    this run, is logged and reported, and the next run carries on.
    """
    began = time.monotonic()
    counts = _Counts()
    items_before = now - timedelta(seconds=settings.retention_s)
    polls_before = now - timedelta(seconds=settings.poll_log_retention_s)
    error = None
    try:
        counts.items = _prune_items(store, items_before, batch, counts)
        counts.polls = _drain(lambda: prune_polls_batch(store, polls_before, batch), batch, counts)
        counts.keys = _drain(
            lambda: prune_story_keys_batch(store, items_before, batch), batch, counts
        )
    except StoreError as e:
        error = str(e)
        log.warning("prune stopped error=%s", error)
    report = PruneReport(
        items=counts.items,
        polls=counts.polls,
        story_keys=counts.keys,
        batches=counts.batches,
        duration_ms=int((time.monotonic() - began) * 1000),
        error=error,
    )
    if report.items or report.polls:
        log.info(
            "pruned items=%d polls=%d batches=%d ms=%d",
            report.items,
            report.polls,
            report.batches,
            report.duration_ms,
        )
    return report


@dataclass
class _Counts:
    items: int = 0
    polls: int = 0
    keys: int = 0
    batches: int = 0


def _prune_items(store: Store, before: datetime, batch: int, counts: _Counts) -> int:
    """Walk old items in first-seen order, deleting the unmatched ones of each batch."""
    cursor = Cursor()
    while True:
        result = prune_items_batch(store, before, cursor, batch)
        counts.items += result.deleted
        counts.batches += 1
        if result.scanned < batch:
            return counts.items
        cursor = result.cursor


def _drain(step: Callable[[], int], batch: int, counts: _Counts) -> int:
    """Call ``step`` until a batch deletes fewer than ``batch`` rows; returns the total."""
    total = 0
    while True:
        done = step()
        total += done
        counts.batches += 1
        if done < batch:
            return total
