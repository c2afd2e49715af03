"""``watcher feeds import|export``: feeds in and out as OPML 2.0; the OPML format is opml.py's.

Import adds every feed of the file to the database (``source`` ``cli``), keeping its title
and turning its folders and categories into tags; a URL already watched is skipped.
Export writes every feed that is polled (config and cli alike), disabled ones left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import click

from watcher import envvars
from watcher.cli.base import Context, emit_json, handle_errors, now_utc, plural
from watcher.cli.feeds import feeds, listed_feeds, synced_store
from watcher.opml import http_feed_url, read_opml, write_opml
from watcher.printable import printable
from watcher.store import Store
from watcher.store.feeds import add_feed, list_feeds
from watcher.types import FeedConfig, FeedState, FeedStatus


@feeds.command("import")
@click.argument("opml", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
@handle_errors
def import_opml(obj: Context, opml: Path) -> None:
    """Add every feed of an OPML file; titles kept, folders and categories become tags.

    \b
    Example:
      watcher feeds import subscriptions.opml
    """
    settings = obj.settings()
    wanted, refused = importable_feeds(read_opml(opml))
    with synced_store(settings) as store:
        added, known = add_feeds(store, wanted, settings.defaults.interval_s)
    skipped = refused + [{"url": url, "reason": ALREADY_WATCHED} for url in known]
    if obj.json:
        emit_json({"added": [f.name for f in added], "skipped": skipped})
        return
    for feed in added:
        click.echo(printable(f"added feed {feed.name}: {feed.url}"))
    for entry in refused:
        click.echo(printable(f"skipped {entry['url']}: {entry['reason']}"))
    summary = f"imported {plural(len(added), 'feed')}, {len(known)} already watched"
    click.echo(summary + (f", {len(refused)} skipped" if refused else ""))


ALREADY_WATCHED = "already watched"


def importable_feeds(
    entries: Sequence[FeedConfig],
) -> tuple[list[FeedConfig], list[dict[str, str]]]:
    """The entries with an http(s) URL (made templates of themselves: a ``${`` is text),
    and ``{"url", "reason"}`` for each of the others."""
    wanted: list[FeedConfig] = []
    refused: list[dict[str, str]] = []
    for entry in entries:
        try:
            wanted.append(replace(entry, url=envvars.escape(http_feed_url(entry.url))))
        except ValueError as e:
            refused.append({"url": entry.url, "reason": str(e)})
    return wanted, refused


def add_feeds(
    store: Store, wanted: Sequence[FeedConfig], interval_s: int
) -> tuple[list[FeedState], list[str]]:
    """Add the feeds not watched yet, in one transaction; return them and the skipped URLs."""
    watched = {f.url for f in list_feeds(store) if f.last_status != FeedStatus.DISABLED}
    added: list[FeedState] = []
    skipped: list[str] = []
    with store.transaction():
        for cfg in wanted:
            if cfg.url in watched:
                skipped.append(envvars.expand(cfg.url, {}))
                continue
            watched.add(cfg.url)
            added.append(
                add_feed(
                    store,
                    cfg.url,
                    title=cfg.title,
                    tags=cfg.tags,
                    interval_s=interval_s,
                    interval_source="default",
                    source="cli",
                    now=now_utc(),
                )
            )
    return added, skipped


@feeds.command("export", no_json="it writes OPML")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of standard output.",
)
@click.pass_obj
@handle_errors
def export_opml(obj: Context, output: Path | None) -> None:
    """Write every polled feed as OPML 2.0 (URL, title, tags as categories).

    \b
    Example:
      watcher feeds export -o feeds.opml
    """
    settings = obj.settings()
    with Store(settings.database, readonly=True) as store:
        rows = [f for f in listed_feeds(store, settings) if f.last_status != FeedStatus.DISABLED]
    document = write_opml(as_feed_config(f) for f in rows)
    if output is None:
        click.echo(document, nl=False)
        return
    output.write_text(document, encoding="utf-8")
    click.echo(f"exported {plural(len(rows), 'feed')} to {output}", err=True)


def as_feed_config(feed: FeedState) -> FeedConfig:
    return FeedConfig(url=feed.url, name=feed.name, title=feed.title, tags=feed.tags)
