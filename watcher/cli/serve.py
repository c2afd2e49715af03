"""``watcher serve``: browse the database in Datasette with watcher's metadata.

The metadata (table and column descriptions, canned queries) ships as package data,
``watcher/datasette_metadata.json``; its database key is renamed to the file's stem, as
Datasette names databases. Datasette itself is the optional ``datasette`` extra; this
module only starts it.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import sys
import webbrowser
from importlib import resources
from pathlib import Path
from typing import Any

import click

from watcher.cli.base import Context, cli, handle_errors
from watcher.exceptions import WatcherError

METADATA = "datasette_metadata.json"
INSTALL_HINT = (
    "Datasette is not installed; install the extra with `pip install 'watcher[datasette]'`"
    " (or `pip install datasette`), then run `watcher serve` again"
)


def datasette_metadata(database: Path | str = "watcher.db") -> dict[str, Any]:
    """watcher's Datasette metadata, keyed by the database name Datasette will use."""
    text = resources.files("watcher").joinpath(METADATA).read_text(encoding="utf-8")
    metadata: dict[str, Any] = json.loads(text)
    databases = metadata["databases"]
    databases[Path(database).stem] = databases.pop("watcher")
    return metadata


def datasette_installed() -> bool:
    return importlib.util.find_spec("datasette") is not None


@cli.command(no_json="it serves Datasette; `--metadata` prints its JSON")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8001, show_default=True)
@click.option("--open", "open_browser", is_flag=True, help="Open a browser window.")
@click.option(
    "--allow-sql",
    is_flag=True,
    help="Let visitors run any SQL of their own (off: tables, views and canned queries only).",
)
@click.option(
    "--metadata", "print_metadata", is_flag=True, help="Print the metadata JSON and exit."
)
@click.pass_obj
@handle_errors
def serve(
    obj: Context,
    host: str,
    port: int,
    open_browser: bool,
    allow_sql: bool,
    print_metadata: bool,
) -> None:
    """Browse and query the database in Datasette (needs the `datasette` extra).

    Tables and columns carry descriptions; canned queries answer the common questions
    (search with alerts, alerts per rule per day, failing feeds, latest matches of a
    rule, items per feed per day). Arbitrary SQL is off unless --allow-sql: anyone
    who can reach the port could otherwise read every table with queries of their own.

    \b
    Examples:
      watcher serve                      # then open http://127.0.0.1:8001/
      watcher serve --metadata > metadata.json
      datasette data/watcher.db -m metadata.json
    """
    database = obj.settings().database
    if print_metadata:
        click.echo(json.dumps(datasette_metadata(database), indent=2, ensure_ascii=False))
        return
    if not datasette_installed():
        raise WatcherError(INSTALL_HINT)
    if not database.exists():
        raise WatcherError(f"no database at {database}: run `watcher poll` first")
    check_port_free(host, port)
    datasette = make_datasette(database, allow_sql=allow_sql)
    sys.exit(_run_datasette(datasette, database, host, port, open_browser))


def make_datasette(database: Path, *, allow_sql: bool = False) -> Any:
    """A Datasette instance for the database with watcher's metadata; SQL as asked."""
    from datasette.app import Datasette

    return Datasette(
        [str(database)],
        metadata=datasette_metadata(database),
        settings={"default_allow_sql": allow_sql},
    )


def check_port_free(host: str, port: int) -> None:
    """WatcherError naming the port when something already listens there (port 0: any)."""
    if port == 0:
        return
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise WatcherError(
            f"cannot listen on {host} port {port}: {reason}; choose another with --port"
        ) from e


def _run_datasette(datasette: Any, database: Path, host: str, port: int, open_browser: bool) -> int:
    """Serve the database in this process until SIGINT/SIGTERM; returns the exit code."""
    import uvicorn  # a dependency of datasette

    app = datasette.app()
    url = f"http://{host}:{port}/{database.stem}"
    click.echo(f"serving {database} at {url} (Ctrl-C stops)", err=True)
    if open_browser:
        webbrowser.open(url)
    uvicorn.run(app, host=host, port=port, log_level="info")
    return 0
