"""Write what one poll decided (a ``FeedIntent``) in one transaction; decides nothing.

The rows come with their ids: the intent was decided on a snapshot read in the same write
transaction, so the ids it hands out are the ones SQLite would give (watcher.intent). The
order: story merges (they move stored rows only), items, story keys, matches and their
evidence, alerts and what hangs on them, volume-rule arming, then the poll row and the
feed's state. ``apply_intents`` writes the plain ones of many polls (a batch of 304s) with
one statement per table.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from watcher.intent import (
    AlertAppend,
    AlertWrite,
    ArmingWrite,
    FeedIntent,
    ItemWrite,
    MatchWrite,
    StoryKeyWrite,
    StoryMerge,
    Summary,
)
from watcher.store.errors import store_call
from watcher.store.rows import encode_json, item_columns, to_text, to_text_or_none
from watcher.types import AlertStatus

if TYPE_CHECKING:
    from watcher.store import Store


@store_call
def apply_intent(store: Store, intent: FeedIntent) -> None:
    """Write everything one poll of one feed decided, or nothing."""
    with store.transaction():
        conn = store.db.conn
        _merge_stories(conn, intent.merges)
        _write_items(conn, intent.feed_id, intent.items)
        _write_story_keys(conn, intent.story_keys)
        _write_matches(conn, intent.matches)
        _write_alerts(conn, intent.alerts)
        _append_items(conn, intent.appends)
        _summarise(conn, intent.summaries)
        _write_arming(conn, intent.arming)
        if not intent.pushed:
            _record_polls(conn, [intent])


@store_call
def apply_intents(store: Store, intents: Sequence[FeedIntent]) -> None:
    """Write many polls' intents in one transaction: the plain ones (a poll row and the
    feed's state) together, one statement per table; any other one by one, in order."""
    with store.transaction():
        _record_polls(store.db.conn, [i for i in intents if i.is_plain])
        for intent in intents:
            if not intent.is_plain:
                apply_intent(store, intent)


def _merge_stories(conn: sqlite3.Connection, merges: Sequence[StoryMerge]) -> None:
    """Move each merged story's items, keys and live match alerts (an alert whose place is
    taken in the other story stays where it is)."""
    for merge in merges:
        params = [merge.into, merge.other]
        conn.execute("UPDATE items SET story_id = ? WHERE story_id = ?", params)
        conn.execute("UPDATE _story_keys SET story_id = ? WHERE story_id = ?", params)
        conn.execute(
            "UPDATE OR IGNORE _alert_meta SET story_id = ? WHERE story_id = ? AND kind = 'match'",
            params,
        )


def _write_items(conn: sqlite3.Connection, feed_id: int, items: Sequence[ItemWrite]) -> None:
    """Insert the new items, then update the changed ones (an item new in this poll may
    come again, changed, under the same guid). A changed item keeps its stored article
    unless this poll fetched one for it (its link changed)."""
    new = [_item_row(feed_id, w) | _article_columns(w) for w in items if w.stored.change == "new"]
    if new:
        names = tuple(new[0])
        marks = ", ".join(f":{name}" for name in names)
        conn.executemany(f"INSERT INTO items ({', '.join(names)}) VALUES ({marks})", new)
    for with_article in (False, True):
        changed = [
            _item_row(feed_id, w) | (_article_columns(w) if with_article else {})
            for w in items
            if w.stored.change != "new" and (w.article is not None) is with_article
        ]
        if changed:
            keep = ("id", "guid", *_KEEP)
            sets = ", ".join(f"{k} = :{k}" for k in changed[0] if k not in keep)
            conn.executemany(f"UPDATE items SET {sets} WHERE id = :id", changed)


def _article_columns(write: ItemWrite) -> dict[str, Any]:
    """items.article_text, article_fetched_at and article_error (null: not fetched)."""
    article = write.article
    if article is None:
        return {"article_text": None, "article_fetched_at": None, "article_error": None}
    return {
        "article_text": article.text,
        "article_fetched_at": to_text(article.fetched_at),
        "article_error": article.error,
    }


_KEEP = ("feed_id", "first_seen_at")  # what an edit of an item leaves as it was


def _item_row(feed_id: int, write: ItemWrite) -> dict[str, Any]:
    stored = write.stored
    return {
        **item_columns(write.parsed, stored.content_hash),
        "feed_id": feed_id,
        "first_seen_at": to_text(stored.first_seen_at),
        "id": stored.id,
        "story_id": stored.story_id,
    }


def _write_story_keys(conn: sqlite3.Connection, keys: Sequence[StoryKeyWrite]) -> None:
    conn.executemany(
        "INSERT OR REPLACE INTO _story_keys (kind, key, story_id, first_at) VALUES (?, ?, ?, ?)",
        [(*k.key, k.story_id, to_text(k.first_at)) for k in keys],
    )


def _write_matches(conn: sqlite3.Connection, matches: Sequence[MatchWrite]) -> None:
    """The ``matches`` rows, and the evidence of each that has some."""
    conn.executemany(
        "INSERT INTO matches (id, item_id, rule_id, terms, matched_at) VALUES (?, ?, ?, ?, ?)",
        [
            (
                m.id,
                m.item_id,
                m.match.rule_id,
                encode_json(list(m.match.terms)),
                to_text(m.matched_at),
            )
            for m in matches
        ],
    )
    conn.executemany(
        "INSERT INTO _match_evidence (match_id, fields, snippets) VALUES (?, ?, ?)",
        [
            (m.id, encode_json(list(m.match.fields)), encode_json(list(m.match.snippets)))
            for m in matches
            if m.match.fields or m.match.snippets
        ],
    )


def _write_alerts(conn: sqlite3.Connection, alerts: Sequence[AlertWrite]) -> None:
    """The ``alerts`` rows with their ``_alert_meta``, held-back marks and health events."""
    conn.executemany(
        "INSERT INTO alerts (id, rule_id, channel, item_ids, status, reason, created_at,"
        " next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                a.id,
                a.rule_id,
                a.channel,
                encode_json(list(a.item_ids)),
                str(a.status),
                a.reason,
                to_text(a.created_at),
                to_text_or_none(a.next_attempt_at),
            )
            for a in alerts
        ],
    )
    conn.executemany(
        "INSERT INTO _alert_meta (alert_id, kind, story_id, rule_id, channel, live, retry_from)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                a.id,
                a.kind,
                a.story_id,
                a.rule_id,
                a.channel,
                None if a.status is AlertStatus.SUPPRESSED else 1,
                to_text_or_none(a.retry_from),
            )
            for a in alerts
        ],
    )
    conn.executemany(
        "INSERT INTO _held_back (alert_id, channel) VALUES (?, ?)",
        [(a.id, a.channel) for a in alerts if a.held_back],
    )
    conn.executemany(
        "INSERT INTO _health_alerts (alert_id, feed, kind, detail, url) VALUES (?, ?, ?, ?, ?)",
        [
            (a.id, a.health.feed, str(a.health.kind), a.health.detail, a.health.url)
            for a in alerts
            if a.health is not None
        ],
    )


def _append_items(conn: sqlite3.Connection, appends: Sequence[AlertAppend]) -> None:
    """Add later copies to stored alerts' ``item_ids`` (each once)."""
    conn.executemany(
        "UPDATE alerts SET item_ids = json_insert(item_ids, '$[#]', ?1) WHERE id = ?2"
        " AND NOT EXISTS (SELECT 1 FROM json_each(alerts.item_ids) j WHERE j.value = ?1)",
        [(a.item_id, a.alert_id) for a in appends],
    )


def _summarise(conn: sqlite3.Connection, summaries: Sequence[Summary]) -> None:
    """Held-back alerts now carried by a later alert: recorded, and their reason says so."""
    conn.executemany(
        "UPDATE _held_back SET summarised_in = ? WHERE alert_id = ?",
        [(s.into, s.alert_id) for s in summaries],
    )
    conn.executemany(
        "UPDATE alerts SET reason = ? WHERE id = ?", [(s.reason, s.alert_id) for s in summaries]
    )


def _write_arming(conn: sqlite3.Connection, arming: Sequence[ArmingWrite]) -> None:
    conn.executemany(
        "INSERT INTO _volume_arming (rule_id, channel, fired, checked, armed)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (rule_id, channel) DO UPDATE SET"
        " fired = excluded.fired, checked = excluded.checked, armed = excluded.armed",
        [
            (
                a.rule_id,
                a.channel,
                to_text_or_none(a.state.fired),
                to_text_or_none(a.state.checked),
                a.state.armed,
            )
            for a in arming
        ],
    )


def _record_polls(conn: sqlite3.Connection, intents: Sequence[FeedIntent]) -> None:
    """The ``polls`` rows, the feeds' new state and their Retry-After holds."""
    conn.executemany(
        "INSERT INTO polls (feed_id, started_at, duration_ms, http_status, new_items, error)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [
            (
                i.feed_id,
                to_text(i.poll.started_at),
                i.poll.duration_ms,
                i.poll.http_status,
                i.poll.new_items,
                i.poll.error,
            )
            for i in intents
        ],
    )
    conn.executemany(
        "UPDATE feeds SET last_polled_at = ?, last_status = ?, last_error = ?,"
        " last_success_at = ?, consecutive_failures = ?, disabled_reason = ?,"
        " next_poll_at = ?, etag = ?, last_modified = ?, title = ?, url = ? WHERE id = ?",
        [
            (
                to_text(f.last_polled_at),
                f.last_status,
                f.last_error,
                to_text_or_none(f.last_success_at),
                f.consecutive_failures,
                f.disabled_reason,
                to_text(f.next_poll_at),
                f.etag,
                f.last_modified,
                f.title,
                f.url,
                i.feed_id,
            )
            for i in intents
            for f in (i.feed,)
        ],
    )
    conn.executemany(
        "INSERT INTO _feed_health (feed_id, retry_until) VALUES (?, ?)"
        " ON CONFLICT (feed_id) DO UPDATE SET retry_until = excluded.retry_until",
        [(i.feed_id, to_text_or_none(i.retry_until)) for i in intents],
    )
