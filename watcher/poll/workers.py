"""Fetch, parse and match feeds in worker processes; never touches the database.

A poll of many feeds is bound by CPU (XML parsing, HTML sanitising, rule
matching), which one Python process cannot spread over several cores. This
module runs those stages in a pool of processes, each fetching a chunk of feeds
with its own keep-alive connections and threads, and hands back one
``FeedResult`` per feed, with the rule matches of every parsed item already
computed, their snippets cut. The parent only stores results, so the outbox stays in one
process.

The number of chunks in flight is bounded (``window``), so memory does not grow
with the number of feeds polled.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from dataclasses import dataclass

from watcher.poll.articles import ArticleFetcher, add_articles
from watcher.poll.fetch import FeedSession, make_session
from watcher.poll.hosts import HostSlots
from watcher.poll.result import FeedResult, add_matches
from watcher.rules.match import CompiledRules
from watcher.types import FeedConfig, FeedState

Job = tuple[FeedState, FeedConfig]
FetchParse = Callable[[FeedSession, FeedState, FeedConfig, int], FeedResult]

# Below this many feeds a pool costs more than it saves.
MIN_FEEDS_FOR_PROCESSES = 200
CHUNK_FEEDS = 25


@dataclass(frozen=True)
class WorkerConfig:
    """What every worker process needs; picklable, so that ``spawn`` works too."""

    compiled: CompiledRules
    user_agent: str
    max_bytes: int
    threads: int
    fetch_and_parse: FetchParse
    block_private: bool = False
    per_host: int = 2  # article fetches to one host at a time, in this process


class _Worker:
    """The state of one worker process: its session, thread pool and compiled rules."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.session = make_session(
            config.user_agent, pool_size=config.threads, block_private=config.block_private
        )
        self.threads = ThreadPoolExecutor(config.threads, thread_name_prefix="fetch")
        self.articles = ArticleFetcher(
            self.session,
            user_agent=config.user_agent,
            max_bytes=config.max_bytes,
            threads=config.threads,
            hosts=HostSlots(config.per_host),
        )


_worker: _Worker | None = None


def _start_worker(config: WorkerConfig) -> None:
    global _worker
    _worker = _Worker(config)


def _poll_chunk(jobs: Sequence[Job]) -> list[FeedResult]:
    """Fetch, parse and match one chunk of feeds (in a worker process)."""
    worker = _worker
    assert worker is not None, "worker process not initialised"
    config = worker.config

    def one(job: Job) -> FeedResult:
        return poll_job(
            worker.session,
            job,
            config.compiled,
            config.max_bytes,
            config.fetch_and_parse,
            worker.articles,
        )

    return list(worker.threads.map(one, jobs))


def poll_job(
    session: FeedSession,
    job: Job,
    compiled: CompiledRules,
    max_bytes: int,
    fetch_and_parse: FetchParse,
    articles: ArticleFetcher | None = None,
) -> FeedResult:
    """One feed's poll work away from the database: fetch, parse, fetch the new items'
    article pages (``full_text``), then match its items.

    What a worker process, a Celery worker (scale.py) and the coordinator polling for an
    unreachable broker all run for one feed.
    """
    result = fetch_and_parse(session, job[0], job[1], max_bytes)
    return finish_job(result, compiled, articles)


def finish_job(
    result: FeedResult, compiled: CompiledRules, articles: ArticleFetcher | None
) -> FeedResult:
    """After a feed's fetch and parse (and outside its host's slot): fetch its new items'
    article pages, then match its items with them."""
    add_articles(articles, result)
    add_matches(result, compiled)
    return result


def process_count(feeds: int) -> int:
    """How many worker processes a poll of ``feeds`` feeds should use (0: none)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if feeds < MIN_FEEDS_FOR_PROCESSES or (cpus or 1) < 2:
        return 0
    return cpus or 1


def poll_in_processes(
    jobs: Sequence[Job], config: WorkerConfig, processes: int, *, chunk: int = CHUNK_FEEDS
) -> Iterator[list[FeedResult]]:
    """Yield the results of ``jobs``, a chunk at a time, as worker processes finish them.

    At most two chunks per process are in flight; the caller's storing of one
    chunk overlaps with the fetching of the next ones.
    """
    chunks = (list(jobs[i : i + chunk]) for i in range(0, len(jobs), chunk))
    with ProcessPoolExecutor(
        processes, mp_context=_context(), initializer=_start_worker, initargs=(config,)
    ) as pool:
        yield from bounded(
            lambda jobs: pool.submit(_poll_chunk, jobs), chunks, window=2 * processes
        )


def bounded(
    submit: Callable[[list[Job]], Future[list[FeedResult]]],
    chunks: Iterable[list[Job]],
    window: int,
) -> Iterator[list[FeedResult]]:
    """Submit chunks with at most ``window`` in flight; yield results as they complete."""
    pending: set[Future[list[FeedResult]]] = set()
    source = iter(chunks)
    while True:
        while len(pending) < window and (next_chunk := next(source, None)) is not None:
            pending.add(submit(next_chunk))
        if not pending:
            return
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            yield future.result()


def _context() -> multiprocessing.context.BaseContext:
    """``fork`` while the process has one thread (cheap, nothing to re-import), else spawn."""
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")
