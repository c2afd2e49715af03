"""items.language: the item's or its feed's declared language, lowercase BCP 47, stored with
the item, read by the ``languages:`` rule option, shown by ``search --json``."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.servers import FeedServer
from watcher.cli import cli
from watcher.langtag import language_tag
from watcher.poll.parse import parse_feed, parse_xml_feed

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>t</title><link>https://e.org/</link>
<language>ko-KR</language>
<item><guid>1</guid><title>\xec\xbf\xa0\xeb\xa5\xb4\xec\x8a\xa4\xed\x81\xac\xec\x97\x90\xec\x84\x9c</title></item>
</channel></rss>"""
ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="zh-CN"><title>t</title><id>f</id>
<updated>2026-03-01T00:00:00Z</updated>
<entry xml:lang="ja"><id>1</id><title>a</title><updated>2026-03-01T00:00:00Z</updated></entry>
<entry><id>2</id><title>b</title><updated>2026-03-01T00:00:00Z</updated></entry>
</feed>"""
JSON = json.dumps(
    {
        "version": "https://jsonfeed.org/version/1.1",
        "language": "en_US",
        "items": [
            {"id": "1", "title": "a", "language": "uk"},
            {"id": "2", "title": "b"},
            {"id": "3", "title": "c", "language": "not a tag!"},
        ],
    }
).encode()


@pytest.mark.parametrize("fast", [True, False])
def test_rss_and_atom_items_take_their_own_language_else_the_feeds(fast: bool) -> None:
    rss = parse_xml_feed(RSS, "https://e.org/f", fast_path=fast)
    atom = parse_xml_feed(ATOM, "https://e.org/f", fast_path=fast)
    assert rss.parser == atom.parser == ("lxml" if fast else "feedparser")
    assert [i.language for i in rss.items] == ["ko-kr"]
    assert [i.language for i in atom.items] == ["ja", "zh-cn"]


def test_json_feed_items_take_their_own_language_else_the_feeds() -> None:
    feed = parse_feed(JSON, "https://e.org/f.json")
    assert [i.language for i in feed.items] == ["uk", "en-us", "en-us"]


@pytest.mark.parametrize(
    ("value", "tag"),
    [("ko-KR", "ko-kr"), (" EN ", "en"), ("en_US", "en-us"), ("zh-Hant-TW", "zh-hant-tw")],
)
def test_declared_languages_become_lowercase_tags(value: str, tag: str) -> None:
    assert language_tag(value) == tag


@pytest.mark.parametrize("value", ["", "not a tag", "en--us", "-en", "toolongsubtag", None, 5])
def test_anything_else_is_no_language(value: object) -> None:
    assert language_tag(value) is None


def test_a_polled_items_language_is_stored_matched_and_shown(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.set("/ko.xml", RSS)
    feed_server.set(
        "/zh.xml", ATOM.replace(b"<title>a</title>", "<title>쿠르스크</title>".encode())
    )
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(
        "- id: kursk-ko\n  any: [쿠르스크]\n  languages: [ko]\n- id: kursk-any\n  any: [쿠르스크]\n"
    )
    (tmp_path / "watcher.yaml").write_text(
        "database: w.db\nrules: rules/\nfeeds:\n"
        f"  - {{url: '{feed_server.url('/ko.xml')}', name: ko}}\n"
        f"  - {{url: '{feed_server.url('/zh.xml')}', name: zh}}\n"
        "channels:\n  files: {type: eml, dir: outbox}\n"
    )
    runner = CliRunner()
    config = ["--config", str(tmp_path / "watcher.yaml")]
    assert runner.invoke(cli, [*config, "poll", "--all"]).exit_code == 0
    conn = sqlite3.connect(tmp_path / "w.db")
    rows = conn.execute(
        "SELECT feeds.name, items.language, group_concat(matches.rule_id) FROM items"
        " JOIN feeds ON feeds.id = items.feed_id"
        " LEFT JOIN matches ON matches.item_id = items.id"
        " WHERE items.title = '쿠르스크에서' OR items.title = '쿠르스크'"
        " GROUP BY items.id ORDER BY feeds.name"
    ).fetchall()
    conn.close()
    assert [(r[0], r[1], sorted((r[2] or "").split(","))) for r in rows] == [
        ("ko", "ko-kr", ["kursk-any", "kursk-ko"]),
        ("zh", "ja", ["kursk-any"]),  # a Japanese item: kursk-ko leaves it out
    ]
    result = runner.invoke(cli, [*config, "search", "쿠르스크", "--json"])
    assert result.exit_code == 0, result.output
    found = {i["feed"]: i["language"] for i in json.loads(result.stdout)["items"]}
    assert found == {"ko": "ko-kr", "zh": "ja"}
