"""Secrets in ``${VAR}``: only the commands that fetch or deliver need them, and no secret
reaches the database, a log line, an error or the command line's output."""

from __future__ import annotations

import json
import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.faults import RawServer, Step
from tests.feedgen import Entry, rss
from tests.receivers import SmtpReceiver, WebhookReceiver
from tests.servers import FeedServer
from watcher.cli import cli
from watcher.decide.schedule import next_poll_after_interval_change as moved
from watcher.store import Store
from watcher.store.feeds import list_feeds, sync_config_feeds
from watcher.types import FeedConfig

FEED_KEY = "feedkey-0123456789"
FEED_AUTH = "Bearer feedauth-abcdefghij"
HOOK_TOKEN = "hooktoken-XYZ987654"
WEBHOOK_SECRET = "signing-secret-5555"
SMTP_PASSWORD = "smtp-password-4444"
ENV = {
    "FEED_KEY": FEED_KEY,
    "FEED_AUTH": FEED_AUTH,
    "HOOK_TOKEN": HOOK_TOKEN,
    "WEBHOOK_SECRET": WEBHOOK_SECRET,
    "SMTP_PASSWORD": SMTP_PASSWORD,
}
UNSET: dict[str, str | None] = dict.fromkeys(ENV)
SECRETS = [*ENV.values(), FEED_AUTH.split()[1]]
TEMPLATE_PATH = "/f.xml?apikey=${FEED_KEY}"


@pytest.fixture
def project(
    tmp_path: Path,
    feed_server: FeedServer,
    webhook_server: WebhookReceiver,
    smtp_server: SmtpReceiver,
) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text("- id: kursk\n  any: [Kursk]\n")
    (tmp_path / "watcher.yaml").write_text(
        "database: w.db\n"
        "rules: rules/\n"
        "defaults: {first_poll_alerts: all}\n"
        "feeds:\n"
        f'  - url: "{feed_server.url(TEMPLATE_PATH)}"\n'
        "    name: wire\n"
        '    headers: {Authorization: "${FEED_AUTH}"}\n'
        "channels:\n"
        "  hook:\n"
        "    type: webhook\n"
        f'    url: "{webhook_server.url("/hooks/T000/${HOOK_TOKEN}")}"\n'
        '    secret: "${WEBHOOK_SECRET}"\n'
        "  mail:\n"
        "    type: email\n"
        "    to: desk@example.org\n"
        "    from: watcher@example.org\n"
        f"    smtp: {{host: 127.0.0.1, port: {smtp_server.port}, username: me,"
        ' password: "${SMTP_PASSWORD}"}\n'
    )
    feed_server.set(f"/f.xml?apikey={FEED_KEY}", rss([Entry("1", "Troops in Kursk")]))
    return tmp_path


def watcher(project: Path, *args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(
        cli, ["--config", str(project / "watcher.yaml"), *args], env=env or dict(ENV)
    )


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def database_bytes(project: Path) -> str:
    with sqlite3.connect(project / "w.db") as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return b"".join(p.read_bytes() for p in project.glob("w.db*")).decode("latin-1")


def test_poll_expands_the_templates_only_to_fetch_and_deliver(
    project: Path, feed_server: FeedServer, webhook_server: WebhookReceiver
) -> None:
    result = watcher(project, "-v", "poll", "--all")
    assert result.exit_code == 0, result.output
    (request,) = feed_server.requests
    assert request.path == f"/f.xml?apikey={FEED_KEY}"
    assert request.header("Authorization") == FEED_AUTH
    assert webhook_server.requests[0].path == f"/hooks/T000/{HOOK_TOKEN}"
    template = feed_server.url(TEMPLATE_PATH)
    listed = json.loads(watcher(project, "feeds", "list", "--json").output)
    assert [f["url"] for f in listed] == [template]
    status = watcher(project, "status", "--json", env=UNSET)
    exported = watcher(project, "feeds", "export", env=UNSET)
    assert status.exit_code == exported.exit_code == 0
    assert template in status.output and "apikey=${FEED_KEY}" in exported.output
    channels = watcher(project, "channels", env=UNSET)
    assert_no_secret(result.output, status.output, exported.output, channels.output)
    assert_no_secret(database_bytes(project))


READ_ONLY = [
    ["status"],
    ["status", "--json"],
    ["feeds", "list"],
    ["feeds", "export"],
    ["search", "kursk"],
    ["alerts"],
    ["channels"],
    ["rules", "check"],
    ["rules", "test", "kursk", "--text", "Kursk"],
    ["mute", "kursk", "--for", "1h"],
    ["unmute", "kursk"],
    ["schema", "config"],
]


def test_read_only_commands_work_without_the_variables(project: Path) -> None:
    assert watcher(project, "poll", "--all").exit_code == 0  # with them: the database exists
    for args in READ_ONLY:
        result = watcher(project, *args, env=UNSET)
        assert result.exit_code == 0, (args, result.output)
        assert_no_secret(result.output)
    backup = watcher(project, "backup", str(project / "copy.db"), env=UNSET)
    assert backup.exit_code == 0, backup.output


def test_commands_that_fetch_or_deliver_name_each_variable_they_lack(project: Path) -> None:
    poll = watcher(project, "poll", "--all", env=UNSET)
    assert poll.exit_code == 1
    for name in ENV:
        assert f"environment variable {name} is not set" in poll.stderr
    assert "feeds[0].url" in poll.stderr and "channels.hook.secret" in poll.stderr
    test = watcher(project, "channels", "test", "hook", env=UNSET)
    assert test.exit_code == 1
    assert "HOOK_TOKEN" in test.stderr and "WEBHOOK_SECRET" in test.stderr
    assert "FEED_KEY" not in test.stderr and "SMTP_PASSWORD" not in test.stderr
    retry = watcher(project, "alerts", "retry", env=UNSET)
    assert retry.exit_code == 1
    assert "SMTP_PASSWORD" in retry.stderr and "FEED_KEY" not in retry.stderr
    channels = watcher(project, "channels", env=UNSET)
    assert "cannot send: environment variable HOOK_TOKEN is not set" in channels.output


def test_rules_check_warns_about_missing_variables_and_strict_makes_them_errors(
    project: Path,
) -> None:
    result = watcher(project, "rules", "check", env=UNSET)
    assert result.exit_code == 0
    assert "warning: " in result.stderr and "FEED_KEY is not set" in result.stderr
    assert "(5 warnings)" in result.output
    strict = watcher(project, "rules", "check", "--strict", env=UNSET)
    assert strict.exit_code == 1
    assert "error: " in strict.stderr and "WEBHOOK_SECRET is not set" in strict.stderr
    assert watcher(project, "rules", "check", "--strict").exit_code == 0
    as_json = json.loads(watcher(project, "rules", "check", "--json", env=UNSET).output)
    assert as_json["ok"] is True and len(as_json["warnings"]) == 5


def test_a_permanent_redirect_keeps_the_template_and_logs_no_secret(
    project: Path, feed_server: FeedServer
) -> None:
    feed_server.redirect(f"/f.xml?apikey={FEED_KEY}", f"/new.xml?apikey={FEED_KEY}", 301)
    feed_server.set(f"/new.xml?apikey={FEED_KEY}", rss([Entry("1", "Kursk")]))
    logging.getLogger("watcher.poll.pipeline").setLevel(logging.NOTSET)  # a quiet poll raised it
    first = watcher(project, "-v", "poll", "--all")
    second = watcher(project, "-v", "poll", "--all")
    assert first.exit_code == second.exit_code == 0
    assert "redirect kept feed=wire to=http://127.0.0.1" in first.stderr
    listed = json.loads(watcher(project, "feeds", "list", "--json").output)
    assert listed[0]["url"] == feed_server.url(TEMPLATE_PATH)
    assert [r.path.split("?")[0] for r in feed_server.requests] == ["/f.xml", "/new.xml"] * 2
    assert_no_secret(first.output, second.output, database_bytes(project))


def test_an_error_from_the_server_never_keeps_a_secret(tmp_path: Path) -> None:
    reason = f"HTTP/1.1 403 key {FEED_KEY} refused for {FEED_AUTH}\r\nContent-Length: 0\r\n\r\n"
    with RawServer([Step(reason.encode())]) as server:
        (tmp_path / "watcher.yaml").write_text(
            "database: w.db\nrules: []\nfeeds:\n"
            f'  - url: "{server.url("/f.xml?k=${FEED_KEY}")}"\n'
            '    headers: {Authorization: "${FEED_AUTH}"}\n'
        )
        result = watcher(tmp_path, "poll", "--all")
    assert result.exit_code == 0
    assert "HTTP 403 key **** refused for ****" in result.stderr
    status = watcher(tmp_path, "status", "--json")
    assert "refused for ****" in status.output
    assert_no_secret(result.output, status.output, database_bytes(tmp_path))


def test_relative_links_are_never_resolved_into_credentials(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.set("/f.xml", rss([Entry("1", "Kursk", link="/story/1")]))
    url = feed_server.url("/f.xml").replace("http://", "http://reader:${FEED_KEY}@")
    (tmp_path / "watcher.yaml").write_text(f'database: w.db\nrules: []\nfeeds:\n  - url: "{url}"\n')
    assert watcher(tmp_path, "poll", "--all").exit_code == 0
    with sqlite3.connect(tmp_path / "w.db") as db:
        (link,) = db.execute("SELECT link FROM items").fetchone()
    db.close()
    assert link == feed_server.url("/story/1")


def test_a_refusing_receiver_answer_is_kept_short_and_without_secrets(
    project: Path, webhook_server: WebhookReceiver
) -> None:
    webhook_server.statuses = [400]
    echoed = f"bad signature {WEBHOOK_SECRET} for /hooks/T000/{HOOK_TOKEN}; " + "x" * 3000
    webhook_server.answer = echoed.encode()
    assert watcher(project, "poll", "--all").exit_code == 0
    with sqlite3.connect(project / "w.db") as db:
        (error,) = db.execute("SELECT last_error FROM alerts WHERE channel = 'hook'").fetchone()
    db.close()
    shown = f"http://127.0.0.1:{webhook_server.port}/…: HTTP 400: bad signature **** for ****;"
    assert shown in error
    answer = error.split("HTTP 400: ", 1)[1]
    assert len(answer) == 500
    assert_no_secret(error)
    channels = watcher(project, "channels", env=UNSET)
    assert "cannot send" in channels.output
    listed = watcher(project, "channels")
    assert f"webhook hook http://127.0.0.1:{webhook_server.port}/…" in listed.output or (
        f"http://127.0.0.1:{webhook_server.port}/…" in listed.output
    )
    assert_no_secret(listed.output)


def test_a_database_holding_an_expanded_url_gets_the_template_instead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What an older watcher stored for a templated feed URL is replaced, not duplicated."""
    monkeypatch.setenv("FEED_KEY", FEED_KEY)
    template = "https://a.example/rss?apikey=${FEED_KEY}"
    now = datetime(2026, 3, 1, tzinfo=UTC)
    with Store(tmp_path / "w.db") as store:
        (old,) = sync_config_feeds(
            store,
            [FeedConfig(url=template.replace("${FEED_KEY}", FEED_KEY))],
            now,
            reschedule=moved,
        )
        (new,) = sync_config_feeds(store, [FeedConfig(url=template)], now, reschedule=moved)
        assert (new.id, new.url) == (old.id, template)
        assert len(list_feeds(store)) == 1
    assert FEED_KEY not in database_bytes(tmp_path)


def test_a_command_line_feed_whose_variable_is_gone_is_an_error_naming_it(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.set(f"/f.xml?apikey={FEED_KEY}", rss([]))
    (tmp_path / "watcher.yaml").write_text("database: w.db\nrules: []\n")
    added = watcher(tmp_path, "feeds", "add", feed_server.url(TEMPLATE_PATH), "--name", "cli")
    assert added.exit_code == 0, added.output
    assert "${FEED_KEY}" in added.output and FEED_KEY not in added.output
    missing = watcher(tmp_path, "feeds", "add", "https://b.example/?k=${NOPE}", env=UNSET)
    assert missing.exit_code == 1 and "environment variable NOPE is not set" in missing.stderr
    result = watcher(tmp_path, "poll", "--all", env=UNSET)
    assert result.exit_code == 0
    assert "feed cli failed: the feed's URL: environment variable FEED_KEY is not set" in (
        result.stderr
    )
    assert watcher(tmp_path, "poll", "--all").exit_code == 0
    # read once by `feeds add` (is it a feed?), once by the poll that had its variable
    assert [r.path for r in feed_server.requests] == [f"/f.xml?apikey={FEED_KEY}"] * 2
