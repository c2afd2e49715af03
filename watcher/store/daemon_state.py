"""Small daemon state kept in the ``_state`` table: heartbeat, Retry-After holds, quiet
reports and health alerts; and poll requests to a running daemon. Runs SQL on a Store;
decides nothing (see decide/health.py).

Keys: ``heartbeat``, ``retry_after:<feed id>``, ``quiet:<feed id>``,
``health_alert:<alert id>``. No schema change is needed: ``_state`` is a key/value table.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from watcher.exceptions import ConfigError
from watcher.store import RETRY_AFTER_KEY, Store
from watcher.store.rows import decode_json, from_text, to_text
from watcher.types import (
    HEALTH_KIND,
    HEALTH_RULE_ID,
    AlertStatus,
    FeedStatus,
    HealthEvent,
    HealthKind,
)

HEARTBEAT = "heartbeat"
_RETRY = RETRY_AFTER_KEY
_QUIET = "quiet:"
_HEALTH = "health_alert:"


# --- heartbeat -----------------------------------------------------------------------------


def write_heartbeat(store: Store, now: datetime, pid: int | None = None) -> None:
    store.set_state(HEARTBEAT, {"at": to_text(now), "pid": pid or os.getpid()})


def read_heartbeat(store: Store) -> datetime | None:
    """When the daemon last wrote its heartbeat, or None if it never did."""
    value = store.get_state(HEARTBEAT)
    if not isinstance(value, dict) or not isinstance(value.get("at"), str):
        return None
    return from_text(value["at"])


# --- Retry-After holds ---------------------------------------------------------------------


def set_retry_hold(store: Store, feed_id: int, until: datetime | None) -> None:
    """Keep a feed from being polled before ``until`` (None lifts the hold)."""
    if until is None:
        store.db.execute("DELETE FROM _state WHERE key = ?", [f"{_RETRY}{feed_id}"])
    else:
        store.set_state(f"{_RETRY}{feed_id}", to_text(until))


def held_feed_ids(store: Store, now: datetime) -> set[int]:
    """Feeds a server's Retry-After still forbids polling at ``now``."""
    rows = store.db.query(
        "SELECT key, value FROM _state WHERE key >= ? AND key < ?", [_RETRY, _RETRY[:-1] + ";"]
    )
    held: set[int] = set()
    for row in rows:
        value = decode_json(row["value"])
        until = from_text(value) if isinstance(value, str) else None
        if until is not None and until > now:
            held.add(int(row["key"][len(_RETRY) :]))
    return held


# --- poll requests ------------------------------------------------------------------------


@dataclass(frozen=True)
class PollRequest:
    """A feed the daemon was asked to poll; ``held_until`` when a Retry-After delays it."""

    feed: str
    held_until: datetime | None = None


def request_polls(store: Store, names: Sequence[str], now: datetime) -> list[PollRequest]:
    """Make the named feeds due at ``now`` (or when their Retry-After ends); the running
    daemon's watch job sees the earlier ``next_poll_at`` and polls them. ConfigError for
    a feed that does not exist or is disabled; nothing is changed then."""
    feeds = []
    for name in dict.fromkeys(names):
        feed = store.feed_by_name(name)
        if feed is None:
            raise ConfigError(f"no feed named {name!r}")
        if feed.last_status == FeedStatus.DISABLED:
            raise ConfigError(
                f"feed {name} is disabled ({feed.disabled_reason}); "
                f"`watcher feeds enable {name}` polls it again"
            )
        feeds.append(feed)
    requests = []
    with store.transaction():
        for feed in feeds:
            hold = store.retry_hold(feed.id)
            held = hold if hold is not None and hold > now else None
            store.db.execute(
                "UPDATE feeds SET next_poll_at = ? WHERE id = ?", [to_text(held or now), feed.id]
            )
            requests.append(PollRequest(feed.name, held))
    return requests


# --- quiet feeds ---------------------------------------------------------------------------


def last_new_item_times(store: Store) -> dict[int, datetime]:
    """feed id -> when its newest item was first seen (feeds without items are absent)."""
    rows = store.db.query("SELECT feed_id, max(first_seen_at) AS at FROM items GROUP BY feed_id")
    found = {int(r["feed_id"]): from_text(r["at"]) for r in rows}
    return {k: v for k, v in found.items() if v is not None}


def quiet_reported_for(store: Store, feed_id: int) -> datetime | None:
    """The newest-item time a quiet alert was raised for, if any."""
    value = store.get_state(f"{_QUIET}{feed_id}")
    return from_text(value) if isinstance(value, str) else None


def mark_quiet_reported(store: Store, feed_id: int, last_new_at: datetime) -> None:
    store.set_state(f"{_QUIET}{feed_id}", to_text(last_new_at))


# --- health alerts -------------------------------------------------------------------------


def add_health_alert(
    store: Store, event: HealthEvent, channels: Iterable[str], now: datetime
) -> list[int]:
    """Queue one pending health alert per channel, with the event kept for rendering."""
    ids: list[int] = []
    with store.transaction():
        for channel in channels:
            alert_id = store.add_alert(
                rule_id=HEALTH_RULE_ID,
                channel=channel,
                item_ids=[],
                status=AlertStatus.PENDING,
                now=now,
                reason=f"feed {event.feed}: {event.kind}",  # readable from SQL and `alerts`
                kind=HEALTH_KIND,
            )
            store.set_state(
                f"{_HEALTH}{alert_id}",
                {
                    "feed": event.feed,
                    "kind": str(event.kind),
                    "detail": event.detail,
                    "url": event.url,
                },
            )
            ids.append(alert_id)
    return ids


def health_event(store: Store, alert_id: int) -> HealthEvent | None:
    """The event a health alert was raised for."""
    value = store.get_state(f"{_HEALTH}{alert_id}")
    if not isinstance(value, dict):
        return None
    return HealthEvent(
        feed=str(value.get("feed", "")),
        kind=HealthKind(value.get("kind", "failing")),
        detail=str(value.get("detail", "")),
        url=str(value.get("url", "")),
    )
