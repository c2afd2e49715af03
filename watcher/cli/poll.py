"""``watcher poll``: one pass over due (or all) feeds, then delivery; for cron and the demo."""

from __future__ import annotations

import logging
import sys
from contextlib import ExitStack
from dataclasses import asdict
from datetime import datetime
from typing import Any

import click

from watcher.archive.retention import PruneReport, prune_archive
from watcher.cli.base import Context, cli, emit_json, handle_errors, now_utc, show_time
from watcher.deliver.beside import DeliveryProcess, merge
from watcher.deliver.send import DeliveryReport, deliver_pending
from watcher.exceptions import LockedError
from watcher.lock import hold_lock
from watcher.poll import workers
from watcher.poll.indexer import Indexer, finish_quickly
from watcher.poll.pipeline import PollReport, poll_feeds, select_feeds
from watcher.poll.result import FeedResult
from watcher.poll.runtime import Runtime, open_runtime
from watcher.printable import printable
from watcher.store import Store
from watcher.store.feeds import PollRequest, list_feeds, request_polls
from watcher.store.fts_queue import IndexLag
from watcher.store.rows import to_text
from watcher.suggest import not_found
from watcher.types import Settings

# A poll finishes the search index before it exits when that takes at most this long;
# a longer backlog (a first poll of thousands of items) is left to the next poll or run.
INDEX_FINISH_S = 10.0


@cli.command()
@click.option("--all", "all_feeds", is_flag=True, help="Poll every feed, due or not.")
@click.option(
    "--feed", "names", multiple=True, metavar="NAME", help="Poll only this feed (repeatable)."
)
@click.pass_obj
@handle_errors
def poll(obj: Context, all_feeds: bool, names: tuple[str, ...]) -> None:
    """Poll due feeds once, queue and deliver alerts, then exit.

    While `watcher run` is running, `--feed NAME` asks the daemon to poll that feed
    now (and returns at once); a pass over all or due feeds is the daemon's job then.

    \b
    Examples:
      watcher poll --all
      watcher poll --feed frontline
    """
    settings = obj.settings()
    now = now_utc()
    # Failed feeds are listed in the summary below; without -v the log would say it twice.
    quiet_pipeline = logging.getLogger().level >= logging.WARNING
    logging.getLogger("watcher.poll.pipeline").setLevel(logging.ERROR if quiet_pipeline else 0)
    with ExitStack() as lock:
        try:
            lock.enter_context(hold_lock(settings.database, "poll"))
        except LockedError as e:
            if e.holder != "run":
                raise
            _ask_daemon(obj, settings, names, all_feeds, e.pid)
            return
        report, delivery, pruned, lag = _poll_once(obj, settings, now, all_feeds, names)
    if obj.json:
        emit_json(
            {
                "poll": _report_dict(report),
                "delivery": asdict(delivery),
                "pruned": asdict(pruned),
                "index_lag": lag.items,
            }
        )
    else:
        _print_summary(report, delivery)
        _print_pruned(pruned)
        _print_lag(lag)
    if report.bugs or delivery.bugs:
        sys.exit(3)


def _poll_once(
    obj: Context, settings: Settings, now: datetime, all_feeds: bool, names: tuple[str, ...]
) -> tuple[PollReport, DeliveryReport, PruneReport, IndexLag]:
    """The pass itself, under the lock: poll, deliver, prune; the search index is filled
    beside it, and finished before exit when that is quick (``INDEX_FINISH_S``)."""
    rt = open_runtime(settings)
    try:
        # started after the first stored batch: worker processes fork from one thread
        indexer = Indexer(settings.database)
        try:
            feeds = select_feeds(rt, now, all_feeds=all_feeds, names=names)
            unknown = [n for n in names if n not in {f.name for f in feeds}]
            if unknown:
                raise not_found("feed", unknown[0], [f.name for f in list_feeds(rt.store)])
            beside = _delivery_beside(rt, settings, len(feeds), now)
            try:
                report = _poll_with_progress(rt, feeds, now, obj.json, beside, indexer)
            finally:
                early = beside.finish() if beside is not None else DeliveryReport()
            delivery = merge(early, deliver_pending(rt, max(now, now_utc())))
            pruned = prune_archive(rt.store, settings, max(now, now_utc()))
            lag = finish_quickly(settings.database, indexer, INDEX_FINISH_S)
        finally:
            indexer.stop()
    finally:
        if rt.articles is not None:
            rt.articles.close()
        rt.store.close()
    return report, delivery, pruned, lag


def _ask_daemon(
    obj: Context, settings: Settings, names: tuple[str, ...], all_feeds: bool, pid: int | None
) -> None:
    """The daemon runs: ask it to poll the named feeds now, through the database."""
    daemon = f"the running daemon (pid {pid if pid is not None else 'unknown'})"
    if all_feeds or not names:
        raise LockedError(
            f"{daemon} polls every feed on its interval: use `watcher poll --feed NAME` to"
            " have it poll one now, or stop the daemon first",
            pid,
            "run",
        )
    with Store(settings.database) as store:
        asked = request_polls(store, names, now_utc())
    if obj.json:
        emit_json({"asked_daemon": {"pid": pid, "feeds": [_asked_dict(a) for a in asked]}})
        return
    for request in asked:
        line = f"asked {daemon} to poll {request.feed}"
        if request.held_until is not None:
            when = show_time(request.held_until, settings.display_timezone)
            line += f" at {when}, when the server's Retry-After ends"
        click.echo(line)


def _asked_dict(request: PollRequest) -> dict[str, Any]:
    held = request.held_until
    return {"feed": request.feed, "not_before": to_text(held) if held else None}


def _delivery_beside(
    rt: Runtime, settings: Settings, feeds: int, now: datetime
) -> DeliveryProcess | None:
    """A process delivering the alerts of a poll of many feeds while it stores (the poll
    then uses worker processes too); the console channel prints here, after the poll."""
    channels = [name for name, cfg in settings.channels.items() if cfg.type != "console"]
    if not channels or not workers.process_count(feeds):
        return None
    return DeliveryProcess(_delivery_runtime, settings, now, channels)  # starts when woken


def _delivery_runtime(settings: Settings) -> Runtime:
    """The delivery process's runtime (deliver/beside.py), with its own connection."""
    return open_runtime(settings, fetching=False)


def _poll_with_progress(
    rt: Any,
    feeds: list[Any],
    now: Any,
    quiet: bool,
    beside: DeliveryProcess | None,
    indexer: Indexer,
) -> PollReport:
    queued = [0]

    def stored(report: PollReport) -> None:
        indexer.start()  # once: the items of this batch are queued for the index
        if beside is None:
            return
        if report.alerts > queued[0]:
            queued[0] = report.alerts
            beside.queued(report.alerts)
        beside.give_way()

    if quiet or not sys.stderr.isatty() or len(feeds) < 2:
        return poll_feeds(rt, feeds, now, stored=stored, clock=now_utc)
    with click.progressbar(length=len(feeds), label="polling", file=sys.stderr) as bar:

        def step(_result: FeedResult) -> None:
            bar.update(1)

        return poll_feeds(rt, feeds, now, progress=step, stored=stored, clock=now_utc)


def _print_lag(lag: IndexLag) -> None:
    if lag.items:
        click.echo(
            f"search {lag.describe()}: the next poll or `watcher run` indexes them"
            " (`watcher search --wait` does it now)",
            err=True,
        )


def _print_pruned(pruned: PruneReport) -> None:
    if pruned.items or pruned.polls:
        click.echo(
            f"pruned {pruned.items} old unmatched item{'s' if pruned.items != 1 else ''}"
            f" and {pruned.polls} old poll record{'s' if pruned.polls != 1 else ''}"
        )


# Counted for the daemon's metrics only; not part of ``poll --json``.
_METRICS_ONLY = ("rule_matches", "queued", "lags_s")


def _report_dict(report: PollReport) -> dict[str, Any]:
    data = {k: v for k, v in asdict(report).items() if k not in _METRICS_ONLY}
    data["failed"] = [{"feed": name, "error": error} for name, error in report.failed]
    return data


def _print_summary(report: PollReport, delivery: DeliveryReport) -> None:
    for name, error in report.failed:
        click.echo(f"feed {printable(name)} failed: {printable(error)}", err=True)
    polled = f"polled {report.feeds} feed{'s' if report.feeds != 1 else ''}" + (
        f" ({len(report.failed)} failed)" if report.failed else ""
    )
    if not (report.new_items or report.updated_items):
        line = f"{polled}: nothing new"
    else:
        line = (
            f"{polled}: {report.new_items} new item{'s' if report.new_items != 1 else ''}"
            + (f", {report.updated_items} updated" if report.updated_items else "")
            + f", {report.matches} match{'es' if report.matches != 1 else ''}"
            + f", {report.alerts} alert{'s' if report.alerts != 1 else ''} queued"
            + (f" ({report.suppressed} recorded, not sent)" if report.suppressed else "")
        )
    click.echo(line)
    if delivery.sent or delivery.retrying or delivery.failed:
        click.echo(
            f"delivered {delivery.sent} alert{'s' if delivery.sent != 1 else ''}"
            + (f", {delivery.retrying} to retry" if delivery.retrying else "")
            + (f", {delivery.failed} failed" if delivery.failed else "")
        )
    if report.failed:
        click.echo("see `watcher status` for every feed's last error", err=True)
