"""After a poll is stored: when the feed is polled next, from its pace; decides nothing itself.

The poll's own record plans the next poll one stored interval ahead (or later, as the
server's Cache-Control asks; sooner never). Two things can change that wait, and this
module applies them right after the poll's transaction, for both ``watcher poll`` and the
daemon:

    interval: auto     the interval follows the feed's publishing rate
                       (decide/schedule.py ``auto_interval_s`` over its newest items) and is
                       stored in ``feeds.interval_s``
    a live WebSub      the wait is the longer of the interval and ``websub.safety_interval``
    subscription       (pushes bring the news; the poll is the safety net)

A feed with neither costs nothing here: no read, no write. ``after_poll`` also keeps the
WebSub hub and topic a parsed feed names (websub.py), written only when they change.
"""

from __future__ import annotations

import logging
from datetime import datetime

from watcher.decide.schedule import (
    AUTO_SAMPLES,
    auto_interval_s,
    item_time,
    next_poll_after_failure,
    next_poll_after_success,
    paced_interval_s,
)
from watcher.poll.result import FeedResult
from watcher.poll.runtime import Runtime
from watcher.poll.websub import note_offer
from watcher.store.feeds import get_feed, recent_item_times, set_pace
from watcher.store.websub import live_subscription
from watcher.types import AUTO_INTERVAL, FeedStatus

log = logging.getLogger(__name__)

_SUCCESS = frozenset({FeedStatus.OK, FeedStatus.NOT_MODIFIED})


def pace_feed(rt: Runtime, result: FeedResult, now: datetime) -> None:
    """Set the polled feed's next poll (and adaptive interval) from its pace."""
    before = result.feed
    auto = before.interval_source == AUTO_INTERVAL
    safety = push_safety_s(rt, before.id, now)
    if not auto and safety is None:
        return
    feed = get_feed(rt.store, before.id)
    if feed.last_polled_at != now or feed.last_status not in _SUCCESS | {FeedStatus.ERROR}:
        return  # not this poll's outcome, or disabled (a 410, or by hand meanwhile)
    interval = feed.interval_s
    if auto and feed.last_status in _SUCCESS:
        rows = recent_item_times(rt.store, feed.id, AUTO_SAMPLES)
        times = [item_time(published, seen) for published, seen in rows]
        bounds = result.options.min_interval_s, result.options.max_interval_s
        interval = auto_interval_s(times, now, *bounds)
    wait = paced_interval_s(interval, safety)
    if wait == before.interval_s and interval == feed.interval_s:
        return  # the poll's record planned with this wait already
    if feed.last_status in _SUCCESS:
        headers = result.fetched.headers if result.fetched is not None else {}
        next_at = next_poll_after_success(now, wait, headers)
    else:
        failures = feed.consecutive_failures
        next_at = next_poll_after_failure(
            now, wait, failures, result.http_status, result.retry_after_s
        )
    set_pace(rt.store, feed.id, interval, next_at)
    log.debug(
        "paced feed=%s interval=%d wait=%d next=%s",
        feed.name,
        interval,
        wait,
        next_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def push_safety_s(rt: Runtime, feed_id: int, now: datetime) -> int | None:
    """``websub.safety_interval`` when the feed has a live WebSub subscription, else None."""
    websub = rt.settings.websub
    if not websub.enabled or not live_subscription(rt.store, feed_id, now):
        return None
    return websub.safety_interval_s


def after_poll(rt: Runtime, result: FeedResult, now: datetime) -> None:
    """What follows a stored poll: the hub the feed names (for WebSub), then its pace."""
    note_offer(rt.store, result.fetched, result.parsed, result.feed.id, now)
    pace_feed(rt, result, now)
