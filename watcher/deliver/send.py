"""Deliver the outbox: send due alerts through their channels, then mark sent, retry or failed.

    due alerts -> build each message (main thread, reads the database)
               -> one sender thread per channel sends its alerts in order
               -> the main thread records the outcomes that have arrived, up to
                  RECORD_BATCH of them in one transaction; a sender goes on sending
                  while fewer than IN_FLIGHT of its outcomes are unrecorded, so a crash
                  leaves at most IN_FLIGHT alerts per channel sent but not yet
                  recorded (sent again on restart; a channel whose sending again is
                  harmless, such as eml rewriting the same file, says how many it
                  allows in ``in_flight``)

An alert is only ever marked ``sent`` after its channel accepted it; a failure is
retried with backoff (retry.next_attempt) or marked ``failed``, never dropped. One
slow or dead channel never delays the others: each channel sends in its own thread,
and a channel that fails transiently is left alone for the rest of the pass.
Messages are built by message.py; this module renders nothing itself and holds no SQL.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from watcher.deliver.channels import Channel, channel_secrets
from watcher.deliver.message import MessageContext, build_message
from watcher.deliver.retry import next_attempt
from watcher.exceptions import DeliveryError
from watcher.redact import scrub
from watcher.store import outbox as sql
from watcher.store.outbox import due_alerts, mark_failed, mark_retry, mark_sent
from watcher.types import Alert, AlertMessage

log = logging.getLogger(__name__)

# A sender has at most this many sent alerts not yet recorded: the most a crash re-sends
# (unless its channel's ``in_flight`` allows more).
IN_FLIGHT = 8
# At most this many outcomes are written in one transaction.
RECORD_BATCH = 50
# How long the writer waits for more outcomes to share a transaction with the first; it
# stops waiting sooner once as many are waiting as the senders may have in flight.
RECORD_LINGER_S = 0.05


class DeliveryContext(MessageContext, Protocol):
    """What a delivery pass needs: the message context and the channels, by name."""

    @property
    def channels(self) -> Mapping[str, Channel]: ...


@dataclass
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    bugs: int = 0
    deferred: int = 0  # not tried this pass: their channel had just failed
    # (channel, sent | retry | failed, seconds the send took; -1: not sent) per attempt
    outcomes: list[tuple[str, str, float]] = field(default_factory=list)


@dataclass(frozen=True)
class _Outcome:
    """What a sender thread reports about one alert; ``recorded`` is set once it is written."""

    alert: Alert
    error: DeliveryError | None = None
    bug: bool = False
    seconds: float = -1.0  # how long the channel's send took
    recorded: threading.Event = field(default_factory=threading.Event)


_DONE = object()


def deliver_pending(
    rt: DeliveryContext,
    now: datetime,
    alert_ids: Sequence[int] | None = None,
    *,
    channels: Collection[str] | None = None,
) -> DeliveryReport:
    """Send every due alert (or only those listed, or only those of ``channels``);
    failures are retried later or failed."""
    report = DeliveryReport()
    due = due_alerts(rt.store, now)
    if alert_ids is not None:
        wanted = set(alert_ids)
        due = [a for a in due if a.id in wanted]
    if channels is not None:
        due = [a for a in due if a.channel in channels]
    batches = _prepare(rt, due, now, report)
    if not batches:
        return report
    outcomes: queue.Queue[_Outcome | object] = queue.Queue()
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=_send_batch,
            args=(rt.channels[name], batch, outcomes, stop),
            name=f"deliver-{name}",
            daemon=True,
        )
        for name, batch in batches.items()
    ]
    for thread in threads:
        thread.start()
    in_flight = sum(in_flight_of(rt.channels[name]) for name in batches)
    try:
        recorded = _record_outcomes(rt, outcomes, len(threads), in_flight, now, report)
    finally:
        stop.set()  # on an error while recording, senders stop after their current send
    for thread in threads:
        thread.join()
    report.deferred = sum(len(batch) for batch in batches.values()) - recorded
    return report


def _prepare(
    rt: DeliveryContext, due: list[Alert], now: datetime, report: DeliveryReport
) -> dict[str, list[tuple[Alert, AlertMessage]]]:
    """Build each due alert's message, grouped by channel; unbuildable ones are recorded."""
    batches: dict[str, list[tuple[Alert, AlertMessage]]] = {}
    for alert in due:
        if alert.channel not in rt.channels:
            error = DeliveryError(
                alert.channel,
                alert.id,
                f"channel {alert.channel} is not configured",
                permanent=True,
            )
            _after_failure(rt, alert, error, now, report)
            continue
        try:
            message = build_message(rt, alert)
        except Exception as e:  # a bug: keep the alert for a retry, report exit 3
            log.exception("internal error building alert=%d", alert.id)
            report.bugs += 1
            _after_failure(rt, alert, DeliveryError(alert.channel, alert.id, repr(e)), now, report)
            continue
        batches.setdefault(alert.channel, []).append((alert, message))
    return batches


def _send_batch(
    channel: Channel,
    batch: list[tuple[Alert, AlertMessage]],
    outcomes: queue.Queue[object],
    stop: threading.Event,
) -> None:
    """Send one channel's alerts in order (in a thread); stop at its first transient failure.

    A send waits while ``in_flight_of(channel)`` earlier outcomes are not yet recorded.
    """
    unrecorded: collections.deque[_Outcome] = collections.deque()
    room = in_flight_of(channel) - 1
    try:
        for alert, message in batch:
            if stop.is_set() or not _wait_for_room(unrecorded, room, stop):
                break
            outcome = _send_one(channel, alert, message)
            outcomes.put(outcome)
            unrecorded.append(outcome)
            if outcome.error is not None and not outcome.error.permanent:
                break  # the channel is down: its other alerts wait for the next pass
        _wait_for_room(unrecorded, 0, stop)
    finally:
        outcomes.put(_DONE)


def in_flight_of(channel: Channel) -> int:
    """How many sent alerts ``channel`` may have unrecorded: IN_FLIGHT, or more for a
    channel that says sending an alert again does no harm (at most RECORD_BATCH)."""
    return max(1, min(int(getattr(channel, "in_flight", IN_FLIGHT)), RECORD_BATCH))


def _wait_for_room(
    unrecorded: collections.deque[_Outcome], most: int, stop: threading.Event
) -> bool:
    """Wait until at most ``most`` outcomes are unrecorded; False when told to stop."""
    while unrecorded and unrecorded[0].recorded.is_set():
        unrecorded.popleft()
    while len(unrecorded) > most:
        if not unrecorded[0].recorded.wait(0.1):
            if stop.is_set():
                return False
            continue
        unrecorded.popleft()
    return True


def _send_one(channel: Channel, alert: Alert, message: AlertMessage) -> _Outcome:
    started = time.monotonic()
    try:
        channel.send(message)
    except DeliveryError as e:
        return _Outcome(alert, e, seconds=time.monotonic() - started)
    except Exception as e:  # a bug in a channel: keep the alert for a retry
        log.exception("internal error delivering alert=%d channel=%s", alert.id, alert.channel)
        error = DeliveryError(alert.channel, alert.id, repr(e))
        return _Outcome(alert, error, bug=True, seconds=time.monotonic() - started)
    return _Outcome(alert, seconds=time.monotonic() - started)


def _record_outcomes(
    rt: DeliveryContext,
    outcomes: queue.Queue[object],
    senders: int,
    in_flight: int,
    now: datetime,
    report: DeliveryReport,
) -> int:
    """Write outcomes as they arrive, until every sender is done; returns how many.

    The outcomes that arrive within ``RECORD_LINGER_S`` of the first (at most
    ``RECORD_BATCH``) go in one transaction; a sender is told only after that transaction
    is committed. Lingering keeps the transactions few: one per outcome made the writer
    queue for the write lock behind a poll's storing a thousand times in a first poll.
    """
    recorded = 0
    while senders:
        batch: list[_Outcome] = []
        item = outcomes.get()
        until = time.monotonic() + RECORD_LINGER_S
        while True:
            if item is _DONE:
                senders -= 1
            else:
                assert isinstance(item, _Outcome)
                batch.append(item)
            if not senders or len(batch) >= min(RECORD_BATCH, in_flight):
                break
            try:
                item = outcomes.get(timeout=max(0.0, until - time.monotonic()))
            except queue.Empty:
                break
        if batch:
            with rt.store.transaction():
                for outcome in batch:
                    _record(rt, outcome, now, report)
            for outcome in batch:
                outcome.recorded.set()
            recorded += len(batch)
    return recorded


def _record(rt: DeliveryContext, outcome: _Outcome, now: datetime, report: DeliveryReport) -> None:
    alert = outcome.alert
    if outcome.error is None:
        mark_sent(rt.store, alert.id, now)
        report.sent += 1
        report.outcomes.append((alert.channel, "sent", outcome.seconds))
        log.info("sent alert=%d rule=%s channel=%s", alert.id, alert.rule_id, alert.channel)
        return
    report.bugs += outcome.bug
    _after_failure(rt, alert, outcome.error, now, report, outcome.seconds)


def _after_failure(
    rt: DeliveryContext,
    alert: Alert,
    error: DeliveryError,
    now: datetime,
    report: DeliveryReport,
    seconds: float = -1.0,
) -> None:
    retry_at = next_attempt(rt.settings, alert, now, _retry_window_start(rt, alert, now))
    config = rt.settings.channels.get(alert.channel)
    if config is not None:  # what a channel let through is still never kept
        error.message = scrub(error.message, channel_secrets(config))
    if error.permanent or retry_at is None:
        mark_failed(rt.store, alert.id, error.message, now)
        report.failed += 1
        report.outcomes.append((alert.channel, "failed", seconds))
        log.error(
            "alert failed alert=%d channel=%s error=%r", alert.id, alert.channel, error.message
        )
    else:
        mark_retry(rt.store, alert.id, error.message, retry_at, now)
        report.retrying += 1
        report.outcomes.append((alert.channel, "retry", seconds))
        log.warning(
            "alert retry alert=%d channel=%s at=%s error=%r",
            alert.id,
            alert.channel,
            retry_at.isoformat(),
            error.message,
        )


def _retry_window_start(rt: DeliveryContext, alert: Alert, now: datetime) -> datetime | None:
    """When the alert's ``give_up_after`` window starts: at its first delivery attempt.

    An alert first tried long after it was queued (the process was down) still gets
    its retries; a digest or a manual retry has set its own start already.
    """
    start = sql.retry_from(rt.store, alert.id)
    if start is None and alert.attempts == 0:
        sql.set_retry_from(rt.store, alert.id, now)
        start = now
    return start
