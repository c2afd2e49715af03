"""Fetch, parse and match one feed into a ``FeedResult``, which never is an exception.

Both ways of polling call ``fetch_and_parse`` and ``add_matches``: the threads of a small
poll or of the daemon, and the worker processes of a large poll (workers.py); the pipeline
stores the results.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import replace

from watcher import envvars
from watcher.exceptions import ConfigError, FeedError, ParseError
from watcher.poll.cpu import CpuBudget, CpuBudgetExceeded
from watcher.poll.fetch import FeedSession, fetch_feed
from watcher.poll.parse import parse_feed
from watcher.redact import header_secrets, scrub, without_credentials
from watcher.rules.evidence import find_matches
from watcher.rules.match import CompiledRules, match_input
from watcher.store.rows import content_hash
from watcher.types import (
    Article,
    FeedConfig,
    FeedResult,
    FeedState,
    Fetched,
    ParsedFeed,
    match_key,
)

__all__ = ["FeedResult", "add_matches", "fetch_and_parse", "match_key"]

log = logging.getLogger(__name__)

# A feed may take this many times its ``timeout`` of CPU time to parse, then it fails.
CPU_BUDGET_TIMEOUTS = 3


def fetch_and_parse(
    session: FeedSession, feed: FeedState, options: FeedConfig, max_bytes: int
) -> FeedResult:
    """Fetch and parse one feed; every failure becomes ``FeedResult.error``.

    The feed's URL is a template: its ``${VARS}`` are expanded here, for this fetch only,
    and their values (and the configured header values) are removed from any error.
    """
    result = FeedResult(feed=feed, options=options)
    started = time.monotonic()
    secrets = [*envvars.values_of(feed.url).values(), *header_secrets(options.headers)]
    try:
        url = envvars.expand(feed.url, what="the feed's URL")
        result.fetched = fetch_feed(
            session,
            url,
            etag=feed.etag,
            last_modified=feed.last_modified,
            timeout=options.timeout_s,
            max_bytes=max_bytes,
            headers=dict(options.headers),
        )
        result.http_status = result.fetched.status
        if not result.fetched.not_modified:
            base = result.fetched.final_url
            if envvars.has_references(feed.url):  # links are never resolved into the secret
                base = without_credentials(base)
            result.parsed = _parse(result.fetched, base, options)
            fetched = result.fetched  # parsed: the body may go (its size is kept for the log)
            result.fetched = replace(fetched, content=b"", dropped=fetched.size)
    except FeedError as e:
        result.error = str(e.message)
        result.http_status = e.http_status or result.http_status
        result.retry_after_s = getattr(e, "retry_after_s", None)
    except ConfigError as e:  # a ${VAR} of the URL is not set (a feed added with it earlier)
        result.error = str(e)
    except Exception as e:  # a bug in fetch or parse must not stop the other feeds
        log.exception("internal error while fetching feed=%s", feed.name)
        result.error = f"internal error: {type(e).__name__}: {e}"
    if result.error is not None and secrets:
        result.error = scrub(result.error, secrets)
    result.duration_ms = int((time.monotonic() - started) * 1000)
    return result


def parse_pushed(
    feed: FeedState,
    options: FeedConfig,
    body: bytes,
    content_type: str | None,
    headers: Mapping[str, str],
) -> FeedResult:
    """A WebSub delivery of the feed read as a fetched body is: the same parser, the same
    CPU budget; ``body`` is already within ``poll.max_bytes``. Never raises."""
    result = FeedResult(feed=feed, options=options, pushed=True)
    started = time.monotonic()
    fetched = Fetched(
        url=feed.url,
        final_url=feed.url,
        status=200,
        content=body,
        content_type=content_type,
        headers={k.lower(): v for k, v in headers.items()},
    )
    try:
        base = feed.url if not envvars.has_references(feed.url) else without_credentials(feed.url)
        result.parsed = _parse(fetched, base, options)
        result.fetched = replace(fetched, content=b"", dropped=fetched.size)
        result.http_status = 200
    except FeedError as e:
        result.error = str(e.message)
    except Exception as e:  # a bug in the parser must not stop the daemon
        log.exception("internal error while reading a push feed=%s", feed.name)
        result.error = f"internal error: {type(e).__name__}: {e}"
    result.duration_ms = int((time.monotonic() - started) * 1000)
    return result


def _parse(fetched: Fetched, base: str, options: FeedConfig) -> ParsedFeed:
    """Parse a fetched body within the feed's CPU budget: ``CPU_BUDGET_TIMEOUTS`` timeouts.

    ``base`` is the URL relative links resolve against.
    """
    budget = CpuBudget(CPU_BUDGET_TIMEOUTS * options.timeout_s)
    try:
        return parse_feed(fetched.content, base, fetched.content_type, check=budget.check)
    except CpuBudgetExceeded as e:
        raise ParseError(
            base,
            f"reading the feed took more than {e.seconds:g} s of CPU time"
            f" ({CPU_BUDGET_TIMEOUTS} times its timeout of {options.timeout_s:g} s):"
            " none of its items were stored",
        ) from e


def add_matches(
    result: FeedResult, compiled: CompiledRules, stored: Mapping[str, str] | None = None
) -> None:
    """Fill ``result.hashes`` and ``result.matches``: (guid, content hash) -> the rules that
    match that version of the item, with their evidence. ``stored``: guid -> content hash
    of the feed's stored items, when known; an item stored as it is now is not matched
    (without it, in a worker process, every parsed item is)."""
    if result.parsed is None:
        return
    feed = result.feed
    items = result.parsed.items
    if result.hashes is None or len(result.hashes) != len(items):
        result.hashes = tuple(content_hash(item) for item in items)
    known = stored or {}
    articles = result.articles or {}
    result.matches = {
        match_key(item.guid, digest): find_matches(
            compiled, match_input(item, feed, _text_of(articles.get(item.guid)))
        )
        for item, digest in zip(items, result.hashes, strict=True)
        if known.get(item.guid) != digest
    }


def _text_of(article: Article | None) -> str | None:
    return article.text if article is not None else None
