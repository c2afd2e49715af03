"""The poll's decision, driven without SQLite: hypothesis plays sequences of polls through
``record_result`` against an in-memory model of the store (tests/model_store.py).

Items share links and titles across three feeds, are edited, come in a feed's first poll
and later, fresh, old or undated; rules are plain, digest, capped by max_alerts and volume
rules; mutes come and go, polls fail, alerts get delivered between polls. After every step:

- one live alert per (rule, channel, story, kind);
- a backlog / too-old / muted match is recorded in a suppressed row (or joins an unsent
  alert about its story), and never gives a pending alert of its own;
- an item is listed in at most one live alert of a rule and channel (volume alerts aside);
- volume rules fire when and only when the unbounded reference says: once per surge, again
  only after the window fell below the count.

A last test plays the same sequences through the real store and compares every intent.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.model_store import ModelStore
from watcher.decide.policy import MUTED, decide_backlog, is_duplicate, is_muted
from watcher.decide.threshold import decide_threshold
from watcher.intent import FeedIntent, whole_seconds
from watcher.poll.pipeline import FeedStore, record_result
from watcher.poll.result import add_matches
from watcher.rules.load import load_rules
from watcher.rules.match import compile_rules
from watcher.store import Store
from watcher.store.feeds import get_feed
from watcher.store.outbox import due_alerts, mark_sent
from watcher.store.state import save_mute
from watcher.types import (
    AlertStatus,
    ChannelConfig,
    DeliverySettings,
    FeedConfig,
    FeedDefaults,
    FeedResult,
    FeedState,
    FeedStatus,
    Fetched,
    FirstPollAlerts,
    HealthSettings,
    Mute,
    ParsedFeed,
    ParsedItem,
    PollSettings,
    RateLimit,
    Settings,
    VolumeMatch,
)

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)

RULES_YAML = """\
- id: plain
  any: [kursk]
- id: digest
  any: [drone]
  digest: 1h
- id: capped
  any: [bridge]
  max_alerts: {count: 1, per: 1h}
- id: surge
  any: [border]
  threshold: {count: 2, within: 1h}
"""
_folder = Path(tempfile.mkdtemp(prefix="watcher-decide-"))
(_folder / "r.yaml").write_text(RULES_YAML)
RULES = load_rules([_folder / "r.yaml"], channels=["mail", "hook"])
RULES_BY_ID = {rule.id: rule for rule in RULES}
COMPILED = compile_rules(RULES)

SETTINGS = Settings(
    path=_folder / "watcher.yaml",
    database=_folder / "w.db",
    rules=(_folder / "r.yaml",),
    defaults=FeedDefaults(),
    display_timezone="UTC",
    poll=PollSettings(),
    feeds=(),
    channels={
        "mail": ChannelConfig("mail", "eml", max_alerts=RateLimit(1, 3600)),
        "hook": ChannelConfig("hook", "eml"),
    },
    health=HealthSettings(failing_after=2),
    delivery=DeliverySettings(),
)
OPTIONS = [  # feed 0 sends recent backlog, feed 1 all of it, feed 2 none
    FeedConfig(url=f"https://f{n}.example/feed", name=f"f{n}", first_poll_alerts=mode)
    for n, mode in enumerate((FirstPollAlerts.RECENT, FirstPollAlerts.ALL, FirstPollAlerts.NONE))
]

TITLES = [
    "Kursk shelling overnight",
    "Kursk shelling overnight - Wire",
    "Drone strike near the depot",
    "Bridge closed after drone attack",
    "Border surge at Kursk",
    "Border crossing reopened",
    "Weather update",
]
LINKS = [
    None,
    "https://news.example/a",
    "https://www.news.example/a?utm_source=rss",
    "https://news.example/b",
    "https://other.example/c",
]
SUMMARIES = ["", "First report.", "Updated report with more."]
AGES = [None, timedelta(minutes=30), timedelta(days=5)]  # undated, fresh, old


@dataclass(frozen=True)
class Poll:
    feed: int
    entries: tuple[tuple[int, int, int, int, int], ...]  # guid, title, link, summary, age
    minutes: int


@dataclass(frozen=True)
class Fail:
    feed: int
    status: int
    minutes: int


@dataclass(frozen=True)
class Deliver:
    minutes: int


@dataclass(frozen=True)
class MuteStep:
    kind: str
    name: str
    for_minutes: int
    minutes: int


entry = st.tuples(
    st.integers(0, 4),
    st.integers(0, len(TITLES) - 1),
    st.integers(0, len(LINKS) - 1),
    st.integers(0, len(SUMMARIES) - 1),
    st.integers(0, len(AGES) - 1),
)
minutes = st.sampled_from([0, 1, 5, 20, 45, 61, 130, 60 * 50])
polls = st.builds(
    Poll,
    st.integers(0, 2),
    st.lists(entry, max_size=5, unique_by=lambda e: e[0]).map(tuple),
    minutes,
)
steps = st.lists(
    st.one_of(
        polls,
        polls,
        polls,
        st.builds(Fail, st.integers(0, 2), st.sampled_from([500, 410, 429]), minutes),
        st.builds(Deliver, minutes),
        st.builds(
            MuteStep,
            st.sampled_from(["rule", "feed"]),
            st.sampled_from(["plain", "surge", "digest", "f0", "f1"]),
            st.sampled_from([10, 90]),
            minutes,
        ),
    ),
    max_size=20,
)


def parsed_items(poll: Poll, now: datetime) -> tuple[ParsedItem, ...]:
    items = []
    for guid, title, link, summary, age in poll.entries:
        ago = AGES[age]
        items.append(
            ParsedItem(
                guid=f"g{guid}",
                title=TITLES[title],
                link=LINKS[link],
                summary_text=SUMMARIES[summary],
                published_at=None if ago is None else now - ago,
            )
        )
    return tuple(items)


# --- running a sequence against a store --------------------------------------------------------


@dataclass
class Driver:
    """Plays steps against one store; ``feed`` reads a feed's state, ``deliver`` sends."""

    store: FeedStore
    feed: Callable[[int], FeedState]
    deliver: Callable[[datetime], None]
    mute: Callable[[Mute, datetime], None]
    now: datetime = NOW
    mutes: list[Mute] = field(default_factory=list)
    log: list[tuple[Any, FeedState, datetime, FeedIntent | None]] = field(default_factory=list)

    def play(self, step: Any) -> FeedIntent | None:
        self.now += timedelta(minutes=step.minutes)
        if isinstance(step, Deliver):
            self.deliver(self.now)
            self.log.append((step, None, self.now, None))
            return None
        if isinstance(step, MuteStep):
            mute = Mute(step.kind, step.name, self.now + timedelta(minutes=step.for_minutes))
            self.mutes = [m for m in self.mutes if m.until > self.now and m.key != mute.key]
            self.mutes.append(mute)
            self.mute(mute, self.now)
            self.log.append((step, None, self.now, None))
            return None
        before = self.feed(step.feed + 1)
        if before.last_status == FeedStatus.DISABLED:
            self.log.append((step, before, self.now, None))
            return None  # a 410 took it out of the polls
        result = FeedResult(feed=before, options=OPTIONS[step.feed])
        fetched = Fetched(url=before.url, final_url=before.url, status=200)
        if isinstance(step, Fail):
            result.error, result.http_status = f"HTTP {step.status}", step.status
            result.retry_after_s = 600.0 if step.status == 429 else None
        else:
            result.fetched = fetched
            result.parsed = ParsedFeed("feed", None, "rss20", parsed_items(step, self.now))
            add_matches(result, COMPILED)
        intent = record_result(self.store, result, RULES_BY_ID, SETTINGS, self.now)
        self.log.append((step, before, self.now, intent))
        return intent


def model_driver() -> tuple[Driver, ModelStore]:
    model = ModelStore()
    for n, options in enumerate(OPTIONS, start=1):
        model.feeds[n] = FeedState(id=n, url=options.url, name=str(options.name))

    def mute(m: Mute, now: datetime) -> None:
        model.mutes = [x for x in model.mutes if x.until > now and x.key != m.key] + [m]

    driver = Driver(model, lambda n: model.feeds[n], model.deliver, mute)
    return driver, model


# --- the invariants -------------------------------------------------------------------------------


def check_one_live_alert_per_story(model: ModelStore) -> None:
    seen: set[tuple[str, str, int, str]] = set()
    for a in model.alerts.values():
        if a.live and a.story_id is not None:
            key = (a.rule_id, a.channel, a.story_id, a.kind)
            assert key not in seen, f"two live alerts for {key}"
            seen.add(key)


def check_an_item_alerts_once_per_rule(model: ModelStore) -> None:
    seen: set[tuple[str, str, int]] = set()
    for a in model.alerts.values():
        if a.live and a.kind in ("match", "digest"):
            for item in a.item_ids:
                key = (a.rule_id, a.channel, item)
                assert key not in seen, f"item listed twice: {key}"
                seen.add(key)


def check_suppressed_matches(model: ModelStore, driver: Driver) -> None:
    """Every backlog/too-old/muted match is in a suppressed row, or joined an alert about
    its story that another item opened: never a pending alert of its own."""
    _, before, now, intent = driver.log[-1]
    if intent is None or intent.outcome is not FeedStatus.OK:
        return
    first_poll = before.last_success_at is None
    options = OPTIONS[before.id - 1]
    items = {w.stored.id: w.stored for w in intent.items}
    new_alerts = {a.id for a in intent.alerts}
    for row in intent.matches:
        item = items[row.item_id]
        rule = RULES_BY_ID[row.match.rule_id]
        reason = decide_backlog(options, item, first_poll, now)
        if reason is None and is_muted(driver.mutes, rule.id, before.name, now):
            reason = MUTED
        if reason is None:
            continue
        for channel in ("mail", "hook"):
            listing = [
                a
                for a in model.alerts.values()
                if a.rule_id == rule.id and a.channel == channel and item.id in a.item_ids
            ]
            own = [
                a
                for a in listing
                if a.id in new_alerts and a.item_ids[0] == item.id and a.kind != "threshold"
            ]
            assert all(a.status is AlertStatus.SUPPRESSED for a in own), (rule.id, reason)
            if rule.threshold is not None:
                assert any(a.reason == reason for a in own), (rule.id, channel, reason)
            elif item.change == "new":
                suppressed = [a for a in own if a.reason == reason or is_duplicate(a.reason)]
                joined = [a for a in listing if a.live and a.item_ids[0] != item.id]
                assert suppressed or joined, (rule.id, channel, reason, listing)


@dataclass
class VolumeReference:
    """Volume rule firings decided on the whole history, match by match (no snapshot)."""

    matches: list[VolumeMatch] = field(default_factory=list)
    fired: dict[str, list[datetime]] = field(default_factory=dict)
    pending: dict[str, bool] = field(default_factory=dict)

    def follow(self, driver: Driver) -> None:
        step, before, now, intent = driver.log[-1]
        if isinstance(step, Deliver):
            self.pending = dict.fromkeys(self.pending, False)
            return
        if intent is None or intent.outcome is not FeedStatus.OK:
            return
        rule = RULES_BY_ID["surge"]
        threshold = rule.threshold
        assert threshold is not None
        items = {w.stored.id: w.stored for w in intent.items}
        first_poll = before.last_success_at is None
        for row in intent.matches:
            if row.match.rule_id != rule.id:
                continue
            item = items[row.item_id]
            self.matches.append(VolumeMatch(item.id, item.feed_id, whole_seconds(now)))
            reason = decide_backlog(OPTIONS[before.id - 1], item, first_poll, now)
            muted = is_muted(driver.mutes, rule.id, before.name, now)
            for channel in ("mail", "hook"):
                fired = self.fired.setdefault(channel, [])
                last = fired[-1] if fired else None
                if reason is not None or muted:
                    continue
                if self.pending.get(channel) and last and last > now - timedelta(hours=1):
                    continue
                if decide_threshold(threshold, self.matches, last, now) is not None:
                    fired.append(now)
                    self.pending[channel] = True

    def check(self, model: ModelStore) -> None:
        for channel in ("mail", "hook"):
            got = [
                a.created_at
                for a in sorted(model.alerts.values(), key=lambda a: a.id)
                if a.kind == "threshold" and a.channel == channel
            ]
            assert got == [whole_seconds(t) for t in self.fired.get(channel, [])], channel


# --- the property tests ---------------------------------------------------------------------------


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_the_outbox_invariants_hold_on_any_sequence_of_polls(sequence: list[Any]) -> None:
    driver, model = model_driver()
    volume = VolumeReference()
    for step in sequence:
        driver.play(step)
        check_one_live_alert_per_story(model)
        check_an_item_alerts_once_per_rule(model)
        check_suppressed_matches(model, driver)
        volume.follow(driver)
        volume.check(model)


def test_two_copies_of_one_story_in_one_poll_alert_once() -> None:
    driver, model = model_driver()
    driver.play(Poll(1, ((0, 0, 1, 1, 1), (1, 1, 2, 1, 1)), 0))  # same link, same title
    plain = [a for a in model.alerts.values() if a.rule_id == "plain"]
    assert [(a.channel, a.item_ids, a.status) for a in plain] == [
        ("mail", [1, 2], AlertStatus.PENDING),
        ("hook", [1, 2], AlertStatus.PENDING),
    ]


def test_copies_joined_into_one_story_by_a_later_item_of_the_poll_alert_once(
    tmp_path: Path,
) -> None:
    # a and c have nothing in common; b shares a's link and c's title: one story of three
    entries = ((0, 4, 3, 1, 1), (1, 0, 4, 1, 1), (2, 1, 3, 1, 1))
    with Store(tmp_path / "w.db") as store:
        driver = sql_driver(store)
        driver.play(Poll(1, entries, 0))
        rows = store.db.execute(
            "SELECT item_ids, status FROM alerts WHERE rule_id = 'plain' AND channel = 'hook'"
        ).fetchall()
        assert [tuple(r) for r in rows] == [("[1,2,3]", "pending")]
        assert {r[0] for r in store.db.execute("SELECT story_id FROM items")} == {1}


def test_a_volume_rule_fires_once_per_surge_and_again_after_a_lull() -> None:
    driver, model = model_driver()
    surge = (0, 4, 3, 1, 1)  # "Border surge at Kursk", fresh
    for feed, minute in ((0, 0), (1, 1), (2, 2), (0, 20), (1, 30)):
        driver.play(Poll(feed, ((minute % 5, *surge[1:]),), minute and 1))
    driver.play(Deliver(1))
    driver.play(Poll(2, ((4, 5, 4, 1, 1), (3, 4, 4, 2, 1)), 180))  # after a lull: a new surge
    driver.play(Poll(0, ((2, 4, 4, 2, 1),), 1))
    fired = [a for a in model.alerts.values() if a.kind == "threshold" and a.channel == "hook"]
    assert len(fired) == 2


# --- the same sequences through the real store ------------------------------------------------


def sql_driver(store: Store) -> Driver:
    for options in OPTIONS:
        store.db.execute(
            "INSERT INTO feeds (url, name, interval_s) VALUES (?, ?, 900)",
            [options.url, options.name],
        )

    def deliver(now: datetime) -> None:
        for alert in due_alerts(store, now):
            mark_sent(store, alert.id, now)

    def feed(feed_id: int) -> FeedState:
        return get_feed(store, feed_id)

    return Driver(store, feed, deliver, lambda m, now: save_mute(store, m, now))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_the_real_store_reads_and_writes_what_the_model_does(sequence: list[Any]) -> None:
    driver, model = model_driver()
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "w.db") as store:
        real = sql_driver(store)
        for step in sequence:
            want = driver.play(step)
            got = real.play(step)
            assert _comparable(got) == _comparable(want), step
        rows = store.db.query(
            "SELECT alerts.id, rule_id, channel, item_ids, status, reason FROM alerts ORDER BY id"
        )
        stored = [
            (r["id"], r["rule_id"], r["channel"], r["item_ids"], r["status"], r["reason"])
            for r in rows
        ]
        expected = [
            (a.id, a.rule_id, a.channel, _json(a.item_ids), str(a.status), a.reason)
            for a in sorted(model.alerts.values(), key=lambda a: a.id)
        ]
        assert stored == expected
        stories = store.db.query("SELECT id, story_id FROM items ORDER BY id")
        assert [(r["id"], r["story_id"]) for r in stories] == [
            (i.id, i.story_id) for i in sorted(model.items.values(), key=lambda i: i.id)
        ]


def _comparable(intent: FeedIntent | None) -> Any:
    """An intent with the times the database rounds to whole seconds rounded too."""
    if intent is None:
        return None
    return replace(intent, poll=replace(intent.poll, duration_ms=0))


def _json(ids: list[int]) -> str:
    return "[" + ",".join(str(i) for i in ids) + "]"
