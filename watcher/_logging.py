"""Logging set-up; called only from the command line (watcher.cli).

Lines read ``LEVEL event key=value ...`` on standard error. -v shows INFO, -vv DEBUG,
-q only errors; apscheduler stays at WARNING unless -vv.

Log arguments and exception text often come from outside (a feed title, a server's
reason phrase, a receiver's answer): ``SafeFormatter`` shows their control characters
and newlines as ``\\xNN``, so a feed can neither drive the terminal nor forge a log line.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

from watcher.printable import printable

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Shown:
    """An argument that prints as its escaped text, whatever the format (%s, %r, %-10s)."""

    def __init__(self, value: object) -> None:
        self.value = value

    def __str__(self) -> str:
        return printable(str(self.value))

    def __repr__(self) -> str:
        return printable(repr(self.value))

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def _safe_arg(value: object) -> object:
    if isinstance(value, int | float) or value is None:
        return value
    return _Shown(value)


def safe_args(args: Any) -> Any:
    """A log record's arguments with outside text escaped (numbers kept for %d, %.1f)."""
    if isinstance(args, Mapping):
        return {key: _safe_arg(value) for key, value in args.items()}
    if isinstance(args, tuple):
        return tuple(_safe_arg(value) for value in args)
    return args


class SafeFormatter(logging.Formatter):
    """The usual format; arguments, the message and exception text shown without controls.

    An argument's newlines are escaped too (one record is one line); a traceback keeps
    its line breaks but not other controls.
    """

    def format(self, record: logging.LogRecord) -> str:
        safe = logging.makeLogRecord(record.__dict__)
        if not isinstance(safe.msg, str):
            safe.msg = printable(str(safe.msg))
        safe.args = safe_args(safe.args)
        safe.exc_text = None
        text = super().format(safe)
        return printable(text, newlines=True)

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        return printable(super().formatException(ei), newlines=True)


def setup_logging(verbose: int, quiet: int) -> None:
    level = logging.WARNING - 10 * verbose + 10 * quiet
    level = max(logging.DEBUG, min(level, logging.CRITICAL))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(SafeFormatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("apscheduler").setLevel(logging.DEBUG if verbose > 1 else logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    # readability-lxml logs its choices, and a traceback before each page it cannot read
    # (poll/article.py reports that page as "empty")
    logging.getLogger("readability").setLevel(logging.CRITICAL)
