"""OPML 2.0 feed lists: read the feeds an OPML file names, write feeds as OPML; no config logic.

Every ``outline`` with an ``xmlUrl`` is a feed. Its title (``title``, else ``text``) is kept;
the titles of the folder outlines around it and the parts of its ``category`` attribute
(``/Tech/News,ukraine``) become its tags.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from watcher.exceptions import ConfigError, Problem
from watcher.printable import printable
from watcher.types import FeedConfig

HTTP_SCHEMES = ("http", "https")


def feed_location(url: str, base: Path) -> str:
    """An http(s) URL as written, else a local path made absolute against ``base``.

    ``file://`` URLs are local paths too; any other scheme raises ValueError.
    """
    text = url.strip()
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme in HTTP_SCHEMES:
        if not parts.netloc:
            raise ValueError(f"URL {text!r} has no host")
        return text
    if scheme == "file":
        return os.path.normpath(unquote(parts.path))
    if scheme and "://" in text:
        raise ValueError(f"unsupported URL scheme {scheme!r}: use http(s) or a local path")
    path = Path(text).expanduser()
    return os.path.normpath(path if path.is_absolute() else base / path)


def read_opml(path: Path) -> list[FeedConfig]:
    """Every feed of the OPML file at ``path``; raises ConfigError naming the file and line."""
    root = _parse(path)
    body = root.find("body")
    if root.tag != "opml" or body is None:
        raise ConfigError(Problem(str(path), "not an OPML file: no <opml><body>"))
    feeds: list[FeedConfig] = []
    try:
        _collect(body, (), path.absolute().parent, feeds)
    except ValueError as e:
        raise ConfigError(Problem(str(path), str(e))) from e
    return feeds


def write_opml(feeds: Iterable[FeedConfig], title: str = "watcher feeds") -> str:
    """An OPML 2.0 document listing ``feeds`` (URL, title, tags as ``category``)."""
    root = ET.Element("opml", version="2.0")
    ET.SubElement(ET.SubElement(root, "head"), "title").text = title
    body = ET.SubElement(root, "body")
    for feed in feeds:
        # A feed's title came from the feed: XML cannot hold its control characters.
        shown = printable(feed.title) if feed.title else None
        attrs = {"type": "rss", "text": shown or feed.name or feed.url, "xmlUrl": feed.url}
        if shown:
            attrs["title"] = shown
        if feed.tags:
            attrs["category"] = ",".join(feed.tags)
        ET.SubElement(body, "outline", attrs)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def _parse(path: Path) -> ET.Element:
    """The root element of the file; entity declarations are refused."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(Problem(str(path), f"cannot read OPML file: {e.strerror}")) from e
    if b"<!entity" in data.lower():
        raise ConfigError(Problem(str(path), "OPML files may not declare XML entities"))
    try:
        return ET.fromstring(data)
    except ET.ParseError as e:
        line = e.position[0] if e.position else None
        raise ConfigError(Problem(str(path), f"invalid OPML: {e}", line)) from e


def _collect(
    parent: ET.Element, folders: tuple[str, ...], base: Path, out: list[FeedConfig]
) -> None:
    """Append the feeds under ``parent``; folder outlines add their title as a tag."""
    for outline in parent.findall("outline"):
        attrs = {k.lower(): v.strip() for k, v in outline.attrib.items()}
        title = attrs.get("title") or attrs.get("text") or None
        url = attrs.get("xmlurl")
        if url:
            tags = _unique(folders + _categories(attrs.get("category", "")))
            out.append(FeedConfig(url=feed_location(url, base), title=title, tags=tags))
        _collect(outline, folders if url or not title else (*folders, title), base, out)


def _categories(text: str) -> tuple[str, ...]:
    """``/Tech/News,ukraine`` -> (Tech, News, ukraine)."""
    return tuple(part.strip() for cat in text.split(",") for part in cat.split("/") if part.strip())


def _unique(tags: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(tags))
