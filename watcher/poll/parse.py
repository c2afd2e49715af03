"""Turn a fetched feed body into ``ParsedFeed``; does no I/O and stores nothing.

The format is detected from the content: a JSON object is a JSON Feed
(``jsonfeed.py``); well-formed plain RSS 2.0 and Atom 1.0 are read by ``fastparse``
(lxml), and anything it declines goes to feedparser (RSS 0.9x/1.0/2.0, Atom) with
its own sanitiser and relative-URI resolution off (both give the same entries).
HTML is sanitised once, with nh3 (``html.py``). Entries get stable ids, UTC dates and plain text.

Raises ``ParseError`` when the body holds no feed at all.
"""

from __future__ import annotations

import calendar
import hashlib
import io
import re
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from watcher.exceptions import ParseError
from watcher.langtag import language_tag
from watcher.poll import fastparse, jsonfeed
from watcher.poll.cpu import Check, unlimited
from watcher.poll.discover import FeedLink, find_feed_links
from watcher.poll.finish import finish_feed
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
from watcher.types import ParsedFeed, ParsedItem

_BOM = b"\xef\xbb\xbf"
_XML_DECLARED_ENCODING = re.compile(rb"""^<\?xml[^>]{0,200}?encoding=["']([A-Za-z0-9._-]+)""")
# feedparser's warnings that say nothing about the feed's own content.
_IGNORED_BOZO = ("NonXMLContentType",)


def parse_feed(
    content: bytes, url: str, content_type: str | None = None, *, check: Check = unlimited
) -> ParsedFeed:
    """Parse ``content`` fetched from ``url``; raise ``ParseError`` if it is not a feed.

    ``check`` is called between items; it raises ``CpuBudgetExceeded`` to stop.
    """
    body = content.removeprefix(_BOM).lstrip()
    if not body:
        raise ParseError(url, "not a feed: the document is empty")
    if body.startswith(b"{"):
        feed = jsonfeed.parse_json_feed(body, url, check=check)
    elif body.startswith(b"["):
        raise ParseError(url, "not a feed: JSON that is not a JSON Feed object")
    else:
        feed = parse_xml_feed(content, url, content_type, check=check)
    return finish_feed(_drop_empty_items(feed, url))


def parse_xml_feed(
    content: bytes,
    url: str,
    content_type: str | None = None,
    *,
    fast_path: bool = True,
    check: Check = unlimited,
) -> ParsedFeed:
    """Parse RSS or Atom (lxml when it can, else feedparser); see ``parse_feed``."""
    data, notes = _prepare_xml(content, content_type)
    fast = None if notes or not fast_path else fastparse.read_feed(data, content_type)
    if fast is not None and fast.entries:
        return _parsed_feed(fast.feed, fast.entries, fast.version, url, None, check, "lxml")
    data = _within_feedparser_reach(data, url, notes)
    result = _run_feedparser(data, url, content_type)
    warning = _bozo_warning(result)
    entries = list(result.get("entries") or [])
    version = str(result.get("version") or "")
    if not entries and (warning or not version):
        instead = _what_instead(data, content_type, warning, content, url)
        raise ParseError(url, f"not a feed: {instead}")
    if warning and _is_truncated(data):
        entries = entries[: _closed_entries(data)]
        if not entries:
            raise ParseError(url, f"not a feed: truncated document, no complete item ({warning})")
        notes.append("truncated document: the item cut off at the end was dropped")
    warnings = "; ".join([*notes, warning] if warning else notes) or None
    return _parsed_feed(
        result.get("feed") or {}, entries, version, url, warnings, check, "feedparser"
    )


def _parsed_feed(
    feed: dict[str, Any],
    entries: list[Any],
    version: str,
    url: str,
    warning: str | None,
    check: Check,
    parser: str,
) -> ParsedFeed:
    """A ParsedFeed from feedparser-shaped dicts (from feedparser or from ``fastparse``)."""
    base = _link_base(url)
    items = []
    language = language_tag(feed.get("language"))
    for entry in entries:
        check()
        items.append(_item(entry, base, language))
    hubs, self_url = _push_links(feed, base)
    return ParsedFeed(
        title=_plain_title(feed) or None,
        link=_absolute(base, feed.get("link")),
        format=version or "xml",
        items=tuple(items),
        warning=warning,
        parser=parser,
        hubs=hubs,
        self_url=self_url,
    )


def _push_links(feed: dict[str, Any], base: str | None) -> tuple[tuple[str, ...], str | None]:
    """The WebSub hubs and the self URL among the feed's links (rel=hub, rel=self)."""
    hubs: list[str] = []
    self_url = None
    for link in feed.get("links") or ():
        if not isinstance(link, dict):
            continue
        try:
            href = _absolute(base, link.get("href"))
            if href is None or not _is_http(href):
                continue
        except ValueError:  # a URL urllib cannot even split
            continue
        rel = str(link.get("rel") or "").lower()
        if rel == "hub" and href not in hubs and len(hubs) < 10:
            hubs.append(href)
        elif rel == "self" and self_url is None:
            self_url = href
    return tuple(hubs), self_url


# --- the document -------------------------------------------------------------------------


def _prepare_xml(content: bytes, content_type: str | None) -> tuple[bytes, list[str]]:
    """Fix what can be fixed before parsing, saying what was changed."""
    notes: list[str] = []
    data = _wide_to_utf8(content)
    stripped = data.removeprefix(_BOM).lstrip()
    if len(stripped) != len(data.removeprefix(_BOM)):
        notes.append("whitespace before the XML declaration removed")
        data = stripped
    without_entities = _drop_entity_declarations(data)
    if without_entities is not data:
        notes.append("DOCTYPE with entity declarations ignored")
        data = without_entities
    repaired = _repair_utf8(data, content_type)
    if repaired is not None:
        data, note = repaired
        notes.append(note)
    without_surrogates = _replace_surrogate_references(data)
    if without_surrogates is not data:
        notes.append("references to lone surrogates replaced with U+FFFD")
        data = without_surrogates
    return data, notes


def _replace_surrogate_references(data: bytes) -> bytes:
    """``&#xD800;``/``&#55296;`` (U+D800-U+DFFF, no character at all) -> ``&#xFFFD;``.

    Returns ``data`` itself when it holds none.
    """
    if b"&#" not in data:
        return data
    changed = False

    def replace(found: re.Match[bytes]) -> bytes:
        nonlocal changed
        digits = found.group(1)
        value = int(digits[1:], 16) if digits[:1] in (b"x", b"X") else int(digits)
        if 0xD800 <= value <= 0xDFFF:
            changed = True
            return b"&#xFFFD;"
        return found.group(0)

    replaced = _NUMERIC_REFERENCE.sub(replace, data)
    return replaced if changed else data


# Up to 10 digits: a longer number is no character either way, and is left to the parser.
_NUMERIC_REFERENCE = re.compile(rb"&#([xX][0-9a-fA-F]{1,10}|[0-9]{1,10});")


def _wide_to_utf8(data: bytes) -> bytes:
    """Re-encode a UTF-16 or UTF-32 document as UTF-8 so the byte-level checks see it."""
    codec = next((name for marks, name in _WIDE if data.startswith(marks)), None)
    if codec is None:
        return data
    text = data.decode(codec, "replace").removeprefix("\ufeff")
    return _DECLARED_ENCODING.sub(r"\1utf-8\2", text, count=1).encode("utf-8")


# UTF-32 first: its little-endian BOM starts like UTF-16's.
_WIDE = (
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
    (b"<\x00?\x00", "utf-16-le"),
    (b"\x00<\x00?", "utf-16-be"),
)
_DECLARED_ENCODING = re.compile(r"""^(<\?xml[^>]{0,200}?encoding=["'])[A-Za-z0-9._-]+(["'])""")


def _drop_entity_declarations(data: bytes) -> bytes:
    """Remove a DOCTYPE whose internal subset declares entities (entity expansion, XXE).

    The DOCTYPE is looked for wherever the prolog puts it, however long the comments
    before it. Returns ``data`` itself when there is nothing to remove. References to
    the removed entities are then left as they are by the tolerant parser.
    """
    start = _prolog_end(data)
    if not data.startswith(b"<!DOCTYPE", start):
        return data
    subset = _DOCTYPE_SUBSET.match(data, start)
    if subset is None:
        return data
    end = _SUBSET_END.search(data, subset.end())
    stop = end.end() if end else len(data)
    if b"<!ENTITY" not in data[subset.end() : stop]:
        return data
    return data[:start] + data[stop:]


_DOCTYPE_SUBSET = re.compile(rb"<!DOCTYPE[^\[>]*\[")
_SUBSET_END = re.compile(rb"\]\s*>")
_PROLOG_PARTS = ((b"<?", b"?>"), (b"<!--", b"-->"))


def _prolog_end(data: bytes, position: int = 0) -> int:
    """Offset of the first thing after the XML declaration, PIs, comments and whitespace."""
    while True:
        while position < len(data) and data[position : position + 1].isspace():
            position += 1
        for opening, closing in _PROLOG_PARTS:
            if data.startswith(opening, position):
                end = data.find(closing, position + len(opening))
                position = len(data) if end < 0 else end + len(closing)
                break
        else:
            return position


def _root_name(data: bytes) -> bytes | None:
    """The root element's name (with any prefix), or None when there is none."""
    start = _prolog_end(data)
    if data.startswith(b"<!DOCTYPE", start):
        subset = _DOCTYPE_SUBSET.match(data, start)
        end = _SUBSET_END.search(data, subset.end()) if subset else None
        close = end.end() if end else data.find(b">", start) + 1
        start = _prolog_end(data, close) if close > 0 else len(data)
    found = _ELEMENT_NAME.match(data, start)
    return found.group(1) if found else None


_ELEMENT_NAME = re.compile(rb"<([A-Za-z_][\w.:-]*)")


def _is_truncated(data: bytes) -> bool:
    """Say whether the document ends before its root element is closed."""
    root = _root_name(data)
    return root is not None and data.rfind(b"</" + root, max(0, len(data) - 65536)) < 0


def _closed_entries(data: bytes) -> int:
    """How many items or entries the document closes (feedparser keeps document order)."""
    return len(_ENTRY_END.findall(data))


_ENTRY_END = re.compile(rb"</(?:[\w.-]+:)?(?:item|entry)\s*>")


def _what_instead(
    data: bytes, content_type: str | None, warning: str | None, page: bytes, url: str
) -> str:
    """Say what a document that gave no feed is, for the error message; a web page, with
    the feeds its head names (``page`` is the body as fetched from ``url``)."""
    root = (_root_name(data) or b"").lower()
    if root == b"html" or "html" in (content_type or "").lower():
        return _page_instead(find_feed_links(page, url, content_type))
    return warning or "no RSS or Atom root element"


NAMED_FEEDS = 3  # feeds of a web page an error names


def _page_instead(links: list[FeedLink]) -> str:
    if not links:
        return (
            "an HTML page naming no feed (is the URL a web page rather than its feed?"
            " `watcher feeds add URL` looks for it)"
        )
    named = ", ".join(link.url for link in links[:NAMED_FEEDS])
    more = f" and {len(links) - NAMED_FEEDS} more" if len(links) > NAMED_FEEDS else ""
    feeds = "the feed" if len(links) == 1 else "the feeds"
    return f"an HTML page naming {feeds} {named}{more}: use one as the feed's url"


def _repair_utf8(data: bytes, content_type: str | None) -> tuple[bytes, str] | None:
    """Repair a UTF-8 document holding bad bytes; None when it is fine or not UTF-8.

    A document that declares UTF-8 (or declares nothing but holds valid UTF-8
    elsewhere) keeps its good text, stray bad bytes replaced; one that declares
    UTF-8 but holds no UTF-8 at all is read as Windows-1252 (a superset of
    Latin-1), the usual truth. One in a declared legacy encoding is left to feedparser.
    Returns the repaired bytes (UTF-8) and a note saying what was done.
    """
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data[:4]:
        return None  # UTF-16 or UTF-32
    charset = _CHARSET.search(content_type or "")
    declared = _XML_DECLARED_ENCODING.match(data)
    names = {m.group(1).lower().decode("ascii", "replace") for m in (declared,) if m}
    names |= {charset.group(1).lower()} if charset else set()
    if names - {"utf-8", "utf8"} or _is_utf8(data):
        return None
    text = data.decode("utf-8", "replace")
    if _REAL_NON_ASCII.search(text):
        return text.encode("utf-8"), "bytes that are not UTF-8 replaced"
    if not names:
        return None
    legacy = data.decode("cp1252", "replace").encode("utf-8")
    return legacy, "declared UTF-8 but encoded as Windows-1252: read as such"


_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._-]+)", re.IGNORECASE)
_REAL_NON_ASCII = re.compile("[^\x00-\x7f\ufffd]")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _run_feedparser(data: bytes, url: str, content_type: str | None) -> dict[str, Any]:
    """feedparser with its sanitiser and URI resolver off; its crashes become ParseError.

    Imported here: most feeds never need it (fastparse reads them), and its import (with
    chardet's) is ~30 ms of every start."""
    import feedparser

    try:
        result: dict[str, Any] = feedparser.parse(
            io.BytesIO(data),
            response_headers={"content-type": content_type} if content_type else {},
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    except Exception as e:  # a feedparser bug on odd input is still a bad feed
        raise ParseError(url, f"not a feed: feedparser failed: {type(e).__name__}: {e}") from e
    return result


def _within_feedparser_reach(data: bytes, url: str, notes: list[str]) -> bytes:
    """The document cut after its last whole entry within ``FEEDPARSER_MAX_ELEMENTS``.

    feedparser takes about 50 us per element and cannot be stopped while it runs, so a
    document of more elements keeps only its first entries (its end is kept, so it stays
    well-formed), with a note. A first entry that alone exceeds the limit is an error.
    """
    if _element_count(data) <= FEEDPARSER_MAX_ELEMENTS:
        return data
    limit = _nth_element_start(data, FEEDPARSER_MAX_ELEMENTS)
    ends = list(_ENTRY_END.finditer(data))
    kept = [end for end in ends if end.end() <= limit]
    if not kept:
        raise ParseError(
            url, f"an entry holds more than {FEEDPARSER_MAX_ELEMENTS:,} XML elements: not read"
        )
    notes.append(
        f"a document of more than {FEEDPARSER_MAX_ELEMENTS:,} XML elements: only its first"
        f" {len(kept):,} of {len(ends):,} items were read"
    )
    return data[: kept[-1].end()] + data[ends[-1].end() :]


FEEDPARSER_MAX_ELEMENTS = 100_000
# Characters of a title read: enough for any title once its markup is gone (finish.py
# keeps 2,000), not a megabyte of text to tokenise for an id.
MAX_TITLE_INPUT = 32_000
_CDATA_START, _CDATA_END = b"<![CDATA[", b"]]>"


def _element_count(data: bytes) -> int:
    """About how many elements feedparser meets: ``<`` outside CDATA sections."""
    count = data.count(b"<")
    position = 0
    while (start := data.find(_CDATA_START, position)) >= 0:
        end = data.find(_CDATA_END, start)
        stop = len(data) if end < 0 else end
        count -= data.count(b"<", start + len(_CDATA_START), stop)
        position = stop
    return count


def _nth_element_start(data: bytes, n: int) -> int:
    """Where the ``n``-th ``<`` outside CDATA sections is (the end when there are fewer)."""
    position, seen = -1, 0
    while seen < n:
        position = data.find(b"<", position + 1)
        if position < 0:
            return len(data)
        if data.startswith(_CDATA_START, position):
            end = data.find(_CDATA_END, position)
            position = len(data) if end < 0 else end
        seen += 1
    return position


def _bozo_warning(result: dict[str, Any]) -> str | None:
    if not result.get("bozo"):
        return None
    error = result.get("bozo_exception")
    if error is None or type(error).__name__ in _IGNORED_BOZO:
        return None
    line = getattr(error, "getLineNumber", None)
    message = getattr(error, "getMessage", None)
    if callable(line) and callable(message):
        return f"ill-formed XML at line {line()}: {message()}"
    return f"ill-formed feed: {type(error).__name__}: {error}"


# --- entries ------------------------------------------------------------------------------


def _drop_empty_items(feed: ParsedFeed, url: str) -> ParsedFeed:
    """Leave out items with no title, link or text: nothing to store, match or show."""
    kept = tuple(i for i in feed.items if i.title or i.link or i.summary_text or i.content_text)
    dropped = len(feed.items) - len(kept)
    if not dropped:
        return feed
    note = f"{dropped} items with no title, link or text skipped"
    warning = f"{feed.warning}; {note}" if feed.warning else note
    if not kept and feed.warning:
        raise ParseError(url, f"not a feed: no readable item ({feed.warning})")
    return replace(feed, items=kept, warning=warning)


def _item(entry: dict[str, Any], base: str | None, feed_language: str | None) -> ParsedItem:
    published = _date(entry, "published_parsed")
    updated = _date(entry, "updated_parsed")
    title = _plain_title(entry)
    link = _absolute(base, _entry_link(entry))
    summary = _html_field(dict.get(entry, "summary_detail"), base)
    content = _content(entry, base)
    if summary.html and summary.html == content.html:
        summary = _EMPTY
    return ParsedItem(
        guid=_guid(entry, link, title, published or updated),
        title=title,
        link=link,
        summary=summary.html,
        content=content.html,
        summary_text=summary.text,
        content_text=content.text,
        author=_author(entry),
        tags=_tags(entry),
        published_at=published or updated,
        updated_at=updated,
        language=_entry_language(entry) or feed_language,
        notes=flattened_notes(summary, content),
    )


def _entry_language(entry: dict[str, Any]) -> str | None:
    """The entry's own ``xml:lang``: on the entry (lxml reader) or on its title, summary or
    content (feedparser, which also hands down the feed's)."""
    details = [entry, dict.get(entry, "title_detail"), dict.get(entry, "summary_detail")]
    details += list(dict.get(entry, "content") or ())[:1]
    for detail in details:
        if isinstance(detail, dict):
            found = language_tag(detail.get("language"))
            if found:
                return found
    return None


def _guid(entry: dict[str, Any], link: str | None, title: str, published: datetime | None) -> str:
    given = str(dict.get(entry, "id") or "").strip()
    if given:
        return given
    if link:
        return link
    stamp = published.isoformat() if published else ""
    digest = hashlib.sha256(f"{title}\n{stamp}".encode()).hexdigest()
    return f"sha256:{digest[:32]}"


def _entry_link(entry: dict[str, Any]) -> str | None:
    link = dict.get(entry, "link")
    if link and dict.get(entry, "guidislink") and not _is_http(str(link)):
        return None  # an RSS guid that feedparser took for a permalink but is not a URL
    if link:
        return str(link)
    for candidate in dict.get(entry, "links") or []:
        if candidate.get("rel", "alternate") == "alternate" and candidate.get("href"):
            return str(candidate["href"])
    return None


def _content(entry: dict[str, Any], base: str | None) -> CleanHtml:
    """Return the longest of the entry's content values, sanitised, and its text."""
    values = dict.get(entry, "content") or []
    best = max(values, key=lambda value: len(value.get("value") or ""), default=None)
    return _html_field(best, base)


_EMPTY = CleanHtml("", "")


def _html_field(detail: dict[str, Any] | None, base: str | None) -> CleanHtml:
    """The sanitised HTML and plain text of a feedparser text construct."""
    if not detail:
        return _EMPTY
    value = str(detail.get("value") or "")
    if not value.strip():
        return _EMPTY
    kind = str(detail.get("type") or "text/html")
    if kind == "text/plain":
        text = collapse_whitespace(value[:MAX_INPUT])
        return CleanHtml(text_to_html(text), text)
    return clean_html(value, _absolute(base, detail.get("base")) or base)


def _plain_title(node: dict[str, Any]) -> str:
    title = str(dict.get(node, "title") or "")[:MAX_TITLE_INPUT]
    detail = dict.get(node, "title_detail") or {}
    if detail.get("type") in ("text/html", "application/xhtml+xml") or looks_like_html(title):
        return html_to_text(title).replace("\n", " ")
    return collapse_whitespace(title).replace("\n", " ")


def _author(entry: dict[str, Any]) -> str | None:
    detail = dict.get(entry, "author_detail") or {}
    name = detail.get("name") or dict.get(entry, "author")
    if not name:
        authors = dict.get(entry, "authors") or [{}]
        name = authors[0].get("name")
    text = collapse_whitespace(html_to_text(str(name))) if name else ""
    return text.replace("\n", " ") or None


def _tags(entry: dict[str, Any]) -> tuple[str, ...]:
    found: dict[str, None] = {}
    for tag in dict.get(entry, "tags") or []:
        label = collapse_whitespace(str(tag.get("term") or tag.get("label") or ""))
        if label:
            found.setdefault(label, None)
    return tuple(found)


def _date(entry: dict[str, Any], key: str) -> datetime | None:
    parsed = dict.get(entry, key)
    if not isinstance(parsed, time.struct_time):
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(parsed), UTC)
    except (OverflowError, OSError, ValueError):
        return None


# --- URLs ---------------------------------------------------------------------------------


def _is_http(url: str) -> bool:
    return urlsplit(url).scheme.lower() in ("http", "https")


def _link_base(url: str) -> str | None:
    return url if _is_http(url) else None


def _absolute(base: str | None, link: object) -> str | None:
    if not link:
        return None
    text = str(link).strip()
    return urljoin(base, text) if base else text
