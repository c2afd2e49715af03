"""The search indexer: a thread that fills ``items_fts`` from the queue while polls store.

``watcher poll`` and ``watcher run`` each run one beside their work, with a database
connection of its own; the poll's transactions only queue item ids (store/fts_queue.py),
so storing, matching and alerting never wait for the index. It starts by draining what a
crash or an earlier poll left queued, then looks for more every ``IDLE_S``.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from types import TracebackType

from watcher.exceptions import StoreError
from watcher.store import Store
from watcher.store.fts_queue import ASSUMED_RATE, IndexLag, catch_up, index_lag

IDLE_S = 0.5  # how often an idle indexer looks at the queue
RETRY_S = 5.0  # after a database error (a lock held past the busy timeout)

log = logging.getLogger(__name__)


class Indexer:
    """A thread indexing queued items until ``stop()``; a context manager that starts it."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="indexer", daemon=True)
        self._indexed = 0
        self._busy_s = 0.0  # time spent indexing, for the pace

    def __enter__(self) -> Indexer:
        self.start()
        return self

    def start(self) -> None:
        """Start indexing (once; later calls do nothing). ``watcher poll`` starts it after
        its worker processes are forked, so that they are forked from one thread."""
        if self._thread.ident is None and not self._stopping.is_set():
            self._thread.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def rate(self) -> float:
        """Items per second this indexer managed, or ASSUMED_RATE before it did much."""
        if self._indexed < 1000 or self._busy_s <= 0:
            return ASSUMED_RATE
        return self._indexed / self._busy_s

    def stop(self) -> None:
        """Stop after the batch in hand (at most a fraction of a second)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        store: Store | None = None
        while not self._stopping.is_set():
            try:
                if store is None:
                    store = Store(self.database)
                self._drain(store)
                self._stopping.wait(IDLE_S)
            except StoreError as error:
                log.warning("search indexing failed error=%s: retrying", error)
                self._stopping.wait(RETRY_S)
            except Exception:  # a bug: logged; the queue keeps the items for later
                log.exception("search indexer stopped by a bug")
                break
        if store is not None:
            store.close()

    def _drain(self, store: Store) -> None:
        started = time.monotonic()
        done = catch_up(store, stop=self._stopping.is_set)
        if done:
            self._indexed += done
            self._busy_s += time.monotonic() - started
            log.debug("indexed for search items=%d", done)


def finish_quickly(database: Path, indexer: Indexer, within_s: float) -> IndexLag:
    """After a ``watcher poll``: stop the indexer, index what is left when that takes
    about ``within_s`` at most, and return what stays queued (for the next poll or run).
    Indexing that fails is logged and left queued: the poll's items and alerts are kept."""
    indexer.stop()
    with Store(database) as store:
        lag = index_lag(store, indexer.rate)
        if lag.items and lag.seconds <= within_s:
            try:
                catch_up(store, until=time.monotonic() + 2 * within_s)
            except StoreError as error:
                log.warning("search indexing failed error=%s: left queued", error)
            lag = index_lag(store, indexer.rate)
    return lag
