"""Size and row counts of the database, for ``watcher status``; changes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from watcher.store import Store
from watcher.store.errors import store_call
from watcher.store.schema import ALERTS, FEEDS, ITEMS, MATCHES, POLLS

COUNTED: tuple[str, ...] = (FEEDS, ITEMS, MATCHES, ALERTS, POLLS)


@dataclass(frozen=True)
class ArchiveStats:
    size_bytes: int  # the database file plus its write-ahead log
    rows: dict[str, int] = field(default_factory=dict)  # table -> row count


@store_call
def archive_stats(store: Store) -> ArchiveStats:
    """The database's size on disk and the row count of each public table."""
    rows = {
        name: int(store.db.execute(f"SELECT count(*) FROM {name}").fetchone()[0])
        for name in COUNTED
    }
    return ArchiveStats(size_bytes=database_size(store.path), rows=rows)


def database_size(path: Path) -> int:
    """Bytes of the database file and its ``-wal`` file (0 for a missing file)."""
    total = 0
    for candidate in (path, path.with_name(path.name + "-wal")):
        if candidate.exists():
            total += candidate.stat().st_size
    return total


def human_size(size: int) -> str:
    """``532 KB``, ``1.4 GB`` (powers of 1024, as the config's sizes)."""
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit in ("bytes", "KB") else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"  # pragma: no cover


@store_call
def item_counts(store: Store) -> dict[int, int]:
    """feed id -> number of stored items (feeds without items are absent)."""
    rows = store.db.query("SELECT feed_id, count(*) AS n FROM items GROUP BY feed_id")
    return {r["feed_id"]: r["n"] for r in rows}


@store_call
def pending_alerts(store: Store) -> int:
    """How many alerts wait to be sent (``pending``), now or after a retry delay."""
    row = store.db.execute("SELECT count(*) FROM alerts WHERE status = 'pending'").fetchone()
    return int(row[0])
