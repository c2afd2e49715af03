"""The poll stage order: fetch -> parse -> store -> match -> queue alerts (the outbox).

    for each due feed (fetch and parse in worker threads or processes, which never raise):
        result = fetch_and_parse()                -> FeedResult (result.py)
    for each result, in one transaction:
        upsert items; match new/changed ones; write matches and alert rows (the outbox)
        record the poll in `polls` and the feed's state in `feeds`
    then deliver.send.deliver_pending() sends due alerts and marks them sent / retry / failed

Deciding what to do with a match lives in watcher.decide (pure, except decide/alerts.py,
which still reads and writes through the store); everything that touches the network or
the database is called from here, in order.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from watcher import envvars
from watcher.decide.alerts import queue_alert, summarise_over_limit
from watcher.decide.health import event_after_poll, health_channels
from watcher.decide.policy import channels_for, decide_backlog
from watcher.decide.schedule import (
    gone_reason,
    is_gone,
    next_poll_after_failure,
    next_poll_after_interval_change,
    next_poll_after_success,
    retry_hold_until,
)
from watcher.poll import workers
from watcher.poll.pace import after_poll
from watcher.poll.result import FeedResult, fetch_and_parse
from watcher.poll.runtime import Runtime
from watcher.redact import redact_url, without_credentials
from watcher.rules.match import match_input, match_item
from watcher.store.batch import NotModified, record_not_modified, upsert_items
from watcher.store.feeds import due_feeds, is_first_poll, sync_config_feeds
from watcher.store.matches import add_match
from watcher.store.polls import record_poll
from watcher.store.state import add_health_alert, held_feed_ids, set_retry_hold
from watcher.types import (
    AlertStatus,
    FeedConfig,
    FeedState,
    FeedStatus,
    Fetched,
    HealthEvent,
    Match,
    Settings,
    StoredItem,
)

log = logging.getLogger(__name__)

# --- reports -------------------------------------------------------------------------------


@dataclass
class PollReport:
    feeds: int = 0
    ok: int = 0
    not_modified: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (feed name, error)
    new_items: int = 0
    updated_items: int = 0
    matches: int = 0
    alerts: int = 0
    suppressed: int = 0
    bugs: int = 0
    # for the daemon's metrics (metrics.py): matches per rule, alert rows queued per
    # (channel, status), and each new item's lag behind its published time
    rule_matches: Counter[str] = field(default_factory=Counter)
    queued: Counter[tuple[str, str]] = field(default_factory=Counter)
    lags_s: list[float] = field(default_factory=list)


# --- polling -------------------------------------------------------------------------------


def feed_options(settings: Settings, feed: FeedState) -> FeedConfig:
    """The per-feed settings of a stored feed: its config entry, else the defaults."""
    cfg = _OptionsIndex.of(settings.feeds).find(feed)
    if cfg is not None:
        return cfg
    d = settings.defaults
    return FeedConfig(
        url=feed.url,
        name=feed.name,
        tags=feed.tags,
        interval_s=feed.interval_s,
        timeout_s=d.timeout_s,
        first_poll_alerts=d.first_poll_alerts,
        max_age_s=d.max_age_s,
        headers=d.headers,
        interval_source=feed.interval_source,
        min_interval_s=d.min_interval_s,
        max_interval_s=d.max_interval_s,
    )


class _OptionsIndex:
    """The config's feed entries by name and by URL (for entries without a name)."""

    _last: tuple[tuple[FeedConfig, ...], _OptionsIndex] | None = None

    def __init__(self, feeds: tuple[FeedConfig, ...]) -> None:
        self.by_name: dict[str, int] = {}
        self.by_url: dict[str, int] = {}
        self.feeds = feeds
        for position, cfg in enumerate(feeds):
            if cfg.name is not None:
                self.by_name.setdefault(cfg.name, position)
            else:
                self.by_url.setdefault(cfg.url, position)

    @classmethod
    def of(cls, feeds: tuple[FeedConfig, ...]) -> _OptionsIndex:
        """The index of ``feeds``, reused while the same settings are in use."""
        last = cls._last
        if last is not None and last[0] is feeds:
            return last[1]
        index = cls(feeds)
        cls._last = (feeds, index)
        return index

    def find(self, feed: FeedState) -> FeedConfig | None:
        """The first entry named like the feed, or without a name and with its URL."""
        found = [
            p for p in (self.by_name.get(feed.name), self.by_url.get(feed.url)) if p is not None
        ]
        return self.feeds[min(found)] if found else None


def select_feeds(
    rt: Runtime, now: datetime, *, all_feeds: bool = False, names: Sequence[str] = ()
) -> list[FeedState]:
    """The feeds a pass should poll: named ones, every enabled one, or the due ones."""
    feeds = sync_config_feeds(
        rt.store,
        rt.settings.feeds,
        now,
        rt.settings.defaults.interval_s,
        reschedule=next_poll_after_interval_change,
        default_auto=rt.settings.defaults.auto_bounds,
    )
    if names:
        wanted = set(names)
        return [f for f in feeds if f.name in wanted]
    if all_feeds:
        held = held_feed_ids(rt.store, now)  # a server's Retry-After binds --all too
        return [f for f in feeds if f.id not in held]
    due = {f.id for f in due_feeds(rt.store, now)}
    return [f for f in feeds if f.id in due]


def poll_feeds(
    rt: Runtime,
    feeds: Sequence[FeedState],
    now: datetime,
    progress: Callable[[FeedResult], None] | None = None,
) -> PollReport:
    """Fetch, parse (and match) in workers, then store each batch of feeds in one transaction.

    Each feed's items, matches, alert rows and poll row are written in a savepoint of
    its batch's transaction: a feed that fails to store leaves nothing half-written,
    and the batch shares one commit.
    """
    report = PollReport(feeds=len(feeds))
    jobs = [(feed, feed_options(rt.settings, feed)) for feed in feeds]
    for batch in _fetch_all(rt, jobs):
        with rt.store.transaction():
            quiet = [r for r in batch if _plain_not_modified(rt, r)]
            done = {id(r) for r in quiet} if _store_not_modified(rt, quiet, now, report) else set()
            for result in batch:
                if id(result) not in done:
                    _store_one(rt, result, now, report)
                _pace_one(rt, result, now, report)
                if progress:
                    progress(result)
    return report


def _plain_not_modified(rt: Runtime, result: FeedResult) -> bool:
    """A 304 with nothing else to record: no redirect, no health event, no hold to lift."""
    fetched = result.fetched
    return (
        result.error is None
        and fetched is not None
        and fetched.not_modified
        and fetched.permanent_redirect is None
        and fetched.url.startswith(("http:", "https:"))
        and result.feed.consecutive_failures == 0
    )


def _store_not_modified(
    rt: Runtime, results: list[FeedResult], now: datetime, report: PollReport
) -> bool:
    """Record plain 304s in one statement per table; False (nothing written) on any error."""
    if not results:
        return True
    polls = [_not_modified_row(result, now) for result in results]
    try:
        with rt.store.transaction():
            record_not_modified(rt.store, polls, now)
            for result in results:
                set_retry_hold(rt.store, result.feed.id, None)
    except Exception:  # the feeds are then stored one by one, each on its own
        log.exception("internal error while recording %d unchanged feeds", len(results))
        return False
    report.not_modified += len(results)
    for result in results:
        log_exchange(result)
        log.info("polled feed=%s status=not_modified", result.feed.name)
    return True


def _not_modified_row(result: FeedResult, now: datetime) -> NotModified:
    fetched = result.fetched
    assert fetched is not None
    return NotModified(
        feed_id=result.feed.id,
        duration_ms=result.duration_ms,
        http_status=fetched.status,
        etag=fetched.etag,
        last_modified=fetched.last_modified,
        next_poll_at=next_poll_after_success(now, result.feed.interval_s, fetched.headers),
    )


def _store_one(rt: Runtime, result: FeedResult, now: datetime, report: PollReport) -> None:
    try:
        store_result(rt, result, now, report)
    except Exception as e:  # a bug: record it, finish the pass, exit 3 later
        log.exception("internal error feed=%s", result.feed.name)
        report.bugs += 1
        _record_error(rt, result, now, f"internal error: {type(e).__name__}: {e}", report)


def _pace_one(rt: Runtime, result: FeedResult, now: datetime, report: PollReport) -> None:
    """The feed's next poll from its pace (pace.py); a bug there is logged, never fatal."""
    try:
        with rt.store.transaction():
            after_poll(rt, result, now)
    except Exception:
        log.exception("internal error while pacing feed=%s", result.feed.name)
        report.bugs += 1


def _fetch_all(rt: Runtime, jobs: list[tuple[FeedState, FeedConfig]]) -> Iterator[list[FeedResult]]:
    """Batches of results: from worker processes for many feeds, else from threads here."""
    processes = workers.process_count(len(jobs))
    if processes:
        config = workers.WorkerConfig(
            compiled=rt.compiled,
            user_agent=rt.settings.poll.user_agent,
            block_private=rt.settings.poll.block_private,
            max_bytes=rt.settings.poll.max_bytes,
            threads=max(1, rt.settings.poll.workers // processes),
            fetch_and_parse=fetch_and_parse,
        )
        yield from workers.poll_in_processes(jobs, config, processes)
        return
    threads = max(1, min(rt.settings.poll.workers, len(jobs)))
    max_bytes = rt.settings.poll.max_bytes
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fetch") as pool:
        results = pool.map(lambda job: fetch_and_parse(rt.session, job[0], job[1], max_bytes), jobs)
        while batch := list(itertools.islice(results, workers.CHUNK_FEEDS)):
            yield batch


def store_result(rt: Runtime, result: FeedResult, now: datetime, report: PollReport) -> None:
    """Write one feed's outcome: items, matches, alerts and the poll row, in one transaction."""
    feed = result.feed
    log_exchange(result)
    if result.error is not None or result.fetched is None:
        _record_error(rt, result, now, result.error or "no response", report)
        return
    fetched = result.fetched
    if fetched.not_modified or result.parsed is None:
        with rt.store.transaction():
            _record(rt, result, now, FeedStatus.NOT_MODIFIED, new_items=0)
        report.not_modified += 1
        log.info("polled feed=%s status=not_modified", feed.name)
        return
    parsed = result.parsed
    with rt.store.transaction():
        first_poll = is_first_poll(rt.store, feed.id)
        new = updated = 0
        limit = _FeedLimit(rt.settings.poll.max_new_alerts_per_feed)
        for stored in upsert_items(rt.store, feed.id, parsed.items, now, result.hashes):
            new += stored.change == "new"
            if stored.change == "new" and stored.published_at is not None and not first_poll:
                report.lags_s.append((now - stored.published_at).total_seconds())
            updated += stored.change == "updated"
            key = workers.match_key(stored.guid, stored.content_hash)
            known = result.matches.get(key) if result.matches is not None else None
            _match_and_queue(rt, result, stored, first_poll, now, report, limit, known)
        if limit.reached_on:
            summaries = summarise_over_limit(rt, feed.id, feed.name, now)
            report.alerts += len(summaries)
            log.warning(
                "over feed limit feed=%s max_new_alerts_per_feed=%d channels=%s",
                feed.name,
                limit.most,
                ",".join(sorted(limit.reached_on)),
            )
        if not result.pushed:  # a push is no poll: its feed's poll state stays
            _record(rt, result, now, FeedStatus.OK, new_items=new, warning=parsed.warning)
    report.ok += 1
    report.new_items += new
    report.updated_items += updated
    unchanged = len(parsed.items) - new - updated
    log.debug("items feed=%s new=%d updated=%d unchanged=%d", feed.name, new, updated, unchanged)
    verb = "pushed" if result.pushed else "polled"
    log.info("%s feed=%s status=ok items=%d new=%d", verb, feed.name, len(parsed.items), new)


CACHE_HEADERS = ("etag", "last-modified", "cache-control", "expires", "age")


def log_exchange(result: FeedResult) -> None:
    """At DEBUG (``-vv``): the request made for a feed, the answer, and the parser used.

    The URL is the feed's as stored (a ``${VAR}`` stays a name) without its user,
    password and query; a redirect's target shows only its scheme and host.
    """
    if not log.isEnabledFor(logging.DEBUG):
        return
    feed, fetched = result.feed, result.fetched
    url = without_credentials(feed.url)
    conditional = [n for n, v in (("etag", feed.etag), ("last_modified", feed.last_modified)) if v]
    method = "GET" if feed.url.startswith(("http:", "https:")) else "READ"
    log.debug(
        "http request feed=%s method=%s url=%s conditional=%s",
        feed.name,
        method,
        url,
        ",".join(conditional) or "no",
    )
    if fetched is None:
        log.debug(
            "http answer feed=%s status=%s error=%r", feed.name, result.http_status, result.error
        )
        return
    cache = " ".join(
        f"{name.replace('-', '_')}={fetched.headers[name]!r}"
        for name in CACHE_HEADERS
        if name in fetched.headers
    )
    moved = (
        f" final_url={redact_url(fetched.final_url)}" if fetched.final_url != fetched.url else ""
    )
    log.debug(
        "http answer feed=%s status=%d bytes=%d%s%s",
        feed.name,
        fetched.status,
        len(fetched.content),
        f" {cache}" if cache else "",
        moved,
    )
    if result.parsed is not None:
        parsed = result.parsed
        log.debug(
            "parsed feed=%s parser=%s format=%s items=%d",
            feed.name,
            parsed.parser or "?",
            parsed.format,
            len(parsed.items),
        )


def _record(
    rt: Runtime,
    result: FeedResult,
    now: datetime,
    status: FeedStatus,
    *,
    new_items: int,
    warning: str | None = None,
) -> None:
    fetched = result.fetched
    assert fetched is not None
    feed = result.feed
    record_poll(
        rt.store,
        result.feed.id,
        started_at=now,
        duration_ms=result.duration_ms,
        http_status=fetched.status if fetched.url.startswith(("http:", "https:")) else None,
        new_items=new_items,
        error=f"warning: {warning}" if warning else None,
        status=status,
        now=now,
        etag=fetched.etag,
        last_modified=fetched.last_modified,
        title=result.parsed.title if result.parsed else None,
        url=_moved_to(feed, fetched),
        next_poll_at=next_poll_after_success(now, feed.interval_s, fetched.headers),
    )
    set_retry_hold(rt.store, feed.id, None)
    _raise_health(rt, event_after_poll(feed, status, None, _failing_after(rt)), now)


def _moved_to(feed: FeedState, fetched: Fetched) -> str | None:
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


def _record_error(
    rt: Runtime, result: FeedResult, now: datetime, error: str, report: PollReport
) -> None:
    """Record a failed poll: back off (Retry-After honoured), or disable the feed on 410."""
    feed = result.feed
    status, http = FeedStatus.ERROR, result.http_status
    failures = feed.consecutive_failures + 1
    hold = retry_hold_until(now, http, result.retry_after_s)
    with rt.store.transaction():
        record_poll(
            rt.store,
            feed.id,
            started_at=now,
            duration_ms=result.duration_ms,
            http_status=http,
            new_items=0,
            error=error,
            status=FeedStatus.DISABLED if is_gone(http) else status,
            now=now,
            next_poll_at=next_poll_after_failure(
                now, feed.interval_s, failures, http, result.retry_after_s
            ),
            disabled_reason=gone_reason(http) if http is not None and is_gone(http) else None,
        )
        set_retry_hold(rt.store, feed.id, hold)
        _raise_health(rt, event_after_poll(feed, status, error, _failing_after(rt)), now)
    report.failed.append((feed.name, error))
    if is_gone(http):
        log.error("disabled feed=%s status=%s error=%r", feed.name, http, error)
    else:
        log.warning("poll failed feed=%s status=%s error=%r", feed.name, http, error)


def _failing_after(rt: Runtime) -> int:
    return rt.settings.health.failing_after


def _raise_health(rt: Runtime, event: HealthEvent | None, now: datetime) -> None:
    """Queue a health alert (rule ``health``) through the normal outbox."""
    if event is None:
        return
    settings = rt.settings
    channels = health_channels(settings.health.notify, list(settings.channels))
    add_health_alert(rt.store, event, channels, now)
    log.warning("health feed=%s event=%s detail=%r", event.feed, event.kind, event.detail)


# --- from a stored item to matches and alert rows ------------------------------------------


@dataclass
class _FeedLimit:
    """The alerts one poll of a feed has queued per channel, against its limit."""

    most: int  # poll.max_new_alerts_per_feed
    queued: dict[str, int] = field(default_factory=dict)
    reached_on: set[str] = field(default_factory=set)  # channels where matches were held

    def reached(self, channel: str) -> bool:
        if self.queued.get(channel, 0) < self.most:
            return False
        self.reached_on.add(channel)
        return True

    def count(self, channel: str) -> None:
        self.queued[channel] = self.queued.get(channel, 0) + 1


def _match_and_queue(
    rt: Runtime,
    result: FeedResult,
    item: StoredItem,
    first_poll: bool,
    now: datetime,
    report: PollReport,
    limit: _FeedLimit,
    known: Sequence[Match] | None = None,
) -> None:
    """Record the rules matching ``item`` (``known``: computed by a worker) and queue alerts."""
    feed, options = result.feed, result.options
    matches = known if known is not None else match_item(rt.compiled, match_input(item, feed))
    rules = rt.rules_by_id if matches else {}
    for match in matches:
        add_match(rt.store, item.id, match, now)
        report.matches += 1
        report.rule_matches[match.rule_id] += 1
        rule = rules[match.rule_id]
        reason = decide_backlog(options, item, first_poll, now)
        for channel in channels_for(rule, rt.settings):
            over = limit.reached(channel)
            status = queue_alert(rt, rule, channel, item, reason, now, over_limit=over)
            if status is not None:
                report.queued[(channel, str(status))] += 1
            if status is AlertStatus.PENDING:
                report.alerts += 1
                limit.count(channel)
            elif status is AlertStatus.SUPPRESSED:
                report.suppressed += 1
        log.debug(
            "matched rule=%s feed=%s item=%d terms=%s",
            rule.id,
            feed.name,
            item.id,
            ",".join(match.terms),
        )
