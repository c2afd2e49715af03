"""Pure decisions about feeds and alerts: backlog, channels, backoff, retry times; no I/O."""

from __future__ import annotations

from datetime import datetime, timedelta

from watcher.types import SEVERITIES, Alert, FeedConfig, FirstPollAlerts, Rule, Settings, StoredItem

MAX_BACKOFF_S = 86400


def decide_backlog(
    options: FeedConfig, item: StoredItem, first_poll: bool, now: datetime
) -> str | None:
    """Why a match must be recorded but not sent ('backlog', 'too old'), or None to send it."""
    published = item.published_at
    too_old = published is None or (now - published).total_seconds() > options.max_age_s
    if first_poll:
        mode = options.first_poll_alerts
        if mode is FirstPollAlerts.NONE or (mode is FirstPollAlerts.RECENT and too_old):
            return "backlog"
        return None
    if published is not None and too_old:
        return "too old"
    return None


def channels_for(rule: Rule, settings: Settings) -> list[str]:
    """The channels a rule's alerts go to: its ``notify`` list (or all), by min_severity."""
    names = list(rule.notify) if rule.notify is not None else list(settings.channels)
    rank = SEVERITIES.index(rule.severity)
    return [
        name
        for name in names
        if name in settings.channels
        and rank >= SEVERITIES.index(settings.channels[name].min_severity)
    ]


def next_interval_after_failure(interval_s: int, failures: int) -> int:
    """Back off a failing feed: the interval doubles per consecutive failure, capped at 1 d."""
    return int(min(interval_s * 2 ** max(0, min(failures - 1, 16)), MAX_BACKOFF_S))


def next_attempt(settings: Settings, alert: Alert, now: datetime) -> datetime | None:
    """When to retry after a transient failure, or None once the deadline has passed."""
    d = settings.delivery
    delay = min(d.retry_initial_s * 2**alert.attempts, d.retry_max_s)
    at = now + timedelta(seconds=delay)
    if at > alert.created_at + timedelta(seconds=d.give_up_after_s):
        return None
    return at
