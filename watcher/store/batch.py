"""Store a feed's parsed items in few statements; decides nothing about rules or alerts.

``upsert_items`` does what ``Store.upsert_item`` does for each item of a feed, in order,
but reads the feed's stored (guid, hash) pairs and the story keys it needs in one query
each, inserts new items with their story already set, and builds the returned
``StoredItem`` values from what it wrote instead of reading the rows back. Updated items
(rare) go through ``Store.upsert_item``. Story keys are decided exactly as the store does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from watcher.store import STORY_TITLE_WINDOW, Store, _story_keys
from watcher.store.errors import store_call
from watcher.store.rows import encode_json, item_columns, required_time, to_text
from watcher.types import ParsedItem, StoredItem

Key = tuple[str, str]  # (kind, key) of a story key


@store_call
def upsert_items(
    store: Store,
    feed_id: int,
    items: Sequence[ParsedItem],
    now: datetime,
    hashes: Sequence[str] | None = None,
) -> list[StoredItem]:
    """Store a feed's items; return the new and updated ones, in feed order.

    Runs inside the caller's transaction (or its own); the result is the same as
    calling ``store.upsert_item`` on each item in order, leaving out unchanged ones.
    ``hashes`` are the items' content hashes when already computed (by a worker).
    """
    digests = hashes if hashes is not None and len(hashes) == len(items) else None
    with store.transaction():
        known = _known_items(store, feed_id, [item.guid for item in items])
        writer = _NewItems(store, feed_id, now)
        changed: list[StoredItem] = []
        for position, item in enumerate(items):
            columns = item_columns(item, digests[position] if digests else None)
            digest = known.get(item.guid)
            if digest == columns["content_hash"]:
                continue
            known[item.guid] = columns["content_hash"]
            if digest is None:
                changed.append(writer.add(item, columns))
            else:
                writer.flush_keys()
                changed.append(store.upsert_item(feed_id, item, now))
        writer.flush_keys()
    return changed


def _known_items(store: Store, feed_id: int, guids: list[str]) -> dict[str, str]:
    """guid -> content hash of the feed's stored items among ``guids``."""
    rows = store.db.conn.execute(
        "SELECT guid, content_hash FROM items WHERE feed_id = ?"
        " AND guid IN (SELECT value FROM json_each(?))",
        [feed_id, encode_json(guids)],
    )
    return {guid: digest for guid, digest in rows}


@dataclass
class _NewItems:
    """Inserts new items with their story; caches the story keys it has read or written."""

    store: Store
    feed_id: int
    now: datetime
    stories: dict[Key, tuple[int, str]] = field(default_factory=dict)  # key -> (story, first_at)
    fetched: set[Key] = field(default_factory=set)
    pending_keys: list[tuple[str, str, int, str]] = field(default_factory=list)
    next_id: int = 0

    def add(self, item: ParsedItem, columns: dict[str, Any]) -> StoredItem:
        first_seen = to_text(self.now)
        at_text = columns["published_at"] or first_seen
        keys = _story_keys(columns, link_is_key=not item.shared_link)
        self._load(keys)
        item_id = self._allocate_id()
        story_id = self._story_for(item_id, keys, at_text)
        values = {**columns, "feed_id": self.feed_id, "first_seen_at": first_seen}
        values["id"], values["story_id"] = item_id, story_id
        self.store.db.conn.execute(_insert_sql(tuple(values)), values)
        return _stored(item, columns, item_id, self.feed_id, self.now, story_id)

    def _allocate_id(self) -> int:
        """The id SQLite would give the next row (the transaction holds the write lock)."""
        if not self.next_id:
            row = self.store.db.conn.execute("SELECT coalesce(max(id), 0) FROM items").fetchone()
            self.next_id = int(row[0]) + 1
        self.next_id += 1
        return self.next_id - 1

    def _load(self, keys: Iterable[Key]) -> None:
        """Read the stored story keys not seen yet, in one query."""
        wanted = [key for key in keys if key not in self.fetched]
        if not wanted:
            return
        self.fetched.update(wanted)
        rows = self.store.db.conn.execute(
            "SELECT kind, key, story_id, first_at FROM _story_keys"
            " WHERE (kind, key) IN (SELECT json_extract(value, '$[0]'),"
            " json_extract(value, '$[1]') FROM json_each(?))",
            [encode_json([list(key) for key in wanted])],
        )
        for kind, key, story_id, first_at in rows:
            self.stories[(kind, key)] = (int(story_id), first_at)

    def _story_for(self, item_id: int, keys: list[Key], at_text: str) -> int:
        """The story the item joins, merging the stories its keys name, as the store does."""
        at = required_time(at_text)
        found: set[int] = set()
        fresh: list[Key] = []
        for key in keys:
            known = self.stories.get(key)
            if known is None or (
                key[0] == "title" and abs(at - required_time(known[1])) > STORY_TITLE_WINDOW
            ):
                fresh.append(key)
            else:
                found.add(known[0])
        story_id = min(found) if found else item_id
        for other in found - {story_id}:
            self.flush_keys()
            self.store._merge_story(other, into=story_id)
        for key in fresh:
            self.stories[key] = (story_id, at_text)
            self.fetched.add(key)
            self.pending_keys.append((*key, story_id, at_text))
        return story_id

    def flush_keys(self) -> None:
        """Write the new story keys; forget the cached ones (other writes may change them)."""
        if self.pending_keys:
            self.store.db.conn.executemany(
                "INSERT OR REPLACE INTO _story_keys (kind, key, story_id, first_at)"
                " VALUES (?, ?, ?, ?)",
                self.pending_keys,
            )
            self.pending_keys.clear()
        self.fetched.clear()
        self.stories.clear()


_INSERT_SQL: dict[tuple[str, ...], str] = {}


def _insert_sql(names: tuple[str, ...]) -> str:
    sql = _INSERT_SQL.get(names)
    if sql is None:
        marks = ", ".join(f":{name}" for name in names)
        sql = _INSERT_SQL[names] = f"INSERT INTO items ({', '.join(names)}) VALUES ({marks})"
    return sql


def _stored(
    item: ParsedItem,
    columns: dict[str, Any],
    item_id: int,
    feed_id: int,
    now: datetime,
    story_id: int,
) -> StoredItem:
    """The StoredItem a read-back of the new row would give."""
    return StoredItem(
        id=item_id,
        feed_id=feed_id,
        guid=item.guid,
        title=item.title,
        link=item.link,
        summary_text=item.summary_text,
        content_text=item.content_text,
        author=item.author,
        tags=tuple(item.tags),
        published_at=None if item.published_at is None else _as_stored(item.published_at),
        first_seen_at=_as_stored(now),
        content_hash=columns["content_hash"],
        story_id=story_id,
        change="new",
    )


def _as_stored(moment: datetime) -> datetime:
    """A time as the database gives it back: UTC, whole seconds."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class NotModified:
    """One poll answered 304: what ``Store.record_poll`` would be given for it."""

    feed_id: int
    duration_ms: int
    http_status: int | None
    etag: str | None
    last_modified: str | None
    next_poll_at: datetime


@store_call
def record_not_modified(store: Store, polls: Sequence[NotModified], now: datetime) -> None:
    """Record many 304 polls at once: a ``polls`` row each and the feeds' new state.

    The same rows ``Store.record_poll(..., status=not_modified)`` writes, in three
    statements for the whole batch.
    """
    at = to_text(now)
    conn = store.db.conn
    with store.transaction():
        conn.executemany(
            "INSERT INTO polls (feed_id, started_at, duration_ms, http_status, new_items, error)"
            " VALUES (?, ?, ?, ?, 0, NULL)",
            [(p.feed_id, at, p.duration_ms, p.http_status) for p in polls],
        )
        conn.executemany(
            "UPDATE feeds SET last_polled_at = ?1, last_status = 'not_modified',"
            " last_error = NULL, last_success_at = ?1, consecutive_failures = 0,"
            " next_poll_at = ?2, etag = coalesce(?3, etag),"
            " last_modified = coalesce(?4, last_modified) WHERE id = ?5",
            [(at, to_text(p.next_poll_at), p.etag, p.last_modified, p.feed_id) for p in polls],
        )
