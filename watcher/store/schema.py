"""The database schema as numbered migrations, and the table names; runs no business logic.

Migrations are applied in order when the store opens; ``_migrations`` records each one
that ran, so a database made by an earlier version upgrades in place. A migration is
never edited once released: a schema change is a new, higher-numbered migration.

    0001_tables          the public tables: feeds, items, matches, alerts, polls
    0002_search_stories  items_fts and its triggers, indexes, story keys, alert keys
    0003_views_state     the recent_alerts and failing_feeds views, the _state table
    0004_alert_retry     _alert_meta.retry_from: when an alert's delivery deadline starts
    0005_archive_views   the rule_activity and recent_matches views
    0006_alert_indexes   indexes for the outbox's per-alert lookups (caps, held-back alerts)
    0007_pending_alerts_by_rule  an index for a digest's look-up of a rule's pending alerts
    0008_interval_source feeds.interval_source (default | feed); intervals under 1m raised
    0009_state_tables    the _state rows moved into tables of their own (_instance, _mutes,
                         _volume_arming, _feed_health, _health_alerts) and _held_back;
                         _state dropped
    0010_websub          _websub: WebSub subscriptions (hub, topic, callback token, secret,
                         lease, pushes); an index of a feed's items by first-seen time
    0011_item_article    items.article_text, article_fetched_at, article_error (the item's
                         article page, when full_text fetched it) and items.language
    0012_match_evidence  _match_evidence: the fields and snippets of each match, cut where
                         matching happens; an index of live alerts by story
    0013_search_tokens   items_fts rebuilt over the normalised tokens of title, summary_text,
                         content_text and article_text (tokenizer ascii), filled from
                         _fts_queue, which triggers on items keep
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from watcher.storykeys import canonical_link, title_key

FEEDS = "feeds"
ITEMS = "items"
ITEMS_FTS = "items_fts"
MATCHES = "matches"
ALERTS = "alerts"
POLLS = "polls"
STORY_KEYS = "_story_keys"
ALERT_META = "_alert_meta"
FEED_CONFIG = "_feed_config"
INSTANCE = "_instance"
MUTES = "_mutes"
VOLUME_ARMING = "_volume_arming"
HELD_BACK = "_held_back"
FEED_HEALTH = "_feed_health"
HEALTH_ALERTS = "_health_alerts"
WEBSUB = "_websub"
MATCH_EVIDENCE = "_match_evidence"
FTS_QUEUE = "_fts_queue"
REBUILDS_INDEX = "0013_search_tokens"  # the migration after which the store fills items_fts

PUBLIC_TABLES: tuple[str, ...] = (FEEDS, ITEMS, ITEMS_FTS, MATCHES, ALERTS, POLLS)


class WatcherMigrations(Migrations):
    """sqlite-utils migrations, recorded in ``_migrations``."""

    migrations_table = "_migrations"


MIGRATIONS = WatcherMigrations("watcher")

_TABLES_V1 = """
CREATE TABLE IF NOT EXISTS feeds (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL,
    name TEXT NOT NULL UNIQUE,
    title TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    source TEXT NOT NULL DEFAULT 'cli',
    interval_s INTEGER NOT NULL DEFAULT 900,
    etag TEXT,
    last_modified TEXT,
    last_polled_at TEXT,
    last_success_at TEXT,
    last_status TEXT,
    last_error TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    next_poll_at TEXT,
    disabled_reason TEXT
);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    feed_id INTEGER NOT NULL REFERENCES feeds(id) ON DELETE CASCADE,
    guid TEXT NOT NULL,
    link TEXT,
    title TEXT NOT NULL DEFAULT '',
    summary TEXT NOT NULL DEFAULT '',
    content TEXT NOT NULL DEFAULT '',
    summary_text TEXT NOT NULL DEFAULT '',
    content_text TEXT NOT NULL DEFAULT '',
    author TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    published_at TEXT,
    updated_at TEXT,
    first_seen_at TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    story_id INTEGER,
    UNIQUE (feed_id, guid)
);
CREATE TABLE IF NOT EXISTS matches (
    id INTEGER PRIMARY KEY,
    item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    rule_id TEXT NOT NULL,
    terms TEXT NOT NULL DEFAULT '[]',
    matched_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    rule_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    item_ids TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL,
    reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at TEXT NOT NULL,
    next_attempt_at TEXT,
    sent_at TEXT
);
CREATE TABLE IF NOT EXISTS polls (
    id INTEGER PRIMARY KEY,
    feed_id INTEGER NOT NULL REFERENCES feeds(id) ON DELETE CASCADE,
    started_at TEXT NOT NULL,
    duration_ms INTEGER,
    http_status INTEGER,
    new_items INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
"""


@MIGRATIONS(name="0001_tables")
def create_tables(db: Database) -> None:
    """The public tables of SPEC §6."""
    _run(db, _TABLES_V1)


_SEARCH = """
CREATE VIRTUAL TABLE IF NOT EXISTS items_fts USING fts5(
    title, summary_text, content_text,
    content="items", content_rowid="id",
    tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS items_fts_ai AFTER INSERT ON items BEGIN
    INSERT INTO items_fts(rowid, title, summary_text, content_text)
    VALUES (new.id, new.title, new.summary_text, new.content_text);
END;
CREATE TRIGGER IF NOT EXISTS items_fts_ad AFTER DELETE ON items BEGIN
    INSERT INTO items_fts(items_fts, rowid, title, summary_text, content_text)
    VALUES ('delete', old.id, old.title, old.summary_text, old.content_text);
END;
CREATE TRIGGER IF NOT EXISTS items_fts_au
AFTER UPDATE OF title, summary_text, content_text ON items BEGIN
    INSERT INTO items_fts(items_fts, rowid, title, summary_text, content_text)
    VALUES ('delete', old.id, old.title, old.summary_text, old.content_text);
    INSERT INTO items_fts(rowid, title, summary_text, content_text)
    VALUES (new.id, new.title, new.summary_text, new.content_text);
END;
INSERT INTO items_fts(items_fts) VALUES ('rebuild');
"""

_INDEXES = """
CREATE INDEX IF NOT EXISTS items_story ON items(story_id);
CREATE INDEX IF NOT EXISTS items_first_seen ON items(first_seen_at);
CREATE INDEX IF NOT EXISTS matches_item_rule ON matches(item_id, rule_id);
CREATE INDEX IF NOT EXISTS matches_rule ON matches(rule_id, matched_at);
CREATE INDEX IF NOT EXISTS alerts_due ON alerts(status, next_attempt_at);
CREATE INDEX IF NOT EXISTS alerts_rule ON alerts(rule_id, created_at);
CREATE INDEX IF NOT EXISTS polls_feed ON polls(feed_id, started_at);
CREATE INDEX IF NOT EXISTS polls_started ON polls(started_at);
CREATE INDEX IF NOT EXISTS feeds_next_poll ON feeds(next_poll_at);
CREATE INDEX IF NOT EXISTS feeds_url ON feeds(url);
"""

_INTERNAL = """
CREATE TABLE IF NOT EXISTS _story_keys (
    kind TEXT NOT NULL,          -- 'link' or 'title'
    key TEXT NOT NULL,
    story_id INTEGER NOT NULL,
    first_at TEXT NOT NULL,      -- published (else first seen) time of the story's first copy
    PRIMARY KEY (kind, key)
);
CREATE INDEX IF NOT EXISTS _story_keys_story ON _story_keys(story_id);
CREATE TABLE IF NOT EXISTS _alert_meta (
    alert_id INTEGER PRIMARY KEY REFERENCES alerts(id) ON DELETE CASCADE,
    kind TEXT NOT NULL DEFAULT 'match',
    story_id INTEGER,
    rule_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    live INTEGER,                -- 1 unless the alert is suppressed, else NULL
    last_attempt_at TEXT
);
INSERT INTO _alert_meta (alert_id, kind, rule_id, channel, live)
SELECT id, 'match', rule_id, channel, CASE WHEN status = 'suppressed' THEN NULL ELSE 1 END
FROM alerts WHERE id NOT IN (SELECT alert_id FROM _alert_meta);
CREATE UNIQUE INDEX IF NOT EXISTS _alert_meta_live
ON _alert_meta(rule_id, channel, story_id, kind) WHERE live = 1;
CREATE TRIGGER IF NOT EXISTS _alert_meta_status AFTER UPDATE OF status ON alerts BEGIN
    UPDATE _alert_meta SET live = CASE WHEN new.status = 'suppressed' THEN NULL ELSE 1 END
    WHERE alert_id = new.id;
END;
CREATE TABLE IF NOT EXISTS _feed_config (
    feed_id INTEGER PRIMARY KEY REFERENCES feeds(id) ON DELETE CASCADE,
    url TEXT NOT NULL            -- the URL as the config file writes it
);
CREATE INDEX IF NOT EXISTS _feed_config_url ON _feed_config(url);
INSERT OR IGNORE INTO _feed_config (feed_id, url) SELECT id, url FROM feeds WHERE source = 'config';
"""


@MIGRATIONS(name="0002_search_stories")
def add_search_and_stories(db: Database) -> None:
    """Full-text search, indexes, and the internal tables for stories, alerts and feeds."""
    _run(db, _SEARCH + _INDEXES + _INTERNAL)
    _backfill_story_keys(db)


def _backfill_story_keys(db: Database) -> None:
    """Register the keys of items stored before story keys existed (first copy wins)."""
    sql = "INSERT OR IGNORE INTO _story_keys (kind, key, story_id, first_at) VALUES (?, ?, ?, ?)"
    for kind, key, story_id, first_at in _existing_keys(db):
        db.execute(sql, (kind, key, story_id, first_at))


def _existing_keys(db: Database) -> Iterator[tuple[str, str, int, str]]:
    rows = db.query(
        "SELECT id, link, title, coalesce(story_id, id) AS story_id,"
        " coalesce(published_at, first_seen_at) AS at FROM items ORDER BY id"
    )
    for row in rows:
        link = canonical_link(row["link"] or "")
        if link:
            yield "link", link, row["story_id"], row["at"]
        title = title_key(row["title"] or "")
        if title:
            yield "title", title, row["story_id"], row["at"]


_VIEWS = """
CREATE VIEW IF NOT EXISTS recent_alerts AS
SELECT alerts.id, alerts.created_at, alerts.rule_id, alerts.channel, alerts.status,
       alerts.reason, items.title, items.link, feeds.name AS feed,
       json_array_length(alerts.item_ids) AS copies
FROM alerts
LEFT JOIN items ON items.id = json_extract(alerts.item_ids, '$[0]')
LEFT JOIN feeds ON feeds.id = items.feed_id
ORDER BY alerts.created_at DESC, alerts.id DESC;
CREATE VIEW IF NOT EXISTS failing_feeds AS
SELECT id, name, url, last_status, last_error, consecutive_failures,
       last_success_at, last_polled_at, disabled_reason
FROM feeds
WHERE last_status IN ('error', 'disabled') OR consecutive_failures > 0
ORDER BY consecutive_failures DESC, name;
CREATE TABLE IF NOT EXISTS _state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL          -- JSON
);
"""


@MIGRATIONS(name="0003_views_state")
def add_views_and_state(db: Database) -> None:
    """Views for people reading the database, and a key/value table for small state."""
    _run(db, _VIEWS)


@MIGRATIONS(name="0004_alert_retry")
def add_alert_retry_from(db: Database) -> None:
    """When an alert's give-up deadline counts from: a digest's send time, a manual retry."""
    if "retry_from" not in db["_alert_meta"].columns_dict:
        db.execute("ALTER TABLE _alert_meta ADD COLUMN retry_from TEXT")


_ARCHIVE_VIEWS = """
CREATE VIEW IF NOT EXISTS rule_activity AS
WITH m AS (
    SELECT rule_id, count(*) AS matches, count(DISTINCT item_id) AS items,
           sum(matched_at >= strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-7 days')) AS matches_7d,
           max(matched_at) AS last_matched_at
    FROM matches GROUP BY rule_id
), a AS (
    SELECT rule_id, count(*) AS alerts, sum(status = 'sent') AS sent,
           sum(status = 'pending') AS pending, sum(status = 'failed') AS failed,
           sum(status = 'suppressed') AS suppressed, max(created_at) AS last_alert_at
    FROM alerts GROUP BY rule_id
), r AS (SELECT rule_id FROM m UNION SELECT rule_id FROM a)
SELECT r.rule_id, coalesce(m.matches, 0) AS matches, coalesce(m.items, 0) AS items,
       coalesce(m.matches_7d, 0) AS matches_7d, m.last_matched_at,
       coalesce(a.alerts, 0) AS alerts, coalesce(a.sent, 0) AS sent,
       coalesce(a.pending, 0) AS pending, coalesce(a.failed, 0) AS failed,
       coalesce(a.suppressed, 0) AS suppressed, a.last_alert_at
FROM r LEFT JOIN m ON m.rule_id = r.rule_id LEFT JOIN a ON a.rule_id = r.rule_id
ORDER BY m.last_matched_at DESC, r.rule_id;
CREATE VIEW IF NOT EXISTS recent_matches AS
SELECT matches.id, matches.matched_at, matches.rule_id, matches.terms, matches.item_id,
       items.title, items.link, feeds.name AS feed,
       coalesce(items.published_at, items.first_seen_at) AS published_at
FROM matches
JOIN items ON items.id = matches.item_id
JOIN feeds ON feeds.id = items.feed_id
ORDER BY matches.matched_at DESC, matches.id DESC;
"""


@MIGRATIONS(name="0005_archive_views")
def add_archive_views(db: Database) -> None:
    """Views for the common questions: what each rule did, and the latest matches."""
    _run(db, _ARCHIVE_VIEWS)


_ALERT_INDEXES = """
CREATE INDEX IF NOT EXISTS alerts_channel ON alerts(channel, created_at);
CREATE INDEX IF NOT EXISTS alerts_reason ON alerts(status, reason);
"""


@MIGRATIONS(name="0006_alert_indexes")
def add_alert_indexes(db: Database) -> None:
    """Indexes for what each new alert looks up: a channel's recent alerts (``max_alerts``)
    and the alerts held back for a later summary; without them both scan every alert."""
    _run(db, _ALERT_INDEXES)


@MIGRATIONS(name="0007_pending_alerts_by_rule")
def add_pending_alerts_index(db: Database) -> None:
    """An index for a digest's look-up of a rule's pending alerts: without it that look-up
    reads every pending alert, thousands while a channel is down for a day."""
    db.execute("CREATE INDEX IF NOT EXISTS alerts_pending ON alerts(status, rule_id)")


@MIGRATIONS(name="0008_interval_source")
def add_interval_source(db: Database) -> None:
    """``feeds.interval_source``: 'default' when a feed follows ``defaults.interval``, 'feed'
    when its interval was set for it. Feeds added from the command line before keep the
    interval they were given ('feed'); config feeds are set right by the next config sync.
    A stored interval under the 1-minute minimum becomes 1 minute."""
    if "interval_source" not in db["feeds"].columns_dict:
        db.execute("ALTER TABLE feeds ADD COLUMN interval_source TEXT NOT NULL DEFAULT 'feed'")
    db.execute("UPDATE feeds SET interval_s = 60 WHERE interval_s < 60")


_STATE_TABLES = """
CREATE TABLE IF NOT EXISTS _instance (
    id INTEGER PRIMARY KEY CHECK (id = 1),  -- one row
    instance_id TEXT NOT NULL,   -- random, made once: stable Message-IDs and alert ids
    heartbeat_at TEXT,           -- the running daemon's last heartbeat
    heartbeat_pid INTEGER
);
CREATE TABLE IF NOT EXISTS _mutes (
    kind TEXT NOT NULL CHECK (kind IN ('rule', 'feed')),
    name TEXT NOT NULL,          -- the rule id or the feed name
    until TEXT NOT NULL,
    PRIMARY KEY (kind, name)
);
CREATE TABLE IF NOT EXISTS _volume_arming (
    rule_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    fired TEXT,                  -- the rule's last firing on the channel
    checked TEXT,                -- re-arming was looked at up to here since then
    armed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (rule_id, channel)
);
CREATE TABLE IF NOT EXISTS _held_back (
    alert_id INTEGER PRIMARY KEY REFERENCES alerts(id) ON DELETE CASCADE,
    channel TEXT NOT NULL,
    summarised_in INTEGER        -- the alert that carried it as a summary; NULL: none yet
);
CREATE INDEX IF NOT EXISTS _held_back_open ON _held_back(channel, alert_id)
WHERE summarised_in IS NULL;
CREATE INDEX IF NOT EXISTS _held_back_summary ON _held_back(summarised_in);
CREATE TABLE IF NOT EXISTS _feed_health (
    feed_id INTEGER PRIMARY KEY REFERENCES feeds(id) ON DELETE CASCADE,
    retry_until TEXT,            -- a server's Retry-After: no poll before this
    quiet_reported_for TEXT      -- the newest-item time a "gone quiet" alert was raised for
);
CREATE TABLE IF NOT EXISTS _health_alerts (
    alert_id INTEGER PRIMARY KEY REFERENCES alerts(id) ON DELETE CASCADE,
    feed TEXT NOT NULL,
    kind TEXT NOT NULL,          -- failing | recovered | quiet
    detail TEXT NOT NULL DEFAULT '',
    url TEXT NOT NULL DEFAULT ''
);
INSERT OR IGNORE INTO _held_back (alert_id, channel, summarised_in)
SELECT id, channel, NULL FROM alerts
WHERE status = 'suppressed' AND reason = 'throttled by max_alerts';
INSERT OR IGNORE INTO _held_back (alert_id, channel, summarised_in)
SELECT id, channel, CAST(substr(reason, 46) AS INTEGER) FROM alerts
WHERE status = 'suppressed'
AND substr(reason, 1, 45) = 'throttled by max_alerts; summarised in alert ';
"""


@MIGRATIONS(name="0009_state_tables")
def move_state_to_tables(db: Database) -> None:
    """The key/value rows of ``_state`` become rows of tables with columns; ``_state`` goes.

    Keys carried over: ``instance_id``, ``heartbeat``, ``mutes``,
    ``threshold_arming:<rule>:<channel>``, ``retry_after:<feed id>``, ``quiet:<feed id>``,
    ``health_alert:<alert id>``. A row about a feed or an alert that no longer exists is
    dropped, as is a value that is not what its key holds. The alerts that ``max_alerts``
    held back are found by their reason (``throttled by max_alerts``, ``...; summarised in
    alert N``), which they keep.
    """
    _run(db, _STATE_TABLES)
    state: dict[str, Any] = {}
    if "_state" in db.table_names():
        state = {r["key"]: _json(r["value"]) for r in db.query("SELECT key, value FROM _state")}
    _carry_instance(db, state)
    for key, value in state.items():
        kind, _, rest = key.partition(":")
        carry = _CARRY.get(kind)
        if carry is not None and rest:
            carry(db, rest, value)
    _carry_mutes(db, state.get("mutes"))
    db.execute("DROP TABLE IF EXISTS _state")


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _carry_instance(db: Database, state: dict[str, Any]) -> None:
    heartbeat = state.get("heartbeat")
    at = pid = None
    if isinstance(heartbeat, dict):
        at = _text(heartbeat.get("at"))
        pid = heartbeat.get("pid") if isinstance(heartbeat.get("pid"), int) else None
    db.execute(
        "INSERT OR IGNORE INTO _instance (id, instance_id, heartbeat_at, heartbeat_pid)"
        " VALUES (1, ?, ?, ?)",
        [_text(state.get("instance_id")) or uuid.uuid4().hex, at, pid],
    )


def _carry_mutes(db: Database, mutes: Any) -> None:
    if not isinstance(mutes, dict):
        return
    for key, until in mutes.items():
        kind, _, name = str(key).partition(":")
        if kind in ("rule", "feed") and name and _text(until):
            db.execute(
                "INSERT OR REPLACE INTO _mutes (kind, name, until) VALUES (?, ?, ?)",
                [kind, name, until],
            )


def _carry_arming(db: Database, rest: str, value: Any) -> None:
    """``<rule id>:<channel>``: both may hold a colon, so the split that names a volume
    alert is taken, else the last colon. A lost row only makes the next look read further
    back, never changes what fires."""
    if not isinstance(value, dict):
        return
    splits = [(rest[:i], rest[i + 1 :]) for i, c in enumerate(rest) if c == ":"]
    if not splits:
        return
    rule_id, channel = next(
        (
            (r, c)
            for r, c in splits
            if db.execute(
                "SELECT 1 FROM _alert_meta WHERE kind = 'threshold' AND rule_id = ?"
                " AND channel = ? LIMIT 1",
                [r, c],
            ).fetchone()
        ),
        splits[-1],
    )
    db.execute(
        "INSERT OR REPLACE INTO _volume_arming (rule_id, channel, fired, checked, armed)"
        " VALUES (?, ?, ?, ?, ?)",
        [
            rule_id,
            channel,
            _text(value.get("fired")),
            _text(value.get("checked")),
            value.get("armed") is True,
        ],
    )


def _carry_feed_health(column: str) -> Any:
    def carry(db: Database, rest: str, value: Any) -> None:
        if not rest.isdigit() or _text(value) is None:
            return
        db.execute(
            f"INSERT INTO _feed_health (feed_id, {column}) SELECT id, ? FROM feeds WHERE id = ?"
            f" ON CONFLICT (feed_id) DO UPDATE SET {column} = excluded.{column}",
            [value, int(rest)],
        )

    return carry


def _carry_health_alert(db: Database, rest: str, value: Any) -> None:
    if not rest.isdigit() or not isinstance(value, dict):
        return
    db.execute(
        "INSERT OR REPLACE INTO _health_alerts (alert_id, feed, kind, detail, url)"
        " SELECT id, ?, ?, ?, ? FROM alerts WHERE id = ?",
        [
            str(value.get("feed") or ""),
            str(value.get("kind") or "failing"),
            str(value.get("detail") or ""),
            str(value.get("url") or ""),
            int(rest),
        ],
    )


_CARRY = {
    "threshold_arming": _carry_arming,
    "retry_after": _carry_feed_health("retry_until"),
    "quiet": _carry_feed_health("quiet_reported_for"),
    "health_alert": _carry_health_alert,
}


_WEBSUB = """
CREATE TABLE IF NOT EXISTS _websub (
    id INTEGER PRIMARY KEY,
    feed_id INTEGER UNIQUE REFERENCES feeds(id) ON DELETE SET NULL,  -- NULL: feed deleted
    hub TEXT,                    -- the hub the feed names now (NULL: none any more)
    topic TEXT,                  -- its self URL, else the feed's URL
    found_at TEXT,               -- when hub or topic last changed
    state TEXT NOT NULL DEFAULT 'unsubscribed',  -- unsubscribed | subscribed | denied
    pending TEXT,                -- subscribe | unsubscribe: asked, the hub's check awaited
    sub_hub TEXT,                -- the hub and topic asked or held
    sub_topic TEXT,
    token TEXT UNIQUE,           -- the callback URL's last segment (a capability)
    secret TEXT,                 -- the HMAC key of the hub's signatures
    lease_until TEXT,
    requested_at TEXT,
    retry_at TEXT,               -- after a failed request: not asked again before
    failures INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    last_push_at TEXT,
    pushes INTEGER NOT NULL DEFAULT 0,    -- deliveries taken
    rejected INTEGER NOT NULL DEFAULT 0   -- deliveries whose signature failed
);
CREATE INDEX IF NOT EXISTS items_feed_first_seen ON items(feed_id, first_seen_at);
"""


@MIGRATIONS(name="0010_websub")
def add_websub(db: Database) -> None:
    """``_websub`` for WebSub subscriptions, and an index for a feed's newest items (the
    publishing rate of ``interval: auto``)."""
    _run(db, _WEBSUB)


_ITEM_ARTICLE = """
ALTER TABLE items ADD COLUMN article_text TEXT;        -- the article page's extracted text
ALTER TABLE items ADD COLUMN article_fetched_at TEXT;  -- when its fetch ended (ok or not)
ALTER TABLE items ADD COLUMN article_error TEXT;       -- why there is no article text
ALTER TABLE items ADD COLUMN language TEXT;            -- lowercase BCP 47, item's or feed's
"""


@MIGRATIONS(name="0011_item_article")
def add_item_article(db: Database) -> None:
    """The article text that ``full_text`` fetches for an item, with when and why not, and
    the item's declared language; existing items have none of them."""
    _run(db, _ITEM_ARTICLE)


_MATCH_EVIDENCE = """
CREATE TABLE IF NOT EXISTS _match_evidence (
    match_id INTEGER PRIMARY KEY REFERENCES matches(id) ON DELETE CASCADE,
    fields TEXT NOT NULL DEFAULT '[]',    -- JSON: the fields the match's words were found in
    snippets TEXT NOT NULL DEFAULT '[]'   -- JSON: up to three snippets, matched words **bold**
);
CREATE INDEX IF NOT EXISTS _alert_meta_story ON _alert_meta(story_id) WHERE story_id IS NOT NULL;
"""


@MIGRATIONS(name="0012_match_evidence")
def add_match_evidence(db: Database) -> None:
    """What each match shows in its alerts, stored when it is recorded: delivery no longer
    runs the matcher again. Matches recorded before have none; their alerts show no snippet.
    The index finds the live alerts of the stories a poll touches (and a merge's moves)."""
    _run(db, _MATCH_EVIDENCE)


# items_fts holds a normalised copy of each field: its tokens (SPEC §4) joined by spaces.
# The ascii tokenizer splits that copy exactly into them: it breaks only at ASCII
# characters other than letters and digits, and every token is a run of letters, marks and
# digits already case-folded. Triggers put the id of every item written or deleted in
# _fts_queue, in the writer's transaction; the indexer (store/fts_queue.py) fills items_fts
# from it in batches of its own. ``gen`` grows with each change, so that an indexer that
# read an item before a newer change leaves its id queued.
_SEARCH_TOKENS = """
DROP TRIGGER IF EXISTS items_fts_ai;
DROP TRIGGER IF EXISTS items_fts_ad;
DROP TRIGGER IF EXISTS items_fts_au;
DROP TABLE IF EXISTS items_fts;
CREATE VIRTUAL TABLE items_fts USING fts5(
    title, summary_text, content_text, article_text,
    tokenize='ascii'
);
CREATE TABLE IF NOT EXISTS _fts_queue (
    item_id INTEGER PRIMARY KEY,  -- an item written or deleted since items_fts last read it
    gen INTEGER NOT NULL DEFAULT 0
);
CREATE TRIGGER _fts_queue_ai AFTER INSERT ON items BEGIN
    INSERT INTO _fts_queue (item_id) VALUES (new.id)
    ON CONFLICT (item_id) DO UPDATE SET gen = gen + 1;
END;
CREATE TRIGGER _fts_queue_ad AFTER DELETE ON items BEGIN
    INSERT INTO _fts_queue (item_id) VALUES (old.id)
    ON CONFLICT (item_id) DO UPDATE SET gen = gen + 1;
END;
CREATE TRIGGER _fts_queue_au
AFTER UPDATE OF title, summary_text, content_text, article_text ON items BEGIN
    INSERT INTO _fts_queue (item_id) VALUES (new.id)
    ON CONFLICT (item_id) DO UPDATE SET gen = gen + 1;
END;
INSERT INTO _fts_queue (item_id) SELECT id FROM items WHERE true
ON CONFLICT (item_id) DO UPDATE SET gen = gen + 1;
"""


@MIGRATIONS(name="0013_search_tokens")
def add_search_tokens(db: Database) -> None:
    """items_fts anew, over the normalised tokens of four fields, and the queue that fills
    it; every existing item is queued, and the store indexes them when it opens
    (``Store.rebuild_index``), in batches that a crash does not undo."""
    _run(db, _SEARCH_TOKENS)


def _run(db: Database, script: str) -> None:
    """Run each statement of ``script`` inside the current transaction."""
    for statement in _statements(script):
        db.execute(statement)


def _statements(script: str) -> Iterator[str]:
    """Split a script into complete statements (trigger bodies stay whole)."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--") and not buffer.strip():
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer.strip()
            buffer = ""
    if buffer.strip():
        raise ValueError(f"incomplete SQL statement: {buffer.strip()[:60]}")
