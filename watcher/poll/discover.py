"""The feeds an HTML page names, and where else a site's feed usually is; pure, no I/O.

``find_feed_links`` reads the ``<link rel="alternate">`` elements of a page's head whose
type is RSS, Atom or JSON Feed, in page order, each URL resolved against the page (or its
``<base href>``) and given once; only http(s) URLs are kept. ``usual_feed_urls`` gives the
places to try when a page names none: ``/feed``, ``/rss``, ``/atom.xml``, ``/feed.xml``,
``/index.xml`` under the page's folder, then at the site's root.

Only the head is read (the part before ``<body`` or ``</head>``: HTML allows no feed link
after it), decoded by the page's declared charset, and only when it stays within the
bounds of ``tame.is_tame``; a head beyond them names
no feed. So a hostile page costs time linear in its size.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

from lxml import etree
from lxml.html import HtmlElement, HTMLParser, document_fromstring

from watcher.poll.charset import decode_html
from watcher.poll.tame import is_tame
from watcher.surrogates import scrub

# Link types of feeds, and what they are.
FEED_TYPES = {
    "application/rss+xml": "rss",
    "application/rdf+xml": "rss",
    "application/x-rss+xml": "rss",
    "application/atom+xml": "atom",
    "application/feed+json": "json",
}
USUAL_PATHS = ("feed", "rss", "atom.xml", "feed.xml", "index.xml")
MAX_HEAD = 1_000_000  # characters of a page searched for the end of its head

_HEAD_END = re.compile(r"</head\b|<body\b", re.IGNORECASE)


@dataclass(frozen=True)
class FeedLink:
    """A feed a page links to: its absolute URL, its title (may be empty) and its kind."""

    url: str
    title: str
    kind: str  # rss | atom | json


def find_feed_links(html: bytes, base_url: str, content_type: str | None = None) -> list[FeedLink]:
    """The feeds ``html``, fetched from ``base_url``, names in its head, in page order."""
    text, _ = decode_html(html, content_type)
    head = _head(text)
    if head is None:
        return []
    base = base_url
    for element in head.iter("base"):
        if element.get("href"):
            base = urljoin(base_url, element.get("href", "").strip())
            break
    found: dict[str, FeedLink] = {}
    for link in head.iter("link"):
        feed = _feed_link(link, base)
        if feed is not None and feed.url not in found:
            found[feed.url] = feed
    return list(found.values())


def _head(text: str) -> HtmlElement | None:
    """The page's head, parsed; None when it is empty or beyond the bounds."""
    end = _HEAD_END.search(text, 0, MAX_HEAD)
    head = text[: end.start() if end else MAX_HEAD]
    if not head.strip() or not is_tame(head):
        return None
    try:
        return document_fromstring(head.encode("utf-8"), parser=_parser())
    except (etree.ParserError, ValueError):
        return None


def _parser() -> HTMLParser:
    return HTMLParser(encoding="utf-8", remove_comments=True, remove_pis=True)


def _feed_link(link: HtmlElement, base: str) -> FeedLink | None:
    rel = link.get("rel", "").lower().split()
    kind = FEED_TYPES.get(link.get("type", "").split(";")[0].strip().lower())
    href = link.get("href", "").strip()
    if kind is None or not href or not ("alternate" in rel or "feed" in rel):
        return None
    url = urljoin(base, href)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    url = urlunsplit(parts._replace(fragment=""))
    title = " ".join(scrub(link.get("title", "")).split())
    return FeedLink(url, title, kind)


def usual_feed_urls(page_url: str) -> Iterator[str]:
    """Where a site's feed usually is, nearest the page first, each URL once."""
    parts = urlsplit(page_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return
    folder = parts.path[: parts.path.rfind("/") + 1] or "/"
    seen: set[str] = set()
    for directory in dict.fromkeys((folder, "/")):
        for path in USUAL_PATHS:
            url = urlunsplit((parts.scheme, parts.netloc, directory + path, "", ""))
            if url not in seen:
                seen.add(url)
                yield url
