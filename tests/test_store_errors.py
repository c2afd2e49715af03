"""Every way into the store turns a database error into one StoreError: a locked or damaged
database is one line and exit 1 for the commands that meet it, never a traceback."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

import watcher.store
from tests.feedgen import Entry, rss
from watcher.cli import cli
from watcher.exceptions import StoreError
from watcher.store import Store
from watcher.store.history import items_since

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_an_error_while_a_generator_is_read_is_a_store_error(tmp_path: Path) -> None:
    with Store(tmp_path / "w.db") as store:
        batches = items_since(store, NOW)
        store.db.execute("ALTER TABLE items RENAME TO gone")
        with pytest.raises(StoreError, match="database error: .*no such table: items"):
            next(batches)


# --- a locked database on the command line ---------------------------------------------------

WRITING_COMMANDS = [
    ["poll", "--all"],
    ["mute", "kursk", "--for", "1h"],
    ["unmute", "kursk"],
    ["alerts", "retry"],
    ["feeds", "add", "https://example.org/other.rss"],
    ["feeds", "disable", "wire"],
    ["feeds", "enable", "wire"],
    ["feeds", "remove", "extra"],
]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text("- id: kursk\n  any: [Kursk]\n")
    feed = tmp_path / "f.xml"
    feed.write_bytes(rss([Entry("1", "Fighting near Kursk", published=NOW)]))
    (tmp_path / "watcher.yaml").write_text(
        f"database: w.db\nrules: rules/\nfeeds:\n  - url: {feed.as_uri()}\n    name: wire\n"
        "channels:\n  files: {type: eml, dir: outbox}\n"
    )
    for args in (["poll", "--all"], ["mute", "kursk", "--for", "1h"]):
        assert invoke(tmp_path, *args)[0] == 0
    assert invoke(tmp_path, "feeds", "add", feed.as_uri() + "?2", "--name", "extra")[0] == 0
    return tmp_path


def invoke(project: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--config", str(project / "watcher.yaml"), *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("args", WRITING_COMMANDS, ids=" ".join)
def test_a_database_locked_past_the_busy_timeout_is_one_line_and_exit_1(
    project: Path, args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watcher.store, "BUSY_TIMEOUT_S", 0.05)
    holder = sqlite3.connect(project / "w.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        code, _, err = invoke(project, *args)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert code == 1
    assert (
        err == f"error: database error: {project / 'w.db'}: OperationalError: database is locked\n"
    )
    assert invoke(project, *args)[0] == 0  # the same command once the lock is gone
