"""``watcher rules check`` on a broken rule file: one line per error, carets on a terminal."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.terminal import run_on_terminal
from watcher.cli import cli
from watcher.cli.rules import caret_lines
from watcher.rules.match import compile_rules, match_item
from watcher.types import MatchItem, Rule

BROKEN = """\
- id: good
  any: [Kursk]
- id: unbalanced
  query: '(drones OR "fiber optic" AND Kursk'
- id: scope
  query: 'drones Title:Kursk'
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "broken.yaml").write_text(BROKEN)
    (tmp_path / "watcher.yaml").write_text(
        "database: w.db\nrules: rules/\nchannels:\n  c: {type: console}\n"
    )
    return tmp_path


def test_piped_errors_are_one_line_each(project: Path) -> None:
    result = CliRunner().invoke(cli, ["--config", str(project / "watcher.yaml"), "rules", "check"])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 2
    assert all(
        line.startswith("error: rules/broken.yaml:") or "broken.yaml:" in line for line in lines
    )
    assert "rule unbalanced" in lines[0] and "column 1" in lines[0]
    assert "rule scope" in lines[1] and "column 8" in lines[1] and "title" in lines[1]
    assert "^" not in result.stderr


def test_terminal_shows_the_query_and_a_caret_under_the_column(project: Path) -> None:
    code, out, err = run_on_terminal("--config", str(project / "watcher.yaml"), "rules", "check")
    assert code == 1
    lines = err.splitlines()
    assert "rule scope" in lines[3]
    assert lines[4] == "    drones Title:Kursk"
    assert lines[5] == "           ^"  # under the T of Title, column 8
    assert lines[1] == '    (drones OR "fiber optic" AND Kursk'
    assert lines[2] == "    ^"


def test_caret_lines_find_the_line_of_a_multi_line_query() -> None:
    assert caret_lines("a OR\n\tb c:", 9) == ["    \tb c:", "    \t  ^"]
    assert caret_lines("abc", 4) == ["    abc", "       ^"]


def test_queries_too_deep_or_too_long_are_one_line_errors_with_their_column(
    tmp_path: Path,
) -> None:
    (tmp_path / "rules").mkdir()
    deep = "(" * 170 + "kursk" + ")" * 170
    nots = "kursk " + "NOT " * 3000 + "x"
    long = " OR ".join(f"w{n}" for n in range(300))
    (tmp_path / "rules" / "deep.yaml").write_text(
        f"- id: deep\n  query: '{deep}'\n- id: nots\n  query: '{nots}'\n"
        f"- id: long\n  query: '{long}'\n"
    )
    (tmp_path / "watcher.yaml").write_text("database: w.db\nrules: rules/\n")
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "watcher.yaml"), "rules", "check"])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 3, result.stderr
    assert "rule deep" in lines[0] and "more than 64 deep at column 65" in lines[0]
    assert "rule nots" in lines[1] and "NOT NOT is not allowed at column 7" in lines[1]
    column = long.index("w256") + 1
    assert "rule long" in lines[2]
    assert f"more than 256 words and phrases at column {column}" in lines[2]
    assert "Traceback" not in result.stderr + result.stdout


def test_a_rule_nested_64_deep_compiles_and_matches() -> None:
    query = "kursk"
    for n in range(63):
        query = f"(a{n} OR {query})" if n % 2 else f"(kursk {query})"
    rule = Rule(id="deep", file="deep.yaml", query=query)
    compiled = compile_rules([rule])
    item = MatchItem(fields={"title": ("Fighting near Kursk",)})
    assert [m.rule_id for m in match_item(compiled, item)] == ["deep"]


# --- warnings ------------------------------------------------------------------------------

SCOPED = """\
- id: ok-name
  any: [Kursk]
  feeds: [wire, tag:ukraine, extra, tag:osint]
- id: typo
  any: [Kursk]
  feeds: [wrie]
- id: no-tag
  any: [Kursk]
  feeds: [tag:nosuch]
"""


@pytest.fixture
def scoped(tmp_path: Path) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "scoped.yaml").write_text(SCOPED)
    (tmp_path / "watcher.yaml").write_text(
        "database: w.db\nrules: rules/\n"
        "feeds:\n  - {url: https://wire.example/rss, name: wire, tags: [ukraine]}\n"
    )
    return tmp_path


def check(project: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(project / "watcher.yaml"), *args])


def test_a_scope_no_feed_has_is_a_warning_and_strict_makes_it_an_error(
    scoped: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(scoped)  # rule files are named relative to the current folder
    feed = ["https://x.example/rss", "--no-check", "--name", "extra", "--tag", "osint"]
    added = check(scoped, "feeds", "add", *feed)
    assert added.exit_code == 0, added.output
    result = check(scoped, "rules", "check")
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [
        "warning: rules/scoped.yaml:4: rule typo: feeds: no feed is named 'wrie';"
        " did you mean 'wire'?",
        "warning: rules/scoped.yaml:7: rule no-tag: feeds: no feed has the tag 'nosuch'",
    ]
    assert result.output.endswith("(2 warnings)\n")
    strict = check(scoped, "rules", "check", "--strict")
    assert strict.exit_code == 1
    assert [line.split(":")[0] for line in strict.stderr.splitlines()] == ["error", "error"]
    as_json = check(scoped, "rules", "check", "--strict", "--json")
    assert as_json.exit_code == 1 and '"ok": false' in as_json.output


def test_a_notify_channel_that_does_not_exist_stays_an_error(scoped: Path) -> None:
    (scoped / "rules" / "scoped.yaml").write_text("- id: a\n  any: [x]\n  notify: [nosuch]\n")
    result = check(scoped, "rules", "check")
    assert result.exit_code == 1 and "nosuch" in result.stderr


# --- term lists ----------------------------------------------------------------------------

TERMS = """\
- terms:
    kursk: [Kursk, Курск, Курськ*, 쿠르스크, 库尔斯克, クルスク]
    belgorod: [Belgorod, Белгород]
    spare: [unused words]
"""
USES = """\
- id: nk
  all: [$kursk]
  any: ["North Korean troops", 북한군]
- id: shelling
  query: '$belgorod NEAR/5 shell*'
"""


@pytest.fixture
def listed(tmp_path: Path) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "terms.yaml").write_text(TERMS)
    (tmp_path / "rules" / "uses.yaml").write_text(USES)
    (tmp_path / "watcher.yaml").write_text("database: w.db\nrules: rules/\n")
    return tmp_path


def test_an_unused_term_list_is_a_warning_and_strict_makes_it_an_error(
    listed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(listed)
    result = check(listed, "rules", "check")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "warning: rules/terms.yaml:4: terms: term list $spare is not used by any rule"
    ]
    strict = check(listed, "rules", "check", "--strict")
    assert strict.exit_code == 1 and strict.stderr.startswith("error: rules/terms.yaml:4:")
    (listed / "rules" / "terms.yaml").write_text(TERMS.replace("    spare: [unused words]\n", ""))
    assert check(listed, "rules", "check", "--strict").exit_code == 0


def test_rules_test_on_one_file_uses_the_lists_of_the_files_beside_it(
    listed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(listed)
    for target in ("rules/uses.yaml", "rules", "nk"):
        found = check(
            listed, "rules", "test", target, "--text", "북한군, 쿠르스크에서 교전", "--json"
        )
        assert found.exit_code == 0, found.output
        assert found.output == '{"matches": [{"rule_id": "nk", "terms": ["북한군", "쿠르스크"]}]}\n'


def test_a_misspelt_list_is_an_error_naming_the_closest(
    listed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(listed)
    (listed / "rules" / "uses.yaml").write_text(USES.replace("[$kursk]", "[$Kursk]"))
    result = check(listed, "rules", "check")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: rules/uses.yaml:2: rule nk: all: [0]: unknown term list $Kursk;"
        " did you mean $kursk? at column 1"
    ]
