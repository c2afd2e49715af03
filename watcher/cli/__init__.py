"""The command line (also ``python -m watcher``): options in, one call, output out.

base.py holds the click group ``cli``, the shared ``Context`` and the helpers every command
uses; each other module registers one command or command group on it (table.py and
lookup.py are helpers); this module says which module holds which command (imported when
that command runs) and exposes ``main``. The command line
may import any layer; it prints and makes one call per command into the layers below, and
runs no SQL itself.
"""

from watcher.cli.base import cli

# Each command's module registers it on ``cli`` when imported: only the command that runs
# is imported (base.WatcherGroup), so a poll's start does not import search or Datasette.
cli.lazy = {
    "alerts": ("alerts",),
    "backup": ("backup",),
    "channels": ("channels",),
    "feeds": ("feeds", "feeds_opml"),
    "init": ("init",),
    "mute": ("mute",),
    "poll": ("poll",),
    "rules": ("rules",),
    "run": ("run",),
    "schema": ("schema",),
    "search": ("search",),
    "serve": ("serve",),
    "show": ("show",),
    "status": ("status",),
    "unmute": ("mute",),
    "worker": ("worker",),
}

__all__ = ["cli", "main"]


def main() -> None:
    cli(prog_name="watcher")
