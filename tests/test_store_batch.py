"""store.batch.upsert_items stores what Store.upsert_item does item by item."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.store import Store
from watcher.store.batch import upsert_items
from watcher.store.polls import record_poll
from watcher.types import ParsedItem, StoredItem

NOW = datetime(2026, 3, 1, 12, 0, 30, 123456, tzinfo=UTC)

LINKS = [None, "https://www.example.org/a?utm_source=x", "https://example.org/a", "https://b.org/x"]
TITLES = ["Storm hits coast - Daily", "Storm hits coast", "Other news", ""]
DATES = [None, NOW - timedelta(hours=1), NOW - timedelta(days=5), NOW + timedelta(minutes=3)]

items_strategy = st.builds(
    ParsedItem,
    guid=st.sampled_from(["g1", "g2", "g3", "g4"]),
    title=st.sampled_from(TITLES),
    link=st.sampled_from(LINKS),
    summary=st.sampled_from(["", "<p>one</p>", "<p>two</p>"]),
    summary_text=st.just("text"),
    published_at=st.sampled_from(DATES),
    tags=st.sampled_from([(), ("a", "b")]),
)
# A pass: (feed number, its items, minutes after NOW)
passes_strategy = st.lists(
    st.tuples(st.integers(0, 2), st.lists(items_strategy, max_size=5), st.integers(0, 60 * 72)),
    min_size=1,
    max_size=5,
)


def open_store(folder: Path, name: str) -> tuple[Store, list[int]]:
    store = Store(folder / name)
    ids = []
    for n in range(3):
        store.db.execute("INSERT INTO feeds (url, name) VALUES (?, ?)", [f"http://f{n}", f"f{n}"])
        ids.append(int(store.scalar("SELECT max(id) FROM feeds")))
    return store, ids


def one_by_one(store: Store, feed_id: int, items: list[ParsedItem], now: datetime) -> list[Any]:
    results = []
    with store.transaction():
        for item in items:
            stored = store.upsert_item(feed_id, item, now)
            if stored.change != "unchanged":
                results.append(stored)
    return results


def table(store: Store, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in store.db.execute(sql).fetchall()]


@settings(max_examples=60, deadline=None)
@given(passes_strategy)
def test_batch_and_item_by_item_store_the_same(passes: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        batch, batch_feeds = open_store(Path(tmp), "batch.db")
        single, single_feeds = open_store(Path(tmp), "single.db")
        for feed, items, minutes in passes:
            now = NOW + timedelta(minutes=minutes)
            got = upsert_items(batch, batch_feeds[feed], items, now)
            want = one_by_one(single, single_feeds[feed], items, now)
            assert got == want
        for sql in (
            "SELECT * FROM items ORDER BY id",
            "SELECT * FROM _story_keys ORDER BY kind, key",
            "SELECT rowid, * FROM items_fts ORDER BY rowid",
        ):
            assert table(batch, sql) == table(single, sql)
        batch.close()
        single.close()


def test_new_items_come_back_as_a_read_back_would_give_them(tmp_path: Path) -> None:
    store, feeds = open_store(tmp_path, "w.db")
    items = [
        ParsedItem(guid="a", title="Storm", link="https://x.org/1", published_at=NOW),
        ParsedItem(guid="b", title="Storm", link="https://x.org/2", tags=("t",)),
    ]
    stored: list[StoredItem] = upsert_items(store, feeds[0], items, NOW)
    assert [s.change for s in stored] == ["new", "new"]
    assert stored == [store._item(s.id, "new") for s in stored]
    assert stored[1].story_id == stored[0].id  # same title within 48 h: one story
    assert upsert_items(store, feeds[0], items, NOW) == []
    hits = store.db.execute("SELECT rowid FROM items_fts WHERE items_fts MATCH 'storm'").fetchall()
    assert sorted(r[0] for r in hits) == [s.id for s in stored]
    store.close()


def test_batched_304s_write_what_record_poll_writes(tmp_path: Path) -> None:
    from watcher.store.batch import NotModified, record_not_modified
    from watcher.types import FeedStatus

    store, feeds = open_store(tmp_path, "p.db")
    for feed_id in feeds:  # a feed that had failed once, with validators stored
        store.db.execute(
            "UPDATE feeds SET consecutive_failures = 1, last_status = 'error',"
            " last_error = 'x', etag = 'old' WHERE id = ?",
            [feed_id],
        )
    later = NOW + timedelta(minutes=15)
    record_poll(
        store,
        feeds[0],
        started_at=NOW,
        duration_ms=7,
        http_status=304,
        new_items=0,
        error=None,
        status=FeedStatus.NOT_MODIFIED,
        now=NOW,
        etag=None,
        last_modified="Mon, 01 Jan 2024 00:00:00 GMT",
        next_poll_at=later,
    )
    record_not_modified(
        store, [NotModified(feeds[1], 7, 304, None, "Mon, 01 Jan 2024 00:00:00 GMT", later)], NOW
    )
    rows = table(store, "SELECT * FROM feeds ORDER BY id")
    assert rows[0][3:] == rows[1][3:]  # every column after id, url, name
    polls = table(
        store,
        "SELECT feed_id, started_at, duration_ms, http_status, new_items, error"
        " FROM polls ORDER BY id",
    )
    assert [p[1:] for p in polls] == [(NOW.strftime("%Y-%m-%dT%H:%M:%SZ"), 7, 304, 0, None)] * 2
    store.close()
