"""Fetching article pages (full_text): robots.txt, politeness, errors, deadlines, bounds.

Every test runs a real article server on 127.0.0.1 (tests/servers.py) and the fetcher the
poll uses; ``article_error`` values are what users see in ``items.article_error``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.articles import HOSTILE, pages
from tests.servers import FeedServer
from watcher.poll.articles import ArticleFetcher, fetch_articles
from watcher.poll.fetch import make_session
from watcher.poll.hosts import HostSlots
from watcher.types import Article, FullText, ParsedItem

AGENT = "watcher/0.2 (+https://example.org/watcher)"
PAGE = next(p for p in pages() if p.name == "meridian-nk-troops")
HTML = {"Content-Type": "text/html; charset=utf-8"}


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as running:
        yield running


def fetcher(
    *, per_host: int = 2, max_bytes: int = 10_000_000, block: bool = False
) -> ArticleFetcher:
    session = make_session(AGENT, block_private=block)
    return ArticleFetcher(
        session, user_agent=AGENT, max_bytes=max_bytes, threads=4, hosts=HostSlots(per_host)
    )


def item(link: str | None, guid: str | None = None, summary: str = "A teaser.") -> ParsedItem:
    return ParsedItem(guid=guid or link or "no-link", title="t", link=link, summary_text=summary)


def fetch(
    server: FeedServer, *paths: str, timeout: float = 5.0, **options: object
) -> list[Article]:
    links = [server.url(p) if p.startswith("/") else p for p in paths]
    with fetcher(**options) as f:  # type: ignore[arg-type]
        got = f.fetch_items([item(link) for link in links], timeout)
    return [got[link] for link in links]


def page_paths(server: FeedServer) -> list[str]:
    return [r.path for r in server.requests if r.path != "/robots.txt"]


def test_the_page_text_is_extracted_with_our_user_agent(server: FeedServer) -> None:
    server.set("/story", PAGE.html, headers=HTML)
    (article,) = fetch(server, "/story")
    assert article.error is None
    assert article.text is not None and "North Korean troops" in article.text
    assert "Share on Facebook" not in article.text
    assert article.fetched_at is not None
    request = next(r for r in server.requests if r.path == "/story")
    assert request.header("User-Agent") == AGENT
    assert (request.header("Accept") or "").startswith("text/html")
    assert [r.path for r in server.requests] == ["/robots.txt", "/story"]  # robots first


def test_robots_disallow_is_honoured_and_asked_once_per_origin(server: FeedServer) -> None:
    robots = b"User-agent: *\nDisallow: /private/\n\nUser-agent: other\nDisallow: /\n"
    server.set("/robots.txt", robots, headers={"Content-Type": "text/plain"})
    server.set("/private/a", PAGE.html, headers=HTML)
    server.set("/open/b", PAGE.html, headers=HTML)
    refused, allowed = fetch(server, "/private/a", "/open/b")
    assert (refused.text, refused.error) == (None, "robots")
    assert allowed.error is None
    assert page_paths(server) == ["/open/b"]  # the disallowed page is never requested
    assert [r.path for r in server.requests].count("/robots.txt") == 1


def test_a_robots_group_for_watcher_wins_over_the_star_group(server: FeedServer) -> None:
    server.set("/robots.txt", b"User-agent: *\nAllow: /\n\nUser-agent: watcher\nDisallow: /\n")
    server.set("/a", PAGE.html, headers=HTML)
    assert fetch(server, "/a")[0].error == "robots"
    assert page_paths(server) == []


def test_a_robots_server_error_postpones_the_host(server: FeedServer) -> None:
    server.set("/robots.txt", b"down", status=503)
    server.set("/a", PAGE.html, headers=HTML)
    server.set("/b", PAGE.html, headers=HTML)
    assert [a.error for a in fetch(server, "/a", "/b")] == ["robots", "robots"]
    assert page_paths(server) == []


def test_robots_answers_that_allow_everything(server: FeedServer) -> None:
    server.set("/robots.txt", b"gone", status=410)  # a 4xx: allowed
    server.set("/a", PAGE.html, headers=HTML)
    assert fetch(server, "/a")[0].error is None


@pytest.mark.parametrize(
    ("status", "error"), [(404, "http 404"), (403, "http 403"), (500, "http 500")]
)
def test_an_http_error_is_its_status(server: FeedServer, status: int, error: str) -> None:
    server.set("/gone", b"no", status=status, headers=HTML)
    article = fetch(server, "/gone")[0]
    assert (article.text, article.error) == (None, error)


def test_a_429_pauses_the_host_for_the_other_items(server: FeedServer) -> None:
    server.set("/a", b"slow down", status=429, headers={"Retry-After": "120"})
    server.set("/b", PAGE.html, headers=HTML)
    with fetcher(per_host=1) as f:
        first = f.fetch_items([item(server.url("/a"))], 5.0)
        second = f.fetch_items([item(server.url("/b"))], 5.0)
    assert first[server.url("/a")].error == "http 429"
    assert second[server.url("/b")].error == "http 429"
    assert page_paths(server) == ["/a"]  # paused: /b was never asked for


def test_a_slow_page_is_a_timeout_within_twice_the_timeout(server: FeedServer) -> None:
    server.set("/slow", PAGE.html, headers=HTML, delay=30)
    server.set("/fast", PAGE.html, headers=HTML)
    started = time.monotonic()
    slow, fast = fetch(server, "/slow", "/fast", timeout=0.5)
    assert time.monotonic() - started < 2 * 0.5 + 0.5
    assert slow.error == "timeout"
    assert fast.error is None


def test_a_page_dribbled_slower_than_the_wait_is_a_timeout(server: FeedServer) -> None:
    server.set("/drip", PAGE.html, headers=HTML, dribble=0.05, chunk_size=64)
    started = time.monotonic()
    assert fetch(server, "/drip", timeout=0.4)[0].error == "timeout"
    assert time.monotonic() - started < 2 * 0.4 + 0.5


def test_redirects_are_followed(server: FeedServer) -> None:
    server.redirect("/short", "/long/story", status=301)
    server.set("/long/story", PAGE.html, headers=HTML)
    article = fetch(server, "/short")[0]
    assert article.error is None and article.text and "Kursk" in article.text


def test_links_that_are_not_http_are_never_read(server: FeedServer) -> None:
    odd = ("file:///etc/passwd", "ftp://example.org/a", "javascript:alert(1)", "http://h:x/")
    got = fetch(server, *odd)
    assert [a.error for a in got] == ["address refused"] * 4
    assert server.requests == []


def test_the_address_policy_refuses_loopback_when_private_is_blocked(server: FeedServer) -> None:
    server.set("/a", PAGE.html, headers=HTML)
    assert fetch(server, "/a", block=True)[0].error == "address refused"
    assert server.requests == []


def test_a_redirect_to_a_file_is_refused(server: FeedServer) -> None:
    server.redirect("/a", "file:///etc/passwd")
    assert fetch(server, "/a")[0].error == "address refused"


def test_not_html_too_large_and_empty(server: FeedServer) -> None:
    server.set("/doc.pdf", b"%PDF-1.4 ...", headers={"Content-Type": "application/pdf"})
    server.set("/big", PAGE.html, headers=HTML)
    server.set("/blank", b"<html><body></body></html>", headers=HTML)
    pdf, blank = fetch(server, "/doc.pdf", "/blank")
    assert (pdf.error, blank.error) == ("not html", "empty")
    assert fetch(server, "/big", max_bytes=len(PAGE.html) - 1)[0].error == "too large"


@pytest.mark.parametrize("name", ["nested-div", "a-a-a", "links", "attributes"])
def test_hostile_pages_are_too_large_in_bounded_time(server: FeedServer, name: str) -> None:
    server.set("/h", HOSTILE[name](), headers=HTML)
    started = time.process_time()
    assert fetch(server, "/h")[0].error == "too large"
    assert time.process_time() - started < 5


def test_only_the_items_link_is_fetched_never_links_inside_the_page(server: FeedServer) -> None:
    links = "".join(f'<a href="/other/{i}">story {i}</a>' for i in range(50))
    server.set("/a", PAGE.html.replace(b"</body>", links.encode() + b"</body>"), headers=HTML)
    fetch(server, "/a")
    assert page_paths(server) == ["/a"]


def test_per_host_limits_the_fetches_in_flight(server: FeedServer) -> None:
    for i in range(4):
        server.set(f"/p{i}", PAGE.html, headers=HTML, delay=0.2)
    slots = HostSlots(1)
    session = make_session(AGENT)
    with ArticleFetcher(session, user_agent=AGENT, max_bytes=10**7, threads=4, hosts=slots) as f:
        started = time.monotonic()
        got = f.fetch_items([item(server.url(f"/p{i}")) for i in range(4)], 5.0)
    assert all(a.error is None for a in got.values())
    assert time.monotonic() - started >= 4 * 0.2  # one at a time, never two at once


def short(guid: str, link: str, words: int) -> ParsedItem:
    return ParsedItem(guid=guid, title="t", link=link, summary_text=" ".join(["word"] * words))


def test_which_items_are_fetched(server: FeedServer) -> None:
    for path in ("/new", "/moved", "/same", "/long"):
        server.set(path, PAGE.html, headers=HTML)
    items = [
        short("new", server.url("/new"), 10),
        short("moved", server.url("/moved"), 10),  # its link changed since it was stored
        short("same", server.url("/same"), 10),  # stored with this link: never again
        short("long", server.url("/long"), 100),  # 100 tokens: not short
    ]
    known = {"moved": server.url("/old"), "same": server.url("/same")}
    with fetcher() as f:
        assert fetch_articles(f, items, FullText.NEVER, known, 5.0) == {}
        assert set(fetch_articles(f, items, FullText.SHORT, known, 5.0)) == {"new", "moved"}
        everything = fetch_articles(f, items, FullText.ALWAYS, known, 5.0)
    assert set(everything) == {"new", "moved", "long"}


def test_items_sharing_a_link_fetch_it_once(server: FeedServer) -> None:
    server.set("/a", PAGE.html, headers=HTML)
    link = server.url("/a")
    with fetcher() as f:
        got = f.fetch_items([item(link, guid="one"), item(link, guid="two")], 5.0)
    assert got["one"] == got["two"] and got["one"].error is None
    assert page_paths(server) == ["/a"]
