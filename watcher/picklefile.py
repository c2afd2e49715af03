"""Cache files written with ``pickle``: atomically, readable by their owner only, one kept
per kind; a folder that cannot be written means no cache, never an error.

The caches in ``.watcher-cache`` (compiled rules, checked settings) are read back with
``pickle``, so the folder must belong to the user who runs watcher (docs/database.md).
"""

from __future__ import annotations

import logging
import os
import pickle
from contextlib import suppress
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def read_pickle(path: Path) -> object | None:
    """What ``path`` holds, or None when it is missing or unreadable (another version)."""
    try:
        with path.open("rb") as f:
            value: object = pickle.load(f)
    except FileNotFoundError:
        return None
    except Exception as e:  # unreadable, or written by another version: rebuild instead
        log.debug("cache file unusable path=%s error=%r", path, e)
        return None
    return value


def read_pair(path: Path, first: type, second: type) -> tuple[Any, Any] | None:
    """The two values ``path`` holds when they are a ``first`` and a ``second`` (a cache
    entry is such a pair), else None."""
    value = read_pickle(path)
    if not isinstance(value, tuple) or len(value) != 2:
        return None
    a, b = value
    return (a, b) if isinstance(a, first) and isinstance(b, second) else None


def write_pickle(path: Path, value: object, *, others: str) -> None:
    """Write ``value`` to ``path`` (mode 0600), then remove the files of its folder that
    match the glob ``others`` (the entries it replaces)."""
    folder = path.parent
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
        for old in folder.glob(others):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError as e:  # a read-only folder: no cache
        log.debug("not cached path=%s error=%r", path, e)
        with suppress(OSError):
            tmp.unlink(missing_ok=True)
