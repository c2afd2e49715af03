"""The SQLite store: the only code that runs SQL; it may import the kernel only.

``Store`` owns one connection (WAL, busy timeout, foreign keys on), applies the migrations
of :mod:`watcher.store.schema` when it opens, and groups writes with ``transaction()`` (one
``BEGIN IMMEDIATE`` transaction; nested calls become savepoints). The SQL lives in one
module per table family, as functions that take the store first:

    feeds.py     feeds, _feed_config: add, sync with the config, enable, look up, poll requests
    matches.py   matches, _match_evidence: what an alert shows of its matches
    outbox.py    alerts, _alert_meta, _held_back: queue, deliver, what the alert policy reads
    state.py     _instance, _mutes, _volume_arming, _feed_health, _health_alerts
    fts.py       items_fts: full-text search
    fts_queue.py _fts_queue: filling items_fts off the poll's transaction
    history.py   the archive read for backtests and volume rules
    snapshot.py  what one poll of a feed can touch, read in few queries (watcher.intent)
    apply.py     what one poll decided, written in one transaction
    prune.py     retention, in small batches
    stats.py     counts and sizes for ``status``; names.py: stored rule and feed names
    backup.py    an online copy of the file

Every public function and method turns a ``sqlite3.Error`` into one ``StoreError``
(errors.py). Each write is atomic on its own; times are passed in as ``now``, the store
never reads the clock, and it decides nothing: which story an item joins, which alert rows
a match gives and the feed's next poll are watcher.decide's (a poll hands the store an
intent), and the next poll of a feed whose interval changed is handed in (``reschedule``).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlite_utils import Database

from watcher.exceptions import StoreError
from watcher.intent import FeedIntent, FeedSnapshot, SnapshotRequest, VolumeHistory
from watcher.store import schema
from watcher.store.apply import apply_intent, apply_intents
from watcher.store.errors import store_call, store_error
from watcher.store.rows import Row, item_from_row
from watcher.store.snapshot import read_snapshot, read_volume_history
from watcher.types import StoredItem

__all__ = ["Store", "StoreError"]

BUSY_TIMEOUT_S = 30.0


class WriteTurn(Protocol):
    """A flag shared between processes (``multiprocessing.Event``)."""

    def set(self) -> None: ...

    def clear(self) -> None: ...

    def is_set(self) -> bool: ...


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
        self.busy_timeout_s = busy_timeout_s
        # A writer in another process that must not starve behind a busier one sets this
        # (deliver/beside.py): see ``_begin_asking``.
        self.asking: WriteTurn | None = None
        self._depth = 0  # savepoints open inside the current transaction
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
        """Apply pending migrations under the write lock; an up-to-date database takes none.

        A migration that rebuilds the search index only queues every item; the index is
        then filled here, in batches (a progress bar on a terminal, see fts_queue.py).
        """
        pending = schema.MIGRATIONS.pending(self.db)
        if not pending:
            return
        with self.transaction():
            schema.MIGRATIONS.apply(self.db)
        if any(m.name == schema.REBUILDS_INDEX for m in pending):
            from watcher.store.fts_queue import rebuild_index

            rebuild_index(self)

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
            with self._savepoint(conn):
                yield
            return
        if self.asking is None:
            self._control("BEGIN IMMEDIATE")
        else:
            self._begin_asking(self.asking)
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

    @contextmanager
    def _savepoint(self, conn: sqlite3.Connection) -> Iterator[None]:
        """A savepoint inside the open transaction: released, or rolled back to on error.
        Named by depth (sqlite-utils' ``atomic`` draws a random name for each)."""
        self._depth += 1
        name = f"watcher_{self._depth}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
            raise
        else:
            conn.execute(f"RELEASE {name}")
        finally:
            self._depth -= 1

    def _begin_asking(self, turn: WriteTurn) -> None:
        """BEGIN IMMEDIATE with ``turn`` raised until the lock is ours, trying every
        millisecond: SQLite's own busy wait sleeps up to 100 ms between tries and, behind
        a writer that commits and begins again at once, may wait out its whole timeout
        (the other writer lets ``turn`` through between its transactions)."""
        deadline = time.monotonic() + self.busy_timeout_s
        turn.set()
        self.db.execute("PRAGMA busy_timeout = 0")
        try:
            while True:
                try:
                    self.db.conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as e:
                    if "locked" not in str(e) or time.monotonic() > deadline:
                        raise store_error(self.path, e) from e
                time.sleep(0.001)
        finally:
            turn.clear()
            self.db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")

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

    # --- one poll: snapshot, then apply (snapshot.py, apply.py) ---------------------------

    @store_call
    def snapshot(self, request: SnapshotRequest) -> FeedSnapshot:
        """What a poll of a feed can touch, read inside the poll's transaction."""
        return read_snapshot(self, request)

    @store_call
    def volume_history(self, starts: Mapping[str, datetime]) -> VolumeHistory:
        """Each volume rule's matches since its start."""
        return read_volume_history(self, starts)

    @store_call
    def apply(self, intent: FeedIntent) -> None:
        """Write what a poll decided, in one transaction."""
        apply_intent(self, intent)

    @store_call
    def apply_many(self, intents: Sequence[FeedIntent]) -> None:
        """Write many polls' intents in one transaction (the plain ones together)."""
        apply_intents(self, intents)

    # --- items -------------------------------------------------------------------------

    @store_call
    def item(self, item_id: int) -> StoredItem:
        """A stored item (``change`` is 'unchanged'); StoreError when there is none."""
        row = self.one("SELECT * FROM items WHERE id = ?", [item_id])
        if row is None:
            raise StoreError(f"no item with id {item_id}")
        return item_from_row(row, "unchanged")


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
