"""``watcher alerts``: list alerts from the outbox."""

from __future__ import annotations

from datetime import datetime

import click

from watcher.cli import Context, cli, emit_json, handle_errors, json_option
from watcher.commands.table import print_table
from watcher.store import Store
from watcher.types import AlertStatus


@cli.group(invoke_without_command=True)
@click.option(
    "--status",
    "status",
    type=click.Choice([s.value for s in AlertStatus]),
    help="Only alerts with this status.",
)
@click.option("--rule", "rule_id", metavar="ID", help="Only alerts of this rule.")
@click.option("--limit", type=int, default=50, show_default=True)
@json_option
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
    store = Store(obj.settings().database)
    try:
        rows = store.list_alerts(
            status=AlertStatus(status) if status else None, rule_id=rule_id, limit=limit
        )
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
                    "status": a.status.value,
                    "reason": a.reason,
                    "attempts": a.attempts,
                    "last_error": a.last_error,
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
        ["id", "rule", "channel", "status", "items", "created", "note"],
        [
            [
                a.id,
                a.rule_id,
                a.channel,
                a.status.value,
                ",".join(map(str, a.item_ids)),
                _iso(a.created_at),
                a.reason or a.last_error,
            ]
            for a in rows
        ],
    )


def _iso(when: datetime | None) -> str | None:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None
