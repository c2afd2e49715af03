"""Every way into the store turns a database error into one StoreError: a locked or damaged
database is one line and exit 1 for the commands that meet it, never a traceback."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner

import watcher.store
from tests.feedgen import Entry, rss
from watcher.cli import cli
from watcher.exceptions import StoreError
from watcher.store import Store
from watcher.store.errors import is_store_call
from watcher.store.history import items_since

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


# Modules of watcher/store that hold no entry point: the schema, row conversions, the wrapper.
NOT_ENTRY_POINTS = {"watcher.store.schema", "watcher.store.rows", "watcher.store.errors"}
# Store methods that wrap their own errors (BEGIN and COMMIT) or cannot fail on SQL.
SELF_WRAPPED = {"transaction", "close"}


def store_modules() -> list[ModuleType]:
    names = [f"watcher.store.{m.name}" for m in pkgutil.iter_modules(watcher.store.__path__)]
    return [importlib.import_module(n) for n in sorted(names) if n not in NOT_ENTRY_POINTS]


def entry_points() -> Iterator[tuple[str, object]]:
    """Each public function of a store module that takes the store first, and each public
    method of ``Store``."""
    for module in [watcher.store, *store_modules()]:
        for name, func in vars(module).items():
            if name.startswith("_") or not inspect.isfunction(func):
                continue
            if func.__module__ != module.__name__:
                continue  # imported from elsewhere
            params = list(inspect.signature(func).parameters)
            if params and params[0] == "store":
                yield f"{module.__name__}.{name}", func
    for name, method in vars(Store).items():
        if not name.startswith("_") and inspect.isfunction(method) and name not in SELF_WRAPPED:
            yield f"Store.{name}", method


def test_every_public_entry_point_of_the_store_wraps_database_errors() -> None:
    found = dict(entry_points())
    assert len(found) > 30  # the walk found the store's functions
    assert [name for name, func in found.items() if not is_store_call(func)] == []


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
    ["feeds", "add", "https://example.org/other.rss", "--no-check"],
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
