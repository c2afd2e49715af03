"""Frozen dataclasses passed between the stages of the pipeline.

feed URL -> fetch (Fetched) -> parse (ParsedFeed, ParsedItem) -> store (StoredItem)
-> match (MatchItem -> Match) -> alert rows (Alert) -> render (AlertMessage) -> deliver.

No behaviour lives here beyond small derived properties.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from watcher.exceptions import Problem

# --- statuses stored as text -------------------------------------------------------------


class FeedStatus(StrEnum):
    OK = "ok"
    NOT_MODIFIED = "not_modified"
    ERROR = "error"
    DISABLED = "disabled"


class AlertStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"


class FirstPollAlerts(StrEnum):
    RECENT = "recent"
    ALL = "all"
    NONE = "none"


class FullText(StrEnum):
    """``full_text``: which new items have their article page fetched before matching."""

    NEVER = "never"
    SHORT = "short"  # when the item's summary and content hold under 100 tokens
    ALWAYS = "always"


SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high", "critical")

# Fields a rule can look at, in the order SPEC §4 lists them.
FIELDS: tuple[str, ...] = (
    "title",
    "summary",
    "content",
    "article",
    "author",
    "link",
    "tags",
    "feed",
)
DEFAULT_RULE_FIELDS: tuple[str, ...] = ("title", "summary", "content", "article")


# --- configuration -----------------------------------------------------------------------


AUTO_INTERVAL = "auto"  # ``interval: auto`` and its ``feeds.interval_source``


@dataclass(frozen=True)
class FeedDefaults:
    interval_s: int = 900  # with ``interval_auto``: where an adaptive interval starts
    timeout_s: float = 20.0
    first_poll_alerts: FirstPollAlerts = FirstPollAlerts.RECENT
    max_age_s: int = 2 * 86400
    headers: Mapping[str, str] = field(default_factory=dict)
    interval_auto: bool = False  # ``interval: auto``: follow each feed's publishing rate
    min_interval_s: int = 300  # the bounds of an adaptive interval
    max_interval_s: int = 6 * 3600
    full_text: FullText = FullText.NEVER

    @property
    def auto_bounds(self) -> tuple[int, int] | None:
        """(min, max) interval when ``interval: auto``, else None."""
        return (self.min_interval_s, self.max_interval_s) if self.interval_auto else None


@dataclass(frozen=True)
class FeedConfig:
    """A feed as the config file (or an OPML file it names) declares it."""

    url: str  # an http(s) URL template (``${VAR}`` expanded when fetched), or an absolute path
    name: str | None = None
    title: str | None = None
    tags: tuple[str, ...] = ()
    interval_s: int = 900
    timeout_s: float = 20.0
    first_poll_alerts: FirstPollAlerts = FirstPollAlerts.RECENT
    max_age_s: int = 2 * 86400
    headers: Mapping[str, str] = field(default_factory=dict)
    enabled: bool = True
    # 'feed' when the entry sets its own interval, 'auto' when it is adaptive (its own
    # ``interval: auto`` or the defaults'), else 'default'
    interval_source: str = "default"
    min_interval_s: int = 300  # the bounds of an adaptive interval
    max_interval_s: int = 6 * 3600
    full_text: FullText = FullText.NEVER


@dataclass(frozen=True)
class PollSettings:
    workers: int = 16
    per_host: int = 2
    max_bytes: int = 10 * 1024 * 1024
    user_agent: str = "watcher"
    block_private: bool = False  # refuse loopback and private addresses (address_policy.py)
    max_new_alerts_per_feed: int = 200  # per channel and poll; the rest: a summary alert


@dataclass(frozen=True)
class RateLimit:
    count: int
    per_s: int


@dataclass(frozen=True)
class ChannelConfig:
    """One entry of ``channels:``; ``options`` holds the type's own keys, validated."""

    name: str
    type: str
    options: Mapping[str, Any] = field(default_factory=dict)
    min_severity: str = "info"
    max_alerts: RateLimit | None = None
    secrets: tuple[str, ...] = ()  # values of the ${VARS} in its options: never shown or kept
    unresolved: tuple[Problem, ...] = ()  # variables it needs that are not set


@dataclass(frozen=True)
class HealthSettings:
    failing_after: int = 5
    quiet_after_s: int = 7 * 86400
    notify: tuple[str, ...] | None = None  # None: every channel


@dataclass(frozen=True)
class DeliverySettings:
    retry_initial_s: int = 30
    retry_max_s: int = 3600
    give_up_after_s: int = 86400


@dataclass(frozen=True)
class Listen:
    """Where a server of the daemon listens: ``HOST:PORT`` (port 0: any free port)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class WebSubSettings:
    """``websub:``; push is off unless ``listen`` and ``public_url`` are both set."""

    listen: Listen | None = None
    public_url: str | None = None  # where hubs reach the callback server
    safety_interval_s: int = 6 * 3600  # a subscribed feed is still polled this often

    @property
    def enabled(self) -> bool:
        return self.listen is not None and self.public_url is not None


@dataclass(frozen=True)
class MetricsSettings:
    """``metrics:``; the endpoint is off unless ``listen`` is set (or ``run --metrics``)."""

    listen: Listen | None = None


@dataclass(frozen=True)
class ScaleSettings:
    """``scale:``; polls run on Celery workers over Redis when ``broker`` is set."""

    broker: str | None = None  # redis:// or rediss:// URL, ${VARS} expanded
    task_timeout_s: int = 300  # a task's deadline on a worker and at the coordinator

    @property
    def enabled(self) -> bool:
        return self.broker is not None


@dataclass(frozen=True)
class Settings:
    """A validated watcher.yaml; every path is absolute."""

    path: Path
    database: Path
    rules: tuple[Path, ...]  # rule files (a folder in the config is expanded to its *.yaml)
    defaults: FeedDefaults
    display_timezone: str
    poll: PollSettings
    feeds: tuple[FeedConfig, ...]
    channels: Mapping[str, ChannelConfig]
    health: HealthSettings
    delivery: DeliverySettings
    retention_s: int = 180 * 86400
    poll_log_retention_s: int = 30 * 86400
    websub: WebSubSettings = field(default_factory=WebSubSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    scale: ScaleSettings = field(default_factory=ScaleSettings)
    # ${VARS} of channels, feed URLs and headers that are not set: only the commands that
    # fetch or deliver refuse to run without them (config.require_variables).
    unresolved: tuple[Problem, ...] = ()


# --- fetch and parse ---------------------------------------------------------------------


@dataclass(frozen=True)
class Fetched:
    """One HTTP response (or local file read). status 304 means not modified: no content."""

    url: str  # the URL asked for
    final_url: str  # after redirects
    status: int
    content: bytes = b""
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    permanent_redirect: str | None = None  # new URL when every redirect was permanent
    headers: Mapping[str, str] = field(default_factory=dict)
    dropped: int = 0  # bytes of ``content`` let go once it was parsed

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def size(self) -> int:
        """Bytes of the response body, whether or not ``content`` still holds them."""
        return len(self.content) + self.dropped


@dataclass(frozen=True)
class ParsedItem:
    guid: str  # the feed's id, or a stable fallback (link, else a hash of title+published)
    title: str = ""  # plain text
    link: str | None = None
    summary: str = ""  # sanitised HTML
    content: str = ""  # sanitised HTML
    summary_text: str = ""  # plain text: what rules and search see
    content_text: str = ""
    author: str | None = None
    tags: tuple[str, ...] = ()
    published_at: datetime | None = None  # UTC-aware
    updated_at: datetime | None = None
    language: str | None = None  # lowercase BCP 47: the item's declared language, else its feed's
    # The link is shared by entries of other titles in the same document (a site's front
    # page): it does not tie this item to a story.
    shared_link: bool = False
    # What the reader changed about this item, for the poll's warning (not stored).
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParsedFeed:
    title: str | None
    link: str | None
    format: str  # "rss20", "atom10", "json11", ... as detected from the content
    items: tuple[ParsedItem, ...]
    warning: str | None = None  # a recoverable problem (ill-formed XML that still gave items)
    parser: str = ""  # which reader parsed it: lxml (the fast one), feedparser or json
    hubs: tuple[str, ...] = ()  # WebSub hubs the document names (atom:link rel=hub, ...)
    self_url: str | None = None  # the document's own URL (rel=self, JSON Feed feed_url)


# --- storage -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Article:
    """What fetching an item's article page gave: its main text, or why there is none."""

    text: str | None
    error: str | None  # items.article_error: http NNN, robots, timeout, too large, ...
    fetched_at: datetime


@dataclass(frozen=True)
class FeedState:
    """A row of the ``feeds`` table."""

    id: int
    url: str
    name: str
    title: str | None = None
    tags: tuple[str, ...] = ()
    source: str = "config"
    interval_s: int = 900
    interval_source: str = "feed"  # 'default': follows defaults.interval; 'auto': adaptive
    etag: str | None = None
    last_modified: str | None = None
    last_polled_at: datetime | None = None
    last_success_at: datetime | None = None
    last_status: str | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    next_poll_at: datetime | None = None
    disabled_reason: str | None = None
    # With ``full_text``: guid -> link of the feed's stored items, handed to whatever
    # fetches the feed so that only new items (or new links) have their article fetched;
    # None: not read (no article is fetched then). Not a column.
    known_links: Mapping[str, str | None] | None = field(default=None, compare=False, repr=False)


# --- WebSub ------------------------------------------------------------------------------


class SubState(StrEnum):
    UNSUBSCRIBED = "unsubscribed"
    SUBSCRIBED = "subscribed"
    DENIED = "denied"


class Mode(StrEnum):
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"


@dataclass(frozen=True)
class Subscription:
    """A row of ``_websub``: what the feed names, and what was asked of or granted by a hub."""

    id: int
    feed_id: int | None  # None: the feed was deleted
    feed_name: str | None
    feed_active: bool  # the feed exists and is not disabled
    hub: str | None  # the hub the feed names now
    topic: str | None  # its self URL
    state: SubState = SubState.UNSUBSCRIBED
    pending: Mode | None = None  # asked, waiting for the hub's check
    sub_hub: str | None = None  # what the asked or held subscription is for
    sub_topic: str | None = None
    token: str | None = None
    secret: str | None = None
    lease_until: datetime | None = None
    requested_at: datetime | None = None
    retry_at: datetime | None = None
    failures: int = 0
    last_error: str | None = None
    last_push_at: datetime | None = None
    pushes: int = 0
    rejected: int = 0

    def live(self, now: datetime) -> bool:
        """A subscription the hub granted whose lease has not ended."""
        return (
            self.state is SubState.SUBSCRIBED
            and self.lease_until is not None
            and self.lease_until > now
        )


@dataclass(frozen=True)
class StoredItem:
    """A row of the ``items`` table after an upsert; ``change`` says what the upsert did."""

    id: int
    feed_id: int
    guid: str
    title: str
    link: str | None
    summary_text: str
    content_text: str
    author: str | None
    tags: tuple[str, ...]
    published_at: datetime | None
    first_seen_at: datetime
    content_hash: str
    story_id: int
    change: str  # "new" | "updated" | "unchanged"
    language: str | None = None  # lowercase BCP 47, as the item or its feed declared it
    article_text: str | None = None  # the article page's main text, when it was fetched


@dataclass
class FeedResult:
    """What fetching, parsing and matching one feed gives (a worker hands it back); never an
    exception. ``matches`` and ``hashes`` are filled where matching happens."""

    feed: FeedState
    options: FeedConfig
    fetched: Fetched | None = None
    parsed: ParsedFeed | None = None
    error: str | None = None
    http_status: int | None = None
    duration_ms: int = 0
    matches: dict[str, tuple[Match, ...]] | None = None  # match_key(guid, hash) -> matches
    retry_after_s: float | None = None  # the server's Retry-After on a 429/503
    hashes: tuple[str, ...] | None = None  # content_hash of each parsed item, when known
    pushed: bool = False  # a WebSub delivery, not a poll: no poll row, no feed state
    articles: dict[str, Article] | None = None  # guid -> the article fetched (full_text)


def match_key(guid: str, digest: str) -> str:
    """Names one version of one item: a stored item's guid and content hash give the same."""
    return f"{digest} {guid}"


# --- rules and matching ------------------------------------------------------------------


@dataclass(frozen=True)
class Threshold:
    count: int
    within_s: int
    distinct: str | None = None  # None (count items) or "feed"


@dataclass(frozen=True)
class Rule:
    id: str
    file: str
    line: int | None = None
    description: str = ""
    any: tuple[str, ...] = ()
    all: tuple[str, ...] = ()
    none: tuple[str, ...] = ()
    query: str | None = None
    fields: tuple[str, ...] = DEFAULT_RULE_FIELDS
    feeds: tuple[str, ...] = ()  # feed names or "tag:NAME"; empty: every feed
    severity: str = "medium"
    notify: tuple[str, ...] | None = None  # None: every channel
    stem: str | None = None
    enabled: bool = True
    digest_s: int | None = None
    max_alerts: RateLimit | None = None
    threshold: Threshold | None = None
    # The term lists (``- terms:`` entries) the rule's ``$NAME``s refer to: name, entries.
    term_lists: tuple[tuple[str, tuple[str, ...]], ...] = ()
    languages: tuple[str, ...] = ()  # RFC 4647 language ranges, lower-case; empty: any


@dataclass(frozen=True)
class MatchItem:
    """What the matcher sees of an item: each field is a tuple of plain-text values.

    ``tags`` has one value per tag; ``feed`` holds the feed's name and title.
    """

    fields: Mapping[str, tuple[str, ...]]
    feed_name: str = ""
    feed_tags: tuple[str, ...] = ()
    language: str | None = None  # BCP 47, as the item or its feed declares it; None: unknown


@dataclass(frozen=True)
class Hit:
    """A matched span: tokens [start, end) of value ``index`` of ``field``."""

    field: str
    index: int
    start: int
    end: int


@dataclass(frozen=True)
class Match:
    """A rule matching an item. Where matching happens, the hits are cut into the evidence
    that is stored with the match and shown in its alerts: the matched fields (in FIELDS
    order) and up to three snippets with the matched words as ``**bold**``."""

    rule_id: str
    terms: tuple[str, ...]  # matched conditions, normalised, wildcards as written, rule order
    hits: tuple[Hit, ...] = ()
    fields: tuple[str, ...] = ()
    snippets: tuple[str, ...] = ()


@dataclass(frozen=True)
class VolumeMatch:
    """One recorded match of a volume rule."""

    item_id: int
    feed_id: int
    matched_at: datetime


@dataclass(frozen=True)
class ArmState:
    """What is known about a volume rule re-arming on one channel since it last fired there.

    ``fired``: the last firing (None: never). ``checked``: every moment after ``fired`` up
    to ``checked`` was looked at (None: nothing yet). ``armed``: a dip was seen there.
    A row of ``_volume_arming``.
    """

    fired: datetime | None
    checked: datetime | None = None
    armed: bool = False


@dataclass(frozen=True)
class Mute:
    """``watcher mute``: a rule's or a feed's matches are not sent until ``until``.
    A row of ``_mutes``."""

    kind: str  # rule | feed
    name: str  # the rule id or the feed name
    until: datetime

    @property
    def key(self) -> str:
        """How a mute is shown and named on the command line: ``rule:ID``, ``feed:NAME``."""
        return f"{self.kind}:{self.name}"


# --- alerts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    """A row of the ``alerts`` table."""

    id: int
    rule_id: str
    channel: str
    item_ids: tuple[int, ...]
    status: AlertStatus
    created_at: datetime
    reason: str | None = None
    attempts: int = 0
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    sent_at: datetime | None = None


@dataclass(frozen=True)
class AlsoReported:
    feed: str
    link: str | None


@dataclass(frozen=True)
class AlertItem:
    id: int
    title: str
    link: str | None
    feed: str
    published_at: datetime | None
    terms: tuple[str, ...]
    snippets: tuple[str, ...]  # text with the matched words as **bold**
    also_reported_by: tuple[AlsoReported, ...] = ()
    # The fields the match was found in, in FIELDS order (() when not known: an alert queued
    # before evidence was kept, a health or summary entry).
    matched_in: tuple[str, ...] = ()


@dataclass(frozen=True)
class AlertMessage:
    """Everything a channel needs to render one alert; built from the database."""

    alert_id: int
    kind: str  # match | digest | threshold | health | summary
    created_at: datetime
    rule_id: str
    rule_description: str
    severity: str
    items: tuple[AlertItem, ...]
    subject: str
    display_timezone: str = "UTC"
    held_back: tuple[AlertItem, ...] = ()  # matches max_alerts kept back since the last alert
    omitted: int = 0  # items the alert is about beyond those listed (a summary, a cut e-mail)
    shortened: bool = False  # items were left out to keep an e-mail under its size limit


# --- health of the sources ---------------------------------------------------------------

HEALTH_RULE_ID = "health"  # the rule id of health alerts
HEALTH_KIND = "health"  # their kind in ``_alert_meta``
# A feed's matches past poll.max_new_alerts_per_feed in one poll: suppressed with this
# reason, and summed up per channel in one alert of this kind and rule id.
OVER_FEED_LIMIT = "over feed limit"
SUMMARY_RULE_ID = "summary"
SUMMARY_KIND = "summary"


class HealthKind(StrEnum):
    FAILING = "failing"
    RECOVERED = "recovered"
    QUIET = "quiet"


@dataclass(frozen=True)
class HealthEvent:
    """Something to tell the operators about one feed."""

    feed: str
    kind: HealthKind
    detail: str
    url: str = ""
