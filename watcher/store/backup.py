"""An online copy of the database with SQLite's backup API, checked before it is used.

The copy is taken in steps while the daemon keeps writing (WAL readers never block the
writer), made one self-contained file and checked with ``PRAGMA quick_check``. Where the
copy goes and what may be replaced is archive/backup.py's business.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from watcher.exceptions import StoreError

PAGES_PER_STEP = 1024


def copy_database(source: Path, target: Path) -> None:
    """Copy the database ``source`` into the new file ``target``; StoreError on failure."""
    target.unlink(missing_ok=True)
    try:
        _copy(source, target)
    except sqlite3.Error as e:
        raise StoreError(f"backup failed: {source}: {type(e).__name__}: {e}") from e


def _copy(source: Path, target: Path) -> None:
    src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(str(target))
    try:
        src.backup(dst, pages=PAGES_PER_STEP)
        dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
        result = dst.execute("PRAGMA quick_check").fetchone()[0]
        if result != "ok":
            raise sqlite3.DatabaseError(f"the copy failed its check: {result}")
    finally:
        dst.close()
        src.close()
