"""``watcher rules test ID|FILE --since``: rules run over the stored archive, as a user sees it.

Items enter the database through the real pipeline (fetched from a local feed server by
``watcher poll``, or through the store stage with an earlier clock); the backtest runs
through the real command line, piped and on a pseudo-terminal.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.feedgen import Entry, rss
from tests.servers import FeedServer
from tests.terminal import run_on_terminal
from watcher.cli import cli
from watcher.config import load_settings
from watcher.poll.pipeline import PollReport, feed_options, select_feeds, store_result
from watcher.poll.result import FeedResult
from watcher.poll.runtime import open_runtime
from watcher.types import Fetched, ParsedFeed, ParsedItem

NOW = datetime.now(UTC).replace(microsecond=0)

RULES = """\
- id: kursk
  any: [Kursk]
"""

CANDIDATES = """\
- id: nk-troops
  any: ["North Korean troops"]
- id: drones
  query: 'drone* NOT review'
- id: nothing
  any: [Atlantis]
"""

STORIES = [
    ("1", "North Korean troops reach Kursk", "Officials said North Korean troops crossed."),
    ("2", "Drones strike a depot", "Several drones hit the depot overnight."),
    ("3", "Drone review: the best of 2025", "A review of consumer drones."),
    ("4", "Markets rally on rate cut", "Stocks rose."),
    ("5", "More North Korean troops seen", "Satellite images show North Korean troops."),
]


@pytest.fixture
def project(tmp_path: Path, feed_server: FeedServer) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(RULES)
    (tmp_path / "candidates.yaml").write_text(CANDIDATES)
    entries = [Entry(g, t, d, published=NOW - timedelta(days=1)) for g, t, d in STORIES]
    feed_server.set("/f.xml", rss(entries))
    (tmp_path / "watcher.yaml").write_text(
        "database: w.db\nrules: rules/\n"
        f"feeds:\n  - url: {feed_server.url('/f.xml')}\n    name: wire\n"
        "channels:\n  files: {type: eml, dir: outbox}\n"
    )
    result = invoke(tmp_path, "poll", "--all")
    assert result.exit_code == 0, result.output
    return tmp_path


def invoke(project: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(project / "watcher.yaml"), *args])


def backtest_json(project: Path, *args: str) -> dict[str, Any]:
    result = invoke(project, "rules", "test", *args, "--json")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # piped: no progress bar
    return json.loads(result.stdout)


def test_counts_per_rule_with_examples_and_snippets(project: Path) -> None:
    report = backtest_json(project, str(project / "candidates.yaml"), "--since", "30d")
    assert report["items"] == 5
    by_rule = {r["rule_id"]: r for r in report["rules"]}
    assert [r["rule_id"] for r in report["rules"]] == ["nk-troops", "drones", "nothing"]
    assert by_rule["nk-troops"]["matches"] == 2
    assert by_rule["drones"]["matches"] == 1  # the review is excluded by NOT
    assert by_rule["nothing"] == {"rule_id": "nothing", "matches": 0, "examples": []}
    first = by_rule["nk-troops"]["examples"][0]
    assert first["title"] == "North Korean troops reach Kursk"
    assert first["feed"] == "wire"
    assert first["terms"] == ["north korean troops"]
    assert "**North Korean troops**" in first["snippets"][0]


def test_examples_are_capped_at_three(project: Path, tmp_path: Path) -> None:
    broad = tmp_path / "broad.yaml"
    broad.write_text("- id: any-word\n  query: 'the OR said OR drones OR stocks OR troops'\n")
    report = backtest_json(project, str(broad), "--since", "30d")
    (rule,) = report["rules"]
    assert rule["matches"] == 5 and len(rule["examples"]) == 3


def test_a_configured_rule_by_id(project: Path) -> None:
    report = backtest_json(project, "kursk", "--since", "7d")
    assert [(r["rule_id"], r["matches"]) for r in report["rules"]] == [("kursk", 1)]


def test_the_window_leaves_out_older_items(project: Path) -> None:
    rt = open_runtime(load_settings(project / "watcher.yaml"))
    try:
        old = NOW - timedelta(days=40)
        state = next(f for f in select_feeds(rt, old, all_feeds=True) if f.name == "wire")
        item = ParsedItem(guid="old", title="North Korean troops, forty days ago", published_at=old)
        result = FeedResult(feed=state, options=feed_options(rt.settings, state))
        result.fetched = Fetched(url=state.url, final_url=state.url, status=200)
        result.parsed = ParsedFeed(title="wire", link=None, format="rss20", items=(item,))
        store_result(rt, result, old, PollReport())
    finally:
        rt.store.close()
    recent = backtest_json(project, str(project / "candidates.yaml"), "--since", "30d")
    assert recent["items"] == 5 and recent["rules"][0]["matches"] == 2
    wider = backtest_json(project, str(project / "candidates.yaml"), "--since", "60d")
    assert wider["items"] == 6 and wider["rules"][0]["matches"] == 3


def test_text_report(project: Path) -> None:
    result = invoke(project, "rules", "test", str(project / "candidates.yaml"), "--since", "30d")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("5 items since ")
    assert "nk-troops: 2 items would have matched" in lines
    assert "drones: 1 item would have matched" in lines
    assert "nothing: 0 items would have matched" in lines
    assert any("North Korean troops reach Kursk  (wire)" in line for line in lines)
    assert any(line.startswith("    ") and "**North Korean troops**" in line for line in lines)


def test_bad_since_and_two_modes_are_usage_errors(project: Path) -> None:
    assert invoke(project, "rules", "test", "kursk", "--since", "soon").exit_code == 2
    assert invoke(project, "rules", "test", "kursk", "--since", "1d", "--text", "x").exit_code == 2


def test_progress_bar_on_a_terminal_only(project: Path) -> None:
    config = str(project / "watcher.yaml")
    candidates = str(project / "candidates.yaml")
    code, out, err = run_on_terminal(
        "--config", config, "rules", "test", candidates, "--since", "30d"
    )
    assert code == 0, err
    assert "matching" in err and "100%" in err
    assert "nk-troops: 2 items would have matched" in out


def test_a_folder_of_rule_files(project: Path, tmp_path: Path) -> None:
    report = backtest_json(project, str(project / "rules"), "--since", "30d")
    assert [r["rule_id"] for r in report["rules"]] == ["kursk"]
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke(project, "rules", "test", str(empty), "--since", "30d")
    assert result.exit_code == 1
    assert "no *.yaml rule files in this folder" in result.output
