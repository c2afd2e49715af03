"""The pure alert-policy decisions: retry times and deadlines, mutes, caps, volume, subjects."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watcher.decide.policy import (
    decide_backlog,
    is_muted,
    is_over_limit,
    limits_for,
    live_mutes,
)
from watcher.deliver.message import alert_subject, format_window
from watcher.deliver.retry import next_attempt
from watcher.types import (
    Alert,
    AlertStatus,
    ChannelConfig,
    DeliverySettings,
    FeedConfig,
    FeedDefaults,
    FirstPollAlerts,
    HealthSettings,
    Mute,
    PollSettings,
    RateLimit,
    Rule,
    Settings,
    StoredItem,
)

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def settings(**channels: ChannelConfig) -> Settings:
    return Settings(
        path=Path("/x/watcher.yaml"),
        database=Path("/x/w.db"),
        rules=(),
        defaults=FeedDefaults(),
        display_timezone="UTC",
        poll=PollSettings(),
        feeds=(),
        channels=channels,
        health=HealthSettings(),
        delivery=DeliverySettings(),
    )


def alert(attempts: int = 0, created: datetime = T0) -> Alert:
    return Alert(1, "r", "c", (1,), AlertStatus.PENDING, created, attempts=attempts)


def test_retry_delay_starts_at_30s_doubles_and_caps_at_an_hour() -> None:
    s = settings()
    delays = [(next_attempt(s, alert(n), T0) or T0) - T0 for n in range(9)]
    assert [d.total_seconds() for d in delays] == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]


def test_retry_gives_up_24h_after_creation() -> None:
    s = settings()
    late = T0 + timedelta(hours=23, minutes=59, seconds=40)
    assert next_attempt(s, alert(0), late) is None  # 30 s later is past the deadline
    assert next_attempt(s, alert(0), late - timedelta(minutes=1)) is not None


def test_a_manual_retry_gives_a_fresh_deadline() -> None:
    s = settings()
    two_days_later = T0 + timedelta(days=2)
    assert next_attempt(s, alert(12), two_days_later) is None
    at = next_attempt(s, alert(12), two_days_later, retry_from=two_days_later)
    assert at == two_days_later + timedelta(hours=1)


def test_retry_settings_come_from_the_delivery_section() -> None:
    s = replace(settings(), delivery=DeliverySettings(10, 40, 100))
    got = [next_attempt(s, alert(n), T0) for n in range(4)]
    assert [(g - T0).total_seconds() if g else None for g in got] == [10, 20, 40, 40]
    assert next_attempt(s, alert(0), T0 + timedelta(seconds=95)) is None


def test_mutes_end_at_their_time_and_match_rule_or_feed() -> None:
    until = T0 + timedelta(hours=2)
    mutes = [Mute("rule", "kursk", until), Mute("feed", "wire", until)]
    assert is_muted(mutes, "kursk", "other", T0)
    assert is_muted(mutes, "drones", "wire", T0)
    assert not is_muted(mutes, "drones", "other", T0)
    assert not is_muted(mutes, "kursk", "wire", T0 + timedelta(hours=2))
    assert not is_muted(mutes, "wire", "kursk", T0)  # a rule's mute is not a feed's
    assert live_mutes(mutes, T0 + timedelta(hours=1)) == mutes
    assert live_mutes(mutes, T0 + timedelta(hours=3)) == []


def test_caps_come_from_the_rule_and_the_channel() -> None:
    capped = ChannelConfig("mail", "email", max_alerts=RateLimit(30, 3600))
    s = settings(mail=capped, hook=ChannelConfig("hook", "webhook"))
    rule = Rule("r", "f", max_alerts=RateLimit(2, 600))
    assert limits_for(rule, s, "mail") == [(RateLimit(2, 600), True), (RateLimit(30, 3600), False)]
    assert limits_for(Rule("q", "f"), s, "hook") == []
    assert not is_over_limit(RateLimit(2, 600), 1)
    assert is_over_limit(RateLimit(2, 600), 2)


def test_subjects_follow_the_spec() -> None:
    assert alert_subject("match", "kursk", "Troops seen", 1) == "[watcher] kursk: Troops seen"
    assert alert_subject("digest", "kursk", "x", 4) == "[watcher] kursk: 4 new items"
    assert alert_subject("digest", "kursk", "x", 1) == "[watcher] kursk: 1 new item"
    assert alert_subject("threshold", "surge", "x", 5, 7200) == "[watcher] surge: 5 items in 2h"
    assert [format_window(s) for s in (86400, 5400, 45, 120)] == ["1d", "90m", "45s", "2m"]


NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def stored_item(published: datetime | None, first_seen: datetime) -> StoredItem:
    return StoredItem(
        id=1, feed_id=1, guid="g", title="t", link=None, summary_text="", content_text="",
        author=None, tags=(), published_at=published, first_seen_at=first_seen,
        content_hash="h", story_id=1, change="new",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("published", "first_seen", "first_poll", "reason"),
    [
        (datetime(9999, 12, 31, tzinfo=UTC), NOW, True, None),  # first seen now: recent
        (datetime(9999, 12, 31, tzinfo=UTC), NOW - timedelta(days=3), False, "too old"),
        (NOW + timedelta(hours=20), NOW - timedelta(days=3), False, None),  # within a day
        (NOW - timedelta(days=3), NOW, True, "backlog"),
        (None, NOW, True, "backlog"),  # undated items count as old
    ],
)
def test_a_date_more_than_a_day_ahead_counts_as_first_seen_for_recency(
    published: datetime | None, first_seen: datetime, first_poll: bool, reason: str | None
) -> None:
    options = FeedConfig(url="https://x.example/f", first_poll_alerts=FirstPollAlerts.RECENT)
    item = stored_item(published, first_seen)
    assert decide_backlog(options, item, first_poll, NOW) == reason
