"""A poll of many feeds delivers its alerts while it is still storing (deliver/beside.py)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.feedgen import Entry, rss
from tests.receivers import ReceivedRequest, WebhookReceiver
from tests.servers import FeedServer, Route
from watcher.cli import cli
from watcher.poll import workers

FEEDS = workers.MIN_FEEDS_FOR_PROCESSES + 10  # enough for worker processes
GATE_S = 45.0  # within the feeds' timeout below


class GatedFeeds(FeedServer):
    """Answers one feed only once ``gate`` is set (or after GATE_S): the poll is still
    fetching, so still storing, until then."""

    def __init__(self, gated: str, gate: threading.Event) -> None:
        super().__init__()
        self.gated = gated
        self.gate = gate
        self.waited_out = False

    def route(self, path: str) -> Route | None:
        if path == self.gated and not self.gate.wait(GATE_S):
            self.waited_out = True
        return super().route(path)


class OpeningReceiver(WebhookReceiver):
    """Sets ``gate`` at its first request."""

    gate: threading.Event | None = None

    def record(self, request: ReceivedRequest) -> int | None:
        status = super().record(request)
        if self.gate is not None:
            self.gate.set()
        return status


@pytest.mark.parametrize("matching", [FEEDS, 3])
def test_a_first_poll_s_alerts_go_out_while_it_still_stores(tmp_path: Path, matching: int) -> None:
    """Many alerts start the delivery process at once; a few, once they have waited
    ``START_AFTER_S`` while the poll goes on."""
    gate = threading.Event()
    published = datetime.now(UTC) - timedelta(hours=1)
    with (
        GatedFeeds(f"/feed/{FEEDS - 1}", gate) as feeds,
        OpeningReceiver() as hook,
    ):
        hook.gate = gate
        for n in range(FEEDS):
            place = "Kursk" if n < matching else "Kyiv"
            entry = Entry(f"item-{n}", f"Fighting near {place}, report {n}", published=published)
            feeds.set(f"/feed/{n}", rss([entry], title=f"Feed {n}"))
        (tmp_path / "rules.yaml").write_text("- id: kursk\n  any: [Kursk]\n")
        config = {
            "database": "watcher.db",
            "rules": ["rules.yaml"],
            "defaults": {"first_poll_alerts": "all", "timeout": "90s"},
            "feeds": [{"url": feeds.url(f"/feed/{n}"), "name": f"f{n}"} for n in range(FEEDS)],
            "channels": {"hook": {"type": "webhook", "url": hook.url()}},
        }
        (tmp_path / "watcher.yaml").write_text(json.dumps(config))
        result = CliRunner().invoke(
            cli, ["--config", str(tmp_path / "watcher.yaml"), "poll", "--all"]
        )
        assert result.exit_code == 0, result.output
        # the first alert arrived while a feed was still being fetched, not after the pass
        assert not feeds.waited_out
        assert f"delivered {matching} alerts" in result.stdout
        sent = [r.header("X-Watcher-Alert-Id") for r in hook.requests]
    assert len(sent) == len(set(sent)) == matching  # each alert once, none left behind
