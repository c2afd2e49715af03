"""Map a JSON Feed 1.0/1.1 document to ``ParsedFeed`` by hand; does no I/O.

feedparser cannot read JSON Feed. Fields read: the feed's ``title`` and
``home_page_url``; each item's ``id``, ``url``, ``title``, ``content_html``,
``content_text``, ``summary``, ``authors`` (1.1) or ``author`` (1.0), ``tags``,
``date_published`` and ``date_modified``. Raises ``ParseError``.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from watcher.exceptions import ParseError
from watcher.langtag import language_tag
from watcher.poll.cpu import Check, unlimited
from watcher.poll.html import (
    MAX_INPUT,
    CleanHtml,
    clean_html,
    collapse_whitespace,
    flattened_notes,
    html_to_text,
    looks_like_html,
    text_to_html,
)
from watcher.surrogates import has_surrogates, scrub_json
from watcher.types import ParsedFeed, ParsedItem

# Characters of a title read (see parse.MAX_TITLE_INPUT).
MAX_TITLE_INPUT = 32_000

_VERSION_PREFIX = "https://jsonfeed.org/version/"


def parse_json_feed(content: bytes, url: str, *, check: Check = unlimited) -> ParsedFeed:
    """Parse a JSON Feed document; ``ParseError`` for invalid JSON or no ``items`` list.

    ``check`` is called between items; it raises ``CpuBudgetExceeded`` to stop.
    """
    document, notes = _load(content, url)
    items = document.get("items")
    if not isinstance(items, list):
        raise ParseError(url, "not a feed: JSON without an 'items' list")
    base = _base(document, url)
    parsed: list[ParsedItem] = []
    language = language_tag(document.get("language"))
    for raw in items:
        if isinstance(raw, dict):
            check()
            parsed.append(_item(raw, base, language))
    skipped = len(items) - len(parsed)
    if skipped:
        notes.append(f"{skipped} items that are not JSON objects skipped")
    return ParsedFeed(
        title=_text(document.get("title")) or None,
        link=_url(base, document.get("home_page_url")),
        format=_format(document.get("version")),
        items=tuple(parsed),
        warning="; ".join(notes) or None,
        parser="json",
        hubs=_hubs(document.get("hubs"), base),
        self_url=_url(base, document.get("feed_url")),
    )


def _hubs(value: object, base: str | None) -> tuple[str, ...]:
    """The ``hubs`` of a JSON Feed whose type is WebSub (or unnamed), as http(s) URLs."""
    if not isinstance(value, list):
        return ()
    found: list[str] = []
    for hub in value[:10]:
        if not isinstance(hub, dict) or str(hub.get("type") or "websub").lower() != "websub":
            continue
        try:
            url = _url(base, hub.get("url"))
        except ValueError:
            continue
        if url is not None and url not in found:
            found.append(url)
    return tuple(found)


def _load(content: bytes, url: str) -> tuple[dict[str, Any], list[str]]:
    """The document, and notes on what was repaired: lone surrogates become U+FFFD."""
    text = _decode(content, url)
    try:
        document = json.loads(text)
    except RecursionError as e:
        raise ParseError(url, "not a feed: JSON nested too deeply") from e
    except ValueError as e:
        raise ParseError(url, f"not a feed: invalid JSON: {e}") from e
    if not isinstance(document, dict):
        raise ParseError(url, "not a feed: JSON that is not an object")
    notes: list[str] = []
    if has_surrogates(text) or _SURROGATE_ESCAPE.search(text):
        scrub_json(document)
        notes.append("lone surrogates replaced with U+FFFD")
    return document, notes


# A \uD800-\uDFFF escape; json.loads makes a pair one character, a lone one stays a surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _decode(content: bytes, url: str) -> str:
    """UTF-8 text; surrogates encoded as UTF-8 bytes (CESU-8, WTF-8) are let through to scrub."""
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        try:
            return content.decode("utf-8-sig", "surrogatepass")
        except UnicodeDecodeError:
            raise ParseError(url, f"not a feed: JSON that is not UTF-8 ({e.reason})") from e


def _format(version: object) -> str:
    """``json10``, ``json11``, or ``json`` when the version is missing or unknown."""
    text = str(version or "")
    if text.startswith(_VERSION_PREFIX):
        number = text.removeprefix(_VERSION_PREFIX).strip("/")
        digits = number.replace(".", "")
        if digits.isdigit():
            return f"json{digits if '.' in number else digits + '0'}"
    return "json"


def _base(document: dict[str, Any], url: str) -> str | None:
    for candidate in (url, document.get("feed_url")):
        if isinstance(candidate, str) and urlsplit(candidate).scheme in ("http", "https"):
            return candidate
    return None


def _item(raw: dict[str, Any], base: str | None, feed_language: str | None) -> ParsedItem:
    link = _url(base, raw.get("url")) or _url(base, raw.get("external_url"))
    title = _text(raw.get("title"), MAX_TITLE_INPUT)
    published = _date(raw.get("date_published"))
    updated = _date(raw.get("date_modified"))
    content = _content(raw, base)
    summary_text = _text(raw.get("summary"))
    return ParsedItem(
        guid=_guid(raw.get("id"), link, title, published or updated),
        title=title,
        link=link,
        summary=text_to_html(summary_text) if summary_text else "",
        content=content.html,
        summary_text=summary_text,
        content_text=content.text,
        author=_author(raw),
        tags=_tags(raw.get("tags")),
        published_at=published or updated,
        updated_at=updated,
        language=language_tag(raw.get("language")) or feed_language,
        notes=flattened_notes(content),
    )


def _content(raw: dict[str, Any], base: str | None) -> CleanHtml:
    html = raw.get("content_html")
    if isinstance(html, str) and html.strip():
        return clean_html(html, base)
    text = raw.get("content_text")
    if isinstance(text, str) and text.strip():
        plain = collapse_whitespace(text[:MAX_INPUT])
        return CleanHtml(text_to_html(plain), plain)
    return CleanHtml("", "")


def _guid(given: object, link: str | None, title: str, published: datetime | None) -> str:
    if isinstance(given, (str, int)) and not isinstance(given, bool) and str(given).strip():
        return str(given).strip()
    if link:
        return link
    stamp = published.isoformat() if published else ""
    return "sha256:" + hashlib.sha256(f"{title}\n{stamp}".encode()).hexdigest()[:32]


def _author(raw: dict[str, Any]) -> str | None:
    authors = raw.get("authors")
    candidates = authors if isinstance(authors, list) else [raw.get("author")]
    for author in candidates:
        if isinstance(author, dict) and _text(author.get("name")):
            return _text(author.get("name"))
    return None


def _tags(tags: object) -> tuple[str, ...]:
    if not isinstance(tags, list):
        return ()
    found: dict[str, None] = {}
    for tag in tags:
        label = _text(tag)
        if label:
            found.setdefault(label, None)
    return tuple(found)


def _date(value: object) -> datetime | None:
    """An RFC 3339 date as a UTC datetime; None when missing or unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _text(value: object, limit: int = MAX_INPUT) -> str:
    """A plain-text field on one line; HTML that slipped in is stripped.

    At most ``limit`` characters of the value are read.
    """
    if not isinstance(value, str):
        return ""
    value = value[:limit]
    text = html_to_text(value) if looks_like_html(value) else collapse_whitespace(value)
    return text.replace("\n", " ")


def _url(base: str | None, value: object) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return urljoin(base, value.strip()) if base else value.strip()
