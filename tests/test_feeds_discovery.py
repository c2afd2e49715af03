"""``watcher feeds add`` on a web page finds its feeds; a config feed that is a page names them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.feedgen import Entry, rss
from tests.servers import FeedServer
from watcher.cli import cli
from watcher.store import Store

HTML = {"Content-Type": "text/html; charset=utf-8"}


def page(*links: str, body: str = "<p>Welcome</p>") -> bytes:
    head = "".join(links)
    html = f"<!DOCTYPE html><html><head><title>Site</title>{head}</head><body>{body}</body>"
    return (html + "</html>").encode()


def link(href: str, title: str = "", kind: str = "application/rss+xml") -> str:
    return f'<link rel="alternate" type="{kind}" href="{href}" title="{title}">'


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text('- id: kursk\n  any: ["DPRK troops"]\n')
    (tmp_path / "watcher.yaml").write_text(
        "database: w.db\nrules: rules/\nchannels:\n  files: {type: eml, dir: outbox}\n"
    )
    Store(tmp_path / "w.db").close()
    return tmp_path


def invoke(project: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--config", str(project / "watcher.yaml"), *args])
    return result.exit_code, result.stdout, result.stderr


def watched(project: Path) -> list[str]:
    code, out, err = invoke(project, "feeds", "list", "--json")
    assert code == 0, err
    return [f["url"] for f in json.loads(out)]


def test_a_page_naming_one_feed_adds_that_feed_and_says_so(
    project: Path, feed_server: FeedServer
) -> None:
    feed_server.set("/", page(link("/news/feed.xml", "All news")), headers=HTML)
    feed_server.set("/news/feed.xml", rss([Entry("a", "DPRK troops")]))
    code, out, err = invoke(project, "feeds", "add", feed_server.url("/"))
    feed = feed_server.url("/news/feed.xml")
    assert code == 0, err
    assert out.splitlines() == [
        f"{feed_server.url('/')} is a web page; its feed {feed} (linked from the page)",
        f"added feed 127-0-0-1-news-feed-xml: {feed}",
    ]
    assert watched(project) == [feed]


def test_a_feed_url_is_added_as_it_is(project: Path, feed_server: FeedServer) -> None:
    feed_server.set("/rss", rss([Entry("a", "DPRK troops")]), headers=HTML)  # a wrong type
    code, out, err = invoke(project, "feeds", "add", feed_server.url("/rss"))
    assert code == 0, err
    assert out == f"added feed 127-0-0-1-rss: {feed_server.url('/rss')}\n"
    code, _, err = invoke(project, "feeds", "add", feed_server.url("/rss"), "--pick", "2")
    assert code == 1 and "is a feed, not a page of feeds to --pick from" in err


def test_several_feeds_are_listed_from_1_until_pick_chooses(
    project: Path, feed_server: FeedServer
) -> None:
    links = (
        link("/feed.xml", "Posts"),
        link("comments.atom", "Comments \x1b[2J", "application/atom+xml"),
        link("/feed.json", "", "application/feed+json"),
    )
    feed_server.set("/blog/", page(*links), headers=HTML)
    code, out, err = invoke(project, "feeds", "add", feed_server.url("/blog/"))
    assert code == 1
    assert out.splitlines() == [
        f"{feed_server.url('/blog/')} is a web page naming 3 feeds:",
        f"  1. {feed_server.url('/feed.xml')}  Posts",
        f"  2. {feed_server.url('/blog/comments.atom')}  Comments \\x1b[2J",
        f"  3. {feed_server.url('/feed.json')}",
    ]
    assert err == "error: several feeds: add one with --pick N (N as listed)\n"
    assert watched(project) == []

    code, out, err = invoke(project, "feeds", "add", feed_server.url("/blog/"), "--pick", "4")
    assert code == 1 and "error: --pick 4: the page names 3 feeds" in err
    code, out, err = invoke(project, "--json", "feeds", "add", feed_server.url("/blog/"))
    assert code == 1 and [f["url"] for f in json.loads(out)["found"]][1].endswith("comments.atom")

    code, out, err = invoke(project, "feeds", "add", feed_server.url("/blog/"), "--pick", "2")
    assert code == 0, err
    assert out.splitlines()[-1].endswith(feed_server.url("/blog/comments.atom"))
    assert watched(project) == [feed_server.url("/blog/comments.atom")]


def test_a_page_naming_no_feed_finds_one_at_a_usual_place(
    project: Path, feed_server: FeedServer
) -> None:
    feed_server.set("/blog/post.html", page(), headers=HTML)
    feed_server.set("/rss", rss([Entry("a", "At the root")]))
    code, out, err = invoke(project, "--json", "feeds", "add", feed_server.url("/blog/post.html"))
    assert code == 0, err
    shown = json.loads(out)
    assert shown["added"]["url"] == feed_server.url("/rss")
    assert shown["found"] == [
        {"url": feed_server.url("/rss"), "title": "Test feed", "found": "at a usual place"}
    ]
    asked = [r.path for r in feed_server.requests]
    # the page's folder first, then the root, and no further once a feed answers
    assert asked == [
        "/blog/post.html",
        *(f"/blog/{p}" for p in ("feed", "rss", "atom.xml", "feed.xml", "index.xml")),
        "/feed",
        "/rss",
    ]


def test_a_page_with_no_feed_anywhere_is_one_line(project: Path, feed_server: FeedServer) -> None:
    feed_server.set("/", page(), headers=HTML)
    code, out, err = invoke(project, "feeds", "add", feed_server.url("/"))
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "is a web page that names no feed" in err
    assert watched(project) == []


@pytest.mark.parametrize(
    ("status", "body", "headers", "message"),
    [
        (404, b"gone", {}, "HTTP 404"),
        (200, b"%PDF-1.4 binary", {"Content-Type": "application/pdf"}, "not a feed"),
    ],
    ids=["404", "pdf"],
)
def test_a_url_that_is_neither_is_one_line_and_adds_nothing(
    project: Path,
    feed_server: FeedServer,
    status: int,
    body: bytes,
    headers: dict[str, str],
    message: str,
) -> None:
    feed_server.set("/x", body, status=status, headers=headers)
    code, _, err = invoke(project, "feeds", "add", feed_server.url("/x"))
    assert code == 1 and err.count("\n") == 1
    assert message in err and "--no-check adds the URL without reading it" in err
    assert watched(project) == []
    code, _, err = invoke(project, "feeds", "add", feed_server.url("/x"), "--no-check")
    assert code == 0, err
    assert watched(project) == [feed_server.url("/x")]


def test_discovery_obeys_the_address_policy(project: Path, feed_server: FeedServer) -> None:
    config = project / "watcher.yaml"
    config.write_text(config.read_text() + "poll: {block_private: true}\n")
    feed_server.set("/", page(link("/feed.xml")), headers=HTML)
    code, _, err = invoke(project, "feeds", "add", feed_server.url("/"))
    assert code == 1 and "refused to connect" in err
    assert feed_server.requests == []


def test_a_config_feed_that_is_a_page_is_an_error_row_naming_its_feeds(
    project: Path, feed_server: FeedServer
) -> None:
    links = [link(f"/f{n}.xml", f"Feed {n}") for n in range(1, 6)]
    feed_server.set("/site/", page(*links), headers=HTML)
    feed_server.set("/bare/", page(), headers=HTML)
    feed_server.set("/good.xml", rss([Entry("g", "DPRK troops in Kursk")]))
    config = project / "watcher.yaml"
    config.write_text(
        config.read_text()
        + "feeds:\n"
        + "".join(
            f"  - {{url: '{feed_server.url(p)}', name: {n}}}\n"
            for p, n in (("/site/", "site"), ("/bare/", "bare"), ("/good.xml", "good"))
        )
    )
    code, _, err = invoke(project, "poll", "--all")
    assert code == 0, err
    with Store(project / "w.db") as store:
        rows = dict(store.db.execute("SELECT name, last_error FROM feeds").fetchall())
        items = store.db.execute("SELECT count(*) FROM items").fetchone()[0]
    assert rows["good"] is None and items == 1
    named = ", ".join(feed_server.url(f"/f{n}.xml") for n in (1, 2, 3))
    assert rows["site"] == (
        f"not a feed: an HTML page naming the feeds {named} and 2 more: use one as the feed's url"
    )
    assert "\n" not in rows["bare"]
    assert rows["bare"].startswith("not a feed: an HTML page naming no feed")
    assert "`watcher feeds add URL` looks for it" in rows["bare"]
