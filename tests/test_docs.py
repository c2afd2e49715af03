"""Every command has help and appears in README's command list; the README stays true."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from watcher.cli import cli
from watcher.cli.base import all_commands
from watcher.rules.match import compile_rules, match_item
from watcher.text import UNSPACED
from watcher.types import MatchItem, Rule

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def commands(group: click.Group) -> list[tuple[str, ...]]:
    """Every command's path; the lazily imported ones too (whichever test ran before)."""
    return [path for path, _ in all_commands(group)]


@pytest.mark.parametrize("path", commands(cli), ids=" ".join)
def test_every_command_has_help_and_is_in_the_readme(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output
    lines = [line for line in README.splitlines() if f"watcher {path[0]}" in line]
    assert any(all(word in line for word in path[1:]) for line in lines), path


@pytest.mark.parametrize("path", commands(cli), ids=" ".join)
def test_every_command_help_carries_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert "Example" in result.output, path
    examples = [line for line in result.output.splitlines() if line.strip().startswith("watcher ")]
    assert any(all(word in line.split() for word in path) for line in examples), path


def test_readme_opens_with_the_two_commands() -> None:
    head = README[:1200]
    assert "make demo" in head and "make test" in head


RULES_DOC = (Path(__file__).resolve().parent.parent / "docs" / "rules.md").read_text()


def test_rules_doc_lists_the_unspaced_scripts_as_the_code_does() -> None:
    """docs/rules.md's table of scripts written without spaces is the one the code reads."""
    listed: dict[str, list[tuple[int, int]]] = {}
    for name, cells in re.findall(r"^\| (\w+) \| (U\+[^|]*)\|", RULES_DOC, re.M):
        ranges = re.findall(r"U\+([0-9A-F]+)(?:–U\+([0-9A-F]+))?", cells)
        listed[name] = [(int(a, 16), int(b or a, 16)) for a, b in ranges]
    assert listed == {name: list(ranges) for name, ranges in UNSPACED}


@pytest.mark.parametrize(
    ("term", "text"),
    re.findall(r"^\| [\w ]+ \| `([^`]+)`[^|]* \| `([^`]+)`", RULES_DOC, re.M),
)
def test_rules_doc_examples_of_other_scripts_match(term: str, text: str) -> None:
    rules = compile_rules([Rule(id="r", file="rules/doc.yaml", query=term)])
    assert match_item(rules, MatchItem(fields={"title": (text,)})), (term, text)
