"""The daemon's steady state: ``watcher run`` polling 5,000 farm feeds every minute.

A farm of ``--feeds`` feeds (20 items of ~2.5 KB each) and 1,000 rules, an eml channel,
``interval: 1m`` and ``full_text: never``. One ``watcher poll --all`` fills the database
first (the first poll of 100,000 items is bench_poll's subject, not this one's); then
``watcher run --metrics`` runs for ``--minutes`` while the farm gives 10 % of the feeds
two new items every minute. Measured:

- CPU seconds per 1,000 polls: the daemon's whole process tree (its own CPU time and its
  children's, from /proc), over the polls its metrics counted;
- the delay from each poll's planned run (the feed's ``next_poll_at`` plus the scheduler's
  jitter) to its start, p50 and p95, from ``watcher_poll_delay_seconds`` (interpolated
  within its buckets); polls the scheduler skipped as missed are counted apart;
- from a poll to its alert's delivery, p95: ``alerts.sent_at - alerts.created_at`` of the
  alerts queued while the daemon ran (whole seconds, as stored);
- peak RSS of the whole process tree: the sum over the daemon and every process under it,
  sampled every 0.25 s.

With ``--timeline S`` it also prints, every S seconds, the polls and the delay p50/p95 of
that window (what shows where in the run delays build up); ``--log FILE`` keeps the
daemon's log.

Run: ``.venv/bin/python benchmarks/bench_daemon.py [--feeds 5000] [--minutes 3]``.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_poll import CHECKOUT, ENV, WATCHER, _load, write_config  # noqa: E402
from farm import running_farm  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """``pid`` and every process under it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_s(pid: int) -> float:
    """CPU time of ``pid`` and of its children it has waited for."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICKS


class Sampler(threading.Thread):
    """The peak of the summed RSS of a process tree, and the tree's live CPU time."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_mb = 0.0
        self.processes = 1
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.25):
            pids = tree(self.pid)
            self.processes = max(self.processes, len(pids))
            self.peak_mb = max(self.peak_mb, sum(rss_mb(p) for p in pids))

    def cpu(self) -> float:
        return sum(cpu_s(p) for p in tree(self.pid))


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        return str(response.read().decode())


def histogram(text: str, name: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of a histogram without labels."""
    found = []
    for match in re.finditer(rf'^{name}_bucket\{{le="([^"]+)"\}} (\S+)$', text, re.M):
        bound = math.inf if match.group(1) == "+Inf" else float(match.group(1))
        found.append((bound, float(match.group(2))))
    return sorted(found)


def quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Linear interpolation within the bucket holding the ``q`` quantile."""
    total = buckets[-1][1] if buckets else 0
    if not total:
        return math.nan
    rank, lower, below = q * total, 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = bound, count
    return lower


def counter(text: str, name: str, labels: str = "") -> float:
    pattern = rf"^{name}\{{{re.escape(labels)}\}} (\S+)$" if labels else rf"^{name} (\S+)$"
    return sum(float(m.group(1)) for m in re.finditer(pattern, text, re.M))


def timeline(port: int, window: tuple[float, str], began: float) -> tuple[float, str]:
    """Print the polls and delays of the window that ends now; the next window."""
    try:
        text = scrape(port)
    except OSError:  # the metrics server is not listening yet
        return window
    before = dict(histogram(window[1], "watcher_poll_delay_seconds")) if window[1] else {}
    delays = [
        (le, n - before.get(le, 0.0)) for le, n in histogram(text, "watcher_poll_delay_seconds")
    ]
    polls = delays[-1][1] if delays else 0
    print(
        f"  {window[0] - began:5.0f}-{time.monotonic() - began:3.0f} s: {polls:5.0f} polls,"
        f" delay p50 {quantile(delays, 0.5):5.2f} s, p95 {quantile(delays, 0.95):5.2f} s",
        flush=True,
    )
    return time.monotonic(), text


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=5000)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=3)
    parser.add_argument("--changed", type=float, default=0.1, help="share of feeds per minute")
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout to benchmark")
    parser.add_argument("--timeline", type=float, default=0, help="seconds a window")
    parser.add_argument("--log", type=Path, help="keep the daemon's log in this file")
    args = parser.parse_args()
    root = args.root.resolve()
    CHECKOUT[0] = root
    print(f"{args.feeds} feeds at 1m, {args.rules} rules, {args.minutes} min; load {_load()}")
    with running_farm(args.feeds) as farm, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = write_config(folder, farm, args.feeds, args.rules, interval="1m")
        seeded = time.perf_counter()
        subprocess.run(
            [*WATCHER, "--config", str(config), "--json", "poll", "--all"],
            cwd=root,
            env=ENV,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        print(f"seeded with poll --all in {time.perf_counter() - seeded:.0f} s; load {_load()}")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        started_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # as alerts store it
        child = subprocess.Popen(
            [*WATCHER, "--config", str(config), "run", "--metrics", f"127.0.0.1:{port}"],
            cwd=root,
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=open(folder / "daemon.log", "wb"),  # noqa: SIM115
        )
        sampler = Sampler(child.pid)
        sampler.start()
        began = time.monotonic()
        cpu_before = sampler.cpu()
        minute = 0
        first_minute = ""  # the metrics at its end: the delays after it are told apart
        window = (began, "")  # the timeline's window: its start and the metrics then
        try:
            while (elapsed := time.monotonic() - began) < args.minutes * 60:
                if child.poll() is not None:
                    raise SystemExit(f"watcher run exited {child.returncode}")
                if args.timeline and time.monotonic() - window[0] >= args.timeline:
                    window = timeline(port, window, began)
                if elapsed >= 60 * (minute + 1):
                    minute += 1
                    if minute == 1:
                        first_minute = scrape(port)
                    farm.bump(args.changed, seed=minute)
                time.sleep(0.5)
            text = scrape(port)
            cpu = sampler.cpu() - cpu_before
        finally:
            sampler.stopping.set()
            child.send_signal(signal.SIGTERM)
            child.wait(120)
        db = sqlite3.connect(folder / "watcher.db")
        waits = [
            row[0]
            for row in db.execute(
                "SELECT (julianday(sent_at) - julianday(created_at)) * 86400 FROM alerts"
                " WHERE status = 'sent' AND created_at >= ?",
                [started_at],
            )
        ]
        pending = db.execute("SELECT count(*) FROM alerts WHERE status = 'pending'").fetchone()[0]
        db.close()
        missed = (folder / "daemon.log").read_text(errors="replace").count("job missed")
        if args.log:
            args.log.write_bytes((folder / "daemon.log").read_bytes())
    polls = counter(text, "watcher_polls_total", 'result="ok"')
    polls += counter(text, "watcher_polls_total", 'result="not_modified"')
    polls += counter(text, "watcher_polls_total", 'result="error"')
    delays = histogram(text, "watcher_poll_delay_seconds")
    print("| measure | result |")
    print("|---|---:|")
    print(f"| polls in {args.minutes:g} min | {polls:,.0f} ({polls / args.minutes / 60:.1f}/s) |")
    print(f"| polls skipped as missed | {missed} |")
    print(f"| CPU s per 1,000 polls (process tree) | {cpu / max(polls, 1) * 1000:.2f} |")
    print(f"| due-to-poll delay p50 | {quantile(delays, 0.5):.2f} s |")
    print(f"| due-to-poll delay p95 | {quantile(delays, 0.95):.2f} s |")
    if first_minute:
        # A seeding poll --all leaves every feed due within the minute after the part of it
        # that stored them: the daemon's first minute polls that burst.
        start = dict(histogram(first_minute, "watcher_poll_delay_seconds"))
        later = [(le, n - start.get(le, 0.0)) for le, n in delays]
        print(f"| due-to-poll delay p50, after the first minute | {quantile(later, 0.5):.2f} s |")
        print(f"| due-to-poll delay p95, after the first minute | {quantile(later, 0.95):.2f} s |")
    print(
        f"| poll-to-alert-delivered p95 ({len(waits)} alerts) | {percentile(waits, 0.95):.0f} s |"
    )
    print(f"| alerts still pending at the end | {pending} |")
    print(
        f"| peak RSS, process tree summed ({sampler.processes} processes)"
        f" | {sampler.peak_mb:.0f} MB |"
    )
    print(f"load average after: {_load()}")


if __name__ == "__main__":
    main()
