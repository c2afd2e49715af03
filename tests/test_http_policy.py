"""Polite HTTP (SPEC §8): the pure next-poll decisions, then `watcher poll` against a real
local server for each behaviour a user sees in `feeds` and `polls`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from tests.feedgen import Entry, rss
from tests.servers import FeedServer
from watcher.cli import cli
from watcher.decide.schedule import (
    MAX_CACHE_S,
    cache_lifetime_s,
    first_run_at,
    next_poll_after_failure,
    next_poll_after_interval_change,
    next_poll_after_success,
    retry_hold_until,
    spread_bunched,
)
from watcher.store import Store
from watcher.store.feeds import feed_by_name
from watcher.types import FeedState

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


# --- pure decisions ------------------------------------------------------------------------


def moved(**kw: object) -> datetime | None:
    args: dict[str, object] = {
        "next_poll_at": NOW + timedelta(days=1),
        "last_polled_at": NOW,
        "failures": 0,
        "old_interval_s": 86400,
        "new_interval_s": 60,
    }
    return next_poll_after_interval_change(**{**args, **kw})  # type: ignore[arg-type]


def test_a_new_interval_counts_from_the_last_poll_and_never_delays() -> None:
    assert moved() == NOW + timedelta(minutes=1)
    assert moved(new_interval_s=2 * 86400) == NOW + timedelta(days=1)
    assert moved(next_poll_at=None) is None  # due already
    assert moved(last_polled_at=None) == NOW + timedelta(days=1)  # never polled: as planned


def test_a_new_interval_keeps_the_servers_and_the_backoffs_waits() -> None:
    assert moved(failures=3) == NOW + timedelta(minutes=4)
    assert moved(next_poll_at=NOW + timedelta(days=2)) == NOW + timedelta(days=2)  # max-age
    hold = NOW + timedelta(hours=2)
    assert moved(hold_until=hold) == hold


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"cache-control": "public, max-age=7200"}, 7200),
        ({"cache-control": 'max-age="600"'}, 600),
        ({"cache-control": "s-maxage=50, max-age=300"}, 300),
        ({"cache-control": "max-age=9999999"}, MAX_CACHE_S),
        ({"cache-control": "no-cache, max-age=7200"}, None),
        ({"cache-control": "no-store"}, None),
        ({"expires": format_datetime(NOW + timedelta(hours=3), usegmt=True)}, 3 * 3600),
        ({"expires": format_datetime(NOW - timedelta(hours=3), usegmt=True)}, 0),
        ({"expires": "0"}, None),
        ({"expires": "not a date"}, None),
        (
            {"cache-control": "max-age=60", "expires": format_datetime(NOW + timedelta(hours=3))},
            60,
        ),
    ],
)
def test_cache_lifetime(headers: dict[str, str], expected: int | None) -> None:
    assert cache_lifetime_s(headers, NOW) == expected


def test_success_waits_an_interval_or_the_cache_lifetime_whichever_is_longer() -> None:
    assert next_poll_after_success(NOW, 900, {}) == NOW + timedelta(seconds=900)
    longer = {"cache-control": "max-age=7200"}
    assert next_poll_after_success(NOW, 900, longer) == NOW + timedelta(hours=2)
    shorter = {"cache-control": "max-age=60"}  # never sooner than our own interval
    assert next_poll_after_success(NOW, 900, shorter) == NOW + timedelta(seconds=900)
    huge = {"cache-control": "max-age=31536000"}
    assert next_poll_after_success(NOW, 900, huge) == NOW + timedelta(days=1)


def test_failure_backs_off_doubling_capped_at_a_day_and_honours_retry_after() -> None:
    delays = [(next_poll_after_failure(NOW, 600, n) - NOW).total_seconds() for n in (1, 2, 3, 9)]
    assert delays == [600, 1200, 2400, 86400]
    assert next_poll_after_failure(NOW, 600, 1, 429, 7200) == NOW + timedelta(hours=2)
    assert next_poll_after_failure(NOW, 600, 1, 503, 30) == NOW + timedelta(seconds=600)
    assert next_poll_after_failure(NOW, 600, 1, 500, 7200) == NOW + timedelta(seconds=600)
    assert retry_hold_until(NOW, 429, 120) == NOW + timedelta(seconds=120)
    assert retry_hold_until(NOW, 500, 120) is None
    assert retry_hold_until(NOW, 503, None) is None


def test_first_run_keeps_future_times_and_spreads_overdue_ones() -> None:
    ahead = NOW + timedelta(minutes=7)
    assert first_run_at(ahead, NOW, 900) == ahead
    starts = [first_run_at(NOW - timedelta(hours=1), NOW, 900) for _ in range(50)]
    assert all(NOW <= s <= NOW + timedelta(seconds=60) for s in starts)
    assert len(set(starts)) > 1  # not all at once
    assert first_run_at(None, NOW, 900) <= NOW + timedelta(seconds=60)


def polled(i: int, last: datetime, interval_s: int = 60, **kw: object) -> FeedState:
    due = last + timedelta(seconds=interval_s)
    args: dict[str, object] = {"last_polled_at": last, "next_poll_at": due}
    return FeedState(
        id=i, url=f"http://x/{i}", name=f"f{i}", interval_s=interval_s, **{**args, **kw}
    )  # type: ignore[arg-type]


def test_feeds_a_fast_poll_all_left_due_together_are_spread_over_their_interval() -> None:
    # 600 feeds polled within 2 s: all due within 2 s of each other, a minute later
    feeds = [polled(i, NOW - timedelta(seconds=2 * i / 600)) for i in range(600)]
    moves = spread_bunched(feeds, NOW)
    at = {f.id: moves.get(f.id, f.next_poll_at) for f in feeds}
    per_second = Counter(int((t - NOW).total_seconds()) for t in at.values() if t)
    assert max(per_second.values()) <= 2 * 600 / 30  # ~20 a second, not 300
    for f in feeds:
        assert f.next_poll_at and f.last_polled_at
        if f.id in moves:
            assert moves[f.id] < f.next_poll_at  # earlier, never later
            assert moves[f.id] >= f.last_polled_at + timedelta(seconds=30)  # half an interval


def test_feeds_already_spread_and_feeds_waiting_for_more_than_their_interval_stay() -> None:
    spread = [polled(i, NOW - timedelta(seconds=60 * i / 100)) for i in range(100)]
    assert spread_bunched(spread, NOW) == {}
    last = NOW - timedelta(seconds=1)
    waiting = [
        polled(1, last, consecutive_failures=1),  # backing off
        polled(2, last, next_poll_at=last + timedelta(hours=1)),  # Cache-Control: 1 h
        polled(3, last, next_poll_at=NOW - timedelta(seconds=5)),  # overdue: catch-up spread
        polled(4, last, last_polled_at=None),  # never polled
    ] + [polled(10 + i, last) for i in range(10)]
    assert set(spread_bunched(waiting, NOW)) <= set(range(10, 20))


@given(
    st.lists(
        st.tuples(st.floats(0, 3600), st.sampled_from([60, 300, 900]), st.integers(0, 2)),
        max_size=60,
    )
)
def test_a_spread_poll_is_never_later_than_due_nor_sooner_than_half_an_interval(
    rows: list[tuple[float, int, int]],
) -> None:
    feeds = [
        polled(i, NOW - timedelta(seconds=ago), interval_s, consecutive_failures=failures)
        for i, (ago, interval_s, failures) in enumerate(rows)
    ]
    moves = spread_bunched(feeds, NOW)
    for f in feeds:
        if f.id in moves:
            assert f.next_poll_at and f.last_polled_at
            assert NOW <= moves[f.id] < f.next_poll_at
            assert moves[f.id] >= f.last_polled_at + timedelta(seconds=f.interval_s / 2)
            assert f.consecutive_failures == 0


# --- through `watcher poll` against a local server -----------------------------------------


@pytest.fixture
def project(tmp_path: Path, feed_server: FeedServer) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text("- id: kursk\n  any: [Kursk]\n")
    (tmp_path / "watcher.yaml").write_text(
        "database: w.db\nrules: rules/\ndefaults: {interval: 15m}\n"
        f"feeds:\n  - url: {feed_server.url('/f.xml')}\n    name: wire\n"
        "channels:\n  console: {type: console}\n"
    )
    return tmp_path


def poll(project: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--config", str(project / "watcher.yaml"), "poll", *args])
    return result.exit_code, result.output


def test_a_feed_polled_late_in_a_long_pass_is_due_an_interval_after_its_own_poll(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    # 25 quick feeds make the first stored batch; the slow one is stored 2 s later
    names = [f"quick{i}" for i in range(25)] + ["slow"]
    for name in names:
        feed_server.set(f"/{name}.xml", rss([]), delay=2.0 if name == "slow" else 0.0)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text("- id: kursk\n  any: [Kursk]\n")
    feeds = "".join(f"  - url: {feed_server.url(f'/{n}.xml')}\n    name: {n}\n" for n in names)
    (tmp_path / "watcher.yaml").write_text(
        f"database: w.db\nrules: rules/\ndefaults: {{interval: 15m}}\nfeeds:\n{feeds}"
    )
    code, out = poll(tmp_path, "--all")
    assert code == 0, out
    with Store(tmp_path / "w.db") as store:
        quick, slow = feed_by_name(store, "quick0"), feed_by_name(store, "slow")
    assert quick and slow and quick.last_polled_at and slow.last_polled_at
    assert slow.last_polled_at >= quick.last_polled_at + timedelta(seconds=1)
    assert slow.next_poll_at == slow.last_polled_at + timedelta(minutes=15)


def feed_state(project: Path) -> FeedState:
    with Store(project / "w.db") as store:
        feed = feed_by_name(store, "wire")
    assert feed is not None
    return feed


def polls(project: Path) -> list[tuple[int | None, str | None]]:
    with Store(project / "w.db") as store:
        rows = store.db.query("SELECT http_status, error FROM polls ORDER BY id")
        return [(r["http_status"], r["error"]) for r in rows]


def hits(server: FeedServer) -> int:
    return sum(1 for r in list(server.requests) if r.path == "/f.xml")


def next_in(feed: FeedState) -> float:
    assert feed.next_poll_at is not None and feed.last_polled_at is not None
    return (feed.next_poll_at - feed.last_polled_at).total_seconds()


def test_cache_control_max_age_sets_the_next_poll(project: Path, feed_server: FeedServer) -> None:
    feed_server.set("/f.xml", rss([]), headers={"Cache-Control": "max-age=7200"})
    assert poll(project, "--all")[0] == 0
    assert next_in(feed_state(project)) == 7200
    feed_server.set("/f.xml", rss([]), headers={"Cache-Control": "max-age=999999"})
    assert poll(project, "--all")[0] == 0
    assert next_in(feed_state(project)) == 86400  # capped at a day
    feed_server.set("/f.xml", rss([]))
    assert poll(project, "--all")[0] == 0
    assert next_in(feed_state(project)) == 900
    assert poll(project)[0] == 0  # not due: no request
    assert hits(feed_server) == 3


def test_expires_sets_the_next_poll(project: Path, feed_server: FeedServer) -> None:
    expires = format_datetime(datetime.now(UTC) + timedelta(hours=5), usegmt=True)
    feed_server.set("/f.xml", rss([]), headers={"Expires": expires})
    assert poll(project, "--all")[0] == 0
    assert 5 * 3600 - 5 <= next_in(feed_state(project)) <= 5 * 3600


def test_not_modified_is_recorded_as_a_poll(project: Path, feed_server: FeedServer) -> None:
    feed_server.set("/f.xml", rss([Entry("1", "Kursk")]), etag='"v1"')
    poll(project, "--all")
    code, out = poll(project, "--all")
    assert code == 0 and "nothing new" in out
    assert polls(project) == [(200, None), (304, None)]
    assert feed_state(project).last_status == "not_modified"


def test_a_permanent_redirect_updates_the_stored_url(
    project: Path, feed_server: FeedServer
) -> None:
    feed_server.redirect("/f.xml", "/moved.xml", status=301)
    feed_server.set("/moved.xml", rss([Entry("1", "Kursk")]))
    assert poll(project, "--all")[0] == 0
    assert feed_state(project).url == feed_server.url("/moved.xml")
    assert poll(project, "--all")[0] == 0
    assert hits(feed_server) == 1  # the second poll went straight to the new URL
    assert polls(project) == [(200, None), (200, None)]


def test_a_temporary_redirect_keeps_the_url(project: Path, feed_server: FeedServer) -> None:
    feed_server.redirect("/f.xml", "/elsewhere.xml", status=302)
    feed_server.set("/elsewhere.xml", rss([]))
    assert poll(project, "--all")[0] == 0
    assert feed_state(project).url == feed_server.url("/f.xml")


def test_410_disables_the_feed_until_enabled(project: Path, feed_server: FeedServer) -> None:
    feed_server.set("/f.xml", b"gone", status=410)
    code, _ = poll(project, "--all")
    assert code == 0
    feed = feed_state(project)
    assert feed.last_status == "disabled"
    assert feed.disabled_reason is not None and "410" in feed.disabled_reason
    assert polls(project)[0][0] == 410
    poll(project, "--all")
    assert hits(feed_server) == 1  # not even --all polls a disabled feed
    runner = CliRunner()
    config = ["--config", str(project / "watcher.yaml")]
    result = runner.invoke(cli, [*config, "feeds", "enable", "wire"])
    assert result.exit_code == 0 and "enabled feed wire" in result.output
    feed_server.set("/f.xml", rss([]))
    assert poll(project)[0] == 0
    assert hits(feed_server) == 2 and feed_state(project).last_status == "ok"
    result = runner.invoke(cli, [*config, "feeds", "enable", "wire"])
    assert result.exit_code == 0 and "not disabled" in result.output
    result = runner.invoke(cli, [*config, "feeds", "enable", "nope"])
    assert result.exit_code == 1 and "no feed named 'nope'" in result.stderr


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured_even_by_poll_all(
    project: Path, feed_server: FeedServer, status: int
) -> None:
    feed_server.set("/f.xml", b"slow down", status=status, headers={"Retry-After": "7200"})
    assert poll(project, "--all")[0] == 0
    feed = feed_state(project)
    assert next_in(feed) == 7200
    assert polls(project)[0][0] == status
    assert poll(project, "--all")[0] == 0
    assert poll(project)[0] == 0
    assert hits(feed_server) == 1


def test_retry_after_as_an_http_date(project: Path, feed_server: FeedServer) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(hours=3), usegmt=True)
    feed_server.set("/f.xml", b"", status=503, headers={"Retry-After": when})
    poll(project, "--all")
    assert 3 * 3600 - 5 <= next_in(feed_state(project)) <= 3 * 3600


def test_a_failing_feed_backs_off_and_recovers_on_first_success(
    project: Path, feed_server: FeedServer
) -> None:
    feed_server.set("/f.xml", b"oops", status=500)
    waits = []
    for _ in range(3):
        assert poll(project, "--all")[0] == 0
        waits.append(next_in(feed_state(project)))
    assert waits == [900, 1800, 3600]
    assert feed_state(project).consecutive_failures == 3
    feed_server.set("/f.xml", rss([]))
    assert poll(project, "--all")[0] == 0
    feed = feed_state(project)
    assert (feed.consecutive_failures, feed.last_status, next_in(feed)) == (0, "ok", 900)
    assert [s for s, _ in polls(project)] == [500, 500, 500, 200]  # every attempt a row


def test_proxy_from_the_environment_is_used(project: Path, feed_server: FeedServer) -> None:
    """requests reads HTTP_PROXY: the feed's host does not exist, only the proxy answers."""
    url = "http://feeds.example.invalid/world.xml"
    feed_server.set(url, rss([Entry("1", "Kursk via proxy")]))  # a proxy sees absolute URLs
    (project / "watcher.yaml").write_text(
        f"database: w.db\nrules: rules/\nfeeds:\n  - url: {url}\n    name: wire\n"
        "channels:\n  console: {type: console}\n"
    )
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["HTTP_PROXY"] = f"http://127.0.0.1:{feed_server.port}"
    done = subprocess.run(
        [sys.executable, "-m", "watcher", "--config", str(project / "watcher.yaml")]
        + ["poll", "--all"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "polled 1 feed: 1 new item" in done.stdout
    assert any(r.path == url for r in feed_server.requests)
