"""Pure decisions about feeds and alerts: backlog, channels, backoff, retry times; no I/O.

Also the alert policy's small decisions (mutes, throttles, volume thresholds, subjects);
the SQL that feeds them lives in ``watcher.store.outbox``, the sequencing in ``outbox``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from watcher.types import (
    SEVERITIES,
    Alert,
    FeedConfig,
    FirstPollAlerts,
    RateLimit,
    Rule,
    Settings,
    StoredItem,
    Threshold,
)

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


def next_attempt(
    settings: Settings, alert: Alert, now: datetime, retry_from: datetime | None = None
) -> datetime | None:
    """When to retry after a transient failure, or None once the deadline has passed.

    The delay doubles per attempt from ``retry_initial`` up to ``retry_max``; the deadline
    is ``give_up_after`` from ``retry_from`` (a manual retry, a digest's send time), else
    from the alert's creation. ``alert.attempts`` counts the attempts before this one.
    """
    d = settings.delivery
    delay = min(d.retry_initial_s * 2 ** min(alert.attempts, 32), d.retry_max_s)
    at = now + timedelta(seconds=delay)
    start = max(alert.created_at, retry_from) if retry_from else alert.created_at
    if at > start + timedelta(seconds=d.give_up_after_s):
        return None
    return at


# --- the alert policy ----------------------------------------------------------------------

MUTED = "muted"


def mute_key(kind: str, name: str) -> str:
    """How a mute is stored: ``rule:ID`` or ``feed:NAME``."""
    return f"{kind}:{name}"


def live_mutes(mutes: Mapping[str, str], now: datetime) -> dict[str, str]:
    """The mutes (key -> ISO end time) that have not ended at ``now``."""
    return {k: v for k, v in mutes.items() if _parse_time(v) > now}


def is_muted(mutes: Mapping[str, str], rule_id: str, feed_name: str, now: datetime) -> bool:
    """Whether a match of this rule on this feed's item must be recorded but not sent."""
    live = live_mutes(mutes, now)
    return mute_key("rule", rule_id) in live or mute_key("feed", feed_name) in live


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


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


def threshold_reached(threshold: Threshold, hits: Sequence[tuple[int, int]]) -> bool:
    """Whether (item id, feed id) matches in the window reach the volume rule's count."""
    seen = {feed for _, feed in hits} if threshold.distinct == "feed" else {i for i, _ in hits}
    return len(seen) >= threshold.count


def format_window(seconds: int) -> str:
    """``2h``, ``90m``, ``1d``: the largest unit that divides the window."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def alert_subject(kind: str, rule_id: str, title: str, count: int, window_s: int = 0) -> str:
    """The SPEC §5 subject of an alert of ``kind``."""
    if kind == "digest":
        return f"[watcher] {rule_id}: {count} new item{'' if count == 1 else 's'}"
    if kind == "threshold":
        items = f"{count} item{'' if count == 1 else 's'}"
        return f"[watcher] {rule_id}: {items} in {format_window(window_s)}"
    return f"[watcher] {rule_id}: {title}"
