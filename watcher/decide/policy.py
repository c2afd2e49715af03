"""Pure decisions about feeds and alerts: backlog, channels, backoff; no I/O.

Also the alert policy's small decisions (mutes, throttles, volume thresholds);
the SQL that feeds them lives in ``watcher.store.outbox``, the sequencing in alerts.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from watcher.types import (
    SEVERITIES,
    FeedConfig,
    FirstPollAlerts,
    Mute,
    RateLimit,
    Rule,
    Settings,
    StoredItem,
)

MAX_BACKOFF_S = 86400
FUTURE_SLACK = timedelta(days=1)  # a date further ahead than this is not believed


def recency_time(item: StoredItem, now: datetime) -> datetime | None:
    """The time an item's recency is judged by: its published time, or its first-seen time
    when it claims to be published more than a day ahead (an item dated 9999 is not recent
    forever). The published time is stored as given either way."""
    published = item.published_at
    if published is not None and published > now + FUTURE_SLACK:
        return item.first_seen_at
    return published


def decide_backlog(
    options: FeedConfig, item: StoredItem, first_poll: bool, now: datetime
) -> str | None:
    """Why a match must be recorded but not sent ('backlog', 'too old'), or None to send it."""
    published = recency_time(item, now)
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


# --- the alert policy ----------------------------------------------------------------------

MUTED = "muted"
THROTTLED = "throttled by max_alerts"
SUMMARISED = "throttled by max_alerts; summarised in alert "
DUPLICATE = "duplicate of alert "


def duplicate_reason(alert_id: int) -> str:
    """Why a copy of a story whose alert was sent is recorded but not sent."""
    return f"{DUPLICATE}{alert_id}"


def is_duplicate(reason: str | None) -> bool:
    return reason is not None and reason.startswith(DUPLICATE)


def summarised_reason(alert_id: int) -> str:
    """The reason of an alert held back by max_alerts once a later alert carries its items."""
    return f"{SUMMARISED}{alert_id}"


def live_mutes(mutes: Iterable[Mute], now: datetime) -> list[Mute]:
    """The mutes that have not ended at ``now``."""
    return [m for m in mutes if m.until > now]


def is_muted(mutes: Iterable[Mute], rule_id: str, feed_name: str, now: datetime) -> bool:
    """Whether a match of this rule on this feed's item must be recorded but not sent."""
    return any(
        (m.kind, m.name) in (("rule", rule_id), ("feed", feed_name)) for m in live_mutes(mutes, now)
    )


def limits_for(rule: Rule, settings: Settings, channel: str) -> list[tuple[RateLimit, bool]]:
    """The caps an alert of ``rule`` on ``channel`` must fit: (limit, counts only this rule)."""
    limits: list[tuple[RateLimit, bool]] = []
    if rule.max_alerts is not None:
        limits.append((rule.max_alerts, True))
    config = settings.channels.get(channel)
    if config is not None and config.max_alerts is not None:
        limits.append((config.max_alerts, False))
    return limits


def is_over_limit(limit: RateLimit, queued_in_window: int) -> bool:
    """True when ``queued_in_window`` alerts already used up the cap."""
    return queued_in_window >= limit.count
