"""Poll work on Celery workers over Redis (``scale: {broker: URL}``); one coordinator stores.

    coordinator (watcher poll / watcher run)                 watcher worker (any host)
      Dispatcher.submit(jobs) -> Future --- task watcher.poll ---> poll_task(payload)
        rules: pickled once into Redis under their digest              the rules, by digest
                                                                       per host: a Redis slot
                                                                       fetch, parse, match
      collector thread: MGET of the results <--- result backend --- [FeedResult, ...]
      a result -> the Future; the pipeline stores it (the one SQLite writer)
      past scale.task_timeout -> queued once more; past it again -> a poll error per feed
      broker unreachable, or no worker seen for a minute -> the jobs run here, and an
      event for a health alert; checked again every RECHECK_S, back to workers when it can

Tasks are acknowledged late and rejected when their worker is lost, so a worker killed
mid-task has its task run again (by Redis's visibility timeout, set from the task
timeout). The first result for a submission wins; any later one (a redelivery, the task
queued again after its deadline) is dropped, and storing is idempotent anyway: an item
is known by its guid and content hash, a live alert by its unique key.

Payloads and results are pickled: the broker must be trusted like the database is (a
password, TLS with ``rediss://``, a private network). Nothing here touches SQLite.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import pickle
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import redis
from celery import Celery

from watcher.poll.articles import ArticleFetcher
from watcher.poll.fetch import FeedSession, make_session
from watcher.poll.hosts import HostSlots
from watcher.poll.result import CPU_BUDGET_TIMEOUTS, FeedResult, fetch_and_parse
from watcher.poll.workers import Job, finish_job
from watcher.rules.match import CompiledRules
from watcher.types import HealthEvent, HealthKind, ScaleSettings

log = logging.getLogger(__name__)

QUEUE = "watcher.poll"
TASK = "watcher.poll"
PREFIX = "watcher:"
WORKER_KEY = PREFIX + "worker:"  # + node name -> {"concurrency": n, "pid": pid}, 60 s TTL
RULES_KEY = PREFIX + "rules:"  # + digest -> pickled CompiledRules
SLOTS_KEY = PREFIX + "host:"  # + host -> sorted set of fetch leases (poll.per_host)
HOLD_KEY = PREFIX + "hold:"  # + host -> set while the host's Retry-After lasts
WORKER_SEEN_S = 60  # a worker is alive while its key lives
WORKER_BEAT_S = 5
STUCK_S = 20  # tasks waiting this long for a worker with a free process: its consumer is stuck
RULES_TTL_S = 86400
RULES_MISSING = "are not in the broker"  # a task's error: the coordinator puts them again
RECHECK_S = 30.0  # while polling locally: how often to look for the broker and workers
ROUTE_CACHE_S = 5.0  # while on workers: how often to look again
COLLECT_S = 0.05  # how often the coordinator reads finished results
MAX_HOLD_S = 3600
LEASE_TIMEOUTS = 1 + CPU_BUDGET_TIMEOUTS  # the fetch's timeout, then the parse's CPU budget
SCALE_FEED = "scale.broker"  # the name health alerts about the broker carry

Local = Callable[[Job, CompiledRules], FeedResult]


# --- the Celery application, the same on both sides ---------------------------------------


def make_app(scale: ScaleSettings) -> Celery:
    """The Celery app of ``scale.broker`` (broker and result backend both), with the task."""
    assert scale.broker is not None
    timeout = scale.task_timeout_s
    app = Celery("watcher", broker=scale.broker, backend=scale.broker, set_as_current=False)
    app.conf.update(
        task_serializer="pickle",
        result_serializer="pickle",
        accept_content=["pickle"],
        result_accept_content=["pickle"],
        task_default_queue=QUEUE,
        task_acks_late=True,  # a worker lost mid-task: the task comes back
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=timeout,
        task_publish_retry=False,  # an unreachable broker is known at once, then run here
        result_expires=3600,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=3,
        redis_socket_connect_timeout=3,
        redis_socket_timeout=max(10, timeout),
        broker_transport_options={
            # a task not acknowledged this long after delivery is delivered again: its
            # worker died; the sweep looks every second
            "visibility_timeout": timeout + max(1, timeout // 2),
            "unacked_restore_interval": 1,
            "unacked_restore_throttle": 1,
            "socket_connect_timeout": 3,
        },
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        worker_enable_remote_control=False,
    )
    app.task(name=TASK)(poll_task)
    return app


@dataclass(frozen=True)
class Payload:
    """One task: the feeds to poll and how (the coordinator's settings, not the worker's)."""

    jobs: list[Job]
    rules: str  # digest of the pickled rules under RULES_KEY
    user_agent: str
    max_bytes: int
    block_private: bool
    threads: int
    per_host: int
    lease_s: int  # how long a host slot is held at most (the task timeout)


# --- the worker's side ----------------------------------------------------------------------


class _WorkerState:
    """Per worker process: Redis, the compiled rules by digest, sessions and threads."""

    def __init__(self, broker: str) -> None:
        self.redis = redis.Redis.from_url(broker)
        self.rules: dict[str, CompiledRules] = {}
        self.sessions: dict[tuple[str, bool], FeedSession] = {}
        self.threads: ThreadPoolExecutor | None = None
        self.fetchers: dict[tuple[str, bool], ArticleFetcher] = {}
        self.lock = threading.Lock()

    def compiled(self, digest: str) -> CompiledRules:
        with self.lock:
            found = self.rules.get(digest)
        if found is not None:
            return found
        data = self.redis.get(RULES_KEY + digest)
        if not isinstance(data, bytes):
            raise RuntimeError(f"the rules {digest} {RULES_MISSING} (expired?)")
        compiled: CompiledRules = pickle.loads(data)  # noqa: S301 - the broker is trusted
        with self.lock:
            self.rules = {digest: compiled}  # a reload makes new rules; keep the last only
        return compiled

    def session(self, payload: Payload) -> FeedSession:
        key = (payload.user_agent, payload.block_private)
        with self.lock:
            if key not in self.sessions:
                self.sessions[key] = make_session(
                    payload.user_agent, pool_size=64, block_private=payload.block_private
                )
            return self.sessions[key]

    def articles(self, payload: Payload) -> ArticleFetcher:
        """The article fetcher of the payload's session: its robots.txt cache and host
        pauses live as long as this worker process."""
        key = (payload.user_agent, payload.block_private)
        session = self.session(payload)
        with self.lock:
            if key not in self.fetchers:
                self.fetchers[key] = ArticleFetcher(
                    session,
                    user_agent=payload.user_agent,
                    max_bytes=payload.max_bytes,
                    threads=max(1, payload.threads),
                    hosts=HostSlots(payload.per_host),
                )
            return self.fetchers[key]

    def pool(self, threads: int) -> ThreadPoolExecutor:
        with self.lock:
            if self.threads is None or self.threads._max_workers < threads:
                self.threads = ThreadPoolExecutor(max(1, threads), thread_name_prefix="fetch")
            return self.threads


_state: tuple[int, _WorkerState] | None = None


def _worker_state(broker: str) -> _WorkerState:
    """This process's state (made again after a fork: Redis connections are not shared)."""
    global _state
    if _state is None or _state[0] != os.getpid():
        _state = (os.getpid(), _WorkerState(broker))
    return _state[1]


def poll_task(payload: Payload) -> list[FeedResult]:
    """The Celery task: poll each feed of the payload; one FeedResult per job, in order."""
    from celery import current_app

    state = _worker_state(str(current_app.conf.broker_url))
    compiled = state.compiled(payload.rules)
    session = state.session(payload)
    articles = state.articles(payload)
    log.info("poll task feeds=%s", ",".join(feed.name for feed, _ in payload.jobs))

    def one(job: Job) -> FeedResult:
        # a slot is leased for the feed's fetch and parse at most: a worker that dies
        # holding one blocks it no longer than that
        lease_s = min(payload.lease_s, LEASE_TIMEOUTS * math.ceil(job[1].timeout_s) + 10)
        limits = HostLimits(state.redis, payload.per_host, lease_s)
        result = polite_poll(
            limits, job, lambda: fetch_and_parse(session, job[0], job[1], payload.max_bytes)
        )
        return finish_job(result, compiled, articles)  # article pages: outside the slot

    return list(state.pool(payload.threads).map(one, payload.jobs))


# Acquire a fetch slot of a host: drop expired leases; a Retry-After hold answers its
# remaining milliseconds as a negative number; else a lease when fewer than the limit are
# held (1), or 0. Redis's own clock, so hosts with skewed clocks agree.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local held = redis.call('PTTL', KEYS[2])
if held > 0 then return -held end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
  return 1
end
return 0
"""
# Hold a host for ARGV[1] ms unless a longer hold is already set.
_HOLD = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 1
"""


class HostHeld(Exception):
    def __init__(self, host: str, seconds: float) -> None:
        super().__init__(host, seconds)
        self.host, self.seconds = host, seconds


class HostLimits:
    """``poll.per_host`` fetches at a time to one host across every worker, and the
    Retry-After of a host's 429/503 binding every worker until it ends (leases and holds
    in Redis; a lease of a worker that died expires after ``lease_s``)."""

    def __init__(self, client: redis.Redis, per_host: int, lease_s: int) -> None:
        self.client = client
        self.per_host = max(1, per_host)
        self.lease_ms = max(1, lease_s) * 1000
        self._acquire = client.register_script(_ACQUIRE)
        self._hold = client.register_script(_HOLD)

    @contextmanager
    def slot(self, host: str, give_up_at: float) -> Iterator[None]:
        """Hold one of the host's slots; raises HostHeld, or TimeoutError at ``give_up_at``."""
        token = uuid.uuid4().hex
        keys = [SLOTS_KEY + host, HOLD_KEY + host]
        nap = 0.01
        while True:
            got = int(self._acquire(keys=keys, args=[self.per_host, self.lease_ms, token]))
            if got == 1:
                break
            if got < 0:
                raise HostHeld(host, -got / 1000)
            if time.monotonic() + nap > give_up_at:
                raise TimeoutError(host)
            time.sleep(nap)  # another worker's fetch of this host is in flight
            nap = min(nap * 2, 0.25)
        try:
            yield
        finally:
            self.client.zrem(SLOTS_KEY + host, token)

    def hold(self, host: str, seconds: float) -> None:
        ms = int(min(seconds, MAX_HOLD_S) * 1000)
        if ms > 0:
            self._hold(keys=[HOLD_KEY + host], args=[ms])


def polite_poll(limits: HostLimits, job: Job, poll: Callable[[], FeedResult]) -> FeedResult:
    """``poll()`` within a slot of the feed's host; a held host is not fetched (its feed is
    recorded as the 429 it would get); a 429/503 with Retry-After holds the host."""
    feed, options = job
    host = urlsplit(feed.url).hostname if feed.url.startswith(("http:", "https:")) else None
    if not host:
        return poll()
    give_up_at = time.monotonic() + limits.lease_ms / 1000
    try:
        with limits.slot(host, give_up_at):
            result = poll()
    except HostHeld as e:
        return FeedResult(
            feed=feed,
            options=options,
            error=f"not fetched: {host} asked for a pause (Retry-After) that lasts"
            f" {math.ceil(e.seconds)} s more",
            http_status=429,
            retry_after_s=e.seconds,
        )
    except TimeoutError:
        return FeedResult(
            feed=feed,
            options=options,
            error=f"not fetched: no free slot for {host} (poll.per_host) within"
            f" {limits.lease_ms // 1000} s",
        )
    if result.http_status in (429, 503) and result.retry_after_s:
        limits.hold(host, result.retry_after_s)
    return result


class WorkerBeat:
    """Tells coordinators and ``status`` that this worker lives: its key, renewed every
    ``WORKER_BEAT_S``, expires ``WORKER_SEEN_S`` after the last renewal.

    It also watches the worker's consumer. Celery's consumer can lose the broker in a way
    it does not notice (an acknowledgement that failed while Redis restarted): it then
    waits on no connection at all and takes no task again. Tasks waiting in the queue for
    ``STUCK_S`` while this worker has a free process and receives none mean exactly that;
    ``on_stuck`` is then called (the worker restarts itself).
    """

    def __init__(
        self,
        broker: str,
        node: str,
        concurrency: int,
        busy: Callable[[], int] = lambda: 0,
        on_stuck: Callable[[], None] | None = None,
    ) -> None:
        self.client = redis.Redis.from_url(broker, socket_connect_timeout=3, socket_timeout=5)
        self.key = WORKER_KEY + node
        self.concurrency = concurrency
        self.value = json.dumps({"concurrency": concurrency, "pid": os.getpid()})
        self.busy = busy  # tasks this worker holds now
        self.on_stuck = on_stuck
        self.received_at = time.monotonic()
        self.waiting_since: float | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="worker-beat", daemon=True)

    def start(self) -> None:
        """Begin beating; again (a consumer that reconnected is ready once more) is a no-op."""
        if self.thread.ident is None:
            self.thread.start()

    def received(self) -> None:
        """A task reached this worker."""
        self.received_at = time.monotonic()

    def stuck(self, queue_depth: int, now: float) -> bool:
        """True once tasks have waited ``STUCK_S`` while this worker had a free process on
        every look and received none."""
        if queue_depth == 0 or self.busy() >= self.concurrency:
            self.waiting_since = None
            return False
        if self.waiting_since is None or self.received_at >= self.waiting_since:
            self.waiting_since = now
            return False
        return now - self.waiting_since >= STUCK_S

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.client.set(self.key, self.value, ex=WORKER_SEEN_S)
                depth = int(self.client.llen(QUEUE))
                wait = WORKER_BEAT_S
            except redis.RedisError as e:
                log.warning("worker heartbeat failed: %s", e)
                self.waiting_since = None  # the broker is away: nobody takes tasks
                wait = 1  # say it again as soon as the broker is back
            else:
                if self.on_stuck is not None and self.stuck(depth, time.monotonic()):
                    log.warning(
                        "worker takes no task: %d waited %d s while it had a free process;"
                        " restarting it",
                        depth,
                        STUCK_S,
                    )
                    self.on_stuck()
                    return
            self.stopping.wait(wait)

    def stop(self) -> None:
        self.stopping.set()
        with suppress(redis.RedisError):
            self.client.delete(self.key)


def node_name() -> str:
    """This worker's name: unique per process, so several can run on one host."""
    return f"watcher-{os.getpid()}@{socket.gethostname()}"


# --- the coordinator's side -----------------------------------------------------------------


@dataclass
class ClusterState:
    workers: int = 0
    capacity: int = 0  # the workers' concurrency, summed
    queue_depth: int = 0
    error: str | None = None  # the broker could not be asked


def cluster_state(client: redis.Redis) -> ClusterState:
    """Workers seen in the last minute, their concurrency and the tasks waiting; raises
    redis.RedisError when the broker cannot be reached."""
    keys = list(client.scan_iter(match=WORKER_KEY + "*", count=500))
    values = client.mget(keys) if keys else []
    capacity = 0
    for value in values:
        if value is None:
            continue
        try:
            capacity += max(1, int(json.loads(value).get("concurrency", 1)))
        except (ValueError, AttributeError, TypeError):
            capacity += 1
    workers = sum(v is not None for v in values)
    return ClusterState(workers=workers, capacity=capacity, queue_depth=int(client.llen(QUEUE)))


def read_cluster(broker: str) -> ClusterState:
    """``cluster_state`` for ``watcher status``: an unreachable broker is said, not raised."""
    client = redis.Redis.from_url(broker, socket_connect_timeout=3, socket_timeout=5)
    try:
        return cluster_state(client)
    except redis.RedisError as e:
        return ClusterState(error=f"broker {broker_label(broker)} unreachable: {e}")
    finally:
        client.close()


@dataclass
class _Submission:
    future: Future[list[FeedResult]]
    payload: Payload
    deadline: float
    ids: list[str] = field(default_factory=list)  # task ids: the first try, then the retry


@dataclass(frozen=True)
class FetchOptions:
    """How the coordinator's settings say to fetch (sent with every task)."""

    user_agent: str
    max_bytes: int
    block_private: bool
    workers: int  # poll.workers: concurrent fetches in all
    per_host: int


class Dispatcher:
    """Hands chunks of feeds to Celery workers and resolves a Future per chunk; runs them
    here with ``local`` when the broker cannot be reached or no worker lives."""

    def __init__(
        self,
        scale: ScaleSettings,
        fetch: FetchOptions,
        local: Local,
        *,
        recheck_s: float = RECHECK_S,
    ) -> None:
        assert scale.broker is not None
        self.scale = scale
        self.fetch = fetch
        self.local = local
        self.recheck_s = recheck_s
        self.where = broker_label(scale.broker)
        self.app = make_app(scale)
        self.client = redis.Redis.from_url(
            scale.broker, socket_connect_timeout=3, socket_timeout=max(10, scale.task_timeout_s)
        )
        self._lock = threading.Lock()
        self._pending: dict[str, _Submission] = {}  # by task id (two ids after a retry)
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._reason: str | None = None  # why the jobs run here, None: on workers
        self._known = False  # a first answer was given (events start from it)
        self._checked_until = 0.0
        self._capacity = 1
        # the rules, their digest and pickle, when they were put in Redis
        self._rules: tuple[CompiledRules, str, bytes, float] | None = None
        self._events: list[HealthEvent] = []
        self._local_pool = ThreadPoolExecutor(max(1, fetch.workers), thread_name_prefix="fetch")
        self._collector = threading.Thread(target=self._collect, name="collect", daemon=True)
        self._collector.start()

    # --- what the pipeline and the daemon call ---------------------------------------------

    def capacity(self) -> int:
        """Chunks that can run at once (the live workers' concurrency; 1 when local)."""
        self._route()
        return self._capacity

    def chunk_size(self, feeds: int) -> int:
        """Feeds per task: enough tasks to keep every worker busy twice over, at most 25."""
        return max(1, min(25, math.ceil(feeds / (2 * self.capacity()))))

    def submit(self, jobs: Sequence[Job], compiled: CompiledRules) -> Future[list[FeedResult]]:
        """Poll ``jobs`` on a worker (or here); the Future holds their results, in order."""
        jobs = list(jobs)
        if self._route() is not None:
            return self._run_here(jobs, compiled)
        try:
            payload = self._payload(jobs, compiled)
            task_id = self._send(payload)
        except Exception as e:  # the broker went away between the check and the send
            self._set_reason(f"broker {self.where} unreachable: {_short(e)}")
            return self._run_here(jobs, compiled)
        future: Future[list[FeedResult]] = Future()
        submission = _Submission(future, payload, self._deadline(), [task_id])
        with self._lock:
            self._pending[task_id] = submission
        self._wake.set()
        return future

    def events(self) -> list[HealthEvent]:
        """Health events since the last call: the broker lost (polling here), or back."""
        with self._lock:
            events, self._events = self._events, []
        return events

    def close(self) -> None:
        self._closed.set()
        self._wake.set()
        self._collector.join(timeout=5)
        self._local_pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()

    # --- where the work goes ---------------------------------------------------------------

    def _route(self) -> str | None:
        """None to use the workers, else why not (checked again now and then)."""
        now = time.monotonic()
        with self._lock:
            if now < self._checked_until:
                return self._reason
        try:
            state = cluster_state(self.client)
            reason = None if state.workers else "no `watcher worker` seen in the last minute"
            capacity = max(1, state.capacity)
        except redis.RedisError as e:
            reason, capacity = f"broker {self.where} unreachable: {_short(e)}", 1
        with self._lock:
            self._capacity = capacity if reason is None else 1
            self._checked_until = now + (self.recheck_s if reason else ROUTE_CACHE_S)
        self._set_reason(reason)
        return reason

    def _set_reason(self, reason: str | None) -> None:
        with self._lock:
            before, known = self._reason, self._known
            self._reason, self._known = reason, True
            if reason is not None:
                self._checked_until = time.monotonic() + self.recheck_s
            if known and (before is None) == (reason is None):
                return
            if reason is not None:
                detail = f"{reason}; polling on this host until it is back"
                self._events.append(HealthEvent(SCALE_FEED, HealthKind.FAILING, detail, self.where))
            elif known:
                self._rules_stale()  # a restarted Redis may have lost them
                detail = "workers reachable again: polling on them"
                self._events.append(
                    HealthEvent(SCALE_FEED, HealthKind.RECOVERED, detail, self.where)
                )
            else:  # the first look found the workers: tell a stored "failing" it is over
                detail = "workers reachable: polling on them"
                self._events.append(
                    HealthEvent(SCALE_FEED, HealthKind.RECOVERED, detail, self.where)
                )
        if reason is not None:
            log.warning("polling on this host reason=%s", reason)
        elif known:
            log.info("polling on workers again broker=%s", self.where)

    def _run_here(self, jobs: list[Job], compiled: CompiledRules) -> Future[list[FeedResult]]:
        combined: Future[list[FeedResult]] = Future()
        if not jobs:
            combined.set_result([])
            return combined
        results: list[FeedResult | None] = [None] * len(jobs)
        left = [len(jobs)]
        lock = threading.Lock()

        def done(position: int, future: Future[FeedResult]) -> None:
            try:
                results[position] = future.result()
            except BaseException as e:  # a bug in the local poll: that feed's error
                job = jobs[position]
                results[position] = FeedResult(
                    feed=job[0], options=job[1], error=f"internal error: {_short(e)}"
                )
            with lock:
                left[0] -= 1
                finished = left[0] == 0
            if finished:
                combined.set_result([r for r in results if r is not None])

        for position, job in enumerate(jobs):
            future = self._local_pool.submit(self.local, job, compiled)
            future.add_done_callback(functools.partial(done, position))
        return combined

    # --- sending and collecting ------------------------------------------------------------

    def _payload(self, jobs: list[Job], compiled: CompiledRules) -> Payload:
        fetch = self.fetch
        return Payload(
            jobs=jobs,
            rules=self._upload_rules(compiled),
            user_agent=fetch.user_agent,
            max_bytes=fetch.max_bytes,
            block_private=fetch.block_private,
            threads=max(1, math.ceil(fetch.workers / self._capacity)),
            per_host=fetch.per_host,
            lease_s=self.scale.task_timeout_s,
        )

    def _upload_rules(self, compiled: CompiledRules) -> str:
        """The rules' digest; they are put in Redis once, again every hour, and again after
        the broker was away (a restarted Redis may have lost them)."""
        with self._lock:
            known = self._rules
        now = time.monotonic()
        if known is not None and known[0] is compiled and now - known[3] < 3600:
            return known[1]
        data = known[2] if known is not None and known[0] is compiled else pickle.dumps(compiled)
        digest = hashlib.sha256(data).hexdigest()[:32]
        self.client.set(RULES_KEY + digest, data, ex=RULES_TTL_S)
        with self._lock:
            self._rules = (compiled, digest, data, now)
        return digest

    def _rules_lost(self) -> None:
        """A worker did not find the rules (Redis restarted without them): put them again
        before the task is retried."""
        with self._lock:
            known = self._rules
            self._rules_stale()
        if known is None:
            return
        log.warning("rules missing in the broker: putting them again digest=%s", known[1])
        try:
            self._upload_rules(known[0])
        except redis.RedisError as e:
            log.warning("could not put the rules again: %s", _short(e))

    def _rules_stale(self) -> None:
        """The next ``_upload_rules`` puts the rules in Redis again (hold ``_lock``)."""
        if self._rules is not None:
            self._rules = (*self._rules[:3], -math.inf)

    def _send(self, payload: Payload) -> str:
        result = self.app.send_task(TASK, args=(payload,), queue=QUEUE, retry=False)
        return str(result.id)

    def _deadline(self) -> float:
        return time.monotonic() + self.scale.task_timeout_s

    def _collect(self) -> None:
        """The collector thread: read finished results, resolve, retry or give up."""
        backend = self.app.backend
        while not self._closed.is_set():
            with self._lock:
                ids = list(self._pending)
            if not ids:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            try:
                ready = dict(backend.get_many(ids, timeout=None, interval=0, max_iterations=1))
            except Exception as e:
                self._set_reason(f"broker {self.where} unreachable: {_short(e)}")
                self._all_here()
                continue
            for task_id, meta in ready.items():
                self._finish(task_id, meta)
                try:
                    backend.forget(task_id)
                except Exception:
                    log.debug("could not forget task=%s", task_id, exc_info=True)
            self._expire()
            self._closed.wait(COLLECT_S)

    def _finish(self, task_id: str, meta: dict[str, Any]) -> None:
        with self._lock:
            submission = self._pending.pop(task_id, None)
            if submission is None:
                return
            for other in submission.ids:  # a later result of the other try is dropped
                self._pending.pop(other, None)
        results = meta.get("result") if meta.get("status") == "SUCCESS" else None
        if isinstance(results, list) and len(results) == len(submission.payload.jobs):
            submission.future.set_result(results)
            return
        log.warning(
            "poll task failed task=%s status=%s error=%s",
            task_id,
            meta.get("status"),
            _short(meta.get("result")),
        )
        if RULES_MISSING in str(meta.get("result")):
            self._rules_lost()
        self._retry_or_fail(
            submission, f"the task failed on its worker: {_short(meta.get('result'))}"
        )

    def _expire(self) -> None:
        now = time.monotonic()
        with self._lock:
            late = {id(s): s for s in self._pending.values() if s.deadline <= now}
            for submission in late.values():
                for task_id in submission.ids:
                    self._pending.pop(task_id, None)
        for submission in late.values():
            timeout = self.scale.task_timeout_s
            log.warning("poll task late tasks=%s timeout=%ds", ",".join(submission.ids), timeout)
            self._retry_or_fail(submission, f"no worker finished it within {timeout} s")

    def _retry_or_fail(self, submission: _Submission, why: str) -> None:
        """Queue a task once more; the second time, its feeds' polls fail with ``why``."""
        if len(submission.ids) < 2:
            try:
                task_id = self._send(submission.payload)
            except Exception as e:
                self._set_reason(f"broker {self.where} unreachable: {_short(e)}")
                jobs = submission.payload.jobs
                self._here_into(submission.future, jobs)
                return
            retried = replace(submission, deadline=self._deadline(), ids=[*submission.ids, task_id])
            with self._lock:
                for task in retried.ids:
                    self._pending[task] = retried
            return
        error = f"polling on a worker failed twice: {why}"
        submission.future.set_result(
            [FeedResult(feed=f, options=o, error=error) for f, o in submission.payload.jobs]
        )

    def _all_here(self) -> None:
        """The broker went away: every chunk in flight runs here instead."""
        with self._lock:
            waiting = {id(s): s for s in self._pending.values()}
            self._pending.clear()
        for submission in waiting.values():
            self._here_into(submission.future, submission.payload.jobs)

    def _here_into(self, future: Future[list[FeedResult]], jobs: list[Job]) -> None:
        compiled = self._rules[0] if self._rules is not None else None
        assert compiled is not None
        here = self._run_here(jobs, compiled)
        here.add_done_callback(lambda f: future.set_result(f.result()))


def broker_label(url: str) -> str:
    """``redis://host:6379/0``: the broker's URL without its user and password."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(hidden URL)"
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


def _short(error: object) -> str:
    text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
    return text if len(text) <= 300 else text[:297] + "..."
