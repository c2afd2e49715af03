"""Real time: how soon an alert follows a WebSub push, and what `interval: auto` costs.

1. Push latency. `watcher run` (a subprocess) with one feed at `interval: 1h` that names a
   local hub (tests/hub.py); once subscribed, the hub pushes N new items, one at a time,
   each matching a rule; the time from the hub's POST to the alert's arrival at a local
   webhook receiver is measured; p50/p95/max are printed. The daemon's periodic jobs run
   20x faster (WATCHER_TIME_SCALE=0.05) only so that the first poll and the subscription
   happen within seconds: a push has no timer on its path (a one-off job, then delivery
   at once).
2. Adaptive polling, on a simulated clock (decide/schedule.py's rule, no network): a feed
   publishing every 2 minutes and one publishing twice a day, for a simulated week, polled
   at a fixed 15m and at `interval: auto` (5m..6h): polls per day and the delay from an
   item's publication to the poll that finds it (p50/p95).

Run: `.venv/bin/python benchmarks/bench_realtime.py [--pushes 100]` (`make bench` runs it).
Benchmarks pin `full_text: never`.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.hub import Hub, hub_feed  # noqa: E402
from tests.receivers import WebhookReceiver, free_port  # noqa: E402
from tests.servers import FeedServer  # noqa: E402
from watcher.decide.schedule import AUTO_SAMPLES, auto_interval_s  # noqa: E402


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def wait(check: object, what: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.01)


def push_latency(pushes: int) -> list[float]:
    arrivals: dict[str, float] = {}
    with Hub(lease_s=86400) as hub, FeedServer() as feeds, WebhookReceiver() as hook:
        topic = feeds.url("/wire.xml")
        feeds.set("/wire.xml", hub_feed(hub.url, topic, ["Weather"]))
        port = free_port()
        tmp = Path(tempfile.mkdtemp(prefix="bench-realtime-"))
        (tmp / "rules").mkdir()
        (tmp / "rules" / "r.yaml").write_text("- id: kursk\n  any: [Kursk]\n")
        (tmp / "watcher.yaml").write_text(
            "database: w.db\nrules: rules/\n"
            "defaults: {interval: 1h, first_poll_alerts: all, full_text: never}\n"
            f"feeds:\n  - url: {topic}\n    name: wire\n"
            f"channels:\n  hook: {{type: webhook, url: {hook.url()}}}\n"
            f"websub: {{listen: 127.0.0.1:{port}, public_url: http://127.0.0.1:{port}/cb}}\n"
        )
        config = (tmp / "watcher.yaml").read_text()
        if "full_text" in config:
            check = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "watcher",
                    "--config",
                    str(tmp / "watcher.yaml"),
                    "rules",
                    "check",
                ],
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
            if check.returncode != 0:  # an install without full_text: leave it out
                (tmp / "watcher.yaml").write_text(config.replace(", full_text: never", ""))
        env = {**os.environ, "WATCHER_TIME_SCALE": "0.05"}
        daemon = subprocess.Popen(
            [sys.executable, "-m", "watcher", "--config", str(tmp / "watcher.yaml"), "-q", "run"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        lock = threading.Lock()

        def arrived() -> None:
            seen = 0
            while daemon.poll() is None:
                with lock:
                    fresh = hook.requests[seen:]
                for request in fresh:
                    for title in re.findall(rb"Kursk push \d+", request.body):
                        arrivals.setdefault(title.decode(), time.monotonic())
                seen += len(fresh)
                time.sleep(0.001)

        watcher_thread = threading.Thread(target=arrived, daemon=True)
        watcher_thread.start()
        try:
            wait(lambda: hub.subscribers(topic), "the subscription")
            latencies = []
            for n in range(pushes):
                title = f"Kursk push {n}"
                started = time.monotonic()
                statuses = hub.publish(topic, hub_feed(hub.url, topic, [title]))
                if statuses != [202]:
                    raise SystemExit(f"push {n} answered {statuses}")
                wait(lambda t=title: t in arrivals, f"the alert of {title}", timeout=30)
                latencies.append(arrivals[title] - started)
            return latencies
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)


def simulate(
    publish_every: timedelta, days: int, interval_s: int | None
) -> tuple[float, list[float]]:
    """(polls per day, delays in seconds from publication to the poll that finds the item)."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = start + timedelta(days=days)
    phase = timedelta(seconds=433)  # publications off the polls' grid
    published = [start + phase - publish_every * i for i in range(AUTO_SAMPLES, 0, -1)]
    upcoming = start + phase
    clock, polls, delays, found = start, 0, [], len(published)
    while clock < end:
        polls += 1
        while upcoming <= clock:
            published.append(upcoming)
            upcoming += publish_every
        delays += [(clock - t).total_seconds() for t in published[found:]]
        found = len(published)
        wait_s = interval_s or auto_interval_s(published[-AUTO_SAMPLES:], clock, 300, 6 * 3600)
        clock += timedelta(seconds=wait_s)
    return polls / days, delays


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pushes", type=int, default=100)
    args = parser.parse_args()
    latencies = push_latency(args.pushes)
    print(f"push -> webhook alert, {len(latencies)} pushes, feed at interval: 1h")
    print("| p50 | p95 | max |\n|---|---|---|")
    p50, p95 = statistics.median(latencies) * 1000, percentile(latencies, 95) * 1000
    print(f"| {p50:.0f} ms | {p95:.0f} ms | {max(latencies) * 1000:.0f} ms |")
    print("\ninterval: auto (5m..6h) against a fixed 15m, simulated week")
    print("| feed publishes | polling | polls/day | delay p50 | delay p95 |\n|---|---|---|---|---|")
    for label, every in (
        ("every 2 min", timedelta(minutes=2)),
        ("twice a day", timedelta(hours=12)),
    ):
        for how, interval in (("15m", 900), ("auto", None)):
            per_day, delays = simulate(every, 7, interval)
            print(
                f"| {label} | {how} | {per_day:.0f} | {statistics.median(delays) / 60:.1f} min"
                f" | {percentile(delays, 95) / 60:.1f} min |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
