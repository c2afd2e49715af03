"""Read the snapshot one poll of a feed is decided on; runs SQL, decides nothing.

``read_snapshot`` answers a ``SnapshotRequest`` (watcher.intent) with one query per kind of
row, never one per item: the feed, the next free ids, the stored versions of the parsed
items; for the new and changed ones their story keys, the stories those name (when each
began, their live alerts), and for the rules they match what alerting depends on (which
changed items alerted before, digests, caps, held-back alerts, volume state, mutes).
``read_volume_history`` then reads each volume rule's matches from the moment its decision
starts looking. Both run inside the write transaction the poll is decided and applied in.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from watcher.exceptions import StoreError
from watcher.intent import (
    FeedSnapshot,
    ItemRef,
    KnownItem,
    OutboxAlert,
    Pair,
    RuleNeeds,
    SnapshotRequest,
    StoryKey,
    StoryRef,
    ThrottleWindow,
)
from watcher.store.errors import store_call
from watcher.store.rows import (
    alert_from_row,
    encode_json,
    feed_from_row,
    from_text,
    required_time,
    to_text,
)
from watcher.types import ArmState, FeedState, Mute, VolumeMatch

if TYPE_CHECKING:
    from watcher.store import Store


@store_call
def read_snapshot(store: Store, request: SnapshotRequest) -> FeedSnapshot:
    """What the poll of ``request.feed_id`` can touch, as stored now."""
    conn = store.db.conn
    feed = read_feeds(store, [request.feed_id]).get(request.feed_id)
    if feed is None:
        raise StoreError(f"no feed with id {request.feed_id}")
    ids = _next_ids(conn)
    if not request.items:
        return FeedSnapshot(feed, *ids)
    known = _known_items(conn, request.feed_id, [ref.guid for ref in request.items])
    changed = [ref for ref in request.items if _is_changed(ref, known)]
    if not changed:
        return FeedSnapshot(feed, *ids, known=known)
    keys = _story_keys(conn, {key for ref in changed for key in ref.story_keys})
    updated = [known[ref.guid] for ref in changed if ref.guid in known]
    stories = {ref.story_id for ref in keys.values()} | {item.story_id for item in updated}
    heads = _first_seen(conn, stories)
    rule_ids = {rule for ref in changed for rule in ref.rule_ids}
    needs = [need for need in request.rules if need.rule_id in rule_ids]
    if not needs:
        return FeedSnapshot(feed, *ids, known=known, story_keys=keys, story_heads=heads)
    began = min([*heads.values(), request.now])  # the earliest any of these stories began
    digests = _digests(conn, needs, began)
    volume = [(n.rule_id, c) for n in needs if n.volume for c in n.channels]
    return FeedSnapshot(
        feed,
        *ids,
        known=known,
        story_keys=keys,
        story_heads=heads,
        live=_live_alerts(conn, stories, [n.rule_id for n in needs]),
        alerted=_alerted(conn, [n.rule_id for n in needs], [item.id for item in updated]),
        digests=digests,
        item_stories=_item_stories(conn, {i for d in digests for i in d.alert.item_ids}),
        throttled=_throttled(conn, {w for n in needs for w in n.throttles}),
        held_back=_held_back(conn, {c for n in needs for c in n.channels}),
        volume_last=_volume_last(conn, volume),
        arming=_arming(conn, volume),
        mutes=_mutes(conn),
    )


@store_call
def read_volume_history(
    store: Store, starts: Mapping[str, datetime]
) -> dict[str, tuple[VolumeMatch, ...]]:
    """Each volume rule's matches recorded at or after its start, with each item's feed,
    oldest first: one range of the ``matches_rule`` index per rule."""
    history: dict[str, tuple[VolumeMatch, ...]] = {}
    for rule, since in starts.items():
        rows = store.db.conn.execute(
            "SELECT matches.item_id, items.feed_id, matches.matched_at FROM matches"
            " JOIN items ON items.id = matches.item_id"
            " WHERE matches.rule_id = ? AND matches.matched_at >= ?"
            " ORDER BY matches.matched_at, matches.id",
            [rule, to_text(since)],
        )
        history[rule] = tuple(VolumeMatch(i, f, required_time(at)) for i, f, at in rows)
    return history


@store_call
def read_hashes(store: Store, feed_id: int, guids: Sequence[str]) -> dict[str, str]:
    """guid -> content hash of the feed's stored items among ``guids``."""
    rows = store.db.conn.execute(
        "SELECT guid, content_hash FROM items WHERE feed_id = ?"
        " AND guid IN (SELECT value FROM json_each(?))",
        [feed_id, _json(guids)],
    )
    return {guid: digest for guid, digest in rows}


@store_call
def known_links(
    store: Store, feed_ids: Sequence[int], per_feed: int
) -> dict[int, dict[str, str | None]]:
    """feed id -> guid -> link of each feed's ``per_feed`` newest stored items (full_text:
    what its fetcher must not fetch again). Feeds without items map to an empty dict."""
    found: dict[int, dict[str, str | None]] = {feed_id: {} for feed_id in feed_ids}
    if not feed_ids:
        return found
    rows = store.db.conn.execute(
        "SELECT feed_id, guid, link FROM ("
        " SELECT feed_id, guid, link,"
        "  row_number() OVER (PARTITION BY feed_id ORDER BY id DESC) AS newest"
        " FROM items WHERE feed_id IN (SELECT value FROM json_each(?))"
        ") WHERE newest <= ?",
        [_json(feed_ids), per_feed],
    )
    for feed_id, guid, link in rows:
        found[feed_id][guid] = link
    return found


@store_call
def read_articles(store: Store, feed_id: int, guids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """guid -> (content hash, article text) of the feed's stored items among ``guids`` that
    have an article."""
    rows = store.db.conn.execute(
        "SELECT guid, content_hash, article_text FROM items WHERE feed_id = ?"
        " AND article_text IS NOT NULL AND guid IN (SELECT value FROM json_each(?))",
        [feed_id, _json(guids)],
    )
    return {guid: (digest, text) for guid, digest, text in rows}


@store_call
def read_feeds(store: Store, feed_ids: Sequence[int]) -> dict[int, FeedState]:
    """The feeds' rows by id (the 304s of a batch are decided on them together)."""
    rows = store.db.query(
        "SELECT * FROM feeds WHERE id IN (SELECT value FROM json_each(?))",
        [encode_json(list(feed_ids))],
    )
    return {row["id"]: feed_from_row(row) for row in rows}


def _is_changed(ref: ItemRef, known: Mapping[str, KnownItem]) -> bool:
    stored = known.get(ref.guid)
    return stored is None or stored.content_hash != ref.content_hash


def _json(values: Iterable[Any]) -> str:
    return encode_json(list(values))


def _next_ids(conn: sqlite3.Connection) -> tuple[int, int, int]:
    """The ids SQLite would give the next item, match and alert."""
    row = conn.execute(
        "SELECT (SELECT coalesce(max(id), 0) FROM items),"
        " (SELECT coalesce(max(id), 0) FROM matches), (SELECT coalesce(max(id), 0) FROM alerts)"
    ).fetchone()
    return int(row[0]) + 1, int(row[1]) + 1, int(row[2]) + 1


def _known_items(conn: sqlite3.Connection, feed_id: int, guids: list[str]) -> dict[str, KnownItem]:
    rows = conn.execute(
        "SELECT guid, id, content_hash, coalesce(story_id, id), first_seen_at FROM items"
        " WHERE feed_id = ? AND guid IN (SELECT value FROM json_each(?))",
        [feed_id, _json(guids)],
    )
    return {
        guid: KnownItem(int(item_id), digest, int(story), required_time(seen))
        for guid, item_id, digest, story, seen in rows
    }


def _story_keys(conn: sqlite3.Connection, keys: set[StoryKey]) -> dict[StoryKey, StoryRef]:
    if not keys:
        return {}
    rows = conn.execute(
        "SELECT kind, key, story_id, first_at FROM _story_keys"
        " WHERE (kind, key) IN (SELECT json_extract(value, '$[0]'),"
        " json_extract(value, '$[1]') FROM json_each(?))",
        [_json(list(key) for key in keys)],
    )
    return {(kind, key): StoryRef(int(story), required_time(at)) for kind, key, story, at in rows}


def _first_seen(conn: sqlite3.Connection, stories: set[int]) -> dict[int, datetime]:
    """When the first item of each story (whose id it bears) was first seen, if it is kept."""
    rows = conn.execute(
        "SELECT id, first_seen_at FROM items WHERE id IN (SELECT value FROM json_each(?))",
        [_json(stories)],
    )
    return {int(item_id): required_time(seen) for item_id, seen in rows}


_ALERT = "SELECT alerts.*, m.kind AS meta_kind, m.story_id AS meta_story FROM"


def _outbox_alerts(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[OutboxAlert]:
    cursor = conn.execute(sql, list(params))
    names = [d[0] for d in cursor.description]
    found = []
    for values in cursor:
        row = dict(zip(names, values, strict=True))
        found.append(OutboxAlert(alert_from_row(row), row["meta_kind"], row["meta_story"]))
    return found


def _live_alerts(
    conn: sqlite3.Connection, stories: set[int], rule_ids: list[str]
) -> tuple[OutboxAlert, ...]:
    """The live match alerts of these stories for these rules (``_alert_meta_story``)."""
    return tuple(
        _outbox_alerts(
            conn,
            f"{_ALERT} _alert_meta m JOIN alerts ON alerts.id = m.alert_id"
            " WHERE m.story_id IN (SELECT value FROM json_each(?)) AND m.live = 1"
            " AND m.kind = 'match' AND m.rule_id IN (SELECT value FROM json_each(?))"
            " ORDER BY m.alert_id",
            [_json(stories), _json(rule_ids)],
        )
    )


def _alerted(
    conn: sqlite3.Connection, rule_ids: list[str], item_ids: list[int]
) -> frozenset[tuple[str, str, int]]:
    """(rule, channel, item) for the changed items an alert of these rules lists that is not
    suppressed, was held back by max_alerts, or is a duplicate of one sent."""
    if not item_ids:
        return frozenset()
    rows = conn.execute(
        "SELECT DISTINCT alerts.rule_id, alerts.channel, j.value FROM alerts"
        " CROSS JOIN json_each(alerts.item_ids) j"
        " WHERE alerts.rule_id IN (SELECT value FROM json_each(?))"
        " AND j.value IN (SELECT value FROM json_each(?))"
        " AND (alerts.status != 'suppressed' OR alerts.reason LIKE 'duplicate of alert %'"
        "   OR EXISTS (SELECT 1 FROM _held_back h WHERE h.alert_id = alerts.id))",
        [_json(rule_ids), _json(item_ids)],
    )
    return frozenset((rule, channel, int(item)) for rule, channel, item in rows)


def _digests(
    conn: sqlite3.Connection, needs: list[RuleNeeds], began: datetime
) -> tuple[OutboxAlert, ...]:
    """The live digests of these rules that may hold one of the poll's stories: created at
    most one digest interval before the earliest of them began, or still pending. Served by
    the ``alerts_rule`` and ``alerts_pending`` indexes, so it does not grow with history."""
    wanted = [
        [n.rule_id, to_text(began - timedelta(seconds=n.digest_s))] for n in needs if n.digest_s
    ]
    if not wanted:
        return ()
    return tuple(
        _outbox_alerts(
            conn,
            "WITH wanted(rule, since) AS (SELECT json_extract(value, '$[0]'),"
            " json_extract(value, '$[1]') FROM json_each(?))"
            f" {_ALERT} (SELECT a.id FROM wanted CROSS JOIN alerts a"
            "   ON a.rule_id = wanted.rule AND a.created_at > wanted.since"
            " UNION SELECT a.id FROM wanted CROSS JOIN alerts a"
            "   ON a.status = 'pending' AND a.rule_id = wanted.rule) AS recent"
            " CROSS JOIN alerts ON alerts.id = recent.id"
            " CROSS JOIN _alert_meta m ON m.alert_id = alerts.id"
            " WHERE m.kind = 'digest' AND m.live = 1 ORDER BY alerts.id",
            [_json(wanted)],
        )
    )


def _item_stories(conn: sqlite3.Connection, item_ids: set[int]) -> dict[int, int]:
    if not item_ids:
        return {}
    rows = conn.execute(
        "SELECT id, coalesce(story_id, id) FROM items WHERE id IN (SELECT value FROM json_each(?))",
        [_json(item_ids)],
    )
    return {int(item_id): int(story) for item_id, story in rows}


def _throttled(conn: sqlite3.Connection, windows: set[ThrottleWindow]) -> dict[ThrottleWindow, int]:
    """Alerts queued (not suppressed, health alerts aside) in each cap's window, counted up
    to its cap: one look-up per cap, through the ``alerts_channel`` index."""
    counts: dict[ThrottleWindow, int] = {}
    for window in windows:
        row = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM alerts WHERE channel = ?"
            " AND created_at > ? AND status != 'suppressed' AND rule_id != 'health'"
            " AND (? IS NULL OR rule_id = ?) LIMIT ?)",
            [window.channel, to_text(window.since), window.rule_id, window.rule_id, window.cap],
        ).fetchone()
        counts[window] = int(row[0])
    return counts


def _held_back(conn: sqlite3.Connection, channels: set[str]) -> dict[str, tuple[int, ...]]:
    """The alerts max_alerts held back on these channels and no later alert summarised yet."""
    rows = conn.execute(
        "SELECT channel, alert_id FROM _held_back WHERE summarised_in IS NULL"
        " AND channel IN (SELECT value FROM json_each(?)) ORDER BY alert_id",
        [_json(channels)],
    )
    held: dict[str, list[int]] = {}
    for channel, alert_id in rows:
        held.setdefault(channel, []).append(int(alert_id))
    return {channel: tuple(ids) for channel, ids in held.items()}


def _volume_last(conn: sqlite3.Connection, pairs: list[Pair]) -> dict[Pair, OutboxAlert]:
    """The latest live volume alert of each (rule, channel)."""
    if not pairs:
        return {}
    found = _outbox_alerts(
        conn,
        f"{_ALERT} (SELECT max(alert_id) AS id FROM _alert_meta WHERE kind = 'threshold'"
        " AND live = 1 AND rule_id IN (SELECT json_extract(value, '$[0]') FROM json_each(?))"
        " GROUP BY rule_id, channel) AS latest"
        " CROSS JOIN alerts ON alerts.id = latest.id"
        " CROSS JOIN _alert_meta m ON m.alert_id = alerts.id",
        [_json(list(pair) for pair in pairs)],
    )
    wanted = set(pairs)
    return {
        (a.alert.rule_id, a.alert.channel): a
        for a in found
        if (a.alert.rule_id, a.alert.channel) in wanted
    }


def _arming(conn: sqlite3.Connection, pairs: list[Pair]) -> dict[Pair, ArmState]:
    """What was saved about each volume rule re-arming on each channel."""
    if not pairs:
        return {}
    rows = conn.execute(
        "SELECT rule_id, channel, fired, checked, armed FROM _volume_arming"
        " WHERE rule_id IN (SELECT json_extract(value, '$[0]') FROM json_each(?))",
        [_json(list(pair) for pair in pairs)],
    )
    wanted = set(pairs)
    return {
        (rule, channel): ArmState(from_text(fired), from_text(checked), bool(armed))
        for rule, channel, fired, checked, armed in rows
        if (rule, channel) in wanted
    }


def _mutes(conn: sqlite3.Connection) -> tuple[Mute, ...]:
    """Every stored mute, ended ones included (decide/policy.py says which still hold)."""
    rows = conn.execute("SELECT kind, name, until FROM _mutes ORDER BY kind, name")
    return tuple(Mute(kind, name, until) for kind, name, text in rows if (until := from_text(text)))
