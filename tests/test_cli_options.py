"""Global options anywhere on the line, and --json on every command that prints something.

The parametrised tests walk every registered command, so a command added later is
covered without touching this file: it must take the global options after its name,
and either print JSON with --json (an entry in ``JSON_RUNS``) or declare ``no_json``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.feedgen import Entry, rss
from watcher.cli.base import WatcherCommand, all_commands, cli

COMMANDS = all_commands()
LEAVES = [(path, c) for path, c in COMMANDS if not hasattr(c, "commands")]

# How to run each command that prints JSON, in a fresh project (see ``project``).
JSON_RUNS: dict[str, list[str]] = {
    "alerts": ["alerts"],
    "alerts retry": ["alerts", "retry"],
    "backup": ["backup", "{tmp}/copy.db"],
    "channels": ["channels"],
    "channels test": ["channels", "test", "files"],
    "feeds": ["feeds"],
    "feeds add": ["feeds", "add", "https://example.org/new.rss", "--no-check"],
    "feeds disable": ["feeds", "disable", "wire", "--reason", "paywalled"],
    "feeds enable": ["feeds", "enable", "wire"],
    "feeds import": ["feeds", "import", "{tmp}/subs.opml"],
    "feeds list": ["feeds", "list"],
    "feeds remove": ["feeds", "remove", "extra"],
    "init": ["init", "{tmp}/new"],
    "mute": ["mute", "kursk", "--for", "1h"],
    "poll": ["poll", "--all"],
    "rules check": ["rules", "check"],
    "rules test": ["rules", "test", "kursk", "--text", "Kursk"],
    "schema": ["schema", "config"],
    "search": ["search", "kursk"],
    "show": ["show", "1"],
    "status": ["status"],
    "unmute": ["unmute", "kursk"],
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A config with one local feed file, one rule and an eml channel; polled once."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text("- id: kursk\n  any: [Kursk]\n")
    now = datetime.now(UTC)
    (tmp_path / "wire.xml").write_bytes(rss([Entry("1", "Troops in Kursk", published=now)]))
    (tmp_path / "other.xml").write_bytes(rss([]))
    (tmp_path / "subs.opml").write_text(
        '<opml version="2.0"><body><outline xmlUrl="https://example.org/a.rss"/></body></opml>'
    )
    (tmp_path / "watcher.yaml").write_text(
        "database: w.db\nrules: rules/\n"
        f"feeds:\n  - url: {tmp_path / 'wire.xml'}\n    name: wire\n"
        "channels:\n  files: {type: eml, dir: outbox}\n"
    )
    assert invoke(tmp_path, "poll", "--all") == 0
    assert invoke(tmp_path, "feeds", "add", str(tmp_path / "other.xml"), "--name", "extra") == 0
    assert invoke(tmp_path, "mute", "kursk", "--for", "1h") == 0
    return tmp_path


def invoke(project: Path, *args: str) -> int:
    return CliRunner().invoke(cli, ["--config", str(project / "watcher.yaml"), *args]).exit_code


def run(project: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False, prog_name="watcher")
    return result.exit_code, result.stdout, result.stderr


def key(path: tuple[str, ...]) -> str:
    return " ".join(path)


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=key)
def test_every_command_accepts_the_global_options_after_it(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(
        cli, [*path, "--config", "x.yaml", "--db", "x.db", "--json", "-v", "-q", "--help"]
    )
    assert result.exit_code == 0, result.output
    for option in ("--config PATH", "--db PATH", "--json", "-v, --verbose", "-q, --quiet"):
        assert option in result.output


@pytest.mark.parametrize("path", [p for p, _ in LEAVES], ids=key)
def test_every_command_prints_json_or_says_it_has_none(
    path: tuple[str, ...], project: Path
) -> None:
    command = dict(LEAVES)[path]
    no_json = getattr(command, "no_json", None)
    config = ["--config", str(project / "watcher.yaml")]
    if no_json:
        code, _, err = run(project, *config, *path, "--json")
        assert code == 2 and f"{key(path)} has no JSON output: {no_json}" in err
        return
    assert key(path) in JSON_RUNS, f"add `{key(path)}` to JSON_RUNS, or declare no_json"
    args = [a.replace("{tmp}", str(project)) for a in JSON_RUNS[key(path)]]
    code, out, err = run(project, *config, *args, "--json")
    assert code == 0, err
    json.loads(out)
    code, out, err = run(project, *config, "--json", *args)  # before the command too
    assert code in (0, 1), err  # a second init or remove refuses, as it should
    if code == 0:
        json.loads(out)


def test_every_registered_command_is_a_watcher_command() -> None:
    assert all(isinstance(c, WatcherCommand | type(cli)) for _, c in COMMANDS)
    assert ("feeds", "list") in dict(COMMANDS)


def test_verbose_and_quiet_work_after_a_subcommand(project: Path) -> None:
    config = ["--config", str(project / "watcher.yaml")]
    _, _, err = run(project, *config, "poll", "--all", "-v")
    assert "INFO watcher.poll.pipeline: polled feed=wire" in err
    (project / "wire.xml").write_bytes(b"not a feed")
    _, _, err = run(project, *config, "poll", "--all", "-q")
    assert "WARNING" not in err  # -q: errors only
    _, _, err = run(project, *config, "-v", "poll", "--all", "-v")
    assert "WARNING watcher.poll.pipeline: poll failed feed=wire" in err


def test_status_json_quiet_and_config_after_the_command(project: Path) -> None:
    code, out, _ = run(project, "status", "--json", "-q", "--config", str(project / "watcher.yaml"))
    assert code == 0 and {f["name"] for f in json.loads(out)["feeds"]} == {"wire", "extra"}


def test_db_after_the_command_overrides_the_config(project: Path) -> None:
    config = ["--config", str(project / "watcher.yaml")]
    code, out, _ = run(project, *config, "poll", "--all", "--db", str(project / "b.db"))
    assert code == 0 and (project / "b.db").exists()
    code, out, _ = run(project, *config, "status", "--json", "--db", str(project / "b.db"))
    assert json.loads(out)["database"]["path"] == str(project / "b.db")


def test_json_in_a_nested_group_before_and_after(project: Path) -> None:
    config = ["--config", str(project / "watcher.yaml")]
    for args in (
        ["--json", "feeds", "list"],
        ["feeds", "--json", "list"],
        ["feeds", "list", "--json"],
    ):
        code, out, _ = run(project, *config, *args)
        assert code == 0 and {f["name"] for f in json.loads(out)} == {"wire", "extra"}
    code, out, _ = run(
        project, *config, "feeds", "add", "https://example.org/b.rss", "--no-check", "--json"
    )
    assert json.loads(out)["added"]["url"] == "https://example.org/b.rss"


def test_json_on_a_command_without_json_output_is_a_usage_error(project: Path) -> None:
    config = ["--config", str(project / "watcher.yaml")]
    code, out, err = run(project, *config, "--json", "feeds", "export")
    assert code == 2 and "watcher feeds export has no JSON output: it writes OPML" in err
    assert out == ""
    code, _, err = run(project, *config, "run", "--json")
    assert code == 2 and "no JSON output" in err
