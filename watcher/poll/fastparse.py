"""Read well-formed RSS 2.0 and Atom 1.0 quickly with lxml; anything unusual is left to feedparser.

``read_feed`` returns the feed and its entries in the shape feedparser gives them
(the keys ``parse.py`` reads: id, title, link, summary_detail, content, author,
tags, published_parsed, updated_parsed), so both paths share the code that turns
an entry into a ``ParsedItem``: sanitising (nh3), plain text, ids and dates. It
returns None, and the caller uses feedparser, whenever the document is not strict
XML, declares a DOCTYPE or ``xml:base``, is not UTF-8, or holds an element or a
value this reader does not map exactly as feedparser would (dates in other
formats, Atom XHTML or out-of-line content, RSS ``<author>`` e-mail syntax, ...).
It never resolves entities, loads a DTD or touches the network.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_tz
from typing import Any

from lxml import etree

from watcher.poll.html import looks_like_html

ATOM = "{http://www.w3.org/2005/Atom}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
CONTENT_ENCODED = "{http://purl.org/rss/1.0/modules/content/}encoded"
DC_CREATOR = "{http://purl.org/dc/elements/1.1/}creator"

Entry = dict[str, Any]


class Unsupported(Exception):
    """The document needs feedparser: something this reader does not map exactly."""


@dataclass(frozen=True)
class FastFeed:
    """A feed as feedparser would give it: ``feed`` and ``entries`` dicts and a version."""

    feed: Entry
    entries: list[Entry]
    version: str


_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    huge_tree=False,
    recover=False,
    remove_comments=True,
    remove_pis=True,
)


def read_feed(data: bytes, content_type: str | None) -> FastFeed | None:
    """The feed in ``data``, or None when feedparser should read it."""
    if not _plain_document(data, content_type):
        return None
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError:
        return None
    try:
        if root.tag == "rss" and root.get("version") == "2.0":
            return _rss(root)
        if root.tag == f"{ATOM}feed":
            return _atom(root)
    except Unsupported:
        return None
    return None


def _plain_document(data: bytes, content_type: str | None) -> bool:
    """UTF-8 (or ASCII) XML with no DOCTYPE and no xml:base, served as an XML type."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind.startswith("text/") or b"<!DOCTYPE" in data or b"xml:base" in data:
        return False
    declared = _DECLARED.match(data)
    if declared and declared.group(1).lower() not in (b"utf-8", b"utf8", b"us-ascii"):
        return False
    charset = _CHARSET.search(content_type or "")
    return charset is None or charset.group(1).lower() in ("utf-8", "utf8", "us-ascii")


_DECLARED = re.compile(rb"""^<\?xml[^>]{0,200}?encoding=["']([A-Za-z0-9._-]+)""")
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._-]+)", re.IGNORECASE)


# --- RSS 2.0 ------------------------------------------------------------------------------


def _rss(root: etree._Element) -> FastFeed:
    channel = _only(root, "channel")
    if channel is None:
        raise Unsupported("no channel")
    feed: Entry = {}
    for child in channel:
        if child.tag == "title":
            feed["title"] = _text(child)
        elif child.tag == "link":
            feed["link"] = _text(child)
        elif child.tag == "language":
            feed["language"] = _text(child)
        elif child.tag == f"{ATOM}link" and child.get("rel", "alternate") == "alternate":
            raise Unsupported("an Atom alternate link in an RSS channel")
        elif child.tag == f"{ATOM}link":
            _push_link(feed, child)
    entries = [_rss_item(item) for item in channel if item.tag == "item"]
    return FastFeed(feed, entries, "rss20")


def _rss_item(item: etree._Element) -> Entry:
    entry: Entry = {}
    for child in item:
        read = _RSS_FIELDS.get(child.tag)
        if read is None:
            raise Unsupported(f"RSS element {child.tag}")
        read(entry, child)
    if "link" not in entry and entry.pop("_permalink", False):
        entry["link"] = entry["id"]  # as feedparser does: the permalink guid is the link
        entry["guidislink"] = True
    entry.pop("_permalink", None)
    return entry


def _rss_guid(entry: Entry, node: etree._Element) -> None:
    _once(entry, "id", _text(node))
    entry["_permalink"] = node.get("isPermaLink", "true") == "true"


def _rss_link(entry: Entry, node: etree._Element) -> None:
    _once(entry, "link", _text(node))


def _rss_title(entry: Entry, node: etree._Element) -> None:
    title = _text(node)
    if _FEEDPARSER_ENTITY.search(title) and not looks_like_html(title):
        raise Unsupported("a title feedparser would take for HTML")
    _once(entry, "title", title)


# What makes feedparser treat an RSS title as HTML, besides a closing tag.
_FEEDPARSER_ENTITY = re.compile(r"&#?\w+;")


def _rss_description(entry: Entry, node: etree._Element) -> None:
    _once(entry, "summary_detail", _detail(node, "text/html"))


def _rss_content(entry: Entry, node: etree._Element) -> None:
    _once(entry, "content", [_detail(node, "text/html")])


def _rss_date(entry: Entry, node: etree._Element) -> None:
    _once(entry, "published_parsed", _rfc822(_text(node)))


def _rss_category(entry: Entry, node: etree._Element) -> None:
    entry.setdefault("tags", []).append({"term": _text(node), "label": None})


def _rss_creator(entry: Entry, node: etree._Element) -> None:
    name = _text(node)
    if "@" in name or "(" in name:
        raise Unsupported("an author with an e-mail address")
    _once(entry, "author_detail", {"name": name})


def _ignore(entry: Entry, node: etree._Element) -> None:
    """An element no ParsedItem field comes from."""


_RSS_FIELDS: dict[str, Callable[[Entry, etree._Element], None]] = {
    "guid": _rss_guid,
    "link": _rss_link,
    "title": _rss_title,
    "description": _rss_description,
    CONTENT_ENCODED: _rss_content,
    "pubDate": _rss_date,
    "category": _rss_category,
    DC_CREATOR: _rss_creator,
    "comments": _ignore,
    "enclosure": _ignore,
}


# --- Atom 1.0 -----------------------------------------------------------------------------


def _atom(root: etree._Element) -> FastFeed:
    feed: Entry = {}
    if root.get(XML_LANG):
        feed["language"] = root.get(XML_LANG)
    for child in root:
        if child.tag == f"{ATOM}title":
            feed["title"] = _text(child)
            feed["title_detail"] = {"type": _atom_type(child)}
        elif child.tag == f"{ATOM}link" and _is_alternate(child):
            _once(feed, "link", child.get("href") or "")
        elif child.tag == f"{ATOM}link":
            _push_link(feed, child)
    entries = [_atom_entry(node) for node in root if node.tag == f"{ATOM}entry"]
    return FastFeed(feed, entries, "atom10")


def _push_link(feed: Entry, node: etree._Element) -> None:
    """Keep a feed-level ``rel="hub"`` or ``rel="self"`` link, as feedparser lists them."""
    rel = (node.get("rel") or "").strip().lower()
    if rel in ("hub", "self") and node.get("href"):
        feed.setdefault("links", []).append({"rel": rel, "href": node.get("href")})


def _atom_entry(node: etree._Element) -> Entry:
    entry: Entry = {}
    if node.get(XML_LANG):
        entry["language"] = node.get(XML_LANG)
    for child in node:
        tag = child.tag if isinstance(child.tag, str) else ""
        read = _ATOM_FIELDS.get(tag.removeprefix(ATOM)) if tag.startswith(ATOM) else None
        if read is None:
            raise Unsupported(f"Atom element {tag}")
        read(entry, child)
    return entry


def _atom_id(entry: Entry, node: etree._Element) -> None:
    _once(entry, "id", _text(node))


def _atom_title(entry: Entry, node: etree._Element) -> None:
    _once(entry, "title", _text(node))
    entry["title_detail"] = {"type": _atom_type(node)}


def _atom_link(entry: Entry, node: etree._Element) -> None:
    if not _is_alternate(node):
        return
    if node.get("type", "text/html") not in ("text/html", "application/xhtml+xml"):
        raise Unsupported("an alternate link that is not a web page")
    _once(entry, "link", node.get("href") or "")


def _atom_summary(entry: Entry, node: etree._Element) -> None:
    _once(entry, "summary_detail", _detail(node, _atom_type(node)))


def _atom_content(entry: Entry, node: etree._Element) -> None:
    if node.get("src") is not None:
        raise Unsupported("out-of-line content")
    _once(entry, "content", [_detail(node, _atom_type(node))])


def _atom_author(entry: Entry, node: etree._Element) -> None:
    names = [child for child in node if child.tag == f"{ATOM}name"]
    if len(names) != 1:
        raise Unsupported("an author without exactly one name")
    _once(entry, "author_detail", {"name": _text(names[0])})


def _atom_date(key: str) -> Callable[[Entry, etree._Element], None]:
    def read(entry: Entry, node: etree._Element) -> None:
        _once(entry, key, _rfc3339(_text(node)))

    return read


def _atom_category(entry: Entry, node: etree._Element) -> None:
    entry.setdefault("tags", []).append({"term": node.get("term"), "label": node.get("label")})


_ATOM_FIELDS: dict[str, Callable[[Entry, etree._Element], None]] = {
    "id": _atom_id,
    "title": _atom_title,
    "link": _atom_link,
    "summary": _atom_summary,
    "content": _atom_content,
    "author": _atom_author,
    "published": _atom_date("published_parsed"),
    "updated": _atom_date("updated_parsed"),
    "category": _atom_category,
    "rights": _ignore,
}


def _atom_type(node: etree._Element) -> str:
    kind = node.get("type", "text")
    if kind == "text":
        return "text/plain"
    if kind == "html":
        return "text/html"
    raise Unsupported(f"Atom text of type {kind}")


def _is_alternate(node: etree._Element) -> bool:
    return bool(node.get("rel", "alternate") == "alternate")


# --- values -------------------------------------------------------------------------------


def _only(node: etree._Element, tag: str) -> etree._Element | None:
    found = [child for child in node if child.tag == tag]
    if len(found) > 1:
        raise Unsupported(f"more than one {tag}")
    return found[0] if found else None


def _text(node: etree._Element) -> str:
    """The element's text, which must not hold child elements (feedparser keeps markup)."""
    if len(node):
        raise Unsupported(f"markup inside {node.tag}")
    return (node.text or "").strip()


def _detail(node: etree._Element, kind: str) -> Entry:
    return {"type": kind, "value": _text(node), "base": ""}


def _once(entry: Entry, key: str, value: object) -> None:
    """Set a field that must appear once (feedparser's choice among repeats varies)."""
    if key in entry:
        raise Unsupported(f"a repeated {key}")
    entry[key] = value


_RFC822 = re.compile(
    r"(?:[A-Z][a-z]{2}, )?\d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} (?:GMT|UTC|[+-]\d{4})"
)
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})")


def _rfc822(text: str) -> time.struct_time:
    """A strict RFC 822 date as a UTC struct_time; any other form needs feedparser."""
    parts = parsedate_tz(text) if _RFC822.fullmatch(text) else None
    try:
        if parts is None:
            raise ValueError(text)
        moment = datetime(*parts[:6], tzinfo=UTC).timestamp() - (parts[9] or 0)
    except (ValueError, OverflowError) as e:
        raise Unsupported(f"a date feedparser must read: {text!r}") from e
    return time.gmtime(moment)


def _rfc3339(text: str) -> time.struct_time:
    """A strict RFC 3339 date as a UTC struct_time."""
    if not _RFC3339.fullmatch(text):
        raise Unsupported(f"a date feedparser must read: {text!r}")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise Unsupported(f"a date out of range: {text!r}") from e
    return moment.astimezone(UTC).replace(microsecond=0).utctimetuple()
