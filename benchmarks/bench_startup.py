"""Start-up of ``watcher poll --all``: from process start to its first feed request.

A farm of 5,000 small feeds (two items each, so that seeding is quick) and 1,000 rules;
one ``poll --all`` fills the database, then each round runs ``poll --all`` (every feed
answers 304) with each checkout in turn and reads from the farm when the first request
arrived, and the CPU time the command had used by then. ``--before PATH`` names a second
checkout (an export of an older commit, with its C module built or copied in) measured
in the same rounds, so both see the same load. A ``cold`` row first empties the cache
folder (``.watcher-cache`` beside the database).

Run: ``.venv/bin/python benchmarks/bench_startup.py [--feeds 5000] [--rounds 5]
[--before /tmp/watcher-main]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_daemon import cpu_s, tree  # noqa: E402
from bench_poll import CHECKOUT, ENV, WATCHER, write_config  # noqa: E402
from farm import running_farm  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def first_request(farm: object, root: Path, config: Path) -> tuple[float, float, float]:
    """Seconds from process start to the first feed request, CPU seconds the command (its
    processes summed) had used by then, and seconds to the process's end.

    The CPU time is sampled from /proc every 10 ms and taken at the last sample before the
    first request: unlike wall time, it hardly moves with what else the machine runs.
    """
    farm.mark()  # type: ignore[attr-defined]
    samples: list[tuple[float, float]] = []
    started = time.time()
    child = subprocess.Popen(
        [*WATCHER, "--config", str(config), "--json", "poll", "--all"],
        cwd=root,
        env=ENV,
        stdout=subprocess.DEVNULL,
    )
    while child.poll() is None:
        samples.append((time.time(), sum(cpu_s(pid) for pid in tree(child.pid))))
        time.sleep(0.01)
    ended = time.time()
    if child.returncode != 0:
        raise SystemExit(f"poll --all exited {child.returncode}")
    first = farm.first_request_at()  # type: ignore[attr-defined]
    cpu = max((c for t, c in samples if t <= first), default=0.0)
    return first - started, cpu, ended - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=5000)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--before", type=Path, help="an older checkout to compare with")
    args = parser.parse_args()
    roots = {"after": ROOT}
    if args.before:
        roots = {"before": args.before.resolve(), **roots}
    print(f"{args.feeds} feeds, {args.rules} rules; load average {_load()}")
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in roots}
    results["after, cold cache"] = []
    with running_farm(args.feeds, items=2) as farm, tempfile.TemporaryDirectory() as tmp:
        # a config both checkouts read: `full_text: never` only if the older knows the key
        # (never is its default where it exists)
        CHECKOUT[0] = roots.get("before", ROOT)
        config = write_config(Path(tmp), farm, args.feeds, args.rules)
        subprocess.run(
            [*WATCHER, "--config", str(config), "--json", "poll", "--all"],
            cwd=ROOT,
            env=ENV,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for _ in range(args.rounds):
            for name, root in roots.items():
                results[name].append(first_request(farm, root, config))
            shutil.rmtree(Path(tmp) / ".watcher-cache", ignore_errors=True)
            results["after, cold cache"].append(first_request(farm, ROOT, config))
    print(
        "| checkout | first request s (median) | min | max | CPU s by then (median) | min"
        " | whole poll s (median) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, runs in results.items():
        firsts = [first for first, _, _ in runs]
        cpus = [cpu for _, cpu, _ in runs]
        whole = statistics.median(total for _, _, total in runs)
        print(
            f"| {name} | {statistics.median(firsts):.2f} | {min(firsts):.2f}"
            f" | {max(firsts):.2f} | {statistics.median(cpus):.2f} | {min(cpus):.2f}"
            f" | {whole:.2f} |"
        )
    print(f"load average after: {_load()}")


def _load() -> str:
    return " ".join(f"{n:.2f}" for n in os.getloadavg())


if __name__ == "__main__":
    main()
