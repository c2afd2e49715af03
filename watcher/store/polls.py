"""SQL of the ``polls`` table: one row per poll, and the feed's state after it; decides
nothing (the outcome and the next poll time are handed in).
"""

from __future__ import annotations

from datetime import datetime

from watcher.store import Store
from watcher.store.errors import store_call
from watcher.store.rows import to_text, to_text_or_none
from watcher.types import FeedStatus


@store_call
def record_poll(
    store: Store,
    feed_id: int,
    *,
    started_at: datetime,
    duration_ms: int | None,
    http_status: int | None,
    new_items: int,
    error: str | None,
    status: FeedStatus,
    now: datetime,
    etag: str | None = None,
    last_modified: str | None = None,
    title: str | None = None,
    url: str | None = None,
    next_poll_at: datetime | None = None,
    disabled_reason: str | None = None,
) -> None:
    """Add a ``polls`` row and update the feed's state from the poll's outcome.

    ok/not_modified set ``last_success_at`` and reset ``consecutive_failures``; error
    adds one; disabled also sets ``disabled_reason`` (default: the error). Without
    ``next_poll_at`` the next poll is one interval after ``now``.
    """
    with store.transaction():
        store.db.execute(
            "INSERT INTO polls (feed_id, started_at, duration_ms, http_status, new_items,"
            " error) VALUES (?, ?, ?, ?, ?, ?)",
            [feed_id, to_text(started_at), duration_ms, http_status, new_items, error],
        )
        _update_feed_after_poll(
            store, feed_id, status, error, now, next_poll_at, disabled_reason or error
        )
        store.db.execute(
            "UPDATE feeds SET etag = coalesce(?, etag),"
            " last_modified = coalesce(?, last_modified), title = coalesce(?, title),"
            " url = coalesce(?, url) WHERE id = ?",
            [etag, last_modified, title, url, feed_id],
        )


def _update_feed_after_poll(
    store: Store,
    feed_id: int,
    status: FeedStatus,
    error: str | None,
    now: datetime,
    next_poll_at: datetime | None,
    disabled_reason: str | None,
) -> None:
    success = status in (FeedStatus.OK, FeedStatus.NOT_MODIFIED)
    failed = status == FeedStatus.ERROR
    # A feed disabled while its poll was in flight (`watcher feeds disable`) stays so.
    store.db.execute(
        "UPDATE feeds SET last_polled_at = :now, last_error = :error,"
        " last_status = CASE WHEN last_status = 'disabled' THEN last_status ELSE :status END,"
        " last_success_at = CASE WHEN :success THEN :now ELSE last_success_at END,"
        " consecutive_failures = CASE WHEN :success THEN 0"
        "   WHEN :failed THEN consecutive_failures + 1 ELSE consecutive_failures END,"
        " disabled_reason = CASE WHEN :disabled THEN :reason ELSE disabled_reason END,"
        " next_poll_at = coalesce(:next,"
        "   strftime('%Y-%m-%dT%H:%M:%SZ', :now, '+' || interval_s || ' seconds'))"
        " WHERE id = :id",
        {
            "now": to_text(now),
            "status": str(status),
            "error": error,
            "success": success,
            "failed": failed,
            "disabled": status == FeedStatus.DISABLED,
            "reason": disabled_reason,
            "next": to_text_or_none(next_poll_at),
            "id": feed_id,
        },
    )
