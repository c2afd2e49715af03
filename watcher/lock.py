"""One process at a time polls or delivers for a database: an advisory lock file beside it."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from watcher.exceptions import LockedError, StoreError


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".lock")


@contextmanager
def hold_lock(db_path: Path, what: str = "watcher") -> Iterator[None]:
    """Hold the database's lock for the block; LockedError names the holder's pid."""
    path = lock_path(db_path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        where = e.filename or path
        reason = (e.strerror or type(e).__name__).lower()
        raise StoreError(
            f"{where}: {reason}: `watcher {what}` keeps a lock file beside the database"
        ) from None
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pid, holder = _holder(os.pread(fd, 64, 0))
            who = f"pid {pid if pid is not None else 'unknown'}" + (
                f", `watcher {holder}`" if holder else ""
            )
            raise LockedError(
                f"another watcher process ({who}) is using {db_path}; "
                f"stop it first or wait for it to finish",
                pid,
                holder,
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {what}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def _holder(data: bytes) -> tuple[int | None, str]:
    """The pid and the command written in a lock file (``1234 run``)."""
    pid_text, _, what = data.decode(errors="replace").strip().partition(" ")
    pid = int(pid_text) if pid_text.isdigit() else None
    what = what.strip()
    return pid, what if what.replace(" ", "").isalpha() else ""
