"""``-vv``: what a real poll asked and got, how it parsed, what changed and what matched."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.feedgen import Entry, rss
from tests.servers import FeedServer
from watcher.cli import cli

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime.now(UTC)


@pytest.fixture
def project(tmp_path: Path, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FEED_PASS", "pa55-w0rd-value")
    monkeypatch.setenv("FEED_KEY", "k3y-value-secret")
    feed_server.set(
        "/f.xml",
        rss([Entry("1", "Troops in Kursk", published=NOW), Entry("2", "Markets", published=NOW)]),
        etag='"v1"',
        headers={"Cache-Control": "max-age=60"},
    )
    feed_server.set("/rdf.xml", (ROOT / "tests" / "data" / "rss10.xml").read_bytes())
    secret_url = feed_server.url("/f.xml?key=${FEED_KEY}").replace("://", "://u:${FEED_PASS}@")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text("- id: kursk\n  any: [Kursk]\n")
    (tmp_path / "watcher.yaml").write_text(
        "database: w.db\nrules: rules/\n"
        f"feeds:\n  - url: {feed_server.url('/f.xml')}\n    name: wire\n"
        f"  - url: {feed_server.url('/rdf.xml')}\n    name: rdf\n"
        f"  - url: '{secret_url}'\n    name: private\n"
        "channels:\n  files: {type: eml, dir: outbox}\n"
    )
    return tmp_path


def poll(project: Path, *verbosity: str) -> str:
    result = CliRunner().invoke(
        cli, ["--config", str(project / "watcher.yaml"), *verbosity, "poll", "--all"]
    )
    assert result.exit_code == 0, result.output
    return result.stderr


def test_debug_log_shows_requests_answers_parsers_changes_and_matches(
    project: Path, feed_server: FeedServer
) -> None:
    base = feed_server.url("")
    err = poll(project, "-vv")
    assert f"http request feed=wire method=GET url={base}/f.xml conditional=no" in err
    size = len(feed_server.routes["/f.xml"].body)
    assert f"http answer feed=wire status=200 bytes={size} " in err  # the body parsed
    assert "etag='\"v1\"' cache_control='max-age=60'" in err
    assert "parsed feed=wire parser=lxml format=rss20 items=2" in err
    assert "parsed feed=rdf parser=feedparser format=rss10 items=1" in err
    assert "items feed=wire new=2 updated=0 unchanged=0" in err
    assert "matched rule=kursk feed=wire item=" in err and "terms=kursk" in err
    # the feed with ${VARS}: its URL as written, without user, password and query
    assert f"http request feed=private method=GET url={base}/f.xml conditional=no" in err
    assert "pa55-w0rd-value" not in err and "k3y-value-secret" not in err

    err = poll(project, "-vv")  # conditional: the server answers 304
    assert "http request feed=wire method=GET url=" in err and "conditional=etag" in err
    assert "http answer feed=wire status=304 bytes=0" in err

    feed_server.set(
        "/f.xml",
        rss(
            [
                Entry("1", "Troops in Kursk", "now with a summary", published=NOW),
                Entry("2", "Markets", published=NOW),
            ]
        ),
    )
    err = poll(project, "-vv")
    assert "items feed=wire new=0 updated=1 unchanged=1" in err


def test_one_v_keeps_to_one_line_per_feed(project: Path) -> None:
    err = poll(project, "-v")
    assert "polled feed=wire status=ok items=2 new=2" in err
    assert "http request" not in err and "parsed feed" not in err and "DEBUG" not in err
