"""Volume rules: the pure firing decision, then the real pipeline and a real webhook receiver."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import watcher.decide.alerts
from tests.receivers import WebhookReceiver
from watcher.config import load_settings
from watcher.decide.threshold import (
    decide_threshold,
    decide_volume,
    history_start,
    is_armed,
)
from watcher.deliver.message import build_message
from watcher.deliver.send import deliver_pending
from watcher.poll.pipeline import PollReport, feed_options, select_feeds, store_result
from watcher.poll.result import FeedResult
from watcher.poll.runtime import Runtime, open_runtime
from watcher.store.outbox import due_alerts
from watcher.types import ArmState, Fetched, ParsedFeed, ParsedItem, Threshold, VolumeMatch

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def seen(*events: tuple[int, int, float]) -> list[VolumeMatch]:
    """(item id, feed id, minutes after T0) -> matches."""
    return [VolumeMatch(i, f, at(m)) for i, f, m in events]


# --- the decision ----------------------------------------------------------------------------


def test_fires_when_the_count_is_reached_inside_the_window() -> None:
    rule = Threshold(count=3, within_s=3600)
    history = seen((1, 1, 0), (2, 1, 30), (3, 1, 59))
    assert decide_threshold(rule, history[:2], None, at(30)) is None
    assert decide_threshold(rule, history, None, at(59)) == (1, 2, 3)


def test_matches_older_than_the_window_do_not_count() -> None:
    rule = Threshold(count=3, within_s=3600)
    history = seen((1, 1, 0), (2, 1, 30), (3, 1, 60))  # item 1 left the window at minute 60
    assert decide_threshold(rule, history, None, at(60)) is None


def test_distinct_feed_counts_feeds_not_items() -> None:
    rule = Threshold(count=2, within_s=3600, distinct="feed")
    same_feed = seen((1, 7, 0), (2, 7, 1), (3, 7, 2))
    assert decide_threshold(rule, same_feed, None, at(2)) is None
    two_feeds = [*same_feed, *seen((4, 8, 3))]
    assert decide_threshold(rule, two_feeds, None, at(3)) == (1, 2, 3, 4)


def test_an_item_matched_twice_counts_once() -> None:
    rule = Threshold(count=2, within_s=3600)
    assert decide_threshold(rule, seen((1, 1, 0), (1, 1, 5)), None, at(5)) is None


def test_a_continuing_surge_fires_once() -> None:
    rule = Threshold(count=2, within_s=3600)
    # Fired at minute 10; a match every 20 minutes keeps two in every window for hours.
    history = seen(*((i, 1, 20 * i - 10) for i in range(1, 15)))
    assert not is_armed(rule, history, at(10), at(270))
    assert decide_threshold(rule, history, at(10), at(270)) is None


def test_it_re_arms_after_the_window_falls_below_count() -> None:
    rule = Threshold(count=2, within_s=3600)
    history = seen((1, 1, 0), (2, 1, 10), (3, 1, 100), (4, 1, 105))
    # At minute 70 item 2 leaves: the window holds nothing, so the rule re-armed.
    assert is_armed(rule, history, at(10), at(105))
    assert decide_threshold(rule, history, at(10), at(105)) == (3, 4)


def test_not_re_armed_before_the_dip_happens() -> None:
    rule = Threshold(count=2, within_s=3600)
    history = seen((1, 1, 0), (2, 1, 10), (3, 1, 50))
    assert not is_armed(rule, history, at(10), at(55))  # still two inside at every moment


# --- the bounded decision agrees with the full one ---------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    count=st.integers(1, 4),
    within=st.integers(1, 6),
    feed=st.booleans(),
    events=st.lists(st.tuples(st.integers(0, 8), st.integers(1, 3)), max_size=40),
)
def test_bounded_decision_matches_the_full_history(
    count: int, within: int, feed: bool, events: list[tuple[int, int]]
) -> None:
    """Each match is decided on at most two windows of history, exactly as on all of it."""
    rule = Threshold(count=count, within_s=within * 60, distinct="feed" if feed else None)
    recorded: list[VolumeMatch] = []
    last_fired: datetime | None = None
    state = ArmState(None)
    minute = 0
    for n, (gap, feed_id) in enumerate(events):
        minute += gap
        now = at(minute)
        recorded.append(VolumeMatch(n, feed_id, now))
        expected = decide_threshold(rule, recorded, last_fired, now)
        since = history_start(rule, state, now)
        assert since >= now - timedelta(minutes=2 * within)
        recent = [m for m in recorded if m.matched_at >= since]
        decided, state = decide_volume(rule, recent, state, now)
        assert decided == expected
        if expected is not None:
            last_fired = now


# --- through the pipeline --------------------------------------------------------------------

RULES = """\
- id: kursk-surge
  description: Many reports about Kursk
  any: [Kursk]
  threshold: {count: 3, within: 2h, distinct: feed}
- id: drones
  any: [drone]
"""


@pytest.fixture
def world(tmp_path: Path, webhook_server: WebhookReceiver) -> Iterator[Runtime]:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(RULES)
    config = tmp_path / "watcher.yaml"
    config.write_text(
        "database: w.db\nrules: rules/\ndefaults: {first_poll_alerts: all}\nfeeds:\n"
        + "".join(f"  - {{url: 'https://{n}.example.org/feed', name: {n}}}\n" for n in "abcd")
        + f"channels:\n  hook: {{type: webhook, url: '{webhook_server.url()}', timeout: 5s}}\n"
    )
    rt = open_runtime(load_settings(config))
    yield rt
    rt.store.close()


def ingest(rt: Runtime, feed: str, guid: str, title: str, now: datetime) -> None:
    state = next(f for f in select_feeds(rt, now, all_feeds=True) if f.name == feed)
    item = ParsedItem(guid=guid, title=title, link=f"https://{feed}.example.org/{guid}")
    parsed = ParsedFeed(title=feed, link=None, format="rss20", items=(item,))
    result = FeedResult(feed=state, options=feed_options(rt.settings, state))
    result.fetched = Fetched(url=state.url, final_url=state.url, status=200)
    result.parsed = parsed
    store_result(rt, result, now, PollReport())


def test_volume_alert_carries_every_contributing_item(
    world: Runtime, webhook_server: WebhookReceiver
) -> None:
    ingest(world, "a", "a1", "Kursk shelling", at(0))
    ingest(world, "a", "a2", "Kursk again", at(1))
    ingest(world, "b", "b1", "Kursk border", at(2))
    assert deliver_pending(world, at(2)).sent == 0  # two feeds so far: no per-item alerts
    ingest(world, "c", "c1", "Kursk region drone", at(3))
    assert deliver_pending(world, at(3)).sent == 2  # the volume alert and the drone alert
    bodies = {r.json()["rule"]["id"]: r.json() for r in webhook_server.requests}
    surge = bodies["kursk-surge"]
    assert surge["kind"] == "threshold"
    titles = [i["title"] for i in surge["items"]]
    assert titles == ["Kursk shelling", "Kursk again", "Kursk border", "Kursk region drone"]
    matched = world.store.db.execute(
        "SELECT count(*) FROM matches WHERE rule_id = 'kursk-surge'"
    ).fetchone()[0]
    assert matched == 4  # every match is recorded


def test_volume_rule_stays_quiet_during_a_surge_and_fires_after_a_lull(
    world: Runtime, webhook_server: WebhookReceiver
) -> None:
    for n, (feed, minute) in enumerate([("a", 0), ("b", 1), ("c", 2)]):
        ingest(world, feed, f"x{n}", "Kursk", at(minute))
    deliver_pending(world, at(2))
    # Three feeds keep reporting every 30 minutes for four hours: no second alert.
    for n in range(8):
        ingest(world, "abcd"[n % 4], f"y{n}", f"Kursk update {n}", at(30 + 30 * n))
        deliver_pending(world, at(30 + 30 * n))
    assert _surge_alerts(webhook_server) == 1
    # Quiet for more than the window, then three feeds again: a new alert.
    for n, feed in enumerate("bcd"):
        ingest(world, feed, f"z{n}", "Kursk new wave", at(600 + n))
    deliver_pending(world, at(603))
    assert _surge_alerts(webhook_server) == 2


def _surge_alerts(receiver: WebhookReceiver) -> int:
    return sum(r.json()["rule"]["id"] == "kursk-surge" for r in receiver.requests)


def test_volume_subject_names_the_count_and_window(world: Runtime) -> None:
    for n, feed in enumerate("abc"):
        ingest(world, feed, f"s{n}", f"Kursk report {n}", at(n))
    (alert,) = due_alerts(world.store, at(5))
    message: Any = build_message(world, alert)
    assert message.subject == "[watcher] kursk-surge: 3 items in 2h"
    assert message.kind == "threshold"


def test_a_rule_that_fired_long_ago_reads_two_windows_and_fires_once_on_a_new_surge(
    world: Runtime, webhook_server: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n, feed in enumerate("abc"):
        ingest(world, feed, f"first{n}", "Kursk", at(n))
    deliver_pending(world, at(3))
    assert _surge_alerts(webhook_server) == 1
    # A month of single reports every five hours: re-armed, never three feeds in 2h.
    for n in range(150):
        ingest(world, "abcd"[n % 4], f"lone{n}", f"Kursk note {n}", at(60 + 300 * n))
    oldest: list[datetime] = []
    real = watcher.decide.alerts.decide_volume

    def spy(rule: Threshold, history: Any, state: ArmState, now: datetime) -> Any:
        oldest.append(min((m.matched_at for m in history), default=now))
        assert now - oldest[-1] <= 2 * timedelta(seconds=rule.within_s)
        return real(rule, history, state, now)

    monkeypatch.setattr(watcher.decide.alerts, "decide_volume", spy)
    later = 60 + 300 * 150
    for n, feed in enumerate("bcd"):  # a new surge, then it keeps going
        ingest(world, feed, f"wave{n}", f"Kursk new wave {n}", at(later + n))
    for n in range(6):
        ingest(world, "abcd"[n % 4], f"more{n}", "Kursk more", at(later + 20 + 20 * n))
    deliver_pending(world, at(later + 200))
    assert oldest and _surge_alerts(webhook_server) == 2
    last = webhook_server.requests[-1].json()
    titles = [i["title"] for i in last["items"]]
    assert titles[:3] == [f"Kursk new wave {n}" for n in range(3)]
    assert not [t for t in titles if "note" in t]  # reports from before the surge stay out
