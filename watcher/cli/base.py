"""The click group of the command line, its global options, ``Context`` and shared helpers.

Commands register themselves on ``cli`` from their own modules (watcher/cli/__init__.py
imports them all). User errors (WatcherError) print one line per problem and exit 1;
usage errors exit 2; a bug is logged with its traceback and exits 3.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo

import click

from watcher import __version__
from watcher._logging import setup_logging
from watcher.config import find_config
from watcher.config_cache import load_settings_cached
from watcher.exceptions import WatcherError
from watcher.printable import dumps_json, printable
from watcher.store import fts_queue
from watcher.types import Settings

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Context:
    """The global options, merged from wherever they stood on the command line."""

    config: str | None = None
    db: str | None = None
    json: bool = False
    verbose: int = 0
    quiet: int = 0

    def settings(self) -> Settings:
        settings = load_settings_cached(find_config(self.config, os.environ))
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


# --- global options: accepted before the subcommand and after any (sub)command ---------------


def _merge_option(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """Fold one global option into the shared ``Context``; later on the line wins."""
    obj = ctx.ensure_object(Context)
    name = param.name
    if name in ("verbose", "quiet"):
        if value:
            setattr(obj, name, getattr(obj, name) + value)
            setup_logging(obj.verbose, obj.quiet)
    elif name == "json":
        obj.json = obj.json or bool(value)
    elif value is not None:
        setattr(obj, name, value)


def global_options(json_help: str = "Machine-readable JSON output.") -> list[click.Option]:
    """``--config``, ``--db``, ``--json``, ``-v``, ``-q``: one set of these per command."""
    common: dict[str, Any] = {"expose_value": False, "callback": _merge_option}
    return [
        click.Option(
            ["--config", "config"],
            metavar="PATH",
            help="watcher.yaml (default: $WATCHER_CONFIG or ./watcher.yaml).",
            **common,
        ),
        click.Option(
            ["--db", "db"],
            metavar="PATH",
            help="Database file (overrides `database:` in the config).",
            **common,
        ),
        click.Option(["--json", "json"], is_flag=True, help=json_help, **common),
        click.Option(
            ["-v", "--verbose", "verbose"],
            count=True,
            help="More log output (-vv for debug).",
            **common,
        ),
        click.Option(["-q", "--quiet", "quiet"], count=True, help="Less log output.", **common),
    ]


class WatcherCommand(click.Command):
    """A command that takes the global options after its name too.

    ``no_json="…"`` declares a command without JSON output; ``--json`` then is a usage
    error that says why, instead of being ignored.
    """

    def __init__(self, *args: Any, no_json: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.no_json = no_json
        json_help = f"Not available: {no_json}." if no_json else "Machine-readable JSON output."
        self.params.extend(global_options(json_help))

    def invoke(self, ctx: click.Context) -> Any:
        obj = ctx.find_object(Context)
        if self.no_json and obj is not None and obj.json:
            raise click.UsageError(f"{ctx.command_path} has no JSON output: {self.no_json}", ctx)
        return super().invoke(ctx)


class WatcherGroup(click.Group):
    """A group whose subcommands and subgroups all take the global options.

    ``lazy`` names the modules of ``watcher.cli`` that register each command, imported
    only when that command runs (or for help): ``watcher poll`` then does not import what
    ``search``, ``serve`` or ``feeds add`` need before its first request."""

    command_class = WatcherCommand
    group_class = type  # subgroups are WatcherGroups too
    lazy: Mapping[str, tuple[str, ...]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(global_options())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        for module in self.lazy.get(cmd_name, ()):
            importlib.import_module(f"watcher.cli.{module}")
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.load_all()
        return super().list_commands(ctx)

    def load_all(self) -> None:
        """Import every command's module (each registers its commands)."""
        for modules in self.lazy.values():
            for module in modules:
                importlib.import_module(f"watcher.cli.{module}")


def all_commands(
    group: click.Group | None = None, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], click.Command]]:
    """Every (sub)command under ``group`` (default: ``cli``) with its path, groups included."""
    group = cli if group is None else group
    if isinstance(group, WatcherGroup):
        group.load_all()
    found: list[tuple[tuple[str, ...], click.Command]] = []
    for name, command in sorted(group.commands.items()):
        found.append(((*path, name), command))
        if isinstance(command, click.Group):
            found.extend(all_commands(command, (*path, name)))
    return found


def plural(n: int, word: str) -> str:
    """``1 feed``, ``3 feeds``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def emit_json(data: Any) -> None:
    """Print ``data`` as JSON; controls inside its strings are escaped as ``\\u00NN``."""
    click.echo(dumps_json(data))


@click.group(cls=WatcherGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="watcher")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Watch news feeds and alert on keyword rules.

    The options below may also follow any command: `watcher status --json -q`.

    \b
    Quick start:
      watcher init myproject && cd myproject
      watcher rules check
      watcher poll --all
      watcher status
    """
    obj = ctx.ensure_object(Context)
    setup_logging(obj.verbose, obj.quiet)
    fts_queue.progress_bar = terminal_progress if sys.stderr.isatty() else None


@contextmanager
def terminal_progress(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (a terminal's), for long work the store does (a rebuild
    of the search index after an upgrade)."""
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        yield bar.update
