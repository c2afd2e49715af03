"""What one poll of one feed changes, decided from a snapshot; pure: no SQL, no clock.

    request_for(result, ...)             -> SnapshotRequest   what the store must read
    volume_starts(snapshot, ...)         -> how far back each volume rule reads its matches
    decide_poll(snapshot, history, ...)  -> FeedIntent        everything the store writes

A fetch or parse failure (a 410 and a Retry-After too) gives the poll row, the feed's
backoff, the hold and maybe a health alert; a 304 the poll row and the feed's state; a
parsed feed also its new and changed items (stories.py), their matches and the alert rows
those give (alerts.py). The caller reads the snapshot, decides and applies the intent in
one write transaction (watcher.intent says why that matters).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from watcher import envvars
from watcher.decide.alerts import Outbox, throttle_windows
from watcher.decide.fulltext import with_articles
from watcher.decide.health import event_after_poll, health_channels
from watcher.decide.policy import channels_for, decide_backlog
from watcher.decide.schedule import (
    gone_reason,
    is_gone,
    next_poll_after_failure,
    next_poll_after_success,
    retry_hold_until,
)
from watcher.decide.stories import Stories, plan_items, story_heads, story_keys
from watcher.decide.threshold import current_arm_state, history_start
from watcher.intent import (
    FeedIntent,
    FeedSnapshot,
    FeedUpdate,
    ItemRef,
    ItemWrite,
    MatchWrite,
    PollRow,
    RuleNeeds,
    SnapshotRequest,
    VolumeHistory,
    whole_seconds,
)
from watcher.redact import redact_url
from watcher.types import (
    AlertStatus,
    FeedResult,
    FeedState,
    FeedStatus,
    Fetched,
    HealthEvent,
    Rule,
    Settings,
    match_key,
)

log = logging.getLogger(__name__)


# --- what to read ----------------------------------------------------------------------------


def request_for(
    result: FeedResult, rules: Mapping[str, Rule], settings: Settings, now: datetime
) -> SnapshotRequest:
    """What the snapshot of this poll must hold: the parsed items' stored versions and,
    for the new or changed ones, their stories and what their rules' alerts depend on."""
    feed_id = result.feed.id
    parsed = result.parsed
    if result.error is not None or result.fetched is None or parsed is None:
        return SnapshotRequest(feed_id, now)
    hashes, matches = result.hashes, result.matches
    assert hashes is not None and matches is not None, "the result was not matched"
    items: list[ItemRef] = []
    rule_ids: dict[str, None] = {}
    for item, digest in zip(parsed.items, hashes, strict=True):
        found = tuple(m.rule_id for m in matches.get(match_key(item.guid, digest), ()))
        items.append(ItemRef(item.guid, digest, found, _Once(story_keys, item)))
        rule_ids.update(dict.fromkeys(found))
    needs = tuple(_needs(rules[r], settings, now) for r in rule_ids if r in rules)
    return SnapshotRequest(feed_id, now, tuple(items), needs)


class _Once:
    """``fn(arg)``, worked out at the first call and kept (a lighter ``functools.cache``
    for the one argument-less call a snapshot makes)."""

    __slots__ = ("_arg", "_fn", "_value")
    _value: Any

    def __init__(self, fn: Callable[[Any], Any], arg: Any) -> None:
        self._fn, self._arg = fn, arg

    def __call__(self) -> Any:
        try:
            return self._value
        except AttributeError:
            self._value = self._fn(self._arg)
            return self._value


def _needs(rule: Rule, settings: Settings, now: datetime) -> RuleNeeds:
    channels = tuple(channels_for(rule, settings))
    return RuleNeeds(
        rule_id=rule.id,
        channels=channels,
        digest_s=rule.digest_s,
        volume=rule.threshold is not None,
        throttles=tuple(w for c in channels for w in throttle_windows(rule, settings, c, now)),
    )


def changed_rule_ids(request: SnapshotRequest, snapshot: FeedSnapshot) -> set[str]:
    """The rules that new or changed items of the poll match."""
    found: set[str] = set()
    for ref in request.items:
        known = snapshot.known.get(ref.guid)
        if known is None or known.content_hash != ref.content_hash:
            found.update(ref.rule_ids)
    return found


def volume_starts(
    request: SnapshotRequest,
    snapshot: FeedSnapshot,
    rules: Mapping[str, Rule],
    now: datetime,
) -> dict[str, datetime]:
    """For each volume rule a new or changed item matches: the earliest match its decisions
    on any channel need (at most two windows back, once it has looked since its firing)."""
    starts: dict[str, datetime] = {}
    for need in request.rules:
        rule = rules.get(need.rule_id)
        if rule is None or rule.threshold is None:
            continue
        if need.rule_id not in changed_rule_ids(request, snapshot):
            continue
        for channel in need.channels:
            pair = (rule.id, channel)
            last = snapshot.volume_last.get(pair)
            fired = last.alert.created_at if last is not None else None
            state = current_arm_state(snapshot.arming.get(pair), fired)
            start = whole_seconds(history_start(rule.threshold, state, now))
            starts[rule.id] = min(start, starts.get(rule.id, start))
    return starts


# --- what the poll changes -------------------------------------------------------------------


def decide_poll(
    snapshot: FeedSnapshot,
    history: VolumeHistory,
    request: SnapshotRequest,
    result: FeedResult,
    rules: Mapping[str, Rule],
    settings: Settings,
    now: datetime,
) -> FeedIntent:
    """Everything this poll writes, from the snapshot and the fetched, parsed, matched feed."""
    if result.error is not None or result.fetched is None:
        return decide_failure(snapshot, result, result.error or "no response", settings, now)
    fetched, parsed = result.fetched, result.parsed
    if fetched.not_modified or parsed is None:
        return _success(snapshot, result, fetched, FeedStatus.NOT_MODIFIED, None, settings, now)
    writes, stories = plan_items(snapshot.feed.id, parsed.items, request.items, snapshot, now)
    writes = with_articles(writes, result.articles)
    box = Outbox.open(snapshot, history, stories, story_heads(snapshot, writes), settings, now)
    rows = _match_and_queue(snapshot, result, writes, box, rules, settings, now)
    intent = _success(
        snapshot, result, fetched, FeedStatus.OK, box, settings, now, writes, parsed.warning
    )
    return replace(
        intent,
        items=tuple(writes),
        merges=tuple(stories.merges),
        story_keys=stories.key_writes(),
        matches=tuple(rows),
    )


def _match_and_queue(
    snapshot: FeedSnapshot,
    result: FeedResult,
    writes: Sequence[ItemWrite],
    box: Outbox,
    rules: Mapping[str, Rule],
    settings: Settings,
    now: datetime,
) -> list[MatchWrite]:
    """The match rows of the new and changed items, in feed and rule order, each queued
    on the rule's channels."""
    matches = result.matches or {}
    for write in writes:
        box.place_item(write.stored)
    first_poll = snapshot.feed.last_success_at is None
    limit = FeedLimit(settings.poll.max_new_alerts_per_feed)
    rows: list[MatchWrite] = []
    for write in writes:
        item = write.stored
        for match in matches.get(match_key(item.guid, item.content_hash), ()):
            rule = rules[match.rule_id]
            rows.append(MatchWrite(snapshot.next_match_id + len(rows), item.id, match, now))
            box.record_match(rule, item)
            reason = decide_backlog(result.options, item, first_poll, now)
            for channel in channels_for(rule, settings):
                over = limit.reached(channel)
                if box.queue(rule, channel, item, reason, over_limit=over) is AlertStatus.PENDING:
                    limit.count(channel)
    if limit.reached_on:
        box.summarise_over_limit()
        log.warning(
            "over feed limit feed=%s max_new_alerts_per_feed=%d channels=%s",
            snapshot.feed.name,
            limit.most,
            ",".join(sorted(limit.reached_on)),
        )
    return rows


@dataclass
class FeedLimit:
    """The alerts one poll of a feed has queued per channel, against
    ``poll.max_new_alerts_per_feed``."""

    most: int
    queued: dict[str, int] = field(default_factory=dict)
    reached_on: set[str] = field(default_factory=set)  # channels where matches were held

    def reached(self, channel: str) -> bool:
        if self.queued.get(channel, 0) < self.most:
            return False
        self.reached_on.add(channel)
        return True

    def count(self, channel: str) -> None:
        self.queued[channel] = self.queued.get(channel, 0) + 1


def _success(
    snapshot: FeedSnapshot,
    result: FeedResult,
    fetched: Fetched,
    status: FeedStatus,
    box: Outbox | None,
    settings: Settings,
    now: datetime,
    writes: Sequence[ItemWrite] = (),
    warning: str | None = None,
) -> FeedIntent:
    """A poll that got the feed (or a 304): the feed is well again, its hold lifted."""
    feed = snapshot.feed
    error = f"warning: {warning}" if warning else None
    title = result.parsed.title if result.parsed is not None else None
    update = FeedUpdate(
        last_polled_at=now,
        last_status=_status_after(feed, status),
        last_error=error,
        last_success_at=now,
        consecutive_failures=0,
        disabled_reason=feed.disabled_reason,
        next_poll_at=next_poll_after_success(now, feed.interval_s, fetched.headers),
        etag=_keep(fetched.etag, feed.etag),
        last_modified=_keep(fetched.last_modified, feed.last_modified),
        title=_keep(title, feed.title),
        url=_keep(moved_to(feed, fetched), feed.url) or feed.url,
    )
    poll = PollRow(
        started_at=now,
        duration_ms=result.duration_ms,
        http_status=fetched.status if fetched.url.startswith(("http:", "https:")) else None,
        new_items=sum(w.stored.change == "new" for w in writes),
        error=error,
    )
    event = event_after_poll(feed, status, None, settings.health.failing_after)
    if result.pushed:  # a push is no poll: the feed's poll state and health stay
        event = None
    intent = FeedIntent(feed.id, status, poll, update, None, error, pushed=result.pushed)
    return _finish(intent, event, box, snapshot, settings, now)


def decide_failure(
    snapshot: FeedSnapshot, result: FeedResult, error: str, settings: Settings, now: datetime
) -> FeedIntent:
    """A failed poll: back off (Retry-After honoured), or disable the feed on 410."""
    feed = snapshot.feed
    http = result.http_status
    gone = is_gone(http)
    failures = feed.consecutive_failures + 1
    update = FeedUpdate(
        last_polled_at=now,
        last_status=_status_after(feed, FeedStatus.DISABLED if gone else FeedStatus.ERROR),
        last_error=error,
        last_success_at=feed.last_success_at,
        consecutive_failures=feed.consecutive_failures if gone else failures,
        disabled_reason=gone_reason(http) if gone and http is not None else feed.disabled_reason,
        next_poll_at=next_poll_after_failure(
            now, feed.interval_s, failures, http, result.retry_after_s
        ),
        etag=feed.etag,
        last_modified=feed.last_modified,
        title=feed.title,
        url=feed.url,
    )
    poll = PollRow(now, result.duration_ms, http, 0, error)
    hold = retry_hold_until(now, http, result.retry_after_s)
    event = event_after_poll(feed, FeedStatus.ERROR, error, settings.health.failing_after)
    intent = FeedIntent(feed.id, FeedStatus.ERROR, poll, update, hold, error)
    return _finish(intent, event, None, snapshot, settings, now)


def _finish(
    intent: FeedIntent,
    event: HealthEvent | None,
    box: Outbox | None,
    snapshot: FeedSnapshot,
    settings: Settings,
    now: datetime,
) -> FeedIntent:
    """The intent with the poll's health alerts (after its match alerts) and every alert row."""
    if event is not None:
        box = box or Outbox.open(snapshot, {}, Stories({}), {}, settings, now)
        box.add_health(event, health_channels(settings.health.notify, list(settings.channels)))
    if box is None:
        return intent
    alerts, appends, summaries, arming = box.writes()
    return replace(
        intent,
        alerts=alerts,
        appends=appends,
        summaries=summaries,
        arming=arming,
        health=(event,) if event is not None else (),
    )


def _status_after(feed: FeedState, status: FeedStatus) -> str:
    """A feed disabled while its poll was in flight (``watcher feeds disable``) stays so."""
    return str(FeedStatus.DISABLED) if feed.last_status == FeedStatus.DISABLED else str(status)


def _keep(new: str | None, old: str | None) -> str | None:
    return old if new is None else new


def moved_to(feed: FeedState, fetched: Fetched) -> str | None:
    """The URL a permanent redirect moves the feed to, as a template; None to keep its URL.

    A URL holding ``${VAR}`` is never replaced: the redirect's target would hold the secret.
    """
    target = fetched.permanent_redirect
    if target is None:
        return None
    if envvars.has_references(feed.url):
        log.warning(
            "redirect kept feed=%s to=%s reason=%s",
            feed.name,
            redact_url(target),
            "the URL holds ${VAR}: edit it if the feed moved for good",
        )
        return None
    log.info("moved feed=%s url=%s", feed.name, target)
    return envvars.escape(target)
