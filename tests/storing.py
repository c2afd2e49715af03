"""Rows for tests, written the way a poll writes them: snapshot -> decide -> apply.

There is one way items, stories and poll outcomes reach the database (watcher.poll's
``record_result``); tests that need such rows call it through these helpers instead of
writing SQL of their own. Rows a poll does not write (matches of a rule that is not
loaded, alerts made by hand) are inserted directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from watcher.intent import FeedIntent
from watcher.poll.pipeline import record_result
from watcher.store import Store
from watcher.store.feeds import get_feed
from watcher.store.rows import content_hash, encode_json, to_text
from watcher.types import (
    DeliverySettings,
    FeedConfig,
    FeedDefaults,
    FeedResult,
    Fetched,
    HealthSettings,
    ParsedFeed,
    ParsedItem,
    PollSettings,
    Settings,
    StoredItem,
)

# Settings with no channel: a poll through them records items, matches and polls only.
BARE = Settings(
    path=Path("watcher.yaml"),
    database=Path("watcher.db"),
    rules=(),
    defaults=FeedDefaults(),
    display_timezone="UTC",
    poll=PollSettings(),
    feeds=(),
    channels={},
    health=HealthSettings(notify=()),
    delivery=DeliverySettings(),
)


def poll(
    store: Store,
    feed_id: int,
    now: datetime,
    items: Sequence[ParsedItem] | None = (),
    *,
    status: int = 200,
    error: str | None = None,
    headers: Mapping[str, str] | None = None,
    etag: str | None = None,
    last_modified: str | None = None,
    title: str | None = None,
    moved_to: str | None = None,
    duration_ms: int = 1,
) -> FeedIntent:
    """Record one poll of the feed: ``error`` (with ``status``) a failure, 304 unchanged,
    else a feed with these items (no rules are loaded: nothing is matched)."""
    feed = get_feed(store, feed_id)
    result = FeedResult(feed=feed, options=FeedConfig(url=feed.url, name=feed.name))
    result.duration_ms = duration_ms
    if error is not None:
        result.error, result.http_status = error, status
    else:
        result.fetched = Fetched(
            url=feed.url,
            final_url=moved_to or feed.url,
            status=status,
            etag=etag,
            last_modified=last_modified,
            permanent_redirect=moved_to,
            headers=dict(headers or {}),
        )
        result.http_status = status
        if status != 304 and items is not None:
            result.parsed = ParsedFeed(title, None, "rss20", tuple(items))
            result.hashes = tuple(content_hash(item) for item in items)
            result.matches = {}
    return record_result(store, result, {}, BARE, now)


def upsert_item(store: Store, feed_id: int, item: ParsedItem, now: datetime) -> StoredItem:
    """Store one item as a poll of its feed would: new, updated, or as it was (unchanged)."""
    intent = poll(store, feed_id, now, [item])
    if intent.items:
        return intent.items[0].stored
    row = store.db.execute(
        "SELECT id FROM items WHERE feed_id = ? AND guid = ?", [feed_id, item.guid]
    ).fetchone()
    return store.item(int(row[0]))


def add_match(store: Store, item_id: int, rule_id: str, terms: Sequence[str], at: datetime) -> int:
    """A ``matches`` row, as a match of a rule that is not loaded here was recorded."""
    cursor = store.db.execute(
        "INSERT INTO matches (item_id, rule_id, terms, matched_at) VALUES (?, ?, ?, ?)",
        [item_id, rule_id, encode_json(list(terms)), to_text(at)],
    )
    return int(cursor.lastrowid or 0)


def live_alert_id(store: Store, rule_id: str, channel: str, story_id: int) -> int | None:
    """The live match alert of this rule and channel about the story, if any."""
    row = store.db.execute(
        "SELECT alert_id FROM _alert_meta WHERE rule_id = ? AND channel = ? AND story_id = ?"
        " AND kind = 'match' AND live = 1",
        [rule_id, channel, story_id],
    ).fetchone()
    return None if row is None else int(row[0])
