"""Build small RSS 2.0 documents for tests; every item is written by the test itself."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from xml.sax.saxutils import escape


@dataclass(frozen=True)
class Entry:
    guid: str
    title: str
    description: str = ""
    link: str | None = None
    published: datetime | None = None


def rss(entries: list[Entry], title: str = "Test feed") -> bytes:
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0"><channel>',
        f"<title>{escape(title)}</title><link>https://test.example.org/</link>",
        "<description>test</description>",
    ]
    for e in entries:
        parts.append("<item>")
        parts.append(f'<guid isPermaLink="false">{escape(e.guid)}</guid>')
        parts.append(f"<title>{escape(e.title)}</title>")
        link = e.link or f"https://test.example.org/{e.guid}"
        parts.append(f"<link>{escape(link)}</link>")
        if e.description:
            parts.append(f"<description>{escape(e.description)}</description>")
        if e.published:
            parts.append(f"<pubDate>{format_datetime(e.published)}</pubDate>")
        parts.append("</item>")
    parts.append("</channel></rss>")
    return "\n".join(parts).encode()
