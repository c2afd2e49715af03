"""``watcher alerts``: list alerts from the outbox; ``watcher alerts retry`` sends failed ones."""

from __future__ import annotations

import sys
from dataclasses import asdict
from datetime import datetime

import click

from watcher.cli.base import (
    Context,
    cli,
    emit_json,
    handle_errors,
    now_utc,
    plural,
    show_time,
)
from watcher.cli.lookup import check_rule
from watcher.cli.table import print_table
from watcher.deliver.send import DeliveryReport, deliver_pending
from watcher.exceptions import LockedError, NotFoundError, StoreError
from watcher.lock import hold_lock
from watcher.poll.runtime import open_runtime
from watcher.store import Store
from watcher.store.names import missing_alert_ids
from watcher.store.outbox import list_alerts, requeue_failed
from watcher.types import Alert, AlertStatus, Settings


@cli.group(invoke_without_command=True)
@click.option(
    "--status",
    "status",
    type=click.Choice([s.value for s in AlertStatus]),
    help="Only alerts with this status.",
)
@click.option("--rule", "rule_id", metavar="ID", help="Only alerts of this rule.")
@click.option("--limit", type=int, default=50, show_default=True)
@click.pass_context
@handle_errors
def alerts(ctx: click.Context, status: str | None, rule_id: str | None, limit: int) -> None:
    """List alerts, newest first.

    \b
    Example:
      watcher alerts --status failed
    """
    if ctx.invoked_subcommand is not None:
        return
    obj: Context = ctx.obj
    settings = obj.settings()
    store = Store(settings.database, readonly=True)
    try:
        check_rule(settings, store, rule_id)
        rows = list_alerts(
            store, status=AlertStatus(status) if status else None, rule_id=rule_id, limit=limit
        )
        titles = {a.id: _first_title(store, a.item_ids) for a in rows}
    finally:
        store.close()
    if obj.json:
        emit_json(
            [
                {
                    "id": a.id,
                    "rule_id": a.rule_id,
                    "channel": a.channel,
                    "item_ids": list(a.item_ids),
                    "title": titles[a.id],
                    "status": a.status.value,
                    "reason": a.reason,
                    "attempts": a.attempts,
                    "last_error": None if _was_retried(a) else a.last_error,
                    "earlier_error": a.last_error if _was_retried(a) else None,
                    "note": alert_note(a),
                    "created_at": _iso(a.created_at),
                    "sent_at": _iso(a.sent_at),
                }
                for a in rows
            ]
        )
        return
    if not rows:
        click.echo("no alerts")
        return
    print_table(
        ["id", "rule", "channel", "status", "created", "title", "note"],
        [
            [
                a.id,
                a.rule_id,
                a.channel,
                a.status.value,
                show_time(a.created_at, settings.display_timezone),
                (titles[a.id] or "")
                + (f" (+{len(a.item_ids) - 1})" if len(a.item_ids) > 1 else ""),
                alert_note(a),
            ]
            for a in rows
        ],
        max_width=50,
    )


def _was_retried(alert: Alert) -> bool:
    """Sent after failed attempts: its ``last_error`` is history, not a current error."""
    return alert.status is AlertStatus.SENT and alert.last_error is not None


def alert_note(alert: Alert) -> str | None:
    """What the table's note says: the reason, the current error, or how a sent alert got
    there (``sent on attempt 3; earlier: receiver refused``)."""
    if not _was_retried(alert):
        return alert.reason or alert.last_error
    history = f"sent on attempt {alert.attempts}; earlier: {alert.last_error}"
    return f"{alert.reason}; {history}" if alert.reason else history


def _first_title(store: Store, item_ids: tuple[int, ...]) -> str | None:
    """The title of an alert's first item (health alerts have none)."""
    if not item_ids or item_ids[0] <= 0:
        return None
    try:
        return store.item(item_ids[0]).title
    except StoreError:  # an item pruned or never stored: the alert row stays readable
        return None


def _iso(when: datetime | None) -> str | None:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


@alerts.command()
@click.argument("ids", nargs=-1, type=int, metavar="[ID]...")
@click.pass_obj
@handle_errors
def retry(obj: Context, ids: tuple[int, ...]) -> None:
    """Send failed alerts again (all, or the ids given), with a fresh retry deadline.

    While the daemon runs, the alerts are put back in its queue and it sends them.

    \b
    Examples:
      watcher alerts retry
      watcher alerts retry 12 15
    """
    settings = obj.settings()
    if ids:
        _check_alerts_exist(settings, ids)
    requeued, report = _requeue_and_send(settings, list(ids) or None)
    if obj.json:
        emit_json({"requeued": requeued, "delivery": asdict(report) if report else None})
    else:
        _print_retry(requeued, report, ids)
    if report is not None and report.bugs:
        sys.exit(3)


def _check_alerts_exist(settings: Settings, ids: tuple[int, ...]) -> None:
    """NotFoundError (``no alert 9999``) before anything is requeued, if an id names none."""
    with Store(settings.database) as store:
        missing = missing_alert_ids(store, ids)
    if missing:
        listed = ", ".join(map(str, missing))
        raise NotFoundError(f"no alert {listed}", "alert", listed)


def _requeue_and_send(
    settings: Settings, ids: list[int] | None
) -> tuple[list[int], DeliveryReport | None]:
    """Requeue, then deliver now; only requeue when another process holds the lock."""
    now = now_utc()
    try:
        with hold_lock(settings.database, "alerts retry"):
            rt = open_runtime(settings, fetching=False)
            try:
                requeued = requeue_failed(rt.store, ids, now)
                return requeued, deliver_pending(rt, now, requeued) if requeued else None
            finally:
                rt.store.close()
    except LockedError:
        with Store(settings.database) as store:
            return requeue_failed(store, ids, now), None


def _print_retry(requeued: list[int], report: DeliveryReport | None, ids: tuple[int, ...]) -> None:
    missing = sorted(set(ids) - set(requeued))
    if missing:
        listed = ", ".join(map(str, missing))
        click.echo(f"not failed, left alone: alert {listed}", err=True)
    if not requeued:
        click.echo("no failed alerts to retry")
        return
    if report is None:
        click.echo(f"requeued {plural(len(requeued), 'alert')}; the running daemon will send them")
        return
    line = f"retried {plural(len(requeued), 'alert')}: {report.sent} sent"
    if report.retrying or report.deferred:
        line += f", {report.retrying + report.deferred} to retry later"
    if report.failed:
        line += f", {report.failed} failed again (see `watcher alerts --status failed`)"
    click.echo(line)
