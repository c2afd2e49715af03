"""``watcher search``: full-text search of the archive; the SQL lives in store/fts.py.

Output: a table with highlighted titles and snippets on a terminal (bold), or ``--json``
(``{"index_lag": N, "items": [...]}``) and ``--csv`` with the matched words marked
``**like this**``. When the search index is behind the items, stderr says so; ``--wait``
catches it up first. Control characters from
feed text are shown as ``\\xNN`` in the table and the CSV, and as ``\\u00NN`` in JSON.
"""

from __future__ import annotations

import csv
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path

import click

from watcher.archive.search import SearchQuery, SearchQueryError, translate_query
from watcher.cli.base import Context, cli, emit_json, handle_errors, now_utc, show_time
from watcher.cli.lookup import check_feeds, check_rule
from watcher.exceptions import StoreError
from watcher.printable import printable, printable_value
from watcher.rules.load import load_term_lists
from watcher.rules.query import TermLists
from watcher.store import Store, check_writable
from watcher.store.fts import (
    MARK_END,
    MARK_START,
    SORTS,
    SearchFilters,
    SearchHit,
    search_items,
)
from watcher.store.fts_queue import IndexLag, catch_up, index_lag
from watcher.units import parse_duration

FEED_WIDTH = 24
# --wait on a database only the daemon writes: how often to look, and when to give up
# waiting once its index stopped moving (no daemon running).
WAIT_STEP_S = 0.2
WAIT_STALLED_S = 10.0
CSV_COLUMNS = ("id", "published_at", "feed", "title", "link", "rules", "snippet")


@cli.command()
@click.argument("query")
@click.option("--since", metavar="DURATION", help="Only items published within this (7d, 12h).")
@click.option("--feed", "feeds", multiple=True, metavar="NAME", help="Only this feed (repeatable).")
@click.option("--rule", "rule_id", metavar="ID", help="Only items this rule matched.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option(
    "--sort",
    type=click.Choice(list(SORTS)),
    default="relevance",
    show_default=True,
    help="relevance: best matches first, equal scores newest first; date: newest first.",
)
@click.option("--csv", "as_csv", is_flag=True, help="CSV output (one row per item).")
@click.option(
    "--wait",
    is_flag=True,
    help="When the search index is behind the newest items, index them first.",
)
@click.pass_obj
@handle_errors
def search(
    obj: Context,
    query: str,
    since: str | None,
    feeds: tuple[str, ...],
    rule_id: str | None,
    limit: int,
    sort: str,
    as_csv: bool,
    wait: bool,
) -> None:
    """Search stored items with the rule query syntax, best matches (or newest) first.

    Words, "phrases", prefix*, $NAME term lists, AND/OR/NOT (or -word), NEAR/n and
    the scopes title:, summary:, content:, article: work as in rules, and a word is
    found exactly where a rule on it matches (Strasse finds Straße, 库尔斯克 finds it
    inside a Chinese sentence); a /regex/ and stem: are for rules only.

    \b
    Examples:
      watcher search 'Kursk "North Korean"' --since 7d
      watcher search 'drone* NEAR/5 fiber' --feed kyiv-independent --csv > drones.csv
      watcher search kursk --rule nk-troops-kursk --json
      watcher search 'kursk drone*' --sort date --since 2d --wait
    """
    # $NAME stands for a term list of the rule files, as in rules (read only when named).
    lists = load_term_lists(list(obj.settings().rules)) if "$" in query else {}
    translated = _translate(query, {name: t.entries for name, t in lists.items()})
    filters = SearchFilters(_since(since), feeds, rule_id, limit, sort)
    settings = obj.settings()
    if wait:
        _catch_up(settings.database)
    store = Store(settings.database, readonly=True)
    try:
        check_feeds(settings, store, feeds)
        check_rule(settings, store, rule_id)
        hits = search_items(store, translated.fts, filters)
        lag = index_lag(store)
    finally:
        store.close()
    _warn_lag(lag)
    if obj.json:
        emit_json({"index_lag": lag.items, "items": [_hit_dict(h) for h in hits]})
    elif as_csv:
        _write_csv(hits)
    else:
        _print_hits(hits, settings.display_timezone)


def _translate(query: str, lists: TermLists) -> SearchQuery:
    try:
        return translate_query(query, lists)
    except SearchQueryError as error:
        if error.column and sys.stderr.isatty():
            click.echo(f"error: {error}", err=True)
            click.echo(f"  {error.text}\n  {' ' * (error.column - 1)}^", err=True)
            sys.exit(1)
        raise


def _catch_up(database: Path) -> None:
    """Index what is queued, in this process; a database this user may not write (the
    daemon's) is waited for instead, while its indexer makes progress."""
    try:
        check_writable(database)
    except StoreError:
        _wait_for_index(database)
        return
    with Store(database) as writable:
        catch_up(writable)


def _wait_for_index(database: Path) -> None:
    last, stalled = -1, 0.0
    pause = threading.Event()
    while stalled < WAIT_STALLED_S:
        with Store(database, readonly=True) as store:
            left = index_lag(store).items
        if not left:
            return
        stalled = 0.0 if left != last else stalled + WAIT_STEP_S
        last = left
        pause.wait(WAIT_STEP_S)


def _warn_lag(lag: IndexLag) -> None:
    """Say on stderr that newer items are not searchable yet (``--wait`` waits for them)."""
    if lag.items:
        click.echo(f"{lag.describe()}: newer items may be missing (--wait)", err=True)


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return now_utc() - timedelta(seconds=parse_duration(text))
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--since") from None


# --- output --------------------------------------------------------------------------------


def marked(text: str, start: str = "**", end: str = "**") -> str:
    """Replace the search marks with ``start``/``end`` (``**`` for text output)."""
    return text.replace(MARK_START, start).replace(MARK_END, end)


def _hit_dict(hit: SearchHit) -> dict[str, object]:
    return {
        "id": hit.id,
        "feed": hit.feed,
        "title": marked(hit.title, "", ""),
        "title_marked": marked(hit.title),
        "link": hit.link,
        "published_at": _iso(hit.published_at),
        "first_seen_at": _iso(hit.first_seen_at),
        "rules": list(hit.rules),
        "language": hit.language,
        "snippet": marked(hit.snippet),
        "score": float(f"{hit.score:.6g}"),  # bm25: lower (more negative) is better
    }


def _write_csv(hits: list[SearchHit]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for hit in hits:
        row = _hit_dict(hit)
        row["rules"] = " ".join(hit.rules)
        writer.writerow([printable_value(row[c]) for c in CSV_COLUMNS])


def _print_hits(hits: list[SearchHit], zone: str) -> None:
    """A table of date, feed and title; under each row its link, rules and snippet."""
    if not hits:
        click.echo("no items found")
        return
    bold = sys.stdout.isatty()
    width = min(FEED_WIDTH, max(len(printable(h.feed)) for h in hits))
    stamp = len(show_time(hits[0].published_at or hits[0].first_seen_at, zone))
    click.echo(f"{'published':<{stamp}}  {'feed':<{width}}  title")
    for hit in hits:
        when = show_time(hit.published_at or hit.first_seen_at, zone)
        feed = printable(hit.feed)
        feed = feed if len(feed) <= width else feed[: width - 1] + "…"
        click.echo(f"{when:<{stamp}}  {feed:<{width}}  {_show(hit.title, bold)}")
        indent = " " * (stamp + 4 + width)
        for line in _details(hit, bold):
            click.echo(indent + line)
    click.echo(f"\n{len(hits)} item{'s' if len(hits) != 1 else ''}")


def _details(hit: SearchHit, bold: bool) -> list[str]:
    lines = [printable(hit.link)] if hit.link else []
    if hit.rules:
        lines.append("matched: " + printable(", ".join(hit.rules)))
    if hit.snippet:
        lines.append(_show(" ".join(hit.snippet.split()), bold))
    return lines


def _show(text: str, bold: bool) -> str:
    """Feed text made printable, its matched words bold on a terminal, else ``**marked**``."""
    text = printable(text)
    if bold:
        return marked(text, "\x1b[1m", "\x1b[22m")
    return marked(text)


def _iso(when: datetime | None) -> str | None:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None
