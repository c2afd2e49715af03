"""Delivery beside a poll: a process of its own sends the alerts a poll queues while the
poll goes on storing.

A first poll of many feeds queues hundreds of alerts. Delivered after storing, in the
storing process, their messages (read back from the database, then rendered as e-mail,
eml or webhook bodies under the GIL) added seconds at the end of the pass on one core.
``DeliveryProcess`` runs ``deliver_pending`` in a spawned process with its own runtime and
database connection. Starting one costs about half a second of CPU (its imports), so it
starts only once the poll has committed ``START_ALERTS`` alerts. Alerts fewer than that
which have waited ``START_AFTER_S`` while the poll goes on are delivered by a thread of
the poll's own process instead, with its own connection: rendering one costs well under a
millisecond, and a thread waits for a slow channel as well as a process does. A poll that
ends before that delivers its few alerts in its own pass at the end, as a small poll
always did; one that queues nothing starts neither. Once started, the poll wakes it
after each batch it commits that queued alerts, and lets its waiting write go first
between two batches (``give_way``: SQLite's lock is not fair, and behind a poll that
begins a transaction as soon as it commits one the process's outcomes waited seconds to
be recorded). It builds, renders, sends and records them on the other core meanwhile.
When the poll is done, ``finish`` has it make one last pass and hands back what it
delivered; the poll then runs its own pass as before, which finds what is left (nothing,
unless the process failed). The console channel stays with the poll: it prints in order
with its summary.

The outbox's guarantees are ``deliver_pending``'s: an alert is marked ``sent`` only after
its channel took it; the two writers (storing, recording outcomes) take turns through
SQLite's write lock.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from watcher._logging import setup_logging
from watcher.deliver.send import DeliveryContext, DeliveryReport, deliver_pending
from watcher.types import Settings

log = logging.getLogger(__name__)

OpenRuntime = Callable[[Settings], DeliveryContext]
WAKE_S = 1.0  # a pass at least this often, woken or not
FINISH_S = 600.0  # the longest a poll waits for the last pass before going on itself
START_ALERTS = 200  # committed alerts that start the process at once (else a thread may)
START_AFTER_S = 2.0  # or how long the first committed alerts wait for it
GIVE_WAY_S = 0.1  # the longest the poll waits for the process to take the write lock


class DeliveryProcess:
    """``deliver_pending`` in a process of its own, for the channels named."""

    def __init__(
        self,
        open_runtime: OpenRuntime,
        settings: Settings,
        now: datetime,
        channels: Collection[str],
    ) -> None:
        """``open_runtime``: a module-level function (it is pickled by name) giving the
        child its own runtime, with its own database connection, from ``settings``."""
        context = multiprocessing.get_context("spawn")  # no inherited connection or thread
        self._wake = context.Event()
        self._done = context.Event()
        self._asking = context.Event()  # raised while the process waits to write
        self._reports, sender = context.Pipe(duplex=False)
        work = _Work(open_runtime, settings, now, sorted(channels), logging.getLogger().level)
        self._process = context.Process(
            target=_deliver_in_process,
            args=(work, self._wake, self._done, self._asking, sender),
            name="watcher-deliver",
            daemon=True,
        )
        self._sender = sender
        self._lock = threading.Lock()  # wake() comes from the poll and from the timer
        self._timer: threading.Timer | None = None
        self._finishing = False
        # the thread that delivers instead, for a few alerts that waited (its report kept)
        self._thread = threading.Thread(
            target=lambda: self._thread_report.append(_deliver_until_done(work, *self._events)),
            name="watcher-deliver",
            daemon=True,
        )
        self._thread_report: list[DeliveryReport] = []

    @property
    def _events(self) -> tuple[Any, Any, Any]:
        return self._wake, self._done, self._asking

    @property
    def _started(self) -> bool:
        return self._process.pid is not None or self._thread.ident is not None

    def queued(self, alerts: int) -> None:
        """The poll has committed ``alerts`` alerts so far: wake the process, or start it
        when there are enough of them (else a thread, once they have waited a while)."""
        if alerts >= START_ALERTS or self._started:
            self.wake()
            return
        with self._lock:
            if self._timer is None and not self._finishing:
                self._timer = threading.Timer(START_AFTER_S, self._waited)
                self._timer.daemon = True
                self._timer.start()

    def give_way(self) -> None:
        """Called by the poll between two transactions: when the process (or thread) waits
        for the write lock, wait (up to ``GIVE_WAY_S``) until it has it."""
        if not self._started:
            return
        deadline = time.monotonic() + GIVE_WAY_S
        while self._asking.is_set() and time.monotonic() < deadline:
            time.sleep(0.0005)

    def wake(self) -> None:
        """Alerts were committed: deliver them now (the process starts at the first)."""
        with self._lock:
            if self._finishing:
                return
            if not self._started:
                self._process.start()
                self._sender.close()  # the child's end; EOF here once it has gone
        self._wake.set()

    def _waited(self) -> None:
        """The first alerts waited ``START_AFTER_S``: deliver them on a thread, unless
        the process started meanwhile."""
        with self._lock:
            if self._finishing:
                return
            if not self._started:
                self._thread.start()
        self._wake.set()

    def finish(self, timeout_s: float = FINISH_S) -> DeliveryReport:
        """One last pass, then what the process (or thread) delivered (empty if it failed
        or never started)."""
        with self._lock:
            self._finishing = True
            if self._timer is not None:
                self._timer.cancel()
        if not self._started:
            return DeliveryReport()
        self._done.set()
        self._wake.set()
        if self._thread.ident is not None:
            # no timeout: a thread cannot be stopped as the process is, and the poll's own
            # pass must not send beside it; each pass ends within its channels' timeouts
            self._thread.join()
            return self._thread_report[0] if self._thread_report else DeliveryReport()
        report = DeliveryReport()
        try:
            if self._reports.poll(timeout_s):
                received = self._reports.recv()
                if isinstance(received, DeliveryReport):
                    report = received
        except (EOFError, OSError):
            log.warning("the delivery process ended without a report; delivering here")
        self._process.join(10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()
        return report


def merge(first: DeliveryReport, then: DeliveryReport) -> DeliveryReport:
    """Two passes' reports as one; ``deferred`` is the later pass's."""
    return replace(
        then,
        sent=first.sent + then.sent,
        retrying=first.retrying + then.retrying,
        failed=first.failed + then.failed,
        bugs=first.bugs + then.bugs,
        outcomes=[*first.outcomes, *then.outcomes],
    )


@dataclass(frozen=True)
class _Work:
    """What the delivery passes need (picklable: ``open_runtime`` is pickled by name)."""

    open_runtime: OpenRuntime
    settings: Settings
    now: datetime
    channels: list[str]
    level: int  # the poll's log level


def _deliver_in_process(
    work: _Work, wake: Any, done: Any, asking: Any, reports: multiprocessing.connection.Connection
) -> None:
    """The process: a pass whenever woken (or every WAKE_S), a last one once done; its
    report goes back through ``reports``."""
    setup_logging(0, 0)
    logging.getLogger().setLevel(work.level)
    total = DeliveryReport()
    try:
        total = _deliver_until_done(work, wake, done, asking)
    finally:
        reports.send(total)
        reports.close()


def _deliver_until_done(work: _Work, wake: Any, done: Any, asking: Any) -> DeliveryReport:
    """A pass whenever woken (or every WAKE_S), a last one once done; what was delivered.
    Runs in the process, or on the poll's thread for a few alerts."""
    total = DeliveryReport()
    rt = work.open_runtime(work.settings)
    rt.store.asking = asking
    parent = multiprocessing.parent_process()
    try:
        while True:
            wake.wait(WAKE_S)
            wake.clear()
            finishing = done.is_set() or (parent is not None and not parent.is_alive())
            at = max(work.now, datetime.now(UTC).replace(microsecond=0))  # a pass's own time
            total = merge(total, deliver_pending(rt, at, channels=work.channels))
            if finishing:
                break
    except Exception:  # a bug here: the poll's own pass delivers the rest
        log.exception("internal error in the delivery process")
        total.bugs += 1
    finally:
        rt.store.close()
    return total
