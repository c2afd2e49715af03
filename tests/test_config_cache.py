"""The checked settings kept between runs (config_cache.py): the same settings as reading
the config, new ones whenever the config or its rule folders change, no secrets on disk."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from watcher.config import load_settings
from watcher.config_cache import CACHE_FOLDER, load_settings_cached

CONFIG = """\
database: watcher.db
rules: [rules/]
feeds:
  - {url: 'https://news.example.org/feed', name: news}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "kursk.yaml").write_text("- id: kursk\n  any: [Kursk]\n")
    (tmp_path / "watcher.yaml").write_text(CONFIG)
    return tmp_path


def entries(project: Path) -> list[Path]:
    return sorted((project / CACHE_FOLDER).glob("settings-*.pickle"))


def test_the_cached_settings_are_those_of_the_file(project: Path) -> None:
    config = project / "watcher.yaml"
    first = load_settings_cached(config)
    assert len(entries(project)) == 1
    assert load_settings_cached(config) == first == load_settings(config)
    (entry,) = entries(project)
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600


def test_an_edited_config_is_read_again(project: Path) -> None:
    config = project / "watcher.yaml"
    load_settings_cached(config)
    config.write_text(CONFIG + "  - {url: 'https://wire.example.org/feed', name: wire}\n")
    assert [f.name for f in load_settings_cached(config).feeds] == ["news", "wire"]
    assert len(entries(project)) == 1  # the old entry is dropped


def test_a_rule_file_added_to_a_named_folder_is_seen(project: Path) -> None:
    config = project / "watcher.yaml"
    assert [p.name for p in load_settings_cached(config).rules] == ["kursk.yaml"]
    (project / "rules" / "drones.yaml").write_text("- id: drones\n  any: [drone]\n")
    assert [p.name for p in load_settings_cached(config).rules] == ["drones.yaml", "kursk.yaml"]


def test_a_config_naming_an_environment_variable_is_never_cached(project: Path) -> None:
    config = project / "watcher.yaml"
    config.write_text(
        CONFIG + "channels:\n  hook: {type: webhook, url: 'https://hooks.example.org/x',"
        " secret: '${HOOK_SECRET}'}\n"
    )
    settings = load_settings_cached(config, {**os.environ, "HOOK_SECRET": "s3cret-value"})
    assert settings.channels["hook"].options["secret"] == "s3cret-value"
    assert entries(project) == []


def test_an_invalid_config_is_an_error_every_time(project: Path) -> None:
    config = project / "watcher.yaml"
    config.write_text(CONFIG + "poll: {workers: 0}\n")
    for _ in range(2):
        with pytest.raises(Exception, match="poll.workers"):
            load_settings_cached(config)
    assert entries(project) == []


def test_a_folder_that_cannot_be_written_means_no_cache(project: Path) -> None:
    (project / CACHE_FOLDER).write_text("a file where the folder would be")
    config = project / "watcher.yaml"
    assert load_settings_cached(config) == load_settings(config)
