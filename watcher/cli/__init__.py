"""The command line (also ``python -m watcher``): options in, one call, output out.

base.py holds the click group ``cli``, the shared ``Context`` and the helpers every command
uses; each other module registers one command or command group on it (table.py and
lookup.py are helpers); this module imports them all and exposes ``main``. The command line
may import any layer; it prints and makes one call per command into the layers below, and
runs no SQL itself.
"""

from watcher.cli import (  # each registers its commands on ``cli``
    alerts,
    backup,
    channels,
    feeds,
    feeds_opml,
    init,
    mute,
    poll,
    rules,
    run,
    schema,
    search,
    serve,
    show,
    status,
    worker,
)
from watcher.cli.base import cli

__all__ = [
    "alerts",
    "backup",
    "channels",
    "cli",
    "feeds",
    "feeds_opml",
    "init",
    "main",
    "mute",
    "poll",
    "rules",
    "run",
    "schema",
    "search",
    "serve",
    "show",
    "status",
    "worker",
]


def main() -> None:
    cli(prog_name="watcher")
