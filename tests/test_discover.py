"""Feed discovery: the feeds a page's head names, and the usual places to try."""

from __future__ import annotations

import time

import pytest

from tests.articles import HOSTILE, pages
from watcher.poll.discover import FeedLink, find_feed_links, usual_feed_urls

PAGES = {page.name: page for page in pages()}


def head(links: str, body: str = "") -> bytes:
    page = f"<!DOCTYPE html><html><head><title>t</title>{links}</head><body>{body}</body></html>"
    return page.encode()


def link(
    href: str, kind: str = "application/rss+xml", rel: str = "alternate", title: str = ""
) -> str:
    return f'<link rel="{rel}" type="{kind}" title="{title}" href="{href}">'


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "frontline-fiber-drones",
            [
                FeedLink(
                    "https://frontline-monitor.example/feed/", "Frontline Monitor » Feed", "rss"
                ),
                FeedLink(
                    "https://frontline-monitor.example/comments/feed/",
                    "Frontline Monitor » Comments Feed",
                    "rss",
                ),
            ],
        ),
        (
            "ledger-casualties-jsonld",
            [
                FeedLink(
                    "https://northernledger.example/news/world/atom.xml",
                    "The Northern Ledger: World",
                    "atom",
                ),
                FeedLink(
                    "https://northernledger.example/feed.json", "The Northern Ledger (JSON)", "json"
                ),
            ],
        ),
        (
            "meridian-nk-troops",
            [
                FeedLink(
                    "https://meridianpost.example/world/rss", "The Meridian Post - World", "rss"
                )
            ],
        ),
        (
            "kharkiv-blog-br-casualties",
            [
                FeedLink(
                    "https://notes-from-kharkiv.example/feeds/posts/default",
                    "Notes from Kharkiv - Atom",
                    "atom",
                ),
                FeedLink(
                    "https://notes-from-kharkiv.example/feeds/posts/default?alt=rss",
                    "Notes from Kharkiv - RSS",
                    "rss",
                ),
            ],
        ),
        (
            "hanbit-ko-kursk",
            [
                FeedLink(
                    "https://hanbit-daily.example/rss/allArticle.xml", "한빛일보 전체기사", "rss"
                )
            ],
        ),
        ("baltic-negative-sidebar", []),
    ],
)
def test_the_test_pages_name_their_feeds(name: str, expected: list[FeedLink]) -> None:
    page = PAGES[name]
    assert find_feed_links(page.html, page.url, page.content_type) == expected


BASE = "https://site.example/news/today.html"


@pytest.mark.parametrize(
    ("links", "urls"),
    [
        # relative URLs against the page; every kind of feed type; case and parameters
        (link("feed.xml"), ["https://site.example/news/feed.xml"]),
        (link("/atom", "application/atom+xml"), ["https://site.example/atom"]),
        (link("//cdn.example/f.json", "application/feed+json"), ["https://cdn.example/f.json"]),
        (link("/r", "Application/RSS+XML; charset=utf-8"), ["https://site.example/r"]),
        (link("/rdf", "application/rdf+xml"), ["https://site.example/rdf"]),
        # rel is a list of words; rel="feed" counts too
        (link("/a", rel="Alternate nofollow"), ["https://site.example/a"]),
        (link("/a", rel="feed"), ["https://site.example/a"]),
        # what is not a feed link
        (link("/a", rel="stylesheet"), []),
        (link("/a", "application/json"), []),  # WordPress's REST API, not a feed
        (link("/a", "text/html"), []),
        (link(""), []),
        ('<link rel="alternate" type="application/rss+xml">', []),
        # only http(s), fragments dropped, each URL once, page order kept
        (link("javascript:alert(1)"), []),
        (link("file:///etc/passwd"), []),
        (link("data:application/rss+xml,<rss/>"), []),
        (
            link("/a#top") + link("/a") + link("/b"),
            ["https://site.example/a", "https://site.example/b"],
        ),
        (
            link("/b") + link("/a", "application/atom+xml"),
            ["https://site.example/b", "https://site.example/a"],
        ),
        # <base href> moves the base
        (
            '<base href="https://other.example/blog/">' + link("feed"),
            ["https://other.example/blog/feed"],
        ),
        ('<base href="/blog/">' + link("feed"), ["https://site.example/blog/feed"]),
        # a commented-out link is not a link
        ("<!-- " + link("/old") + " -->" + link("/new"), ["https://site.example/new"]),
    ],
)
def test_links(links: str, urls: list[str]) -> None:
    assert [feed.url for feed in find_feed_links(head(links), BASE)] == urls


def test_a_link_after_the_head_is_not_read() -> None:
    assert find_feed_links(head("", body=link("/in-body")), BASE) == []


def test_titles_are_one_line_of_clean_text() -> None:
    feeds = find_feed_links(head(link("/a", title="  World\n news &amp; more &#xD800; ")), BASE)
    assert feeds[0].title == "World news & more \ufffd"


def test_the_declared_charset_is_used_for_titles() -> None:
    page = head(link("/a", title="Новости")).replace(
        b"<title>", b'<meta charset="windows-1251"><title>'
    )
    data = page.decode().encode("cp1251")
    assert find_feed_links(data, BASE)[0].title == "Новости"


@pytest.mark.parametrize("data", [b"", b"not html at all", b"\x89PNG\r\n\x1a\n\x00\x00"])
def test_what_is_not_a_page_names_no_feed(data: bytes) -> None:
    assert find_feed_links(data, BASE) == []


@pytest.mark.parametrize("name", ["nested-div", "a-a-a", "attributes", "links"])
def test_hostile_pages_name_no_feed_and_end_quickly(name: str) -> None:
    html = HOSTILE[name]().replace(b"</head>", b"").replace(b"<body>", b"")  # all of it is head
    started = time.process_time()
    assert find_feed_links(html, BASE) == []
    assert time.process_time() - started < 5


def test_a_hostile_body_does_not_hide_the_head() -> None:
    html = head(link("/feed"), body="<div>" * 200_000)
    assert [feed.url for feed in find_feed_links(html, BASE)] == ["https://site.example/feed"]


@pytest.mark.parametrize(
    ("page", "urls"),
    [
        (
            "https://site.example/",
            [
                "https://site.example/feed",
                "https://site.example/rss",
                "https://site.example/atom.xml",
                "https://site.example/feed.xml",
                "https://site.example/index.xml",
            ],
        ),
        (
            "https://site.example/blog/post-1?x=1#y",
            [
                "https://site.example/blog/feed",
                "https://site.example/blog/rss",
                "https://site.example/blog/atom.xml",
                "https://site.example/blog/feed.xml",
                "https://site.example/blog/index.xml",
                "https://site.example/feed",
                "https://site.example/rss",
                "https://site.example/atom.xml",
                "https://site.example/feed.xml",
                "https://site.example/index.xml",
            ],
        ),
        (
            "http://site.example:8080",
            [
                "http://site.example:8080/" + p
                for p in ("feed", "rss", "atom.xml", "feed.xml", "index.xml")
            ],
        ),
        ("file:///var/www/index.html", []),
        ("ftp://site.example/", []),
    ],
)
def test_usual_places(page: str, urls: list[str]) -> None:
    assert list(usual_feed_urls(page)) == urls
