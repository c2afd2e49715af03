"""docs/configuration.md documents every setting of the SETTINGS tables, and its example loads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from watcher.config import SETTINGS, documented_settings, load_settings, settings_reference

DOCS = Path(__file__).parent.parent / "docs" / "configuration.md"
START = "<!-- settings reference:"
END = "<!-- end of settings reference -->"


def docs_text() -> str:
    return DOCS.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", [name for name, _ in documented_settings()])
def test_every_setting_is_documented(name: str) -> None:
    assert f"| `{name}` |" in docs_text()


def test_every_top_level_setting_is_in_the_reference() -> None:
    names = {name for name, _ in documented_settings()}
    assert {s.name for s in SETTINGS} <= names


def test_reference_matches_the_settings_tables() -> None:
    text = docs_text()
    block = text[text.index(START) :].split("\n", 1)[1]
    block = block[: block.index(END)]
    assert block == settings_reference(), "regenerate it: python -m watcher.config"


def test_the_example_config_loads(tmp_path: Path) -> None:
    example = re.search(r"```yaml\n(.*?)```", docs_text(), re.DOTALL)
    assert example is not None
    config = tmp_path / "watcher.yaml"
    config.write_text(example[1], encoding="utf-8")
    (tmp_path / "rules").mkdir()
    (tmp_path / "feeds.opml").write_text(
        '<opml version="2.0"><body><outline xmlUrl="https://x.example/rss"/></body></opml>'
    )
    settings = load_settings(config, {"SMTP_USER": "u", "SMTP_PASSWORD": "p"})
    assert [f.url for f in settings.feeds][-1] == "https://x.example/rss"
    assert settings.channels["analysts"].options["smtp"]["port"] == 587
    assert settings.health.notify == ("analysts",)
