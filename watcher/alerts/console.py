"""The ``console`` channel: prints each alert to standard output; nothing else."""

from __future__ import annotations

import sys

import click

from watcher.alerts.render import format_time
from watcher.types import AlertItem, AlertMessage, ChannelConfig

_SEVERITY_COLOURS = {"critical": "red", "high": "red", "medium": "yellow"}


class ConsoleChannel:
    def __init__(self, config: ChannelConfig, instance: str = "") -> None:
        self.name = config.name

    def describe(self) -> str:
        return f"console {self.name}"

    def send(self, message: AlertMessage) -> None:
        colour = _SEVERITY_COLOURS.get(message.severity)
        head = click.style(f"[{message.severity}] {message.rule_id}", fg=colour, bold=True)
        zone = message.display_timezone
        for item in message.items:
            click.echo(f"{head}: {item.title or '(no title)'}")
            _print_item(item, zone)
        if len(message.items) != 1:
            click.echo(f"    ({len(message.items)} items)")
        for item in message.held_back:
            click.echo(f"    held back by max_alerts: {item.title or '(no title)'}")
            _print_item(item, zone, indent="      ")


def _print_item(item: AlertItem, zone: str, indent: str = "    ") -> None:
    click.echo(f"{indent}{item.feed} · {format_time(item.published_at, zone)} · {item.link or ''}")
    if item.terms:
        click.echo(f"{indent}matched: " + ", ".join(item.terms))
    for snippet in item.snippets:
        click.echo(indent + _highlight(snippet))
    for other in item.also_reported_by:
        click.echo(f"{indent}also reported by {other.feed}")


def _highlight(snippet: str) -> str:
    """Show ``**x**`` as bold on a terminal, and keep the ``**`` marks when piped."""
    if not sys.stdout.isatty():
        return snippet
    parts = snippet.split("**")
    return "".join(click.style(p, bold=True) if i % 2 else p for i, p in enumerate(parts))
