"""The search index off the poll's transaction: the queue, the indexers, the lag users see,
and the migration that rebuilds the index of an older database."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlite_utils import Database

from tests.feedgen import Entry, rss
from tests.servers import FeedServer
from tests.storing import upsert_item
from tests.terminal import run_on_terminal
from watcher.archive.search import translate_query
from watcher.cli import cli
from watcher.cli import search as search_command
from watcher.exceptions import StoreError
from watcher.poll.indexer import Indexer
from watcher.store import Store, fts_queue
from watcher.store.feeds import add_feed, feed_by_name
from watcher.store.fts import SearchFilters, search_items
from watcher.store.fts_queue import catch_up, index_lag
from watcher.store.prune import Cursor, prune_items_batch
from watcher.store.schema import MIGRATIONS, REBUILDS_INDEX
from watcher.types import ParsedItem

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _found(store: Store, query: str) -> list[str]:
    hits = search_items(store, translate_query(query).fts, SearchFilters(limit=100))
    return sorted(h.title.replace("\ue000", "").replace("\ue001", "") for h in hits)


def _add(store: Store, guid: str, title: str, body: str = "") -> int:
    feed = feed_by_name(store, "wire") or add_feed(
        store, "https://example.org/f.xml", name="wire", now=NOW
    )
    item = ParsedItem(guid=guid, title=title, summary_text=body)
    return upsert_item(store, feed.id, item, NOW).id


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "w.db") as opened:
        yield opened


def test_stored_items_wait_in_the_queue_until_an_indexer_takes_them(store: Store) -> None:
    _add(store, "1", "Kursk front", "drones")
    _add(store, "2", "Straße nach Kursk")
    assert index_lag(store).items == 2 and _found(store, "kursk") == []
    assert catch_up(store) == 2
    assert index_lag(store).items == 0
    assert _found(store, "kursk") == ["Kursk front", "Straße nach Kursk"]
    assert _found(store, "strasse") == ["Straße nach Kursk"]


def test_edits_and_deletes_keep_the_index_right(store: Store) -> None:
    feed = add_feed(store, "https://example.org/f.xml", name="wire", now=NOW)
    first = upsert_item(store, feed.id, ParsedItem(guid="1", title="Kursk report"), NOW)
    upsert_item(store, feed.id, ParsedItem(guid="2", title="Belgorod report"), NOW)
    catch_up(store)
    upsert_item(store, feed.id, ParsedItem(guid="1", title="Sumy report"), NOW)  # an edit
    assert index_lag(store).items == 1
    catch_up(store)
    assert _found(store, "kursk") == [] and _found(store, "sumy") == ["Sumy report"]
    store.db.execute("DELETE FROM items WHERE id = ?", [first.id])
    catch_up(store)
    assert _found(store, "report") == ["Belgorod report"]
    assert store.scalar("SELECT count(*) FROM items_fts") == 1


def test_pruned_items_leave_the_index(store: Store) -> None:
    _add(store, "1", "Kursk old")
    _add(store, "2", "Belgorod newest")  # the newest item is always kept
    catch_up(store)
    assert prune_items_batch(store, NOW + timedelta(days=1), Cursor(), 100).deleted == 1
    catch_up(store)
    assert _found(store, "kursk") == [] and store.scalar("SELECT count(*) FROM items_fts") == 1


def test_an_item_edited_while_it_is_indexed_stays_queued(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A poll that edits an item while an indexer normalises its older text (no lock held
    then) leaves it queued, so the edit is indexed too."""
    feed = add_feed(store, "https://example.org/f.xml", name="wire", now=NOW)
    upsert_item(store, feed.id, ParsedItem(guid="1", title="Kursk report"), NOW)
    writer = Store(store.path)
    real = fts_queue.index_form

    def edit_meanwhile(text: str) -> str:
        if text == "Kursk report":
            upsert_item(writer, feed.id, ParsedItem(guid="1", title="Sumy report"), NOW)
        return real(text)

    monkeypatch.setattr(fts_queue, "index_form", edit_meanwhile)
    try:
        fts_queue.index_batch(store)
    finally:
        writer.close()
    # Indexed as it was read, and still queued for its edit.
    assert index_lag(store).items == 1 and _found(store, "kursk") == ["Sumy report"]
    catch_up(store)
    assert _found(store, "kursk") == [] and _found(store, "sumy") == ["Sumy report"]


def test_the_indexer_thread_fills_the_index_and_stops_promptly(tmp_path: Path) -> None:
    with Store(tmp_path / "w.db") as store:
        for n in range(1200):
            _add(store, str(n), f"Kursk report {n}")
        assert index_lag(store).items == 1200
        with Indexer(tmp_path / "w.db") as indexer:
            deadline = datetime.now(UTC) + timedelta(seconds=60)
            while index_lag(store).items and datetime.now(UTC) < deadline:
                indexer._stopping.wait(0.05)
        assert index_lag(store).items == 0
        assert len(_found(store, "kursk")) == 100  # the limit


def test_lag_is_described_in_words() -> None:
    assert fts_queue.IndexLag(1240, 2.1).describe() == "index 1,240 items behind, about 2 s"
    assert fts_queue.IndexLag(1, 0.01).describe() == "index 1 item behind, about 1 s"
    assert fts_queue.IndexLag(10**6, 300).describe() == "index 1,000,000 items behind, about 5 min"


# --- what users see ------------------------------------------------------------------------


def _run(project: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--config", str(project / "watcher.yaml"), *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def project(tmp_path: Path, feed_server: FeedServer) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text("- id: kursk\n  any: [Kursk]\n")
    feed_server.set("/f.xml", rss([Entry("1", "Kursk front", published=datetime.now(UTC))]))
    (tmp_path / "watcher.yaml").write_text(
        f"database: w.db\nrules: rules/\nfeeds:\n  - url: {feed_server.url('/f.xml')}\n"
        "    name: wire\n    first_poll_alerts: none\n"
        "channels:\n  files: {type: eml, dir: outbox}\n"
    )
    assert _run(tmp_path, "poll", "--all")[0] == 0
    return tmp_path


def _queue_without_indexing(project: Path, titles: list[str]) -> None:
    """Items stored as a poll stores them, then the process gone before its indexer ran."""
    with Store(project / "w.db") as store:
        for n, title in enumerate(titles):
            _add(store, f"late-{n}", title)


def test_a_poll_indexes_what_it_stored_before_it_exits(project: Path) -> None:
    code, out, _ = _run(project, "search", "kursk", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["index_lag"] == 0 and [i["title"] for i in data["items"]] == ["Kursk front"]


def test_search_says_when_the_index_is_behind_and_wait_catches_up(project: Path) -> None:
    _queue_without_indexing(project, ["Kursk late", "Kursk later", "Markets"])
    code, out, err = _run(project, "search", "kursk", "--json")
    assert code == 0
    assert "index 3 items behind, about 1 s" in err
    data = json.loads(out)
    assert data["index_lag"] == 3 and [i["title"] for i in data["items"]] == ["Kursk front"]
    code, out, err = _run(project, "status")
    assert code == 0 and "search index: index 3 items behind" in out
    code, out, err = _run(project, "search", "kursk", "--json", "--wait")
    assert code == 0 and "behind" not in err
    data = json.loads(out)
    assert data["index_lag"] == 0 and len(data["items"]) == 3
    code, out, _ = _run(project, "status", "--json")
    assert json.loads(out)["index_lag"] == 0


def test_items_a_crash_left_queued_are_indexed_by_the_next_poll(project: Path) -> None:
    _queue_without_indexing(project, ["Kursk late"])
    assert _run(project, "poll")[0] == 0  # nothing due: it indexes all the same
    code, out, err = _run(project, "search", "kursk", "--json")
    assert "behind" not in err
    assert sorted(i["title"] for i in json.loads(out)["items"]) == ["Kursk front", "Kursk late"]


# --- the migration -------------------------------------------------------------------------


def _database_before_the_rebuild(path: Path, titles: list[str]) -> None:
    """A database as the previous version left it: items indexed raw by unicode61."""
    db = Database(path)
    MIGRATIONS.apply(db, stop_before=REBUILDS_INDEX)
    db.execute("INSERT INTO feeds (id, url, name) VALUES (1, 'https://e.org/f', 'wire')")
    for n, title in enumerate(titles):
        db.execute(
            "INSERT INTO items (feed_id, guid, title, first_seen_at, content_hash)"
            " VALUES (1, ?, ?, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), ?)",  # not pruned
            [str(n), title, str(n)],
        )
    assert db.execute("SELECT count(*) FROM items_fts WHERE items_fts MATCH 'Straße'").fetchone()
    db.conn.commit()
    db.close()


def test_the_upgrade_rebuilds_the_index_with_a_progress_bar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    titles = [f"Straße {n} nach 库尔斯克州" for n in range(1200)] + ["Markets"]
    _database_before_the_rebuild(tmp_path / "w.db", titles)
    shown: list[tuple[str, int, int]] = []

    @contextmanager
    def bar(total: int, label: str) -> Iterator[Callable[[int], None]]:
        done = [0]

        def update(n: int) -> None:
            done[0] += n

        yield update
        shown.append((label, total, done[0]))

    monkeypatch.setattr(fts_queue, "progress_bar", bar)
    with Store(tmp_path / "w.db") as store:
        assert shown == [("indexing for search", 1201, 1201)]
        assert index_lag(store).items == 0
        assert len(_found(store, "strasse 库尔斯克")) == 100
        assert (
            store.scalar("SELECT title FROM items_fts WHERE rowid = 1")
            == "strasse 0 nach 库 尔 斯 克 州"
        )
    with Store(tmp_path / "w.db") as store:  # once only
        assert len(shown) == 1


def test_wait_on_a_database_it_may_not_write_waits_for_the_daemons_indexer(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _queue_without_indexing(project, ["Kursk late"])

    def read_only(path: Path) -> None:
        raise StoreError(f"{path}: permission denied: the database file is read-only")

    def not_here(store: Store) -> int:
        raise AssertionError("a read-only user cannot index")

    monkeypatch.setattr(search_command, "check_writable", read_only)
    monkeypatch.setattr(search_command, "catch_up", not_here)
    with Indexer(project / "w.db"):  # as the daemon's, which owns the file
        code, out, err = _run(project, "search", "kursk", "--json", "--wait")
    assert code == 0 and "behind" not in err
    data = json.loads(out)
    assert data["index_lag"] == 0 and len(data["items"]) == 2


def test_the_upgrade_shows_its_progress_on_a_terminal_and_nothing_when_piped(
    tmp_path: Path,
) -> None:
    _database_before_the_rebuild(tmp_path / "w.db", ["Straße nach Kursk", "Markets"])
    (tmp_path / "watcher.yaml").write_text("database: w.db\nfeeds: []\n")
    config = str(tmp_path / "watcher.yaml")
    code, _, err = run_on_terminal("--config", config, "poll")
    assert code == 0, err
    assert "indexing for search" in err and "100%" in err
    with Store(tmp_path / "w.db") as store:
        assert _found(store, "strasse") == ["Straße nach Kursk"]
    _database_before_the_rebuild(tmp_path / "piped.db", ["Kursk"])
    result = CliRunner().invoke(
        cli, ["--config", config, "--db", str(tmp_path / "piped.db"), "poll"]
    )
    assert result.exit_code == 0 and "indexing" not in result.stderr


def test_a_poll_whose_indexing_fails_still_stores_and_alerts_and_the_next_indexes(
    tmp_path: Path, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text("- id: kursk\n  any: [Kursk]\n")
    feed_server.set("/f.xml", rss([Entry("1", "Kursk front", published=datetime.now(UTC))]))
    (tmp_path / "watcher.yaml").write_text(
        f"database: w.db\nrules: rules/\nfeeds:\n  - url: {feed_server.url('/f.xml')}\n"
        "    name: wire\n    first_poll_alerts: all\n"
        "channels:\n  files: {type: eml, dir: outbox}\n"
    )

    def broken(text: str) -> str:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(fts_queue, "index_form", broken)
    code, out, err = _run(tmp_path, "poll", "--all")
    assert code == 0, err
    assert "1 alert queued" in out and "delivered 1 alert" in out
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1
    assert "search index 1 item behind" in err
    monkeypatch.undo()
    assert _run(tmp_path, "poll")[0] == 0
    code, out, err = _run(tmp_path, "search", "kursk", "--json")
    assert [i["title"] for i in json.loads(out)["items"]] == ["Kursk front"]
