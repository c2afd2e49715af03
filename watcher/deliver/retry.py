"""When a failed send is tried again: the retry schedule of ``delivery:``; pure, no I/O."""

from __future__ import annotations

from datetime import datetime, timedelta

from watcher.types import Alert, Settings


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
