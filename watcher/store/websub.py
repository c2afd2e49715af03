"""SQL for WebSub subscriptions (``_websub``): what each feed offers, what was asked of its
hub and granted; decides nothing (decide/websub.py does).

One row per feed that has named a hub, kept when the feed is deleted (``feed_id`` NULL)
until its subscription is undone. Functions take the :class:`~watcher.store.Store` and run
in the caller's transaction; times are passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from watcher.store.errors import store_call
from watcher.store.rows import from_text, to_text, to_text_or_none
from watcher.types import Mode, Subscription, SubState

if TYPE_CHECKING:
    from watcher.store import Store

_SELECT = (
    "SELECT w.*, f.name AS feed_name,"
    " f.id IS NOT NULL AND coalesce(f.last_status, '') != 'disabled' AS feed_active"
    " FROM _websub w LEFT JOIN feeds f ON f.id = w.feed_id"
)


def _subscription(row: Any) -> Subscription:
    return Subscription(
        id=row["id"],
        feed_id=row["feed_id"],
        feed_name=row["feed_name"],
        feed_active=bool(row["feed_active"]),
        hub=row["hub"],
        topic=row["topic"],
        state=SubState(row["state"]),
        pending=Mode(row["pending"]) if row["pending"] else None,
        sub_hub=row["sub_hub"],
        sub_topic=row["sub_topic"],
        token=row["token"],
        secret=row["secret"],
        lease_until=from_text(row["lease_until"]),
        requested_at=from_text(row["requested_at"]),
        retry_at=from_text(row["retry_at"]),
        failures=row["failures"],
        last_error=row["last_error"],
        last_push_at=from_text(row["last_push_at"]),
        pushes=row["pushes"],
        rejected=row["rejected"],
    )


@store_call
def record_offer(
    store: Store, feed_id: int, hub: str | None, topic: str | None, now: datetime
) -> None:
    """Keep the hub and topic a feed names (None: it names none), writing only a change."""
    row = store.db.execute("SELECT hub, topic FROM _websub WHERE feed_id = ?", [feed_id]).fetchone()
    if row is None:
        if hub is None:
            return
        store.db.execute(
            "INSERT INTO _websub (feed_id, hub, topic, found_at) VALUES (?, ?, ?, ?)",
            [feed_id, hub, topic, to_text(now)],
        )
    elif (row[0], row[1]) != (hub, topic):
        store.db.execute(
            "UPDATE _websub SET hub = ?, topic = ?, found_at = ? WHERE feed_id = ?",
            [hub, topic, to_text(now), feed_id],
        )


@store_call
def list_subscriptions(store: Store) -> list[Subscription]:
    return [_subscription(r) for r in store.db.query(_SELECT + " ORDER BY w.id")]


@store_call
def subscription_for_feed(store: Store, feed_id: int) -> Subscription | None:
    rows = list(store.db.query(_SELECT + " WHERE w.feed_id = ?", [feed_id]))
    return _subscription(rows[0]) if rows else None


@store_call
def subscription_by_token(store: Store, token: str) -> Subscription | None:
    rows = list(store.db.query(_SELECT + " WHERE w.token = ?", [token]))
    return _subscription(rows[0]) if rows else None


@store_call
def mark_requested(
    store: Store,
    sub_id: int,
    mode: Mode,
    hub: str,
    topic: str,
    token: str,
    secret: str,
    now: datetime,
) -> None:
    """The hub is being asked for ``mode`` with this callback token and secret."""
    store.db.execute(
        "UPDATE _websub SET pending = ?, sub_hub = ?, sub_topic = ?, token = ?, secret = ?,"
        " requested_at = ?, retry_at = NULL WHERE id = ?",
        [mode.value, hub, topic, token, secret, to_text(now), sub_id],
    )


@store_call
def mark_failed(
    store: Store, sub_id: int, token: str | None, error: str, retry_at: datetime
) -> None:
    """A request failed (or was never checked): ask again at ``retry_at``. A check that
    arrived meanwhile (the pending mark is gone, or the token changed) stands."""
    store.db.execute(
        "UPDATE _websub SET pending = NULL, failures = failures + 1, last_error = ?,"
        " retry_at = ? WHERE id = ? AND pending IS NOT NULL AND token IS ?",
        [error, to_text(retry_at), sub_id, token],
    )


@store_call
def mark_verified(store: Store, sub_id: int, mode: Mode, lease_until: datetime | None) -> None:
    """The hub checked what was asked, and watcher agreed."""
    state = SubState.SUBSCRIBED if mode is Mode.SUBSCRIBE else SubState.UNSUBSCRIBED
    store.db.execute(
        "UPDATE _websub SET state = ?, lease_until = ?, pending = NULL, failures = 0,"
        " last_error = NULL, retry_at = NULL WHERE id = ?",
        [state.value, to_text_or_none(lease_until), sub_id],
    )


@store_call
def mark_denied(store: Store, sub_id: int, reason: str) -> None:
    store.db.execute(
        "UPDATE _websub SET state = 'denied', lease_until = NULL, pending = NULL,"
        " last_error = ? WHERE id = ?",
        [reason, sub_id],
    )


@store_call
def record_push(store: Store, sub_id: int, now: datetime, *, accepted: bool) -> None:
    """Count a delivery from the hub: taken, or rejected (its signature failed)."""
    column = "pushes" if accepted else "rejected"
    store.db.execute(
        f"UPDATE _websub SET {column} = {column} + 1, last_push_at = ? WHERE id = ?",
        [to_text(now), sub_id],
    )


@store_call
def delete_subscriptions(store: Store, ids: Iterable[int]) -> None:
    for sub_id in ids:
        store.db.execute("DELETE FROM _websub WHERE id = ?", [sub_id])


@store_call
def live_subscription(store: Store, feed_id: int, now: datetime) -> bool:
    """Whether the feed has a subscription a hub granted whose lease has not ended."""
    row = store.db.execute(
        "SELECT 1 FROM _websub WHERE feed_id = ? AND state = 'subscribed' AND lease_until > ?",
        [feed_id, to_text(now)],
    ).fetchone()
    return row is not None
