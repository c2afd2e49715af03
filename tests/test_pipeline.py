"""The pipeline end to end through real local servers and a real database file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest

from tests.feedgen import Entry, rss
from tests.receivers import WebhookReceiver
from tests.servers import FeedServer
from watcher.config import load_settings
from watcher.deliver.send import deliver_pending
from watcher.poll.pipeline import poll_feeds, select_feeds
from watcher.poll.runtime import Runtime, open_runtime
from watcher.store.feeds import feed_by_name
from watcher.types import ChannelConfig, Settings

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

RULES = """\
- id: nk-troops-kursk
  description: North Korean forces in the Kursk region
  any: ["North Korean troops", "DPRK troops"]
  all: [Kursk]
  severity: high
- id: drones
  any: ["fiber-optic drone*"]
"""


def write_config(tmp_path: Path, feeds: list[dict[str, Any]], **extra: Any) -> Path:
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "test.yaml").write_text(RULES)
    config = {
        "database": "watcher.db",
        "rules": "rules/",
        "feeds": feeds,
        "channels": {"files": {"type": "eml", "dir": "outbox"}},
        **extra,
    }
    path = tmp_path / "watcher.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


@pytest.fixture
def runtime_for() -> Iterator[Any]:
    opened: list[Runtime] = []

    def make(settings: Settings) -> Runtime:
        rt = open_runtime(settings)
        opened.append(rt)
        return rt

    yield make
    for rt in opened:
        rt.store.close()


def run_pass(rt: Runtime, now: datetime = NOW, all_feeds: bool = True) -> Any:
    report = poll_feeds(rt, select_feeds(rt, now, all_feeds=all_feeds), now)
    delivery = deliver_pending(rt, now)
    return report, delivery


def rows(rt: Runtime, sql: str, params: Any = ()) -> list[dict[str, Any]]:
    return list(rt.store.db.query(sql, params))


# --- the demo --------------------------------------------------------------------------------


def demo_settings(tmp_path: Path) -> Settings:
    settings = load_settings(ROOT / "watcher.yaml")
    channel = ChannelConfig(name="files", type="eml", options={"dir": str(tmp_path / "outbox")})
    return replace(settings, database=tmp_path / "demo.db", channels={"files": channel})


def test_demo_matches_and_alerts_what_the_sample_data_promises(
    tmp_path: Path, runtime_for: Any
) -> None:
    expected = json.loads((ROOT / "tests/data/demo_expected.json").read_text())
    rt = runtime_for(demo_settings(tmp_path))
    report, delivery = run_pass(rt)
    got = rows(
        rt,
        "select m.rule_id, f.name as feed, i.title from matches m"
        " join items i on i.id = m.item_id join feeds f on f.id = i.feed_id",
    )
    for rule_id, items in expected["matches"].items():
        found = sorted([r["feed"], r["title"]] for r in got if r["rule_id"] == rule_id)
        assert found == sorted(items), rule_id
    alerts = rows(rt, "select rule_id, item_ids, status from alerts")
    for rule_id, titles in expected["alerts"].items():
        mine = [a for a in alerts if a["rule_id"] == rule_id]
        assert len(mine) == len(titles), rule_id  # one alert per story
        assert {a["status"] for a in mine} == {"sent"}
    files = sorted((tmp_path / "outbox").glob("*.eml"))
    assert (
        len(files) == delivery.sent == report.alerts == sum(map(len, expected["alerts"].values()))
    )


def test_second_pass_finds_nothing_new_and_sends_nothing_twice(
    tmp_path: Path, runtime_for: Any
) -> None:
    rt = runtime_for(demo_settings(tmp_path))
    first, _ = run_pass(rt)
    before = rows(rt, "select id, status, sent_at from alerts order by id")
    second, delivery = run_pass(rt, NOW + timedelta(hours=1))
    assert first.new_items >= 27
    assert (second.new_items, second.matches, second.alerts, delivery.sent) == (0, 0, 0, 0)
    assert rows(rt, "select id, status, sent_at from alerts order by id") == before


# --- HTTP: conditional GET -------------------------------------------------------------------


def test_not_modified_is_neither_parsed_nor_stored_twice(
    tmp_path: Path, feed_server: FeedServer, runtime_for: Any
) -> None:
    body = rss([Entry("a1", "DPRK troops seen in Kursk", published=NOW)])
    feed_server.set("/f.xml", body, etag='"v1"', last_modified="Wed, 18 Nov 2026 10:00:00 GMT")
    rt = runtime_for(
        load_settings(write_config(tmp_path, [{"url": feed_server.url("/f.xml"), "name": "f"}]))
    )
    run_pass(rt)
    report, _ = run_pass(rt, NOW + timedelta(minutes=20))
    assert feed_server.requests[-1].header("If-None-Match") == '"v1"'
    assert report.not_modified == 1 and report.new_items == 0
    assert rows(rt, "select count(*) as n from items")[0]["n"] == 1
    assert [r["http_status"] for r in rows(rt, "select http_status from polls order by id")] == [
        200,
        304,
    ]
    feed = feed_by_name(rt.store, "f")
    assert feed is not None and feed.last_status == "not_modified" and feed.etag == '"v1"'
    assert len(rows(rt, "select * from alerts")) == 1


def test_a_failing_feed_is_recorded_and_the_others_go_on(
    tmp_path: Path, feed_server: FeedServer, runtime_for: Any
) -> None:
    feed_server.set("/bad.xml", b"oops", status=500)
    feed_server.set("/html.xml", b"<html><body><p>not a feed</p></body></html>")
    feed_server.set("/good.xml", rss([Entry("g1", "DPRK troops seen in Kursk", published=NOW)]))
    feeds = [
        {"url": feed_server.url(p), "name": p[1:-4]} for p in ("/bad.xml", "/html.xml", "/good.xml")
    ]
    rt = runtime_for(load_settings(write_config(tmp_path, feeds)))
    report, delivery = run_pass(rt)
    assert sorted(name for name, _ in report.failed) == ["bad", "html"]
    assert report.new_items == 1 and delivery.sent == 1
    bad = feed_by_name(rt.store, "bad")
    assert bad is not None and bad.last_status == "error" and "500" in (bad.last_error or "")
    assert bad.consecutive_failures == 1
    html = feed_by_name(rt.store, "html")
    assert html is not None and "not a feed" in (html.last_error or "")
    errors = rows(
        rt, "select f.name, p.error, p.http_status from polls p join feeds f on f.id = p.feed_id"
    )
    assert {r["name"]: r["http_status"] for r in errors} == {"bad": 500, "html": 200, "good": 200}


# --- the outbox ------------------------------------------------------------------------------


def test_items_matches_and_alerts_are_written_together_or_not_at_all(
    tmp_path: Path, feed_server: FeedServer, runtime_for: Any
) -> None:
    feed_server.set(
        "/f.xml",
        rss(
            [
                Entry("a1", "Fiber-optic drones hit a depot", published=NOW),
                Entry("a2", "DPRK troops move through Kursk", published=NOW),
            ]
        ),
    )
    rt = runtime_for(
        load_settings(write_config(tmp_path, [{"url": feed_server.url("/f.xml"), "name": "f"}]))
    )
    # A real fault inside the transaction: the second alert insert is refused.
    rt.store.db.execute(
        "create trigger fail_alert before insert on alerts when new.rule_id = 'nk-troops-kursk'"
        " begin select raise(abort, 'disk trouble'); end"
    )
    report, _ = run_pass(rt)
    assert report.bugs == 1
    assert rows(rt, "select count(*) as n from items")[0]["n"] == 0
    assert rows(rt, "select count(*) as n from matches")[0]["n"] == 0
    assert rows(rt, "select count(*) as n from alerts")[0]["n"] == 0
    feed = feed_by_name(rt.store, "f")
    assert feed is not None and feed.last_status == "error"
    rt.store.db.execute("drop trigger fail_alert")
    report, delivery = run_pass(rt, NOW + timedelta(minutes=1))
    assert report.new_items == 2 and delivery.sent == 2
    for match in rows(rt, "select item_id, rule_id from matches"):
        alerts = [
            a
            for a in rows(rt, "select item_ids from alerts where rule_id = ?", [match["rule_id"]])
            if match["item_id"] in json.loads(a["item_ids"])
        ]
        assert len(alerts) == 1


# --- backlog and age -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("all", {"fresh": "pending", "old": "pending", "undated": "pending"}),
        ("recent", {"fresh": "pending", "old": "suppressed", "undated": "suppressed"}),
        ("none", {"fresh": "suppressed", "old": "suppressed", "undated": "suppressed"}),
    ],
)
def test_first_poll_alerts_keeps_the_backlog_from_flooding(
    tmp_path: Path, feed_server: FeedServer, runtime_for: Any, mode: str, expected: dict[str, str]
) -> None:
    feed_server.set(
        "/f.xml",
        rss(
            [
                Entry("fresh", "DPRK troops in Kursk: fresh", published=NOW - timedelta(hours=3)),
                Entry("old", "DPRK troops in Kursk: old", published=NOW - timedelta(days=5)),
                Entry("undated", "DPRK troops in Kursk: undated"),
            ]
        ),
    )
    path = write_config(
        tmp_path,
        [{"url": feed_server.url("/f.xml"), "name": "f"}],
        defaults={"first_poll_alerts": mode, "max_age": "2d"},
    )
    rt = runtime_for(load_settings(path))
    poll_feeds(rt, select_feeds(rt, NOW, all_feeds=True), NOW)
    got = {
        r["guid"]: (r["status"], r["reason"])
        for r in rows(
            rt,
            "select i.guid, a.status, a.reason from alerts a"
            " join items i on i.id = json_extract(a.item_ids, '$[0]')",
        )
    }
    assert {guid: status for guid, (status, _) in got.items()} == expected
    assert all(reason == "backlog" for status, reason in got.values() if status == "suppressed")


def test_after_the_first_poll_old_items_are_recorded_as_too_old(
    tmp_path: Path, feed_server: FeedServer, runtime_for: Any
) -> None:
    first = [Entry("a", "Weather in Kyiv", published=NOW)]
    feed_server.set("/f.xml", rss(first))
    rt = runtime_for(
        load_settings(write_config(tmp_path, [{"url": feed_server.url("/f.xml"), "name": "f"}]))
    )
    run_pass(rt)
    feed_server.set(
        "/f.xml",
        rss(
            first
            + [
                Entry(
                    "b", "DPRK troops in Kursk, from the archive", published=NOW - timedelta(days=9)
                ),
                Entry("c", "DPRK troops in Kursk, today", published=NOW),
            ]
        ),
    )
    run_pass(rt, NOW + timedelta(minutes=15))
    got = rows(rt, "select status, reason from alerts order by id")
    assert got == [
        {"status": "suppressed", "reason": "too old"},
        {"status": "sent", "reason": None},
    ]


# --- changed items and stories ---------------------------------------------------------------


def test_a_changed_item_is_matched_again_but_never_alerts_twice_for_a_rule(
    tmp_path: Path, feed_server: FeedServer, runtime_for: Any
) -> None:
    feed_server.set(
        "/f.xml", rss([Entry("a", "Shelling overnight", "Villages hit.", published=NOW)])
    )
    rt = runtime_for(
        load_settings(write_config(tmp_path, [{"url": feed_server.url("/f.xml"), "name": "f"}]))
    )
    run_pass(rt)
    assert rows(rt, "select count(*) as n from alerts")[0]["n"] == 0
    feed_server.set(
        "/f.xml",
        rss([Entry("a", "Shelling overnight", "DPRK troops fired from Kursk.", published=NOW)]),
    )
    report, delivery = run_pass(rt, NOW + timedelta(minutes=15))
    assert (report.updated_items, report.matches, delivery.sent) == (1, 1, 1)
    feed_server.set(
        "/f.xml",
        rss(
            [Entry("a", "Shelling overnight", "DPRK troops fired from Kursk again.", published=NOW)]
        ),
    )
    report, delivery = run_pass(rt, NOW + timedelta(minutes=30))
    assert (report.updated_items, report.matches, delivery.sent) == (1, 1, 0)
    assert rows(rt, "select count(*) as n from alerts")[0]["n"] == 1


def test_one_story_from_two_feeds_alerts_once_and_names_the_other_feed(
    tmp_path: Path, feed_server: FeedServer, runtime_for: Any
) -> None:
    link = "https://news.example.org/2026/11/20/dprk-kursk"
    feed_server.set(
        "/a.xml", rss([Entry("a", "DPRK troops cross into Kursk", link=link, published=NOW)])
    )
    feed_server.set(
        "/b.xml",
        rss(
            [
                Entry(
                    "b",
                    "DPRK troops cross into Kursk - Wire",
                    link=link + "?utm_source=x",
                    published=NOW,
                )
            ]
        ),
    )
    feeds = [
        {"url": feed_server.url("/a.xml"), "name": "a"},
        {"url": feed_server.url("/b.xml"), "name": "b"},
    ]
    rt = runtime_for(load_settings(write_config(tmp_path, feeds)))
    report, delivery = run_pass(rt)
    assert report.matches == 2 and delivery.sent == 1
    alert = rows(rt, "select item_ids from alerts")
    assert len(alert) == 1 and len(json.loads(alert[0]["item_ids"])) == 2
    eml = next((tmp_path / "outbox").glob("*.eml")).read_text()
    assert "also reported by" in eml


# --- a feed that suddenly brings many matches --------------------------------------------------


def test_a_feed_past_max_new_alerts_per_feed_sends_the_first_alerts_and_one_summary(
    tmp_path: Path,
    feed_server: FeedServer,
    webhook_server: WebhookReceiver,
    runtime_for: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    titles = [f"DPRK troops in Kursk, report {n}" for n in range(30)]
    entries = [
        Entry(f"m{n}", t, published=NOW - timedelta(minutes=n)) for n, t in enumerate(titles)
    ]
    feed_server.set("/flood.xml", rss(entries, title="Flood"))
    channels = {
        "files": {"type": "eml", "dir": "outbox"},
        "hook": {"type": "webhook", "url": webhook_server.url()},
        "screen": {"type": "console"},
    }
    path = write_config(
        tmp_path,
        [{"url": feed_server.url("/flood.xml"), "name": "flood"}],
        defaults={"first_poll_alerts": "all"},
        poll={"max_new_alerts_per_feed": 4},
        channels=channels,
    )
    rt = runtime_for(load_settings(path))
    report, delivery = run_pass(rt)

    assert report.matches == 30 and report.alerts == 3 * (4 + 1)
    for channel in channels:
        alerts = rows(rt, "select * from alerts where channel = ? order by id", [channel])
        sent = [a for a in alerts if a["status"] == "sent"]
        held = [a for a in alerts if a["status"] == "suppressed"]
        assert len(sent) == 5 and len(held) == 26  # nothing is dropped without a row
        assert {a["reason"] for a in held} == {"over feed limit"}
        summary = sent[-1]
        assert summary["rule_id"] == "summary"
        assert summary["reason"] == "feed flood: 26 matches over the feed limit"
        assert len(json.loads(summary["item_ids"])) == 26
    assert delivery.sent == 15

    mails = sorted((tmp_path / "outbox").glob("*.eml"))
    mail = message_from_bytes(mails[-1].read_bytes(), policy=default_policy)
    assert mail["Subject"] == "[watcher] summary: flood: 26 matches over the feed limit"
    body = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "DPRK troops in Kursk, report 4" in body and "report 23" in body
    assert "report 24" not in body  # 20 titles, then a count
    assert "… and 6 more items not listed" in body

    hooks = [r.json() for r in webhook_server.requests]
    assert [h["kind"] for h in hooks] == ["match"] * 4 + ["summary"]
    assert hooks[-1]["rule"]["id"] == "summary" and hooks[-1]["rule"]["severity"] == "high"
    assert len(hooks[-1]["items"]) == 20 and hooks[-1]["omitted"] == 6

    printed = capsys.readouterr().out
    assert "summary: 26 matches of feed flood in one poll came after the first 4 alerts" in printed
    assert "… and 6 more items not listed" in printed


def test_the_limit_counts_each_poll_afresh(
    tmp_path: Path, feed_server: FeedServer, runtime_for: Any
) -> None:
    entries = [Entry(f"a{n}", f"DPRK troops in Kursk, {n}", published=NOW) for n in range(3)]
    feed_server.set("/f.xml", rss(entries))
    path = write_config(
        tmp_path,
        [{"url": feed_server.url("/f.xml"), "name": "f"}],
        defaults={"first_poll_alerts": "all"},
        poll={"max_new_alerts_per_feed": 3},
    )
    rt = runtime_for(load_settings(path))
    first, _ = run_pass(rt)
    later = [Entry(f"b{n}", f"DPRK troops near Kursk, {n}", published=NOW) for n in range(3)]
    feed_server.set("/f.xml", rss(entries + later))
    second, _ = run_pass(rt, NOW + timedelta(minutes=20))
    assert (first.alerts, second.alerts) == (3, 3)
    assert rows(rt, "select count(*) as n from alerts where status = 'suppressed'")[0]["n"] == 0


# --- dates --------------------------------------------------------------------------------------


def test_an_item_dated_far_ahead_is_recent_when_first_seen_and_stored_as_given(
    tmp_path: Path, feed_server: FeedServer, runtime_for: Any
) -> None:
    far = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
    feed_server.set("/f.xml", rss([Entry("z1", "DPRK troops in Kursk", published=far)]))
    path = write_config(tmp_path, [{"url": feed_server.url("/f.xml"), "name": "f"}])
    rt = runtime_for(load_settings(path))  # first_poll_alerts: recent, max_age: 2d
    report, delivery = run_pass(rt)
    assert report.alerts == 1 and delivery.sent == 1
    (item,) = rows(rt, "select published_at from items")
    assert item["published_at"] == "9999-12-31T23:59:00Z"
