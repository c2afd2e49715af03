"""A budget of CPU time for reading one feed, counted on the thread that reads it.

Every step of reading a feed is linear in its input (``tame`` keeps the HTML sanitiser
so), and the input is bounded by ``poll.max_bytes``; the budget is the backstop that
turns a feed which is still too costly into an error for that feed alone. It is checked
between items, so it cannot stop the first item of a document, only the rest: a thread
cannot be interrupted inside a C call.

The thread's own CPU time is counted, not the wall clock: a busy machine does not make
a feed fail.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Check = Callable[[], None]


class CpuBudgetExceeded(Exception):
    """Raised by a budget's check once the thread spent more than the budget."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"more than {seconds:g} s of CPU time")


class CpuBudget:
    """``seconds`` of this thread's CPU time from now; ``check`` raises when they are spent."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = time.thread_time()

    def spent(self) -> float:
        return time.thread_time() - self.started

    def check(self) -> None:
        if self.spent() > self.seconds:
            raise CpuBudgetExceeded(self.seconds)


def unlimited() -> None:
    """A check that never raises."""
