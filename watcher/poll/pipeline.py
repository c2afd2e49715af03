"""The poll stage order: fetch -> parse -> match -> snapshot -> decide -> apply -> deliver.

    for each due feed (in worker processes, or threads, which never raise):
        result = fetch_and_parse(); add_matches(result)     -> FeedResult (result.py)
                         (after threads, add_matches runs as each result is stored)
    for each result, in one write transaction (a savepoint of its batch's):
        snapshot = store.snapshot(request_for(result))      what the poll can touch
        history  = store.volume_history(volume_starts(...)) volume rules' recent matches
        intent   = decide_poll(snapshot, history, result)   pure: items, stories, matches,
                                                            alert rows, poll row, feed state
        store.apply(intent)
    then deliver.send.deliver_pending() sends due alerts and marks them sent / retry / failed

``watcher poll`` and the daemon's per-feed job both store a result through
``store_feed_result``. Deciding lives in watcher.decide (pure); everything that touches the
network or the database is called from here, in order.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from watcher.decide.feed import decide_failure, decide_poll, request_for, volume_starts
from watcher.decide.fulltext import KNOWN_ITEMS
from watcher.decide.health import health_channels
from watcher.decide.schedule import next_poll_after_interval_change
from watcher.intent import (
    FeedIntent,
    FeedSnapshot,
    SnapshotRequest,
    VolumeHistory,
)
from watcher.poll import workers
from watcher.poll.articles import add_articles
from watcher.poll.pace import after_poll
from watcher.poll.result import FeedResult, add_matches, fetch_and_parse
from watcher.poll.runtime import Runtime
from watcher.redact import redact_url, without_credentials
from watcher.rules.cache import feeds_sync_file
from watcher.rules.evidence import find_matches
from watcher.rules.match import CompiledRules, match_input
from watcher.store.feeds import due_feeds, sync_config_feeds
from watcher.store.snapshot import known_links, read_articles, read_feeds, read_hashes
from watcher.store.state import add_health_alert, held_feed_ids, last_health_kind
from watcher.types import (
    AlertStatus,
    FeedConfig,
    FeedState,
    FeedStatus,
    FullText,
    HealthEvent,
    HealthKind,
    Rule,
    Settings,
    match_key,
)

if TYPE_CHECKING:
    from watcher.poll import scale as scale_types

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
        full_text=d.full_text,
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
        remember=feeds_sync_file(rt.store.path),
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
    stored: Callable[[PollReport], None] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> PollReport:
    """Fetch, parse and match in workers, then store each batch of feeds in one transaction.

    Each feed's outcome is written in a savepoint of its batch's transaction: a feed that
    fails to store leaves nothing half-written, and the batch shares one commit.
    ``stored`` is called with the report so far after each batch is committed (the alerts
    it queued can be delivered from then on). With a ``clock``, each batch is stored at
    its time (never before ``now``): a feed polled a minute into a long pass was polled
    then, and falls due one interval after that, not after the pass began.
    """
    report = PollReport(feeds=len(feeds))
    jobs = with_known_links(rt, [(feed, feed_options(rt.settings, feed)) for feed in feeds])
    for batch in _fetch_all(rt, jobs, now):
        at = max(now, clock()) if clock is not None else now
        with rt.store.transaction():
            quiet = [r for r in batch if _plain_not_modified(r)]
            done = _store_not_modified(rt, quiet, at, report)
            for result in batch:
                if id(result) not in done:
                    store_feed_result(rt, result, at, report)
                else:
                    _pace_one(rt, result, at, report)
                if progress:
                    progress(result)
        if stored:
            stored(report)
    return report


def with_known_links(
    rt: Runtime, jobs: list[tuple[FeedState, FeedConfig]]
) -> list[tuple[FeedState, FeedConfig]]:
    """The jobs, each feed with ``full_text`` carrying the guids and links of its newest
    stored items (``known_links``): its fetcher then fetches only new items' articles."""
    wanted = [feed.id for feed, options in jobs if options.full_text is not FullText.NEVER]
    if not wanted or rt.articles is None:
        return jobs
    known = known_links(rt.store, wanted, KNOWN_ITEMS)
    return [
        (replace(feed, known_links=known[feed.id]) if feed.id in known else feed, options)
        for feed, options in jobs
    ]


def _plain_not_modified(result: FeedResult) -> bool:
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
) -> set[int]:
    """Record plain 304s together: their feeds read in one query, each decided as any poll
    is, the poll rows and feed states written one statement per table. Returns the ids of
    the results recorded; the others (an error, or a 304 that turns out to need more than
    a poll row) are stored one by one."""
    if not results:
        return set()
    try:
        with rt.store.transaction():
            feeds = read_feeds(rt.store, [r.feed.id for r in results])
            decided = [
                (result, _decide_alone(FeedSnapshot(feeds[result.feed.id]), result, rt, now))
                for result in results
            ]
            plain = [(result, intent) for result, intent in decided if intent.is_plain]
            rt.store.apply_many([intent for _, intent in plain])
    except Exception:  # the feeds are then stored one by one, each on its own
        log.exception("internal error while recording %d unchanged feeds", len(results))
        return set()
    for result, intent in plain:
        log_exchange(result)
        report_intent(result, intent, report)
    return {id(result) for result, _ in plain}


def _decide_alone(
    snapshot: FeedSnapshot, result: FeedResult, rt: Runtime, now: datetime
) -> FeedIntent:
    """A 304 decided on its feed's row alone (it has no items to read more for)."""
    request = SnapshotRequest(result.feed.id, now)
    return decide_poll(snapshot, {}, request, result, rt.rules_by_id, rt.settings, now)


def _pace_one(rt: Runtime, result: FeedResult, now: datetime, report: PollReport) -> None:
    """The feed's next poll from its pace (pace.py); a bug there is logged, never fatal."""
    try:
        with rt.store.transaction():
            after_poll(rt, result, now)
    except Exception:
        log.exception("internal error while pacing feed=%s", result.feed.name)
        report.bugs += 1


def _fetch_all(
    rt: Runtime, jobs: list[tuple[FeedState, FeedConfig]], now: datetime
) -> Iterator[list[FeedResult]]:
    """Batches of results: from Celery workers with ``scale.broker``, from worker processes
    for many feeds, else from threads here."""
    if rt.settings.scale.enabled:
        yield from _fetch_on_workers(rt, jobs, now)
        return
    processes = workers.process_count(len(jobs))
    if processes:
        config = workers.WorkerConfig(
            compiled=rt.compiled,
            user_agent=rt.settings.poll.user_agent,
            block_private=rt.settings.poll.block_private,
            max_bytes=rt.settings.poll.max_bytes,
            threads=max(1, rt.settings.poll.workers // processes),
            fetch_and_parse=fetch_and_parse,
            per_host=rt.settings.poll.per_host,
        )
        yield from workers.poll_in_processes(jobs, config, processes)
        return
    threads = max(1, min(rt.settings.poll.workers, len(jobs)))
    max_bytes = rt.settings.poll.max_bytes
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fetch") as pool:
        results = pool.map(lambda job: fetch_with_articles(rt, job, max_bytes), jobs)
        while batch := list(itertools.islice(results, workers.CHUNK_FEEDS)):
            yield batch


def fetch_with_articles(
    rt: Runtime, job: tuple[FeedState, FeedConfig], max_bytes: int
) -> FeedResult:
    """Fetch and parse one feed, then its new items' article pages (matched when stored)."""
    result = fetch_and_parse(rt.session, job[0], job[1], max_bytes)
    add_articles(rt.articles, result)
    return result


def _fetch_on_workers(
    rt: Runtime, jobs: list[tuple[FeedState, FeedConfig]], now: datetime
) -> Iterator[list[FeedResult]]:
    """Chunks of feeds polled by ``watcher worker`` processes over Celery (scale.py), at
    most two per worker slot in flight; here when the broker or the workers are away."""
    from watcher.poll import scale  # Celery is imported only when scale.broker is set

    dispatcher = scale.Dispatcher(rt.settings.scale, fetch_options(rt.settings), local_poller(rt))
    try:
        chunk = dispatcher.chunk_size(len(jobs))
        chunks = (jobs[i : i + chunk] for i in range(0, len(jobs), chunk))
        window = 2 * dispatcher.capacity()
        for batch in workers.bounded(lambda c: dispatcher.submit(c, rt.compiled), chunks, window):
            raise_scale_events(rt, dispatcher.events(), now)
            yield batch
        raise_scale_events(rt, dispatcher.events(), now)
    finally:
        dispatcher.close()


def fetch_options(settings: Settings) -> scale_types.FetchOptions:
    """What every Celery task carries of the coordinator's ``poll:`` settings."""
    from watcher.poll.scale import FetchOptions

    poll = settings.poll
    return FetchOptions(
        user_agent=poll.user_agent,
        max_bytes=poll.max_bytes,
        block_private=poll.block_private,
        workers=poll.workers,
        per_host=poll.per_host,
    )


def local_poller(
    rt: Runtime,
) -> Callable[[tuple[FeedState, FeedConfig], CompiledRules], FeedResult]:
    """One feed's poll work in this process, for when the workers cannot be reached."""
    max_bytes = rt.settings.poll.max_bytes
    session = rt.session
    articles = rt.articles
    return lambda job, compiled: workers.poll_job(
        session, job, compiled, max_bytes, fetch_and_parse, articles
    )


def raise_scale_events(rt: Runtime, events: Sequence[HealthEvent], now: datetime) -> None:
    """Health alerts about the broker: lost (polling here) once, back once after that."""
    settings = rt.settings
    for event in events:
        with rt.store.transaction():
            last = last_health_kind(rt.store, event.feed)
            if event.kind is HealthKind.FAILING and last is HealthKind.FAILING:
                continue
            if event.kind is HealthKind.RECOVERED and last is not HealthKind.FAILING:
                continue
            channels = health_channels(settings.health.notify, list(settings.channels))
            add_health_alert(rt.store, event, channels, now)
        log.warning("health feed=%s event=%s detail=%r", event.feed, event.kind, event.detail)


# --- one feed's outcome: snapshot -> decide -> apply ---------------------------------------


class FeedStore(Protocol):
    """What recording a poll needs of a store: the SQLite one, or the tests' model."""

    def transaction(self) -> AbstractContextManager[None]: ...

    def snapshot(self, request: SnapshotRequest) -> FeedSnapshot: ...

    def volume_history(self, starts: Mapping[str, datetime]) -> VolumeHistory: ...

    def apply(self, intent: FeedIntent) -> None: ...


def record_result(
    store: FeedStore,
    result: FeedResult,
    rules: Mapping[str, Rule],
    settings: Settings,
    now: datetime,
) -> FeedIntent:
    """Read the poll's snapshot, decide what it changes, write that: one transaction.

    The transaction is a write transaction from its first read (``BEGIN IMMEDIATE``, or a
    savepoint inside one): the ids ``decide`` hands out from the snapshot's next free ids
    stay free until the intent is written.
    """
    with store.transaction():
        request = request_for(result, rules, settings, now)
        snapshot = store.snapshot(request)
        history = store.volume_history(volume_starts(request, snapshot, rules, now))
        intent = decide_poll(snapshot, history, request, result, rules, settings, now)
        store.apply(intent)
    return intent


def record_failure(
    store: FeedStore, result: FeedResult, error: str, settings: Settings, now: datetime
) -> FeedIntent:
    """Record a poll that failed with ``error`` (an internal error while storing it)."""
    with store.transaction():
        snapshot = store.snapshot(SnapshotRequest(result.feed.id, now))
        intent = decide_failure(snapshot, result, error, settings, now)
        store.apply(intent)
    return intent


def store_feed_result(
    rt: Runtime, result: FeedResult, now: datetime, report: PollReport
) -> FeedIntent:
    """Store one feed's outcome, then set its next poll from its pace (pace.py); a bug while
    storing is recorded as the feed's error (and counted, so the pass ends with exit 3)
    instead of stopping the pass. ``watcher poll`` and the daemon's per-feed job both store
    through here."""
    try:
        intent = store_result(rt, result, now, report)
    except Exception as e:  # a bug: record it, finish the pass, exit 3 later
        log.exception("internal error feed=%s", result.feed.name)
        report.bugs += 1
        error = f"internal error: {type(e).__name__}: {e}"
        intent = record_failure(rt.store, result, error, rt.settings, now)
        report_intent(result, intent, report)
    _pace_one(rt, result, now, report)
    return intent


def store_result(rt: Runtime, result: FeedResult, now: datetime, report: PollReport) -> FeedIntent:
    """Write one feed's outcome: items, matches, alerts and the poll row, in one transaction."""
    log_exchange(result)
    with rt.store.transaction():
        if result.parsed is not None and result.matches is None:
            # fetched in a thread, not a worker process: its new and changed items are
            # matched here, one feed at a time (a feed's huge items are never matched in
            # several threads at once), and the unchanged ones not at all
            stored = read_hashes(rt.store, result.feed.id, [i.guid for i in result.parsed.items])
            add_matches(result, rt.compiled, stored)
        _match_edits_with_their_articles(rt, result)
        intent = record_result(rt.store, result, rt.rules_by_id, rt.settings, now)
    report_intent(result, intent, report)
    return intent


def _match_edits_with_their_articles(rt: Runtime, result: FeedResult) -> None:
    """An edited item keeps the article it was stored with (only a new link is fetched
    again), so its new version is matched with that article, as its first one was."""
    parsed, matches = result.parsed, result.matches
    if parsed is None or not matches or result.options.full_text is FullText.NEVER:
        return
    fetched = result.articles or {}
    guids = [item.guid for item in parsed.items if item.guid not in fetched]
    stored = read_articles(rt.store, result.feed.id, guids) if guids else {}
    hashes = result.hashes or ()
    for item, digest in zip(parsed.items, hashes, strict=True):
        key = match_key(item.guid, digest)
        kept = stored.get(item.guid)
        if key in matches and kept is not None and kept[0] != digest:
            subject = match_input(item, result.feed, kept[1])
            matches[key] = find_matches(rt.compiled, subject)


def report_intent(result: FeedResult, intent: FeedIntent, report: PollReport) -> None:
    """Count and log what one poll wrote."""
    feed = result.feed
    for event in intent.health:
        log.warning("health feed=%s event=%s detail=%r", event.feed, event.kind, event.detail)
    if intent.outcome is FeedStatus.ERROR:
        error = intent.error or "no response"
        report.failed.append((feed.name, error))
        http = intent.poll.http_status
        if intent.feed.last_status == FeedStatus.DISABLED and intent.feed.disabled_reason:
            log.error("disabled feed=%s status=%s error=%r", feed.name, http, error)
        else:
            log.warning("poll failed feed=%s status=%s error=%r", feed.name, http, error)
        return
    if intent.outcome is FeedStatus.NOT_MODIFIED:
        report.not_modified += 1
        log.info("polled feed=%s status=not_modified", feed.name)
        return
    new = sum(w.stored.change == "new" for w in intent.items)
    updated = len(intent.items) - new
    report.ok += 1
    report.new_items += new
    report.updated_items += updated
    report.matches += len(intent.matches)
    first_poll = result.feed.last_success_at is None
    for write in intent.items:
        published = write.stored.published_at
        if write.stored.change == "new" and published is not None and not first_poll:
            report.lags_s.append((intent.poll.started_at - published).total_seconds())
    for row in intent.matches:
        report.rule_matches[row.match.rule_id] += 1
    for alert in intent.alerts:
        if alert.health is None:
            report.queued[(alert.channel, str(alert.status))] += 1
        if alert.health is None and alert.status is AlertStatus.PENDING:
            report.alerts += 1
        elif alert.status is AlertStatus.SUPPRESSED:
            report.suppressed += 1
    if log.isEnabledFor(logging.DEBUG):
        for row in intent.matches:
            log.debug(
                "matched rule=%s feed=%s item=%d terms=%s",
                row.match.rule_id,
                feed.name,
                row.item_id,
                ",".join(row.match.terms),
            )
        total = len(result.parsed.items) if result.parsed is not None else 0
        log.debug(
            "items feed=%s new=%d updated=%d unchanged=%d",
            feed.name,
            new,
            updated,
            total - new - updated,
        )
    verb = "pushed" if result.pushed else "polled"
    log.info("%s feed=%s status=ok items=%d new=%d", verb, feed.name, _item_count(result), new)


def _item_count(result: FeedResult) -> int:
    return len(result.parsed.items) if result.parsed is not None else 0


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
        fetched.size,
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
