"""The lxml fast path and feedparser give the same feed and items for every sample and test feed."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.feedgen import Entry, rss
from watcher.poll import fastparse
from watcher.poll.parse import parse_feed, parse_xml_feed

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from farm import Farm  # noqa: E402

SAMPLES = sorted(
    p
    for p in [*(ROOT / "data" / "feeds").iterdir(), *(ROOT / "tests" / "data").iterdir()]
    if p.suffix in (".xml", ".atom", ".rss")
)


def farm_feeds() -> list[bytes]:
    farm = Farm(feeds=3, items=20, new=2, generations=[0, 1, 2])
    return [farm.body(n) for n in range(3)]


def built_feeds() -> list[bytes]:
    when = datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC)
    return [
        rss([Entry("a", "Plain title", "<p>Hi &amp; <b>bye</b></p>", published=when)]),
        rss([Entry("b", "Tom &amp; Jerry <i>x</i>", "text", link="/relative/path")]),
        rss([Entry("c", "  spaced   title  ", "  <p> padded </p>  ")]),
        b'<rss version="2.0"><channel><title>Guids</title>'
        b"<item><guid>plain-id</guid><title>A permalink guid that is no URL</title></item>"
        b"<item><guid>https://x.example/p/1</guid><title>A permalink guid</title></item>"
        b'<item><guid isPermaLink="false">https://x.example/p/2</guid><title>Not one</title>'
        b"</item></channel></rss>",
    ]


CASES = [(p.name, p.read_bytes()) for p in SAMPLES]
CASES += [(f"farm-{n}", body) for n, body in enumerate(farm_feeds())]
CASES += [(f"built-{n}", body) for n, body in enumerate(built_feeds())]


@pytest.mark.parametrize(("name", "body"), CASES, ids=[name for name, _ in CASES])
def test_both_paths_give_the_same_feed_and_items(name: str, body: bytes) -> None:
    url = "https://feeds.example.org/a/feed.xml"
    fast = parse_xml_feed(body, url, "application/rss+xml; charset=utf-8")
    slow = parse_xml_feed(body, url, "application/rss+xml; charset=utf-8", fast_path=False)
    assert (fast.title, fast.link, fast.format) == (slow.title, slow.link, slow.format)
    assert [i.guid for i in fast.items] == [i.guid for i in slow.items]
    assert fast.items == slow.items  # ids, titles, links, dates, HTML, text, tags, authors


def test_the_fast_path_reads_the_plain_feeds_itself() -> None:
    accepted = {name for name, body in CASES if fastparse.read_feed(body, None) is not None}
    assert {"frontline.xml", "rss20.xml", "atom.xml"} <= accepted
    assert {f"{kind}-{n}" for kind in ("farm", "built") for n in range(3)} <= accepted
    assert "built-3" in accepted  # permalink guids without a link
    assert not {"rss10.xml", "defense-wire.atom"} & accepted  # RDF; Atom XHTML text


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><rss version="2.0"><channel><item><title>a &nbsp; b</title>'
        b"</item></channel></rss>",  # undeclared entity: not strict XML
        b'<rss version="2.0"><channel><item><title>t</title><pubDate>yesterday</pubDate>'
        b"</item></channel></rss>",  # a date only feedparser reads (or not)
        b'<rss version="2.0"><channel><item><title>t</title><description><p>x</p>'
        b"</description></item></channel></rss>",  # markup as child elements
        b'<rss version="2.0"><channel><item><title>t</title><author>a@b.c (A)</author>'
        b"</item></channel></rss>",  # e-mail author syntax
        b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><title type="xhtml">'
        b'<div xmlns="http://www.w3.org/1999/xhtml">x</div></title></entry></feed>',
        b'<!DOCTYPE rss [<!ENTITY e "x">]><rss version="2.0"><channel/></rss>',
        b'<?xml version="1.0" encoding="iso-8859-1"?><rss version="2.0"><channel/></rss>',
    ],
)
def test_unusual_documents_are_left_to_feedparser(body: bytes) -> None:
    assert fastparse.read_feed(body, None) is None


def test_html_from_the_fast_path_is_sanitised() -> None:
    body = rss([Entry("x", "t", '<p onclick="steal()">hi</p><script>alert(1)</script>')])
    assert fastparse.read_feed(body, None) is not None
    item = parse_feed(body, "https://feeds.example.org/").items[0]
    assert item.summary == "<p>hi</p>"
    assert "alert" not in item.summary_text


def test_text_content_types_go_to_feedparser() -> None:
    body = rss([Entry("x", "t", "d")])
    assert fastparse.read_feed(body, "text/xml") is None
    assert fastparse.read_feed(body, "application/xml; charset=iso-8859-1") is None
