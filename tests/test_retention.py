"""Retention: old unmatched items and old poll rows go, in small batches; the rest stays."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.feedgen import Entry, rss
from tests.servers import FeedServer
from tests.storing import add_match, poll, upsert_item
from watcher.archive.retention import prune_archive
from watcher.cli import cli
from watcher.config import load_settings
from watcher.store import Store
from watcher.store.feeds import add_feed, feed_by_name
from watcher.store.fts_queue import catch_up
from watcher.store.outbox import add_alert, get_alert
from watcher.types import AlertStatus, ParsedItem, Settings

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(days=40)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    path = tmp_path / "watcher.yaml"
    path.write_text("database: w.db\nretention: 30d\npoll_log_retention: 7d\n")
    return load_settings(path)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    with Store(settings.database) as opened:
        yield opened


def add_item(store: Store, feed_id: int, guid: str, title: str, seen: datetime) -> int:
    item = ParsedItem(guid=guid, title=title, link=f"https://example.org/{guid}")
    return upsert_item(store, feed_id, item, seen).id


def fts_ids(store: Store, word: str) -> set[int]:
    catch_up(store)
    rows = store.db.execute("SELECT rowid FROM items_fts WHERE items_fts MATCH ?", [word])
    return {r[0] for r in rows}


def test_old_unmatched_items_go_with_their_search_rows(store: Store, settings: Settings) -> None:
    feed = add_feed(store, "https://example.org/f", name="wire", now=LONG_AGO)
    old = [add_item(store, feed.id, f"old{n}", f"Tractor story {n}", LONG_AGO) for n in range(7)]
    matched = add_item(store, feed.id, "m", "Tractor in Kursk", LONG_AGO)
    add_match(store, matched, "kursk", ("kursk",), LONG_AGO)
    listed = add_item(store, feed.id, "a", "Tractor copy", LONG_AGO)
    alert = add_alert(store,
        rule_id="kursk", channel="mail", item_ids=[matched, listed],
        status=AlertStatus.SENT, now=LONG_AGO,
    )  # fmt: skip
    recent = add_item(store, feed.id, "new", "Tractor today", NOW - timedelta(days=1))

    report = prune_archive(store, settings, NOW, batch=3)

    assert report.items == 7 and report.error is None
    remaining = {r[0] for r in store.db.execute("SELECT id FROM items")}
    assert remaining == {matched, listed, recent}
    assert fts_ids(store, "tractor") == {matched, listed, recent}
    assert not set(old) & fts_ids(store, "story")
    store.db.execute("INSERT INTO items_fts(items_fts) VALUES ('integrity-check')")
    assert get_alert(store, alert).item_ids == (matched, listed)
    assert store.db.execute("SELECT count(*) FROM matches").fetchone()[0] == 1
    assert prune_archive(store, settings, NOW).items == 0  # nothing left to do


def test_pruning_runs_in_batches_each_its_own_transaction(store: Store, settings: Settings) -> None:
    feed = add_feed(store, "https://example.org/f", name="wire", now=LONG_AGO)
    for n in range(10):
        add_item(store, feed.id, f"g{n}", f"Item {n}", LONG_AGO + timedelta(minutes=n))
    add_item(store, feed.id, "newest", "Newest", NOW)
    statements: list[str] = []
    store.db.conn.set_trace_callback(statements.append)
    try:
        report = prune_archive(store, settings, NOW, batch=4)
    finally:
        store.db.conn.set_trace_callback(None)
    assert report.items == 10
    begins = [s for s in statements if s.startswith("BEGIN IMMEDIATE")]
    deletes = [s for s in statements if s.lstrip().startswith("DELETE FROM items")]
    assert len(set(deletes)) == 3  # 4 + 4 + 2 items (triggers repeat a statement in the trace)
    assert len(begins) >= 3 + 2  # items, then polls and story keys: separate commits


def test_the_newest_item_is_kept_so_its_id_is_never_reused(
    store: Store, settings: Settings
) -> None:
    feed = add_feed(store, "https://example.org/f", name="wire", now=LONG_AGO)
    first = add_item(store, feed.id, "1", "One", LONG_AGO)
    last = add_item(store, feed.id, "2", "Two", LONG_AGO)
    assert prune_archive(store, settings, NOW).items == 1
    assert [r[0] for r in store.db.execute("SELECT id FROM items")] == [last]
    assert first != last


def test_old_poll_rows_go_and_story_keys_of_gone_stories_are_forgotten(
    store: Store, settings: Settings
) -> None:
    feed = add_feed(store, "https://example.org/f", name="wire", now=LONG_AGO)
    for days in (30, 8, 6, 1):
        poll(store, feed.id, NOW - timedelta(days=days))
    add_item(store, feed.id, "old", "Gone story", LONG_AGO)
    kept = add_item(store, feed.id, "kept", "Kept story", LONG_AGO)
    add_match(store, kept, "r", ("kept",), LONG_AGO)
    add_item(store, feed.id, "new", "New story", NOW)

    report = prune_archive(store, settings, NOW)

    assert report.polls == 4  # 30 and 8 days ago, and the two that stored the old items
    started = [r[0] for r in store.db.execute("SELECT started_at FROM polls ORDER BY 1")]
    assert started == ["2026-05-26T12:00:00Z", "2026-05-31T12:00:00Z", "2026-06-01T12:00:00Z"]
    keys = {r[0] for r in store.db.execute("SELECT key FROM _story_keys WHERE kind = 'title'")}
    assert keys == {"kept story", "new story"} and report.story_keys == 2  # link + title


def test_watcher_poll_prunes_at_the_end(tmp_path: Path, feed_server: FeedServer) -> None:
    feed_server.set("/f.xml", rss([Entry("1", "Fresh item", published=datetime.now(UTC))]))
    (tmp_path / "watcher.yaml").write_text(
        f"database: w.db\nretention: 30d\nfeeds:\n  - url: {feed_server.url('/f.xml')}\n"
        "    name: wire\nchannels:\n  files: {type: eml, dir: outbox}\n"
    )
    with Store(tmp_path / "w.db") as store:
        feed = add_feed(store, feed_server.url("/f.xml"), name="wire", now=LONG_AGO)
        add_item(store, feed.id, "ancient", "Ancient item", datetime(2020, 1, 1, tzinfo=UTC))
    config = str(tmp_path / "watcher.yaml")
    result = CliRunner().invoke(cli, ["--config", config, "poll", "--all", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["pruned"]["items"] == 1
    with Store(tmp_path / "w.db") as store:
        titles = [r[0] for r in store.db.execute("SELECT title FROM items")]
    assert titles == ["Fresh item"]


def test_status_shows_database_size_and_row_counts(tmp_path: Path, feed_server: FeedServer) -> None:
    feed_server.set("/f.xml", rss([Entry("1", "One"), Entry("2", "Two")]))
    (tmp_path / "watcher.yaml").write_text(
        f"database: w.db\nfeeds:\n  - url: {feed_server.url('/f.xml')}\n    name: wire\n"
        "channels:\n  files: {type: eml, dir: outbox}\n"
    )
    config = ["--config", str(tmp_path / "watcher.yaml")]
    assert CliRunner().invoke(cli, [*config, "poll", "--all"]).exit_code == 0
    result = CliRunner().invoke(cli, [*config, "status"])
    assert result.exit_code == 0
    line = next(x for x in result.stdout.splitlines() if x.startswith("database: "))
    assert str(tmp_path / "w.db") in line
    assert line.endswith(": 1 feeds, 2 items, 0 matches, 0 alerts, 1 polls")
    assert re.search(r", \d+(\.\d)? (KB|MB): ", line)
    data = json.loads(CliRunner().invoke(cli, [*config, "status", "--json"]).stdout)["database"]
    assert data["rows"] == {"feeds": 1, "items": 2, "matches": 0, "alerts": 0, "polls": 1}
    wal = tmp_path / "w.db-wal"
    expected = (tmp_path / "w.db").stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    assert data["size_bytes"] == expected > 0


def test_backup_copies_the_database_while_a_writer_holds_it(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.set("/f.xml", rss([Entry("1", "One"), Entry("2", "Two")]))
    (tmp_path / "watcher.yaml").write_text(
        f"database: w.db\nfeeds:\n  - url: {feed_server.url('/f.xml')}\n    name: wire\n"
        "channels:\n  files: {type: eml, dir: outbox}\n"
    )
    config = ["--config", str(tmp_path / "watcher.yaml")]
    assert CliRunner().invoke(cli, [*config, "poll", "--all"]).exit_code == 0
    copy = tmp_path / "backups" / "copy.db"
    with Store(tmp_path / "w.db") as writer, writer.transaction():
        writer.db.execute("UPDATE feeds SET title = 'uncommitted'")
        result = CliRunner().invoke(cli, [*config, "backup", str(copy)])
    assert result.exit_code == 0, result.output
    assert f"to {copy}" in result.stdout
    with Store(copy) as restored:
        assert [r[0] for r in restored.db.execute("SELECT title FROM items ORDER BY id")] == [
            "One",
            "Two",
        ]
        assert feed_by_name(restored, "wire").title != "uncommitted"  # type: ignore[union-attr]
    again = CliRunner().invoke(cli, [*config, "backup", str(copy)])
    assert again.exit_code == 1 and "use --force" in again.stderr
    forced = CliRunner().invoke(cli, [*config, "backup", str(copy), "--force", "--json"])
    assert forced.exit_code == 0 and json.loads(forced.stdout)["bytes"] == copy.stat().st_size
    assert not list(copy.parent.glob("*.partial"))
