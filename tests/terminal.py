"""Run the real command line with stderr on a pseudo-terminal, as a user at a terminal sees it."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_on_terminal(*args: str) -> tuple[int, str, str]:
    """``python -m watcher ARGS`` with stderr on a pty; returns (exit code, stdout, stderr)."""
    main, child = pty.openpty()
    env = {**os.environ, "COLUMNS": "80", "TERM": "xterm"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "watcher", *args],
        stdout=subprocess.PIPE,
        stderr=child,
        cwd=ROOT,
        env=env,
    )
    os.close(child)
    assert proc.stdout is not None
    with proc.stdout:
        out = proc.stdout.read().decode()
    chunks = []
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    return proc.wait(timeout=60), out, b"".join(chunks).decode().replace("\r\n", "\n")
