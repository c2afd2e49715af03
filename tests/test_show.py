"""``watcher show ITEM_ID [--json]``: one item as evidence of why it matched."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.feedgen import Entry, rss
from watcher.cli import cli
from watcher.store import Store

NOW = datetime.now(UTC).replace(microsecond=0)
ARTICLE = (
    "Officials said on Tuesday that North Korean troops had crossed into the region.\n\n"
    "In the fourth paragraph: the DPRK troops were seen near Kursk, \x1b]52;c;evil\x07 said one."
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(
        "- id: nk\n  any: ['North Korean troops', 'DPRK troops']\n  all: [kursk]\n"
        "- id: kursk\n  query: 'kursk OR /kur+sk/'\n"
        "- id: drones\n  any: [drone*]\n  stem: english\n"
    )
    feed = tmp_path / "f.xml"
    feed.write_bytes(
        rss(
            [
                Entry("1", "Fighting near Kursk", "DPRK troops seen.", published=NOW),
                Entry("2", "Over the river", "Many drones flew.", published=NOW),
                Entry("3", "Weather", "Rain.", published=NOW),
            ],
            title="World wire",
        )
    )
    (tmp_path / "watcher.yaml").write_text(
        f"database: w.db\nrules: rules/\nfeeds:\n  - url: {feed.as_uri()}\n    name: wire\n"
        "defaults: {first_poll_alerts: all}\nchannels:\n  files: {type: eml, dir: outbox}\n"
    )
    assert invoke(tmp_path, "poll", "--all")[0] == 0
    with Store(tmp_path / "w.db") as store, store.transaction():
        store.db.execute(
            "UPDATE items SET article_text = ?, article_fetched_at = ?, language = 'en'"
            " WHERE guid = '1'",
            [ARTICLE, "2026-01-02T03:04:05Z"],
        )
        store.db.execute("UPDATE items SET article_error = 'http 404' WHERE guid = '2'")
    return tmp_path


def invoke(project: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--config", str(project / "watcher.yaml"), *args])
    return result.exit_code, result.stdout, result.stderr


def item_id(project: Path, guid: str) -> int:
    with Store(project / "w.db") as store:
        return int(store.scalar("SELECT id FROM items WHERE guid = ?", [guid]))


def test_show_prints_the_item_its_matches_and_the_article_with_the_words_marked(
    project: Path,
) -> None:
    code, out, err = invoke(project, "show", str(item_id(project, "1")))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"item {item_id(project, '1')}: Fighting near **Kursk**"
    assert "feed:       wire (World wire)" in lines
    assert "language:   en" in lines
    assert "article:    fetched 2026-01-02 03:04 UTC" in lines
    matched = [line for line in lines if line.startswith("matched:")]
    assert [m.split(" (")[0] for m in matched] == [
        "matched:    nk: dprk troops, kursk",
        "matched:    kursk: kursk, /kur+sk/",
    ]
    body = out.split("\n[article]\n", 1)[1]
    assert body == (
        "Officials said on Tuesday that North Korean troops had crossed into the region.\n\n"
        "In the fourth paragraph: the **DPRK troops** were seen near **Kursk**,"
        " \\x1b]52;c;evil\\x07 said one.\n"
    )


def test_show_json_has_every_field_and_escapes_controls(project: Path) -> None:
    code, out, err = invoke(project, "show", str(item_id(project, "1")), "--json")
    assert code == 0, err
    assert "\x1b" not in out and "\\u001b]52" in out
    shown = json.loads(out)
    assert shown["feed"] == "wire" and shown["feed_title"] == "World wire"
    assert shown["title_marked"] == "Fighting near **Kursk**"
    assert shown["text_field"] == "article" and shown["text"] == ARTICLE
    assert "the **DPRK troops** were seen near **Kursk**" in shown["text_marked"]
    assert [m["rule_id"] for m in shown["matches"]] == ["nk", "kursk"]
    assert shown["matches"][0]["terms"] == ["dprk troops", "kursk"]
    assert shown["article_fetched_at"] == "2026-01-02T03:04:05Z"
    assert shown["language"] == "en" and shown["article_error"] is None
    assert len(shown["alert_ids"]) == 2
    assert shown["published_at"] == NOW.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_without_an_article_the_content_or_summary_is_shown_stemmed_as_its_rule(
    project: Path,
) -> None:
    code, out, err = invoke(project, "show", str(item_id(project, "2")))
    assert code == 0, err
    assert "article:    not read: http 404" in out.splitlines()
    assert out.endswith("\n[summary]\nMany **drones** flew.\n")
    code, out, _ = invoke(project, "show", str(item_id(project, "3")), "--json")
    shown = json.loads(out)
    assert (shown["matches"], shown["text_marked"]) == ([], "Rain.")


def test_an_unknown_item_is_one_line_and_exit_1(project: Path) -> None:
    assert invoke(project, "show", "9999") == (1, "", "error: no item 9999\n")
    code, _, err = invoke(project, "show", "nine")
    assert code == 2 and "'nine' is not a valid integer" in err


def test_on_a_terminal_the_matched_words_are_bold(project: Path) -> None:
    main, child = pty.openpty()
    proc = subprocess.run(
        [sys.executable, "-m", "watcher", "--config", str(project / "watcher.yaml"), "show"]
        + [str(item_id(project, "1"))],
        stdout=child,
        stderr=subprocess.PIPE,
        timeout=60,
        check=False,
    )
    os.close(child)
    out = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(main)
    assert proc.returncode == 0, proc.stderr
    text = out.decode()
    assert "Fighting near \x1b[1mKursk\x1b[22m" in text
    assert "**" not in text and "\\x1b]52" in text


def test_retention_keeps_the_article_of_an_alerted_item(project: Path) -> None:
    old = "2020-01-01T00:00:00Z"
    with Store(project / "w.db") as store, store.transaction():
        store.db.execute("UPDATE items SET first_seen_at = ?, published_at = ?", [old, old])
        store.db.execute("UPDATE items SET article_text = 'Rain all day.' WHERE guid = '3'")
        store.db.execute(
            "INSERT INTO items (feed_id, guid, title, summary, content, summary_text,"
            " content_text, tags, first_seen_at, content_hash)"
            " SELECT feed_id, 'newest', 'x', '', '', '', '', '[]', ?, 'h' FROM items LIMIT 1",
            [NOW.strftime("%Y-%m-%dT%H:%M:%SZ")],
        )
    config = project / "watcher.yaml"
    config.write_text(config.read_text() + "retention: 1d\n")
    code, _, err = invoke(project, "poll", "--all")
    assert code == 0, err
    with Store(project / "w.db") as store:
        guids = {r[0] for r in store.db.execute("SELECT guid FROM items")}
    assert guids == {"1", "2", "newest"}  # the unmatched, unalerted old item went
    code, out, _ = invoke(project, "show", str(item_id(project, "1")), "--json")
    assert code == 0 and json.loads(out)["text"] == ARTICLE
