"""Benchmark of ``watcher poll --all`` against the local feed farm; changes no watcher code.

For each feed count (default 1,000 and 5,000) it writes a config with that many farm
feeds, 1,000 rules and an eml channel in a temporary folder, then times two runs of
the real command in a subprocess:

- round 1: an empty database, every feed new (~20 items of ~2.5 KB each);
- round 2: 90 % of the feeds answer 304, 10 % have 2 new items.

Round 1's time ends when the poll exits. A poll waits for the search index only briefly
(``INDEX_FINISH_S``); what it leaves behind (``index_lag``) is then timed on its own row,
"search index catch-up", by ``watcher search --wait``, before round 2 starts.

Every alert round 1 and round 2 queue must be delivered (sent, and one .eml file each),
or the benchmark stops. The same two rounds then run for each peer (benchmarks/peers.py: a
plain requests + feedparser loop, and ``reader``), each on a fresh farm with the same
feeds changed, and watcher's feeds/s is given as a multiple of theirs. Every config pins
``full_text: never``.

Besides wall time and feeds/s it reports the child's CPU time (its children's included)
and peak RSS, the load average when it ended, and the fixed cost of a command that polls
one feed (start-up, config, rules), which every run pays. With ``--daemon SECONDS`` it
also measures the RSS of ``watcher run`` with the largest feed count.

Run: ``.venv/bin/python benchmarks/bench_poll.py [--feeds 1000,5000] [--rules 1000]
[--peers plain,reader]`` after ``make bench`` (or ``.venv/bin/pip install -r
benchmarks/requirements.txt``) has installed the peers.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from farm import RunningFarm, running_farm, vocabulary  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CHECKOUT = [ROOT]  # whose watcher package runs (--root: compare with another checkout)
WATCHER = [sys.executable, "-m", "watcher"]
# Commands run as installed: with their bytecode cached (this machine's environment may
# say otherwise, which would add ~0.4 s of compiling to every start).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


@dataclass
class Run:
    label: str
    feeds: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    report: dict[str, object]
    load: str = ""
    alerts: str = ""
    counted: bool = True  # a poll of ``feeds`` feeds (feeds/s), not work beside one

    @property
    def rate(self) -> float:
        return self.feeds / self.wall_s


def write_rules(path: Path, count: int, seed: int = 3) -> None:
    """``count`` rules over the rarer farm words: phrases, prefixes, boolean and NEAR."""
    rng = random.Random(seed)
    words = vocabulary()
    rare = words[len(words) // 4 :]
    lines = []
    for index in range(count):
        a, b, c, d = (rng.choice(rare) for _ in range(4))
        kind = index % 4
        lines.append(f"- id: r{index}")
        if index % 100 == 0:
            lines.append(f'  any: ["{a}"]')  # a few broad rules
        elif kind == 0:
            lines.append(f'  any: ["{a} {b}", "{c} {d}"]')
        elif kind == 1:
            lines.append(f"  query: '{a[:5]}* AND {b}'")
        elif kind == 2:
            lines.append(f"  query: '({a} OR {b}) AND {c} NOT {d}'")
        else:
            lines.append(f"  query: '{a} NEAR/5 {b}'")
    path.write_text("\n".join(lines) + "\n")


def write_config(
    folder: Path, farm: RunningFarm, feeds: int, rules: int, interval: str = "15m"
) -> Path:
    write_rules(folder / "rules.yaml", rules)
    lines = [
        "database: watcher.db",
        "rules: [rules.yaml]",
        f"defaults: {{interval: {interval}, timeout: 20s, first_poll_alerts: recent,"
        f" max_age: 30d{_full_text_never()}}}",
        "channels:",
        f"  files: {{type: eml, dir: '{folder / 'outbox'}'}}",
        "feeds:",
    ]
    lines.extend(f"  - {{url: '{farm.url(i)}', name: f{i:05d}}}" for i in range(feeds))
    path = folder / "watcher.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _full_text_never() -> str:
    """``, full_text: never`` where the benchmarked watcher has that key (every benchmark
    pins it, so that no article page is fetched); nothing for a checkout from before it."""
    known = "full_text" in (CHECKOUT[0] / "watcher" / "config.py").read_text()
    return ", full_text: never" if known else ""


def timed(label: str, feeds: int, command: list[str]) -> Run:
    """Run one command; wall time, CPU time (its own and its children's) and peak RSS come
    from wait4(); its stdout is read as JSON."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err, cwd=CHECKOUT[0], env=ENV)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        output, errors = out.read(), err.read()
    if child.returncode != 0:
        raise SystemExit(f"{label}: exited {child.returncode}\n{errors.decode()[-3000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    report = json.loads(output) if output.strip() else {}
    return Run(label, feeds, wall, cpu, usage.ru_maxrss / 1024, report, _load())


def run_watcher(label: str, feeds: int, config: Path, *args: str) -> Run:
    return timed(label, feeds, [*WATCHER, "--config", str(config), "--json", *args])


def bench(feeds: int, rules: int, processes: int, changed: float) -> list[Run]:
    """watcher: the one-feed fixed cost, then round 1 and round 2 on a fresh farm."""
    runs = []
    with running_farm(feeds, processes=processes) as farm, tempfile.TemporaryDirectory() as tmp:
        config = write_config(Path(tmp), farm, feeds, rules)
        runs.append(
            run_watcher("watcher: fixed cost (one feed)", 1, config, "poll", "--feed", "f00000")
        )
        os.unlink(Path(tmp) / "watcher.db")
        shutil.rmtree(Path(tmp) / "outbox", ignore_errors=True)
        first = run_watcher("watcher: round 1, all new", feeds, config, "poll", "--all")
        runs.append(first)
        check_alerts(first, Path(tmp) / "outbox", 0)
        catch_up = index_catch_up(first, feeds, config)
        if catch_up is not None:
            runs.append(catch_up)
        farm.bump(changed)
        label = f"watcher: round 2, {changed:.0%} changed"
        runs.append(run_watcher(label, feeds, config, "poll", "--all"))
        check_alerts(runs[-1], Path(tmp) / "outbox", _sent(first))
    return runs


def index_catch_up(run: Run, feeds: int, config: Path) -> Run | None:
    """A poll stops waiting for the search index after a while (its JSON says how many
    items were left: ``index_lag``): ``watcher search --wait`` then times the rest of the
    catch-up, before the next round starts. None when the index was complete."""
    lag = int(str(run.report.get("index_lag", 0) or 0))
    if not lag:
        return None
    label = f"watcher: search index catch-up after round 1 ({lag:,} items behind at exit)"
    caught_up = run_watcher(label, feeds, config, "search", "--wait", "--limit", "1", "kaxa")
    if caught_up.report.get("index_lag"):
        raise SystemExit(f"{label}: still behind after --wait: {caught_up.report}")
    caught_up.counted = False
    return caught_up


def bench_peer(peer: str, feeds: int, processes: int, changed: float) -> list[Run]:
    """One peer (peers.py) on a fresh farm: round 1, then round 2 after the same bump."""
    runs = []
    with running_farm(feeds, processes=processes) as farm, tempfile.TemporaryDirectory() as tmp:
        urls = Path(tmp) / "urls.txt"
        urls.write_text("\n".join(farm.url(i) for i in range(feeds)) + "\n")
        command = [sys.executable, str(HERE / "peers.py"), peer, "--urls", str(urls)]
        command += ["--db", str(Path(tmp) / f"{peer}.db")]
        runs.append(timed(f"{peer}: round 1, all new", feeds, command))
        farm.bump(changed)
        runs.append(timed(f"{peer}: round 2, {changed:.0%} changed", feeds, command))
    return runs


def _sent(run: Run) -> int:
    delivery = run.report.get("delivery", {})
    assert isinstance(delivery, dict)
    return int(delivery.get("sent", 0))


def check_alerts(run: Run, outbox: Path, before: int) -> None:
    """Every alert the poll queued was delivered: sent, none left to retry or failed, and
    one .eml file each in the channel's folder."""
    poll, delivery = run.report.get("poll", {}), run.report.get("delivery", {})
    assert isinstance(poll, dict) and isinstance(delivery, dict)
    files = len(list(outbox.glob("*.eml"))) if outbox.exists() else 0
    queued, sent = int(poll.get("alerts", 0)), int(delivery.get("sent", 0))
    run.alerts = f"{sent}/{queued}"
    if sent != queued or delivery.get("retrying") or delivery.get("failed"):
        raise SystemExit(f"{run.label}: {queued} alerts queued, delivery {delivery}")
    if files != before + sent:
        raise SystemExit(f"{run.label}: {files} .eml files, expected {before + sent}")


def daemon_rss(feeds: int, rules: int, seconds: float) -> float | None:
    """Peak RSS (MB) of ``watcher run`` polling ``feeds`` feeds for ``seconds``."""
    with running_farm(feeds) as farm, tempfile.TemporaryDirectory() as tmp:
        config = write_config(Path(tmp), farm, feeds, rules)
        child = subprocess.Popen(
            [*WATCHER, "--config", str(config), "run"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=CHECKOUT[0],
        )
        peak = 0.0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and child.poll() is None:
            peak = max(peak, _rss_mb(child.pid))
            time.sleep(0.2)
        if child.poll() is not None:
            return None
        child.send_signal(signal.SIGTERM)
        child.wait(60)
        return peak


def _rss_mb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "unknown"
    return next((line.split(":", 1)[1].strip() for line in lines if "model name" in line), "?")


def _load() -> str:
    return " ".join(f"{n:.2f}" for n in os.getloadavg())


def print_runs(runs: list[Run]) -> None:
    print("| run | feeds | wall s | feeds/s | CPU s | peak RSS MB | stored | alerts sent | load |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for run in runs:
        poll = run.report.get("poll")
        if isinstance(poll, dict):
            stored = poll.get("new_items", "")
        elif not run.counted:
            stored = "-"
        else:
            stored = f"{run.report.get('entries', '')} in all"
        rate = f"{run.rate:.0f}" if run.counted else "-"
        print(
            f"| {run.label} | {run.feeds} | {run.wall_s:.2f} | {rate} | {run.cpu_s:.2f}"
            f" | {run.peak_rss_mb:.0f} | {stored} | {run.alerts} | {run.load} |"
        )


def print_ratios(runs: list[Run]) -> None:
    """watcher's feeds/s over each peer's, round by round."""
    by_label = {run.label: run for run in runs}
    for system in ("plain", "reader"):
        for round_ in ("round 1", "round 2"):
            mine = next(
                (r for k, r in by_label.items() if k.startswith(f"watcher: {round_}")), None
            )
            theirs = next(
                (r for k, r in by_label.items() if k.startswith(f"{system}: {round_}")), None
            )
            if mine and theirs:
                print(f"watcher / {system}, {round_}: {mine.rate / theirs.rate:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", default="1000,5000", help="comma-separated feed counts")
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--changed", type=float, default=0.1)
    parser.add_argument("--farm-processes", type=int, default=1)
    parser.add_argument(
        "--peers", default="plain,reader", help="peers to run beside watcher ('' for none)"
    )
    parser.add_argument("--daemon", type=float, default=0, help="seconds of `watcher run`")
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout to benchmark")
    args = parser.parse_args()
    CHECKOUT[0] = args.root.resolve()
    peers = [p for p in args.peers.split(",") if p]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, rules={args.rules}")
    print(f"cpu: {_cpu_model()}; load average before: {_load()}")
    counts = [int(n) for n in args.feeds.split(",")]
    for count in counts:
        print(f"\n{count} feeds")
        runs = bench(count, args.rules, args.farm_processes, args.changed)
        for peer in peers:
            runs += bench_peer(peer, count, args.farm_processes, args.changed)
        print_runs(runs)
        print_ratios(runs)
        print(f"load average after: {_load()}")
    if args.daemon:
        peak = daemon_rss(max(counts), args.rules, args.daemon)
        shown = "`watcher run` not available" if peak is None else f"{peak:.0f} MB"
        print(f"\ndaemon peak RSS, {max(counts)} feeds, {args.rules} rules: {shown}")


if __name__ == "__main__":
    main()
