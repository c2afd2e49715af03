"""SQL for the small internal state: the instance and its heartbeat, mutes, volume-rule
arming, each feed's Retry-After hold and quiet report, health alert details; decides nothing.

Each kind has its table (``_instance``, ``_mutes``, ``_volume_arming``, ``_feed_health``,
``_health_alerts``; migration 0009 made them from the old ``_state`` rows). Functions take
the :class:`~watcher.store.Store` and run in the caller's transaction; times are passed in.
What the state means is decided elsewhere: decide/policy.py (mutes), decide/threshold.py
(arming), decide/schedule.py and decide/health.py (holds, quiet feeds, health events).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from watcher.store.errors import store_call
from watcher.store.outbox import add_alert
from watcher.store.rows import from_text, to_text, to_text_or_none
from watcher.types import (
    HEALTH_KIND,
    HEALTH_RULE_ID,
    AlertStatus,
    ArmState,
    HealthEvent,
    HealthKind,
    Mute,
)

if TYPE_CHECKING:
    from watcher.store import Store


# --- the instance and its heartbeat --------------------------------------------------------


@store_call
def instance_id(store: Store) -> str:
    """A random id made once per database (for stable Message-IDs and alert ids)."""
    return str(store.scalar("SELECT instance_id FROM _instance WHERE id = 1"))


@store_call
def write_heartbeat(store: Store, now: datetime, pid: int | None = None) -> None:
    """Say the daemon (process ``pid``, by default this one) is alive at ``now``."""
    store.db.execute(
        "UPDATE _instance SET heartbeat_at = ?, heartbeat_pid = ? WHERE id = 1",
        [to_text(now), pid or os.getpid()],
    )


@store_call
def read_heartbeat(store: Store) -> datetime | None:
    """When the daemon last wrote its heartbeat, or None if it never did."""
    row = store.db.execute("SELECT heartbeat_at FROM _instance WHERE id = 1").fetchone()
    return None if row is None else from_text(row[0])


# --- mutes ---------------------------------------------------------------------------------


@store_call
def read_mutes(store: Store) -> list[Mute]:
    """Every stored mute, ended ones included (decide/policy.py says which still hold)."""
    rows = store.db.execute("SELECT kind, name, until FROM _mutes ORDER BY kind, name")
    return [Mute(kind, name, until) for kind, name, text in rows if (until := from_text(text))]


@store_call
def save_mute(store: Store, mute: Mute, now: datetime) -> None:
    """Add or extend a mute; mutes that ended by ``now`` are cleared out."""
    with store.transaction():
        store.db.execute("DELETE FROM _mutes WHERE until <= ?", [to_text(now)])
        store.db.execute(
            "INSERT INTO _mutes (kind, name, until) VALUES (?, ?, ?)"
            " ON CONFLICT (kind, name) DO UPDATE SET until = excluded.until",
            [mute.kind, mute.name, to_text(mute.until)],
        )


@store_call
def delete_mutes(store: Store, mutes: Iterable[Mute]) -> None:
    with store.transaction():
        for mute in mutes:
            store.db.execute(
                "DELETE FROM _mutes WHERE kind = ? AND name = ?", [mute.kind, mute.name]
            )


# --- volume rules --------------------------------------------------------------------------


@store_call
def read_arming(store: Store, rule_id: str, channel: str) -> ArmState | None:
    """What was saved about the volume rule re-arming on the channel, if anything."""
    row = store.db.execute(
        "SELECT fired, checked, armed FROM _volume_arming WHERE rule_id = ? AND channel = ?",
        [rule_id, channel],
    ).fetchone()
    if row is None:
        return None
    return ArmState(from_text(row[0]), from_text(row[1]), bool(row[2]))


@store_call
def save_arming(store: Store, rule_id: str, channel: str, state: ArmState) -> None:
    store.db.execute(
        "INSERT INTO _volume_arming (rule_id, channel, fired, checked, armed)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (rule_id, channel) DO UPDATE SET"
        " fired = excluded.fired, checked = excluded.checked, armed = excluded.armed",
        [
            rule_id,
            channel,
            to_text_or_none(state.fired),
            to_text_or_none(state.checked),
            state.armed,
        ],
    )


# --- feed health: Retry-After holds and quiet reports --------------------------------------


@store_call
def retry_hold(store: Store, feed_id: int) -> datetime | None:
    """Until when a server's Retry-After keeps the feed from being polled, if at all."""
    row = store.db.execute(
        "SELECT retry_until FROM _feed_health WHERE feed_id = ?", [feed_id]
    ).fetchone()
    return None if row is None else from_text(row[0])


@store_call
def set_retry_hold(store: Store, feed_id: int, until: datetime | None) -> None:
    """Keep a feed from being polled before ``until`` (None lifts the hold)."""
    _set_feed_health(store, feed_id, "retry_until", to_text_or_none(until))


@store_call
def held_feed_ids(store: Store, now: datetime) -> set[int]:
    """Feeds a server's Retry-After still forbids polling at ``now``."""
    rows = store.db.execute(
        "SELECT feed_id FROM _feed_health WHERE retry_until > ?", [to_text(now)]
    )
    return {int(r[0]) for r in rows}


@store_call
def quiet_reported_for(store: Store, feed_id: int) -> datetime | None:
    """The newest-item time a quiet alert was raised for, if any."""
    row = store.db.execute(
        "SELECT quiet_reported_for FROM _feed_health WHERE feed_id = ?", [feed_id]
    ).fetchone()
    return None if row is None else from_text(row[0])


@store_call
def mark_quiet_reported(store: Store, feed_id: int, last_new_at: datetime) -> None:
    _set_feed_health(store, feed_id, "quiet_reported_for", to_text(last_new_at))


def _set_feed_health(store: Store, feed_id: int, column: str, value: str | None) -> None:
    store.db.execute(
        f"INSERT INTO _feed_health (feed_id, {column}) VALUES (?, ?)"
        f" ON CONFLICT (feed_id) DO UPDATE SET {column} = excluded.{column}",
        [feed_id, value],
    )


# --- health alerts -------------------------------------------------------------------------


@store_call
def add_health_alert(
    store: Store, event: HealthEvent, channels: Iterable[str], now: datetime
) -> list[int]:
    """Queue one pending health alert per channel, with the event kept for rendering."""
    ids: list[int] = []
    with store.transaction():
        for channel in channels:
            alert_id = add_alert(
                store,
                rule_id=HEALTH_RULE_ID,
                channel=channel,
                item_ids=[],
                status=AlertStatus.PENDING,
                now=now,
                reason=f"feed {event.feed}: {event.kind}",  # readable from SQL and `alerts`
                kind=HEALTH_KIND,
            )
            store.db.execute(
                "INSERT INTO _health_alerts (alert_id, feed, kind, detail, url)"
                " VALUES (?, ?, ?, ?, ?)",
                [alert_id, event.feed, str(event.kind), event.detail, event.url],
            )
            ids.append(alert_id)
    return ids


@store_call
def last_health_kind(store: Store, feed: str) -> HealthKind | None:
    """The kind of the newest health alert about ``feed`` (a feed's name, or a pseudo-feed
    such as ``scale.broker``), if any."""
    row = store.db.execute(
        "SELECT kind FROM _health_alerts WHERE feed = ? ORDER BY alert_id DESC LIMIT 1", [feed]
    ).fetchone()
    return HealthKind(row[0]) if row is not None and row[0] in set(HealthKind) else None


@store_call
def health_event(store: Store, alert_id: int) -> HealthEvent | None:
    """The event a health alert was raised for."""
    row = store.db.execute(
        "SELECT feed, kind, detail, url FROM _health_alerts WHERE alert_id = ?", [alert_id]
    ).fetchone()
    if row is None:
        return None
    kind = row[1] if row[1] in set(HealthKind) else HealthKind.FAILING
    return HealthEvent(feed=row[0], kind=HealthKind(kind), detail=row[2], url=row[3])
