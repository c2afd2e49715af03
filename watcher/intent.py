"""The frozen data one feed's poll passes between the store and the pure decisions.

    store.snapshot(SnapshotRequest) -> FeedSnapshot   what is stored that this poll touches
    decide.feed.decide_poll(...)    -> FeedIntent     what the poll changes (no SQL, no clock)
    store.apply(FeedIntent)                           all of it written in one transaction

A snapshot holds only what the new and changed items of the feed and the rules they match
can touch: their stored versions, the story keys they carry and those stories' live alerts,
the rules' open digests, caps, held-back alerts and volume state, the mutes, and the next
free ids. The intent says everything to write: items with their ids and stories, story
merges and keys, matches with their evidence, alert rows, items appended to alerts, the
poll row and the feed's new state.

Ids of new rows (items, matches, alerts) are handed out by ``decide`` from the snapshot's
next free ids. That is sound only because the snapshot is read, the decision made and the
intent applied inside one write transaction (``BEGIN IMMEDIATE``): no other connection can
insert a row in between, and SQLite would give the same ids itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from watcher.types import (
    Alert,
    AlertStatus,
    ArmState,
    Article,
    FeedState,
    FeedStatus,
    HealthEvent,
    Match,
    Mute,
    ParsedItem,
    StoredItem,
    VolumeMatch,
)

StoryKey = tuple[str, str]  # (kind, key): ("link", canonical link) or ("title", title key)
Pair = tuple[str, str]  # (rule id, channel)


def whole_seconds(moment: datetime) -> datetime:
    """A time as the database gives it back: UTC, whole seconds (naive is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0)


# --- what the snapshot is asked for ----------------------------------------------------------


@dataclass(frozen=True)
class ItemRef:
    """One parsed item, as the snapshot needs it: the store reads more only when the stored
    version differs (a new or changed item). Its story keys are worked out only then, by
    ``keys`` (most items of a feed are unchanged)."""

    guid: str
    content_hash: str
    rule_ids: tuple[str, ...]  # the rules its matches are for
    keys: Callable[[], tuple[StoryKey, ...]] = tuple

    @property
    def story_keys(self) -> tuple[StoryKey, ...]:
        return self.keys()


@dataclass(frozen=True)
class ThrottleWindow:
    """A ``max_alerts`` cap to check: alerts queued on ``channel`` (of ``rule_id`` only, or of
    every rule) after ``since``; the store counts at most ``cap`` of them."""

    channel: str
    rule_id: str | None
    since: datetime
    cap: int


@dataclass(frozen=True)
class RuleNeeds:
    """What deciding a rule's alerts reads, should a new or changed item match it."""

    rule_id: str
    channels: tuple[str, ...]
    digest_s: int | None = None
    volume: bool = False
    throttles: tuple[ThrottleWindow, ...] = ()


@dataclass(frozen=True)
class SnapshotRequest:
    feed_id: int
    now: datetime
    items: tuple[ItemRef, ...] = ()
    rules: tuple[RuleNeeds, ...] = ()


# --- what the store answers ------------------------------------------------------------------


@dataclass(frozen=True)
class KnownItem:
    """A stored item of the feed, by guid."""

    id: int
    content_hash: str
    story_id: int
    first_seen_at: datetime


@dataclass(frozen=True)
class StoryRef:
    """Where a story key points: its story, and when the story's first copy was published
    (else first seen)."""

    story_id: int
    first_at: datetime


@dataclass(frozen=True)
class OutboxAlert:
    """An ``alerts`` row with what ``_alert_meta`` says of it."""

    alert: Alert
    kind: str  # match | digest | threshold | health
    story_id: int | None = None


@dataclass(frozen=True)
class FeedSnapshot:
    """What is stored that one poll of a feed can touch, read at one moment."""

    feed: FeedState
    next_item_id: int = 1
    next_match_id: int = 1
    next_alert_id: int = 1
    known: Mapping[str, KnownItem] = field(default_factory=dict)  # by guid
    story_keys: Mapping[StoryKey, StoryRef] = field(default_factory=dict)
    story_heads: Mapping[int, datetime] = field(default_factory=dict)  # first seen of story id
    live: tuple[OutboxAlert, ...] = ()  # live match alerts of those stories, for these rules
    alerted: frozenset[tuple[str, str, int]] = frozenset()  # (rule, channel, changed item id)
    digests: tuple[OutboxAlert, ...] = ()  # live digests that may hold those stories, by id
    item_stories: Mapping[int, int] = field(default_factory=dict)  # story of digests' items
    throttled: Mapping[ThrottleWindow, int] = field(default_factory=dict)
    held_back: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # by channel
    volume_last: Mapping[Pair, OutboxAlert] = field(default_factory=dict)  # last firing
    arming: Mapping[Pair, ArmState] = field(default_factory=dict)  # as saved
    mutes: tuple[Mute, ...] = ()


# Volume rules read their recent matches once the snapshot says how far back they look.
VolumeHistory = Mapping[str, tuple[VolumeMatch, ...]]  # rule id -> matches, oldest first


# --- what a poll changes ---------------------------------------------------------------------


@dataclass(frozen=True)
class ItemWrite:
    """A new or changed item: ``stored`` as a read-back would give it (id, story, change)."""

    stored: StoredItem
    parsed: ParsedItem
    article: Article | None = None  # its article page, fetched in this poll (full_text)


@dataclass(frozen=True)
class StoryMerge:
    """Two stories met: every item, key and live match alert of ``other`` joins ``into``
    (an alert whose place is taken there stays where it was)."""

    other: int
    into: int


@dataclass(frozen=True)
class StoryKeyWrite:
    key: StoryKey
    story_id: int
    first_at: datetime


@dataclass(frozen=True)
class MatchWrite:
    """A ``matches`` row; ``match`` carries the terms and the evidence (fields, snippets)."""

    id: int
    item_id: int
    match: Match
    matched_at: datetime


@dataclass(frozen=True)
class AlertWrite:
    """A new ``alerts`` row with its ``_alert_meta``."""

    id: int
    rule_id: str
    channel: str
    item_ids: tuple[int, ...]
    status: AlertStatus
    created_at: datetime
    reason: str | None = None
    kind: str = "match"
    story_id: int | None = None
    next_attempt_at: datetime | None = None
    retry_from: datetime | None = None  # a digest's deadline counts from when it is due
    held_back: bool = False  # throttled by max_alerts: a later alert summarises it
    health: HealthEvent | None = None  # a health alert's event, kept for its message


@dataclass(frozen=True)
class AlertAppend:
    """A later copy of a story (or a digest's next item) added to a stored alert."""

    alert_id: int
    item_id: int


@dataclass(frozen=True)
class Summary:
    """A held-back alert whose items the alert ``into`` carries; its reason says so."""

    alert_id: int
    into: int
    reason: str


@dataclass(frozen=True)
class ArmingWrite:
    rule_id: str
    channel: str
    state: ArmState


@dataclass(frozen=True)
class PollRow:
    started_at: datetime
    duration_ms: int | None
    http_status: int | None
    new_items: int
    error: str | None


@dataclass(frozen=True)
class FeedUpdate:
    """The feed's columns after the poll (the snapshot's values where nothing changed)."""

    last_polled_at: datetime
    last_status: str
    last_error: str | None
    last_success_at: datetime | None
    consecutive_failures: int
    disabled_reason: str | None
    next_poll_at: datetime
    etag: str | None
    last_modified: str | None
    title: str | None
    url: str


@dataclass(frozen=True)
class FeedIntent:
    """Everything one poll of one feed writes, in the order the store applies it."""

    feed_id: int
    outcome: FeedStatus  # ok | not_modified | error (a 410 too)
    poll: PollRow
    feed: FeedUpdate
    retry_until: datetime | None = None  # a server's Retry-After hold; None lifts it
    error: str | None = None
    pushed: bool = False  # a WebSub delivery: items and alerts only, no poll row or state
    items: tuple[ItemWrite, ...] = ()
    merges: tuple[StoryMerge, ...] = ()
    story_keys: tuple[StoryKeyWrite, ...] = ()
    matches: tuple[MatchWrite, ...] = ()
    alerts: tuple[AlertWrite, ...] = ()
    appends: tuple[AlertAppend, ...] = ()
    summaries: tuple[Summary, ...] = ()
    arming: tuple[ArmingWrite, ...] = ()
    health: tuple[HealthEvent, ...] = ()

    @property
    def is_plain(self) -> bool:
        """Only a poll row and the feed's state: nothing else to write."""
        return not (
            self.items
            or self.merges
            or self.story_keys
            or self.matches
            or self.alerts
            or self.appends
            or self.summaries
            or self.arming
        )
