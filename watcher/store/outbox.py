"""SQL for alert policy and delivery: digests, throttles, thresholds, retries; decides nothing.

Functions take a :class:`~watcher.store.Store` and use its connection, so they run in
the caller's transaction. Times are passed in; nothing here reads the clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from watcher.store import Store
from watcher.store.rows import alert_from_row, encode_json, from_text, to_text
from watcher.types import OVER_FEED_LIMIT, Alert

THROTTLED = "throttled by max_alerts"
SUMMARISED = "throttled by max_alerts; summarised in alert "


def _alerts(store: Store, sql: str, params: Sequence[Any] | dict[str, Any]) -> list[Alert]:
    bound = params if isinstance(params, dict) else list(params)
    return [alert_from_row(r) for r in store.db.query(sql, bound)]


# --- deadlines and retries ---------------------------------------------------------------


def retry_from(store: Store, alert_id: int) -> datetime | None:
    """When the alert's give-up deadline starts, if not at its creation."""
    row = store.db.execute(
        "SELECT retry_from FROM _alert_meta WHERE alert_id = ?", [alert_id]
    ).fetchone()
    return None if row is None else from_text(row[0])


def set_retry_from(store: Store, alert_id: int, at: datetime) -> None:
    store.db.execute(
        "UPDATE _alert_meta SET retry_from = ? WHERE alert_id = ?", [to_text(at), alert_id]
    )


def requeue_failed(store: Store, alert_ids: Sequence[int] | None, now: datetime) -> list[int]:
    """Make failed alerts (all, or those listed) pending again with a fresh deadline."""
    with store.transaction():
        ids = [
            int(r["id"])
            for r in store.db.query(
                "SELECT id FROM alerts WHERE status = 'failed'"
                " AND (:ids IS NULL OR id IN (SELECT value FROM json_each(:ids))) ORDER BY id",
                {"ids": None if alert_ids is None else encode_json(list(alert_ids))},
            )
        ]
        for alert_id in ids:
            store.db.execute(
                "UPDATE alerts SET status = 'pending', next_attempt_at = NULL WHERE id = ?",
                [alert_id],
            )
            set_retry_from(store, alert_id, now)
    return ids


def item_alerted(store: Store, rule_id: str, channel: str, item_id: int) -> bool:
    """Whether the item already alerted for the rule on the channel.

    That is: an alert lists it that is not suppressed, or that was held back by
    ``max_alerts`` (it is summarised in a later alert), or that is a duplicate of one sent.
    """
    row = store.db.execute(
        "SELECT 1 FROM alerts WHERE rule_id = ? AND channel = ?"
        " AND (status != 'suppressed' OR reason LIKE 'duplicate of alert %'"
        "   OR EXISTS (SELECT 1 FROM _held_back h WHERE h.alert_id = alerts.id))"
        " AND EXISTS (SELECT 1 FROM json_each(alerts.item_ids) j WHERE j.value = ?) LIMIT 1",
        [rule_id, channel, item_id],
    ).fetchone()
    return row is not None


# --- digests -----------------------------------------------------------------------------


def open_digest(store: Store, rule_id: str, channel: str, now: datetime) -> Alert | None:
    """The digest of this rule and channel still collecting items (not yet due)."""
    rows = _alerts(
        store,
        "SELECT alerts.* FROM alerts JOIN _alert_meta m ON m.alert_id = alerts.id"
        " WHERE m.kind = 'digest' AND m.rule_id = ? AND m.channel = ?"
        " AND alerts.status = 'pending' AND alerts.attempts = 0"
        " AND alerts.next_attempt_at > ? ORDER BY alerts.id DESC LIMIT 1",
        [rule_id, channel, to_text(now)],
    )
    return rows[0] if rows else None


def alert_with_story(
    store: Store, rule_id: str, channel: str, story_id: int, kind: str, since: datetime
) -> Alert | None:
    """A live alert of ``kind`` for this rule and channel holding an item of the story.

    Only alerts still pending or created after ``since`` are looked at (the caller passes
    one digest interval before the story began: no older digest can hold its items). They
    come first (CROSS JOIN keeps that order), from the ``alerts_rule`` and ``alerts_reason``
    indexes, so the lookup does not grow with the rule's history.
    """
    rows = _alerts(
        store,
        "SELECT alerts.* FROM (SELECT id FROM alerts WHERE rule_id = :rule AND created_at > :since"
        " UNION SELECT id FROM alerts WHERE status = 'pending' AND rule_id = :rule) AS recent"
        " CROSS JOIN alerts ON alerts.id = recent.id"
        " CROSS JOIN _alert_meta m ON m.alert_id = alerts.id"
        " WHERE m.kind = :kind AND m.rule_id = :rule AND m.channel = :channel AND m.live = 1"
        " AND EXISTS (SELECT 1 FROM json_each(alerts.item_ids) j JOIN items i ON i.id = j.value"
        " WHERE i.story_id = :story) ORDER BY alerts.id LIMIT 1",
        {
            "rule": rule_id,
            "since": to_text(since),
            "kind": kind,
            "channel": channel,
            "story": story_id,
        },
    )
    return rows[0] if rows else None


def story_started_at(store: Store, story_id: int) -> datetime | None:
    """When the story's first item was first seen (None if that item is gone)."""
    row = store.db.execute("SELECT first_seen_at FROM items WHERE id = ?", [story_id]).fetchone()
    return None if row is None else from_text(row[0])


# --- throttles ---------------------------------------------------------------------------


def over_limit_alerts(
    store: Store, feed_id: int, at: datetime, channel: str | None = None
) -> list[Alert]:
    """The alerts suppressed ``over feed limit`` at ``at`` for items of the feed (on one
    channel, or all), oldest first: the matches a poll of the feed held over its limit."""
    return _alerts(
        store,
        "SELECT * FROM alerts WHERE status = 'suppressed' AND reason = :reason"
        " AND created_at = :at AND (:channel IS NULL OR channel = :channel)"
        " AND EXISTS (SELECT 1 FROM json_each(alerts.item_ids) j JOIN items i"
        " ON i.id = j.value WHERE i.feed_id = :feed) ORDER BY id",
        {"reason": OVER_FEED_LIMIT, "at": to_text(at), "channel": channel, "feed": feed_id},
    )


def count_alerts_since(
    store: Store, channel: str, since: datetime, rule_id: str | None = None
) -> int:
    """Alerts queued to be sent (not suppressed) on a channel since ``since``; health excluded."""
    return int(
        store.db.execute(
            "SELECT count(*) FROM alerts WHERE channel = ? AND status != 'suppressed'"
            " AND created_at > ? AND rule_id != 'health' AND (? IS NULL OR rule_id = ?)",
            [channel, to_text(since), rule_id, rule_id],
        ).fetchone()[0]
    )


def hold_back(store: Store, alert_id: int, channel: str) -> None:
    """Record that ``max_alerts`` held this (suppressed) alert back on the channel; the
    next alert allowed there carries its items as a summary."""
    store.db.execute(
        "INSERT OR IGNORE INTO _held_back (alert_id, channel) VALUES (?, ?)", [alert_id, channel]
    )


def held_back(store: Store, channel: str) -> list[Alert]:
    """Alerts of a channel held back and not yet summarised in a later alert, oldest first."""
    return _alerts(
        store,
        "SELECT alerts.* FROM _held_back h JOIN alerts ON alerts.id = h.alert_id"
        " WHERE h.channel = ? AND h.summarised_in IS NULL ORDER BY h.alert_id",
        [channel],
    )


def mark_summarised(store: Store, alert_ids: Sequence[int], into: int) -> None:
    """The alert ``into`` carries these held-back alerts; their reason says so."""
    for alert_id in alert_ids:
        store.db.execute(
            "UPDATE _held_back SET summarised_in = ? WHERE alert_id = ?", [into, alert_id]
        )
        store.db.execute(
            "UPDATE alerts SET reason = ? WHERE id = ?", [f"{SUMMARISED}{into}", alert_id]
        )


def summarised_in(store: Store, alert_id: int) -> list[Alert]:
    """The held-back alerts whose items the given alert carries as a summary."""
    return _alerts(
        store,
        "SELECT alerts.* FROM _held_back h JOIN alerts ON alerts.id = h.alert_id"
        " WHERE h.summarised_in = ? ORDER BY h.alert_id",
        [alert_id],
    )


# --- volume rules --------------------------------------------------------------------------


def last_alert_of_kind(store: Store, rule_id: str, channel: str, kind: str) -> Alert | None:
    rows = _alerts(
        store,
        "SELECT alerts.* FROM alerts JOIN _alert_meta m ON m.alert_id = alerts.id"
        " WHERE m.kind = ? AND m.rule_id = ? AND m.channel = ? AND m.live = 1"
        " ORDER BY alerts.id DESC LIMIT 1",
        [kind, rule_id, channel],
    )
    return rows[0] if rows else None
