"""Pure decisions about when to poll a feed next, from its HTTP answer; no I/O, no clock.

    success:  next = now + max(interval, Cache-Control max-age or Expires, capped at 1 d)
    failure:  next = now + interval doubled per consecutive failure (capped at 1 d),
              and never before a 429/503 ``Retry-After``
    410:      the feed is disabled
    start:    a feed not yet due waits for its ``next_poll_at``; an overdue one is spread
              over a short catch-up window so a restart does not poll everything at once;
              feeds sharing an interval that fall due bunched (after a fast ``poll --all``)
              are spread over that interval by polling some earlier, never later
    reload:   a new interval moves ``next_poll_at`` to
              min(current, last poll + the wait the new interval gives), never earlier
              than a backoff, a Cache-Control lifetime or a Retry-After hold
    auto:     ``interval: auto`` = half the mean gap between the feed's last 20 new items,
              the time since the newest counted as one more gap, within the feed's bounds
    push:     a feed with a live WebSub subscription waits the longer of its interval and
              ``websub.safety_interval``

It does not fetch, store or schedule anything: poll/pipeline.py and poll/daemon.py call it,
and whoever syncs the config's feeds hands ``next_poll_after_interval_change`` to the store.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from watcher.decide.policy import next_interval_after_failure
from watcher.types import FeedState

MAX_CACHE_S = 86400  # a server's max-age/Expires never keeps a feed quiet longer than 1 d
MAX_RETRY_AFTER_S = 7 * 86400  # a larger Retry-After is taken as 7 d
RETRY_AFTER_STATUSES = frozenset({429, 503})
GONE_STATUS = 410
CATCHUP_WINDOW_S = 60  # overdue feeds start within this many seconds of a (re)start
MAX_JITTER_S = 60

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.I)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\s*(?:,|=|$)", re.I)


AUTO_SAMPLES = 20  # an adaptive interval follows this many of the feed's newest items


def auto_interval_s(
    times: Sequence[datetime], now: datetime, min_interval_s: int, max_interval_s: int
) -> int:
    """The interval of an ``interval: auto`` feed: half its mean publishing gap, bounded.

    ``times`` are when its newest new items (at most ``AUTO_SAMPLES``) were published.
    The gap is measured from the oldest of them to ``now`` over their number: n items
    make n gaps when the time since the newest counts as one, so a feed that stops
    publishing slows down by itself. No items at all: ``max_interval_s``.
    """
    if not times:
        return max_interval_s
    span_s = max(0.0, (now - min(times)).total_seconds())
    wanted = span_s / len(times) / 2
    return int(min(max(wanted, min_interval_s), max_interval_s))


def item_time(published_at: datetime | None, first_seen_at: datetime) -> datetime:
    """When an item appeared, for the publishing rate: its published time, unless it has
    none or claims a moment after watcher first saw it (a clock ahead, or no date)."""
    if published_at is None or published_at > first_seen_at:
        return first_seen_at
    return published_at


def paced_interval_s(interval_s: int, push_safety_s: int | None) -> int:
    """The wait between polls: the feed's interval, or with a live WebSub subscription
    (``push_safety_s`` = ``websub.safety_interval``) the longer of the two."""
    return interval_s if push_safety_s is None else max(interval_s, push_safety_s)


def cache_lifetime_s(headers: Mapping[str, str], now: datetime) -> int | None:
    """Seconds the server asks us to wait (max-age, else Expires), capped at 1 d; or None.

    ``headers`` has lower-case names, as ``Fetched.headers`` does.
    """
    control = headers.get("cache-control", "")
    if _NO_CACHE.search(control):
        return None
    match = _MAX_AGE.search(control)
    if match:
        return min(int(match.group(1)), MAX_CACHE_S)
    expires = _http_date(headers.get("expires"))
    if expires is None:
        return None
    return max(0, min(int((expires - now).total_seconds()), MAX_CACHE_S))


def next_poll_after_success(now: datetime, interval_s: int, headers: Mapping[str, str]) -> datetime:
    """One interval after ``now``, or later when the server's cache lifetime says so."""
    cached = cache_lifetime_s(headers, now) or 0
    return now + timedelta(seconds=max(interval_s, cached))


def next_poll_after_failure(
    now: datetime,
    interval_s: int,
    failures: int,
    http_status: int | None = None,
    retry_after_s: float | None = None,
) -> datetime:
    """Back off (interval doubling per failure, capped at 1 d), never before Retry-After.

    ``failures`` counts this failure too.
    """
    delay = float(next_interval_after_failure(interval_s, failures))
    if http_status in RETRY_AFTER_STATUSES and retry_after_s is not None:
        delay = max(delay, min(retry_after_s, MAX_RETRY_AFTER_S))
    return now + timedelta(seconds=delay)


def next_poll_after_interval_change(
    *,
    next_poll_at: datetime | None,
    last_polled_at: datetime | None,
    failures: int,
    old_interval_s: int,
    new_interval_s: int,
    hold_until: datetime | None = None,
) -> datetime | None:
    """When a feed whose interval changed from ``old`` to ``new`` is polled next.

    The wait counted from its last poll is worked out again with the new interval: the
    backoff of a failing feed, else the interval, or the server's Cache-Control lifetime
    when that was longer (read off the stored wait, which then exceeds the old interval).
    The feed is never polled later than planned, nor before a Retry-After ``hold_until``.
    """
    if next_poll_at is None or last_polled_at is None:
        return next_poll_at  # due now, or never polled: nothing to move
    planned_s = (next_poll_at - last_polled_at).total_seconds()
    if failures > 0:
        wait_s = float(next_interval_after_failure(new_interval_s, failures))
    else:
        cached_s = planned_s if planned_s > old_interval_s else 0.0
        wait_s = max(float(new_interval_s), cached_s)
    moved = min(next_poll_at, last_polled_at + timedelta(seconds=wait_s))
    return max(moved, hold_until) if hold_until is not None else moved


def retry_hold_until(
    now: datetime, http_status: int | None, retry_after_s: float | None
) -> datetime | None:
    """When a 429/503 with Retry-After lets the feed be polled again (even by ``--all``)."""
    if http_status not in RETRY_AFTER_STATUSES or retry_after_s is None:
        return None
    return now + timedelta(seconds=min(retry_after_s, MAX_RETRY_AFTER_S))


def is_gone(http_status: int | None) -> bool:
    """410 Gone: the publisher removed the feed; stop polling it."""
    return http_status == GONE_STATUS


def gone_reason(http_status: int) -> str:
    return (
        f"HTTP {http_status} Gone: the publisher removed the feed;"
        " `watcher feeds enable NAME` polls it again"
    )


def jitter_s(interval_s: int) -> float:
    """The scheduler's jitter for a feed: a tenth of its interval, at most a minute."""
    return float(min(interval_s / 10, MAX_JITTER_S))


def first_run_at(
    next_poll_at: datetime | None,
    now: datetime,
    interval_s: int,
    rng: random.Random | None = None,
) -> datetime:
    """When the daemon first polls a feed: its stored ``next_poll_at`` when that is still
    ahead, else soon, spread over the catch-up window so overdue feeds do not all start
    at once."""
    if next_poll_at is not None and next_poll_at > now:
        return next_poll_at
    window = min(CATCHUP_WINDOW_S, interval_s)
    return now + timedelta(seconds=(rng or random).uniform(0, window))


def spread_bunched(feeds: Sequence[FeedState], now: datetime) -> dict[int, datetime]:
    """Feeds moved earlier so that those sharing an interval fall due evenly over it:
    feed id -> its new ``next_poll_at``; a feed absent keeps its own.

    A fast ``watcher poll --all`` leaves every feed due within the few seconds it took, one
    interval later; a daemon started after it would then have all of them to poll at once,
    and again one interval later. Here the feeds of one interval that wait only for it
    (polled, no failure, no Cache-Control or WebSub wait beyond it, due within it) are
    ranked by due time; the k-th of n is then due no later than the (k+1)-th n-th of the
    window from the earliest moment any of them may be polled to the latest due, and never
    sooner than half an interval after its last poll. A feed is only ever moved earlier,
    so none is polled later than it was due, and feeds already spread stay where they are.
    """
    groups: dict[int, list[tuple[datetime, datetime, int]]] = defaultdict(list)
    for feed in feeds:
        due, last = feed.next_poll_at, feed.last_polled_at
        if due is None or last is None or feed.consecutive_failures or due <= now:
            continue
        interval = timedelta(seconds=feed.interval_s)
        if due - last > interval + _SLACK or due > now + interval:
            continue  # a server's or a subscription's wait, or a clock moved back
        groups[feed.interval_s].append((due, last, feed.id))
    moved: dict[int, datetime] = {}
    for interval_s, group in groups.items():
        group.sort()
        half = timedelta(seconds=interval_s / 2)
        start = max(now, min(last for _, last, _ in group) + half)
        span = group[-1][0] - start
        n = len(group)
        for k, (due, last, feed_id) in enumerate(group):
            slot = max(start + span * (k + 1) / n, last + half)
            if slot < due - _SLACK:
                moved[feed_id] = slot
    return moved


_SLACK = timedelta(seconds=1)  # closer than this to its due time, a poll is left where it is


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
