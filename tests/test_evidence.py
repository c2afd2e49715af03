"""Where an alert's match was found: ``matched in the article`` in the text, HTML and console
bodies, ``items[].matched_in`` in the webhook body; bodies carry snippets, never the article."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.articles import ARTICLES
from tests.feedgen import Entry, rss
from tests.receivers import SmtpReceiver, WebhookReceiver
from tests.servers import FeedServer
from watcher.cli import cli
from watcher.deliver.console import ConsoleChannel
from watcher.deliver.email import EmailChannel
from watcher.deliver.render import render_html, render_text
from watcher.deliver.webhook import WebhookChannel
from watcher.types import AlertItem, AlertMessage, ChannelConfig

SNIPPET = "… in the fourth paragraph the **fiber-optic drones** were seen …"


def message(*matched_in: str) -> AlertMessage:
    item = AlertItem(
        id=5,
        title="Drone attacks continue",
        link="https://news.example.org/a/5",
        feed="wire",
        published_at=datetime(2025, 3, 1, 10, 0, tzinfo=UTC),
        terms=("fiber optic drones",),
        snippets=(SNIPPET,),
        matched_in=matched_in,
    )
    return AlertMessage(
        alert_id=11,
        kind="match",
        created_at=datetime(2025, 3, 1, 10, 5, tzinfo=UTC),
        rule_id="fod",
        rule_description="fiber-optic drones",
        severity="high",
        items=(item,),
        subject="[watcher] fod: Drone attacks continue",
    )


@pytest.mark.parametrize(
    ("fields", "note"),
    [
        (("article",), "matched in the article"),
        (("title", "article"), "matched in the title and the article"),
        (("title", "summary", "article"), "matched in the title, the summary and the article"),
        (("title", "summary"), None),
        ((), None),
    ],
)
def test_the_text_and_html_say_when_the_article_matched(
    fields: tuple[str, ...], note: str | None
) -> None:
    text, html = render_text(message(*fields)), render_html(message(*fields))
    if note is None:
        assert "matched in" not in text and "matched in" not in html
    else:
        assert f"  matched: fiber optic drones\n  {note}\n  {SNIPPET}\n" in text
        assert f"<p><em>{note}</em></p>" in html


def test_the_webhook_body_lists_the_fields(webhook_server: WebhookReceiver) -> None:
    config = ChannelConfig(name="hook", type="webhook", options={"url": webhook_server.url()})
    channel = WebhookChannel(config, "inst")
    channel.send(message("article"))
    channel.send(replace(message("title", "summary"), alert_id=12))
    first, second = (r.json() for r in webhook_server.requests)
    assert first["items"][0]["matched_in"] == ["article"]
    assert first["items"][0]["snippets"] == [SNIPPET]
    assert second["items"][0]["matched_in"] == ["title", "summary"]


def test_the_email_says_it_too(smtp_server: SmtpReceiver) -> None:
    options = {
        "to": ("desk@example.org",),
        "from": "watcher@example.org",
        "smtp": {"host": "127.0.0.1", "port": smtp_server.port, "timeout": 5.0},
    }
    EmailChannel(ChannelConfig(name="mail", type="email", options=options), "inst").send(
        message("article")
    )
    (mail,) = smtp_server.messages
    bodies = {p.get_content_type(): p.get_content() for p in mail.message.iter_parts()}
    assert "matched in the article" in bodies["text/plain"]
    assert "<em>matched in the article</em>" in bodies["text/html"]


def test_the_console_says_it_too(capsys: pytest.CaptureFixture[str]) -> None:
    ConsoleChannel(ChannelConfig(name="console", type="console", options={}), "inst").send(
        message("article")
    )
    assert "    matched in the article\n" in capsys.readouterr().out


# --- end to end: a poll's stored evidence reaches the webhook body ---------------------------


def project(tmp_path: Path, hook: str, feed: bytes, defaults: str = "") -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(
        "- id: fod\n  any: ['fiber-optic drones']\n- id: rain\n  any: [rain]\n"
    )
    (tmp_path / "f.xml").write_bytes(feed)
    (tmp_path / "watcher.yaml").write_text(
        f"database: w.db\nrules: rules/\nfeeds:\n  - url: {tmp_path / 'f.xml'}\n    name: wire\n"
        f"defaults: {{first_poll_alerts: all{defaults}}}\n"
        f"channels:\n  hook: {{type: webhook, url: '{hook}'}}\n"
        "  files: {type: eml, dir: outbox}\n"
    )
    return tmp_path


def poll(project: Path) -> None:
    result = CliRunner().invoke(cli, ["--config", str(project / "watcher.yaml"), "poll", "--all"])
    assert result.exit_code == 0, result.output


def test_a_polled_match_lists_the_fields_it_was_found_in(
    tmp_path: Path, webhook_server: WebhookReceiver
) -> None:
    now = datetime.now(UTC)
    feed = rss(
        [
            Entry(
                "1", "Fiber-optic drones near Kursk", "New fiber-optic drones seen.", published=now
            ),
            Entry("2", "Weather", "Rain all day.", published=now),
        ]
    )
    poll(project(tmp_path, webhook_server.url(), feed))
    bodies = {r.json()["rule"]["id"]: r.json()["items"][0] for r in webhook_server.requests}
    assert bodies["fod"]["matched_in"] == ["title", "summary"]
    assert bodies["fod"]["snippets"][0] == "**Fiber-optic drones** near Kursk"
    assert bodies["rain"]["matched_in"] == ["summary"]


def test_a_match_in_the_article_says_so_and_carries_a_snippet_not_the_article(
    tmp_path: Path, webhook_server: WebhookReceiver, feed_server: FeedServer
) -> None:
    page = (ARTICLES / "frontline-fiber-drones.html").read_bytes()
    feed_server.set("/news/1", page, headers={"Content-Type": "text/html; charset=utf-8"})
    feed_server.set("/robots.txt", b"User-agent: *\nAllow: /\n")
    now = datetime.now(UTC)
    feed = rss([Entry("1", "Cable jammers", "A teaser.", feed_server.url("/news/1"), now)])
    folder = project(tmp_path, webhook_server.url(), feed, ", full_text: always")
    poll(folder)
    (request,) = webhook_server.requests
    item = request.json()["items"][0]
    assert item["matched_in"] == ["article"]
    assert any("**fiber-optic drones**" in s for s in item["snippets"])
    assert len(request.body) < 4000
    assert b"if the supply of optical fibre from abroad holds up" not in request.body
    (eml,) = (folder / "outbox").glob("*.eml")
    text = eml.read_text()
    assert "  matched in the article\n" in text and "**fiber-optic drones**" in text
    assert "optical fibre from abroad" not in text
