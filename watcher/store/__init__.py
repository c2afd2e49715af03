"""The SQLite store: the only code that runs SQL; it may import the kernel only.

One ``Store`` wraps one connection (WAL, busy timeout, foreign keys on) and applies the
migrations of :mod:`watcher.store.schema` when it opens. Every write method is atomic on
its own; ``transaction()`` groups several into one ``BEGIN IMMEDIATE`` transaction (nested
calls become savepoints). Times are passed in as ``now``; the store never reads the clock.
The sibling modules hold the SQL of one concern each (batch, outbox, history, fts, ...).

It decides nothing about rules or delivery, but it still decides two things that belong
in ``watcher.decide``: which story an item joins (here and in batch.py) and what syncing
the config's feeds changes. The next poll of a feed whose interval changed is a decision
the caller hands in (``reschedule``).
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from sqlite_utils import Database

from watcher import envvars
from watcher.exceptions import StoreError
from watcher.store import schema
from watcher.store.errors import store_call, store_error
from watcher.store.rows import (
    Row,
    alert_from_row,
    decode_list,
    encode_json,
    feed_from_row,
    from_text,
    item_columns,
    item_from_row,
    required_time,
    tags_json,
    terms_from_text,
    to_text,
    to_text_or_none,
)
from watcher.store.state import retry_hold
from watcher.storykeys import canonical_link, title_key
from watcher.types import (
    Alert,
    AlertStatus,
    FeedConfig,
    FeedState,
    FeedStatus,
    Match,
    ParsedItem,
    StoredItem,
)

__all__ = ["Store", "StoreError"]

BUSY_TIMEOUT_S = 30.0
STORY_TITLE_WINDOW = timedelta(hours=48)
REMOVED_FROM_CONFIG = "removed from the config file"
DISABLED_IN_CONFIG = "disabled in the config file"
REMOVED_BY_HAND = "removed with `watcher feeds remove`"
DISABLED_BY_HAND = "disabled by hand"  # `watcher feeds disable`, maybe with ": <reason>"
CONFIG_REASONS = (REMOVED_FROM_CONFIG, DISABLED_IN_CONFIG)
MAX_NAME_LENGTH = 60


class Reschedule(Protocol):
    """When a feed whose interval changed is polled next: a decision the caller hands in
    (``watcher.decide.schedule.next_poll_after_interval_change``); the store only asks."""

    def __call__(
        self,
        *,
        next_poll_at: datetime | None,
        last_polled_at: datetime | None,
        failures: int,
        old_interval_s: int,
        new_interval_s: int,
        hold_until: datetime | None = None,
    ) -> datetime | None: ...


class Store:
    """The watcher database: feeds, items, matches, alerts and polls.

    ``readonly=True`` opens an existing, up-to-date database for reading only (``mode=ro``;
    ``immutable=1`` too when nothing could write it anyway: a WAL database without its
    ``-shm`` file in a folder this user cannot write). It never creates, configures or
    migrates the file: a missing file, or one an older watcher made, is a StoreError that
    says which command sets it up.
    """

    def __init__(
        self, path: Path | str, *, busy_timeout_s: float | None = None, readonly: bool = False
    ) -> None:
        """``busy_timeout_s``: how long a write waits for another writer's lock before it
        is a StoreError (default ``BUSY_TIMEOUT_S``)."""
        if busy_timeout_s is None:
            busy_timeout_s = BUSY_TIMEOUT_S
        self.path = Path(path)
        self.readonly = readonly
        conn = self._connect_readonly(busy_timeout_s) if readonly else self._connect(busy_timeout_s)
        try:
            self.db = Database(conn)
            if readonly:
                self._check_schema()
            else:
                self._configure(busy_timeout_s)
                self._migrate()
        except BaseException as e:
            conn.close()
            if isinstance(e, sqlite3.Error):
                raise StoreError(f"cannot open the database: {self.path}: {e}") from e
            raise

    def _connect(self, busy_timeout_s: float) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            check_writable(self.path)
            return sqlite3.connect(str(self.path), timeout=busy_timeout_s)
        except (sqlite3.Error, OSError) as e:
            raise StoreError(f"cannot open the database: {self.path}: {e}") from e

    def _connect_readonly(self, busy_timeout_s: float) -> sqlite3.Connection:
        if not self.path.is_file():
            raise StoreError(
                f"no database at {self.path}: `watcher poll` (or `run`, or `init`) creates it"
            )
        uri = self.path.resolve().as_uri() + "?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout_s)
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                return conn
            except sqlite3.OperationalError:
                conn.close()
                if os.access(self.path.parent, os.W_OK):
                    raise
            # WAL needs a -shm file that this user may not create here: read the file as it is.
            return sqlite3.connect(uri + "&immutable=1", uri=True, timeout=busy_timeout_s)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open the database: {self.path}: {e}") from e

    def _check_schema(self) -> None:
        """A read-only store needs the schema this program writes; it cannot migrate."""
        if not schema.MIGRATIONS.applied(self.db):
            raise StoreError(
                f"{self.path} is not a watcher database yet: run watcher poll (or run) once"
                " to set it up"
            )
        if schema.MIGRATIONS.pending(self.db):
            raise StoreError(
                f"the database {self.path} was made by an older watcher:"
                " run watcher poll (or run) once to upgrade the database"
            )

    def _configure(self, busy_timeout_s: float) -> None:
        self.db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.enable_wal()
        # WAL with synchronous=NORMAL: a commit survives a killed process without an fsync;
        # only a power loss may drop the last commits (never corrupting the file).
        self.db.execute("PRAGMA synchronous = NORMAL")

    def _migrate(self) -> None:
        """Apply pending migrations under the write lock; an up-to-date database takes none."""
        if not schema.MIGRATIONS.pending(self.db):
            return
        with self.transaction():
            schema.MIGRATIONS.apply(self.db)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``, or ``ROLLBACK`` on error; a savepoint when nested."""
        conn = self.db.conn
        if conn.in_transaction:
            with self.db.atomic():
                yield
            return
        self._control("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.rollback()
            raise
        try:
            self._control("COMMIT")
        except BaseException:
            self.db.rollback()
            raise

    def _control(self, statement: str) -> None:
        """Run BEGIN or COMMIT; a lock held past the busy timeout becomes StoreError."""
        try:
            self.db.conn.execute(statement)
        except sqlite3.Error as e:
            raise store_error(self.path, e) from e

    # --- small helpers -----------------------------------------------------------------

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        return next(self.db.query(sql, list(params)), None)

    def _scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.db.execute(sql, list(params)).fetchone()
        return None if row is None else row[0]

    # --- feeds -------------------------------------------------------------------------

    @store_call
    def sync_config_feeds(
        self,
        feeds: Sequence[FeedConfig],
        now: datetime,
        default_interval_s: int | None = None,
        *,
        reschedule: Reschedule,
    ) -> list[FeedState]:
        """Make the config-owned feeds match the file; return every feed that is not disabled.

        New feeds are inserted with ``source='config'``; existing ones (by explicit name,
        else by URL) get the file's url, tags, interval and title. A config feed no longer
        in the file is disabled with the reason ``removed from the config file``; listing
        it again re-enables it. With ``default_interval_s``, command-line feeds that follow
        the default (``interval_source`` 'default') take it. A feed whose interval changes
        gets its next poll from ``reschedule``. Only rows that differ are written.
        """
        with self.transaction():
            known = _KnownFeeds(self.db.query(_FEEDS_WITH_CONFIG_URL))
            seen = [self._sync_config_feed(cfg, known, reschedule) for cfg in feeds]
            self.db.execute(
                "UPDATE feeds SET last_status = 'disabled', disabled_reason = ?"
                " WHERE source = 'config' AND disabled_reason IS NULL"
                " AND id NOT IN (SELECT value FROM json_each(?))",
                [REMOVED_FROM_CONFIG, encode_json(seen)],
            )
            if default_interval_s is not None:
                self._follow_default_interval(default_interval_s, reschedule)
        return [f for f in self.list_feeds() if f.last_status != FeedStatus.DISABLED]

    @store_call
    def unsynced_config_feeds(self, feeds: Sequence[FeedConfig]) -> list[FeedConfig]:
        """The enabled config entries not in the database yet (read-only: the next command
        that writes adds them)."""
        known = _KnownFeeds(self.db.query(_FEEDS_WITH_CONFIG_URL))
        return [cfg for cfg in feeds if cfg.enabled and known.find(cfg) is None]

    def _follow_default_interval(self, interval_s: int, reschedule: Reschedule) -> None:
        """Give ``interval_s`` to the command-line feeds that follow ``defaults.interval``."""
        rows = self.db.query(
            "SELECT * FROM feeds WHERE source = 'cli' AND interval_source = 'default'"
            " AND interval_s != ?",
            [interval_s],
        )
        for row in list(rows):
            self._set_interval(row, interval_s, reschedule)

    def _set_interval(self, row: Row, interval_s: int, reschedule: Reschedule) -> None:
        """Store a feed's new interval and move its next poll as the new interval allows."""
        next_poll_at = reschedule(
            next_poll_at=from_text(row["next_poll_at"]),
            last_polled_at=from_text(row["last_polled_at"]),
            failures=row["consecutive_failures"],
            old_interval_s=row["interval_s"],
            new_interval_s=interval_s,
            hold_until=retry_hold(self, row["id"]),
        )
        self.db.execute(
            "UPDATE feeds SET interval_s = ?, next_poll_at = ? WHERE id = ?",
            [interval_s, to_text_or_none(next_poll_at), row["id"]],
        )

    def _sync_config_feed(self, cfg: FeedConfig, known: _KnownFeeds, reschedule: Reschedule) -> int:
        row = known.find(cfg)
        if row is None:
            feed_id = self._insert_feed(
                cfg.url,
                cfg.name,
                cfg.title,
                cfg.tags,
                cfg.interval_s,
                "config",
                cfg.interval_source,
            )
            self._set_config_url(feed_id, cfg.url)
            known.add(self._one(_FEEDS_WITH_CONFIG_URL_BY_ID, [feed_id]))
        else:
            feed_id = row["id"]
            self._update_config_feed(row, cfg, known, reschedule)
        self._set_config_enabled(row, feed_id, cfg.enabled)
        return feed_id

    def _update_config_feed(
        self, row: Row, cfg: FeedConfig, known: _KnownFeeds, reschedule: Reschedule
    ) -> None:
        """Write the file's url, name, tags, interval and title when they differ."""
        url = row["url"] if row["config_url"] == cfg.url else cfg.url  # keep a redirect's URL
        name = row["name"]
        if cfg.name and cfg.name != name and not known.has_name(cfg.name):
            name = cfg.name
        wanted = {
            "url": url,
            "name": name,
            "tags": tags_json(cfg.tags),
            "interval_source": cfg.interval_source,
            "title": cfg.title or row["title"],
            "source": "config",
        }
        if any(row[k] != v for k, v in wanted.items()):
            sets = ", ".join(f"{k} = :{k}" for k in wanted)
            self.db.execute(f"UPDATE feeds SET {sets} WHERE id = :id", {**wanted, "id": row["id"]})
        if row["interval_s"] != cfg.interval_s:
            self._set_interval(row, cfg.interval_s, reschedule)
        if row["config_url"] != cfg.url:
            self._set_config_url(row["id"], cfg.url)

    def _set_config_url(self, feed_id: int, url: str) -> None:
        self.db.execute(
            "INSERT INTO _feed_config (feed_id, url) VALUES (?, ?)"
            " ON CONFLICT (feed_id) DO UPDATE SET url = excluded.url",
            [feed_id, url],
        )

    def _set_config_enabled(self, row: Row | None, feed_id: int, enabled: bool) -> None:
        """Apply ``enabled:`` from the file, never overriding another reason to disable."""
        reason = None if row is None else row["disabled_reason"]
        if reason is not None and reason not in CONFIG_REASONS:
            return
        if enabled and reason is not None:
            self.db.execute(
                "UPDATE feeds SET last_status = NULL, disabled_reason = NULL WHERE id = ?",
                [feed_id],
            )
        elif not enabled and reason != DISABLED_IN_CONFIG:
            self.disable_feed(feed_id, DISABLED_IN_CONFIG)

    @store_call
    def add_feed(
        self,
        url: str,
        *,
        name: str | None = None,
        title: str | None = None,
        tags: Sequence[str] = (),
        interval_s: int = 900,
        interval_source: str = "feed",
        source: str = "cli",
        now: datetime,
    ) -> FeedState:
        """Add a feed; its name is ``name`` or a slug of host and path, fixed from now on.

        ``interval_source`` 'default' makes the feed follow ``defaults.interval`` (see
        ``sync_config_feeds``); 'feed' keeps ``interval_s`` as given.

        Raises StoreError when the name or the URL is already taken by a live feed; a feed
        removed earlier with the same URL comes back, with its items.
        """
        with self.transaction():
            existing = self._one("SELECT * FROM feeds WHERE url = ? ORDER BY id LIMIT 1", [url])
            if existing is not None:
                return self._readd_feed(existing, url, interval_s, interval_source)
            if name is not None and self.feed_by_name(name) is not None:
                raise StoreError(f"a feed named {name!r} already exists")
            feed_id = self._insert_feed(url, name, title, tags, interval_s, source, interval_source)
            return self.feed(feed_id)

    def _readd_feed(self, row: Row, url: str, interval_s: int, interval_source: str) -> FeedState:
        if row["disabled_reason"] != REMOVED_BY_HAND:
            raise StoreError(f"{url} is already watched as feed {row['name']!r}")
        self.db.execute(
            "UPDATE feeds SET last_status = NULL, disabled_reason = NULL, source = 'cli',"
            " interval_s = ?, interval_source = ? WHERE id = ?",
            [interval_s, interval_source, row["id"]],
        )
        return self.feed(row["id"])

    def _insert_feed(
        self,
        url: str,
        name: str | None,
        title: str | None,
        tags: Sequence[str],
        interval_s: int,
        source: str,
        interval_source: str = "feed",
    ) -> int:
        cursor = self.db.execute(
            "INSERT INTO feeds (url, name, title, tags, source, interval_s, interval_source)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                url,
                name or self._free_name(slug_for_url(url)),
                title,
                tags_json(tags),
                source,
                interval_s,
                interval_source,
            ],
        )
        return int(cursor.lastrowid or 0)

    def _free_name(self, base: str) -> str:
        """``base``, else ``base-2``, ``base-3`` … whichever is not taken yet."""
        rows = self.db.query(
            "SELECT name FROM feeds WHERE name = ? OR (name >= ? AND name < ?)",
            [base, base + "-", base + "."],  # a range the name index answers
        )
        taken = {r["name"] for r in rows}
        candidate, n = base, 1
        while candidate in taken:
            n += 1
            candidate = f"{base}-{n}"
        return candidate

    @store_call
    def remove_feed(self, name: str) -> None:
        """Remove a feed added from the command line; a feed with items is kept, disabled.

        Raises StoreError for an unknown name or a feed the config file owns.
        """
        feed = self.feed_by_name(name)
        if feed is None:
            raise StoreError(f"no feed named {name!r}")
        if feed.source == "config":
            raise StoreError(f"feed {name!r} is listed in the config file; remove it there")
        with self.transaction():
            if self._scalar("SELECT 1 FROM items WHERE feed_id = ? LIMIT 1", [feed.id]):
                self.disable_feed(feed.id, REMOVED_BY_HAND)
            else:
                self.db.execute("DELETE FROM feeds WHERE id = ?", [feed.id])

    @store_call
    def disable_feed(self, feed_id: int, reason: str) -> None:
        """Stop polling a feed (``last_status`` 'disabled') and say why."""
        self.db.execute(
            "UPDATE feeds SET last_status = 'disabled', disabled_reason = ? WHERE id = ?",
            [reason, feed_id],
        )

    @store_call
    def enable_feed(self, feed_id: int) -> None:
        """Poll a disabled feed again, at once, with a clean failure count."""
        self.db.execute(
            "UPDATE feeds SET last_status = NULL, disabled_reason = NULL, next_poll_at = NULL,"
            " consecutive_failures = 0 WHERE id = ?",
            [feed_id],
        )

    @store_call
    def feed(self, feed_id: int) -> FeedState:
        row = self._one("SELECT * FROM feeds WHERE id = ?", [feed_id])
        if row is None:
            raise StoreError(f"no feed with id {feed_id}")
        return feed_from_row(row)

    @store_call
    def feed_by_name(self, name: str) -> FeedState | None:
        row = self._one("SELECT * FROM feeds WHERE name = ?", [name])
        return None if row is None else feed_from_row(row)

    @store_call
    def list_feeds(self) -> list[FeedState]:
        """Every feed, disabled ones included, by name."""
        return [feed_from_row(r) for r in self.db.query("SELECT * FROM feeds ORDER BY name")]

    @store_call
    def due_feeds(self, now: datetime) -> list[FeedState]:
        """Feeds not disabled whose ``next_poll_at`` is unset or not after ``now``."""
        rows = self.db.query(
            "SELECT * FROM feeds WHERE coalesce(last_status, '') != 'disabled'"
            " AND (next_poll_at IS NULL OR next_poll_at <= ?)"
            " ORDER BY next_poll_at IS NOT NULL, next_poll_at, id",
            [to_text(now)],
        )
        return [feed_from_row(r) for r in rows]

    @store_call
    def is_first_poll(self, feed_id: int) -> bool:
        """True until a poll of the feed has succeeded (status ok or not_modified)."""
        return self._scalar("SELECT last_success_at FROM feeds WHERE id = ?", [feed_id]) is None

    @store_call
    def record_poll(
        self,
        feed_id: int,
        *,
        started_at: datetime,
        duration_ms: int | None,
        http_status: int | None,
        new_items: int,
        error: str | None,
        status: FeedStatus,
        now: datetime,
        etag: str | None = None,
        last_modified: str | None = None,
        title: str | None = None,
        url: str | None = None,
        next_poll_at: datetime | None = None,
        disabled_reason: str | None = None,
    ) -> None:
        """Add a ``polls`` row and update the feed's state from the poll's outcome.

        ok/not_modified set ``last_success_at`` and reset ``consecutive_failures``; error
        adds one; disabled also sets ``disabled_reason`` (default: the error). Without
        ``next_poll_at`` the next poll is one interval after ``now``.
        """
        with self.transaction():
            self.db.execute(
                "INSERT INTO polls (feed_id, started_at, duration_ms, http_status, new_items,"
                " error) VALUES (?, ?, ?, ?, ?, ?)",
                [feed_id, to_text(started_at), duration_ms, http_status, new_items, error],
            )
            self._update_feed_after_poll(
                feed_id, status, error, now, next_poll_at, disabled_reason or error
            )
            self.db.execute(
                "UPDATE feeds SET etag = coalesce(?, etag),"
                " last_modified = coalesce(?, last_modified), title = coalesce(?, title),"
                " url = coalesce(?, url) WHERE id = ?",
                [etag, last_modified, title, url, feed_id],
            )

    def _update_feed_after_poll(
        self,
        feed_id: int,
        status: FeedStatus,
        error: str | None,
        now: datetime,
        next_poll_at: datetime | None,
        disabled_reason: str | None,
    ) -> None:
        success = status in (FeedStatus.OK, FeedStatus.NOT_MODIFIED)
        failed = status == FeedStatus.ERROR
        # A feed disabled while its poll was in flight (`watcher feeds disable`) stays so.
        self.db.execute(
            "UPDATE feeds SET last_polled_at = :now, last_error = :error,"
            " last_status = CASE WHEN last_status = 'disabled' THEN last_status ELSE :status END,"
            " last_success_at = CASE WHEN :success THEN :now ELSE last_success_at END,"
            " consecutive_failures = CASE WHEN :success THEN 0"
            "   WHEN :failed THEN consecutive_failures + 1 ELSE consecutive_failures END,"
            " disabled_reason = CASE WHEN :disabled THEN :reason ELSE disabled_reason END,"
            " next_poll_at = coalesce(:next,"
            "   strftime('%Y-%m-%dT%H:%M:%SZ', :now, '+' || interval_s || ' seconds'))"
            " WHERE id = :id",
            {
                "now": to_text(now),
                "status": str(status),
                "error": error,
                "success": success,
                "failed": failed,
                "disabled": status == FeedStatus.DISABLED,
                "reason": disabled_reason,
                "next": to_text_or_none(next_poll_at),
                "id": feed_id,
            },
        )

    @store_call
    def item_counts(self) -> dict[int, int]:
        """feed id -> number of stored items (feeds without items are absent)."""
        rows = self.db.query("SELECT feed_id, count(*) AS n FROM items GROUP BY feed_id")
        return {r["feed_id"]: r["n"] for r in rows}

    # --- items -------------------------------------------------------------------------

    @store_call
    def upsert_item(self, feed_id: int, item: ParsedItem, now: datetime) -> StoredItem:
        """Store one parsed item; ``change`` says whether it was new, updated or unchanged."""
        columns = item_columns(item)
        with self.transaction():
            row = self._one(
                "SELECT * FROM items WHERE feed_id = ? AND guid = ?", [feed_id, item.guid]
            )
            keys = _story_keys(columns, link_is_key=not item.shared_link)
            if row is None:
                return self._insert_item(feed_id, columns, keys, now)
            if row["content_hash"] == columns["content_hash"]:
                return item_from_row(row, "unchanged")
            return self._update_item(row, columns, keys)

    def _insert_item(
        self, feed_id: int, columns: dict[str, Any], keys: list[tuple[str, str]], now: datetime
    ) -> StoredItem:
        values = {**columns, "feed_id": feed_id, "first_seen_at": to_text(now)}
        names = ", ".join(values)
        marks = ", ".join(f":{k}" for k in values)
        cursor = self.db.execute(f"INSERT INTO items ({names}) VALUES ({marks})", values)
        item_id = int(cursor.lastrowid or 0)
        self._assign_story(item_id, None, keys, values["published_at"] or values["first_seen_at"])
        return self._item(item_id, "new")

    def _update_item(
        self, row: Row, columns: dict[str, Any], keys: list[tuple[str, str]]
    ) -> StoredItem:
        sets = ", ".join(f"{k} = :{k}" for k in columns if k != "guid")
        self.db.execute(f"UPDATE items SET {sets} WHERE id = :id", {**columns, "id": row["id"]})
        at = columns["published_at"] or row["first_seen_at"]
        self._assign_story(row["id"], row["story_id"], keys, at)
        return self._item(row["id"], "updated")

    def _assign_story(
        self, item_id: int, current: int | None, keys: list[tuple[str, str]], at_text: str
    ) -> None:
        """Join the item to the story its link or title key names, merging stories that meet.

        A story's id is its first item's id; when two stories meet, the lower id absorbs
        the other (its items, its keys and its live alerts).
        """
        at = required_time(at_text)
        found = {current} if current is not None else set()
        fresh: list[tuple[str, str]] = []
        for kind, key in keys:
            story = self._story_for_key(kind, key, at)
            if story is None:
                fresh.append((kind, key))
            else:
                found.add(story)
        story_id = min(found) if found else item_id
        for other in found - {story_id}:
            self._merge_story(other, into=story_id)
        for kind, key in fresh:
            self.db.execute(
                "INSERT OR REPLACE INTO _story_keys (kind, key, story_id, first_at)"
                " VALUES (?, ?, ?, ?)",
                [kind, key, story_id, at_text],
            )
        self.db.execute("UPDATE items SET story_id = ? WHERE id = ?", [story_id, item_id])

    def _story_for_key(self, kind: str, key: str, at: datetime) -> int | None:
        """The story a key belongs to; a title key only within 48 h of its first copy."""
        row = self._one(
            "SELECT story_id, first_at FROM _story_keys WHERE kind = ? AND key = ?", [kind, key]
        )
        if row is None:
            return None
        if kind == "title" and abs(at - required_time(row["first_at"])) > STORY_TITLE_WINDOW:
            return None
        return int(row["story_id"])

    def _merge_story(self, other: int, *, into: int) -> None:
        self.db.execute("UPDATE items SET story_id = ? WHERE story_id = ?", [into, other])
        self.db.execute("UPDATE _story_keys SET story_id = ? WHERE story_id = ?", [into, other])
        self.db.execute(
            "UPDATE OR IGNORE _alert_meta SET story_id = ? WHERE story_id = ? AND kind = 'match'",
            [into, other],
        )

    @store_call
    def item(self, item_id: int) -> StoredItem:
        """A stored item (``change`` is 'unchanged'); StoreError when there is none."""
        return self._item(item_id, "unchanged")

    def _item(self, item_id: int, change: str) -> StoredItem:
        row = self._one("SELECT * FROM items WHERE id = ?", [item_id])
        if row is None:
            raise StoreError(f"no item with id {item_id}")
        return item_from_row(row, change)

    # --- matches -----------------------------------------------------------------------

    @store_call
    def add_match(self, item_id: int, match: Match, now: datetime) -> int:
        """Record that a rule matched an item, with the matched terms; returns the row id."""
        cursor = self.db.execute(
            "INSERT INTO matches (item_id, rule_id, terms, matched_at) VALUES (?, ?, ?, ?)",
            [item_id, match.rule_id, encode_json(list(match.terms)), to_text(now)],
        )
        return int(cursor.lastrowid or 0)

    @store_call
    def match_terms(self, item_id: int, rule_id: str) -> tuple[str, ...]:
        """The terms of the latest match of ``rule_id`` on the item; () when it never matched."""
        text = self._scalar(
            "SELECT terms FROM matches WHERE item_id = ? AND rule_id = ? ORDER BY id DESC LIMIT 1",
            [item_id, rule_id],
        )
        return terms_from_text(text)

    # --- alerts ------------------------------------------------------------------------

    @store_call
    def live_alert(
        self, rule_id: str, channel: str, story_id: int, kind: str = "match"
    ) -> Alert | None:
        """The alert (pending, sent or failed) about this story for this rule and channel."""
        row = self._one(
            "SELECT alerts.* FROM alerts JOIN _alert_meta m ON m.alert_id = alerts.id"
            " WHERE m.rule_id = ? AND m.channel = ? AND m.story_id = ? AND m.kind = ?"
            " AND m.live = 1",
            [rule_id, channel, story_id, kind],
        )
        return None if row is None else alert_from_row(row)

    @store_call
    def add_alert(
        self,
        *,
        rule_id: str,
        channel: str,
        item_ids: Sequence[int],
        status: AlertStatus,
        now: datetime,
        reason: str | None = None,
        kind: str = "match",
        story_id: int | None = None,
        next_attempt_at: datetime | None = None,
    ) -> int:
        """Queue an alert row; StoreError when a live alert with the same key exists.

        The key is (rule, channel, story, kind) among alerts that are not suppressed; an
        alert without a story (a digest, a health alert) has no key.
        """
        with self.transaction():
            cursor = self.db.execute(
                "INSERT INTO alerts (rule_id, channel, item_ids, status, reason, created_at,"
                " next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    rule_id,
                    channel,
                    encode_json(list(item_ids)),
                    str(status),
                    reason,
                    to_text(now),
                    to_text_or_none(next_attempt_at),
                ],
            )
            alert_id = int(cursor.lastrowid or 0)
            self._add_alert_meta(alert_id, rule_id, channel, status, kind, story_id)
        return alert_id

    def _add_alert_meta(
        self,
        alert_id: int,
        rule_id: str,
        channel: str,
        status: AlertStatus,
        kind: str,
        story_id: int | None,
    ) -> None:
        live = None if status == AlertStatus.SUPPRESSED else 1
        try:
            self.db.execute(
                "INSERT INTO _alert_meta (alert_id, kind, story_id, rule_id, channel, live)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [alert_id, kind, story_id, rule_id, channel, live],
            )
        except sqlite3.IntegrityError as e:
            raise StoreError(
                f"a live {kind} alert already exists for rule {rule_id}, channel {channel},"
                f" story {story_id}"
            ) from e

    @store_call
    def add_alert_item(self, alert_id: int, item_id: int) -> None:
        """Append a later copy of the story to the alert's ``item_ids`` (once)."""
        with self.transaction():
            ids = [int(i) for i in decode_list(self._alert_row(alert_id)["item_ids"])]
            if item_id not in ids:
                self.db.execute(
                    "UPDATE alerts SET item_ids = ? WHERE id = ?",
                    [encode_json([*ids, item_id]), alert_id],
                )

    @store_call
    def alert(self, alert_id: int) -> Alert:
        return alert_from_row(self._alert_row(alert_id))

    def _alert_row(self, alert_id: int) -> Row:
        row = self._one("SELECT * FROM alerts WHERE id = ?", [alert_id])
        if row is None:
            raise StoreError(f"no alert with id {alert_id}")
        return row

    @store_call
    def alert_kind(self, alert_id: int) -> str:
        """match | digest | threshold | health | summary ('match' for an alert without metadata)."""
        kind = self._scalar("SELECT kind FROM _alert_meta WHERE alert_id = ?", [alert_id])
        return str(kind) if kind else "match"

    @store_call
    def due_alerts(self, now: datetime) -> list[Alert]:
        """Pending alerts whose next attempt is unset or not after ``now``, oldest first."""
        rows = self.db.query(
            "SELECT * FROM alerts WHERE status = 'pending'"
            " AND (next_attempt_at IS NULL OR next_attempt_at <= ?) ORDER BY created_at, id",
            [to_text(now)],
        )
        return [alert_from_row(r) for r in rows]

    @store_call
    def mark_sent(self, alert_id: int, now: datetime) -> None:
        self._mark(alert_id, AlertStatus.SENT, None, None, now, sent=True)

    @store_call
    def mark_retry(
        self, alert_id: int, error: str, next_attempt_at: datetime, now: datetime
    ) -> None:
        """A transient failure: stay pending until ``next_attempt_at``."""
        self._mark(alert_id, AlertStatus.PENDING, error, next_attempt_at, now)

    @store_call
    def mark_failed(self, alert_id: int, error: str, now: datetime) -> None:
        self._mark(alert_id, AlertStatus.FAILED, error, None, now)

    def _mark(
        self,
        alert_id: int,
        status: AlertStatus,
        error: str | None,
        next_attempt_at: datetime | None,
        now: datetime,
        *,
        sent: bool = False,
    ) -> None:
        """Record one delivery attempt: its outcome, error and when to try again."""
        with self.transaction():
            self.db.execute(
                "UPDATE alerts SET status = ?, attempts = attempts + 1,"
                " last_error = coalesce(?, last_error), next_attempt_at = ?,"
                " sent_at = CASE WHEN ? THEN ? ELSE sent_at END WHERE id = ?",
                [
                    str(status),
                    error,
                    to_text_or_none(next_attempt_at),
                    sent,
                    to_text(now),
                    alert_id,
                ],
            )
            self.db.execute(
                "UPDATE _alert_meta SET last_attempt_at = ? WHERE alert_id = ?",
                [to_text(now), alert_id],
            )

    @store_call
    def list_alerts(
        self,
        status: AlertStatus | None = None,
        rule_id: str | None = None,
        limit: int | None = None,
    ) -> list[Alert]:
        """Alerts, newest first, optionally of one status and one rule."""
        rows = self.db.query(
            "SELECT * FROM alerts WHERE (:status IS NULL OR status = :status)"
            " AND (:rule IS NULL OR rule_id = :rule) ORDER BY created_at DESC, id DESC"
            " LIMIT :limit",
            {
                "status": None if status is None else str(status),
                "rule": rule_id,
                "limit": -1 if limit is None else limit,
            },
        )
        return [alert_from_row(r) for r in rows]

    # --- retention and the instance -----------------------------------------------------

    @store_call
    def prune(self, *, items_before: datetime, polls_before: datetime) -> tuple[int, int]:
        """Delete unmatched, unalerted items first seen before ``items_before``, and polls
        started before ``polls_before``; returns (items, polls) deleted."""
        with self.transaction():
            items = self.db.execute(
                "DELETE FROM items WHERE first_seen_at < ?"
                " AND id NOT IN (SELECT item_id FROM matches)"
                " AND id NOT IN (SELECT j.value FROM alerts, json_each(alerts.item_ids) j)",
                [to_text(items_before)],
            ).rowcount
            polls = self.db.execute(
                "DELETE FROM polls WHERE started_at < ?", [to_text(polls_before)]
            ).rowcount
        return items, polls

    @store_call
    def instance_id(self) -> str:
        """A random id made once per database (for stable Message-IDs and alert ids)."""
        return str(self._scalar("SELECT instance_id FROM _instance WHERE id = 1"))


def check_writable(db_path: Path) -> None:
    """StoreError naming the path and the permission when this user cannot write the
    database file or create files beside it (its ``-wal``, ``-shm`` and lock files)."""
    folder = db_path.parent
    if db_path.exists() and not os.access(db_path, os.W_OK):
        raise StoreError(f"{db_path}: permission denied: the database file is read-only")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StoreError(
            f"{folder}: permission denied: watcher needs to write in the database's folder"
        )


def _story_keys(columns: dict[str, Any], *, link_is_key: bool = True) -> list[tuple[str, str]]:
    """The (kind, key) pairs an item is known by: its canonical link and its title key.

    ``link_is_key`` is False for a link that entries of other titles share in the item's
    feed document (``ParsedItem.shared_link``): such an item is known by its title alone.
    """
    keys: list[tuple[str, str]] = []
    link = canonical_link(columns["link"] or "") if link_is_key else ""
    if link:
        keys.append(("link", link))
    title = title_key(columns["title"] or "")
    if title:
        keys.append(("title", title))
    return keys


def slug_for_url(url: str) -> str:
    """A feed name from host and path: ``https://www.example.org/world.rss`` ->
    ``example-org-world-rss``; a local file gives its file name."""
    parts = urlsplit(url)
    if parts.netloc:
        host = (parts.hostname or "").removeprefix("www.")
        text = f"{host} {parts.path}"
    else:
        text = Path(parts.path).name
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:MAX_NAME_LENGTH].rstrip("-") or "feed"


_FEEDS_WITH_CONFIG_URL = (
    "SELECT feeds.*, c.url AS config_url FROM feeds"
    " LEFT JOIN _feed_config c ON c.feed_id = feeds.id ORDER BY feeds.id"
)
_FEEDS_WITH_CONFIG_URL_BY_ID = (
    "SELECT feeds.*, c.url AS config_url FROM feeds"
    " LEFT JOIN _feed_config c ON c.feed_id = feeds.id WHERE feeds.id = ?"
)


class _KnownFeeds:
    """The stored feeds, looked up the ways a config entry can name one."""

    def __init__(self, rows: Iterable[Row]) -> None:
        self.by_name: dict[str, Row] = {}
        self.by_config_url: dict[str, Row] = {}
        self.by_url: dict[str, Row] = {}
        for row in rows:
            self.add(row)

    def add(self, row: Row | None) -> None:
        if row is None:
            return
        self.by_name[row["name"]] = row
        if row["config_url"] is not None:
            self.by_config_url.setdefault(row["config_url"], row)
        self.by_url.setdefault(row["url"], row)

    def find(self, cfg: FeedConfig) -> Row | None:
        """By explicit name, else by the URL the file gave it, else by its current URL.

        A URL holding ``${VAR}`` is also looked for expanded: a database written before feed
        URLs were stored as templates holds it so, and the template then replaces it.
        """
        if cfg.name and cfg.name in self.by_name:
            return self.by_name[cfg.name]
        found = self.by_config_url.get(cfg.url) or self.by_url.get(cfg.url)
        if found is None and envvars.has_references(cfg.url) and not envvars.missing(cfg.url):
            expanded = envvars.expand(cfg.url)
            found = self.by_config_url.get(expanded) or self.by_url.get(expanded)
        return found

    def has_name(self, name: str) -> bool:
        return name in self.by_name
