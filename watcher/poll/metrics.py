"""The daemon's Prometheus metrics and health answer; counts what it is handed, reads nothing.

Counts are made where results are stored: the daemon hands each poll's (or push's)
``FeedResult`` and ``PollReport`` to ``observe_poll`` and each delivery pass's report to
``observe_delivery``, so work done in any thread reaches the one registry, and no
multiprocess directory is needed. Gauges of what the database holds (the outbox, the
WebSub subscriptions) are read when Prometheus asks, through the ``read_state`` function
handed in. ``/healthz`` gives the same verdict as ``watcher status --check``.

    watcher_polls_total{result}                 ok | not_modified | error
    watcher_http_responses_total{status}        the HTTP status of each feed fetch
    watcher_items_total{kind}                   new | updated
    watcher_matches_total{rule}
    watcher_alerts_total{channel,status}        pending | suppressed (queued), sent | retry |
                                                failed (a delivery attempt's outcome)
    watcher_delivery_seconds{channel}           one alert's send through its channel
    watcher_feed_lag_seconds                    from an item's published time to its storing
    watcher_poll_delay_seconds                  from the moment a feed's poll was planned (its
                                                next_poll_at plus the scheduler's jitter) to
                                                its start: how far the daemon falls behind
    watcher_outbox_pending                      alerts waiting to be sent
    watcher_websub_subscriptions{state}         subscriptions by state
    watcher_websub_pushes_total{result}         stored | rejected | dropped
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from watcher.poll.httpd import Answer, Request
from watcher.poll.pipeline import PollReport
from watcher.poll.result import FeedResult

log = logging.getLogger(__name__)

POLL_RESULTS = ("ok", "not_modified", "error")
ITEM_KINDS = ("new", "updated")
PUSH_RESULTS = ("stored", "rejected", "dropped")
DELIVERY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
DELAY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 4, 5, 7.5, 10, 15, 30, 60, 120, 300)
LAG_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 86400)


@dataclass(frozen=True)
class State:
    """What the database holds now, for the gauges."""

    outbox_pending: int
    subscriptions: Mapping[str, int] = field(default_factory=dict)  # state -> count


class Metrics:
    """One registry of the daemon's metrics (not prometheus_client's global one)."""

    def __init__(self, read_state: Callable[[], State]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.polls = Counter("watcher_polls", "Feed polls, by result.", ["result"], registry=r)
        self.http = Counter(
            "watcher_http_responses",
            "HTTP responses to feed fetches, by status code.",
            ["status"],
            registry=r,
        )
        self.items = Counter("watcher_items", "Items stored, by kind.", ["kind"], registry=r)
        self.matches = Counter("watcher_matches", "Rule matches, by rule.", ["rule"], registry=r)
        self.alerts = Counter(
            "watcher_alerts",
            "Alerts by channel and status: pending or suppressed when queued; sent, retry or"
            " failed when a delivery attempt ends.",
            ["channel", "status"],
            registry=r,
        )
        self.delivery = Histogram(
            "watcher_delivery_seconds",
            "Time to send one alert through its channel.",
            ["channel"],
            buckets=DELIVERY_BUCKETS,
            registry=r,
        )
        self.lag = Histogram(
            "watcher_feed_lag_seconds",
            "Time from a new item's published time to its storing (items with a date).",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.delay = Histogram(
            "watcher_poll_delay_seconds",
            "Time from when a feed's poll was planned (next_poll_at plus jitter) to its start.",
            buckets=DELAY_BUCKETS,
            registry=r,
        )
        self.pushes = Counter(
            "watcher_websub_pushes",
            "WebSub deliveries: stored, rejected (bad signature) or dropped (too large,"
            " unknown, or a queue full).",
            ["result"],
            registry=r,
        )
        for result in POLL_RESULTS:
            self.polls.labels(result)
        for kind in ITEM_KINDS:
            self.items.labels(kind)
        for result in PUSH_RESULTS:
            self.pushes.labels(result)
        r.register(_StateCollector(read_state))

    def observe_poll(self, result: FeedResult, report: PollReport, *, pushed: bool = False) -> None:
        """Count one feed's poll (or push) as stored."""
        if not pushed:
            outcome = "error" if report.failed else "not_modified" if report.not_modified else "ok"
            self.polls.labels(outcome).inc()
            if result.http_status is not None and result.feed.url.startswith("http"):
                self.http.labels(str(result.http_status)).inc()
        self.items.labels("new").inc(report.new_items)
        self.items.labels("updated").inc(report.updated_items)
        for rule, n in report.rule_matches.items():
            self.matches.labels(rule).inc(n)
        for (channel, status), n in report.queued.items():
            self.alerts.labels(channel, status).inc(n)
        for lag in report.lags_s:
            self.lag.observe(max(0.0, lag))

    def observe_delay(self, seconds: float) -> None:
        """Count how late one scheduled poll started."""
        self.delay.observe(max(0.0, seconds))

    def observe_delivery(self, outcomes: Iterable[tuple[str, str, float]]) -> None:
        """Count delivery outcomes: (channel, sent | retry | failed, seconds the send took)."""
        for channel, status, seconds in outcomes:
            self.alerts.labels(channel, status).inc()
            if seconds >= 0:
                self.delivery.labels(channel).observe(seconds)

    def observe_push(self, result: str) -> None:
        self.pushes.labels(result).inc()

    def text(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector(Collector):
    """Gauges read from the database when Prometheus scrapes."""

    def __init__(self, read_state: Callable[[], State]) -> None:
        self._read = read_state

    def collect(self) -> Iterator[Metric]:
        try:
            state = self._read()
        except Exception as e:  # the database busy or gone: the counters still answer
            log.warning("metrics: cannot read the database: %s", e)
            return
        yield GaugeMetricFamily(
            "watcher_outbox_pending", "Alerts waiting to be sent.", value=state.outbox_pending
        )
        subscriptions = GaugeMetricFamily(
            "watcher_websub_subscriptions", "WebSub subscriptions, by state.", labels=["state"]
        )
        for name, count in sorted(state.subscriptions.items()):
            subscriptions.add_metric([name], count)
        yield subscriptions

    def describe(self) -> Iterator[Metric]:
        return iter(())


def metrics_handler(
    metrics: Metrics, problems: Callable[[], list[str]]
) -> Callable[[Request], Answer]:
    """Answers ``/metrics`` and ``/healthz`` (200, or 503 with each problem on a line)."""

    def handle(request: Request) -> Answer:
        if request.method not in ("GET", "HEAD"):
            return Answer(405, b"GET only\n", headers={"Allow": "GET, HEAD"})
        if request.path == "/metrics":
            return Answer(200, metrics.text(), CONTENT_TYPE_LATEST)
        if request.path == "/healthz":
            found = problems()
            if not found:
                return Answer(200, b"ok\n")
            return Answer(503, "".join(f"{p}\n" for p in found).encode())
        return Answer(404, b"not found: try /metrics or /healthz\n")

    return handle


def lag_seconds(published: datetime | None, stored: datetime) -> float | None:
    """How late an item was stored after it says it was published (None without a date)."""
    return None if published is None else (stored - published).total_seconds()
