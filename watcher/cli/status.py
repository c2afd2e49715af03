"""``watcher status``: each feed's health and the alert queue, from the database.

``--check`` exits 1 when the daemon's heartbeat is stale or a feed is failing
(decide/health.py decides); it changes nothing.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from watcher.cli.base import Context, cli, emit_json, handle_errors, now_utc, show_time
from watcher.cli.table import print_table
from watcher.decide.health import check_problems
from watcher.decide.websub import push_status
from watcher.printable import printable
from watcher.store import Store
from watcher.store.feeds import list_feeds
from watcher.store.fts_queue import index_lag
from watcher.store.outbox import list_alerts
from watcher.store.state import read_heartbeat
from watcher.store.stats import ArchiveStats, archive_stats, human_size, item_counts
from watcher.store.websub import list_subscriptions
from watcher.types import AUTO_INTERVAL, AlertStatus, FeedState, FeedStatus
from watcher.units import short_duration

if TYPE_CHECKING:
    from watcher.poll.scale import ClusterState


@cli.command()
@click.option(
    "--check",
    is_flag=True,
    help="Exit 1 when the daemon's heartbeat is older than 2 poll intervals or a feed is failing.",
)
@click.pass_obj
@handle_errors
def status(obj: Context, check: bool) -> None:
    """Show each feed's last poll, error, item count and next poll, and the alert queue.

    A feed that offers WebSub push shows a line ``NAME: push: subscribed (lease until …)``
    or why not.

    \b
    Examples:
      watcher status --json
      watcher status --check || echo "watcher needs attention"
    """
    settings = obj.settings()
    zone = settings.display_timezone
    store = Store(settings.database, readonly=True)
    try:
        feeds = list_feeds(store)
        counts = item_counts(store)
        queue = {s.value: len(list_alerts(store, status=s)) for s in AlertStatus}
        heartbeat = read_heartbeat(store)
        archive = archive_stats(store)
        subscriptions = {s.feed_id: s for s in list_subscriptions(store)}
        lag = index_lag(store)
    finally:
        store.close()
    cluster = _cluster(settings.scale.broker)
    now = now_utc()
    problems = check_problems(
        heartbeat,
        feeds,
        now,
        failing_after=settings.health.failing_after,
        default_interval_s=settings.defaults.interval_s,
    )
    rows: list[dict[str, Any]] = [
        {
            "name": f.name,
            "url": f.url,
            "last_status": f.last_status,
            "last_error": f.last_error,
            "items": counts.get(f.id, 0),
            "last_polled_at": _iso(f.last_polled_at),
            "next_poll_at": None if _disabled(f) else _iso(f.next_poll_at),
            "interval_s": f.interval_s,
            "interval_source": f.interval_source,
            "consecutive_failures": f.consecutive_failures,
            "disabled_reason": f.disabled_reason,
            "push": push_status(subscriptions.get(f.id), settings.websub.enabled, now) or None,
        }
        for f in feeds
    ]
    if obj.json:
        emit_json(
            {
                "feeds": rows,
                "alerts": queue,
                "heartbeat": _iso(heartbeat),
                "problems": problems,
                "database": _database_dict(settings.database, archive),
                "workers": cluster.workers if cluster and not cluster.error else None,
                "queue_depth": cluster.queue_depth if cluster and not cluster.error else None,
                "broker_error": cluster.error if cluster else None,
                "index_lag": lag.items,
            }
        )
    else:
        _print_status(rows, queue, heartbeat, problems if check else [], zone)
        _print_database(settings.database, archive)
        if cluster is not None and settings.scale.broker is not None:
            _print_cluster(settings.scale.broker, cluster)
        click.echo(f"search index: {lag.describe() if lag.items else 'up to date'}")
    if check and problems:
        sys.exit(1)


def _print_status(
    rows: list[dict[str, Any]],
    queue: dict[str, int],
    heartbeat: datetime | None,
    problems: list[str],
    zone: str,
) -> None:
    if not rows:
        click.echo("no feeds yet: run `watcher poll` first")
    else:
        print_table(
            ["feed", "status", "failures", "items", "interval", "last poll", "next poll", "note"],
            [
                [
                    r["name"],
                    r["last_status"] or "never polled",
                    r["consecutive_failures"],
                    r["items"],
                    _interval(r),
                    show_time(r["last_polled_at"], zone),
                    show_time(r["next_poll_at"], zone),
                    _note(r),
                ]
                for r in rows
            ],
        )
    for row in rows:
        if row["push"]:
            click.echo(f"{printable(row['name'])}: push: {printable(row['push'])}")
    click.echo(
        f"\nalerts: {queue['pending']} pending, {queue['sent']} sent, "
        f"{queue['failed']} failed, {queue['suppressed']} suppressed"
    )
    click.echo(f"daemon heartbeat: {show_time(heartbeat, zone) or 'never'}")
    for problem in problems:
        click.echo(f"check: {printable(problem)}", err=True)


def _cluster(broker: str | None) -> ClusterState | None:
    """With ``scale.broker``: the workers seen in the last minute and the tasks waiting."""
    if broker is None:
        return None
    from watcher.poll.scale import read_cluster  # Celery's Redis client only when scaled

    return read_cluster(broker)


def _print_cluster(broker: str, cluster: ClusterState) -> None:
    from watcher.poll.scale import broker_label

    if cluster.error is not None:
        click.echo(f"workers: unknown ({printable(cluster.error)})")
        return
    click.echo(
        f"workers: {cluster.workers} seen in the last minute, queue_depth: "
        f"{cluster.queue_depth} tasks waiting ({broker_label(broker)})"
    )


def _disabled(feed: FeedState) -> bool:
    return feed.last_status == FeedStatus.DISABLED


def _interval(row: dict[str, Any]) -> str:
    """``15m``, or ``auto 12m`` for an adaptive interval (what it is now)."""
    text = short_duration(row["interval_s"])
    return f"auto {text}" if row["interval_source"] == AUTO_INTERVAL else text


def _note(row: dict[str, Any]) -> str | None:
    """A disabled feed's reason (its error is history then), else the last error."""
    if row["last_status"] == FeedStatus.DISABLED:
        return row["disabled_reason"] or "no reason recorded"
    return row["last_error"]  # type: ignore[no-any-return]


def _database_dict(path: Path, archive: ArchiveStats) -> dict[str, Any]:
    return {"path": str(path), "size_bytes": archive.size_bytes, "rows": archive.rows}


def _print_database(path: Path, archive: ArchiveStats) -> None:
    """``database: data/watcher.db, 1.2 MB: 3 feeds, 1,204 items, 17 matches, ...``."""
    counts = ", ".join(f"{n:,} {table}" for table, n in archive.rows.items())
    click.echo(f"database: {path}, {human_size(archive.size_bytes)}: {counts}")


def _iso(when: datetime | None) -> str | None:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None
