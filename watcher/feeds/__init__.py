"""Fetch feeds over HTTP and parse them into ``ParsedFeed``; no storage, no matching.

``fetch_feed`` (fetch.py) gives ``Fetched`` bytes, ``parse_feed`` (parse.py) turns
them into items with sanitised HTML (html.py) and plain text. Both raise only
``FeedError`` subclasses for a bad feed.
"""

from __future__ import annotations

from watcher.feeds.fetch import HTTPStatusError, fetch_feed, make_session, parse_retry_after
from watcher.feeds.html import html_to_text, sanitize_html
from watcher.feeds.parse import parse_feed

__all__ = [
    "HTTPStatusError",
    "fetch_feed",
    "html_to_text",
    "make_session",
    "parse_feed",
    "parse_retry_after",
    "sanitize_html",
]
