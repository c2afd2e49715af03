"""The SQLite store: the only code that runs SQL; it may import the kernel only.

``Store`` owns one connection (WAL, busy timeout, foreign keys on), applies the migrations
of :mod:`watcher.store.schema` when it opens, and groups writes with ``transaction()`` (one
``BEGIN IMMEDIATE`` transaction; nested calls become savepoints). The SQL lives in one
module per table family, as functions that take the store first:

    feeds.py     feeds, _feed_config: add, sync with the config, enable, look up, poll requests
    polls.py     polls: a poll's row and the feed's state after it
    matches.py   matches
    outbox.py    alerts, _alert_meta, _held_back: queue, deliver, what the alert policy reads
    state.py     _instance, _mutes, _volume_arming, _feed_health, _health_alerts
    fts.py       items_fts: full-text search
    history.py   the archive read for backtests and volume rules
    batch.py     a feed's parsed items in few statements
    prune.py     retention, in small batches
    stats.py     counts and sizes for ``status``; names.py: stored rule and feed names
    backup.py    an online copy of the file

Every public function and method turns a ``sqlite3.Error`` into one ``StoreError``
(errors.py). Each write is atomic on its own; times are passed in as ``now``, the store
never reads the clock, and it decides nothing: the next poll of a feed whose interval
changed is handed in (``reschedule``). Which story an item joins is still decided here
(``Store.upsert_item``, batch.py).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from watcher.exceptions import StoreError
from watcher.store import schema
from watcher.store.errors import store_call, store_error
from watcher.store.rows import (
    Row,
    item_columns,
    item_from_row,
    required_time,
    to_text,
)
from watcher.storykeys import canonical_link, title_key
from watcher.types import ParsedItem, StoredItem

__all__ = ["Store", "StoreError"]

BUSY_TIMEOUT_S = 30.0
STORY_TITLE_WINDOW = timedelta(hours=48)


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

    # --- queries for the family modules ---------------------------------------------------

    @store_call
    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """The first row ``sql`` gives, as a mapping, or None."""
        return next(self.db.query(sql, list(params)), None)

    @store_call
    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row ``sql`` gives, or None."""
        row = self.db.execute(sql, list(params)).fetchone()
        return None if row is None else row[0]

    # --- items -------------------------------------------------------------------------

    @store_call
    def upsert_item(self, feed_id: int, item: ParsedItem, now: datetime) -> StoredItem:
        """Store one parsed item; ``change`` says whether it was new, updated or unchanged."""
        columns = item_columns(item)
        with self.transaction():
            row = self.one(
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
        row = self.one(
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
        row = self.one("SELECT * FROM items WHERE id = ?", [item_id])
        if row is None:
            raise StoreError(f"no item with id {item_id}")
        return item_from_row(row, change)


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
