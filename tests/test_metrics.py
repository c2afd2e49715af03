"""`watcher run --metrics`: Prometheus text at /metrics, the `status --check` verdict at /healthz.

The daemon runs in a subprocess against local feed and webhook servers (its clock 100x
faster); /metrics is read over HTTP and parsed with prometheus_client's own text parser.
"""

from __future__ import annotations

import re
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.feedgen import Entry, rss
from tests.receivers import WebhookReceiver
from tests.servers import FeedServer
from tests.test_daemon import Daemon, wait_for
from watcher.config import parse_listen
from watcher.poll.httpd import Answer, Request, SmallServer
from watcher.types import Listen


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        d.close()


def project(tmp: Path, feeds: dict[str, str], hook: str, extra: str = "") -> Path:
    (tmp / "rules").mkdir(exist_ok=True)
    (tmp / "rules" / "r.yaml").write_text("- id: kursk\n  any: [Kursk]\n")
    lines = [
        "database: w.db",
        "rules: rules/",
        "defaults: {interval: 1m, first_poll_alerts: all}",
        "health: {failing_after: 1}",
        "feeds:",
    ]
    for name, url in feeds.items():
        lines += [f"  - url: {url}", f"    name: {name}"]
    lines += ["channels:", f"  hook: {{type: webhook, url: {hook}}}"]
    (tmp / "watcher.yaml").write_text("\n".join(lines) + "\n" + extra)
    return tmp


def listening(daemon: Daemon, server: str = "metrics") -> str:
    """The address a daemon's server logged it listens on."""
    pattern = re.compile(rf"listening server={server} address=(\S+)")
    found: list[str] = []

    def logged() -> bool:
        found.extend(m[1] for line in list(daemon.log) if (m := pattern.search(line)))
        return bool(found)

    wait_for(logged, f"the {server} server to listen")
    return found[0]


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.headers["Content-Type"], e.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page: (name, sorted labels) -> value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_count_polls_items_matches_alerts_and_deliveries(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    with FeedServer() as feeds, WebhookReceiver() as hook:
        feeds.set("/wire.rss", rss([Entry("a", "Troops in Kursk"), Entry("b", "Weather")]))
        feeds.set("/gone.rss", b"no", status=503)
        project(
            tmp_path,
            {"wire": feeds.url("/wire.rss"), "broken": feeds.url("/gone.rss")},
            hook.url(),
        )
        daemon = Daemon(tmp_path, run_args=("--metrics", "127.0.0.1:0"))
        daemons.append(daemon)
        wait_for(lambda: any(b"Troops" in r.body for r in hook.requests), "the first alert")
        # a later item, published 30 s before the feed shows it, gives one lag sample
        published = datetime.now(UTC) - timedelta(seconds=30)
        feeds.set(
            "/wire.rss",
            rss([Entry("c", "More on Kursk", published=published), Entry("a", "Troops in Kursk")]),
        )
        wait_for(lambda: any(b"More on Kursk" in r.body for r in hook.requests), "alert 2")
    address = listening(daemon)
    status, kind, text = get(f"http://{address}/metrics")
    assert status == 200 and kind.startswith("text/plain; version=")
    found = samples(text)
    assert found[("watcher_polls_total", (("result", "ok"),))] >= 2
    assert found[("watcher_polls_total", (("result", "error"),))] >= 1
    assert found[("watcher_http_responses_total", (("status", "200"),))] >= 2
    assert found[("watcher_http_responses_total", (("status", "503"),))] >= 1
    assert found[("watcher_items_total", (("kind", "new"),))] == 3
    assert found[("watcher_matches_total", (("rule", "kursk"),))] == 2
    alerts = (("channel", "hook"), ("status", "sent"))
    assert found[("watcher_alerts_total", alerts)] >= 2  # the health alert may add one
    assert found[("watcher_alerts_total", (("channel", "hook"), ("status", "pending")))] >= 2
    assert found[("watcher_delivery_seconds_count", (("channel", "hook"),))] >= 2
    assert found[("watcher_feed_lag_seconds_count", ())] == 1
    assert found[("watcher_feed_lag_seconds_sum", ())] >= 30  # in the daemon's faster seconds
    assert ("watcher_outbox_pending", ()) in found
    # every poll that ran was planned: how late each started, within the daemon's spread
    polls = sum(v for (name, _), v in found.items() if name == "watcher_polls_total")
    assert found[("watcher_poll_delay_seconds_count", ())] == polls
    assert 0 <= found[("watcher_poll_delay_seconds_sum", ())] < 30 * polls
    assert daemon.stop() == 0


def test_healthz_answers_as_status_check_does(tmp_path: Path, daemons: list[Daemon]) -> None:
    with FeedServer() as feeds, WebhookReceiver() as hook:
        feeds.set("/wire.rss", rss([Entry("a", "Weather")]))
        project(tmp_path, {"wire": feeds.url("/wire.rss")}, hook.url())
        daemon = Daemon(tmp_path, run_args=("--metrics", "127.0.0.1:0"))
        daemons.append(daemon)
        address = listening(daemon)
        wait_for(lambda: feeds.requests, "a poll")
        wait_for(lambda: get(f"http://{address}/healthz")[0] == 200, "a healthy daemon")
        assert get(f"http://{address}/healthz")[2] == "ok\n"
        feeds.set("/wire.rss", b"down", status=500)
        wait_for(lambda: get(f"http://{address}/healthz")[0] == 503, "the failing feed")
        status, _, body = get(f"http://{address}/healthz")
        assert "feed wire is failing (1 failed polls in a row): HTTP 500" in body
        assert get(f"http://{address}/nothing")[0] == 404
        assert daemon.stop() == 0
    # stopped with the daemon: nothing listens there any more
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://{address}/metrics", timeout=2)


def test_the_flag_wins_over_the_config(tmp_path: Path, daemons: list[Daemon]) -> None:
    with FeedServer() as feeds, WebhookReceiver() as hook:
        feeds.set("/wire.rss", rss([Entry("a", "Weather")]))
        taken = SmallServer(Listen("127.0.0.1", 0), "blocker", lambda r: Answer(200))
        taken.start()
        try:
            busy = taken.address.port
            extra = f"metrics: {{listen: 127.0.0.1:{busy}}}\n"
            project(tmp_path, {"wire": feeds.url("/wire.rss")}, hook.url(), extra)
            daemon = Daemon(tmp_path, run_args=("--metrics", "127.0.0.1:0"))
            daemons.append(daemon)
            address = listening(daemon)
            assert address != f"127.0.0.1:{busy}"
            assert get(f"http://{address}/metrics")[0] == 200
            assert daemon.stop() == 0
            # without the flag the config's address is used: taken, so one clear line, exit 1
            refused = Daemon(tmp_path)
            daemons.append(refused)
            assert refused.wait() == 1
            assert refused.logged(f"metrics: cannot listen on 127.0.0.1:{busy}")
        finally:
            taken.stop()


@pytest.mark.parametrize(
    ("text", "listen"),
    [
        ("127.0.0.1:9464", Listen("127.0.0.1", 9464)),
        ("9464", Listen("127.0.0.1", 9464)),
        ("[::1]:9464", Listen("::1", 9464)),
        ("0.0.0.0:80", Listen("0.0.0.0", 80)),
    ],
)
def test_listen_addresses(text: str, listen: Listen) -> None:
    assert parse_listen(text) == listen


@pytest.mark.parametrize("text", ["", "host:", "host:99999", "::1:80", "a b:80", "x:y"])
def test_bad_listen_addresses(text: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen(text)


# --- the small server itself -----------------------------------------------------------------


def echo(request: Request) -> Answer:
    return Answer(200, request.body(16))


def test_a_body_past_the_limit_or_broken_gets_no_handler_work() -> None:
    server = SmallServer(Listen("127.0.0.1", 0), "echo", echo)
    server.start()
    try:
        url = f"http://{server.address}/"
        with urllib.request.urlopen(urllib.request.Request(url, data=b"short"), timeout=5) as r:
            assert r.read() == b"short"
        with pytest.raises(urllib.error.HTTPError) as big:
            urllib.request.urlopen(urllib.request.Request(url, data=b"x" * 17), timeout=5)
        assert big.value.code == 413
        big.value.close()
    finally:
        server.stop()


def test_past_max_connections_a_client_is_told_busy_at_once() -> None:
    server = SmallServer(Listen("127.0.0.1", 0), "slots", echo, max_connections=1, timeout_s=120)
    server.start()
    try:
        port = server.address.port
        stuck = socket.create_connection(("127.0.0.1", port))
        stuck.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")  # no body
        # once the server holds the stuck request in its one slot, others are turned away
        wait_for(lambda: get(f"http://127.0.0.1:{port}/")[0] == 503, "a busy answer")
        assert get(f"http://127.0.0.1:{port}/")[2] == "busy\n"
        stuck.close()
    finally:
        server.stop()
