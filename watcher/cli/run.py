"""``watcher run``: the daemon in the foreground; the wiring lives in poll/daemon.py."""

from __future__ import annotations

import logging
import sys

import click

from watcher.archive.retention import prune_archive
from watcher.cli.base import Context, cli, handle_errors


@cli.command(no_json="the daemon writes log lines to standard error")
@click.pass_obj
@handle_errors
def run(obj: Context) -> None:
    """Run the daemon: poll each feed on its interval, deliver alerts as they come.

    Stops cleanly on SIGTERM or Ctrl-C; SIGHUP, or saving the config or a rule
    file, reloads them (an invalid version is logged and the running one kept).
    Logs one line per poll and per alert at INFO (use -q for errors only).

    \b
    Examples:
      watcher --config /etc/watcher/watcher.yaml run
      systemctl reload watcher      # sends SIGHUP
    """
    from watcher.poll.daemon import run_daemon  # the scheduler is loaded only to run it

    _info_unless_asked()
    sys.exit(run_daemon(obj.settings, prune_archive))


def _info_unless_asked() -> None:
    """A daemon logs its polls: INFO unless -v or -q chose a level."""
    root = logging.getLogger()
    if root.level == logging.WARNING:
        root.setLevel(logging.INFO)
