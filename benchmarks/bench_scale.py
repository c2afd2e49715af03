"""Benchmark of polling on Celery workers: local mode against a coordinator with 1 and 2
``watcher worker`` processes, over a real ``redis-server``, on the local feed farm.

For each mode it polls every farm feed once into an empty database (every item new) with
``watcher poll --all`` and reports wall time, feeds/s, items/s and the coordinator's CPU
time. In scaled mode the coordinator only stores: its items per CPU second is the SQLite
writer's ceiling, the rate past which more workers cannot help one coordinator.

Run: ``.venv/bin/python benchmarks/bench_scale.py [--feeds 5000] [--rules 1000]
[--concurrency 1]`` (needs redis-server and the ``scale`` extra, which ``make`` installs).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_poll import Run, _cpu_model, _load, run_watcher, write_config  # noqa: E402
from farm import running_farm  # noqa: E402

WATCHER = [sys.executable, "-m", "watcher"]
STORED: dict[str, tuple[int, int, int, str]] = {}  # mode -> items, matches, alerts, digest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is missing: `make test` installs it")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    for _ in range(500):
        try:
            client.ping()
            break
        except redis.RedisError:
            time.sleep(0.01)
    return process, f"redis://127.0.0.1:{port}/0"


def start_workers(
    config: Path, count: int, concurrency: int, broker: str
) -> list[subprocess.Popen[bytes]]:
    import redis

    env = {**os.environ, "C_FORCE_ROOT": "1"}  # the benchmark machine runs as root
    workers = [
        subprocess.Popen(
            [*WATCHER, "--config", str(config), "-q", "worker", "--concurrency", str(concurrency)],
            env=env,
            start_new_session=True,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]
    client = redis.Redis.from_url(broker)
    while len(list(client.scan_iter(match="watcher:worker:*"))) < count:
        time.sleep(0.05)
    time.sleep(1.0)  # their consumers connect just after the heartbeat starts
    return workers


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        process.wait(timeout=60)


def stored(db: Path) -> tuple[int, int, int, str]:
    """Items, matches and alerts in the database, and a digest of what they are (no ids)."""
    queries = (
        "SELECT f.name, i.guid, i.content_hash FROM items i JOIN feeds f ON f.id = i.feed_id",
        "SELECT i.guid, m.rule_id FROM matches m JOIN items i ON i.id = m.item_id",
        "SELECT rule_id, channel, status, (SELECT group_concat(i.guid) FROM json_each(a.item_ids)"
        " j JOIN items i ON i.id = j.value) FROM alerts a",
    )
    digest = hashlib.sha256()
    sizes = []
    with sqlite3.connect(db) as connection:
        for sql in queries:
            rows = sorted(connection.execute(sql).fetchall())
            sizes.append(len(rows))
            digest.update(repr(rows).encode())
    return sizes[0], sizes[1], sizes[2], digest.hexdigest()[:12]


def bench(feeds: int, rules: int, concurrency: int) -> list[Run]:
    runs: list[Run] = []
    with running_farm(feeds) as farm, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = write_config(folder, farm, feeds, rules)
        runs.append(run_watcher("local", feeds, config, "poll", "--all"))
        STORED[runs[-1].label] = stored(folder / "watcher.db")
        redis_server, broker = start_redis(folder)
        try:
            text = config.read_text() + f"scale: {{broker: '{broker}', task_timeout: 10m}}\n"
            config.write_text(text)
            for workers in (1, 2):
                os.unlink(folder / "watcher.db")
                started = start_workers(config, workers, concurrency, broker)
                try:
                    label = f"coordinator + {workers} worker{'s' if workers > 1 else ''}"
                    runs.append(run_watcher(label, feeds, config, "poll", "--all"))
                    STORED[label] = stored(folder / "watcher.db")
                finally:
                    stop(started)
        finally:
            redis_server.terminate()
            redis_server.wait()
    return runs


def print_runs(runs: list[Run]) -> None:
    print("| mode | feeds | wall s | feeds/s | new items | items/s | coordinator CPU s |"
          " items per coordinator CPU s | items, matches, alerts stored | digest |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for run in runs:
        poll = run.report.get("poll", {})
        assert isinstance(poll, dict)
        items = int(poll.get("new_items", 0))
        print(
            f"| {run.label} | {run.feeds} | {run.wall_s:.1f} | {run.rate:.0f} | {items}"
            f" | {items / run.wall_s:.0f} | {run.cpu_s:.1f} | {items / run.cpu_s:.0f}"
            f" | {', '.join(map(str, STORED[run.label][:3]))} | {STORED[run.label][3]} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=5000)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=1, help="processes per worker")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, rules={args.rules}")
    print(f"cpu: {_cpu_model()}; load average before: {_load()}")
    print_runs(bench(args.feeds, args.rules, args.concurrency))
    print(f"load average after: {_load()}")


if __name__ == "__main__":
    main()
