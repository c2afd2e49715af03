"""The command line as a user meets it: output, exit codes, and one real subprocess run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlite_utils import Database

from tests.feedgen import Entry, rss
from tests.servers import FeedServer
from watcher import __version__
from watcher.cli import cli
from watcher.config import load_settings
from watcher.store import schema

ROOT = Path(__file__).resolve().parent.parent

RULES = """\
- id: nk-troops-kursk
  description: North Korean forces in the Kursk region
  any: ["North Korean troops", "DPRK troops"]
  all: [Kursk]
  none: ["video game"]
  severity: high
- id: drones
  any: ["fiber-optic drone*"]
"""


@pytest.fixture
def project(tmp_path: Path, feed_server: FeedServer) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(RULES)
    feed_server.set(
        "/f.xml",
        rss(
            [
                Entry("1", "DPRK troops push into Kursk villages", published=datetime.now(UTC)),
                Entry("2", "Markets rally on rate cut", published=datetime.now(UTC)),
            ]
        ),
        etag='"x"',
    )
    (tmp_path / "watcher.yaml").write_text(
        "database: data/w.db\nrules: rules/\n"
        f"feeds:\n  - url: {feed_server.url('/f.xml')}\n    name: wire\n"
        "channels:\n  console: {type: console}\n  files: {type: eml, dir: outbox}\n"
    )
    return tmp_path


def invoke(project: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--config", str(project / "watcher.yaml"), *args])
    return result.exit_code, result.stdout, result.stderr


def test_version_and_help_for_every_command() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output
    for command in ["poll", "status", "init", "feeds", "alerts", "rules"]:
        result = CliRunner().invoke(cli, [command, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output, command


def test_usage_error_exits_2() -> None:
    result = CliRunner().invoke(cli, ["poll", "--bogus"])
    assert result.exit_code == 2


def test_poll_prints_alerts_then_nothing_new(project: Path) -> None:
    code, out, _ = invoke(project, "poll", "--all")
    assert code == 0
    assert "nk-troops-kursk: DPRK troops push into Kursk villages" in out
    assert "matched: dprk troops, kursk" in out
    assert "**DPRK troops**" in out  # highlighted snippet, marks kept when piped
    assert "polled 1 feed: 2 new items, 1 match, 2 alerts queued" in out
    assert len(list((project / "outbox").glob("*.eml"))) == 1
    code, out, _ = invoke(project, "poll", "--all")
    assert code == 0 and "polled 1 feed: nothing new" in out and "DPRK" not in out


def test_poll_json_reports_a_pass_that_queued_alerts(project: Path) -> None:
    config = project / "watcher.yaml"
    config.write_text(config.read_text().replace("  console: {type: console}\n", ""))
    code, out, err = invoke(project, "poll", "--all", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert (data["poll"]["new_items"], data["poll"]["alerts"]) == (2, 1)
    assert data["delivery"]["sent"] == 1 and "queued" not in data["poll"]


def test_status_shows_each_feed_and_the_queue(project: Path) -> None:
    invoke(project, "poll", "--all")
    code, out, _ = invoke(project, "status")
    assert code == 0 and "wire" in out and "ok" in out
    assert "2 sent" in out
    code, out, _ = invoke(project, "status", "--json")  # --json after the subcommand
    data = json.loads(out)
    assert data["feeds"][0]["name"] == "wire" and data["feeds"][0]["items"] == 2
    assert data["feeds"][0]["next_poll_at"].endswith("Z")
    assert data["alerts"]["sent"] == 2


def test_poll_refuses_while_another_process_holds_the_lock(project: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(project / "data" / "w.db")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        code, _, err = invoke(project, "poll")
    finally:
        holder.communicate("")
    assert code == 1 and f"the running daemon (pid {holder.pid})" in err
    code, _, _ = invoke(project, "poll")
    assert code == 0


HOLD_LOCK = """
import sys
from pathlib import Path
from watcher.lock import hold_lock
with hold_lock(Path(sys.argv[1]), "run"):
    print("locked", flush=True)
    sys.stdin.read()
"""


def test_rules_check_reports_ok_and_errors_with_file_and_line(project: Path) -> None:
    code, out, _ = invoke(project, "rules", "check")
    assert code == 0 and out.startswith("ok: 2 rules in 1 file")
    (project / "rules" / "bad.yaml").write_text("- id: broken\n  any: [Kursk]\n  severty: high\n")
    code, out, err = invoke(project, "rules", "check")
    assert code == 1
    assert "bad.yaml:3" in err and "severity" in err and "Traceback" not in err


def test_rules_test_item_json_prints_the_spec_shape(project: Path, tmp_path: Path) -> None:
    item = tmp_path / "item.json"
    item.write_text(json.dumps({"title": "Fighting near Kursk", "summary": "DPRK troops seen."}))
    code, out, _ = invoke(
        project, "rules", "test", str(project / "rules" / "r.yaml"), "--item", str(item), "--json"
    )
    assert code == 0
    assert json.loads(out) == {
        "matches": [{"rule_id": "nk-troops-kursk", "terms": ["dprk troops", "kursk"]}]
    }
    code, out, _ = invoke(
        project, "rules", "test", str(project / "rules" / "r.yaml"), "--text", "Weather", "--json"
    )
    assert code == 0 and out == '{"matches": []}\n'  # one line, as SPEC §4 prints it


def test_rules_test_item_json_takes_the_item_s_language(project: Path, tmp_path: Path) -> None:
    rules = project / "rules" / "lang.yaml"
    rules.write_text("- id: ko-only\n  any: [쿠르스크]\n  languages: [ko]\n")
    item = tmp_path / "item.json"
    for language, expected in (("ko-KR", ["ko-only"]), ("zh", []), (None, ["ko-only"])):
        item.write_text(json.dumps({"title": "북한군, 쿠르스크에서 교전", "language": language}))
        code, out, _ = invoke(project, "rules", "test", str(rules), "--item", str(item), "--json")
        assert code == 0 and [m["rule_id"] for m in json.loads(out)["matches"]] == expected
    item.write_text(json.dumps({"title": "x", "language": 7}))
    code, _, err = invoke(project, "rules", "test", str(rules), "--item", str(item))
    assert code == 1 and "language: must be a language tag" in err


def test_rules_test_by_rule_id_and_plain_output(project: Path) -> None:
    code, out, _ = invoke(
        project, "rules", "test", "drones", "--text", "Fiberoptic drones over Kupiansk"
    )
    assert code == 0 and out.strip() == "drones: fiber-optic drone*"


def test_rules_test_on_an_invalid_file_exits_1_with_the_error(
    project: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- id: x\n  query: '\"unbalanced'\n")
    code, out, err = invoke(project, "rules", "test", str(bad), "--text", "x", "--json")
    assert code == 1 and out == "" and "bad.yaml" in err and "Traceback" not in err


def test_a_config_error_is_one_line_per_problem_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "watcher.yaml"
    path.write_text("database: x.db\ndefaults:\n  intervall: 5m\nchannels:\n  c: {type: sms}\n")
    result = CliRunner().invoke(cli, ["--config", str(path), "status"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("error: ") for line in lines)
    assert "did you mean 'interval'" in result.stderr and "Traceback" not in result.stderr


def test_init_scaffolds_a_project_that_checks_clean(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["init", str(tmp_path / "p")])
    assert result.exit_code == 0
    assert f"next: `cd {tmp_path / 'p'}`, edit the feeds in watcher.yaml" in result.stdout
    result = CliRunner().invoke(
        cli, ["--config", str(tmp_path / "p" / "watcher.yaml"), "rules", "check"]
    )
    assert result.exit_code == 0 and "ok: 2 rules" in result.stdout
    settings = load_settings(tmp_path / "p" / "watcher.yaml", {})
    assert settings.defaults.full_text == "short"  # new users match the article of teasers
    again = CliRunner().invoke(cli, ["init", str(tmp_path / "p")])
    assert again.exit_code == 1 and "already exists" in again.stderr


def test_feeds_add_list_remove(project: Path) -> None:
    code, out, _ = invoke(
        project, "feeds", "add", "https://example.org/world.rss", "--no-check", "--tag", "world"
    )
    assert code == 0 and "example-org-world-rss" in out
    code, out, _ = invoke(project, "feeds", "list", "--json")
    assert {f["name"]: f["source"] for f in json.loads(out)} == {
        "wire": "config",
        "example-org-world-rss": "cli",
    }
    code, _, err = invoke(project, "feeds", "remove", "wire")
    assert code == 1 and "watcher.yaml" in err
    code, out, _ = invoke(project, "feeds", "remove", "example-org-world-rss")
    assert code == 0


def test_python_dash_m_watcher_poll_end_to_end(project: Path, feed_server: FeedServer) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable,
        "-m",
        "watcher",
        "--config",
        str(project / "watcher.yaml"),
        "poll",
        "--all",
    ]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert first.returncode == 0, first.stderr
    assert "nk-troops-kursk: DPRK troops push into Kursk villages" in first.stdout
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert second.returncode == 0 and "nothing new" in second.stdout
    assert feed_server.requests[-1].header("If-None-Match") == '"x"'
    eml = next((project / "outbox").glob("*.eml")).read_text()
    assert "Subject: [watcher] nk-troops-kursk: DPRK troops push into Kursk villages" in eml


def test_alerts_lists_what_alerted_with_titles(project: Path) -> None:
    invoke(project, "poll", "--all")
    code, out, _ = invoke(project, "alerts", "--rule", "nk-troops-kursk")
    assert code == 0
    lines = [line for line in out.splitlines() if "nk-troops-kursk" in line]
    assert len(lines) == 2  # one per channel
    assert all("sent" in line and "DPRK troops push into Kursk villages" in line for line in lines)
    code, out, _ = invoke(project, "alerts", "--json")
    assert {a["title"] for a in json.loads(out)} == {"DPRK troops push into Kursk villages"}


def test_poll_reports_a_failed_feed_once_and_exits_0(
    project: Path, feed_server: FeedServer
) -> None:
    feed_server.set("/gone.xml", b"", status=500)
    config = project / "watcher.yaml"
    config.write_text(
        config.read_text().replace(
            "channels:", f"  - url: {feed_server.url('/gone.xml')}\n    name: broken\nchannels:"
        )
    )
    code, out, err = invoke(project, "poll", "--all")
    assert code == 0
    assert "polled 2 feeds (1 failed): 2 new items" in out
    assert err.count("HTTP 500") == 1 and "feed broken failed" in err


def test_output_into_a_closed_pipe_is_no_traceback(project: Path) -> None:
    assert invoke(project, "poll", "--all")[0] == 0
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `watcher alerts | head -0`: nobody reads the output
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "watcher", "--config", str(project / "watcher.yaml"), "alerts"]
    try:
        done = subprocess.run(
            cmd, stdout=write_end, stderr=subprocess.PIPE, text=True, env=env, timeout=60
        )
    finally:
        os.close(write_end)
    assert done.stderr == ""
    assert done.returncode == 1


def test_channels_lists_each_channel_as_a_table(project: Path) -> None:
    code, out, err = invoke(project, "channels")
    assert code == 0, err
    lines = [line.split() for line in out.splitlines()]
    assert lines[0] == ["name", "type", "min", "severity", "target"]
    assert lines[1] == ["console", "console", "info", "-"]
    assert lines[2] == ["files", "eml", "info", f"dir={project / 'outbox'}"]
    code, out, _ = invoke(project, "channels", "--json")
    assert [c["name"] for c in json.loads(out)] == ["console", "files"]


def test_tables_show_times_in_the_display_timezone(project: Path) -> None:
    config = project / "watcher.yaml"
    config.write_text(config.read_text() + "display_timezone: Asia/Tokyo\n")
    assert invoke(project, "poll", "--all")[0] == 0
    code, out, _ = invoke(project, "status")
    assert code == 0 and " JST " in out.splitlines()[1]
    code, out, _ = invoke(project, "alerts")
    assert code == 0 and " JST " in out.splitlines()[1]
    code, out, _ = invoke(project, "search", "kursk")
    assert code == 0 and out.splitlines()[1].split()[2] == "JST"
    code, out, _ = invoke(project, "mute", "drones", "--for", "1h")
    assert code == 0 and out.startswith("muted rule drones until ") and out.endswith(" JST\n")
    code, out, _ = invoke(project, "alerts", "--json")
    assert json.loads(out)[0]["created_at"].endswith("Z")  # JSON stays UTC


def test_alerts_retry_of_an_unknown_id_says_so(project: Path) -> None:
    invoke(project, "poll", "--all")
    code, out, err = invoke(project, "alerts", "retry", "1", "999")
    assert code == 1 and out == ""
    assert err == "error: no alert 999\n"
    code, out, err = invoke(project, "alerts", "retry", "1")
    assert code == 0
    assert err == "not failed, left alone: alert 1\n"
    assert out == "no failed alerts to retry\n"


# --- read-only and missing databases ---------------------------------------------------------

READ_ONLY_COMMANDS = [
    ["status"],
    ["search", "kursk"],
    ["alerts"],
    ["feeds", "list"],
    ["feeds", "export"],
]

# Runs watcher without the capabilities that let root ignore permission bits, so that a
# chmod binds the command whether the tests run as root or not (prctl PR_CAPBSET_DROP: the
# exec'd python gets no CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH).
AS_A_PLAIN_USER = """
import ctypes, os, sys
if os.geteuid() == 0:
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")
os.execv(sys.executable, [sys.executable, "-m", "watcher", *sys.argv[1:]])
"""


def run_as_plain_user(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-c", AS_A_PLAIN_USER, "--config", str(project / "watcher.yaml")]
    return subprocess.run(
        [*cmd, *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


@pytest.mark.parametrize("command", READ_ONLY_COMMANDS, ids=" ".join)
def test_a_read_only_command_on_a_missing_database_says_so(
    project: Path, command: list[str]
) -> None:
    code, _, err = invoke(project, *command)
    database = project / "data" / "w.db"
    assert code == 1
    assert (
        err
        == f"error: no database at {database}: `watcher poll` (or `run`, or `init`) creates it\n"
    )
    assert not (project / "data").exists()


def test_a_read_only_command_on_an_older_database_asks_for_a_poll(project: Path) -> None:
    (project / "data").mkdir()
    db = Database(project / "data" / "w.db")
    schema.MIGRATIONS.apply(db, stop_before="0008_interval_source")
    db.close()
    for command in READ_ONLY_COMMANDS:
        code, _, err = invoke(project, *command)
        assert code == 1 and "run watcher poll (or run) once to upgrade the database" in err
    assert "interval_source" not in Database(project / "data" / "w.db")["feeds"].columns_dict
    assert invoke(project, "poll")[0] == 0  # a writing command upgrades it
    assert invoke(project, "status")[0] == 0


def test_read_only_database_and_folder_read_commands_work_writing_ones_say_why(
    project: Path,
) -> None:
    assert invoke(project, "poll", "--all")[0] == 0
    folder = project / "data"
    database = folder / "w.db"
    assert not database.with_name("w.db-wal").exists()  # closed cleanly
    database.chmod(0o444)
    folder.chmod(0o555)
    try:
        status = run_as_plain_user(project, "status", "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["feeds"][0]["items"] == 2
        found = run_as_plain_user(project, "search", "kursk")
        assert found.returncode == 0 and "DPRK troops push into **Kursk**" in found.stdout
        for command, shown in ((["alerts"], "nk-troops-kursk"), (["feeds", "list"], "wire")):
            result = run_as_plain_user(project, *command)
            assert result.returncode == 0 and shown in result.stdout, command
        for command in (["poll"], ["run"]):
            result = run_as_plain_user(project, *command)
            assert result.returncode == 1, result.stderr
            assert len(result.stderr.splitlines()) == 1, result.stderr
            assert str(folder) in result.stderr and "permission denied" in result.stderr
        database.with_name("w.db.lock").chmod(0o666)
        folder.chmod(0o755)  # the folder writable, the file still not
        result = run_as_plain_user(project, "poll")
        assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
        assert (
            result.stderr
            == f"error: {database}: permission denied: the database file is read-only\n"
        )
    finally:
        folder.chmod(0o755)
        database.chmod(0o644)


def test_every_module_that_registers_a_command_is_named_for_it() -> None:
    """Commands are imported when they run (cli/__init__.py names each one's module): a
    command missing there would be missing from the command line."""
    from watcher.cli import cli as group

    folder = Path(__file__).resolve().parent.parent / "watcher" / "cli"
    registering = {p.stem for p in folder.glob("*.py") if "@cli." in p.read_text()}
    named = {module for modules in group.lazy.values() for module in modules}
    assert registering <= named
    result = CliRunner().invoke(group, ["--help"])
    listed = {
        line.split()[0] for line in result.output.split("Commands:")[1].splitlines() if line.strip()
    }
    assert listed == set(group.lazy)
