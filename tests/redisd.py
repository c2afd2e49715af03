"""A real ``redis-server`` on a free loopback port, and ``watcher worker`` processes for it.

The Makefile installs Debian's redis-server when it is missing; nothing stands in for it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Self

import redis

READY_S = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: object, what: str, timeout: float = READY_S) -> None:
    """Call ``check()`` until it is true (it may raise meanwhile); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():  # type: ignore[operator]
                return
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class RedisServer:
    """``redis-server`` in a folder of its own; ``stop()`` and ``start()`` again on the
    same port (a broker that goes away and comes back)."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is missing: `make test` installs it"
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self.client().ping, f"redis-server on port {self.port}")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Worker:
    """``watcher worker`` as a subprocess in a process group of its own (SIGKILL takes its
    pool processes too); its log lines are collected as they come."""

    def __init__(self, config: Path, concurrency: int = 1) -> None:
        # tests run as root (CI does): Celery refuses pickled tasks as root unless told
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "C_FORCE_ROOT": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "watcher", "--config", str(config), "worker",
             "--concurrency", str(concurrency)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            self.lines.append(raw.decode(errors="replace"))

    def saw(self, text: str) -> int:
        return sum(text in line for line in list(self.lines))

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.reader.join(timeout=5)

    def stop(self) -> None:
        """End the worker at once (its warm shutdown, waiting for tasks, costs seconds)."""
        self.kill()
        if self.process.stderr is not None:
            self.process.stderr.close()


def wait_for_workers(server: RedisServer, count: int) -> None:
    """Until ``count`` workers have said they live (their key in Redis)."""
    client = server.client()
    wait_for(lambda: len(list(client.scan_iter(match="watcher:worker:*"))) >= count, "workers")
