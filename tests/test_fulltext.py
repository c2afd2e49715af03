"""full_text end to end: teaser feeds whose articles stand on a local article server.

The rule's phrase stands only in an article's body (or only in a page's navigation); the
feed carries a one-line teaser. What a user sees is checked: the alerts, the items'
article columns, the match evidence, and the requests the article server received.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.articles import pages
from tests.feedgen import Entry, rss
from tests.hub import Hub
from tests.receivers import WebhookReceiver, free_port
from tests.servers import FeedServer
from tests.test_daemon import Daemon, eml_subjects, wait_for
from watcher.cli import cli
from watcher.config import load_settings
from watcher.poll import workers
from watcher.poll.pipeline import poll_feeds, select_feeds
from watcher.poll.runtime import Runtime, open_runtime

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
PAGES = {page.name: page for page in pages()}
BODY = PAGES["meridian-nk-troops"]  # "North Korean troops" in the story's body
NAV = PAGES["meridian-negative-nav"]  # the phrase only in menus, sidebars and links
DRONES = PAGES["frontline-fiber-drones"]
HTML = {"Content-Type": "text/html; charset=utf-8"}
RULES = """\
- id: nk-troops
  any: ["North Korean troops"]
- id: drones-in-title
  any: ["fiber-optic drones"]
  fields: [title, summary]
"""


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as running:
        running.set("/robots.txt", b"User-agent: *\nDisallow: /private/\n")
        running.set("/a/body", BODY.html, headers=HTML)
        running.set("/a/nav", NAV.html, headers=HTML)
        running.set("/a/drones", DRONES.html, headers=HTML)
        running.set("/private/body", BODY.html, headers=HTML)
        yield running


@pytest.fixture
def opened() -> Iterator[list[Runtime]]:
    runtimes: list[Runtime] = []
    yield runtimes
    for rt in runtimes:
        if rt.articles is not None:
            rt.articles.close()
        rt.store.close()


def teasers(server: FeedServer, *paths: str, teaser: str = "Read the full story.") -> bytes:
    entries = [
        Entry(guid=f"g-{path}", title=f"Story {i}", description=teaser, link=server.url(path))
        for i, path in enumerate(paths)
    ]
    return rss(entries)


def open_project(tmp_path: Path, opened: list[Runtime], server: FeedServer, **feed: Any) -> Runtime:
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "r.yaml").write_text(RULES)
    config = {
        "database": "watcher.db",
        "rules": "rules/",
        "defaults": {"first_poll_alerts": "all", "timeout": "2s"},
        "feeds": [{"url": server.url("/feed.xml"), "name": "teasers", **feed}],
        "channels": {"files": {"type": "eml", "dir": "outbox"}},
    }
    path = tmp_path / "watcher.yaml"
    path.write_text(json.dumps(config))
    rt = open_runtime(load_settings(path, {}))
    opened.append(rt)
    return rt


def poll(rt: Runtime, now: datetime = NOW) -> Any:
    return poll_feeds(rt, select_feeds(rt, now, all_feeds=True), now)


def items(rt: Runtime) -> dict[str, dict[str, Any]]:
    rows = rt.store.db.query(
        "SELECT guid, link, article_text, article_fetched_at, article_error FROM items"
    )
    return {row["guid"].removeprefix("g-"): dict(row) for row in rows}


def alerted(rt: Runtime) -> list[tuple[str, str]]:
    rows = rt.store.db.query(
        "SELECT a.rule_id, i.guid FROM alerts a JOIN json_each(a.item_ids) j"
        " JOIN items i ON i.id = j.value ORDER BY a.id"
    )
    return [(row["rule_id"], row["guid"].removeprefix("g-")) for row in rows]


def article_requests(server: FeedServer) -> list[str]:
    return [r.path for r in server.requests if r.path not in ("/feed.xml", "/robots.txt")]


def test_a_phrase_only_in_the_article_body_alerts(
    tmp_path: Path, opened: list[Runtime], server: FeedServer
) -> None:
    server.set("/feed.xml", teasers(server, "/a/body", "/a/nav", "/a/gone", "/private/body"))
    rt = open_project(tmp_path, opened, server, full_text="always")
    report = poll(rt)
    assert report.new_items == 4
    assert alerted(rt) == [("nk-troops", "/a/body")]  # not the page with it in its menus
    stored = items(rt)
    assert "North Korean troops" in stored["/a/body"]["article_text"]
    assert stored["/a/nav"]["article_text"] and "Lisbon" in stored["/a/nav"]["article_text"]
    assert "North Korean troops" not in stored["/a/nav"]["article_text"]
    assert (stored["/a/gone"]["article_text"], stored["/a/gone"]["article_error"]) == (
        None,
        "http 404",
    )
    assert stored["/private/body"]["article_error"] == "robots"
    assert all(row["article_fetched_at"] for row in stored.values())
    assert sorted(article_requests(server)) == ["/a/body", "/a/gone", "/a/nav"]
    fields = rt.store.db.execute("SELECT fields FROM _match_evidence").fetchall()
    assert [json.loads(row[0]) for row in fields] == [["article"]]
    config = str(tmp_path / "watcher.yaml")
    found = CliRunner().invoke(
        cli, ["--config", config, "search", 'article:"North Korean troops"', "--wait", "--json"]
    )
    assert found.exit_code == 0, found.output
    assert [item["title"] for item in json.loads(found.stdout)["items"]] == ["Story 0"]
    backtest = CliRunner().invoke(
        cli, ["--config", config, "rules", "test", "nk-troops", "--since", "365d", "--json"]
    )
    assert backtest.exit_code == 0, backtest.output
    (result,) = json.loads(backtest.stdout)["rules"]
    assert result["matches"] == 1  # the stored article text, as the poll matched it


def test_an_article_is_fetched_once_and_its_item_alerts_once(
    tmp_path: Path, opened: list[Runtime], server: FeedServer
) -> None:
    server.set("/feed.xml", teasers(server, "/a/body", "/a/nav"))
    rt = open_project(tmp_path, opened, server, full_text="always")
    poll(rt)
    fetched = article_requests(server)
    assert sorted(fetched) == ["/a/body", "/a/nav"]
    poll(rt, NOW + timedelta(hours=1))  # the same items again
    assert article_requests(server) == fetched
    server.set("/feed.xml", teasers(server, "/a/body", "/a/nav", teaser="Updated: read the story."))
    poll(rt, NOW + timedelta(hours=2))  # edited teasers, same links: not fetched again
    assert article_requests(server) == fetched
    assert alerted(rt) == [("nk-troops", "/a/body")]
    assert "North Korean troops" in items(rt)["/a/body"]["article_text"]  # kept on edit


def test_an_edited_item_is_matched_again_with_the_article_it_was_stored_with(
    tmp_path: Path, opened: list[Runtime], server: FeedServer
) -> None:
    server.set("/feed.xml", teasers(server, "/a/body"))
    rt = open_project(tmp_path, opened, server, full_text="always")
    poll(rt)
    server.set("/feed.xml", teasers(server, "/a/body", teaser="Updated: read the story."))
    poll(rt, NOW + timedelta(hours=2))  # a new version, the same link: not fetched again
    assert article_requests(server) == ["/a/body"]
    rows = rt.store.db.execute(
        "SELECT e.fields FROM matches m JOIN _match_evidence e ON e.match_id = m.id"
        " WHERE m.rule_id = 'nk-troops' ORDER BY m.id"
    ).fetchall()
    assert [json.loads(row[0]) for row in rows] == [["article"], ["article"]]  # both versions
    assert alerted(rt) == [("nk-troops", "/a/body")]  # and still one alert


def test_an_item_whose_link_changed_is_fetched_again(
    tmp_path: Path, opened: list[Runtime], server: FeedServer
) -> None:
    server.set("/feed.xml", rss([Entry("g-1", "Story", "Teaser.", server.url("/a/nav"))]))
    rt = open_project(tmp_path, opened, server, full_text="always")
    poll(rt)
    assert alerted(rt) == []
    server.set("/feed.xml", rss([Entry("g-1", "Story", "Teaser.", server.url("/a/body"))]))
    poll(rt, NOW + timedelta(hours=1))
    assert article_requests(server) == ["/a/nav", "/a/body"]
    assert "North Korean troops" in items(rt)["1"]["article_text"]
    assert alerted(rt) == [("nk-troops", "1")]


def test_never_fetches_nothing_and_changes_nothing(
    tmp_path: Path, opened: list[Runtime], server: FeedServer
) -> None:
    server.set("/feed.xml", teasers(server, "/a/body"))
    rt = open_project(tmp_path, opened, server)  # the built-in default: never
    poll(rt)
    assert article_requests(server) == []
    assert [r.path for r in server.requests] == ["/feed.xml"]  # not even robots.txt
    assert alerted(rt) == []
    row = items(rt)["/a/body"]
    assert (row["article_text"], row["article_fetched_at"], row["article_error"]) == (
        None,
        None,
        None,
    )


def test_short_fetches_only_items_with_little_text(
    tmp_path: Path, opened: list[Runtime], server: FeedServer
) -> None:
    long = " ".join(f"word{i}" for i in range(100))  # 100 tokens: not short
    entries = [
        Entry("g-short", "Story one", "A teaser of a few words.", server.url("/a/body")),
        Entry("g-long", "Story two", long, server.url("/a/drones")),
    ]
    server.set("/feed.xml", rss(entries))
    rt = open_project(tmp_path, opened, server, full_text="short")
    poll(rt)
    assert article_requests(server) == ["/a/body"]
    assert items(rt)["long"]["article_fetched_at"] is None


def test_a_rule_without_the_article_field_ignores_the_article(
    tmp_path: Path, opened: list[Runtime], server: FeedServer
) -> None:
    server.set("/feed.xml", teasers(server, "/a/drones"))
    rt = open_project(tmp_path, opened, server, full_text="always")
    poll(rt)
    assert "fiber-optic drones" in items(rt)["/a/drones"]["article_text"]
    assert alerted(rt) == []  # drones-in-title looks at the title and summary only


def test_a_slow_article_waits_at_most_twice_the_timeout_then_the_item_is_matched(
    tmp_path: Path, opened: list[Runtime], server: FeedServer
) -> None:
    server.set("/a/slow", BODY.html, headers=HTML, delay=30)
    entries = [Entry("g-slow", "North Korean troops seen", "Teaser.", server.url("/a/slow"))]
    server.set("/feed.xml", rss(entries))
    rt = open_project(tmp_path, opened, server, full_text="always", timeout="0.5s")
    started = time.monotonic()
    report = poll(rt)
    assert time.monotonic() - started < 2 * 0.5 + 1.5
    assert report.new_items == 1 and report.failed == []
    assert items(rt)["slow"]["article_error"] == "timeout"
    assert alerted(rt) == [("nk-troops", "slow")]  # matched on its title, without the page


def test_worker_processes_fetch_articles_too(
    tmp_path: Path,
    opened: list[Runtime],
    server: FeedServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(workers, "process_count", lambda feeds: 2)
    server.set("/feed.xml", teasers(server, "/a/body", "/a/nav"))
    rt = open_project(tmp_path, opened, server, full_text="always")
    poll(rt)
    assert alerted(rt) == [("nk-troops", "/a/body")]
    fetched = article_requests(server)
    poll(rt, NOW + timedelta(hours=1))
    assert article_requests(server) == fetched  # the known links reached the workers
    assert "North Korean troops" in items(rt)["/a/body"]["article_text"]


def test_the_daemon_fetches_each_new_article_once_and_alerts_once(
    tmp_path: Path, server: FeedServer
) -> None:
    server.set("/feed.xml", teasers(server, "/a/body", "/a/nav"))  # no ETag: read each time
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(RULES)
    config = {
        "database": "w.db",
        "rules": "rules/",
        "defaults": {"interval": "1m", "first_poll_alerts": "all", "full_text": "always"},
        "feeds": [{"url": server.url("/feed.xml"), "name": "teasers"}],
        "channels": {"files": {"type": "eml", "dir": "outbox"}},
    }
    (tmp_path / "watcher.yaml").write_text(json.dumps(config))
    daemon = Daemon(tmp_path)
    try:
        wait_for(lambda: eml_subjects(tmp_path), "the alert to be delivered")
        polls = lambda: sum(r.path == "/feed.xml" for r in list(server.requests))  # noqa: E731
        wait_for(lambda: polls() >= 3, "the feed to be polled again")
        assert daemon.stop() == 0
    finally:
        daemon.close()
    assert eml_subjects(tmp_path) == ["[watcher] nk-troops: Story 0"]
    assert sorted(article_requests(server)) == ["/a/body", "/a/nav"]  # once each
    assert not daemon.logged("Traceback")


def hub_feed(hub: Hub, topic: str, links: dict[str, str]) -> bytes:
    items = "".join(
        f"<item><guid>{guid}</guid><title>Story {guid}</title><link>{link}</link>"
        "<description>Read the full story.</description></item>"
        for guid, link in links.items()
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel><title>W</title>'
        f'<atom:link rel="hub" href="{hub.url}"/><atom:link rel="self" href="{topic}"/>'
        f"{items}</channel></rss>"
    ).encode()


def test_a_pushed_item_has_its_article_fetched_and_the_alert_says_where(
    tmp_path: Path, server: FeedServer
) -> None:
    with Hub(lease_s=600) as hub, WebhookReceiver() as hook:
        topic = server.url("/feed.xml")
        server.set("/feed.xml", hub_feed(hub, topic, {"1": server.url("/a/nav")}))
        port = free_port()
        (tmp_path / "rules").mkdir()
        (tmp_path / "rules" / "r.yaml").write_text(RULES)
        config = {
            "database": "w.db",
            "rules": "rules/",
            "defaults": {"interval": "1h", "first_poll_alerts": "all", "full_text": "always"},
            "feeds": [{"url": topic, "name": "wire"}],
            "channels": {"hook": {"type": "webhook", "url": hook.url()}},
            "websub": {
                "listen": f"127.0.0.1:{port}",
                "public_url": f"http://127.0.0.1:{port}/websub",
            },
        }
        (tmp_path / "watcher.yaml").write_text(json.dumps(config))
        daemon = Daemon(tmp_path)
        try:
            wait_for(lambda: hub.subscribers(topic), "a verified subscription")
            pushed = hub_feed(hub, topic, {"1": server.url("/a/nav"), "2": server.url("/a/body")})
            assert hub.publish(topic, pushed) == [202]
            wait_for(lambda: hook.requests, "the pushed item's alert")
            assert daemon.stop() == 0
        finally:
            daemon.close()
    (request,) = hook.requests
    body = json.loads(request.body)
    assert [item["matched_in"] for item in body["items"]] == [["article"]]
    assert sorted(article_requests(server)) == ["/a/body", "/a/nav"]  # once each
