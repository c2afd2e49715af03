"""Hostile feeds and servers polled together with good feeds, as one operator would meet them.

One ``python -m watcher poll --all`` over 40 good feeds and a dozen hostile ones (terminal
escapes in titles and in a server's status line, nested markup, a tag of 100,000
attributes, a lone surrogate, a 3 MB title, a secret in the URL, a redirect to the cloud
metadata address, a flood of new items, a slow server, a gzip bomb). What must hold:

- the poll ends in bounded time with exit 0;
- every good item is stored and alerted exactly once;
- every hostile feed has its error row, or its items stored cleanly;
- no output of ``poll``, ``alerts``, ``search`` or ``status`` carries a control character
  that came from outside, in tables and in ``--json``;
- the secret in the feed URL reaches no output, log line or byte of the database.
"""

from __future__ import annotations

import gzip
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.faults import RawServer, Step, dribble
from tests.feedgen import Entry, rss
from tests.servers import FeedServer

GOOD_FEEDS = 40
FEED_PASS = "hunter2-0123456789"
ESCAPES = "\x1b]52;c;cHduZWQ=\x07\x1b]0;owned\x07\x1b[2J\x9b31m"
NOW = datetime.now(UTC).replace(microsecond=0)
FLOOD = 120
FLOOD_LIMIT = 25
BAD_STATUS = b"HTTP/1.1 503 Busy\x1b]0;owned\x07\x1b[2J\r\nContent-Length: 0\r\n\r\n"


def controls(text: str) -> list[str]:
    """Control characters other than newline and tab (the outputs are piped: no styling)."""
    return [c for c in text if (ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F]


def good_feed(n: int) -> bytes:
    return rss(
        [
            Entry(f"g{n}-1", f"DPRK troops seen in Kursk, report {n:03d}", published=NOW),
            Entry(f"g{n}-2", f"Harvest festival opens in town {n}", published=NOW),
        ],
        title=f"Good {n}",
    )


def json_feed(title: str, items: list[dict[str, str]]) -> bytes:
    return json.dumps(
        {"version": "https://jsonfeed.org/version/1.1", "title": title, "items": items}
    ).encode()


def hostile_documents(server: FeedServer) -> dict[str, str]:
    """Serve each hostile document; return name -> URL path (or full URL)."""
    divs = "<div>" * 150_000  # the generator escapes descriptions: HTML inside the XML
    attributes = "<b " + " ".join(f"a{n}" for n in range(100_000)) + ">"
    docs: dict[str, bytes] = {
        "escapes": rss([Entry("e1", f"Kursk {ESCAPES} troops", f"Kursk {ESCAPES}")], title=ESCAPES),
        "divs": rss([Entry("d1", "Nested Kursk report", f"Kursk {divs} end")]),
        "attrs": rss([Entry("a1", "Attribute Kursk report", f"Kursk {attributes} end")]),
        "big": rss([Entry("b1", "Kursk " + "long " * 600_000)]),  # a 3 MB title
        "flood": rss(
            [Entry(f"f{n}", f"Kursk update number {n}", published=NOW) for n in range(FLOOD)]
        ),
    }
    for name, body in docs.items():
        server.set(f"/{name}.xml", body)
    server.set(
        "/surrogate.json",
        json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "S", "items": []})
        .encode()
        .replace(b'"items": []', b'"items": [{"id": "s1", "title": "Kursk \\ud800 front"}]'),
        headers={"Content-Type": "application/json"},
    )
    server.set("/auth.xml", rss([Entry("p1", "Private Kursk wire", published=NOW)]))
    server.redirect("/metadata.xml", "http://169.254.169.254/latest/meta-data/")
    bomb = gzip.compress(b"<rss>" + b" " * 60_000_000)
    server.set("/bomb.xml", bomb, headers={"Content-Encoding": "gzip"})
    return {name: f"/{name}.xml" for name in docs} | {
        "surrogate": "/surrogate.json",
        "metadata": "/metadata.xml",
        "bomb": "/bomb.xml",
    }


@pytest.fixture
def project(tmp_path: Path, feed_server: FeedServer) -> Iterator[Path]:
    for n in range(GOOD_FEEDS):
        feed_server.set(f"/good{n}.xml", good_feed(n))
    paths = hostile_documents(feed_server)
    slow_body = rss([Entry("s1", "Slow Kursk")])
    slow_answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n\r\n" + slow_body
    with (
        RawServer([Step(BAD_STATUS)]) as status_server,
        RawServer(dribble(slow_answer, pause=0.2, size=8)) as slow_server,
    ):
        feeds = [
            f"  - {{url: '{feed_server.url(f'/good{n}.xml')}', name: good{n}}}"
            for n in range(GOOD_FEEDS)
        ]
        feeds += [
            f"  - {{url: '{feed_server.url(p)}', name: {name}}}"
            for name, p in paths.items()
            if name != "auth"
        ]
        host = feed_server.url("/auth.xml").split("//", 1)[1]
        feeds.append("  - {url: 'http://desk:${FEED_PASS}@" + host + "', name: private}")
        feeds.append(f"  - {{url: '{status_server.url('/feed.xml')}', name: status}}")
        feeds.append(f"  - {{url: '{slow_server.url('/feed.xml')}', name: slow}}")
        (tmp_path / "rules").mkdir()
        (tmp_path / "rules" / "r.yaml").write_text(
            "- id: kursk\n  any: [Kursk]\n- id: troops\n  all: [DPRK troops, Kursk]\n"
        )
        (tmp_path / "watcher.yaml").write_text(
            "database: w.db\nrules: rules/\n"
            "defaults: {first_poll_alerts: all, timeout: 2s}\n"
            f"poll: {{max_new_alerts_per_feed: {FLOOD_LIMIT}}}\n"
            "feeds:\n" + "\n".join(feeds) + "\n"
            "channels:\n  console: {type: console}\n  files: {type: eml, dir: outbox}\n"
        )
        yield tmp_path


def watcher(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FEED_PASS": FEED_PASS}
    return subprocess.run(
        [sys.executable, "-m", "watcher", "--config", str(project / "watcher.yaml"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )


def rows(project: Path, sql: str) -> list[sqlite3.Row]:
    with sqlite3.connect(project / "w.db") as conn:
        conn.row_factory = sqlite3.Row
        return list(conn.execute(sql))


def test_hostile_feeds_beside_good_ones(project: Path, feed_server: FeedServer) -> None:
    started = time.monotonic()
    poll = watcher(project, "-v", "poll", "--all")
    seconds = time.monotonic() - started
    assert poll.returncode == 0, poll.stderr[-2000:]
    assert seconds < 120

    # Every good item is stored, and the matching one alerted once on each channel.
    for n in range(GOOD_FEEDS):
        titles = [
            r["title"]
            for r in rows(
                project,
                "SELECT title FROM items WHERE feed_id ="
                f" (SELECT id FROM feeds WHERE name = 'good{n}')",
            )
        ]
        assert sorted(titles) == sorted(
            [f"DPRK troops seen in Kursk, report {n:03d}", f"Harvest festival opens in town {n}"]
        )
    emls = [p.read_bytes() for p in (project / "outbox").glob("*.eml")]
    for n in range(GOOD_FEEDS):
        title = f"DPRK troops seen in Kursk, report {n:03d}".encode()
        assert sum(1 for e in emls if title in e) == 2  # rules kursk and troops, one story each

    # Every hostile feed has its error row, or clean items.
    feeds = {r["name"]: r for r in rows(project, "SELECT * FROM feeds")}
    for name in ("metadata", "bomb", "status", "slow"):
        assert feeds[name]["last_status"] == "error", name
        assert feeds[name]["last_error"], name
    assert "refused" in feeds["metadata"]["last_error"]
    for name in ("escapes", "divs", "attrs", "big", "surrogate", "flood", "private"):
        assert feeds[name]["last_status"] == "ok", (name, feeds[name]["last_error"])
    items = rows(
        project, "SELECT i.*, f.name AS feed FROM items i JOIN feeds f ON f.id = i.feed_id"
    )
    by_feed: dict[str, list[sqlite3.Row]] = {}
    for item in items:
        by_feed.setdefault(item["feed"], []).append(item)
    assert "\ufffd" in by_feed["surrogate"][0]["title"]
    assert len(by_feed["big"][0]["title"]) == 2000
    assert "<div" not in by_feed["divs"][0]["summary"]
    assert "a99999" not in by_feed["attrs"][0]["summary"]
    assert len(by_feed["flood"]) == FLOOD
    flood_alerts = rows(
        project,
        "SELECT a.status, a.reason FROM alerts a WHERE a.channel = 'files' AND a.rule_id = 'kursk'"
        " AND EXISTS (SELECT 1 FROM json_each(a.item_ids) j JOIN items i ON i.id = j.value"
        " JOIN feeds f ON f.id = i.feed_id WHERE f.name = 'flood')",
    )
    assert sum(a["status"] != "suppressed" for a in flood_alerts) == FLOOD_LIMIT
    assert sum(a["reason"] == "over feed limit" for a in flood_alerts) == FLOOD - FLOOD_LIMIT
    assert rows(project, "SELECT count(*) AS n FROM alerts WHERE rule_id = 'summary'")[0]["n"] >= 1

    # No control character from outside in any output; no secret anywhere.
    outputs = [poll.stdout, poll.stderr]
    for args in (
        ("alerts",),
        ("alerts", "--json"),
        ("search", "kursk", "--limit", "200"),
        ("search", "kursk", "--json"),
        ("status",),
        ("status", "--json"),
        ("feeds", "list"),
        ("feeds", "list", "--json"),
    ):
        result = watcher(project, *args)
        assert result.returncode == 0, (args, result.stderr)
        outputs += [result.stdout, result.stderr]
    for output in outputs:
        assert controls(output) == []
        assert FEED_PASS not in output
    assert "\\x1b]52" in poll.stdout  # the escapes are shown, made visible
    assert any("\\x1b" in o for o in outputs[2:])
    database = b"".join(p.read_bytes() for p in project.glob("w.db*"))
    assert FEED_PASS.encode() not in database
    assert feeds["private"]["url"].startswith("http://desk:${FEED_PASS}@")
    assert any((r.header("Authorization") or "").startswith("Basic ") for r in feed_server.requests)
