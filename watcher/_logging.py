"""Logging set-up for the command line; called only from cli.py.

Lines read ``LEVEL event key=value ...`` on standard error. -v shows INFO, -vv DEBUG,
-q only errors; apscheduler stays at WARNING unless -vv.
"""

from __future__ import annotations

import logging
import sys


def setup_logging(verbose: int, quiet: int) -> None:
    level = logging.WARNING - 10 * verbose + 10 * quiet
    level = max(logging.DEBUG, min(level, logging.CRITICAL))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("apscheduler").setLevel(logging.DEBUG if verbose > 1 else logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
