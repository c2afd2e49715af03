"""What a start keeps from the last one: compiled rules by the rule files' contents, and a
config sync skipped while neither the config nor the feeds it touches changed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watcher.config import load_settings
from watcher.decide.schedule import next_poll_after_interval_change
from watcher.exceptions import ConfigError
from watcher.poll.runtime import open_runtime
from watcher.rules.cache import cache_folder, feeds_sync_file
from watcher.rules.match import match_item
from watcher.store import Store
from watcher.store.feeds import (
    DISABLED_BY_HAND,
    add_feed,
    disable_feed,
    enable_feed,
    feed_by_name,
    remove_feed,
    sync_config_feeds,
)
from watcher.types import FeedConfig, MatchItem

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


# --- compiled rules --------------------------------------------------------------------------


def project(tmp_path: Path, rules: str, channels: str = "files") -> Path:
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "r.yaml").write_text(rules)
    channel_lines = "".join(f"  {name}: {{type: eml, dir: out}}\n" for name in channels.split())
    config = tmp_path / "watcher.yaml"
    config.write_text("database: data/w.db\nrules: rules/\nfeeds: []\nchannels:\n" + channel_lines)
    return config


def matched(config: Path, text: str) -> list[str]:
    rt = open_runtime(load_settings(config))
    try:
        subject = MatchItem(fields={"title": (text,)})
        return [m.rule_id for m in match_item(rt.compiled, subject)]
    finally:
        rt.store.close()


def test_compiled_rules_are_kept_and_an_edited_rule_file_is_read_again(tmp_path: Path) -> None:
    config = project(tmp_path, "- id: kursk\n  any: [Kursk]\n")
    assert matched(config, "Fighting near Kursk") == ["kursk"]
    kept = list(cache_folder(tmp_path / "data" / "w.db").glob("rules-*.pickle"))
    assert len(kept) == 1
    assert matched(config, "Fighting near Kursk") == ["kursk"]  # from the cache
    # same size, other words: the key is the files' bytes, not their size or time
    (tmp_path / "rules" / "r.yaml").write_text("- id: sumy1\n  any: [Sumy]\n ")
    assert matched(config, "Fighting near Kursk") == []
    assert matched(config, "Shelling in Sumy") == ["sumy1"]
    assert list(cache_folder(tmp_path / "data" / "w.db").glob("rules-*.pickle")) != kept
    assert len(list(cache_folder(tmp_path / "data" / "w.db").glob("rules-*.pickle"))) == 1


def test_a_rule_naming_a_channel_that_went_is_an_error_though_cached(tmp_path: Path) -> None:
    rules = "- id: kursk\n  any: [Kursk]\n  notify: [alerts]\n"
    config = project(tmp_path, rules, channels="files alerts")
    assert matched(config, "Kursk") == ["kursk"]
    project(tmp_path, rules, channels="files")
    with pytest.raises(ConfigError, match="alerts"):
        matched(config, "Kursk")


def test_a_damaged_or_unwritable_cache_only_costs_compiling(tmp_path: Path) -> None:
    config = project(tmp_path, "- id: kursk\n  any: [Kursk]\n")
    assert matched(config, "Kursk") == ["kursk"]
    folder = cache_folder(tmp_path / "data" / "w.db")
    for kept in folder.glob("rules-*.pickle"):
        kept.write_bytes(b"not a pickle")
    assert matched(config, "Kursk") == ["kursk"]
    for kept in folder.glob("*"):
        kept.unlink()
    folder.rmdir()
    folder.write_text("a file where the folder would be")
    assert matched(config, "Kursk") == ["kursk"]


# --- the config's feeds ------------------------------------------------------------------------


def config_feeds(*names: str, disabled: str = "") -> list[FeedConfig]:
    return [
        FeedConfig(url=f"https://{n}.example/rss", name=n, enabled=n not in disabled.split())
        for n in names
    ]


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    """Two databases that see the same changes: one always synced in full, one remembering."""
    full, remembering = Store(tmp_path / "full.db"), Store(tmp_path / "rem" / "w.db")
    yield full, remembering
    full.close()
    remembering.close()


def feeds_rows(store: Store) -> list[dict[str, object]]:
    return [dict(r) for r in store.db.query("SELECT * FROM feeds ORDER BY id")]


Step = Callable[[Store], object]


def by_name(name: str, change: Callable[[Store, int], object]) -> Step:
    def step(store: Store) -> None:
        feed = feed_by_name(store, name)
        assert feed is not None
        change(store, feed.id)

    return step


STEPS: list[tuple[str, list[FeedConfig], int, Step | None]] = [
    ("first sync", config_feeds("a", "b", "c", disabled="c"), 900, None),
    ("nothing changed", config_feeds("a", "b", "c", disabled="c"), 900, None),
    (
        "c enabled by hand",
        config_feeds("a", "b", "c", disabled="c"),
        900,
        by_name("c", enable_feed),
    ),
    (
        "a command-line feed following the default",
        config_feeds("a", "b", "c", disabled="c"),
        900,
        lambda s: add_feed(
            s, "https://d.example/rss", name="d", interval_source="default", now=NOW
        ),
    ),
    ("the default interval changed", config_feeds("a", "b", "c", disabled="c"), 600, None),
    (
        "b disabled by hand",
        config_feeds("a", "b", "c", disabled="c"),
        600,
        by_name("b", lambda s, i: disable_feed(s, i, DISABLED_BY_HAND)),
    ),
    ("a removed from the config", config_feeds("b", "c", disabled="c"), 600, None),
    (
        "b's interval changed in the database",
        config_feeds("b", "c", disabled="c"),
        600,
        by_name(
            "b", lambda s, i: s.db.execute("UPDATE feeds SET interval_s = 60 WHERE id = ?", [i])
        ),
    ),
    (
        "b's URL changed in the database",
        config_feeds("b", "c", disabled="c"),
        600,
        by_name(
            "b",
            lambda s, i: s.db.execute(
                "UPDATE feeds SET url = 'https://elsewhere.example/rss' WHERE id = ?", [i]
            ),
        ),
    ),
    ("a back, c enabled", config_feeds("a", "b", "c"), 600, None),
    ("d removed by hand", config_feeds("a", "b", "c"), 600, lambda s: remove_feed(s, "d")),
    ("nothing changed again", config_feeds("a", "b", "c"), 600, None),
]


def test_a_remembering_sync_leaves_the_feeds_a_full_sync_leaves(
    stores: tuple[Store, Store], tmp_path: Path
) -> None:
    full, remembering = stores
    remember = feeds_sync_file(tmp_path / "rem" / "w.db")
    for label, feeds, interval, change in STEPS:
        now = NOW + timedelta(minutes=len(label))
        for store in (full, remembering):
            if change is not None:
                with store.transaction():
                    change(store)
            sync_config_feeds(
                store,
                feeds,
                now,
                interval,
                reschedule=next_poll_after_interval_change,
                remember=remember if store is remembering else None,
            )
        assert feeds_rows(remembering) == feeds_rows(full), label
    assert remember.exists()


def test_a_sync_of_an_unchanged_config_writes_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "w.db")
    remember = feeds_sync_file(tmp_path / "w.db")
    feeds = config_feeds("a", "b", "c", disabled="c")
    sync = lambda: sync_config_feeds(  # noqa: E731
        store, feeds, NOW, 900, reschedule=next_poll_after_interval_change, remember=remember
    )
    first = sync()
    statements: list[str] = []
    store.db.conn.set_trace_callback(statements.append)
    assert sync() == first
    store.db.conn.set_trace_callback(None)
    written = [s for s in statements if s.lstrip().upper().startswith(("INSERT", "UPDATE"))]
    assert not written and not any("c.url AS config_url" in s for s in statements)
    feeds = config_feeds("a", "b")  # c gone from the config: synced again
    assert [f.name for f in sync()] == ["a", "b"]
    store.close()
