"""``watcher show ITEM_ID``: one stored item as evidence: where it came from, what matched
it, and its text (the article when one was fetched) with the matched words highlighted.

On a terminal the words are bold, as ``search`` shows them; piped or in ``--json`` they are
marked ``**like this**``. Feed text is shown through ``printable`` (``\\xNN``), and ``--json``
escapes controls as ``\\u00NN``.
"""

from __future__ import annotations

import sys
from datetime import datetime

import click

from watcher.archive.evidence import MarkedText, mark_evidence
from watcher.cli.base import Context, cli, emit_json, handle_errors, show_time
from watcher.exceptions import ConfigError, NotFoundError
from watcher.printable import printable
from watcher.rules.load import load_rules
from watcher.store import Store
from watcher.store.item_record import ItemRecord, item_record
from watcher.types import Rule, Settings

BOLD, PLAIN = "\x1b[1m", "\x1b[22m"


@cli.command()
@click.argument("item_id", metavar="ITEM_ID", type=int)
@click.pass_obj
@handle_errors
def show(obj: Context, item_id: int) -> None:
    """Show one stored item: its feed, link, times, language, the rules that matched it
    with their terms, and its article text (else its content or summary) with the matched
    words highlighted.

    \b
    Examples:
      watcher show 4211
      watcher show 4211 --json
      watcher search kursk --json | jq '.[0].id'     # find an item's id
    """
    settings = obj.settings()
    with Store(settings.database, readonly=True) as store:
        record = item_record(store, item_id)
    if record is None:
        raise NotFoundError(f"no item {item_id}", "item", str(item_id))
    title, text = mark_evidence(record, _configured_rules(settings))
    if obj.json:
        emit_json(item_json(record, title, text))
    else:
        _print_item(record, title, text, settings.display_timezone, bold=sys.stdout.isatty())


def _configured_rules(settings: Settings) -> dict[str, Rule]:
    """The configured rules by id (their ``stem``), none when the rule files do not load."""
    try:
        return {rule.id: rule for rule in load_rules(list(settings.rules))}
    except ConfigError:
        return {}


def item_json(record: ItemRecord, title: MarkedText, text: MarkedText) -> dict[str, object]:
    """The item as ``show --json`` prints it; times in UTC ISO 8601."""
    item = record.item
    return {
        "id": item.id,
        "feed": record.feed_name,
        "feed_title": record.feed_title,
        "title": item.title,
        "title_marked": title.marked(),
        "link": item.link,
        "author": item.author,
        "published_at": _iso(item.published_at),
        "updated_at": _iso(record.updated_at),
        "first_seen_at": _iso(item.first_seen_at),
        "language": record.language,
        "article_fetched_at": _iso(record.article_fetched_at),
        "article_error": record.article_error,
        "matches": [
            {"rule_id": m.rule_id, "terms": list(m.terms), "matched_at": _iso(m.matched_at)}
            for m in record.matches
        ],
        "alert_ids": list(record.alert_ids),
        "text_field": text.field,
        "text": text.text,
        "text_marked": text.marked(),
    }


def _print_item(
    record: ItemRecord, title: MarkedText, text: MarkedText, zone: str, *, bold: bool
) -> None:
    item = record.item
    click.echo(f"item {item.id}: {_marked(title, bold)}")
    feed = printable(record.feed_name)
    if record.feed_title and record.feed_title != record.feed_name:
        feed += f" ({printable(record.feed_title)})"
    rows = [
        ("feed", feed),
        ("link", printable(item.link or "")),
        ("author", printable(item.author or "")),
        ("published", show_time(item.published_at, zone)),
        ("updated", show_time(record.updated_at, zone)),
        ("first seen", show_time(item.first_seen_at, zone)),
        ("language", printable(record.language or "")),
        ("article", _article_state(record, zone)),
    ]
    for m in record.matches:
        terms = printable(", ".join(m.terms))
        rows.append(
            ("matched", f"{printable(m.rule_id)}: {terms} ({show_time(m.matched_at, zone)})")
        )
    if record.alert_ids:
        rows.append(("alerts", " ".join(str(a) for a in record.alert_ids)))
    for label, value in rows:
        if value:
            click.echo(f"{label + ':':<12}{value}")
    click.echo(f"\n[{text.field}]")
    click.echo(_marked(text, bold, newlines=True) if text.text.strip() else "(no text)")


def _article_state(record: ItemRecord, zone: str) -> str:
    if record.article_error:
        return f"not read: {printable(record.article_error)}"
    if record.article_fetched_at:
        return f"fetched {show_time(record.article_fetched_at, zone)}"
    return ""


def _marked(text: MarkedText, bold: bool, *, newlines: bool = False) -> str:
    """Feed text made printable with its matched words bold on a terminal, else ``**``."""
    start, end = (BOLD, PLAIN) if bold else ("**", "**")
    return text.marked(start, end, lambda s: printable(s, newlines=newlines))


def _iso(when: datetime | None) -> str | None:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None
