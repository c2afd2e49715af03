"""`watcher run` in a subprocess against local servers: polls, delivers, reloads, stops.

The daemon's clock runs 100x faster (WATCHER_TIME_SCALE=0.01), so a 1 m interval is
0.6 s of real time; every wait below is for an observable event, with a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.feedgen import Entry, rss
from tests.servers import FeedServer
from watcher.cli import cli
from watcher.poll import daemon as daemon_module
from watcher.poll.daemon import Clock, warn_without_scan
from watcher.poll.hosts import HostSlots
from watcher.store import Store
from watcher.store.rows import to_text
from watcher.store.state import read_heartbeat

ROOT = Path(__file__).resolve().parent.parent
RULE_KURSK = "- id: kursk\n  any: [Kursk]\n"
RULE_DRONES = "- id: drones\n  any: [drone*]\n"


def wait_for(check: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Daemon:
    """A `watcher run` subprocess whose log is collected as it is written."""

    def __init__(
        self, project: Path, *args: str, scale: str = "0.01", run_args: tuple[str, ...] = ()
    ) -> None:
        env = {**os.environ, "WATCHER_TIME_SCALE": scale, "PYTHONUNBUFFERED": "1"}
        env.pop("HTTP_PROXY", None)
        env.pop("http_proxy", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "watcher", "--config", str(project / "watcher.yaml"), *args]
            + ["run", *run_args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.log: list[str] = []
        self.out: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stderr, self.log), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: object, into: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            into.append(line)

    def logged(self, text: str) -> bool:
        return any(text in line for line in list(self.log))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        self.proc.send_signal(sig)
        return self.wait(timeout)

    def wait(self, timeout: float = 15.0) -> int:
        code = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=5)
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        d.close()


def write_project(
    tmp: Path, feeds: dict[str, str], *, rules: str = RULE_KURSK, extra: str = ""
) -> Path:
    (tmp / "rules").mkdir(exist_ok=True)
    (tmp / "rules" / "r.yaml").write_text(rules)
    lines = ["database: w.db", "rules: rules/", "defaults: {interval: 1m, first_poll_alerts: all}"]
    lines.append("feeds:")
    for name, url in feeds.items():
        lines += [f"  - url: {url}", f"    name: {name}"]
    lines.append("channels:\n  files: {type: eml, dir: outbox}")
    (tmp / "watcher.yaml").write_text("\n".join(lines) + "\n" + extra)
    return tmp


def eml_subjects(project: Path) -> list[str]:
    out = project / "outbox"
    if not out.exists():
        return []
    subjects = []
    for path in sorted(out.glob("*.eml")):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("Subject:"):
                subjects.append(line.removeprefix("Subject:").strip())
    return subjects


def hits(server: FeedServer, path: str) -> int:
    return sum(1 for r in list(server.requests) if r.path == path)


def now() -> datetime:
    return datetime.now(UTC)


def test_daemon_polls_on_interval_delivers_and_stops_on_sigterm(
    tmp_path: Path, feed_server: FeedServer, daemons: list[Daemon]
) -> None:
    feed_server.set(
        "/a.xml", rss([Entry("1", "Fighting near Kursk", published=now())]), etag='"a1"'
    )
    project = write_project(tmp_path, {"wire": feed_server.url("/a.xml")})
    d = Daemon(project)
    daemons.append(d)
    wait_for(lambda: eml_subjects(project), "the alert to be delivered")
    assert eml_subjects(project) == ["[watcher] kursk: Fighting near Kursk"]
    wait_for(lambda: hits(feed_server, "/a.xml") >= 3, "the feed to be polled again")
    later = [r for r in feed_server.requests if r.path == "/a.xml"][1:]
    assert all(r.header("If-None-Match") == '"a1"' for r in later)  # conditional polls
    with Store(project / "w.db") as store:
        assert read_heartbeat(store) is not None
    assert d.stop() == 0
    assert d.logged("polled feed=wire status=ok items=1 new=1")
    assert d.logged("polled feed=wire status=not_modified")
    assert d.logged("stopped pid=")
    assert not d.logged("Traceback")
    assert len(eml_subjects(project)) == 1  # never sent twice


EARLY_SIGTERM = """
import logging, os, signal, sys
from pathlib import Path
from watcher.config import load_settings
from watcher.poll.daemon import Daemon, DaemonOptions

def load():
    settings = load_settings(Path(sys.argv[1]))
    os.kill(os.getpid(), signal.SIGTERM)  # before the lock, the jobs and the scheduler
    return settings

logging.basicConfig(level=logging.INFO, format="%(message)s")
sys.exit(Daemon(load, DaemonOptions(), prune=lambda *args: None).run())
"""


def test_a_sigterm_before_the_scheduler_runs_stops_the_daemon_cleanly(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    """The handlers are in place from the start: a SIGTERM while the daemon still loads
    its config is a clean stop (exit 0), not a kill, and no job runs after it."""
    feed_server.set("/a.xml", rss([]))
    project = write_project(tmp_path, {"wire": feed_server.url("/a.xml")})
    done = subprocess.run(
        [sys.executable, "-c", EARLY_SIGTERM, str(project / "watcher.yaml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "stopping reason=SIGTERM" in done.stderr and "stopped pid=" in done.stderr
    assert "Traceback" not in done.stderr


def test_sigint_also_stops_cleanly(
    tmp_path: Path, feed_server: FeedServer, daemons: list[Daemon]
) -> None:
    feed_server.set("/a.xml", rss([]))
    project = write_project(tmp_path, {"wire": feed_server.url("/a.xml")})
    d = Daemon(project)
    daemons.append(d)
    wait_for(lambda: d.logged("started pid="), "the daemon to start")
    assert d.stop(signal.SIGINT) == 0


def test_stop_waits_for_a_poll_in_flight_within_a_bound(
    tmp_path: Path, feed_server: FeedServer, daemons: list[Daemon]
) -> None:
    feed_server.set("/slow.xml", rss([Entry("1", "Kursk", published=now())]), delay=1.0)
    project = write_project(tmp_path, {"slow": feed_server.url("/slow.xml")})
    d = Daemon(project)
    daemons.append(d)
    wait_for(lambda: hits(feed_server, "/slow.xml") >= 1, "the slow poll to start")
    started = time.monotonic()
    assert d.stop() == 0
    assert time.monotonic() - started < 10
    assert d.logged("polled feed=slow status=ok")  # the poll in flight was finished


def test_a_second_daemon_refuses_to_start_naming_the_pid(
    tmp_path: Path, feed_server: FeedServer, daemons: list[Daemon]
) -> None:
    feed_server.set("/a.xml", rss([]))
    project = write_project(tmp_path, {"wire": feed_server.url("/a.xml")})
    first = Daemon(project)
    daemons.append(first)
    wait_for(lambda: first.logged("started pid="), "the first daemon to start")
    second = Daemon(project)
    daemons.append(second)
    assert second.wait() == 1
    assert second.logged(f"pid {first.proc.pid}")
    result = CliRunner().invoke(cli, ["--config", str(project / "watcher.yaml"), "poll"])
    assert result.exit_code == 1 and f"pid {first.proc.pid}" in result.stderr
    assert first.stop() == 0


def test_restart_catches_up_overdue_feeds_but_waits_for_the_others(
    tmp_path: Path, feed_server: FeedServer, daemons: list[Daemon]
) -> None:
    feed_server.set("/due.xml", rss([]))
    feed_server.set("/later.xml", rss([]))
    project = write_project(
        tmp_path, {"due": feed_server.url("/due.xml"), "later": feed_server.url("/later.xml")}
    )
    config = ["--config", str(project / "watcher.yaml")]
    assert CliRunner().invoke(cli, [*config, "poll", "--all"]).exit_code == 0
    with Store(project / "w.db") as store:  # as if the daemon had stopped a while ago
        store.db.execute(
            "UPDATE feeds SET next_poll_at = ? WHERE name = 'due'",
            [to_text(now() - timedelta(hours=1))],
        )
        store.db.execute(
            "UPDATE feeds SET next_poll_at = ? WHERE name = 'later'",
            [to_text(now() + timedelta(days=1))],
        )
    before = hits(feed_server, "/later.xml")
    d = Daemon(project)
    daemons.append(d)
    wait_for(lambda: hits(feed_server, "/due.xml") >= 3, "the overdue feed to be polled")
    assert hits(feed_server, "/later.xml") == before
    assert d.stop() == 0


def test_feeds_a_quick_poll_all_left_due_together_are_spread_by_the_daemon(
    tmp_path: Path, feed_server: FeedServer, daemons: list[Daemon]
) -> None:
    names = [f"f{i}" for i in range(40)]
    for name in names:
        feed_server.set(f"/{name}.xml", rss([]))
    project = write_project(tmp_path, {n: feed_server.url(f"/{n}.xml") for n in names})
    config = ["--config", str(project / "watcher.yaml")]
    assert CliRunner().invoke(cli, [*config, "poll", "--all"]).exit_code == 0
    with Store(project / "w.db") as store:
        due = {r["name"]: r["next_poll_at"] for r in store.db["feeds"].rows}
    d = Daemon(project, scale="0.15")  # 1 m = 9 s: all 40 due within a second of each other
    daemons.append(d)
    wait_for(lambda: d.logged("spread feeds="), "the daemon to spread the feeds")
    moved = next(line for line in d.log if "spread feeds=" in line)
    assert int(moved.split("spread feeds=")[1].split()[0]) >= 20
    wait_for(lambda: all(hits(feed_server, f"/{n}.xml") >= 2 for n in names), "every poll")

    def due_later() -> bool:  # each poll stored: due again later than before
        with Store(project / "w.db") as store:
            return all(r["next_poll_at"] > due[r["name"]] for r in store.db["feeds"].rows)

    wait_for(due_later, "every poll to be stored")
    assert d.stop() == 0


def test_rule_file_change_reloads_and_an_invalid_one_is_kept_out(
    tmp_path: Path, feed_server: FeedServer, daemons: list[Daemon]
) -> None:
    feed_server.set("/a.xml", rss([Entry("1", "Fighting near Kursk", published=now())]))
    project = write_project(tmp_path, {"wire": feed_server.url("/a.xml")})
    d = Daemon(project)
    daemons.append(d)
    wait_for(lambda: eml_subjects(project), "the first alert")
    rule_file = project / "rules" / "r.yaml"
    rule_file.write_text("- id: broken\n  any: [\n")
    wait_for(lambda: d.logged("reload failed, keeping the running config"), "the reload error")
    assert d.proc.poll() is None
    rule_file.write_text(RULE_KURSK + RULE_DRONES)
    wait_for(lambda: d.logged("reloaded reason=file changed"), "the reload")
    feed_server.set(
        "/a.xml",
        rss(
            [
                Entry("1", "Fighting near Kursk", published=now()),
                Entry("2", "New drones shown", published=now()),
            ]
        ),
    )
    wait_for(lambda: len(eml_subjects(project)) >= 2, "the new rule's alert")
    assert "[watcher] drones: New drones shown" in eml_subjects(project)
    assert d.stop() == 0


def test_a_rule_too_deep_on_reload_is_logged_once_per_file_change(
    tmp_path: Path, feed_server: FeedServer, daemons: list[Daemon]
) -> None:
    feed_server.set("/a.xml", rss([Entry("1", "Fighting near Kursk", published=now())]))
    project = write_project(tmp_path, {"wire": feed_server.url("/a.xml")})
    d = Daemon(project)
    daemons.append(d)
    wait_for(lambda: eml_subjects(project), "the first alert")
    deep = "(" * 170 + "kursk" + ")" * 170
    (project / "rules" / "r.yaml").write_text(f"- id: deep\n  query: '{deep}'\n")
    wait_for(lambda: d.logged("reload failed, keeping the running config"), "the reload error")
    polled = hits(feed_server, "/a.xml")
    # Two more polls of the feed (a minute each, scaled): the files were watched ~40 times.
    wait_for(lambda: hits(feed_server, "/a.xml") >= polled + 2, "two more polls")
    errors = [line for line in list(d.log) if "reload failed" in line]
    assert len(errors) == 1, errors
    assert "more than 64 deep at column 65" in errors[0]
    assert not d.logged("Traceback") and not d.logged("RecursionError")
    assert d.stop() == 0


def test_sighup_reloads_and_picks_up_a_new_feed(
    tmp_path: Path, feed_server: FeedServer, daemons: list[Daemon]
) -> None:
    feed_server.set("/a.xml", rss([]))
    feed_server.set("/b.xml", rss([Entry("9", "Kursk update", published=now())]))
    project = write_project(tmp_path, {"wire": feed_server.url("/a.xml")})
    d = Daemon(project)
    daemons.append(d)
    wait_for(lambda: d.logged("started pid="), "the daemon to start")
    config = project / "watcher.yaml"
    text = config.read_text().replace(
        "feeds:\n", f"feeds:\n  - url: {feed_server.url('/b.xml')}\n    name: second\n"
    )
    stat = config.stat()
    config.write_text(text)
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # only SIGHUP can tell
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: d.logged("reloaded reason=SIGHUP"), "the SIGHUP reload")
    wait_for(lambda: eml_subjects(project), "the new feed's alert")
    assert eml_subjects(project) == ["[watcher] kursk: Kursk update"]
    assert d.stop() == 0


def test_a_feed_added_from_the_command_line_is_picked_up(
    tmp_path: Path, feed_server: FeedServer, daemons: list[Daemon]
) -> None:
    feed_server.set("/a.xml", rss([]))
    feed_server.set("/c.xml", rss([Entry("5", "Kursk again", published=now())]))
    project = write_project(tmp_path, {"wire": feed_server.url("/a.xml")})
    d = Daemon(project)
    daemons.append(d)
    wait_for(lambda: d.logged("started pid="), "the daemon to start")
    config = ["--config", str(project / "watcher.yaml")]
    result = CliRunner().invoke(cli, [*config, "feeds", "add", feed_server.url("/c.xml")])
    assert result.exit_code == 0, result.output
    wait_for(lambda: hits(feed_server, "/c.xml") >= 1, "the added feed to be polled")
    assert d.stop() == 0


def test_a_lowered_interval_reschedules_on_reload_config_and_cli_feeds_alike(
    tmp_path: Path, feed_server: FeedServer, daemons: list[Daemon]
) -> None:
    feed_server.set("/a.xml", rss([]))
    feed_server.set("/c.xml", rss([]))
    project = write_project(tmp_path, {"wire": feed_server.url("/a.xml")})
    config = project / "watcher.yaml"
    config.write_text(config.read_text().replace("interval: 1m", "interval: 1d"))
    args = ["--config", str(config)]
    added = CliRunner().invoke(cli, [*args, "feeds", "add", feed_server.url("/c.xml")])
    assert added.exit_code == 0, added.output
    d = Daemon(project)
    daemons.append(d)
    wait_for(lambda: d.logged("polled feed=wire") and d.logged("polled feed=127"), "first polls")
    assert not d.logged("reloaded")
    # a day is 864 s here: without a reschedule neither feed is polled again in this test
    config.write_text(config.read_text().replace("interval: 1d", "interval: 1m"))
    wait_for(lambda: d.logged("reloaded reason=file changed"), "the reload")
    wait_for(lambda: hits(feed_server, "/a.xml") >= 3, "the config feed on its new interval")
    wait_for(lambda: hits(feed_server, "/c.xml") >= 3, "the command-line feed on the default")
    assert d.stop() == 0


def test_poll_feed_asks_the_running_daemon_and_poll_all_says_what_to_do(
    tmp_path: Path, feed_server: FeedServer, daemons: list[Daemon]
) -> None:
    feed_server.set("/a.xml", rss([]))
    project = write_project(tmp_path, {"wire": feed_server.url("/a.xml")})
    config = project / "watcher.yaml"
    config.write_text(config.read_text().replace("interval: 1m", "interval: 1d"))
    d = Daemon(project)
    daemons.append(d)
    wait_for(lambda: d.logged("polled feed=wire"), "the first poll")
    args = ["--config", str(config), "poll"]
    result = CliRunner().invoke(cli, [*args, "--feed", "wire"])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"asked the running daemon (pid {d.proc.pid}) to poll wire\n"
    wait_for(lambda: hits(feed_server, "/a.xml") >= 2, "the requested poll")  # a day early
    for extra in (["--all"], []):
        refused = CliRunner().invoke(cli, [*args, *extra])
        assert refused.exit_code == 1
        assert f"the running daemon (pid {d.proc.pid})" in refused.stderr
        assert "use `watcher poll --feed NAME`" in refused.stderr
        assert "or stop the daemon" in refused.stderr
    unknown = CliRunner().invoke(cli, [*args, "--feed", "nosuch"])
    assert unknown.exit_code == 1 and "no feed named 'nosuch'" in unknown.stderr
    assert d.stop() == 0


def test_a_feed_disabled_by_hand_stays_disabled_across_reloads_until_enabled(
    tmp_path: Path, feed_server: FeedServer, daemons: list[Daemon]
) -> None:
    feed_server.set("/a.xml", rss([]))
    feed_server.set("/clock.xml", rss([]))
    project = write_project(
        tmp_path, {"wire": feed_server.url("/a.xml"), "clock": feed_server.url("/clock.xml")}
    )
    args = ["--config", str(project / "watcher.yaml")]
    d = Daemon(project)
    daemons.append(d)
    wait_for(lambda: d.logged("polled feed=wire"), "the first poll")
    result = CliRunner().invoke(
        cli, [*args, "feeds", "disable", "wire", "--reason", "paywalled since May"]
    )
    assert result.exit_code == 0, result.output
    wait_for(lambda: d.logged("unscheduled feed=wire"), "the feed's job to go")

    def clock_polls(n: int) -> None:  # the other feed, polled every 0.6 s, tells the time
        target = hits(feed_server, "/clock.xml") + n
        wait_for(lambda: hits(feed_server, "/clock.xml") >= target, "the clock feed")

    clock_polls(2)  # a poll in flight when the feed was disabled has finished by now
    before = hits(feed_server, "/a.xml")
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: d.logged("reloaded reason=SIGHUP"), "the reload")
    clock_polls(3)
    assert hits(feed_server, "/a.xml") == before
    status = CliRunner().invoke(cli, [*args, "status", "--json"])
    wire = next(f for f in json.loads(status.stdout)["feeds"] if f["name"] == "wire")
    assert wire["disabled_reason"] == "disabled by hand: paywalled since May"
    assert (wire["last_status"], wire["next_poll_at"]) == ("disabled", None)
    table = CliRunner().invoke(cli, [*args, "status"]).stdout
    row = next(line for line in table.splitlines() if line.startswith("wire "))
    assert row.split()[1] == "disabled" and row.endswith("disabled by hand: paywalled since May")
    assert CliRunner().invoke(cli, [*args, "feeds", "enable", "wire"]).exit_code == 0
    wait_for(lambda: hits(feed_server, "/a.xml") > before, "the enabled feed's poll")
    assert d.stop() == 0


# --- in-process parts ----------------------------------------------------------------------


def test_host_slots_bound_concurrent_fetches_per_host() -> None:
    slots = HostSlots(2)
    lock = threading.Lock()
    active: dict[str, int] = {"a": 0, "b": 0}
    peak: dict[str, int] = {"a": 0, "b": 0}
    gate = threading.Barrier(4)

    def fetch(host: str) -> None:
        with slots.slot(f"http://{host}.example.org/feed"):
            with lock:
                active[host] += 1
                peak[host] = max(peak[host], active[host])
            with suppress(threading.BrokenBarrierError):
                gate.wait(timeout=0.3)  # holds the slot so that the others pile up
            with lock:
                active[host] -= 1

    threads = [threading.Thread(target=fetch, args=(h,)) for h in "aaaabb"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == {"a": 2, "b": 2}


def test_clock_scale_maps_daemon_time_to_real_time() -> None:
    clock = Clock(0.01)
    in_an_hour = clock.origin + timedelta(hours=1)
    assert clock.real(in_an_hour) - clock.origin == timedelta(seconds=36)
    assert clock.seconds(60) == pytest.approx(0.6)
    assert abs((clock.now() - clock.origin).total_seconds()) < 5


def test_old_poll_rows_are_pruned_by_the_daemon(
    tmp_path: Path, feed_server: FeedServer, daemons: list[Daemon]
) -> None:
    feed_server.set("/a.xml", rss([]))
    project = write_project(tmp_path, {"wire": feed_server.url("/a.xml")})
    config = ["--config", str(project / "watcher.yaml")]
    assert CliRunner().invoke(cli, [*config, "poll", "--all"]).exit_code == 0
    old = to_text(now() - timedelta(days=60))  # poll_log_retention is 30d
    with Store(project / "w.db") as store:
        store.db.execute("UPDATE polls SET started_at = ?", [old])

    def old_rows() -> int:
        with Store(project / "w.db") as store:
            return int(
                store.db.execute(
                    "SELECT count(*) FROM polls WHERE started_at = ?", [old]
                ).fetchone()[0]
            )

    d = Daemon(project)
    daemons.append(d)
    wait_for(lambda: old_rows() == 0, "the old poll rows to be pruned")
    assert d.stop() == 0


def test_a_warning_at_start_when_matching_runs_without_its_c_module(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    warn_without_scan()
    assert "C module" not in caplog.text  # built by make, as CI installs it
    monkeypatch.setattr(daemon_module, "SCAN_BUILT", False)
    warn_without_scan()
    assert "rule matching runs without its C module" in caplog.text
