"""SQL about feeds beyond their rows' upkeep: poll requests to a running daemon and the
newest item of each feed; decides nothing.

Functions take the :class:`~watcher.store.Store` and run in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from watcher.exceptions import ConfigError
from watcher.store.errors import store_call
from watcher.store.rows import from_text, to_text
from watcher.store.state import retry_hold
from watcher.types import FeedStatus

if TYPE_CHECKING:
    from watcher.store import Store


@dataclass(frozen=True)
class PollRequest:
    """A feed the daemon was asked to poll; ``held_until`` when a Retry-After delays it."""

    feed: str
    held_until: datetime | None = None


@store_call
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
            hold = retry_hold(store, feed.id)
            held = hold if hold is not None and hold > now else None
            store.db.execute(
                "UPDATE feeds SET next_poll_at = ? WHERE id = ?", [to_text(held or now), feed.id]
            )
            requests.append(PollRequest(feed.name, held))
    return requests


@store_call
def last_new_item_times(store: Store) -> dict[int, datetime]:
    """feed id -> when its newest item was first seen (feeds without items are absent)."""
    rows = store.db.query("SELECT feed_id, max(first_seen_at) AS at FROM items GROUP BY feed_id")
    found = {int(r["feed_id"]): from_text(r["at"]) for r in rows}
    return {k: v for k, v in found.items() if v is not None}
