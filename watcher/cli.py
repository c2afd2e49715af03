"""The command line (also ``python -m watcher``): options in, one call, output out.

User errors (WatcherError) print one line per problem and exit 1; usage errors exit 2;
a bug is logged with its traceback and exits 3.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo

import click

from watcher import __version__
from watcher._logging import setup_logging
from watcher.config import find_config, load_settings
from watcher.exceptions import WatcherError
from watcher.printable import dumps_json, printable
from watcher.types import Settings

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Context:
    config: str | None
    db: str | None
    json: bool

    def settings(self) -> Settings:
        settings = load_settings(find_config(self.config, os.environ))
        if self.db:
            settings = replace(settings, database=Path(self.db).resolve())
        return settings


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def handle_errors(fn: F) -> F:
    """Turn WatcherError into exit 1 (one line per problem) and a bug into exit 3."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except WatcherError as e:
            for line in str(e).splitlines() or [type(e).__name__]:
                click.echo(f"error: {printable(line)}", err=True)
            sys.exit(1)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except BrokenPipeError:
            _silence_stdout()
            sys.exit(1)
        except Exception:
            log.exception("internal error (a bug in watcher)")
            sys.exit(3)

    return cast(F, wrapper)


def show_time(when: datetime | str | None, zone: str) -> str:
    """A time for a table or a message, in ``display_timezone``: ``2026-11-02 17:30 EET``.

    JSON and CSV output keep UTC ISO-8601 (``2026-11-02T15:30:00Z``) instead.
    """
    if when is None:
        return ""
    if isinstance(when, str):
        when = datetime.fromisoformat(when)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")


def _silence_stdout() -> None:
    """The reader of stdout went away (``watcher alerts | head``): drop what is left unwritten."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def json_option(fn: F) -> F:
    """``--json`` accepted after the subcommand as well as before it."""

    def set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            ctx.find_object(Context).json = True  # type: ignore[union-attr]

    return click.option(
        "--json",
        "json_flag",
        is_flag=True,
        expose_value=False,
        callback=set_json,
        help="Machine-readable JSON output.",
    )(fn)


def plural(n: int, word: str) -> str:
    """``1 feed``, ``3 feeds``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def emit_json(data: Any) -> None:
    """Print ``data`` as JSON; controls inside its strings are escaped as ``\\u00NN``."""
    click.echo(dumps_json(data))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config",
    metavar="PATH",
    help="watcher.yaml (default: $WATCHER_CONFIG or ./watcher.yaml).",
)
@click.option(
    "--db", "db", metavar="PATH", help="Database file (overrides `database:` in the config)."
)
@click.option("--json", "json_", is_flag=True, help="Machine-readable JSON output.")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", count=True, help="Less log output.")
@click.version_option(__version__, prog_name="watcher")
@click.pass_context
def cli(
    ctx: click.Context, config: str | None, db: str | None, json_: bool, verbose: int, quiet: int
) -> None:
    """Watch news feeds and alert on keyword rules.

    \b
    Quick start:
      watcher init myproject && cd myproject
      watcher rules check
      watcher poll --all
      watcher status
    """
    setup_logging(verbose, quiet)
    ctx.obj = Context(config=config, db=db, json=json_)


def main() -> None:
    cli(prog_name="watcher")


# Commands are defined in their own modules and registered here.
from watcher import commands  # noqa: E402,F401
