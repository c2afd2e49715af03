"""Fetch the article pages of a feed's new items and extract their main text (full_text).

    fetch_articles(fetcher, result, known)      after fetch_and_parse, before matching
      items_wanting_articles (decide/fulltext.py): new items (or new links), once each
      per item, all within the feed's timeout x WAIT_TIMEOUTS from the start:
        not http(s)?                        -> "address refused" (never read)
        host paused by a 429/503?           -> "http 429" / "http 503"
        robots.txt of its origin (cached):  disallowed -> "robots"; a 5xx -> "robots"
        a slot of the host (poll.per_host), then fetch_feed: same session (proxies,
        address policy, User-Agent), timeout, max_bytes and redirects as a feed
        extract_article -> text, or "not html" / "empty" / "too large"

Only the item's link (and its redirects) is fetched, never a link inside a page. The
pages are fetched in the fetcher's own threads: their time is I/O, not the feed's CPU
budget, and extraction bounds its own work (poll/article.py). A page that is not in by
the item's deadline is "timeout"; the item is then matched without it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from urllib.parse import urlsplit

from watcher.decide.fulltext import items_wanting_articles
from watcher.exceptions import FetchError
from watcher.poll import guard
from watcher.poll.fetch import FeedSession, HTTPStatusError, fetch_feed
from watcher.poll.hosts import HostPauses, HostSlots
from watcher.poll.robots import (
    RobotsAnswer,
    RobotsEntry,
    Verdict,
    robots_entry,
    robots_key,
    robots_url,
)
from watcher.types import Article, FeedResult, FullText, ParsedItem, PollSettings

log = logging.getLogger(__name__)

WAIT_TIMEOUTS = 2  # an item waits at most this many times its feed's timeout for its article
ACCEPT_HTML = "text/html, application/xhtml+xml;q=0.9, */*;q=0.1"
ADDRESS_REFUSED = "address refused"
ROBOTS = "robots"
TIMEOUT = "timeout"
TOO_LARGE = "too large"
NOT_HTML = "not html"
ORIGINS_KEPT = 10_000  # robots.txt entries kept; past it the oldest go


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ArticleFetcher:
    """Article fetches of one process: its threads, robots.txt cache and host pauses.

    ``hosts`` are the per-host slots the process's feed fetches use too (the daemon's), or
    the fetcher's own. Safe to share between threads; ``close`` when done.
    """

    def __init__(
        self,
        session: FeedSession,
        *,
        user_agent: str,
        max_bytes: int,
        threads: int,
        hosts: HostSlots,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.session = session
        self.user_agent = user_agent
        self.max_bytes = max_bytes
        self.hosts = hosts
        self.pauses = HostPauses()
        self._clock = clock
        self._pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="article")
        self._lock = threading.Lock()
        self._robots: dict[str, RobotsEntry] = {}
        self._origin_locks: dict[str, threading.Lock] = {}

    def close(self, *, wait: bool = True) -> None:
        """Stop its threads (``wait``: after the fetches under way end)."""
        self._pool.shutdown(wait=wait, cancel_futures=True)

    def __enter__(self) -> ArticleFetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- a feed's items --------------------------------------------------------------------

    def fetch_items(self, items: Sequence[ParsedItem], timeout_s: float) -> dict[str, Article]:
        """guid -> the article of each item with a link, all in by ``timeout_s`` x
        ``WAIT_TIMEOUTS`` from now (a page not in by then is ``timeout``)."""
        deadline = time.monotonic() + WAIT_TIMEOUTS * timeout_s
        futures: dict[str, Future[Article]] = {}  # by link: items sharing one fetch it once
        for item in items:
            if item.link and item.link not in futures:
                futures[item.link] = self._pool.submit(
                    self.fetch_page, item.link, timeout_s, deadline
                )
        pages: dict[str, Article] = {}
        for link, future in futures.items():
            try:
                pages[link] = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                future.cancel()
                pages[link] = Article(None, TIMEOUT, self._clock())
            except Exception:  # a bug: the item is matched without its article
                log.exception("internal error while fetching an article link=%s", _short(link))
        return {item.guid: pages[item.link] for item in items if item.link in pages}

    # --- one page --------------------------------------------------------------------------

    def fetch_page(self, link: str, timeout_s: float, deadline: float) -> Article:
        """The article at ``link``, or why there is none; never raises ``FetchError``."""
        if not _is_http(link):
            return self._failed(link, ADDRESS_REFUSED, "not an http(s) link")
        paused = self.pauses.paused(link)
        if paused is not None:
            return self._failed(link, f"http {paused}", "host paused after a 429/503")
        refused = self._robots_refusal(link, timeout_s, deadline)
        if refused is not None:
            return refused
        with self.hosts.slot(link, deadline - time.monotonic()) as held:
            if not held:
                return self._failed(link, TIMEOUT, "no free slot for the host in time")
            try:
                fetched = fetch_feed(
                    self.session,
                    link,
                    timeout=_within(timeout_s, deadline),
                    max_bytes=self.max_bytes,
                    headers={"Accept": ACCEPT_HTML},
                )
            except FetchError as e:
                if isinstance(e, HTTPStatusError) and e.http_status is not None:
                    self.pauses.pause(link, e.http_status, e.retry_after_s)
                return self._failed(link, article_error(e), str(e.message))
        # imported here: readability and lxml.html take ~0.1 s, which a poll without
        # full_text, or its start, need not pay
        from watcher.poll.article import extract_article

        page = extract_article(fetched.content, fetched.final_url, fetched.content_type)
        if page.error is not None:
            return self._failed(link, page.error.value, page.detail)
        log.debug("article link=%s chars=%d", _short(link), len(page.text))
        return Article(page.text, None, self._clock())

    def _failed(self, link: str, error: str, detail: str) -> Article:
        log.info("article failed link=%s error=%s detail=%r", _short(link), error, detail)
        return Article(None, error, self._clock())

    # --- robots.txt ------------------------------------------------------------------------

    def _robots_refusal(self, link: str, timeout_s: float, deadline: float) -> Article | None:
        """None when robots.txt lets ``link`` be fetched; else the item's article."""
        key, where = robots_key(link), robots_url(link)
        if key is None or where is None:
            return self._failed(link, ADDRESS_REFUSED, "not an http(s) link")
        lock = self._origin_lock(key)
        if not lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return self._failed(link, TIMEOUT, "robots.txt not read in time")
        try:
            entry = self._robots.get(key)
            if entry is None or not entry.fresh(self._clock()):
                answer = self._ask_robots(where, timeout_s, deadline)
                if isinstance(answer, Article):
                    return answer
                entry = robots_entry(answer, self._clock(), entry)
                self._keep(key, entry)
        finally:
            lock.release()
        verdict = entry.verdict(self.user_agent, link)
        if verdict is Verdict.ALLOW:
            return None
        detail = "robots.txt disallows it" if verdict is Verdict.DISALLOW else "robots.txt failed"
        return self._failed(link, ROBOTS, detail)

    def _ask_robots(self, where: str, timeout_s: float, deadline: float) -> RobotsAnswer | Article:
        with self.hosts.slot(where, deadline - time.monotonic()) as held:
            if not held:
                return self._failed(where, TIMEOUT, "no free slot for the host in time")
            try:
                fetched = fetch_feed(
                    self.session,
                    where,
                    timeout=_within(timeout_s, deadline),
                    max_bytes=self.max_bytes,
                    headers={"Accept": "text/plain, */*;q=0.1"},
                )
            except HTTPStatusError as e:
                return RobotsAnswer(e.http_status)
            except FetchError as e:
                if isinstance(e.__cause__, guard.AddressRefused):
                    return self._failed(where, ADDRESS_REFUSED, str(e.message))
                if time.monotonic() >= deadline:
                    return self._failed(where, TIMEOUT, str(e.message))
                log.info("robots.txt unanswered url=%s error=%r", where, str(e.message))
                return RobotsAnswer(None)
        return RobotsAnswer(fetched.status, fetched.content)

    def _origin_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._origin_locks.setdefault(key, threading.Lock())

    def _keep(self, key: str, entry: RobotsEntry) -> None:
        with self._lock:
            self._robots[key] = entry
            if len(self._robots) > ORIGINS_KEPT:
                oldest = min(self._robots, key=lambda k: self._robots[k].fetched_at)
                del self._robots[oldest]
                self._origin_locks.pop(oldest, None)


def add_articles(fetcher: ArticleFetcher | None, result: FeedResult) -> None:
    """Fetch the articles the feed's ``full_text`` wants into ``result.articles``, before its
    items are matched. Needs the feed's ``known_links`` (else nothing is fetched: an item
    must not be fetched again each poll); never raises."""
    parsed, feed, options = result.parsed, result.feed, result.options
    if fetcher is None or parsed is None or options.full_text is FullText.NEVER:
        return
    if feed.known_links is None:
        return
    try:
        result.articles = fetch_articles(
            fetcher, parsed.items, options.full_text, feed.known_links, options.timeout_s
        )
    except Exception:  # a bug: the items are matched without their articles
        log.exception("internal error while fetching articles feed=%s", feed.name)


def fetch_articles(
    fetcher: ArticleFetcher,
    items: Sequence[ParsedItem],
    full_text: FullText,
    known: Mapping[str, str | None],
    timeout_s: float,
) -> dict[str, Article]:
    """guid -> article for the items ``full_text`` wants fetched (new ones, or new links)."""
    wanted = items_wanting_articles(full_text, items, known)
    return fetcher.fetch_items(wanted, timeout_s) if wanted else {}


def article_error(error: FetchError) -> str:
    """The ``items.article_error`` of a failed page fetch."""
    if isinstance(error, HTTPStatusError) and error.http_status is not None:
        return f"http {error.http_status}"
    cause = error.__cause__
    message = str(error.message)
    if isinstance(cause, guard.AddressRefused) or "non-HTTP" in message:
        return ADDRESS_REFUSED
    if "larger than max_bytes" in message:
        return TOO_LARGE
    if "Content-Encoding" in message or "is not valid" in message:
        return NOT_HTML
    if "invalid URL" in message:
        return ADDRESS_REFUSED
    return TIMEOUT  # no answer in time: slow, unreachable, or a connection that broke


def _within(timeout_s: float, deadline: float) -> float:
    """The timeout of one request: the feed's, but never past the item's deadline."""
    return max(0.001, min(timeout_s, deadline - time.monotonic()))


def _is_http(link: str) -> bool:
    try:
        parts = urlsplit(link)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def _short(link: str) -> str:
    """A link for the log: without its query, which may carry a token."""
    return link.split("?", 1)[0][:200]


def make_fetcher(
    session: FeedSession, settings: PollSettings, hosts: HostSlots | None = None
) -> ArticleFetcher:
    """The article fetcher of a pass or of the daemon, on the feeds' session and ``poll:``
    settings (its threads start with the first article)."""
    return ArticleFetcher(
        session,
        user_agent=settings.user_agent,
        max_bytes=settings.max_bytes,
        threads=settings.workers,
        hosts=hosts or HostSlots(settings.per_host),
    )
