"""The checked settings of a config file, kept between runs: reading and checking the
YAML of thousands of feeds takes a third of a second at every start of a command, the
pickled result a few milliseconds.

An entry is found by the config file's absolute path and bytes, the home folder (``~``
in paths) and watcher's version, Python's and the sizes and modification times of the
code that reads configs. It is used only while what the settings read on disk is as it
was: each rule path the config names, whether it is a file or a folder, and a folder's
modification time (it changes when a file is added, removed or renamed in it).

A config that names an environment variable (``${SMTP_PASSWORD}``) is never cached: its
settings hold the variable's value, and a secret kept out of the config file must not
land in a cache file either. Entries live in ``.watcher-cache`` beside the config file
(mode 0600); a folder that cannot be written means no cache, never an error.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from watcher import __version__
from watcher.config import read_settings
from watcher.picklefile import read_pair, write_pickle
from watcher.types import Settings

CACHE_FOLDER = ".watcher-cache"
_CODE = ("config.py", "types.py", "config_cache.py")  # what reads a config, and its types
Stamp = tuple[str, str, int]  # a path, "file" | "folder" | "missing", a folder's mtime


def load_settings_cached(path: Path, env: Mapping[str, str] | None = None) -> Settings:
    """``config.load_settings(path)``, from the cache when it holds them; raises the same
    ConfigError for an invalid config (which is never cached)."""
    env = os.environ if env is None else env
    path = Path(os.path.abspath(path))
    try:
        data = path.read_bytes()
    except OSError:
        return read_settings(path, env)[0]  # says which file, and why
    if b"${" in data:
        return read_settings(path, env)[0]
    entry = path.parent / CACHE_FOLDER / f"settings-{_key(path, data, env)}.pickle"
    cached = _read(entry)
    if cached is not None:
        return cached
    settings, looked_at = read_settings(path, env)
    write_pickle(entry, (settings, [_stamp(p) for p in looked_at]), others="settings-*.pickle")
    return settings


def _key(path: Path, data: bytes, env: Mapping[str, str]) -> str:
    digest = hashlib.sha256()
    for part in (__version__, sys.version, str(path), env.get("HOME", "")):
        digest.update(part.encode("utf-8", "surrogateescape") + b"\0")
    package = Path(__file__).resolve().parent
    for name in _CODE:
        stat = (package / name).stat()
        digest.update(f"{name} {stat.st_size} {stat.st_mtime_ns}\0".encode())
    digest.update(data)
    return digest.hexdigest()


def _stamp(path: Path) -> Stamp:
    try:
        stat = path.stat()
    except OSError:
        return (str(path), "missing", 0)
    if path.is_dir():
        return (str(path), "folder", stat.st_mtime_ns)
    return (str(path), "file", 0)


def _read(entry: Path) -> Settings | None:
    cached = read_pair(entry, Settings, list)
    if cached is None:
        return None
    settings: Settings = cached[0]
    stamps: list[Stamp] = cached[1]
    if any(_stamp(Path(stamp[0])) != tuple(stamp) for stamp in stamps):
        return None  # a rule file or folder changed: the settings may list other files
    return settings
