"""``watcher backup``: copy the database to a file while watcher keeps running.

Never overwrites a file unless asked, never the database itself, and never leaves a
half-written copy under the target's name: the copy is made beside it as ``.partial``
and renamed once it passed its check (the copy itself is store/backup.py's).
"""

from __future__ import annotations

from pathlib import Path

from watcher.exceptions import StoreError
from watcher.store.backup import copy_database


def backup_database(source: Path, target: Path, *, replace: bool = False) -> int:
    """Copy ``source`` to ``target`` with the backup API; returns the copy's size in bytes."""
    if not source.exists():
        raise StoreError(f"no database at {source}: nothing to back up")
    if target.exists() and not replace:
        raise StoreError(f"{target} exists; use --force to replace it")
    if target.resolve() == source.resolve():
        raise StoreError("the backup file must not be the database itself")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    try:
        copy_database(source, partial)
    except StoreError:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(target)
    return target.stat().st_size
