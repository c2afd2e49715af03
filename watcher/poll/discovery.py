"""Which feed a URL a user gives stands for: the feed itself, or the feeds its page names.

    fetch the URL (the feed fetcher: its timeout, max_bytes, redirects, address policy)
      -> it parses as a feed                 -> that feed, the URL as given
      -> an HTML page naming feeds in its head -> those feeds, in page order (not fetched)
      -> an HTML page naming none            -> the usual places (/feed, /rss, ...), nearest
                                                first; the first that parses as a feed
      -> anything else                        -> FetchError/ParseError, as a poll says it

Used by ``watcher feeds add``; a poll never calls it (a config feed that answers a page is
an error naming the page's feeds, see ``parse``). Raises ``FeedError`` for the URL itself;
a usual place that fails is skipped.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

from watcher.exceptions import FeedError
from watcher.poll.discover import find_feed_links, usual_feed_urls
from watcher.poll.fetch import FeedSession, fetch_feed
from watcher.poll.parse import parse_feed
from watcher.types import Fetched

# How a candidate was found.
ITSELF = "the URL itself"
LINKED = "linked from the page"
USUAL = "at a usual place"

_HTML_TYPES = ("text/html", "application/xhtml+xml")
_HTML_START = re.compile(rb"\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head)[\s>]", re.I | re.S)


@dataclass(frozen=True)
class FoundFeed:
    """A feed a URL leads to: where it is, its title (may be empty), how it was found."""

    url: str
    title: str
    how: str


@dataclass(frozen=True)
class Discovery:
    """What a URL gave: ``feeds`` (none, one or several) and the page's final URL."""

    url: str
    final_url: str
    feeds: tuple[FoundFeed, ...]

    @property
    def is_feed(self) -> bool:
        return len(self.feeds) == 1 and self.feeds[0].how == ITSELF


def discover_feeds(
    session: FeedSession,
    url: str,
    *,
    timeout: float,
    max_bytes: int,
    headers: Mapping[str, str] | None = None,
) -> Discovery:
    """The feeds ``url`` leads to; raises ``FeedError`` when it cannot be read, or is
    neither a feed nor an HTML page."""
    fetched = fetch_feed(session, url, timeout=timeout, max_bytes=max_bytes, headers=headers)
    try:
        parsed = parse_feed(fetched.content, fetched.final_url, fetched.content_type)
    except FeedError:
        if not is_html_page(fetched.content, fetched.content_type):
            raise
    else:
        return Discovery(url, fetched.final_url, (FoundFeed(url, parsed.title or "", ITSELF),))
    linked = find_feed_links(fetched.content, fetched.final_url, fetched.content_type)
    if linked:
        found = tuple(FoundFeed(link.url, link.title, LINKED) for link in linked)
        return Discovery(url, fetched.final_url, found)
    usual = _first_usual_feed(session, fetched, timeout, max_bytes, headers)
    return Discovery(url, fetched.final_url, (usual,) if usual else ())


def _first_usual_feed(
    session: FeedSession,
    page: Fetched,
    timeout: float,
    max_bytes: int,
    headers: Mapping[str, str] | None,
) -> FoundFeed | None:
    """The first usual place near the page that answers a feed, or None; all the places
    together get the URL's ``timeout`` once more."""
    deadline = time.monotonic() + timeout
    for candidate in usual_feed_urls(page.final_url):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        if candidate == page.final_url:
            continue
        try:
            fetched = fetch_feed(
                session, candidate, timeout=remaining, max_bytes=max_bytes, headers=headers
            )
            parsed = parse_feed(fetched.content, fetched.final_url, fetched.content_type)
        except FeedError:
            continue
        return FoundFeed(candidate, parsed.title or "", USUAL)
    return None


def is_html_page(content: bytes, content_type: str | None) -> bool:
    """Say whether a body is a web page: by its type, or by how it starts."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind in _HTML_TYPES:
        return True
    return _HTML_START.match(content[:4096].removeprefix(b"\xef\xbb\xbf")) is not None
