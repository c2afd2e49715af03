"""Alias bombs, cycles and deep nesting are refused before any YAML value is built."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from watcher import yamlnodes
from watcher.config import load_settings
from watcher.exceptions import ConfigError
from watcher.rules.load import load_rules
from watcher.yamlnodes import check_expansion


def bomb(levels: int, key: str = "x") -> str:
    """Anchors that each repeat the previous one nine times: 9**levels strings."""
    lines = [f"{key}0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels + 1):
        lines.append(f"{key}{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def compose(text: str) -> yaml.Node:
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    assert node is not None
    return node


def test_config_alias_bomb_is_one_problem_with_its_line_at_once(tmp_path: Path) -> None:
    config = tmp_path / "watcher.yaml"
    config.write_text(bomb(6) + "poll:\n  user_agent: *a6\n", encoding="utf-8")
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        load_settings(config, {})
    assert time.monotonic() - started < 1
    (problem,) = info.value.problems
    assert problem.file == str(config)
    assert problem.line == 1
    assert "alias bomb" in problem.message
    assert problem.message.startswith("invalid YAML: aliases make the")


def test_rule_file_alias_bomb_is_refused_the_same_way(tmp_path: Path) -> None:
    rules = tmp_path / "bomb.yaml"
    lines = bomb(6, "notify").splitlines()  # notify0: &a0 [...], notify1: &a1 [*a0, ...], ...
    rules.write_text("".join(f"- id: r{i}\n  any: [a]\n  {x}\n" for i, x in enumerate(lines)))
    with pytest.raises(ConfigError) as info:
        load_rules([rules])
    (problem,) = info.value.problems
    assert "alias bomb" in problem.message and problem.line == 1


def test_an_alias_inside_its_own_value_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "watcher.yaml"
    config.write_text("feeds: &f\n  - url: https://a.example/\n  - *f\n", encoding="utf-8")
    (problem,) = pytest.raises(ConfigError, load_settings, config, {}).value.problems
    assert "an alias refers to a value that contains it" in problem.message
    assert problem.line == 1  # where the anchored value starts


@pytest.mark.parametrize("aliases", [True, False], ids=["text-with-star", "text-without"])
def test_nesting_deeper_than_the_limit_is_refused(aliases: bool) -> None:
    deep = "[" * (yamlnodes.MAX_DEPTH + 1) + "]" * (yamlnodes.MAX_DEPTH + 1)
    with pytest.raises(yaml.MarkedYAMLError, match="nested more than 100 deep"):
        check_expansion(compose(deep), aliases)
    with pytest.raises(yaml.MarkedYAMLError, match="nested more than 100 deep"):
        # a value 100 deep: the same limit with and without the alias check
        check_expansion(compose("[" * 100 + "1" + "]" * 100), aliases)
    check_expansion(compose("[" * 99 + "1" + "]" * 99), aliases)
    check_expansion(compose("[" * 100 + "]" * 100), aliases)


def test_a_config_too_deep_without_any_alias_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "watcher.yaml"
    config.write_text("feeds: " + "[" * 120 + "]" * 120 + "\n", encoding="utf-8")
    (problem,) = pytest.raises(ConfigError, load_settings, config, {}).value.problems
    assert "nested more than 100 deep" in problem.message


def test_merging_a_shared_mapping_into_many_entries_is_no_bomb(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(yamlnodes, "MAX_EXPANDED", 100)
    shared = "d: &d {" + ", ".join(f"k{i}: {i}" for i in range(8)) + "}\n"
    feeds = "".join(f"f{i}: {{<<: *d, url: u{i}}}\n" for i in range(50))
    check_expansion(compose(shared + feeds))  # about 5x what is written: fine
    with pytest.raises(yaml.MarkedYAMLError, match="alias bomb"):
        check_expansion(compose(bomb(3)))  # 9**3 from about 40 values written


def test_ordinary_aliases_and_empty_documents_pass() -> None:
    check_expansion(None)
    check_expansion(compose("a: &x [1, 2]\nb: *x\nc: {<<: {k: v}}\n"))
