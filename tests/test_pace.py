"""``interval: auto``: the next poll follows each feed's publishing rate, within its bounds.

The rule is a pure function (decide/schedule.py), driven here with a simulated clock; then
the same rule through ``watcher poll`` against a local feed server, the config sync that
must keep what an adaptive interval learnt, and what ``watcher status`` shows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.feedgen import Entry, rss
from tests.servers import FeedServer
from watcher.cli import cli
from watcher.config import load_settings
from watcher.decide.schedule import (
    AUTO_SAMPLES,
    auto_interval_s,
    item_time,
    next_poll_after_interval_change,
    paced_interval_s,
)
from watcher.exceptions import ConfigError
from watcher.poll.pipeline import poll_feeds, select_feeds
from watcher.poll.runtime import Runtime, open_runtime
from watcher.store import Store
from watcher.store.feeds import add_feed, feed_by_name, get_feed, sync_config_feeds
from watcher.types import FeedConfig

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
MIN, MAX = 300, 6 * 3600


def every(gap: timedelta, count: int, newest: datetime = NOW) -> list[datetime]:
    return [newest - gap * i for i in range(count)]


# --- the rule --------------------------------------------------------------------------------


def test_half_the_mean_gap_of_the_newest_items_counting_the_time_since_the_last() -> None:
    # 20 items 30 min apart, the newest just now: 20 gaps of 28.5 min on average -> 14.25 min
    assert auto_interval_s(every(timedelta(minutes=30), 20), NOW, MIN, MAX) == 855
    # an hour later with nothing new: (570 + 60) min / 20 / 2 = 15.75 min
    later = NOW + timedelta(hours=1)
    assert auto_interval_s(every(timedelta(minutes=30), 20), later, MIN, MAX) == 945


def test_the_interval_stays_within_its_bounds() -> None:
    busy = every(timedelta(minutes=2), 20)
    assert auto_interval_s(busy, NOW, MIN, MAX) == MIN  # 57 s wanted, 5 min at least
    daily = every(timedelta(days=1), 20)
    assert auto_interval_s(daily, NOW, MIN, MAX) == MAX  # 9.5 h wanted, 6 h at most
    assert auto_interval_s([], NOW, MIN, MAX) == MAX  # nothing published yet: the slowest
    assert auto_interval_s(busy, NOW, 60, 120) == 60


def test_a_feed_that_stops_publishing_slows_down_by_itself() -> None:
    burst = every(timedelta(minutes=2), 20)  # the oldest 38 min before NOW
    hours = (0, 2, 12, 48, 96, 240)
    waits = [auto_interval_s(burst, NOW + timedelta(hours=h), MIN, MAX) for h in hours]
    wanted = [(38 + h * 60) * 60 // 40 for h in hours]  # minutes since the oldest, / 20 / 2
    assert waits == [MIN, MIN, *wanted[2:5], MAX]


def test_item_times_are_published_times_unless_missing_or_later_than_first_seen() -> None:
    seen = NOW
    assert item_time(NOW - timedelta(hours=3), seen) == NOW - timedelta(hours=3)
    assert item_time(None, seen) == seen
    assert item_time(NOW + timedelta(days=9), seen) == seen  # dated ahead: when we saw it


def test_a_live_push_subscription_keeps_the_longer_wait() -> None:
    assert paced_interval_s(900, None) == 900
    assert paced_interval_s(900, 6 * 3600) == 6 * 3600
    assert paced_interval_s(8 * 3600, 6 * 3600) == 8 * 3600


def simulate_polls(publish_every: timedelta, days: int, interval_s: int | None) -> int:
    """Polls of a feed publishing every ``publish_every`` for ``days`` simulated days, polled
    at a fixed ``interval_s`` or, with None, as ``interval: auto`` decides after each poll."""
    start = NOW
    end = start + timedelta(days=days)
    published = [start - publish_every * i for i in range(AUTO_SAMPLES, 0, -1)]  # history
    clock, polls = start, 0
    while clock < end:
        polls += 1
        while published[-1] + publish_every <= clock:  # what the feed holds by now
            published.append(published[-1] + publish_every)
        newest = published[-AUTO_SAMPLES:]
        wait = interval_s if interval_s is not None else auto_interval_s(newest, clock, MIN, MAX)
        clock += timedelta(seconds=wait)
    return polls


def test_auto_polls_a_busy_feed_more_often_and_a_quiet_one_less_than_15m() -> None:
    fixed = simulate_polls(timedelta(minutes=2), 2, 900)
    assert fixed == 2 * 96
    busy = simulate_polls(timedelta(minutes=2), 2, None)
    quiet = simulate_polls(timedelta(hours=12), 2, None)
    assert busy == 2 * 24 * 12  # every 5 min, the lower bound
    assert quiet == 9  # half of 12 h: about every 6 h, 21 times fewer requests than 15m


# --- through `watcher poll` ----------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


def project(tmp_path: Path, feeds: list[dict[str, Any]], **extra: Any) -> Path:
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "r.yaml").write_text("- id: kursk\n  any: [Kursk]\n")
    config = {"database": "w.db", "rules": "rules/", "feeds": feeds, **extra}
    path = tmp_path / "watcher.yaml"
    path.write_text(json.dumps(config))
    return path


def entries(gap: timedelta, count: int, newest: datetime = NOW) -> list[Entry]:
    return [Entry(f"g{i}", f"story {i}", published=newest - gap * i) for i in range(count)]


def poll_at(path: Path, now: datetime) -> Runtime:
    rt = open_runtime(load_settings(path))
    poll_feeds(rt, select_feeds(rt, now, all_feeds=True), now)
    return rt


def test_a_poll_stores_the_adaptive_interval_and_plans_the_next_poll_by_it(
    tmp_path: Path, server: FeedServer
) -> None:
    server.set("/busy.rss", rss(entries(timedelta(minutes=30), 25)), etag='"v1"')
    server.set("/fixed.rss", rss(entries(timedelta(minutes=30), 25)))
    feeds = [
        {"url": server.url("/busy.rss"), "name": "busy", "interval": "auto"},
        {"url": server.url("/fixed.rss"), "name": "fixed"},
    ]
    path = project(tmp_path, feeds)
    rt = poll_at(path, NOW)
    busy = feed_by_name(rt.store, "busy")
    assert busy is not None and (busy.interval_source, busy.interval_s) == ("auto", 855)
    assert busy.next_poll_at == NOW + timedelta(seconds=855)
    fixed = feed_by_name(rt.store, "fixed")
    assert fixed is not None and (fixed.interval_source, fixed.interval_s) == ("default", 900)
    rt.store.close()
    # nothing new two hours later (304): the time since the newest item counts, it slows down
    later = NOW + timedelta(hours=2)
    rt = poll_at(path, later)
    busy = feed_by_name(rt.store, "busy")
    assert busy is not None and busy.last_status == "not_modified"
    assert busy.interval_s == (2 * 3600 + 19 * 1800) // 20 // 2
    assert busy.next_poll_at == later + timedelta(seconds=busy.interval_s)
    rt.store.close()


def test_an_adaptive_feed_is_never_polled_sooner_than_cache_control_allows(
    tmp_path: Path, server: FeedServer
) -> None:
    server.set(
        "/busy.rss",
        rss(entries(timedelta(minutes=2), 20)),
        headers={"Cache-Control": "max-age=3600"},
    )
    path = project(
        tmp_path, [{"url": server.url("/busy.rss"), "name": "busy"}], defaults={"interval": "auto"}
    )
    rt = poll_at(path, NOW)
    busy = feed_by_name(rt.store, "busy")
    assert busy is not None and busy.interval_s == MIN
    assert busy.next_poll_at == NOW + timedelta(hours=1)
    rt.store.close()


def test_a_failing_adaptive_feed_backs_off_from_its_adaptive_interval(
    tmp_path: Path, server: FeedServer
) -> None:
    server.set("/f.rss", rss(entries(timedelta(minutes=30), 20)))
    path = project(tmp_path, [{"url": server.url("/f.rss"), "name": "f", "interval": "auto"}])
    poll_at(path, NOW).store.close()
    server.set("/f.rss", b"oops", status=503, headers={"Retry-After": "7200"})
    later = NOW + timedelta(minutes=20)
    rt = poll_at(path, later)
    feed = feed_by_name(rt.store, "f")
    assert feed is not None and feed.interval_s == 855  # kept: nothing was learnt
    assert feed.next_poll_at == later + timedelta(hours=2)  # and Retry-After honoured
    rt.store.close()


def test_status_shows_an_adaptive_interval(tmp_path: Path, server: FeedServer) -> None:
    server.set("/f.rss", rss(entries(timedelta(minutes=30), 20)))
    path = project(tmp_path, [{"url": server.url("/f.rss"), "name": "f", "interval": "auto"}])
    poll_at(path, NOW).store.close()
    result = CliRunner().invoke(cli, ["--config", str(path), "status"])
    assert result.exit_code == 0, result.output
    assert "auto 14m15s" in result.output
    result = CliRunner().invoke(cli, ["--config", str(path), "--json", "status"])
    (row,) = json.loads(result.output)["feeds"]
    assert (row["interval_source"], row["interval_s"]) == ("auto", 855)


# --- the config and its sync ---------------------------------------------------------------


def test_interval_auto_in_defaults_or_on_a_feed(tmp_path: Path) -> None:
    path = project(
        tmp_path,
        [
            {"url": "https://a.example/rss"},
            {"url": "https://b.example/rss", "interval": "10m"},
            {"url": "https://c.example/rss", "interval": "auto", "max_interval": "2h"},
        ],
        defaults={"interval": "auto", "min_interval": "2m"},
    )
    settings = load_settings(path)
    assert settings.defaults.auto_bounds == (120, MAX)
    a, b, c = settings.feeds
    assert (a.interval_source, a.min_interval_s, a.max_interval_s) == ("auto", 120, MAX)
    assert (b.interval_source, b.interval_s) == ("feed", 600)
    assert (c.interval_source, c.min_interval_s, c.max_interval_s) == ("auto", 120, 7200)


@pytest.mark.parametrize(
    ("defaults", "message"),
    [
        ({"interval": "auto", "min_interval": "30s"}, "defaults.min_interval: must be at least 1m"),
        ({"min_interval": "2h", "max_interval": "1h"}, "must not be longer than max_interval"),
        ({"interval": "automatic"}, "defaults.interval: invalid duration"),
    ],
)
def test_bad_adaptive_settings_are_one_line_each(
    tmp_path: Path, defaults: dict[str, str], message: str
) -> None:
    path = project(tmp_path, [], defaults=defaults)
    with pytest.raises(ConfigError, match=message):
        load_settings(path)


def test_a_config_sync_keeps_what_an_adaptive_interval_learnt(tmp_path: Path) -> None:
    store = Store(tmp_path / "w.db")
    auto = FeedConfig(url="https://a.example/rss", name="a", interval_s=MIN, interval_source="auto")
    (feed,) = sync_config_feeds(store, [auto], NOW, reschedule=next_poll_after_interval_change)
    store.db.execute("UPDATE feeds SET interval_s = 5000 WHERE id = ?", [feed.id])
    sync_config_feeds(store, [auto], NOW, reschedule=next_poll_after_interval_change)
    assert get_feed(store, feed.id).interval_s == 5000
    narrower = FeedConfig(
        url=auto.url, name="a", interval_s=MIN, interval_source="auto", max_interval_s=3600
    )
    sync_config_feeds(store, [narrower], NOW, reschedule=next_poll_after_interval_change)
    assert get_feed(store, feed.id).interval_s == 3600
    fixed = FeedConfig(url=auto.url, name="a", interval_s=900, interval_source="feed")
    sync_config_feeds(store, [fixed], NOW, reschedule=next_poll_after_interval_change)
    assert (get_feed(store, feed.id).interval_s, get_feed(store, feed.id).interval_source) == (
        900,
        "feed",
    )
    store.close()


def test_command_line_feeds_follow_an_adaptive_default_and_back(tmp_path: Path) -> None:
    store = Store(tmp_path / "w.db")
    follows = add_feed(
        store, "https://a.example/rss", interval_s=900, interval_source="default", now=NOW
    )
    own = add_feed(store, "https://b.example/rss", interval_s=900, interval_source="feed", now=NOW)
    move = next_poll_after_interval_change
    sync_config_feeds(store, [], NOW, 300, reschedule=move, default_auto=(1200, MAX))
    assert (
        get_feed(store, follows.id).interval_source,
        get_feed(store, follows.id).interval_s,
    ) == (
        "auto",
        1200,
    )
    assert get_feed(store, own.id).interval_source == "feed"
    sync_config_feeds(store, [], NOW, 600, reschedule=move)
    assert (
        get_feed(store, follows.id).interval_source,
        get_feed(store, follows.id).interval_s,
    ) == (
        "default",
        600,
    )
    store.close()
