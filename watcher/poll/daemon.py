"""``watcher run``: APScheduler wiring, signals, reload and the database lock.

Polling is pipeline.py's, sending deliver/send.py's, and the decisions of when to poll and
of the sources' health are in decide/schedule.py and decide/health.py; but the daemon still
sequences some work of its own: the hourly quiet check (which queues health alerts),
syncing the config's feeds into jobs on a reload, and moving a job when its feed is due
sooner. A feed's job fetches with ``fetch_and_parse`` and stores through the pipeline's
``store_feed_result``, as ``watcher poll`` does, so both store a poll, and a bug while
storing it, the same way.

    install the signal handlers; take the lock; load config and rules; sync feeds; then one
    BlockingScheduler whose jobs all run through ``run_job`` (a bug is logged, never raised)
      feed:<name>               IntervalTrigger(interval, jitter), max_instances=1, coalesce;
                                first run at the stored next_poll_at (overdue feeds: spread
                                over a minute; feeds of one interval due bunched: spread over
                                it, earlier); after each poll, next run = the new next_poll_at
      internal:deliver-pending  every 30 s, and at once after a poll that queued alerts
      internal:heartbeat        every 60 s: ``_instance.heartbeat_at`` for ``status --check``
      internal:watch            every 3 s: config/rule file changes -> reload; feeds added or
                                removed in the database -> jobs added or removed
      internal:health-quiet     hourly: "feed gone quiet" health alerts
      internal:prune            hourly: retention and poll_log_retention (the prune handed in)
      internal:websub           with websub set, every minute: subscribe, renew, unsubscribe
    with websub set, the WebSub callback on a thread of its own (websub.py); a signed push
    becomes a one-off job that parses and stores it as a poll's body (no poll row)
    with ``--metrics`` or ``metrics.listen``: /metrics and /healthz on a thread of their own
    (metrics.py), counted from each poll's result and each delivery pass
    SIGHUP -> reload (an invalid new config is logged, the running one kept)
    SIGTERM/SIGINT -> stop taking work, wait for jobs in flight (bounded), exit 0; also
                      when it arrives before the scheduler runs (it then stops as it starts)

Each worker thread has its own database connection. ``WATCHER_TIME_SCALE`` (tests only)
makes the daemon's clock run faster: 0.01 turns a 1 m interval into 0.6 s of real time.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MISSED,
    EVENT_SCHEDULER_STARTED,
    JobExecutionEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from watcher.config import require_variables
from watcher.decide.health import check_problems, health_channels, quiet_event
from watcher.decide.schedule import (
    first_run_at,
    jitter_s,
    next_poll_after_interval_change,
    spread_bunched,
)
from watcher.decide.websub import effective_state
from watcher.deliver.channels import Channel, make_channel
from watcher.deliver.send import deliver_pending
from watcher.exceptions import WatcherError
from watcher.lock import hold_lock
from watcher.poll.articles import ArticleFetcher, add_articles, make_fetcher
from watcher.poll.fetch import make_session
from watcher.poll.hosts import HostSlots
from watcher.poll.httpd import SmallServer
from watcher.poll.indexer import Indexer
from watcher.poll.metrics import Metrics, State, metrics_handler
from watcher.poll.pipeline import (
    PollReport,
    feed_options,
    fetch_options,
    local_poller,
    raise_scale_events,
    store_feed_result,
    store_result,
    with_known_links,
)
from watcher.poll.result import fetch_and_parse, parse_pushed
from watcher.poll.runtime import Runtime
from watcher.poll.websub import Callback, Push, Subscriber
from watcher.rules.cache import cache_folder, feeds_sync_file, load_compiled
from watcher.rules.match import SCAN_BUILT
from watcher.store import Store
from watcher.store.feeds import (
    get_feed,
    last_new_item_times,
    list_feeds,
    move_polls_earlier,
    sync_config_feeds,
)
from watcher.store.state import (
    add_health_alert,
    instance_id,
    mark_quiet_reported,
    quiet_reported_for,
    read_heartbeat,
    write_heartbeat,
)
from watcher.store.stats import pending_alerts
from watcher.store.websub import list_subscriptions
from watcher.types import AUTO_INTERVAL, FeedState, FeedStatus, Listen, Settings

if TYPE_CHECKING:
    from watcher.poll.scale import Dispatcher

log = logging.getLogger(__name__)

DELIVER_JOB = "internal:deliver-pending"
HEARTBEAT_JOB = "internal:heartbeat"
WATCH_JOB = "internal:watch"
QUIET_JOB = "internal:health-quiet"
PRUNE_JOB = "internal:prune"
WEBSUB_JOB = "internal:websub"
MAX_PUSHES_WAITING = 64  # signed pushes taken but not yet stored; past it, the hub retries
SLOW_POLL_S = 30.0


@dataclass(frozen=True)
class DaemonOptions:
    """Periods in the daemon's seconds (scaled by ``time_scale``); the stop bound is real."""

    deliver_period_s: float = 30.0
    heartbeat_period_s: float = 60.0
    watch_period_s: float = 3.0
    housekeeping_period_s: float = 3600.0
    websub_period_s: float = 60.0
    stop_timeout_s: float = 30.0
    time_scale: float = 1.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DaemonOptions:
        """Read the test-only ``WATCHER_TIME_SCALE`` and ``WATCHER_STOP_TIMEOUT``."""
        scale = float(env.get("WATCHER_TIME_SCALE", "1") or 1)
        stop = float(env.get("WATCHER_STOP_TIMEOUT", "30") or 30)
        return cls(time_scale=scale if scale > 0 else 1.0, stop_timeout_s=stop)


class Clock:
    """The daemon's clock: real time, or time running ``1/scale`` times faster (tests)."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale
        self.origin = datetime.now(UTC)

    def now(self) -> datetime:
        elapsed = datetime.now(UTC) - self.origin
        return (self.origin + elapsed / self.scale).replace(microsecond=0)

    def real(self, moment: datetime) -> datetime:
        """The real time at which the daemon's clock shows ``moment``."""
        return self.origin + (moment - self.origin) * self.scale

    def seconds(self, seconds: float) -> float:
        return seconds * self.scale


@dataclass(frozen=True)
class Loaded:
    """Everything built from one version of the config and the rule files."""

    settings: Settings
    runtime: Runtime  # its store is the main thread's; workers swap in their own


# --- jobs: one module-level function that never raises runs them all --------------------


def warn_without_scan() -> None:
    """Say at start when rule matching runs without its C module, and what that costs."""
    if not SCAN_BUILT:
        log.warning(
            "rule matching runs without its C module (watcher/_scan.c), at about 40 %"
            " of its speed; reinstall watcher where a C compiler is present"
        )


def run_job(job_id: str, work: Callable[..., object], *args: object) -> None:
    """Every job of the scheduler: ``work(*args)``, a method of the daemon. A job never
    raises: a bug is logged with its traceback and the next run goes on."""
    try:
        work(*args)
    except Exception:
        log.exception("internal error in job=%s", job_id)


# --- the daemon ----------------------------------------------------------------------------


# Applies ``retention`` and ``poll_log_retention`` (archive/retention.py's prune_archive,
# handed in by the command line: the poll stage does not import the archive).
Prune = Callable[[Store, Settings, datetime], object]


class Daemon:
    """One running ``watcher run``: built from a settings loader, run with ``run()``."""

    def __init__(
        self,
        load: Callable[[], Settings],
        options: DaemonOptions,
        prune: Prune,
        *,
        metrics_listen: Listen | None = None,
    ) -> None:
        self.load = load
        self._metrics_listen = metrics_listen  # `run --metrics`: wins over metrics.listen
        self.metrics: Metrics | None = None
        self._servers: list[SmallServer] = []
        self._websub_on = False  # websub was set at start: callback served, hubs asked
        self._push_lock = threading.Lock()
        self._pushes_waiting = 0
        self.options = options
        self._prune = prune
        self.clock = Clock(options.time_scale)
        self.stopping = threading.Event()
        self._stop_lock = threading.Lock()
        self.rng = random.Random()
        self._local = threading.local()
        self._flight = threading.Condition()
        self._in_flight = 0
        self._deliver_wanted = threading.Event()
        self._delivering = threading.Event()
        self._feed_jobs: dict[str, tuple[int, int]] = {}  # job id -> (feed id, interval_s)
        self._planned_from: dict[str, datetime | None] = {}  # job id -> next_poll_at it follows
        self._planned_at: dict[str, datetime] = {}  # job id -> the real time its run is planned
        self._jobs_lock = threading.RLock()
        self._files: dict[Path, int | None] = {}
        self.loaded: Loaded | None = None
        self.hosts = HostSlots(1)
        self.articles: ArticleFetcher | None = None  # full_text: shares self.hosts
        self.dispatcher: Dispatcher | None = None  # scale.broker: polls go to Celery workers
        self.scheduler = BlockingScheduler(timezone=UTC)

    # --- lifecycle ---------------------------------------------------------------------

    def run(self) -> int:
        """Take the lock and run until SIGTERM/SIGINT; returns the exit code (0).

        The signal handlers come first: a SIGTERM at any moment after that, even before
        the scheduler runs, stops the daemon cleanly (the scheduler then starts and stops
        at once, before any job runs).
        """
        previous = self._install_signals()
        try:
            settings = self.load()
            with hold_lock(settings.database, "run"):
                self.loaded = self._build(settings, self.store(settings.database))
                self.hosts = HostSlots(settings.poll.per_host)
                self._new_fetcher()
                self._start_dispatcher(settings)
                self._files = _snapshot(settings)
                self._configure_scheduler(settings)
                self._sync_jobs(self._sync_feeds(settings))
                self._add_internal_jobs()
                self.heartbeat()
                self._start_servers(settings)
                self._log_start(settings)
                with Indexer(settings.database):  # fills the search index beside the polls
                    self.scheduler.start()  # blocks until stop()
                    self._finish_in_flight()
        finally:
            self._stop_servers()
            if self.dispatcher is not None:
                self.dispatcher.close()
            if self.articles is not None:
                self.articles.close(wait=False)
            _restore_signals(previous)
        log.info("stopped pid=%d", os.getpid())
        return 0

    def stop(self, why: str) -> None:
        """Stop taking work; ``run()`` then waits for the jobs in flight."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        log.info("stopping reason=%s", why)
        self._shutdown_scheduler()
        self._stop_servers()

    def _shutdown_scheduler(self) -> None:
        """Shut the scheduler down if it runs; one that has not started yet shuts itself
        down as it starts (``_on_start``), so a stop is never lost in between."""
        with self._stop_lock, suppress(SchedulerNotRunningError):
            self.scheduler.shutdown(wait=False)

    def _start_dispatcher(self, settings: Settings) -> None:
        """With ``scale.broker``: poll on Celery workers (here while they cannot be reached)."""
        if not settings.scale.enabled:
            return
        from watcher.poll.scale import RECHECK_S
        from watcher.poll.scale import Dispatcher as Dispatch

        assert self.loaded is not None
        self.dispatcher = Dispatch(
            settings.scale,
            fetch_options(settings),
            local_poller(replace(self.loaded.runtime, articles=self.articles)),
            recheck_s=self.clock.seconds(RECHECK_S),
        )

    def _start_servers(self, settings: Settings) -> None:
        """The metrics and health endpoint, when ``--metrics`` or ``metrics.listen`` asks."""
        listen = self._metrics_listen or settings.metrics.listen
        if listen is not None:
            self.metrics = Metrics(self._metrics_state)
            server = SmallServer(listen, "metrics", metrics_handler(self.metrics, self._problems))
            server.start()
            self._servers.append(server)
        websub = settings.websub
        if websub.enabled and websub.listen is not None:
            callback = Callback(
                lambda: Store(self._database()),
                self.clock.now,
                settings.poll.max_bytes,
                self._take_push,
                self._count_push,
            )
            server = SmallServer(websub.listen, "websub", callback)
            server.start()
            self._servers.append(server)
            self._websub_on = True
            self._add_websub_job()

    def _stop_servers(self) -> None:
        with self._stop_lock:
            servers, self._servers = self._servers, []
        for server in servers:
            server.stop()

    def _metrics_state(self) -> State:
        """The gauges' values, read in the scraping thread with a connection of its own."""
        store = Store(self._database(), readonly=True)
        try:
            now = self.clock.now()
            states = Counter(effective_state(s, now) for s in list_subscriptions(store))
            return State(outbox_pending=pending_alerts(store), subscriptions=states)
        finally:
            store.close()

    def _problems(self) -> list[str]:
        """``watcher status --check``'s verdict, for ``/healthz``."""
        assert self.loaded is not None
        settings = self.loaded.settings
        store = Store(self._database(), readonly=True)
        try:
            heartbeat, feeds = read_heartbeat(store), list_feeds(store)
        finally:
            store.close()
        return check_problems(
            heartbeat,
            feeds,
            self.clock.now(),
            failing_after=settings.health.failing_after,
            default_interval_s=settings.defaults.interval_s,
        )

    def _add_websub_job(self) -> None:
        seconds = self.clock.seconds(self.options.websub_period_s)
        self.scheduler.add_job(
            run_job,
            IntervalTrigger(seconds=seconds, timezone=UTC),
            args=[WEBSUB_JOB, self.websub_tick],
            id=WEBSUB_JOB,
            executor="internal",
            misfire_grace_time=max(1, int(seconds)),
            next_run_time=datetime.now(UTC) + timedelta(seconds=min(seconds, 1.0)),
        )

    def websub_tick(self) -> None:
        """Ask the hubs for what each subscription needs (subscribe, renew, unsubscribe)."""
        with self._job() as go:
            if not go or self.loaded is None:
                return
            rt = self.runtime()
            subscriber = Subscriber(rt.settings.websub, rt.session)
            subscriber.tick(rt.store, self.clock.now(), self.stopping.is_set)

    def _take_push(self, push: Push) -> bool:
        """Queue a signed delivery for storing; False when too many wait (or stopping)."""
        with self._push_lock:
            if self._pushes_waiting >= MAX_PUSHES_WAITING or self.stopping.is_set():
                return False
            self._pushes_waiting += 1
        try:
            self.scheduler.add_job(
                run_job,
                args=[f"push:{push.feed_id}", self.store_push, push],
                executor="default",
                misfire_grace_time=None,
            )
        except SchedulerNotRunningError:
            self._push_done()
            return False
        return True

    def _push_done(self) -> None:
        with self._push_lock:
            self._pushes_waiting -= 1

    def _count_push(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.observe_push(result)

    def store_push(self, push: Push) -> None:
        """Parse and store a pushed body as a poll's would be: items, matches, alerts."""
        try:
            with self._job() as go:
                if go:
                    self._store_push(push)
        finally:
            self._push_done()

    def _store_push(self, push: Push) -> None:
        rt = self.runtime()
        feed = get_feed(rt.store, push.feed_id)
        if feed.last_status == FeedStatus.DISABLED:
            log.info("websub push ignored feed=%s reason=disabled", feed.name)
            return
        options = feed_options(rt.settings, feed)
        ((feed, options),) = with_known_links(rt, [(feed, options)])
        result = parse_pushed(feed, options, push.body, push.content_type, push.headers)
        if result.error is not None:
            log.warning("websub push unreadable feed=%s error=%r", feed.name, result.error)
            self._count_push("dropped")
            return
        add_articles(rt.articles, result)  # full_text: as for a poll
        report = PollReport(feeds=1)
        store_result(rt, result, self.clock.now(), report)
        self._count_push("stored")
        if self.metrics is not None:
            self.metrics.observe_poll(result, report, pushed=True)
        if report.alerts:
            self.deliver_soon()

    def _database(self) -> Path:
        assert self.loaded is not None
        return self.loaded.settings.database

    def _on_start(self, _event: object) -> None:
        if self.stopping.is_set():  # stopped before the scheduler was running
            self._shutdown_scheduler()

    def _finish_in_flight(self) -> None:
        deadline = time.monotonic() + self.options.stop_timeout_s
        with self._flight:
            while self._in_flight and time.monotonic() < deadline:
                self._flight.wait(deadline - time.monotonic())
            left = self._in_flight
        if left:
            log.warning("stop timeout jobs=%d: exiting without them", left)
            logging.shutdown()
            os._exit(0)  # their transactions roll back; the next start picks them up

    @contextmanager
    def _job(self) -> Iterator[bool]:
        """Count a job in flight; yields False once stopping (the job then does nothing)."""
        with self._flight:
            self._in_flight += 1
        try:
            yield not self.stopping.is_set()
        finally:
            with self._flight:
                self._in_flight -= 1
                self._flight.notify_all()

    def _install_signals(self) -> dict[int, Any]:
        """SIGTERM/SIGINT stop, SIGHUP reloads, each from a short thread (never inside the
        handler); returns the handlers they replace."""

        def on_stop(signum: int, _frame: FrameType | None) -> None:
            name = signal.Signals(signum).name
            threading.Thread(target=self.stop, args=(name,), daemon=True).start()

        def on_hup(_signum: int, _frame: FrameType | None) -> None:
            threading.Thread(target=self.reload, args=("SIGHUP",), daemon=True).start()

        handlers = {signal.SIGTERM: on_stop, signal.SIGINT: on_stop, signal.SIGHUP: on_hup}
        return {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}

    def _log_start(self, settings: Settings) -> None:
        rt = self.runtime()
        log.info(
            "started pid=%d database=%s feeds=%d rules=%d channels=%s workers=%d per_host=%d",
            os.getpid(),
            settings.database,
            len(self._feed_jobs),
            len(rt.rules),
            ",".join(rt.channels) or "-",
            settings.poll.workers,
            settings.poll.per_host,
        )
        warn_without_scan()

    # --- runtime per thread ------------------------------------------------------------

    def store(self, path: Path | None = None) -> Store:
        """This thread's database connection (opened on first use)."""
        store: Store | None = getattr(self._local, "store", None)
        if store is None:
            assert path is not None or self.loaded is not None
            store = Store(path or self.loaded.settings.database)  # type: ignore[union-attr]
            self._local.store = store
        return store

    def runtime(self) -> Runtime:
        """The current config and rules, with this thread's database connection."""
        assert self.loaded is not None
        return replace(self.loaded.runtime, store=self.store(), articles=self.articles)

    def _build(self, settings: Settings, store: Store) -> Loaded:
        """Load rules and build channels; raises ConfigError (WatcherError) when invalid."""
        require_variables(settings)
        folder = cache_folder(settings.database)
        rules, compiled = load_compiled(settings.rules, list(settings.channels), folder)
        instance = instance_id(store)
        channels: dict[str, Channel] = {
            name: make_channel(cfg, instance) for name, cfg in settings.channels.items()
        }
        runtime = Runtime(
            settings=settings,
            store=store,
            rules=rules,
            compiled=compiled,
            channels=channels,
            session=make_session(
                settings.poll.user_agent,
                pool_size=settings.poll.workers,
                block_private=settings.poll.block_private,
            ),
        )
        return Loaded(settings=settings, runtime=runtime)

    # --- scheduling --------------------------------------------------------------------

    def _configure_scheduler(self, settings: Settings) -> None:
        self.scheduler.configure(
            executors={
                "default": ThreadPoolExecutor(max(1, settings.poll.workers)),
                "internal": ThreadPoolExecutor(4),
            },
            job_defaults={"coalesce": True, "max_instances": 1},
        )
        self.scheduler.add_listener(_log_job_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED)
        self.scheduler.add_listener(self._on_start, EVENT_SCHEDULER_STARTED)

    def _add_internal_jobs(self) -> None:
        o = self.options
        jobs: list[tuple[str, Callable[[], None], float]] = [
            (DELIVER_JOB, self.deliver, o.deliver_period_s),
            (HEARTBEAT_JOB, self.heartbeat, o.heartbeat_period_s),
            (WATCH_JOB, self.watch, o.watch_period_s),
            (QUIET_JOB, self.check_quiet, o.housekeeping_period_s),
            (PRUNE_JOB, self.prune, o.housekeeping_period_s),
        ]
        now = datetime.now(UTC)
        for job_id, work, period in jobs:
            seconds = self.clock.seconds(period)
            self.scheduler.add_job(
                run_job,
                IntervalTrigger(seconds=seconds, timezone=UTC),
                args=[job_id, work],
                id=job_id,
                executor="internal",
                misfire_grace_time=max(1, int(seconds)),
                next_run_time=now + timedelta(seconds=seconds if job_id == WATCH_JOB else 0),
            )

    def _sync_jobs(self, feeds: Sequence[FeedState]) -> None:
        """One job per enabled feed: add new feeds, drop gone ones, follow interval changes."""
        wanted = {f"feed:{f.name}": f for f in feeds if f.last_status != FeedStatus.DISABLED}
        with self._jobs_lock:
            for job_id in list(self._feed_jobs):
                if job_id not in wanted:
                    self._remove_job(job_id)
                    log.info("unscheduled feed=%s", job_id.removeprefix("feed:"))
                elif self._feed_jobs[job_id] != _job_key(wanted[job_id]):
                    self._remove_job(job_id)
            new = self._spread([f for j, f in wanted.items() if j not in self._feed_jobs])
            for feed in new:
                self._add_feed_job(f"feed:{feed.name}", feed)

    def _spread(self, feeds: list[FeedState]) -> list[FeedState]:
        """The feeds about to be scheduled, those that fall due bunched moved earlier
        (decide/schedule.py ``spread_bunched``), in the database too."""
        moves = spread_bunched(feeds, self.clock.now())
        if not moves:
            return feeds
        move_polls_earlier(self.store(), moves)
        log.info("spread feeds=%d over their interval: polled earlier than due", len(moves))
        return [replace(f, next_poll_at=moves[f.id]) if f.id in moves else f for f in feeds]

    def _sync_feeds(self, settings: Settings) -> list[FeedState]:
        """The config's feeds into the database; the feeds that are not disabled."""
        store = self.store()
        return sync_config_feeds(
            store,
            settings.feeds,
            self.clock.now(),
            settings.defaults.interval_s,
            reschedule=next_poll_after_interval_change,
            default_auto=settings.defaults.auto_bounds,
            remember=feeds_sync_file(settings.database),
        )

    def _follow_requests(self, feeds: Sequence[FeedState]) -> None:
        """Run a job sooner when its feed's ``next_poll_at`` moved earlier in the database
        (``watcher poll --feed`` asking for a poll now, or a changed interval)."""
        for feed in feeds:
            job_id = f"feed:{feed.name}"
            with self._jobs_lock:
                if job_id not in self._feed_jobs or feed.last_status == FeedStatus.DISABLED:
                    continue
                planned = self._planned_from.get(job_id)
            if _moved_earlier(feed.next_poll_at, planned):
                log.info("poll moved earlier feed=%s", feed.name)
                self._reschedule(feed, jitter=False)

    def _add_feed_job(self, job_id: str, feed: FeedState) -> None:
        now = self.clock.now()
        interval = self.clock.seconds(feed.interval_s)
        first = first_run_at(feed.next_poll_at, now, feed.interval_s, self.rng)
        self.scheduler.add_job(
            run_job,
            IntervalTrigger(seconds=interval, jitter=self.clock.seconds(jitter_s(feed.interval_s))),
            args=[job_id, self.poll_feed, feed.id],
            id=job_id,
            name=job_id,
            misfire_grace_time=max(1, int(interval)),
            next_run_time=self.clock.real(first),
        )
        self._feed_jobs[job_id] = _job_key(feed)
        self._planned_from[job_id] = feed.next_poll_at
        self._planned_at[job_id] = self.clock.real(first)
        log.debug("scheduled feed=%s first=%s", feed.name, first.isoformat())

    def _remove_job(self, job_id: str) -> None:
        self._feed_jobs.pop(job_id, None)
        self._planned_from.pop(job_id, None)
        self._planned_at.pop(job_id, None)
        with suppress(JobLookupError):
            self.scheduler.remove_job(job_id)

    def _reschedule(self, feed: FeedState, *, jitter: bool = True) -> None:
        """Run the feed's job next at its stored ``next_poll_at`` (plus jitter)."""
        job_id = f"feed:{feed.name}"
        now = self.clock.now()
        at = max(feed.next_poll_at or now, now)
        if jitter:
            at += timedelta(seconds=self.rng.uniform(0, jitter_s(feed.interval_s)))
        with self._jobs_lock, suppress(JobLookupError):
            if job_id in self._feed_jobs:
                self._planned_from[job_id] = feed.next_poll_at
                self._planned_at[job_id] = self.clock.real(at)
                self.scheduler.modify_job(job_id, next_run_time=self.clock.real(at))

    def deliver_soon(self) -> None:
        """Deliver now (alerts exist that were not there a moment ago)."""
        self._deliver_wanted.set()
        if self._delivering.is_set():
            return  # the pass running now sees the flag and goes round once more
        with suppress(JobLookupError):
            self.scheduler.modify_job(DELIVER_JOB, next_run_time=datetime.now(UTC))

    # --- what the jobs do --------------------------------------------------------------

    def poll_feed(self, feed_id: int) -> None:
        """Poll one feed if it is due, within its host's slot; then set its next run."""
        with self._job() as go:
            if not go:
                return
            rt = self.runtime()
            feed = get_feed(rt.store, feed_id)
            if feed.last_status == FeedStatus.DISABLED:
                with self._jobs_lock:
                    self._remove_job(f"feed:{feed.name}")
                return
            now = self.clock.now()
            if feed.next_poll_at is not None and feed.next_poll_at > now:
                self._reschedule(feed)  # backed off, Retry-After or Cache-Control
                return
            self._observe_delay(f"feed:{feed.name}")
            report = self._poll(rt, feed, now)
            self._after_poll(rt, feed, report)

    def _observe_delay(self, job_id: str) -> None:
        """How late this poll starts after its planned run, in real seconds (metrics)."""
        with self._jobs_lock:
            planned = self._planned_at.get(job_id)
        if planned is not None and self.metrics is not None:
            self.metrics.observe_delay((datetime.now(UTC) - planned).total_seconds())

    def _new_fetcher(self) -> None:
        """The article fetcher of the loaded config, on its session and the daemon's
        per-host slots (a reload makes both anew)."""
        assert self.loaded is not None
        old, rt = self.articles, self.loaded.runtime
        self.articles = make_fetcher(rt.session, rt.settings.poll, self.hosts)
        if old is not None:
            old.close(wait=False)

    def _poll(self, rt: Runtime, feed: FeedState, now: datetime) -> PollReport:
        started = time.monotonic()
        options = feed_options(rt.settings, feed)
        ((feed, options),) = with_known_links(rt, [(feed, options)])
        with self.hosts.slot(feed.url):
            if self.dispatcher is not None:
                result = self.dispatcher.submit([(feed, options)], rt.compiled).result()[0]
            else:
                result = fetch_and_parse(rt.session, feed, options, rt.settings.poll.max_bytes)
        if self.dispatcher is None:  # article pages outside the feed's slot, then stored
            add_articles(rt.articles, result)
        if self.dispatcher is not None:
            raise_scale_events(rt, self.dispatcher.events(), now)
        report = PollReport(feeds=1)
        store_feed_result(rt, result, now, report)  # the same path as `watcher poll`
        if self.metrics is not None:
            self.metrics.observe_poll(result, report)
        if time.monotonic() - started > SLOW_POLL_S:
            log.warning("slow poll feed=%s seconds=%.0f", feed.name, time.monotonic() - started)
        return report

    def _after_poll(self, rt: Runtime, before: FeedState, report: PollReport) -> None:
        after = get_feed(rt.store, before.id)
        if after.last_status == FeedStatus.DISABLED:
            with self._jobs_lock:
                self._remove_job(f"feed:{before.name}")
        else:
            self._reschedule(after)
        if report.alerts or report.failed or before.consecutive_failures:
            self.deliver_soon()  # new alerts, or maybe a health alert

    def heartbeat(self) -> None:
        """Tell ``status --check`` the daemon is alive."""
        write_heartbeat(self.store(), self.clock.now())

    def deliver(self) -> None:
        with self._job() as go:
            self._delivering.set()
            try:
                while go and not self.stopping.is_set():
                    self._deliver_wanted.clear()
                    report = deliver_pending(self.runtime(), self.clock.now())
                    if self.metrics is not None:
                        self.metrics.observe_delivery(report.outcomes)
                    if not self._deliver_wanted.is_set():
                        return
            finally:
                self._delivering.clear()

    def watch(self) -> None:
        """Reload when the config or a rule file changed; follow feeds added in the db."""
        with self._job() as go:
            if not go or self.loaded is None:
                return
            if _snapshot(self.loaded.settings) != self._files:
                self.reload("file changed")
            feeds = list_feeds(self.store())
            self._sync_jobs(feeds)
            self._follow_requests(feeds)

    def reload(self, why: str) -> None:
        """Load the config and rules again; keep the running ones when the new are invalid."""
        with self._job() as go:
            if not go or self.loaded is None:
                return
            old = self.loaded.settings
            try:
                settings = self.load()
                if settings.database != old.database:
                    log.warning("database changed in the config: restart watcher to use it")
                loaded = self._build(replace(settings, database=old.database), self.store())
            except WatcherError as e:
                self._files = _snapshot(old)  # reported once per change of the files
                for line in str(e).splitlines():
                    log.error("reload failed, keeping the running config reason=%s: %s", why, line)
                return
            except Exception:  # a bug: reported once per change too, not at every watch
                self._files = _snapshot(old)
                log.exception("internal error on reload, keeping the running config")
                return
            self._apply(loaded, why)

    def _apply(self, loaded: Loaded, why: str) -> None:
        old = self.loaded.settings if self.loaded else loaded.settings
        new = loaded.settings
        if new.poll.workers != old.poll.workers:
            log.warning("poll.workers changed: restart watcher to use it")
        if new.metrics != old.metrics and self._metrics_listen is None:
            log.warning("metrics changed in the config: restart watcher to use it")
        if (new.websub.listen, new.websub.public_url) != (old.websub.listen, old.websub.public_url):
            log.warning("websub listen or public_url changed: restart watcher to use them")
        self.loaded = loaded
        self.hosts = HostSlots(new.poll.per_host)
        self._new_fetcher()
        self._files = _snapshot(new)
        self._sync_jobs(self._sync_feeds(new))
        log.info(
            "reloaded reason=%s feeds=%d rules=%d",
            why,
            len(self._feed_jobs),
            len(loaded.runtime.rules),
        )

    def check_quiet(self) -> None:
        """Queue a "gone quiet" health alert for each feed without news for too long."""
        with self._job() as go:
            if not go:
                return
            rt = self.runtime()
            now = self.clock.now()
            settings = rt.settings
            channels = health_channels(settings.health.notify, list(settings.channels))
            latest = last_new_item_times(rt.store)
            raised = 0
            for feed in list_feeds(rt.store):
                last = latest.get(feed.id)
                reported = quiet_reported_for(rt.store, feed.id)
                event = quiet_event(feed, last, reported, now, settings.health.quiet_after_s)
                if event is None or last is None:
                    continue
                with rt.store.transaction():
                    add_health_alert(rt.store, event, channels, now)
                    mark_quiet_reported(rt.store, feed.id, last)
                log.warning(
                    "health feed=%s event=%s detail=%r", feed.name, event.kind, event.detail
                )
                raised += 1
            if raised:
                self.deliver_soon()

    def prune(self) -> None:
        """Apply ``retention`` and ``poll_log_retention`` (the ``prune`` handed in does it)."""
        with self._job() as go:
            if go:
                rt = self.runtime()
                self._prune(rt.store, rt.settings, self.clock.now())


def _restore_signals(previous: Mapping[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def _moved_earlier(current: datetime | None, planned: datetime | None) -> bool:
    """Whether a feed's ``next_poll_at`` is now earlier than the one its job was planned
    from (None is "due now", the earliest)."""
    if planned is None:
        return False
    return current is None or current < planned


def _job_key(feed: FeedState) -> tuple[int, int]:
    """What a feed's job is built from: a new key rebuilds the job. An adaptive interval
    changes at every poll and is followed through ``next_poll_at`` instead."""
    return (feed.id, -1 if feed.interval_source == AUTO_INTERVAL else feed.interval_s)


def _snapshot(settings: Settings) -> dict[Path, int | None]:
    """Modification times of the config file, the rule files and their folders."""
    paths = {settings.path, *settings.rules, *(p.parent for p in settings.rules)}
    return {p: _mtime(p) for p in paths}


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def _log_job_event(event: Any) -> None:
    if isinstance(event, JobExecutionEvent) and event.exception is not None:
        log.error("job failed job=%s error=%r", event.job_id, event.exception)
    else:
        log.warning("job missed job=%s", getattr(event, "job_id", "?"))


def run_daemon(
    load: Callable[[], Settings],
    prune: Prune,
    env: Mapping[str, str] | None = None,
    *,
    metrics_listen: Listen | None = None,
) -> int:
    """Run ``watcher run`` until stopped; returns the exit code."""
    options = DaemonOptions.from_env(os.environ if env is None else env)
    return Daemon(load, options, prune, metrics_listen=metrics_listen).run()


__all__ = ["Daemon", "DaemonOptions", "run_daemon"]
