"""SQL of the ``feeds`` table (and ``_feed_config``, the URL a config entry writes):
adding, syncing with the config, enabling, looking feeds up, poll requests; decides nothing.

Syncing the config's feeds decides what changes for each entry; the next poll of a feed
whose interval changed is the caller's decision, handed in as ``reschedule``
(``watcher.decide.schedule.next_poll_after_interval_change``).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from watcher import envvars
from watcher.exceptions import ConfigError, StoreError
from watcher.store import Store
from watcher.store.errors import store_call
from watcher.store.rows import (
    Row,
    encode_json,
    feed_from_row,
    from_text,
    required_time,
    tags_json,
    to_text,
    to_text_or_none,
)
from watcher.store.state import retry_hold
from watcher.types import AUTO_INTERVAL, FeedConfig, FeedState, FeedStatus

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


@store_call
def sync_config_feeds(
    store: Store,
    feeds: Sequence[FeedConfig],
    now: datetime,
    default_interval_s: int | None = None,
    *,
    reschedule: Reschedule,
    default_auto: tuple[int, int] | None = None,
    remember: Path | None = None,
) -> list[FeedState]:
    """Make the config-owned feeds match the file; return every feed that is not disabled.

    New feeds are inserted with ``source='config'``; existing ones (by explicit name,
    else by URL) get the file's url, tags, interval and title. A config feed no longer
    in the file is disabled with the reason ``removed from the config file``; listing
    it again re-enables it. With ``default_interval_s``, command-line feeds that follow
    the default (``interval_source`` 'default') take it; with ``default_auto`` (the
    bounds of ``defaults.interval: auto``) they become adaptive ('auto') instead, and go
    back to 'default' once the default is a duration again. A feed whose interval
    changes gets its next poll from ``reschedule``. Only rows that differ are written.

    With ``remember`` (a file in the cache folder), a sync that would write nothing is
    skipped: the file holds the key of the entries and a fingerprint of the feeds table
    as the last sync left them (see ``_fingerprint``).
    """
    key = _config_key(feeds, default_interval_s, default_auto) if remember else ""
    with store.transaction():
        if remember is None or _remembered(remember) != f"{key} {_fingerprint(store)}":
            _sync_all(store, feeds, reschedule, default_interval_s, default_auto)
            if remember is not None:
                _remember(remember, f"{key} {_fingerprint(store)}")
    return [f for f in list_feeds(store) if f.last_status != FeedStatus.DISABLED]


def _sync_all(
    store: Store,
    feeds: Sequence[FeedConfig],
    reschedule: Reschedule,
    default_interval_s: int | None,
    default_auto: tuple[int, int] | None,
) -> None:
    known = _KnownFeeds(store.db.query(_FEEDS_WITH_CONFIG_URL))
    seen = [_sync_config_feed(store, cfg, known, reschedule) for cfg in feeds]
    store.db.execute(
        "UPDATE feeds SET last_status = 'disabled', disabled_reason = ?"
        " WHERE source = 'config' AND disabled_reason IS NULL"
        " AND id NOT IN (SELECT value FROM json_each(?))",
        [REMOVED_FROM_CONFIG, encode_json(seen)],
    )
    if default_interval_s is not None:
        _follow_default_interval(store, default_interval_s, reschedule, default_auto)


# --- skipping a sync that would change nothing ----------------------------------------------
# A sync is a function of the config's entries (and the default interval) and of what it
# reads of the feeds table. After a sync, the key of the entries and a fingerprint of those
# columns are written to a file; a later sync that finds the same key and fingerprint would
# write nothing, and is skipped. Any change to those columns since (`feeds add`, `feeds
# enable`, a feed gone for good, a redirect, a changed interval) changes the fingerprint.

_FINGERPRINT = """
SELECT count(*), group_concat(
    feeds.id || char(31) || feeds.url || char(31) || feeds.name || char(31)
    || coalesce(feeds.tags, '') || char(31) || feeds.source || char(31)
    || feeds.interval_source || char(31)
    || CASE WHEN feeds.interval_source = 'auto' THEN '' ELSE feeds.interval_s END || char(31)
    || coalesce(feeds.title, '') || char(31) || (coalesce(feeds.last_status, '') = 'disabled')
    || char(31) || coalesce(feeds.disabled_reason, '') || char(31)
    || coalesce(_feed_config.url, ''),
    char(30)
)
FROM (SELECT * FROM feeds ORDER BY id) AS feeds
LEFT JOIN _feed_config ON _feed_config.feed_id = feeds.id
"""


def _fingerprint(store: Store) -> str:
    """A digest of every feeds column a sync reads or writes (an adaptive interval aside:
    a sync only keeps it within bounds the key holds)."""
    row = store.db.execute(_FINGERPRINT).fetchone()
    return hashlib.sha256(repr(tuple(row)).encode()).hexdigest()


def _config_key(
    feeds: Sequence[FeedConfig], default_interval_s: int | None, auto: tuple[int, int] | None
) -> str:
    text = repr((tuple(feeds), default_interval_s, auto))
    return hashlib.sha256(text.encode()).hexdigest()


def _remembered(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, ValueError):
        return None


def _remember(path: Path, value: str) -> None:
    """Write the key and fingerprint; a folder that cannot be written keeps syncing."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(value + "\n", encoding="ascii")
        os.replace(tmp, path)
    except OSError:
        with suppress(OSError):
            tmp.unlink(missing_ok=True)


@store_call
def unsynced_config_feeds(store: Store, feeds: Sequence[FeedConfig]) -> list[FeedConfig]:
    """The enabled config entries not in the database yet (read-only: the next command
    that writes adds them)."""
    known = _KnownFeeds(store.db.query(_FEEDS_WITH_CONFIG_URL))
    return [cfg for cfg in feeds if cfg.enabled and known.find(cfg) is None]


def _follow_default_interval(
    store: Store, interval_s: int, reschedule: Reschedule, auto: tuple[int, int] | None
) -> None:
    """Give ``interval_s`` to the command-line feeds that follow ``defaults.interval``;
    with ``auto`` (its bounds) make them adaptive, their interval kept within."""
    if auto is not None:
        _follow_auto_default(store, auto, reschedule)
        return
    store.db.execute(
        "UPDATE feeds SET interval_source = 'default' WHERE source = 'cli' AND interval_source = ?",
        [AUTO_INTERVAL],
    )
    rows = store.db.query(
        "SELECT * FROM feeds WHERE source = 'cli' AND interval_source = 'default'"
        " AND interval_s != ?",
        [interval_s],
    )
    for row in list(rows):
        _set_interval(store, row, interval_s, reschedule)


def _follow_auto_default(store: Store, bounds: tuple[int, int], reschedule: Reschedule) -> None:
    """Make the command-line feeds that follow the default adaptive, within ``bounds``."""
    rows = store.db.query(
        "SELECT * FROM feeds WHERE source = 'cli' AND interval_source IN (?, ?)",
        ["default", AUTO_INTERVAL],
    )
    for row in list(rows):
        if row["interval_source"] != AUTO_INTERVAL:
            store.db.execute(
                "UPDATE feeds SET interval_source = ? WHERE id = ?", [AUTO_INTERVAL, row["id"]]
            )
        bounded = min(max(row["interval_s"], bounds[0]), bounds[1])
        if bounded != row["interval_s"]:
            _set_interval(store, row, bounded, reschedule)


def _set_interval(store: Store, row: Row, interval_s: int, reschedule: Reschedule) -> None:
    """Store a feed's new interval and move its next poll as the new interval allows."""
    next_poll_at = reschedule(
        next_poll_at=from_text(row["next_poll_at"]),
        last_polled_at=from_text(row["last_polled_at"]),
        failures=row["consecutive_failures"],
        old_interval_s=row["interval_s"],
        new_interval_s=interval_s,
        hold_until=retry_hold(store, row["id"]),
    )
    store.db.execute(
        "UPDATE feeds SET interval_s = ?, next_poll_at = ? WHERE id = ?",
        [interval_s, to_text_or_none(next_poll_at), row["id"]],
    )


def _sync_config_feed(
    store: Store, cfg: FeedConfig, known: _KnownFeeds, reschedule: Reschedule
) -> int:
    row = known.find(cfg)
    if row is None:
        feed_id = _insert_feed(
            store,
            cfg.url,
            cfg.name,
            cfg.title,
            cfg.tags,
            cfg.interval_s,
            "config",
            cfg.interval_source,
        )
        _set_config_url(store, feed_id, cfg.url)
        known.add(store.one(_FEEDS_WITH_CONFIG_URL_BY_ID, [feed_id]))
    else:
        feed_id = row["id"]
        _update_config_feed(store, row, cfg, known, reschedule)
    _set_config_enabled(store, row, feed_id, cfg.enabled)
    return feed_id


def _update_config_feed(
    store: Store, row: Row, cfg: FeedConfig, known: _KnownFeeds, reschedule: Reschedule
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
        store.db.execute(f"UPDATE feeds SET {sets} WHERE id = :id", {**wanted, "id": row["id"]})
    interval_s = cfg.interval_s
    if cfg.interval_source == AUTO_INTERVAL == row["interval_source"]:
        # adaptive already: keep what it learnt, within the (maybe new) bounds
        interval_s = min(max(row["interval_s"], cfg.min_interval_s), cfg.max_interval_s)
    if row["interval_s"] != interval_s:
        _set_interval(store, row, interval_s, reschedule)
    if row["config_url"] != cfg.url:
        _set_config_url(store, row["id"], cfg.url)


def _set_config_url(store: Store, feed_id: int, url: str) -> None:
    store.db.execute(
        "INSERT INTO _feed_config (feed_id, url) VALUES (?, ?)"
        " ON CONFLICT (feed_id) DO UPDATE SET url = excluded.url",
        [feed_id, url],
    )


def _set_config_enabled(store: Store, row: Row | None, feed_id: int, enabled: bool) -> None:
    """Apply ``enabled:`` from the file, never overriding another reason to disable."""
    reason = None if row is None else row["disabled_reason"]
    if reason is not None and reason not in CONFIG_REASONS:
        return
    if enabled and reason is not None:
        store.db.execute(
            "UPDATE feeds SET last_status = NULL, disabled_reason = NULL WHERE id = ?",
            [feed_id],
        )
    elif not enabled and reason != DISABLED_IN_CONFIG:
        disable_feed(store, feed_id, DISABLED_IN_CONFIG)


@store_call
def add_feed(
    store: Store,
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
    with store.transaction():
        existing = store.one("SELECT * FROM feeds WHERE url = ? ORDER BY id LIMIT 1", [url])
        if existing is not None:
            return _readd_feed(store, existing, url, interval_s, interval_source)
        if name is not None and feed_by_name(store, name) is not None:
            raise StoreError(f"a feed named {name!r} already exists")
        feed_id = _insert_feed(store, url, name, title, tags, interval_s, source, interval_source)
        return get_feed(store, feed_id)


def _readd_feed(
    store: Store, row: Row, url: str, interval_s: int, interval_source: str
) -> FeedState:
    if row["disabled_reason"] != REMOVED_BY_HAND:
        raise StoreError(f"{url} is already watched as feed {row['name']!r}")
    store.db.execute(
        "UPDATE feeds SET last_status = NULL, disabled_reason = NULL, source = 'cli',"
        " interval_s = ?, interval_source = ? WHERE id = ?",
        [interval_s, interval_source, row["id"]],
    )
    return get_feed(store, row["id"])


def _insert_feed(
    store: Store,
    url: str,
    name: str | None,
    title: str | None,
    tags: Sequence[str],
    interval_s: int,
    source: str,
    interval_source: str = "feed",
) -> int:
    cursor = store.db.execute(
        "INSERT INTO feeds (url, name, title, tags, source, interval_s, interval_source)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            url,
            name or _free_name(store, slug_for_url(url)),
            title,
            tags_json(tags),
            source,
            interval_s,
            interval_source,
        ],
    )
    return int(cursor.lastrowid or 0)


def _free_name(store: Store, base: str) -> str:
    """``base``, else ``base-2``, ``base-3`` … whichever is not taken yet."""
    rows = store.db.query(
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
def remove_feed(store: Store, name: str) -> None:
    """Remove a feed added from the command line; a feed with items is kept, disabled.

    Raises StoreError for an unknown name or a feed the config file owns.
    """
    feed = feed_by_name(store, name)
    if feed is None:
        raise StoreError(f"no feed named {name!r}")
    if feed.source == "config":
        raise StoreError(f"feed {name!r} is listed in the config file; remove it there")
    with store.transaction():
        if store.scalar("SELECT 1 FROM items WHERE feed_id = ? LIMIT 1", [feed.id]):
            disable_feed(store, feed.id, REMOVED_BY_HAND)
        else:
            store.db.execute("DELETE FROM feeds WHERE id = ?", [feed.id])


@store_call
def disable_feed(store: Store, feed_id: int, reason: str) -> None:
    """Stop polling a feed (``last_status`` 'disabled') and say why."""
    store.db.execute(
        "UPDATE feeds SET last_status = 'disabled', disabled_reason = ? WHERE id = ?",
        [reason, feed_id],
    )


@store_call
def enable_feed(store: Store, feed_id: int) -> None:
    """Poll a disabled feed again, at once, with a clean failure count."""
    store.db.execute(
        "UPDATE feeds SET last_status = NULL, disabled_reason = NULL, next_poll_at = NULL,"
        " consecutive_failures = 0 WHERE id = ?",
        [feed_id],
    )


@store_call
def get_feed(store: Store, feed_id: int) -> FeedState:
    row = store.one("SELECT * FROM feeds WHERE id = ?", [feed_id])
    if row is None:
        raise StoreError(f"no feed with id {feed_id}")
    return feed_from_row(row)


@store_call
def feed_by_name(store: Store, name: str) -> FeedState | None:
    row = store.one("SELECT * FROM feeds WHERE name = ?", [name])
    return None if row is None else feed_from_row(row)


@store_call
def list_feeds(store: Store) -> list[FeedState]:
    """Every feed, disabled ones included, by name."""
    return [feed_from_row(r) for r in store.db.query("SELECT * FROM feeds ORDER BY name")]


@store_call
def due_feeds(store: Store, now: datetime) -> list[FeedState]:
    """Feeds not disabled whose ``next_poll_at`` is unset or not after ``now``."""
    rows = store.db.query(
        "SELECT * FROM feeds WHERE coalesce(last_status, '') != 'disabled'"
        " AND (next_poll_at IS NULL OR next_poll_at <= ?)"
        " ORDER BY next_poll_at IS NOT NULL, next_poll_at, id",
        [to_text(now)],
    )
    return [feed_from_row(r) for r in rows]


@dataclass(frozen=True)
class PollRequest:
    """A feed the daemon was asked to poll; ``held_until`` when a Retry-After delays it."""

    feed: str
    held_until: datetime | None = None


@store_call
def request_polls(store: Store, names: Sequence[str], now: datetime) -> list[PollRequest]:
    """Make the named feeds due at ``now`` (or when their Retry-After ends); the running
    daemon's watch job sees the earlier ``next_poll_at`` and polls them. ConfigError for
    a feed that does not exist or is disabled; nothing is changed then."""
    feeds = []
    for name in dict.fromkeys(names):
        feed = feed_by_name(store, name)
        if feed is None:
            raise ConfigError(f"no feed named {name!r}")
        if feed.last_status == FeedStatus.DISABLED:
            raise ConfigError(
                f"feed {name} is disabled ({feed.disabled_reason}); "
                f"`watcher feeds enable {name}` polls it again"
            )
        feeds.append(feed)
    requests = []
    with store.transaction():
        for feed in feeds:
            hold = retry_hold(store, feed.id)
            held = hold if hold is not None and hold > now else None
            store.db.execute(
                "UPDATE feeds SET next_poll_at = ? WHERE id = ?", [to_text(held or now), feed.id]
            )
            requests.append(PollRequest(feed.name, held))
    return requests


@store_call
def last_new_item_times(store: Store) -> dict[int, datetime]:
    """feed id -> when its newest item was first seen (feeds without items are absent)."""
    rows = store.db.query("SELECT feed_id, max(first_seen_at) AS at FROM items GROUP BY feed_id")
    found = {int(r["feed_id"]): from_text(r["at"]) for r in rows}
    return {k: v for k, v in found.items() if v is not None}


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


@store_call
def recent_item_times(
    store: Store, feed_id: int, limit: int
) -> list[tuple[datetime | None, datetime]]:
    """(published_at, first_seen_at) of the feed's ``limit`` newest items, newest first:
    newest by when watcher first saw them, then by when they say they were published."""
    rows = store.db.execute(
        "SELECT published_at, first_seen_at FROM items WHERE feed_id = ?"
        " ORDER BY first_seen_at DESC, coalesce(published_at, first_seen_at) DESC LIMIT ?",
        [feed_id, limit],
    )
    return [(from_text(published), required_time(seen)) for published, seen in rows]


@store_call
def set_pace(store: Store, feed_id: int, interval_s: int, next_poll_at: datetime) -> None:
    """Store a feed's interval (an adaptive one) and when it is polled next."""
    store.db.execute(
        "UPDATE feeds SET interval_s = ?, next_poll_at = ? WHERE id = ?",
        [interval_s, to_text(next_poll_at), feed_id],
    )


@store_call
def move_polls_earlier(store: Store, moves: dict[int, datetime]) -> None:
    """Feed id -> an earlier ``next_poll_at`` (decide/schedule.py ``spread_bunched``); a
    feed whose ``next_poll_at`` meanwhile became earlier still (a ``poll --feed``) keeps it."""
    with store.transaction():
        store.db.conn.executemany(
            "UPDATE feeds SET next_poll_at = ?1 WHERE id = ?2 AND next_poll_at > ?1",
            [(to_text(at), feed_id) for feed_id, at in moves.items()],
        )
