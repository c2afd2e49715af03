"""Names the user typed that do not exist: one error wording, with the closest names.

``not_found("rule", "kurks", known)`` is the ``NotFoundError`` every command raises for
a rule, feed, channel or alert it cannot find::

    no rule named 'kurks'; did you mean 'kursk'?
    no rule or feed named 'nosuch'

Pure: the caller gathers the names that exist.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from watcher.exceptions import NotFoundError

MAX_SUGGESTIONS = 3


def did_you_mean(word: str, choices: Iterable[str], n: int = 1) -> str:
    """``; did you mean 'x'?`` (or ``'x' or 'y'``) for the closest choices; else ``""``."""
    close = difflib.get_close_matches(word, list(dict.fromkeys(choices)), n=n)
    if not close:
        return ""
    return "; did you mean " + " or ".join(repr(c) for c in close) + "?"


def not_found(kind: str, name: str, known: Iterable[str]) -> NotFoundError:
    """The error for a ``kind`` (``rule``, ``feed``, ``rule or feed``) named ``name``."""
    return NotFoundError(
        f"no {kind} named {name!r}{did_you_mean(name, known, MAX_SUGGESTIONS)}", kind, name
    )
