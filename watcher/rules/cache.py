"""Compiled rules kept between runs, keyed by what they are made of; decides nothing.

Loading and compiling 1,000 rules takes a good part of a second, paid by every
``watcher poll`` and at every daemon start, though the rule files rarely change. The
compiled rules are pickled into ``rules-<key>.pickle`` in a cache folder (the database's
``.watcher-cache``), where ``key`` is a SHA-256 over the rule files' paths and bytes, the
channel names ``notify`` may use, the watcher version, the Python version and the matcher's
own source files (so that a changed rule file, channel list or watcher gives a new key).
A later run with the same key unpickles them instead. A folder that cannot be written,
or a file that cannot be read, costs only the time of compiling: the rules are then loaded
as without a cache. Invalid rules are never cached (``load_rules`` raises first).

The cache folder belongs to the user who runs watcher, like the database beside it: a
pickle is only ever read from there.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Collection, Sequence
from pathlib import Path

from watcher import __version__
from watcher.picklefile import read_pair, write_pickle
from watcher.rules.match import SCAN_BUILT, CompiledRules, compile_rules
from watcher.types import Rule

CACHE_FOLDER = ".watcher-cache"
# The matcher's own code: a change to it (a development install) must not reuse old
# compiled rules. Their sizes and modification times go into the key.
_CODE = ("rules/load.py", "rules/match.py", "rules/query.py", "text.py", "types.py")


def cache_folder(database: Path) -> Path:
    """The cache folder of a database: ``.watcher-cache`` beside it."""
    return database.parent / CACHE_FOLDER


def feeds_sync_file(database: Path) -> Path:
    """Where ``sync_config_feeds`` remembers the config it last synced (store/feeds.py)."""
    return cache_folder(database) / "feeds-sync"


def rules_key(paths: Sequence[Path], channels: Collection[str] | None) -> str:
    """What a compiled rule set is made of, as a hex digest; OSError if a file is unreadable."""
    digest = hashlib.sha256()
    for part in (__version__, sys.version, str(SCAN_BUILT), repr(_channel_names(channels))):
        digest.update(part.encode() + b"\0")
    package = Path(__file__).resolve().parent.parent
    for name in _CODE:
        stat = (package / name).stat()
        digest.update(f"{name} {stat.st_size} {stat.st_mtime_ns}\0".encode())
    for path in paths:
        data = Path(path).read_bytes()
        digest.update(f"{path}\0{len(data)}\0".encode() + data)
    return digest.hexdigest()


def load_compiled(
    paths: Sequence[Path], channels: Collection[str] | None, folder: Path | None
) -> tuple[list[Rule], CompiledRules]:
    """The rules of ``paths`` and their compiled form, from ``folder``'s cache when it
    holds them for these files; raises ConfigError for invalid rules as ``load_rules`` does."""
    key = None
    if folder is not None:
        try:
            key = rules_key(paths, channels)
        except OSError:
            key = None  # load_rules says which file, and why
    cached = _read(folder / f"rules-{key}.pickle") if folder is not None and key else None
    if cached is not None:
        return cached
    from watcher.rules.load import load_rules  # on a miss only: YAML and the stemmers

    rules = load_rules(list(paths), channels=channels)
    compiled = compile_rules(rules)
    if folder is not None and key:
        write_pickle(folder / f"rules-{key}.pickle", (rules, compiled), others="rules-*.pickle")
    return rules, compiled


def _channel_names(channels: Collection[str] | None) -> list[str] | None:
    return None if channels is None else sorted(channels)


def _read(path: Path) -> tuple[list[Rule], CompiledRules] | None:
    return read_pair(path, list, CompiledRules)
