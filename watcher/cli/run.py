"""``watcher run``: the daemon in the foreground; the wiring lives in poll/daemon.py."""

from __future__ import annotations

import logging
import sys

import click

from watcher.archive.retention import prune_archive
from watcher.cli.base import Context, cli, handle_errors
from watcher.config import parse_listen


@cli.command(no_json="the daemon writes log lines to standard error")
@click.option(
    "--metrics",
    "metrics",
    metavar="HOST:PORT",
    help="Serve Prometheus /metrics and /healthz here (a bare port: 127.0.0.1);"
    " overrides metrics.listen.",
)
@click.pass_obj
@handle_errors
def run(obj: Context, metrics: str | None) -> None:
    """Run the daemon: poll each feed on its interval, deliver alerts as they come.

    Stops cleanly on SIGTERM or Ctrl-C; SIGHUP, or saving the config or a rule
    file, reloads them (an invalid version is logged and the running one kept).
    Logs one line per poll and per alert at INFO (use -q for errors only).
    With websub set in the config it also serves the WebSub callback.

    \b
    Examples:
      watcher --config /etc/watcher/watcher.yaml run
      watcher run --metrics 127.0.0.1:9464   # curl localhost:9464/metrics
      systemctl reload watcher      # sends SIGHUP
    """
    from watcher.poll.daemon import run_daemon  # the scheduler is loaded only to run it

    try:
        listen = parse_listen(metrics) if metrics is not None else None
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--metrics") from e
    _info_unless_asked()
    sys.exit(run_daemon(obj.settings, prune_archive, metrics_listen=listen))


def _info_unless_asked() -> None:
    """A daemon logs its polls: INFO unless -v or -q chose a level."""
    root = logging.getLogger()
    if root.level == logging.WARNING:
        root.setLevel(logging.INFO)
