"""``watcher worker``: a Celery worker that polls feeds for a coordinator (poll/scale.py)."""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path

import click

from watcher.cli.base import Context, cli, handle_errors
from watcher.cli.run import _info_unless_asked
from watcher.config import CONFIG_ENV, DEFAULT_CONFIG, parse_broker
from watcher.exceptions import ConfigError
from watcher.types import ScaleSettings


@cli.command(no_json="the worker writes log lines to standard error")
@click.option(
    "--broker",
    metavar="URL",
    help="The coordinator's Redis (redis:// or rediss://); default: scale.broker of the config.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1024),
    default=None,
    help="Tasks run at once, each in a process of its own (default: the number of CPUs).",
)
@click.pass_obj
@handle_errors
def worker(obj: Context, broker: str | None, concurrency: int | None) -> None:
    """Poll feeds for the coordinator (`watcher run` or `watcher poll` with scale.broker).

    Fetches, parses and matches the feeds each task names, with the coordinator's rules and
    poll settings, and hands the results back through Redis; never opens the database.
    Without a config file, `--broker` is enough. Stops after its tasks on SIGTERM.

    \b
    Examples:
      watcher worker --concurrency 4
      watcher worker --broker "redis://:$REDIS_PASSWORD@10.0.0.5:6379/0"
    """
    from watcher.poll.scale import QUEUE, WorkerBeat, broker_label, make_app, node_name

    scale = _scale_settings(obj, broker)
    if scale.broker is None:
        raise ConfigError("no broker: set scale.broker in watcher.yaml or pass --broker URL")
    _info_unless_asked()
    processes = concurrency or os.cpu_count() or 1
    from celery.exceptions import SecurityError
    from celery.signals import task_received, worker_ready
    from celery.worker import state as worker_state

    app = make_app(scale)
    node = node_name()
    try:
        celery_worker = app.Worker(
            hostname=node,
            concurrency=processes,
            pool="prefork",
            queues=[QUEUE],
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            quiet=True,
            optimization="fair",
            loglevel=logging.getLevelName(logging.getLogger().level),
        )
    except SecurityError:
        raise ConfigError(
            "watcher worker does not run as root: its tasks are pickled, so run it as a user"
            " of its own (contrib/watcher-worker.service does); C_FORCE_ROOT=1 overrides this"
        ) from None
    restart = threading.Event()

    def restart_worker() -> None:
        # the consumer's loop looks at should_stop: a warm shutdown, then exec below
        restart.set()
        worker_state.should_stop = 0

    beat = WorkerBeat(
        scale.broker,
        node,
        processes,
        busy=lambda: len(worker_state.reserved_requests),
        on_stuck=restart_worker,
    )
    label = broker_label(scale.broker)

    def ready(**_: object) -> None:
        # coordinators count this worker from now on: its pool runs and it takes tasks
        beat.start()
        click.echo(f"worker {node} polling for {label} with {processes} processes", err=True)

    worker_ready.connect(ready, weak=False)
    task_received.connect(lambda **_: beat.received(), weak=False)
    try:
        celery_worker.start()
    finally:
        beat.stop()
    if restart.is_set():
        click.echo(f"worker {node} restarting: its consumer took no task", err=True)
        os.execv(sys.executable, [sys.executable, "-m", "watcher", *sys.argv[1:]])
    sys.exit(celery_worker.exitcode or 0)


def _scale_settings(obj: Context, broker: str | None) -> ScaleSettings:
    """``scale:`` of the config, ``--broker`` winning; with ``--broker`` the config may be
    missing (its defaults then)."""
    configured = obj.config is not None or bool(os.environ.get(CONFIG_ENV))
    if broker is not None and not configured and not Path(DEFAULT_CONFIG).is_file():
        scale = ScaleSettings()
    else:
        scale = obj.settings().scale
    if broker is None:
        return scale
    try:
        return ScaleSettings(broker=parse_broker(broker), task_timeout_s=scale.task_timeout_s)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--broker") from e
