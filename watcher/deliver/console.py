"""The ``console`` channel: prints each alert to standard output; nothing else.

Every text that came from a feed goes through ``printable`` before it is printed, so
a title cannot drive the terminal; the severity colour and bold matches are watcher's own.
"""

from __future__ import annotations

import sys

import click

from watcher.deliver.render import format_time, matched_in_note, omitted_note
from watcher.printable import printable
from watcher.types import SUMMARY_KIND, AlertItem, AlertMessage, ChannelConfig

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
        if message.kind == SUMMARY_KIND:  # about a feed's poll: what it sums up, then a list
            click.echo(f"{head}: {printable(message.rule_description)}")
            for item in message.items:
                click.echo(f"    {_title(item)}")
                _print_item(item, zone, indent="      ")
        else:
            for item in message.items:
                click.echo(f"{head}: {_title(item)}")
                _print_item(item, zone)
        if len(message.items) != 1:
            click.echo(f"    ({len(message.items)} items)")
        for item in message.held_back:
            click.echo(f"    held back by max_alerts: {_title(item)}")
            _print_item(item, zone, indent="      ")
        if omitted_note(message):
            click.echo(f"    {omitted_note(message)}")


def _title(item: AlertItem) -> str:
    return printable(item.title) if item.title else "(no title)"


def _print_item(item: AlertItem, zone: str, indent: str = "    ") -> None:
    when = format_time(item.published_at, zone)
    click.echo(f"{indent}{printable(item.feed)} · {when} · {printable(item.link or '')}")
    if item.terms:
        click.echo(f"{indent}matched: " + printable(", ".join(item.terms)))
    if matched_in_note(item):
        click.echo(f"{indent}{matched_in_note(item)}")
    for snippet in item.snippets:
        click.echo(indent + _highlight(printable(snippet)))
    for other in item.also_reported_by:
        click.echo(f"{indent}also reported by {printable(other.feed)}")


def _highlight(snippet: str) -> str:
    """Show ``**x**`` as bold on a terminal, and keep the ``**`` marks when piped."""
    if not sys.stdout.isatty():
        return snippet
    parts = snippet.split("**")
    return "".join(click.style(p, bold=True) if i % 2 else p for i, p in enumerate(parts))
