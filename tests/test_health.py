"""Health of the sources: the pure decisions, health alerts through the normal outbox
(`watcher poll` and `watcher run` against a local server), and `status --check`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.feedgen import Entry, rss
from tests.servers import FeedServer
from tests.test_daemon import Daemon, eml_subjects, wait_for
from watcher.cli import cli
from watcher.decide.health import (
    check_problems,
    event_after_poll,
    health_channels,
    heartbeat_max_age_s,
    quiet_event,
)
from watcher.deliver.message import health_message
from watcher.store import Store
from watcher.store.rows import to_text
from watcher.store.state import write_heartbeat
from watcher.types import FeedState, FeedStatus, HealthEvent, HealthKind

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def feed(**kw: object) -> FeedState:
    base: dict[str, object] = {"id": 1, "url": "https://x.example/f.xml", "name": "wire"}
    return FeedState(**{**base, **kw})  # type: ignore[arg-type]


# --- pure decisions ------------------------------------------------------------------------


def test_failing_is_raised_once_when_the_threshold_is_reached() -> None:
    err = FeedStatus.ERROR
    assert event_after_poll(feed(consecutive_failures=0), err, "HTTP 500", 3) is None
    assert event_after_poll(feed(consecutive_failures=1), err, "HTTP 500", 3) is None
    event = event_after_poll(feed(consecutive_failures=2), err, "HTTP 500", 3)
    assert event is not None and event.kind is HealthKind.FAILING
    assert "3 failed polls in a row" in event.detail and "HTTP 500" in event.detail
    assert event_after_poll(feed(consecutive_failures=3), err, "HTTP 500", 3) is None


def test_recovered_only_after_having_been_failing() -> None:
    ok = FeedStatus.OK
    assert event_after_poll(feed(consecutive_failures=2), ok, None, 3) is None
    event = event_after_poll(feed(consecutive_failures=4), FeedStatus.NOT_MODIFIED, None, 3)
    assert event is not None and event.kind is HealthKind.RECOVERED
    assert event_after_poll(feed(consecutive_failures=9), FeedStatus.DISABLED, "x", 3) is None


def test_quiet_once_per_quiet_spell() -> None:
    week = 7 * 86400
    old = NOW - timedelta(days=8)
    assert quiet_event(feed(), NOW - timedelta(days=6), None, NOW, week) is None
    event = quiet_event(feed(), old, None, NOW, week)
    assert event is not None and event.kind is HealthKind.QUIET and "8.0 days" in event.detail
    assert quiet_event(feed(), old, old, NOW, week) is None  # already reported
    assert quiet_event(feed(), None, None, NOW, week) is None  # never had an item
    assert quiet_event(feed(last_status="disabled"), old, None, NOW, week) is None


def test_health_message_subject_and_item() -> None:
    event = HealthEvent("wire", HealthKind.FAILING, "5 failed polls", "https://x.example/f")
    msg = health_message(7, NOW, event)
    assert msg.subject == "[watcher] health: wire: failing"
    assert (msg.kind, msg.rule_id, msg.severity) == ("health", "health", "high")
    assert msg.items[0].title == "feed wire is failing"
    assert msg.items[0].snippets == ("5 failed polls",)
    quiet = health_message(8, NOW, HealthEvent("wire", HealthKind.QUIET, "d"))
    assert quiet.subject == "[watcher] health: wire: quiet" and quiet.items[0].link is None


def test_health_channels_default_to_every_channel() -> None:
    assert health_channels(None, ["a", "b"]) == ["a", "b"]
    assert health_channels(["b"], ["a", "b"]) == ["b"]


def test_check_problems() -> None:
    feeds = [feed(interval_s=600), feed(id=2, name="other", interval_s=3600)]
    assert heartbeat_max_age_s(feeds, 900) == 1200
    assert heartbeat_max_age_s([], 30) == 120
    fresh = NOW - timedelta(seconds=100)
    assert check_problems(fresh, feeds, NOW, failing_after=5, default_interval_s=900) == []
    stale = check_problems(
        NOW - timedelta(seconds=1300), feeds, NOW, failing_after=5, default_interval_s=900
    )
    assert len(stale) == 1 and "heartbeat is 1300s old" in stale[0]
    never = check_problems(None, feeds, NOW, failing_after=5, default_interval_s=900)
    assert "never run" in never[0]
    failing = [feed(last_status="error", consecutive_failures=5, last_error="HTTP 500")]
    problems = check_problems(fresh, failing, NOW, failing_after=5, default_interval_s=900)
    assert problems == ["feed wire is failing (5 failed polls in a row): HTTP 500"]
    once = [feed(last_status="error", consecutive_failures=1)]
    assert check_problems(fresh, once, NOW, failing_after=5, default_interval_s=900) == []


# --- end to end ----------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, feed_server: FeedServer) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text("- id: kursk\n  any: [Kursk]\n")
    (tmp_path / "watcher.yaml").write_text(
        "database: w.db\nrules: rules/\ndefaults: {interval: 1m}\n"
        f"feeds:\n  - url: {feed_server.url('/f.xml')}\n    name: wire\n"
        "channels:\n  files: {type: eml, dir: outbox}\n"
        "health: {failing_after: 2}\n"
    )
    return tmp_path


def run(project: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--config", str(project / "watcher.yaml"), *args])
    return result.exit_code, result.stdout, result.stderr


def test_failing_and_recovered_alerts_go_through_the_outbox(
    project: Path, feed_server: FeedServer
) -> None:
    feed_server.set("/f.xml", b"down", status=500)
    run(project, "poll", "--all")
    assert eml_subjects(project) == []
    run(project, "poll", "--all")
    assert eml_subjects(project) == ["[watcher] health: wire: failing"]
    body = next((project / "outbox").glob("*.eml")).read_text()
    assert "2 failed polls in a row" in body and "HTTP 500" in body
    run(project, "poll", "--all")  # still failing: no second alert
    feed_server.set("/f.xml", rss([]))
    run(project, "poll", "--all")
    assert sorted(eml_subjects(project)) == [
        "[watcher] health: wire: failing",
        "[watcher] health: wire: recovered",
    ]
    with Store(project / "w.db") as store:
        rows = list(store.db.query("SELECT rule_id, status, reason FROM alerts ORDER BY id"))
    assert rows == [
        {"rule_id": "health", "status": "sent", "reason": "feed wire: failing"},
        {"rule_id": "health", "status": "sent", "reason": "feed wire: recovered"},
    ]


def test_status_check_exit_codes(project: Path, feed_server: FeedServer) -> None:
    feed_server.set("/f.xml", rss([]))
    run(project, "poll", "--all")
    code, _, err = run(project, "status", "--check")
    assert code == 1 and "never run" in err
    with Store(project / "w.db") as store:
        write_heartbeat(store, datetime.now(UTC))
    code, out, _ = run(project, "status", "--check")
    assert code == 0, out
    assert "failures" in out and "daemon heartbeat: 20" in out
    with Store(project / "w.db") as store:
        write_heartbeat(store, datetime.now(UTC) - timedelta(minutes=5))  # 2 intervals: 2 min
    code, _, err = run(project, "status", "--check")
    assert code == 1 and "heartbeat is 30" in err
    with Store(project / "w.db") as store:
        write_heartbeat(store, datetime.now(UTC))
    feed_server.set("/f.xml", b"", status=500)
    run(project, "poll", "--all")
    assert run(project, "status", "--check")[0] == 0  # one failure is not "failing"
    run(project, "poll", "--all")
    code, _, err = run(project, "status", "--check")
    assert code == 1 and "feed wire is failing (2 failed polls in a row): HTTP 500" in err
    code, out, _ = run(project, "status", "--json")
    assert code == 0 and '"problems": [' in out and "wire is failing" in out
    assert run(project, "status")[0] == 0  # without --check, problems never fail


def test_daemon_raises_a_quiet_alert(
    project: Path, feed_server: FeedServer, daemons: list[Daemon]
) -> None:
    feed_server.set("/f.xml", rss([Entry("1", "Old news")]), etag='"q"')
    run(project, "poll", "--all")
    with Store(project / "w.db") as store:
        long_ago = to_text(datetime.now(UTC) - timedelta(days=10))
        store.db.execute("UPDATE items SET first_seen_at = ?", [long_ago])
    d = Daemon(project)
    daemons.append(d)
    wait_for(lambda: eml_subjects(project), "the quiet alert")
    assert eml_subjects(project) == ["[watcher] health: wire: quiet"]
    assert d.stop() == 0


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        d.close()


def test_status_check_passes_while_the_daemon_runs(project: Path, feed_server: FeedServer) -> None:
    feed_server.set("/f.xml", rss([]))
    env = {**os.environ, "WATCHER_TIME_SCALE": "0.01"}
    cmd = [sys.executable, "-m", "watcher", "--config", str(project / "watcher.yaml")]
    proc = subprocess.Popen([*cmd, "run"], cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: run(project, "status", "--check")[0] == 0, "a healthy check")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
