"""SQL of the outbox, the ``alerts`` table and its ``_alert_meta`` and ``_held_back``
rows: an alert row made by hand (health), delivery outcomes, what an alert shows (the
evidence of its matches, the held-back alerts it summarises), retries; decides nothing.
A poll's alert rows are read and written by snapshot.py and apply.py.

Functions take a :class:`~watcher.store.Store` and use its connection, so they run in
the caller's transaction. Times are passed in; nothing here reads the clock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from watcher.exceptions import StoreError
from watcher.store import Store
from watcher.store.errors import store_call
from watcher.store.rows import (
    Row,
    alert_from_row,
    encode_json,
    from_text,
    to_text,
    to_text_or_none,
)
from watcher.types import OVER_FEED_LIMIT, Alert, AlertStatus


def _alerts(store: Store, sql: str, params: Sequence[Any] | dict[str, Any]) -> list[Alert]:
    bound = params if isinstance(params, dict) else list(params)
    return [alert_from_row(r) for r in store.db.query(sql, bound)]


# --- alert rows ------------------------------------------------------------------------


@store_call
def add_alert(
    store: Store,
    *,
    rule_id: str,
    channel: str,
    item_ids: Sequence[int],
    status: AlertStatus,
    now: datetime,
    reason: str | None = None,
    kind: str = "match",
    story_id: int | None = None,
    next_attempt_at: datetime | None = None,
) -> int:
    """Queue an alert row; StoreError when a live alert with the same key exists.

    The key is (rule, channel, story, kind) among alerts that are not suppressed; an
    alert without a story (a digest, a health alert) has no key.
    """
    with store.transaction():
        cursor = store.db.execute(
            "INSERT INTO alerts (rule_id, channel, item_ids, status, reason, created_at,"
            " next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                rule_id,
                channel,
                encode_json(list(item_ids)),
                str(status),
                reason,
                to_text(now),
                to_text_or_none(next_attempt_at),
            ],
        )
        alert_id = int(cursor.lastrowid or 0)
        _add_alert_meta(store, alert_id, rule_id, channel, status, kind, story_id)
    return alert_id


def _add_alert_meta(
    store: Store,
    alert_id: int,
    rule_id: str,
    channel: str,
    status: AlertStatus,
    kind: str,
    story_id: int | None,
) -> None:
    live = None if status == AlertStatus.SUPPRESSED else 1
    try:
        store.db.execute(
            "INSERT INTO _alert_meta (alert_id, kind, story_id, rule_id, channel, live)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [alert_id, kind, story_id, rule_id, channel, live],
        )
    except sqlite3.IntegrityError as e:
        raise StoreError(
            f"a live {kind} alert already exists for rule {rule_id}, channel {channel},"
            f" story {story_id}"
        ) from e


@store_call
def get_alert(store: Store, alert_id: int) -> Alert:
    return alert_from_row(_alert_row(store, alert_id))


def _alert_row(store: Store, alert_id: int) -> Row:
    row = store.one("SELECT * FROM alerts WHERE id = ?", [alert_id])
    if row is None:
        raise StoreError(f"no alert with id {alert_id}")
    return row


@store_call
def alert_kind(store: Store, alert_id: int) -> str:
    """match | digest | threshold | health | summary ('match' for an alert without metadata)."""
    kind = store.scalar("SELECT kind FROM _alert_meta WHERE alert_id = ?", [alert_id])
    return str(kind) if kind else "match"


@store_call
def due_alerts(store: Store, now: datetime) -> list[Alert]:
    """Pending alerts whose next attempt is unset or not after ``now``, oldest first."""
    rows = store.db.query(
        "SELECT * FROM alerts WHERE status = 'pending'"
        " AND (next_attempt_at IS NULL OR next_attempt_at <= ?) ORDER BY created_at, id",
        [to_text(now)],
    )
    return [alert_from_row(r) for r in rows]


@store_call
def mark_sent(store: Store, alert_id: int, now: datetime) -> None:
    _mark(store, alert_id, AlertStatus.SENT, None, None, now, sent=True)


@store_call
def mark_retry(
    store: Store, alert_id: int, error: str, next_attempt_at: datetime, now: datetime
) -> None:
    """A transient failure: stay pending until ``next_attempt_at``."""
    _mark(store, alert_id, AlertStatus.PENDING, error, next_attempt_at, now)


@store_call
def mark_failed(store: Store, alert_id: int, error: str, now: datetime) -> None:
    _mark(store, alert_id, AlertStatus.FAILED, error, None, now)


def _mark(
    store: Store,
    alert_id: int,
    status: AlertStatus,
    error: str | None,
    next_attempt_at: datetime | None,
    now: datetime,
    *,
    sent: bool = False,
) -> None:
    """Record one delivery attempt: its outcome, error and when to try again."""
    with store.transaction():
        store.db.execute(
            "UPDATE alerts SET status = ?, attempts = attempts + 1,"
            " last_error = coalesce(?, last_error), next_attempt_at = ?,"
            " sent_at = CASE WHEN ? THEN ? ELSE sent_at END WHERE id = ?",
            [
                str(status),
                error,
                to_text_or_none(next_attempt_at),
                sent,
                to_text(now),
                alert_id,
            ],
        )
        store.db.execute(
            "UPDATE _alert_meta SET last_attempt_at = ? WHERE alert_id = ?",
            [to_text(now), alert_id],
        )


@store_call
def list_alerts(
    store: Store,
    status: AlertStatus | None = None,
    rule_id: str | None = None,
    limit: int | None = None,
) -> list[Alert]:
    """Alerts, newest first, optionally of one status and one rule."""
    rows = store.db.query(
        "SELECT * FROM alerts WHERE (:status IS NULL OR status = :status)"
        " AND (:rule IS NULL OR rule_id = :rule) ORDER BY created_at DESC, id DESC"
        " LIMIT :limit",
        {
            "status": None if status is None else str(status),
            "rule": rule_id,
            "limit": -1 if limit is None else limit,
        },
    )
    return [alert_from_row(r) for r in rows]


# --- deadlines and retries ---------------------------------------------------------------


@store_call
def retry_from(store: Store, alert_id: int) -> datetime | None:
    """When the alert's give-up deadline starts, if not at its creation."""
    row = store.db.execute(
        "SELECT retry_from FROM _alert_meta WHERE alert_id = ?", [alert_id]
    ).fetchone()
    return None if row is None else from_text(row[0])


@store_call
def set_retry_from(store: Store, alert_id: int, at: datetime) -> None:
    store.db.execute(
        "UPDATE _alert_meta SET retry_from = ? WHERE alert_id = ?", [to_text(at), alert_id]
    )


@store_call
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


@store_call
def summarised_in(store: Store, alert_id: int) -> list[Alert]:
    """The held-back alerts whose items the given alert carries as a summary."""
    return _alerts(
        store,
        "SELECT alerts.* FROM _held_back h JOIN alerts ON alerts.id = h.alert_id"
        " WHERE h.summarised_in = ? ORDER BY h.alert_id",
        [alert_id],
    )


@store_call
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
