"""Polling on Celery workers over a real Redis stores what polling here stores."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.feedgen import Entry, rss
from tests.redisd import RedisServer, Worker, wait_for, wait_for_workers
from tests.servers import FeedServer
from tests.test_daemon import Daemon, write_project
from tests.test_parallel_poll import NOW, poll_all, serve_feeds, snapshot
from watcher.cli import cli
from watcher.config import load_settings
from watcher.poll.pipeline import (
    PollReport,
    feed_options,
    fetch_options,
    local_poller,
    select_feeds,
    store_feed_result,
)
from watcher.poll.result import FeedResult, fetch_and_parse
from watcher.poll.runtime import Runtime, open_runtime
from watcher.poll.scale import STUCK_S, Dispatcher, HostLimits, WorkerBeat, polite_poll
from watcher.poll.workers import poll_job
from watcher.store import Store
from watcher.types import FeedConfig, FeedState

RULES = """\
- id: kursk
  any: ["Kursk"]
- id: drones
  query: 'fiber-optic NEAR/3 drone*'
"""


def write_config(folder: Path, feeds: list[dict[str, Any]], **extra: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rules.yaml").write_text(RULES)
    config = {
        "database": "watcher.db",
        "rules": ["rules.yaml"],
        "defaults": {"first_poll_alerts": "all"},
        "feeds": feeds,
        "channels": {"files": {"type": "eml", "dir": "outbox"}},
        **extra,
    }
    path = folder / "watcher.yaml"
    path.write_text(json.dumps(config))
    return path


def rss_of(title: str) -> bytes:
    return rss([Entry(guid=title, title=title, published=NOW - timedelta(hours=1))])


def runtime(config: Path) -> Runtime:
    return open_runtime(load_settings(config))


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def two_workers(tmp_path: Path, redis_server: RedisServer) -> Iterator[list[Worker]]:
    config = write_config(tmp_path / "worker", [], scale={"broker": redis_server.url})
    started = [Worker(config), Worker(config)]
    try:
        wait_for_workers(redis_server, 2)
        yield started
    finally:
        for worker in started:
            worker.stop()


def test_workers_store_what_local_polling_stores(
    tmp_path: Path, feed_server: FeedServer, redis_server: RedisServer, two_workers: list[Worker]
) -> None:
    feeds = serve_feeds(feed_server, 30)
    local = runtime(write_config(tmp_path / "local", feeds))
    scaled = runtime(
        write_config(
            tmp_path / "scaled", feeds, scale={"broker": redis_server.url, "task_timeout": "20s"}
        )
    )
    expected = poll_all(local)
    got = poll_all(scaled)

    assert got.ok == 30 and got.new_items == 150 and got.matches == expected.matches > 0
    assert sorted(name for name, _ in got.failed) == ["broken", "html"]
    assert snapshot(scaled) == snapshot(local)
    # the workers polled (which of the two takes a task is the broker's choice)
    assert any(worker.saw("poll task") for worker in two_workers)
    # no health alert: the workers were there
    assert scaled.store.db.execute("SELECT count(*) FROM _health_alerts").fetchone()[0] == 0


def unsent(seen: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    """A snapshot with each alert's status left out."""
    return {**seen, "alerts": sorted(row[:2] + row[3:] for row in seen["alerts"])}


def counts(rt: Runtime) -> dict[str, int]:
    tables = ("items", "matches", "alerts", "polls")
    return {t: rt.store.db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


def health_kinds(rt: Runtime) -> list[str]:
    rows = rt.store.db.execute("SELECT kind FROM _health_alerts WHERE feed = 'scale.broker'")
    return [row[0] for row in rows]


def test_a_worker_killed_mid_poll_loses_and_doubles_nothing(
    tmp_path: Path, feed_server: FeedServer, redis_server: RedisServer, two_workers: list[Worker]
) -> None:
    feeds = serve_feeds(feed_server, 24)
    expected = runtime(write_config(tmp_path / "local", feeds))
    poll_all(expected)
    for n in range(24):  # slow answers: a worker is surely fetching when it is killed
        route = feed_server.route(f"/feed/{n}")
        assert route is not None
        feed_server.set(f"/feed/{n}", route.body, etag=route.etag, delay=0.4)
    feed_server.requests.clear()
    config = write_config(
        tmp_path / "scaled",
        feeds,
        scale={"broker": redis_server.url, "task_timeout": "4s"},
        poll={"per_host": 64},  # every feed is on 127.0.0.1
    )
    coordinator = subprocess.Popen(
        [sys.executable, "-m", "watcher", "--config", str(config), "poll", "--all"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: any(w.saw("poll task") for w in two_workers), "a task on a worker")
        victim = next(w for w in two_workers if w.saw("poll task"))
        line = next(line for line in victim.lines if "poll task feeds=" in line)
        names = line.split("feeds=")[1].strip().split(",")
        paths = {f"/feed/{int(name[5:])}" for name in names if name.startswith("feed-")}
        # the worker has asked for one of its feeds (answers take 0.4 s): kill it now
        wait_for(lambda: any(r.path in paths for r in feed_server.requests), "a fetch")
        victim.kill()
        _, err = coordinator.communicate(timeout=60)
    finally:
        if coordinator.poll() is None:
            coordinator.kill()
            coordinator.communicate()
    assert coordinator.returncode == 0, err
    scaled = runtime(config)
    # every item, match, alert and poll once (`watcher poll` has sent the alerts too)
    assert unsent(snapshot(scaled)) == unsent(snapshot(expected))
    assert counts(scaled) == counts(expected)
    fetched = [r.path for r in feed_server.requests if r.path.startswith("/feed/")]
    assert len(fetched) > len(set(fetched)) == 24  # some feeds were fetched again


def test_a_task_past_its_deadline_is_queued_once_more_then_a_poll_error(
    tmp_path: Path, feed_server: FeedServer, redis_server: RedisServer, two_workers: list[Worker]
) -> None:
    feed_server.set("/slow", rss_of("Kursk: slow news"), delay=4)
    feeds = [{"url": feed_server.url("/slow"), "name": "slow", "timeout": "10s"}]
    scaled = runtime(
        write_config(
            tmp_path / "scaled", feeds, scale={"broker": redis_server.url, "task_timeout": "1s"}
        )
    )
    report = poll_all(scaled)

    assert [name for name, _ in report.failed] == ["slow"]
    error = scaled.store.db.execute("SELECT error FROM polls").fetchall()
    assert len(error) == 1 and "polling on a worker failed twice" in error[0][0]
    # tried twice (the second worker may only be starting its fetch when the coordinator ends)
    wait_for(lambda: len(feed_server.requests) >= 2, "the second try")
    assert [r.path for r in feed_server.requests] == ["/slow", "/slow"]
    assert counts(scaled)["items"] == 0


def test_an_unreachable_broker_polls_here_with_one_health_alert_until_it_is_back(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feeds = serve_feeds(feed_server, 6)
    local = runtime(write_config(tmp_path / "local", feeds))
    poll_all(local)
    server = RedisServer(tmp_path / "redis")  # not started yet: nothing listens on its port
    scaled = runtime(
        write_config(tmp_path / "scaled", feeds, scale={"broker": server.url, "task_timeout": "9s"})
    )
    poll_all(scaled)
    assert snapshot(scaled)["items"] == snapshot(local)["items"]
    health = ("health", "files", "pending", "feed scale.broker: failing", None)
    assert snapshot(scaled)["alerts"] == sorted([*snapshot(local)["alerts"], health])
    poll_all(scaled, NOW + timedelta(minutes=20))  # still away: no second alert
    assert health_kinds(scaled) == ["failing"]

    with server:
        worker = Worker(write_config(tmp_path / "worker", [], scale={"broker": server.url}))
        try:
            wait_for_workers(server, 1)
            feed_server.set("/feed/0", rss_of("Kursk: news after the broker came back"))
            report = poll_all(scaled, NOW + timedelta(minutes=40))
            assert worker.saw("poll task"), "".join(worker.lines)  # on the worker again
        finally:
            worker.stop()
    assert report.new_items == 1
    assert health_kinds(scaled) == ["failing", "recovered"]


def test_rules_a_restarted_broker_lost_are_put_again_and_the_poll_goes_on(
    tmp_path: Path, feed_server: FeedServer, redis_server: RedisServer
) -> None:
    feed_server.set("/wire", rss_of("Kursk: first"))
    feeds = [{"url": feed_server.url("/wire"), "name": "wire"}]
    scaled = runtime(write_config(tmp_path / "scaled", feeds, scale={"broker": redis_server.url}))
    settings = scaled.settings
    jobs = [(f, feed_options(settings, f)) for f in select_feeds(scaled, NOW, all_feeds=True)]
    worker_config = write_config(tmp_path / "worker", [], scale={"broker": redis_server.url})
    dispatcher = Dispatcher(settings.scale, fetch_options(settings), local_poller(scaled))
    try:
        first = Worker(worker_config)
        try:
            wait_for_workers(redis_server, 1)
            assert dispatcher.submit(jobs, scaled.compiled).result(timeout=30)[0].error is None
            assert first.saw("poll task feeds=wire") == 1
        finally:
            first.stop()
        client = redis_server.client()
        lost = list(client.scan_iter(match="watcher:rules:*"))
        assert len(lost) == 1
        client.delete(*lost)  # what a Redis restarted without its data lost

        second = Worker(worker_config)  # a new worker: it has not seen the rules either
        try:
            wait_for(lambda: second.saw("polling for"), "the new worker")
            (result,) = dispatcher.submit(jobs, scaled.compiled).result(timeout=30)
        finally:
            second.stop()
    finally:
        dispatcher.close()
    assert result.error is None and result.parsed is not None
    assert [i.title for i in result.parsed.items] == ["Kursk: first"]
    assert result.matches  # matched on the worker with the rules put again
    assert second.saw("are not in the broker")
    assert second.saw("poll task feeds=wire") == 1  # the retry; the first try found no rules
    assert client.exists(*lost)


def test_a_worker_restarts_when_tasks_wait_while_it_has_a_free_process_and_takes_none() -> None:
    busy = [0]
    beat = WorkerBeat("redis://127.0.0.1:1/0", "w@host", 2, busy=lambda: busy[0])
    beat.received_at = 0.0
    assert not beat.stuck(3, 100.0)  # the first look: tasks wait from now on
    assert not beat.stuck(3, 100.0 + STUCK_S - 1)
    assert beat.stuck(3, 100.0 + STUCK_S)

    beat.received()  # it took one: waiting starts again
    now = beat.received_at
    assert not beat.stuck(3, now + 1) and not beat.stuck(3, now + STUCK_S)
    assert beat.stuck(3, now + 1 + STUCK_S)

    assert not beat.stuck(0, now + 100)  # nothing waits
    assert not beat.stuck(3, now + 101) and not beat.stuck(3, now + 101 + STUCK_S - 1)
    busy[0] = 2  # every process busy: waiting tasks are no sign
    assert not beat.stuck(3, now + 200)
    busy[0] = 1
    assert not beat.stuck(3, now + 201)
    assert beat.stuck(3, now + 201 + STUCK_S)


def test_per_host_slots_and_retry_after_bind_every_worker(redis_server: RedisServer) -> None:
    client = redis_server.client()
    first, second = HostLimits(client, 1, 30), HostLimits(redis_server.client(), 1, 30)
    soon = time.monotonic() + 0.3
    with (
        first.slot("news.example", soon),
        pytest.raises(TimeoutError),
        second.slot("news.example", soon),
    ):
        pass  # the one slot of the host is the first worker's
    with second.slot("news.example", soon), first.slot("other.example", soon):
        pass  # freed; another host has its own slots

    feed = FeedState(id=1, name="wire", url="https://news.example/rss", interval_s=900)
    options = FeedConfig(url=feed.url, name="wire")
    asked: list[str] = []

    def throttled() -> FeedResult:
        asked.append(feed.name)
        return FeedResult(feed, options, error="HTTP 429", http_status=429, retry_after_s=120)

    assert polite_poll(first, (feed, options), throttled).http_status == 429
    held = polite_poll(second, (feed, options), throttled)  # another worker: not fetched
    assert asked == ["wire"]
    assert held.http_status == 429 and held.retry_after_s is not None
    assert 100 < held.retry_after_s <= 120 and "Retry-After" in (held.error or "")


def test_status_shows_workers_and_queue_depth(tmp_path: Path, redis_server: RedisServer) -> None:
    config = write_config(tmp_path / "c", [], scale={"broker": redis_server.url})
    runtime(config).store.close()
    client = redis_server.client()
    client.set("watcher:worker:a@h1", json.dumps({"concurrency": 2}), ex=60)
    client.set("watcher:worker:b@h2", json.dumps({"concurrency": 1}), ex=60)
    client.rpush("watcher.poll", "waiting task")

    result = CliRunner().invoke(cli, ["--config", str(config), "status", "--json"])
    shown = json.loads(result.output)
    assert (shown["workers"], shown["queue_depth"], shown["broker_error"]) == (2, 1, None)
    text = CliRunner().invoke(cli, ["--config", str(config), "status"]).output
    assert "workers: 2 seen in the last minute, queue_depth: 1 tasks waiting" in text

    redis_server.stop()
    shown = json.loads(
        CliRunner().invoke(cli, ["--config", str(config), "status", "--json"]).output
    )
    assert shown["workers"] is None and "unreachable" in shown["broker_error"]


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.close()


def test_the_daemon_polls_here_while_the_broker_is_stopped_and_on_workers_after(
    tmp_path: Path, feed_server: FeedServer, redis_server: RedisServer, daemons: list[Daemon]
) -> None:
    feed_server.set("/wire", rss_of("Kursk: first"))
    project = write_project(
        tmp_path,
        {"wire": feed_server.url("/wire")},
        extra=f"scale: {{broker: '{redis_server.url}', task_timeout: 20s}}\n",
    )
    worker = Worker(write_config(tmp_path / "worker", [], scale={"broker": redis_server.url}))
    try:
        wait_for_workers(redis_server, 1)
        daemon = Daemon(project)
        daemons.append(daemon)
        wait_for(lambda: worker.saw("poll task feeds=wire"), "a poll on the worker")

        redis_server.stop()
        feed_server.set("/wire", rss_of("Kursk: while the broker is away"))
        db = project / "w.db"
        wait_for(lambda: titles(db) >= {"Kursk: while the broker is away"}, "a poll here")
        wait_for(lambda: daemon.logged("polling on this host"), "the daemon to say so")
        wait_for(lambda: broker_health(db) == ["failing"], "a failing alert")

        tasks_before = worker.saw("poll task")
        redis_server.start()  # the same port: the worker and the daemon find it again
        # a worker reconnects with Celery's backoff, up to 30 s between tries; one whose
        # consumer lost the broker mid-task without noticing is restarted by its watchdog
        wait_for(lambda: worker.saw("poll task") > tasks_before, "polls on the worker again", 90)
        wait_for(lambda: broker_health(db) == ["failing", "recovered"], "a recovered alert")
        assert daemon.stop() == 0
    finally:
        worker.stop()


def titles(db: Path) -> set[str]:
    store = Store(db, readonly=True)
    try:
        return {row[0] for row in store.db.execute("SELECT title FROM items")}
    finally:
        store.close()


def broker_health(db: Path) -> list[str]:
    store = Store(db, readonly=True)
    try:
        sql = "SELECT kind FROM _health_alerts WHERE feed = 'scale.broker' ORDER BY alert_id"
        return [row[0] for row in store.db.execute(sql)]
    finally:
        store.close()


def test_a_result_stored_twice_adds_no_item_match_or_alert(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    """What a redelivered task would hand back: the same parsed items, matched again."""
    feeds = serve_feeds(feed_server, 3)
    rt = runtime(write_config(tmp_path / "c", feeds))
    jobs = [
        (feed, feed_options(rt.settings, feed)) for feed in select_feeds(rt, NOW, all_feeds=True)
    ]
    results = [poll_job(rt.session, job, rt.compiled, 1_000_000, fetch_and_parse) for job in jobs]
    for result in results:
        store_feed_result(rt, result, NOW, PollReport())
    once = counts(rt)
    for result in results:  # the same results again, as a duplicate delivery
        store_feed_result(rt, result, NOW + timedelta(minutes=1), PollReport())
    again = counts(rt)

    assert once["items"] == 15 and once["matches"] > 0 and once["alerts"] > 0
    assert {t: again[t] for t in ("items", "matches", "alerts")} == {
        t: once[t] for t in ("items", "matches", "alerts")
    }
