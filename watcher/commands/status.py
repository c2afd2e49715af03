"""``watcher status``: each feed's health and the alert queue, from the database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from watcher.cli import Context, cli, emit_json, handle_errors, json_option
from watcher.commands.table import print_table
from watcher.store import Store
from watcher.types import AlertStatus


@cli.command()
@json_option
@click.pass_obj
@handle_errors
def status(obj: Context) -> None:
    """Show each feed's last poll, error, item count and next poll, and the alert queue.

    \b
    Example:
      watcher status --json
    """
    settings = obj.settings()
    store = Store(settings.database)
    try:
        feeds = store.list_feeds()
        counts = store.item_counts()
        queue = {s.value: len(store.list_alerts(status=s)) for s in AlertStatus}
    finally:
        store.close()
    rows: list[dict[str, Any]] = [
        {
            "name": f.name,
            "url": f.url,
            "last_status": f.last_status,
            "last_error": f.last_error,
            "items": counts.get(f.id, 0),
            "last_polled_at": _iso(f.last_polled_at),
            "next_poll_at": _iso(f.next_poll_at),
            "consecutive_failures": f.consecutive_failures,
            "disabled_reason": f.disabled_reason,
        }
        for f in feeds
    ]
    if obj.json:
        emit_json({"feeds": rows, "alerts": queue})
        return
    if not rows:
        click.echo("no feeds yet: run `watcher poll` first")
    else:
        print_table(
            ["feed", "status", "items", "last poll", "next poll", "error"],
            [
                [
                    r["name"],
                    r["last_status"] or "never polled",
                    r["items"],
                    r["last_polled_at"],
                    r["next_poll_at"],
                    r["last_error"] or r["disabled_reason"],
                ]
                for r in rows
            ],
        )
    click.echo(
        f"\nalerts: {queue['pending']} pending, {queue['sent']} sent, "
        f"{queue['failed']} failed, {queue['suppressed']} suppressed"
    )


def _iso(when: datetime | None) -> str | None:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None
