"""Pure decisions about the health of the sources: failing, recovered, quiet, and the
``status --check`` verdict. No I/O, no clock.

    a poll fails and the feed reaches ``health.failing_after`` failures in a row -> failing
    a poll succeeds after the feed had been reported failing                     -> recovered
    no new item for ``health.quiet_after`` (reported once per quiet spell)        -> quiet

The alert rows themselves are written by store/state.py; deliver/message.py builds
their message and deliver/send.py sends them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from watcher.types import FeedState, FeedStatus, HealthEvent, HealthKind

HEARTBEAT_PERIOD_S = 60


def event_after_poll(
    before: FeedState, status: FeedStatus, error: str | None, failing_after: int
) -> HealthEvent | None:
    """The health event a poll outcome causes, given the feed's state before the poll."""
    if status is FeedStatus.ERROR:
        failures = before.consecutive_failures + 1
        if failures != failing_after:
            return None
        detail = f"{failures} failed polls in a row; last error: {error or 'unknown'}"
        return HealthEvent(before.name, HealthKind.FAILING, detail, before.url)
    if status in (FeedStatus.OK, FeedStatus.NOT_MODIFIED):
        if before.consecutive_failures < failing_after:
            return None
        detail = f"polled successfully after {before.consecutive_failures} failed polls"
        return HealthEvent(before.name, HealthKind.RECOVERED, detail, before.url)
    return None


def quiet_event(
    feed: FeedState,
    last_new_at: datetime | None,
    reported_for: datetime | None,
    now: datetime,
    quiet_after_s: int,
) -> HealthEvent | None:
    """A quiet event when the feed's newest item is older than ``quiet_after_s``.

    ``reported_for`` is the newest-item time a quiet alert was already raised for, so
    one quiet spell gives one alert. A feed that never had an item, or that is disabled,
    is not reported.
    """
    if last_new_at is None or feed.last_status == FeedStatus.DISABLED:
        return None
    if now - last_new_at < timedelta(seconds=quiet_after_s) or reported_for == last_new_at:
        return None
    days = (now - last_new_at).total_seconds() / 86400
    detail = f"no new item for {days:.1f} days (since {last_new_at:%Y-%m-%d %H:%M} UTC)"
    return HealthEvent(feed.name, HealthKind.QUIET, detail, feed.url)


# --- watcher status --check ----------------------------------------------------------------


def heartbeat_max_age_s(feeds: Sequence[FeedState], default_interval_s: int) -> int:
    """How old the heartbeat may be: two of the shortest poll interval, at least 2 minutes."""
    intervals = [f.interval_s for f in feeds if f.last_status != FeedStatus.DISABLED]
    shortest = min(intervals, default=default_interval_s)
    return max(2 * shortest, 2 * HEARTBEAT_PERIOD_S)


def is_failing(feed: FeedState, failing_after: int) -> bool:
    """A feed is failing once it reaches ``failing_after`` failed polls in a row."""
    return feed.last_status == FeedStatus.ERROR and feed.consecutive_failures >= failing_after


def check_problems(
    heartbeat_at: datetime | None,
    feeds: Sequence[FeedState],
    now: datetime,
    *,
    failing_after: int,
    default_interval_s: int,
) -> list[str]:
    """Every reason ``watcher status --check`` fails, one line each; [] when healthy."""
    problems: list[str] = []
    limit = heartbeat_max_age_s(feeds, default_interval_s)
    if heartbeat_at is None:
        problems.append("no daemon heartbeat: `watcher run` has never run on this database")
    elif (now - heartbeat_at).total_seconds() > limit:
        age = int((now - heartbeat_at).total_seconds())
        problems.append(
            f"daemon heartbeat is {age}s old (limit {limit}s): is `watcher run` running?"
        )
    for feed in feeds:
        if is_failing(feed, failing_after):
            problems.append(
                f"feed {feed.name} is failing ({feed.consecutive_failures} failed polls"
                f" in a row): {feed.last_error or 'unknown error'}"
            )
    return problems


def health_channels(notify: Sequence[str] | None, channels: Sequence[str]) -> list[str]:
    """The channels health alerts go to: ``health.notify``, else every channel."""
    return [c for c in (notify if notify is not None else channels) if c in channels]
