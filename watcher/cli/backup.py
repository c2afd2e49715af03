"""``watcher backup FILE``: an online copy of the database (archive/backup.py makes it)."""

from __future__ import annotations

from pathlib import Path

import click

from watcher.archive.backup import backup_database
from watcher.cli.base import Context, cli, emit_json, handle_errors


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
