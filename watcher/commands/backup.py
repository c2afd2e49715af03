"""``watcher backup FILE``: an online copy of the database with SQLite's backup API.

The copy is taken in steps while the daemon keeps writing (WAL readers never block the
writer), then checked with ``PRAGMA quick_check``. Never overwrites a file unless asked.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import click

from watcher.cli import Context, cli, emit_json, handle_errors
from watcher.exceptions import StoreError

PAGES_PER_STEP = 1024


@cli.command()
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace TARGET if it exists.")
@click.pass_obj
@handle_errors
def backup(obj: Context, target: Path, force: bool) -> None:
    """Copy the database to TARGET while watcher keeps running.

    \b
    Example:
      watcher backup backups/watcher-$(date +%F).db
    """
    source = obj.settings().database
    size = backup_database(source, target, replace=force)
    if obj.json:
        emit_json({"source": str(source), "target": str(target), "bytes": size})
    else:
        click.echo(f"backed up {source} to {target} ({size:,} bytes)")


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
        _copy(source, partial)
        partial.replace(target)
    except sqlite3.Error as e:
        partial.unlink(missing_ok=True)
        raise StoreError(f"backup failed: {source}: {type(e).__name__}: {e}") from e
    return target.stat().st_size


def _copy(source: Path, target: Path) -> None:
    target.unlink(missing_ok=True)
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
