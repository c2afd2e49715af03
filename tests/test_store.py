"""The SQLite store on temp-file databases: schema, items, stories, feeds, polls, alerts."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlite_utils import Database

from tests.storing import add_match, live_alert_id, poll, upsert_item
from watcher.decide.schedule import next_poll_after_interval_change as moved
from watcher.exceptions import StoreError
from watcher.store import Store, schema
from watcher.store.feeds import (
    add_feed,
    disable_feed,
    due_feeds,
    enable_feed,
    feed_by_name,
    get_feed,
    list_feeds,
    remove_feed,
    slug_for_url,
    sync_config_feeds,
)
from watcher.store.fts_queue import catch_up
from watcher.store.matches import match_evidence
from watcher.store.outbox import (
    add_alert,
    alert_kind,
    due_alerts,
    get_alert,
    list_alerts,
    mark_failed,
    mark_retry,
    mark_sent,
    requeue_failed,
)
from watcher.store.state import instance_id, read_heartbeat, set_retry_hold, write_heartbeat
from watcher.store.stats import item_counts
from watcher.types import AlertStatus, FeedConfig, ParsedItem

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)

PUBLIC_COLUMNS = {
    "feeds": [
        "id", "url", "name", "title", "tags", "source", "interval_s", "etag", "last_modified",
        "last_polled_at", "last_success_at", "last_status", "last_error",
        "consecutive_failures", "next_poll_at", "disabled_reason", "interval_source",
    ],
    "items": [
        "id", "feed_id", "guid", "link", "title", "summary", "content", "summary_text",
        "content_text", "author", "tags", "published_at", "updated_at", "first_seen_at",
        "content_hash", "story_id", "article_text", "article_fetched_at", "article_error",
        "language",
    ],
    "items_fts": ["title", "summary_text", "content_text", "article_text"],
    "matches": ["id", "item_id", "rule_id", "terms", "matched_at"],
    "alerts": [
        "id", "rule_id", "channel", "item_ids", "status", "reason", "attempts", "last_error",
        "created_at", "next_attempt_at", "sent_at",
    ],
    "polls": ["id", "feed_id", "started_at", "duration_ms", "http_status", "new_items", "error"],
}  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "watcher.db")
    yield s
    s.close()


@pytest.fixture
def feed_id(store: Store) -> int:
    return add_feed(store, "https://example.org/world.rss", now=NOW).id


def item(guid: str = "g1", **fields: Any) -> ParsedItem:
    fields.setdefault("title", "North Korean troops in Kursk")
    return ParsedItem(guid=guid, **fields)


def search(store: Store, query: str) -> list[int]:
    catch_up(store)  # the index follows the items through its queue
    rows = store.db.query(
        "SELECT rowid FROM items_fts WHERE items_fts MATCH ? ORDER BY rowid", [query]
    )
    return [r["rowid"] for r in rows]


# --- schema ----------------------------------------------------------------------------


def test_public_tables_and_columns_are_exactly_the_spec(store: Store) -> None:
    for table, columns in PUBLIC_COLUMNS.items():
        assert [c.name for c in store.db[table].columns] == columns, table
    public = {
        name
        for name in store.db.table_names()
        if not name.startswith("_") and not name.startswith("items_fts_")
    }
    assert public == set(PUBLIC_COLUMNS)


def test_views_for_readers(store: Store, feed_id: int) -> None:
    stored = upsert_item(store, feed_id, item(link="https://example.org/a"), NOW)
    add_alert(
        store, rule_id="r", channel="c", item_ids=[stored.id], status=AlertStatus.PENDING, now=NOW
    )
    poll(store, feed_id, NOW, error="HTTP 500", status=500)
    recent = list(store.db.query("SELECT rule_id, title, feed FROM recent_alerts"))
    assert recent == [{"rule_id": "r", "title": stored.title, "feed": "example-org-world-rss"}]
    failing = list(store.db.query("SELECT name, consecutive_failures FROM failing_feeds"))
    assert failing == [{"name": "example-org-world-rss", "consecutive_failures": 1}]


def test_connection_settings(store: Store) -> None:
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert store.db.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000


def test_opening_creates_the_folder_and_a_bad_path_is_a_store_error(tmp_path: Path) -> None:
    with Store(tmp_path / "new" / "dir" / "watcher.db") as store:
        assert list_feeds(store) == []
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(StoreError, match="cannot open the database"):
        Store(tmp_path / "file" / "watcher.db")
    (tmp_path / "junk.db").write_bytes(b"this is not an SQLite database" * 100)
    with pytest.raises(StoreError, match="cannot open the database"):
        Store(tmp_path / "junk.db")


def test_migrations_are_recorded_and_not_rerun(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    Store(path).close()
    with Store(path) as store:
        names = [r["name"] for r in store.db.query("SELECT name FROM _migrations ORDER BY id")]
    assert names == [
        "0001_tables",
        "0002_search_stories",
        "0003_views_state",
        "0004_alert_retry",
        "0005_archive_views",
        "0006_alert_indexes",
        "0007_pending_alerts_by_rule",
        "0008_interval_source",
        "0009_state_tables",
        "0010_websub",
        "0011_item_article",
        "0012_match_evidence",
        "0013_search_tokens",
    ]


def test_times_and_lists_are_stored_as_text(store: Store, feed_id: int) -> None:
    published = datetime(2025, 2, 28, 9, 30, 15, 123456, tzinfo=UTC)
    stored = upsert_item(store, feed_id, item(tags=("war", "Kursk"), published_at=published), NOW)
    row = store.db.execute(
        "SELECT first_seen_at, published_at, tags FROM items WHERE id = ?", [stored.id]
    ).fetchone()
    assert row == ("2025-03-01T12:00:00Z", "2025-02-28T09:30:15Z", '["war","Kursk"]')
    assert stored.published_at == published.replace(microsecond=0)


# --- migrations ------------------------------------------------------------------------


def make_version_1(path: Path) -> None:
    """A database as the first release left it: public tables only, with rows."""
    db = Database(path)
    schema.MIGRATIONS.apply(db, stop_before="0002_search_stories")
    assert "items_fts" not in db.table_names()
    db.execute(
        "INSERT INTO feeds (id, url, name, source) VALUES"
        " (1, 'https://example.org/a.rss', 'example-a', 'config'),"
        " (2, 'https://example.net/b.rss', 'example-b', 'cli')"
    )
    db.execute(
        "INSERT INTO items (id, feed_id, guid, link, title, first_seen_at, content_hash,"
        " story_id) VALUES (1, 1, 'old-1', 'https://www.example.org/kursk?utm_source=rss',"
        " 'Fighting near Kursk', '2025-02-28T12:00:00Z', 'h1', 1)"
    )
    db.execute(
        "INSERT INTO alerts (rule_id, channel, item_ids, status, created_at)"
        " VALUES ('kursk', 'console', '[1]', 'sent', '2025-02-28T12:00:00Z')"
    )
    db.close()


def test_a_readonly_store_never_creates_migrates_or_writes(tmp_path: Path) -> None:
    missing = tmp_path / "none" / "w.db"
    with pytest.raises(StoreError, match=r"no database at .*w\.db: `watcher poll`"):
        Store(missing, readonly=True)
    assert not missing.parent.exists()
    old = tmp_path / "old.db"
    make_version_1(old)
    with pytest.raises(StoreError, match="run watcher poll \\(or run\\) once to upgrade"):
        Store(old, readonly=True)
    assert schema.MIGRATIONS.pending(Database(old))  # left as it was
    Store(old).close()  # a writing open upgrades it
    with Store(old, readonly=True) as store:
        assert [f.name for f in list_feeds(store)] == ["example-a", "example-b"]
        with pytest.raises(StoreError, match="readonly database"):
            disable_feed(store, 1, "by hand")
    other = tmp_path / "other.db"
    Database(other)["t"].insert({"x": 1})
    with pytest.raises(StoreError, match="not a watcher database yet"):
        Store(other, readonly=True)


def test_a_version_1_database_upgrades_in_place_keeping_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    make_version_1(path)
    with Store(path) as store:
        assert [f.name for f in list_feeds(store)] == ["example-a", "example-b"]
        assert store.item(1).title == "Fighting near Kursk"
        assert search(store, "kursk") == [1]
        assert live_alert_id(store, "kursk", "console", 1) is None  # no story recorded in v1
        assert get_alert(store, 1).status is AlertStatus.SENT
        # the old item's link now ties a new copy from another feed to its story
        copy = upsert_item(store, 2, item("new", link="http://example.org/kursk/"), NOW)
        assert copy.story_id == 1
        # the config feed is still recognised by its URL
        synced = sync_config_feeds(
            store, [FeedConfig(url="https://example.org/a.rss")], NOW, reschedule=moved
        )
        assert {f.name for f in synced} == {"example-a", "example-b"}


# --- items and search ------------------------------------------------------------------


def test_upsert_new_unchanged_updated(store: Store, feed_id: int) -> None:
    kursk = {"summary": "<p>Troops seen near Kursk.</p>", "summary_text": "Troops seen near Kursk."}
    sudzha = {"summary": "<p>Troops near Sudzha.</p>", "summary_text": "Troops near Sudzha."}
    first = upsert_item(store, feed_id, item(**kursk), NOW)
    assert first.change == "new"
    assert first.first_seen_at == NOW
    assert first.story_id == first.id
    later = NOW + timedelta(hours=1)
    again = upsert_item(store, feed_id, item(**kursk), later)
    assert again.change == "unchanged"
    assert again.id == first.id
    changed = upsert_item(store, feed_id, item(**sudzha), later)
    assert changed.change == "updated"
    assert changed.id == first.id
    assert changed.first_seen_at == NOW
    assert changed.content_hash != first.content_hash
    assert store.item(first.id).summary_text == "Troops near Sudzha."
    assert search(store, "sudzha") == [first.id]


@pytest.mark.parametrize(
    "change",
    [
        {"title": "Another title"},
        {"link": "https://example.org/other"},
        {"summary": "<p>new</p>"},
        {"content": "<p>new</p>"},
        {"author": "Someone"},
        {"tags": ("new",)},
    ],
)
def test_each_visible_field_changes_the_hash(
    store: Store, feed_id: int, change: dict[str, Any]
) -> None:
    upsert_item(store, feed_id, item(), NOW)
    assert upsert_item(store, feed_id, item(**change), NOW).change == "updated"


def test_full_text_search_follows_inserts_updates_and_deletes(store: Store, feed_id: int) -> None:
    a = upsert_item(store, feed_id, item("a", content_text="Drones over Kursk"), NOW)
    b = upsert_item(store, feed_id, item("b", title="Fiber-optic drones"), NOW)
    assert search(store, "drones") == [a.id, b.id]
    assert search(store, "title:kursk") == [a.id]
    upsert_item(store, feed_id, item("a", title="Quiet day", content_text="Nothing"), NOW)
    assert search(store, "kursk") == []
    assert search(store, "quiet") == [a.id]
    store.db.execute("DELETE FROM items WHERE id = ?", [b.id])
    assert search(store, "drones") == []
    integrity = "INSERT INTO items_fts(items_fts, rank) VALUES ('integrity-check', 1)"
    store.db.execute(integrity)  # raises when the index and the table disagree


def test_search_ignores_accents(store: Store, feed_id: int) -> None:
    stored = upsert_item(store, feed_id, item(title="Zelensky in Kyiv, Österreich"), NOW)
    assert search(store, "osterreich") == [stored.id]


def test_items_are_unique_per_feed_and_guid(store: Store, feed_id: int) -> None:
    other = add_feed(store, "https://example.net/feed", now=NOW).id
    a = upsert_item(store, feed_id, item("same"), NOW)
    b = upsert_item(store, other, item("same"), NOW)
    assert a.id != b.id
    assert upsert_item(store, feed_id, item("same"), NOW).id == a.id
    with pytest.raises(sqlite3.IntegrityError):
        store.db.execute(
            "INSERT INTO items (feed_id, guid, first_seen_at, content_hash)"
            " VALUES (?, 'same', 'x', 'y')",
            [feed_id],
        )
    assert item_counts(store) == {feed_id: 1, other: 1}


def test_item_round_trip(tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as store:
        feed = add_feed(store, "https://example.org/f", now=NOW).id
        counter = iter(range(10**6))

        @settings(max_examples=60, deadline=None)
        @given(
            title=st.text(),
            author=st.none() | st.text(),
            tags=st.lists(st.text(), max_size=3).map(tuple),
            published=st.none() | st.datetimes(timezones=st.just(UTC)),
        )
        def check(
            title: str, author: str | None, tags: tuple[str, ...], published: datetime | None
        ) -> None:
            parsed = ParsedItem(
                guid=f"g{next(counter)}", title=title, author=author, tags=tags,
                published_at=published,
            )  # fmt: skip
            stored = upsert_item(store, feed, parsed, NOW)
            back = store.item(stored.id)
            assert (back.title, back.author, back.tags) == (title, author, tags)
            expected = published.replace(microsecond=0) if published else None
            assert back.published_at == expected

        check()


# --- stories ---------------------------------------------------------------------------


@pytest.fixture
def feeds(store: Store) -> list[int]:
    return [add_feed(store, f"https://news{i}.example/rss", now=NOW).id for i in range(4)]


def test_link_variants_are_one_story(store: Store, feeds: list[int]) -> None:
    links = [
        "https://www.example.org/world/kursk-1",
        "http://example.org/world/kursk-1/?utm_source=twitter&fbclid=x",
        "https://amp.example.org/world/kursk-1/amp#top",
    ]
    stored = [
        upsert_item(store, f, item(f"g{i}", title=f"Headline {i}", link=link), NOW)
        for i, (f, link) in enumerate(zip(feeds, links, strict=False))
    ]
    assert {s.story_id for s in stored} == {stored[0].id}
    other = upsert_item(store, feeds[3], item("x", link="https://example.org/world/kursk-2"), NOW)
    assert other.story_id != stored[0].id


def test_one_feed_repeating_a_story_is_one_story(store: Store, feeds: list[int]) -> None:
    a = upsert_item(store, feeds[0], item("a", link="https://example.org/s?id=1"), NOW)
    b = upsert_item(store, feeds[0], item("b", link="https://example.org/s?id=1&ref=home"), NOW)
    assert b.story_id == a.id


def test_titles_with_outlet_suffix_within_48_hours(store: Store, feeds: list[int]) -> None:
    first = upsert_item(
        store, feeds[0], item("a", title="Drone hits depot - Reuters", published_at=NOW), NOW
    )
    close = upsert_item(
        store,
        feeds[1],
        item("b", title="DRONE HITS DEPOT | BBC News", published_at=NOW + timedelta(hours=47)),
        NOW,
    )
    far = upsert_item(
        store,
        feeds[2],
        item("c", title="Drone hits depot", published_at=NOW + timedelta(hours=49)),
        NOW,
    )
    assert close.story_id == first.id
    assert far.story_id == far.id


def test_undated_titles_count_from_first_seen(store: Store, feeds: list[int]) -> None:
    first = upsert_item(store, feeds[0], item("a", title="Bridge closed"), NOW)
    same = upsert_item(store, feeds[1], item("b", title="Bridge closed"), NOW + timedelta(hours=1))
    later = upsert_item(store, feeds[2], item("c", title="Bridge closed"), NOW + timedelta(days=3))
    assert same.story_id == first.id
    assert later.story_id == later.id


def test_stories_are_transitive_and_merge(store: Store, feeds: list[int]) -> None:
    a = upsert_item(
        store, feeds[0], item("a", title="Strike on Kursk bridge", link="https://a.example/x"), NOW
    )
    c = upsert_item(
        store,
        feeds[1],
        item("c", title="Bridge in Kursk region hit", link="https://c.example/y"),
        NOW,
    )
    assert c.story_id == c.id  # nothing in common with a yet
    # b shares a link with a and a title with c: all three become a's story
    b = upsert_item(
        store,
        feeds[2],
        item("b", title="Bridge in Kursk region hit - Reuters", link="http://a.example/x/"),
        NOW,
    )
    assert b.story_id == a.id
    assert store.item(c.id).story_id == a.id
    # a fourth copy reaching the story only through c's link joins it as well
    d = upsert_item(store, feeds[3], item("d", title="Other", link="https://c.example/y"), NOW)
    assert d.story_id == a.id


def test_merged_story_keeps_its_live_alert(store: Store, feeds: list[int]) -> None:
    a = upsert_item(store, feeds[0], item("a", title="One", link="https://a.example/1"), NOW)
    c = upsert_item(store, feeds[1], item("c", title="Two", link="https://c.example/2"), NOW)
    alert_id = add_alert(store,
        rule_id="r", channel="mail", item_ids=[c.id], status=AlertStatus.PENDING, now=NOW,
        story_id=c.story_id,
    )  # fmt: skip
    upsert_item(store, feeds[2], item("b", title="Two", link="https://a.example/1"), NOW)
    assert live_alert_id(store, "r", "mail", a.id) == alert_id


# --- feeds -----------------------------------------------------------------------------


def test_feed_names_are_slugs_with_collision_suffixes(store: Store) -> None:
    first = add_feed(store, "https://www.example.org/world.rss", now=NOW)
    second = add_feed(store, "http://example.org/world.rss?edition=eu", now=NOW)
    third = add_feed(store, "https://example.org/world.rss/", now=NOW)
    assert [first.name, second.name, third.name] == [
        "example-org-world-rss",
        "example-org-world-rss-2",
        "example-org-world-rss-3",
    ]
    assert first.source == "cli"
    assert feed_by_name(store, "example-org-world-rss-2") == second


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://feeds.bbci.co.uk/news/world/rss.xml", "feeds-bbci-co-uk-news-world-rss-xml"),
        ("https://example.org", "example-org"),
        ("/srv/data/feeds/sample.xml", "sample-xml"),
        ("https://example.org/" + "x" * 200, "example-org-" + "x" * 48),
    ],
)
def test_slug_for_url(url: str, name: str) -> None:
    assert slug_for_url(url) == name


def test_explicit_names_and_urls_must_be_free(store: Store) -> None:
    add_feed(store, "https://example.org/a", name="world", now=NOW)
    with pytest.raises(StoreError, match="already exists"):
        add_feed(store, "https://example.org/b", name="world", now=NOW)
    with pytest.raises(StoreError, match="already watched as feed 'world'"):
        add_feed(store, "https://example.org/a", now=NOW)


def test_name_never_follows_the_title(store: Store, feed_id: int) -> None:
    poll(store, feed_id, NOW, title="World News", etag='"v1"')
    feed = get_feed(store, feed_id)
    assert (feed.name, feed.title, feed.etag) == ("example-org-world-rss", "World News", '"v1"')


def test_sync_config_feeds(store: Store) -> None:
    cli = add_feed(store, "https://cli.example/rss", now=NOW)
    config = [
        FeedConfig(url="https://example.org/a.rss", name="a", tags=("ukraine",)),
        FeedConfig(url="https://example.org/b.rss", interval_s=300),
    ]
    synced = sync_config_feeds(store, config, NOW, reschedule=moved)
    assert {f.name: f.source for f in synced} == {
        "a": "config",
        "example-org-b-rss": "config",
        cli.name: "cli",
    }
    # edited: a new URL and tags for the named feed, a new interval for the other
    config = [
        FeedConfig(url="https://example.org/a2.rss", name="a", tags=("russia",)),
        FeedConfig(url="https://example.org/b.rss", interval_s=600),
    ]
    synced = sync_config_feeds(store, config, NOW, reschedule=moved)
    a = feed_by_name(store, "a")
    b = feed_by_name(store, "example-org-b-rss")
    assert a is not None and b is not None
    assert (a.url, a.tags) == ("https://example.org/a2.rss", ("russia",))
    assert b.interval_s == 600
    assert len(list_feeds(store)) == 3
    # removed from the file: disabled with a reason, not polled, and back when re-listed
    synced = sync_config_feeds(store, config[:1], NOW, reschedule=moved)
    assert {f.name for f in synced} == {"a", cli.name}
    b = get_feed(store, b.id)
    assert (b.last_status, b.disabled_reason) == ("disabled", "removed from the config file")
    assert b.id not in {f.id for f in due_feeds(store, NOW)}
    synced = sync_config_feeds(store, config, NOW, reschedule=moved)
    assert get_feed(store, b.id).disabled_reason is None
    assert b.id in {f.id for f in synced}


def polled(store: Store, feed_id: int, at: datetime, max_age_s: int | None = None) -> None:
    headers = {"cache-control": f"max-age={max_age_s}"} if max_age_s else {}
    poll(store, feed_id, at, headers=headers)


def test_a_lowered_interval_reschedules_the_feed_from_its_last_poll(store: Store) -> None:
    daily = FeedConfig(url="https://example.org/a.rss", name="a", interval_s=86400)
    (feed,) = sync_config_feeds(store, [daily], NOW, reschedule=moved)
    polled(store, feed.id, NOW)
    assert get_feed(store, feed.id).next_poll_at == NOW + timedelta(days=1)
    minutely = FeedConfig(url=daily.url, name="a", interval_s=60, interval_source="feed")
    sync_config_feeds(store, [minutely], NOW + timedelta(minutes=30), reschedule=moved)
    again = get_feed(store, feed.id)
    assert (again.interval_s, again.interval_source) == (60, "feed")
    assert again.next_poll_at == NOW + timedelta(minutes=1)  # overdue: polled at once
    # raising it again never pushes the planned poll later
    sync_config_feeds(store, [daily], NOW, reschedule=moved)
    assert get_feed(store, feed.id).next_poll_at == NOW + timedelta(minutes=1)


def test_a_lowered_interval_keeps_backoff_retry_after_and_cache_holds(store: Store) -> None:
    feeds = [
        FeedConfig(url=f"https://example.org/{n}.rss", name=n, interval_s=7200)
        for n in ("failing", "held", "cached", "plain")
    ]
    sync_config_feeds(store, feeds, NOW, reschedule=moved)
    ids = {f.name: f.id for f in list_feeds(store)}
    for _ in range(3):  # three failures in a row: the backoff is 4 intervals, 8 h
        poll(store, ids["failing"], NOW, error="HTTP 500", status=500)
    polled(store, ids["held"], NOW)
    set_retry_hold(store, ids["held"], datetime(2025, 3, 1, 13, 30, tzinfo=UTC))
    polled(store, ids["cached"], NOW, max_age_s=20 * 3600)
    polled(store, ids["plain"], NOW)
    lowered = [FeedConfig(url=f.url, name=f.name, interval_s=600) for f in feeds]
    sync_config_feeds(store, lowered, NOW, reschedule=moved)
    after = {f.name: f.next_poll_at for f in list_feeds(store)}
    assert after["failing"] == NOW + timedelta(minutes=40)  # 10m doubled twice
    assert after["held"] == NOW + timedelta(minutes=90)  # not before the Retry-After
    assert after["cached"] == NOW + timedelta(hours=20)  # never sooner than the server asked
    assert after["plain"] == NOW + timedelta(minutes=10)


def test_command_line_feeds_follow_the_default_interval_until_given_their_own(
    store: Store,
) -> None:
    follows = add_feed(
        store, "https://a.example/rss", interval_s=900, interval_source="default", now=NOW
    )
    own = add_feed(store, "https://b.example/rss", interval_s=900, interval_source="feed", now=NOW)
    polled(store, follows.id, NOW)
    sync_config_feeds(store, [], NOW, default_interval_s=120, reschedule=moved)
    assert get_feed(store, follows.id).interval_s == 120
    assert get_feed(store, follows.id).next_poll_at == NOW + timedelta(minutes=2)
    assert get_feed(store, own.id).interval_s == 900


def test_a_feed_disabled_while_its_poll_runs_stays_disabled(store: Store, feed_id: int) -> None:
    disable_feed(store, feed_id, "disabled by hand")
    polled(store, feed_id, NOW)  # the poll that was in flight records its outcome
    feed = get_feed(store, feed_id)
    assert (feed.last_status, feed.disabled_reason) == ("disabled", "disabled by hand")
    cfg = FeedConfig(url=feed.url, name=feed.name)
    assert (
        sync_config_feeds(store, [cfg], NOW, reschedule=moved) == []
    )  # a reload keeps it disabled


def test_sync_respects_enabled_false_and_other_reasons(store: Store) -> None:
    cfg = FeedConfig(url="https://example.org/a.rss", name="a")
    (feed,) = sync_config_feeds(store, [cfg], NOW, reschedule=moved)
    assert (
        sync_config_feeds(
            store, [FeedConfig(url=cfg.url, name="a", enabled=False)], NOW, reschedule=moved
        )
        == []
    )
    assert get_feed(store, feed.id).disabled_reason == "disabled in the config file"
    assert len(sync_config_feeds(store, [cfg], NOW, reschedule=moved)) == 1
    disable_feed(store, feed.id, "HTTP 410 Gone")
    assert sync_config_feeds(store, [cfg], NOW, reschedule=moved) == []
    assert get_feed(store, feed.id).disabled_reason == "HTTP 410 Gone"
    enable_feed(store, feed.id)
    assert len(sync_config_feeds(store, [cfg], NOW, reschedule=moved)) == 1


def test_permanent_redirect_survives_config_sync(store: Store) -> None:
    cfg = FeedConfig(url="http://old.example/rss")
    (feed,) = sync_config_feeds(store, [cfg], NOW, reschedule=moved)
    poll(store, feed.id, NOW, moved_to="https://new.example/rss")
    (again,) = sync_config_feeds(store, [cfg], NOW, reschedule=moved)
    assert (again.id, again.url) == (feed.id, "https://new.example/rss")


def test_remove_feed(store: Store) -> None:
    (config_feed,) = sync_config_feeds(
        store, [FeedConfig(url="https://c.example/rss")], NOW, reschedule=moved
    )
    empty = add_feed(store, "https://empty.example/rss", now=NOW)
    full = add_feed(store, "https://full.example/rss", now=NOW)
    upsert_item(store, full.id, item(), NOW)
    with pytest.raises(StoreError, match="config file"):
        remove_feed(store, config_feed.name)
    with pytest.raises(StoreError, match="no feed named"):
        remove_feed(store, "nope")
    remove_feed(store, empty.name)
    remove_feed(store, full.name)
    assert feed_by_name(store, empty.name) is None
    kept = get_feed(store, full.id)
    assert kept.last_status == "disabled"
    assert item_counts(store) == {full.id: 1}
    # adding the URL again brings the feed back with its items and name
    assert add_feed(store, "https://full.example/rss", now=NOW).id == full.id
    assert get_feed(store, full.id).disabled_reason is None


# --- polls -----------------------------------------------------------------------------


def test_poll_recording_and_failure_counters(store: Store, feed_id: int) -> None:
    assert [f.id for f in due_feeds(store, NOW)] == [feed_id]
    poll(store, feed_id, NOW, error="timed out", status=0)
    poll(store, feed_id, NOW + timedelta(minutes=1), error="timed out", status=503)
    feed = get_feed(store, feed_id)
    assert (feed.consecutive_failures, feed.last_status, feed.last_error) == (
        2,
        "error",
        "timed out",
    )
    assert feed.last_success_at is None
    later = NOW + timedelta(minutes=2)
    poll(store, feed_id, later, [item(f"n{n}") for n in range(4)])
    feed = get_feed(store, feed_id)
    assert (feed.consecutive_failures, feed.last_status, feed.last_error) == (0, "ok", None)
    assert feed.last_success_at == later == feed.last_polled_at
    assert feed.next_poll_at == later + timedelta(seconds=900)
    assert due_feeds(store, later) == []
    assert [f.id for f in due_feeds(store, later + timedelta(seconds=900))] == [feed_id]
    rows = list(store.db.query("SELECT http_status, new_items, error FROM polls ORDER BY id"))
    assert rows == [
        {"http_status": 0, "new_items": 0, "error": "timed out"},
        {"http_status": 503, "new_items": 0, "error": "timed out"},
        {"http_status": 200, "new_items": 4, "error": None},
    ]


def test_not_modified_keeps_validators_and_counts_as_success(store: Store, feed_id: int) -> None:
    poll(store, feed_id, NOW, etag='"e1"', last_modified="Sat, 01 Mar 2025")
    poll(store, feed_id, NOW, error="timed out", status=0)
    poll(store, feed_id, NOW, status=304, headers={"cache-control": "max-age=7200"})
    feed = get_feed(store, feed_id)
    assert (feed.etag, feed.last_modified) == ('"e1"', "Sat, 01 Mar 2025")
    assert (feed.last_status, feed.consecutive_failures) == ("not_modified", 0)
    assert feed.next_poll_at == NOW + timedelta(hours=2)


def test_poll_can_disable_a_feed(store: Store, feed_id: int) -> None:
    poll(store, feed_id, NOW, error="HTTP 410 Gone", status=410)
    feed = get_feed(store, feed_id)
    assert feed.last_status == "disabled"
    assert (feed.disabled_reason or "").startswith("HTTP 410 Gone")
    assert due_feeds(store, NOW + timedelta(days=2)) == []


# --- matches and alerts ----------------------------------------------------------------


def test_an_alert_shows_the_terms_and_snippets_of_the_latest_match(
    store: Store, feed_id: int
) -> None:
    stored = upsert_item(store, feed_id, item(), NOW)
    add_match(store, stored.id, "nk", ("north korean troops", "kursk"), NOW)
    latest = add_match(store, stored.id, "nk", ("kursk",), NOW)
    assert match_evidence(store, stored.id, "nk") == (("kursk",), ())  # matched before 0010
    store.db.execute(
        "INSERT INTO _match_evidence (match_id, fields, snippets) VALUES (?, ?, ?)",
        [latest, '["title"]', '["**Kursk** front"]'],
    )
    assert match_evidence(store, stored.id, "nk") == (("kursk",), ("**Kursk** front",))
    assert match_evidence(store, stored.id, "other") == ((), ())
    row = store.db.execute("SELECT terms, matched_at FROM matches ORDER BY id").fetchone()
    assert row == ('["north korean troops","kursk"]', "2025-03-01T12:00:00Z")


def test_alert_lifecycle(store: Store, feed_id: int) -> None:
    a = upsert_item(store, feed_id, item("a"), NOW)
    alert_id = add_alert(store,
        rule_id="nk", channel="mail", item_ids=[a.id], status=AlertStatus.PENDING, now=NOW,
        story_id=a.story_id,
    )  # fmt: skip
    assert alert_kind(store, alert_id) == "match"
    assert [x.id for x in due_alerts(store, NOW)] == [alert_id]
    assert get_alert(store, alert_id).item_ids == (a.id,)
    retry_at = NOW + timedelta(seconds=30)
    mark_retry(store, alert_id, "connection refused", retry_at, NOW)
    assert due_alerts(store, NOW) == []
    assert [x.id for x in due_alerts(store, retry_at)] == [alert_id]
    mark_sent(store, alert_id, retry_at)
    sent = get_alert(store, alert_id)
    assert (sent.status, sent.attempts, sent.sent_at) == (AlertStatus.SENT, 2, retry_at)
    assert sent.next_attempt_at is None
    assert due_alerts(store, retry_at + timedelta(days=1)) == []
    assert live_alert_id(store, "nk", "mail", a.story_id) == alert_id


def test_failed_alerts_and_requeue(store: Store, feed_id: int) -> None:
    stored = upsert_item(store, feed_id, item(), NOW)
    ids = [
        add_alert(
            store,
            rule_id=f"r{i}",
            channel="hook",
            item_ids=[stored.id],
            status=AlertStatus.PENDING,
            now=NOW + timedelta(seconds=i),
        )  # fmt: skip
        for i in range(3)
    ]
    mark_failed(store, ids[0], "HTTP 404", NOW)
    mark_failed(store, ids[1], "HTTP 404", NOW)
    failed = get_alert(store, ids[0])
    assert (failed.status, failed.attempts, failed.last_error) == (
        AlertStatus.FAILED,
        1,
        "HTTP 404",
    )
    assert [a.id for a in due_alerts(store, NOW + timedelta(hours=1))] == [ids[2]]
    assert [a.id for a in list_alerts(store, status=AlertStatus.FAILED)] == [ids[1], ids[0]]
    assert [a.id for a in list_alerts(store, rule_id="r2")] == [ids[2]]
    assert [a.id for a in list_alerts(store, limit=1)] == [ids[2]]
    assert requeue_failed(store, [ids[0]], NOW) == [ids[0]]
    assert [a.id for a in due_alerts(store, NOW)] == [ids[0], ids[2]]


def test_a_second_live_alert_with_the_same_key_raises(store: Store, feed_id: int) -> None:
    stored = upsert_item(store, feed_id, item(), NOW)
    key: dict[str, Any] = {"rule_id": "nk", "channel": "mail", "story_id": stored.story_id}
    first = add_alert(store, **key, item_ids=[stored.id], status=AlertStatus.PENDING, now=NOW)
    mark_sent(store, first, NOW)
    with pytest.raises(StoreError, match="live match alert already exists"):
        add_alert(store, **key, item_ids=[stored.id], status=AlertStatus.PENDING, now=NOW)
    assert [a.id for a in list_alerts(store)] == [first]  # nothing half-written
    # suppressed rows, other channels, other kinds and story-less alerts are not duplicates
    add_alert(store, **key, item_ids=[stored.id], status=AlertStatus.SUPPRESSED, now=NOW)
    hook = {**key, "channel": "hook"}
    add_alert(store, **hook, item_ids=[stored.id], status=AlertStatus.PENDING, now=NOW)
    add_alert(
        store, **key, kind="threshold", item_ids=[stored.id], status=AlertStatus.SENT, now=NOW
    )
    for _ in range(2):
        add_alert(store,
            rule_id="nk", channel="mail", kind="digest", item_ids=[stored.id],
            status=AlertStatus.PENDING, now=NOW,
        )  # fmt: skip
    assert len(list_alerts(store)) == 6


def test_live_alert_key_holds_inside_a_transaction_and_after_suppression(
    store: Store, feed_id: int
) -> None:
    stored = upsert_item(store, feed_id, item(), NOW)
    key: dict[str, Any] = {"rule_id": "nk", "channel": "mail", "story_id": stored.story_id}
    with pytest.raises(StoreError), store.transaction():
        add_alert(store, **key, item_ids=[stored.id], status=AlertStatus.PENDING, now=NOW)
        add_alert(store, **key, item_ids=[stored.id], status=AlertStatus.PENDING, now=NOW)
    assert list_alerts(store) == []  # the whole transaction rolled back
    first = add_alert(store, **key, item_ids=[stored.id], status=AlertStatus.PENDING, now=NOW)
    store.db.execute("UPDATE alerts SET status = 'suppressed' WHERE id = ?", [first])
    assert live_alert_id(store, "nk", "mail", stored.story_id) is None
    second = add_alert(store, **key, item_ids=[stored.id], status=AlertStatus.PENDING, now=NOW)
    assert live_alert_id(store, "nk", "mail", stored.story_id) == second


def test_instance_id_is_stable(tmp_path: Path) -> None:
    with Store(tmp_path / "i.db") as store:
        first = instance_id(store)
        assert len(first) == 32 and read_heartbeat(store) is None
        write_heartbeat(store, NOW, pid=42)
    with Store(tmp_path / "i.db") as store:
        assert instance_id(store) == first
        assert read_heartbeat(store) == NOW
    with Store(tmp_path / "other.db") as store:
        assert instance_id(store) != first


# --- transactions and locking -----------------------------------------------------------


def test_transaction_rolls_back_on_error(store: Store, feed_id: int) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        upsert_item(store, feed_id, item("a"), NOW)
        with store.transaction():
            upsert_item(store, feed_id, item("b"), NOW)
        raise RuntimeError("boom")
    assert item_counts(store) == {}
    assert search(store, "kursk") == []


def test_readers_do_not_block_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    with Store(path) as store:
        feed = add_feed(store, "https://example.org/rss", now=NOW)
        reader = sqlite3.connect(path, isolation_level=None, timeout=0)
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM items").fetchone() == (0,)
        upsert_item(store, feed.id, item(), NOW)  # would fail at once without WAL
        assert reader.execute("SELECT count(*) FROM items").fetchone() == (0,)
        reader.execute("COMMIT")
        assert reader.execute("SELECT count(*) FROM items").fetchone() == (1,)
        reader.close()


def hold_write_lock(path: Path) -> sqlite3.Connection:
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_writer_waits_for_a_lock_instead_of_failing(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    Store(path).close()
    holder = hold_write_lock(path)
    waiting = threading.Event()
    outcome: list[object] = []

    def write() -> None:
        with Store(path) as store:
            store.db.conn.set_trace_callback(lambda sql: waiting.set())
            try:
                outcome.append(add_feed(store, "https://example.org/rss", now=NOW).name)
            except StoreError as e:
                outcome.append(e)

    writer = threading.Thread(target=write)
    writer.start()
    assert waiting.wait(10)
    writer.join(0.3)
    assert writer.is_alive(), f"the writer gave up instead of waiting: {outcome}"
    holder.execute("COMMIT")
    holder.close()
    writer.join(10)
    assert outcome == ["example-org-rss"]


def test_without_a_busy_timeout_the_same_write_fails(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    Store(path).close()
    holder = hold_write_lock(path)
    try:
        with Store(path, busy_timeout_s=0) as store, pytest.raises(StoreError, match="locked"):
            add_feed(store, "https://example.org/rss", now=NOW)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_transaction_that_cannot_start_raises_store_error(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    Store(path).close()
    holder = hold_write_lock(path)
    try:
        with Store(path, busy_timeout_s=0) as store:
            with pytest.raises(StoreError, match="locked"), store.transaction():
                pass
            assert not store.db.conn.in_transaction
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_writer_that_asks_for_its_turn_says_so_while_it_waits(tmp_path: Path) -> None:
    """The delivery process's writes raise ``asking`` while another writer holds the lock
    (the poll lets them through between its transactions), and lower it once in."""
    path = tmp_path / "watcher.db"
    asking = threading.Event()
    done = threading.Event()

    def write() -> None:
        with Store(path, busy_timeout_s=5) as store:
            store.asking = asking
            with store.transaction():
                store.db.execute("CREATE TABLE t (x)")
        done.set()

    with Store(path) as busy:
        with busy.transaction():
            writer = threading.Thread(target=write)
            writer.start()
            assert asking.wait(2), "the waiting writer did not raise its flag"
            assert not done.wait(0.2)  # still waiting: the lock is held
        writer.join(5)
        assert done.is_set() and not asking.is_set()
        assert busy.db["t"].exists()


def test_a_writer_that_asks_still_times_out_with_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "watcher.db"
    with Store(path) as busy, Store(path, busy_timeout_s=0.2) as asking_store:
        asking_store.asking = threading.Event()
        with (
            busy.transaction(),
            pytest.raises(StoreError, match="locked"),
            asking_store.transaction(),
        ):
            pass
        assert not asking_store.asking.is_set()
        with asking_store.transaction():  # the busy timeout is back as it was
            assert asking_store.scalar("PRAGMA busy_timeout") == 200
