"""Polling in worker processes stores exactly what the in-process path stores."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.feedgen import Entry, rss
from tests.servers import FeedServer
from watcher.config import load_settings
from watcher.poll import workers
from watcher.poll.pipeline import PollReport, feed_options, poll_feeds, select_feeds
from watcher.poll.result import fetch_and_parse
from watcher.poll.runtime import Runtime, open_runtime

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
RULES = """\
- id: kursk
  any: ["Kursk"]
- id: drones
  query: 'fiber-optic NEAR/3 drone*'
"""
TITLES = [
    "Fighting near Kursk goes on",
    "New fiber-optic attack drones shown",
    "Weather report for the weekend",
    "Kursk region: fiber optic drones seen",
]


def serve_feeds(server: FeedServer, count: int) -> list[dict[str, Any]]:
    """``count`` feeds, each a mix of matching and other items, plus two broken ones."""
    feeds = []
    for n in range(count):
        entries = [
            Entry(
                guid=f"feed{n}-item{k}",
                title=f"{TITLES[(n + k) % len(TITLES)]} ({n}.{k})",
                description=f"<p>Report <b>{k}</b> of feed {n}.</p><script>x()</script>",
                published=NOW - timedelta(hours=k + 1),
            )
            for k in range(5)
        ]
        server.set(f"/feed/{n}", rss(entries, title=f"Feed {n}"), etag=f'"e{n}"')
        feeds.append({"url": server.url(f"/feed/{n}"), "name": f"feed-{n:02d}"})
    server.set("/broken", b"oops", status=500)
    server.set(
        "/html", b"<html><body>not a feed</body></html>", headers={"Content-Type": "text/html"}
    )
    feeds.append({"url": server.url("/broken"), "name": "broken"})
    feeds.append({"url": server.url("/html"), "name": "html"})
    return feeds


def open_for(folder: Path, feeds: list[dict[str, Any]]) -> Runtime:
    folder.mkdir()
    (folder / "rules.yaml").write_text(RULES)
    config = {
        "database": "watcher.db",
        "rules": ["rules.yaml"],
        "defaults": {"first_poll_alerts": "all"},
        "feeds": feeds,
        "channels": {"files": {"type": "eml", "dir": "outbox"}},
    }
    (folder / "watcher.yaml").write_text(json.dumps(config))
    return open_runtime(load_settings(folder / "watcher.yaml"))


def poll_all(rt: Runtime, now: datetime = NOW) -> PollReport:
    return poll_feeds(rt, select_feeds(rt, now, all_feeds=True), now)


def snapshot(rt: Runtime) -> dict[str, list[tuple[Any, ...]]]:
    """What a user sees in the database, without ids and timings."""
    queries = {
        "items": "SELECT f.name, i.guid, i.title, i.summary, i.summary_text FROM items i"
        " JOIN feeds f ON f.id = i.feed_id",
        "matches": "SELECT f.name, i.guid, m.rule_id, m.terms FROM matches m"
        " JOIN items i ON i.id = m.item_id JOIN feeds f ON f.id = i.feed_id",
        "alerts": "SELECT rule_id, channel, status, reason, (SELECT group_concat(i.guid)"
        " FROM json_each(a.item_ids) j JOIN items i ON i.id = j.value) FROM alerts a",
        "polls": "SELECT f.name, p.http_status, p.new_items, p.error FROM polls p"
        " JOIN feeds f ON f.id = p.feed_id",
        "feeds": "SELECT name, title, etag, last_status, last_error, consecutive_failures"
        " FROM feeds",
    }
    return {
        name: sorted(tuple(row) for row in rt.store.db.execute(sql).fetchall())
        for name, sql in queries.items()
    }


@pytest.fixture
def two_runtimes(tmp_path: Path, feed_server: FeedServer) -> Iterator[tuple[Runtime, Runtime]]:
    feeds = serve_feeds(feed_server, 12)
    in_process = open_for(tmp_path / "threads", feeds)
    pooled = open_for(tmp_path / "processes", feeds)
    yield in_process, pooled
    in_process.store.close()
    pooled.store.close()


def test_processes_store_what_threads_store(
    two_runtimes: tuple[Runtime, Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    in_process, pooled = two_runtimes
    monkeypatch.setattr(workers, "process_count", lambda feeds: 0)
    expected = poll_all(in_process)
    monkeypatch.setattr(workers, "process_count", lambda feeds: 2)
    monkeypatch.setattr(workers, "CHUNK_FEEDS", 5)
    got = poll_all(pooled)

    assert got == expected
    assert got.ok == 12 and got.new_items == 60 and got.matches > 0
    assert sorted(name for name, _ in got.failed) == ["broken", "html"]
    seen = snapshot(pooled)
    assert seen == snapshot(in_process)
    assert all("<script>" not in summary for _, _, _, summary, _ in seen["items"])


def test_second_pass_in_processes_is_not_modified(
    two_runtimes: tuple[Runtime, Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, pooled = two_runtimes
    monkeypatch.setattr(workers, "process_count", lambda feeds: 2)
    poll_all(pooled)
    again = poll_all(pooled, NOW + timedelta(minutes=20))

    assert again.not_modified == 12 and again.new_items == 0 and len(again.failed) == 2
    polls = pooled.store.db.execute("SELECT count(*) FROM polls").fetchone()[0]
    assert polls == 2 * 14


def test_a_worker_hands_back_the_parsed_feed_without_its_raw_body_but_its_size(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    rt = open_for(tmp_path / "one", serve_feeds(feed_server, 1))
    feed = next(f for f in select_feeds(rt, NOW, all_feeds=True) if f.name == "feed-00")
    body = feed_server.routes[urlsplit(feed.url).path].body
    result = workers.poll_job(
        rt.session, (feed, feed_options(rt.settings, feed)), rt.compiled, 10**6, fetch_and_parse
    )
    rt.store.close()
    assert result.parsed is not None and len(result.parsed.items) == 5
    assert result.fetched is not None and result.fetched.content == b""  # not pickled back
    assert result.fetched.size == len(body)  # still told in the debug log


def test_bounded_keeps_at_most_window_chunks_in_flight() -> None:
    submitted: list[int] = []
    yielded: list[int] = []
    most_in_flight = 0

    def submit(jobs: list[Any]) -> Future[list[Any]]:
        nonlocal most_in_flight
        submitted.append(jobs[0])
        most_in_flight = max(most_in_flight, len(submitted) - len(yielded))
        future: Future[list[Any]] = Future()
        future.set_result(jobs)
        return future

    for batch in workers.bounded(submit, ([n] for n in range(20)), window=3):
        yielded.extend(batch)

    assert sorted(yielded) == list(range(20))
    assert most_in_flight == 3
