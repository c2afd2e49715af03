"""OPML 2.0 feed lists: read the feeds an OPML file names, write feeds as OPML; no config logic.

Every ``outline`` with an ``xmlUrl`` is a feed. Its title (``title``, else ``text``) is kept;
the titles of the folder outlines around it and the parts of its ``category`` attribute
(``/Tech/News,ukraine``) become its tags. An OPML file comes from elsewhere: what it may add
is narrower than what watcher.yaml may (``http_feed_url``, ``config_feed_location``), and a
``${`` in it is text, never an environment variable.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from watcher import envvars
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


def http_feed_url(url: str) -> str:
    """``url`` when it is an http(s) URL with a host; else ValueError saying why not.

    What an OPML file may add with ``watcher feeds import``: a local path, ``file:``,
    ``javascript:`` or any other scheme is refused.
    """
    if re.search(r"[\s\x00-\x1f\x7f-\x9f]", url):
        raise ValueError("not a valid URL: it holds spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is no number
    except ValueError as e:
        raise ValueError(f"not a valid URL ({e})") from e
    scheme = parts.scheme.lower()
    if scheme in HTTP_SCHEMES:
        if not parts.hostname:
            raise ValueError("the URL has no host")
        return url
    if scheme == "file" or not scheme or (len(scheme) == 1 and url[1:3] in (":\\", ":/")):
        raise ValueError(
            "a local file: an OPML import takes http(s) URLs only"
            " (add a local file with `watcher feeds add PATH`)"
        )
    raise ValueError(f"not an http(s) URL (scheme {scheme!r})")


def config_feed_location(url: str, opml_folder: Path, config_folder: Path) -> str:
    """An entry of an OPML file named in watcher.yaml: an http(s) URL, or a local file under
    the config's folder (a relative path is taken from the OPML file's folder)."""
    try:
        return http_feed_url(url)
    except ValueError as refused:
        if not str(refused).startswith("a local file"):
            raise
    location = feed_location(url, opml_folder)
    inside = Path(location).resolve().is_relative_to(config_folder.resolve())
    if not inside:
        raise ValueError(
            f"a local file outside {config_folder}: an OPML file may name http(s) URLs and"
            " files under the config's folder only (write other files in watcher.yaml)"
        )
    return location


def read_opml(path: Path) -> list[FeedConfig]:
    """Every feed of the OPML file at ``path``, its ``xmlUrl`` as written (spaces stripped);
    raises ConfigError naming the file and line. Check each URL before using it:
    ``http_feed_url`` or ``config_feed_location``."""
    root = _parse(path)
    body = root.find("body")
    if root.tag != "opml" or body is None:
        raise ConfigError(Problem(str(path), "not an OPML file: no <opml><body>"))
    feeds: list[FeedConfig] = []
    _collect(body, (), feeds)
    return feeds


def write_opml(feeds: Iterable[FeedConfig], title: str = "watcher feeds") -> str:
    """An OPML 2.0 document listing ``feeds`` (URL, title, tags as ``category``)."""
    root = ET.Element("opml", version="2.0")
    ET.SubElement(ET.SubElement(root, "head"), "title").text = title
    body = ET.SubElement(root, "body")
    for feed in feeds:
        # A feed's title came from the feed: XML cannot hold its control characters.
        shown = printable(feed.title) if feed.title else None
        url = feed.url if envvars.has_references(feed.url) else envvars.expand(feed.url, {})
        attrs = {"type": "rss", "text": shown or feed.name or url, "xmlUrl": url}
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


def _collect(parent: ET.Element, folders: tuple[str, ...], out: list[FeedConfig]) -> None:
    """Append the feeds under ``parent``; folder outlines add their title as a tag."""
    for outline in parent.findall("outline"):
        attrs = {k.lower(): v.strip() for k, v in outline.attrib.items()}
        title = attrs.get("title") or attrs.get("text") or None
        url = attrs.get("xmlurl")
        if url:
            tags = _unique(folders + _categories(attrs.get("category", "")))
            out.append(FeedConfig(url=url, title=title, tags=tags))
        _collect(outline, folders if url or not title else (*folders, title), out)


def _categories(text: str) -> tuple[str, ...]:
    """``/Tech/News,ukraine`` -> (Tech, News, ukraine)."""
    return tuple(part.strip() for cat in text.split(",") for part in cat.split("/") if part.strip())


def _unique(tags: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(tags))
