"""parse_feed and the HTML helpers over small feeds in tests/data/ and hostile inputs."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.exceptions import ParseError
from watcher.poll.cpu import CpuBudgetExceeded
from watcher.poll.html import clean_html, collapse_whitespace, html_to_text, resolve_link
from watcher.poll.parse import parse_feed
from watcher.poll.tame import is_tame, plain_text
from watcher.types import ParsedFeed

DATA = Path(__file__).parent / "data"


def load(name: str, url: str) -> ParsedFeed:
    return parse_feed((DATA / name).read_bytes(), url)


# --- RSS 2.0 ------------------------------------------------------------------------------


def test_rss20_feed_and_first_item() -> None:
    feed = load("rss20.xml", "https://news.example.org/feed.xml")
    assert (feed.title, feed.link, feed.format, feed.warning) == (
        "Frontline Digest",
        "https://news.example.org/",
        "rss20",
        None,
    )
    item = feed.items[0]
    assert item.guid == "fd-2025-0311"
    assert item.title == "Fiber-optic drones spotted near Sudzha"
    assert item.link == "https://news.example.org/2025/03/fiber-drones"
    assert item.published_at == datetime(2025, 3, 11, 6, 30, tzinfo=UTC)
    assert item.tags == ("drones", "Kursk region")
    assert item.author == "Olena Marchenko"


def test_rss20_html_is_sanitised_and_has_plain_text() -> None:
    item = load("rss20.xml", "https://news.example.org/feed.xml").items[0]
    for bad in ("<script", "alert(", "onclick", "onmouseover", "steal()"):
        assert bad not in item.summary
    assert "<b>fiber-optic</b>" in item.summary
    assert 'href="https://news.example.org/more"' in item.summary
    assert item.summary_text == (
        "Crews report fiber-optic drones that ignore jamming.\nMore at the briefing."
    )


def test_rss20_html_title_is_plain_and_relative_link_resolved() -> None:
    item = load("rss20.xml", "https://news.example.org/feed.xml").items[1]
    assert item.title == "Night shelling & power cuts in Kursk region"
    assert item.link == "https://news.example.org/2025/03/power-cuts"
    assert item.guid == item.link
    assert item.published_at == datetime(2025, 3, 10, 22, 15, tzinfo=UTC)
    assert item.published_at.tzinfo is UTC


def test_item_without_id_or_link_gets_a_stable_hash_id() -> None:
    first = load("rss20.xml", "https://news.example.org/feed.xml").items[2]
    again = load("rss20.xml", "https://news.example.org/feed.xml").items[2]
    assert first.guid.startswith("sha256:")
    assert first.guid == again.guid
    assert first.link is None and first.published_at is None


# --- RSS 1.0, Atom, JSON Feed -------------------------------------------------------------


def test_rss10() -> None:
    feed = load("rss10.xml", "https://wire.example.net/rss")
    assert (feed.title, feed.format) == ("Border Wire", "rss10")
    (item,) = feed.items
    assert item.guid == "https://wire.example.net/a/evacuation"
    assert item.title == "Evacuation buses leave Kursk border villages"
    assert item.published_at == datetime(2025, 3, 9, 14, 5, tzinfo=UTC)
    assert item.tags == ("evacuation",)
    assert item.author == "Ivan Petrenko"
    assert item.summary_text == "Local officials organised buses for about 300 residents."


def test_atom_entry() -> None:
    feed = load("atom.xml", "https://dronewatch.example.com/atom")
    assert (feed.title, feed.link, feed.format) == (
        "Drone Watch",
        "https://dronewatch.example.com/",
        "atom10",
    )
    item = feed.items[0]
    assert item.guid == "tag:dronewatch.example.com,2025:interceptors"
    assert item.link == "https://dronewatch.example.com/posts/interceptors"
    assert item.published_at == datetime(2025, 3, 12, 6, 45, tzinfo=UTC)
    assert item.updated_at == datetime(2025, 3, 12, 8, 0, tzinfo=UTC)
    assert item.author == "Mara Kovalenko"
    assert item.tags == ("drones", "air defence")
    assert item.summary_text == "Small interceptors are now trialled by several units."
    assert item.content_text == "Units near Kursk trial cheap interceptors."
    assert "iframe" not in item.content and "onerror" not in item.content
    assert 'href="https://dronewatch.example.com/tags/kursk"' in item.content


def test_atom_updated_only_and_plain_text_content() -> None:
    item = load("atom.xml", "https://dronewatch.example.com/atom").items[1]
    assert item.published_at == item.updated_at == datetime(2025, 3, 11, 18, 0, tzinfo=UTC)
    assert item.content_text == "Plain text body with <angle brackets> kept as text."
    assert "&lt;angle brackets&gt;" in item.content


def test_json_feed_11() -> None:
    feed = load("jsonfeed11.json", "https://notes.example.org/feed.json")
    assert (feed.title, feed.link, feed.format) == (
        "Kursk Notes",
        "https://notes.example.org/",
        "json11",
    )
    first, second, third = feed.items
    assert first.guid == "note-42"
    assert first.title == "North Korean troops reported near Kursk"
    assert first.link == "https://notes.example.org/42"
    assert first.published_at == datetime(2025, 3, 8, 7, 0, tzinfo=UTC)
    assert first.updated_at == datetime(2025, 3, 8, 12, 30, tzinfo=UTC)
    assert first.author == "Dana Horvat"
    assert first.tags == ("kursk", "dprk")
    assert first.summary_text == "New units described by several sources."
    assert first.content_text == "Several sources describe new units.\nnext"
    assert "script" not in first.content and "onclick" not in first.content
    assert second.guid == "43"
    assert second.content_text == "Line one.\nLine two with spaces."
    assert third.guid == "https://notes.example.org/44"
    assert third.author == "Old Style Author"


def test_json_feed_10_detected_from_content_not_name() -> None:
    body = json.dumps(
        {"version": "https://jsonfeed.org/version/1", "title": "Old", "items": []}
    ).encode()
    feed = parse_feed(b"\n  " + body, "https://x.example/feed.xml", "text/xml")
    assert (feed.format, feed.items) == ("json10", ())


@pytest.mark.parametrize(
    "body",
    [b'{"version": "https://jsonfeed.org/version/1.1", "title": "x"', b'{"title": "no items"}'],
)
def test_bad_json_feed(body: bytes) -> None:
    with pytest.raises(ParseError, match="not a feed"):
        parse_feed(body, "https://x.example/feed.json")


def test_deeply_nested_json_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="not a feed"):
        parse_feed(b'{"items": ' + b"[" * 200_000 + b"]" * 200_000 + b"}", "https://x/")


# --- what is and is not a feed ------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   \n",
        b"<!DOCTYPE html><html><head><title>Home</title></head><body><p>Hi</p></body></html>",
        b"\x00\x01\x02 binary garbage \xff\xfe",
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>Cut off',
        b"[1, 2, 3]",
    ],
    ids=["empty", "blank", "html", "garbage", "truncated", "json-list"],
)
def test_not_a_feed(body: bytes) -> None:
    with pytest.raises(ParseError) as caught:
        parse_feed(body, "https://x.example/feed")
    assert caught.value.message.startswith("not a feed")
    assert caught.value.url == "https://x.example/feed"


def test_valid_feed_with_no_items() -> None:
    body = b'<?xml version="1.0"?><rss version="2.0"><channel><title>Quiet</title></channel></rss>'
    feed = parse_feed(body, "https://x.example/feed")
    assert (feed.title, feed.items, feed.warning) == ("Quiet", (), None)


def test_leading_whitespace_parses_with_a_warning() -> None:
    feed = parse_feed(b"\n\n  " + (DATA / "rss20.xml").read_bytes(), "https://news.example.org/")
    assert len(feed.items) == 3
    assert feed.warning and "whitespace" in feed.warning


def test_stray_bad_byte_parses_with_a_warning() -> None:
    body = (DATA / "rss10.xml").read_bytes().replace(b"Border Wire", b"Border\xff Wire \xd0\x9a")
    feed = parse_feed(body, "https://wire.example.net/rss")
    assert feed.title == "Border\ufffd Wire \u041a"
    assert feed.items[0].title == "Evacuation buses leave Kursk border villages"
    assert feed.warning and "UTF-8" in feed.warning


def test_ill_formed_feed_with_items_is_kept_with_a_warning() -> None:
    body = (
        b'<rss version="2.0"><channel><title>Loose</title>'
        b"<item><title>Drones & more</title><guid>a1</guid></item>"
        b"<item><title>Second<br></title><guid>a2</guid></item></channel></rss>"
    )
    feed = parse_feed(body, "https://x.example/feed")
    assert [item.guid for item in feed.items] == ["a1", "a2"]
    assert [item.link for item in feed.items] == [None, None]
    assert feed.warning and "ill-formed" in feed.warning


# --- hostile input ------------------------------------------------------------------------


def test_billion_laughs_neither_hangs_nor_expands() -> None:
    levels = "".join(
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">\n' for i in range(1, 10)
    )
    body = (
        '<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY lol0 "lol">\n'
        f"{levels}]>\n"
        '<rss version="2.0"><channel><title>T</title>'
        "<item><title>&lol9;</title><guid>x</guid></item></channel></rss>"
    ).encode()
    started = time.thread_time()  # this thread's CPU time: immune to a busy machine
    feed = parse_feed(body, "https://x.example/feed")
    assert time.thread_time() - started < 2.0
    assert feed.items[0].title == "&lol9;"
    assert feed.warning and "entity" in feed.warning


@pytest.mark.parametrize("padding", ["", "<!--" + "x" * 5000 + "-->"], ids=["head", "late"])
def test_external_entity_does_not_read_local_files(tmp_path: Path, padding: str) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    body = (
        f'<?xml version="1.0"?>\n{padding}'
        f'<!DOCTYPE rss [<!ENTITY xxe SYSTEM "{secret.as_uri()}">]>\n'
        '<rss version="2.0"><channel><title>T</title>'
        "<item><title>a &xxe; b</title><description>&xxe;</description><guid>x</guid></item>"
        "</channel></rss>"
    ).encode()
    feed = parse_feed(body, "https://x.example/feed")
    (item,) = feed.items
    assert item.title in ("a &xxe; b", "a b")
    assert "TOP-SECRET" not in item.summary + item.summary_text


def test_content_that_is_a_local_path_is_not_opened(tmp_path: Path) -> None:
    secret = tmp_path / "feed.xml"
    secret.write_bytes((DATA / "rss20.xml").read_bytes())
    with pytest.raises(ParseError):
        parse_feed(str(secret).encode(), "https://x.example/feed")


# --- HTML helpers -------------------------------------------------------------------------


def test_sanitize_html_removes_active_content() -> None:
    html = (
        '<p onclick="x()">Hi <a href="javascript:alert(1)">j</a> <a href="/ok">ok</a></p>'
        "<script>alert(1)</script><style>p{}</style><iframe src=//e></iframe>"
    )
    clean = clean_html(html, "https://site.example/news/")
    assert not clean.flattened
    assert clean.html == (
        '<p>Hi <a rel="noopener noreferrer">j</a> '
        '<a href="https://site.example/ok" rel="noopener noreferrer">ok</a></p>'
    )


def test_html_to_text_blocks_entities_and_whitespace() -> None:
    html = (
        "<h1>Kursk</h1><p>Drones&nbsp;&amp;   <b>jamming</b>\n</p>"
        "<ul><li>one</li><li>two</li></ul>a<br>b"
    )
    assert html_to_text(html) == "Kursk\nDrones & jamming\none\ntwo\na\nb"


def test_html_to_text_keeps_escaped_angle_brackets_as_text() -> None:
    assert html_to_text("x &lt;b&gt; y <script>gone()</script>") == "x <b> y"


@pytest.mark.parametrize("piece", ["<a ", "<a href='", "<!--", "<p><b><i>", "&amp;<a/"])
def test_pathological_html_is_linear(piece: str) -> None:
    html = piece * (100_000 // len(piece))
    started = time.thread_time()  # this thread's CPU time: immune to a busy machine
    clean_html(html, "https://x.example/")
    html_to_text(html)
    assert time.thread_time() - started < 2.0


def test_pathological_item_in_a_feed_is_fast() -> None:
    body = (
        b'<rss version="2.0"><channel><title>T</title><item><title>A</title><description>'
        + b"<a " * 33_000
        + b"</description><guid>p</guid></item></channel></rss>"
    )
    started = time.thread_time()  # this thread's CPU time: immune to a busy machine
    feed = parse_feed(body, "https://x.example/feed")
    assert feed.items[0].guid == "p"
    assert time.thread_time() - started < 4.0


# --- encodings ----------------------------------------------------------------------------

RSS_CYRILLIC = (
    '<?xml version="1.0"{decl}?><rss version="2.0"><channel><title>Курск</title>'
    "<item><title>Дроны над Курском</title><guid>c1</guid></item></channel></rss>"
)


def test_charset_from_content_type() -> None:
    body = RSS_CYRILLIC.format(decl="").encode("windows-1251")
    feed = parse_feed(body, "https://x.example/", "application/rss+xml; charset=windows-1251")
    assert (feed.title, feed.items[0].title) == ("Курск", "Дроны над Курском")


def test_declared_legacy_encoding() -> None:
    body = RSS_CYRILLIC.format(decl=' encoding="koi8-r"').encode("koi8-r")
    feed = parse_feed(body, "https://x.example/")
    assert (feed.title, feed.items[0].title, feed.warning) == ("Курск", "Дроны над Курском", None)


def test_utf16_with_bom() -> None:
    body = RSS_CYRILLIC.format(decl=' encoding="utf-16"').encode("utf-16")
    assert parse_feed(body, "https://x.example/").items[0].title == "Дроны над Курском"


@given(st.binary(max_size=400) | st.text(alphabet="<>/&;![]rsitemchanelx ='\"", max_size=200))
@settings(max_examples=150, deadline=None)
def test_any_input_gives_a_feed_or_a_parse_error(data: bytes | str) -> None:
    body = data.encode() if isinstance(data, str) else data
    try:
        feed = parse_feed(b'<rss version="2.0"><channel><item>' + body, "https://x.example/")
    except ParseError:
        return
    assert all(isinstance(item.guid, str) and item.guid for item in feed.items)


# --- after every reader ---------------------------------------------------------------------


def test_json_entries_sharing_an_id_get_distinct_ids_and_repeats_keep_theirs() -> None:
    items = [
        {"id": "a", "title": "Kursk update"},
        {"id": "a", "title": "KURSK   update"},  # the same title once normalised: a repeat
        {"id": "a", "title": "Belgorod update"},
        {"id": "b", "title": "Other", "url": "https://x.example/same"},
        {"id": "c", "title": "Another", "url": "https://x.example/same"},
        {"id": "d", "title": "Other", "url": "https://x.example/own"},
    ]
    body = json.dumps({"version": "https://jsonfeed.org/version/1.1", "items": items}).encode()
    feed = parse_feed(body, "https://x.example/feed.json")
    guids = [i.guid for i in feed.items]
    assert guids[:2] == ["a", "a"] and guids[2].startswith("a#") and len(guids[2]) == 14
    assert feed.warning == (
        "1 entry shared an id with an earlier entry of another title:"
        " each was given its own id (id#title-hash)"
    )
    assert [i.shared_link for i in feed.items] == [False, False, False, True, True, False]


def test_a_clean_feed_is_unchanged_by_the_last_pass() -> None:
    feed = load("rss20.xml", "https://news.example.org/feed.xml")
    assert feed.warning is None and not any(i.shared_link for i in feed.items)


# --- HTML the sanitiser would take quadratic time on ----------------------------------------

HOSTILE_HTML = {
    "unclosed-divs": "<div>" * 150_000,
    "formatting-with-attributes": "".join(f'<b title="{n}">' for n in range(20_000)),
    "reopened-formatting": "<div>" + "".join(f'<b class="c{n}">' for n in range(250)) + "</div>"
    + "<p>x</p>" * 20_000,
    "ampersand-run": "ab&amp;cd " * 160_000,
    "no-break-spaces": "&nbsp;" * 300_000,
    "nested-definition-lists": "<dl><dd>" * 20_000,
    "nested-lists": "<ul>" * 20_000,
    "ignored-end-tags": "<span><table><td></span></td></table>" * 20_000,
    "paragraphs-in-blocks": "<p>" + "<div><p>" * 20_000,
}  # fmt: skip


@pytest.mark.parametrize("html", HOSTILE_HTML.values(), ids=HOSTILE_HTML.keys())
def test_html_the_sanitiser_is_slow_on_is_read_as_plain_text_in_linear_time(html: str) -> None:
    started = time.thread_time()  # this thread's CPU time: immune to a busy machine
    cleaned = clean_html("Kursk report " + html + " ends here", "https://x.example/")
    clean_html(html[:50_000], None)
    assert time.thread_time() - started < 4.0  # minutes each before
    assert cleaned.flattened
    assert cleaned.text.startswith("Kursk report") and cleaned.text.endswith("ends here")
    assert "<" not in cleaned.html.replace("<br>", "")


SLOPPY_HTML = {
    "unclosed-list-items": "<ul>" + "<li><p>item" * 2000 + "</ul>",
    "unclosed-cells": "<table>" + "<tr><td>a<td>b<th>c" * 5000 + "</table>",
    "unclosed-paragraphs": "<p>para" * 20_000,
    "article": "<p>Some <b>bold</b> text &amp; more, <a href='/x'>link</a>.</p>\n" * 5000,
    "entities-in-paragraphs": "<p>" + "AT&amp;T &nbsp; " * 60 + "</p>" * 3000,
}


@pytest.mark.parametrize("html", SLOPPY_HTML.values(), ids=SLOPPY_HTML.keys())
def test_ordinary_sloppy_html_is_still_sanitised(html: str) -> None:
    cleaned = clean_html(html, "https://x.example/")
    assert not cleaned.flattened
    assert cleaned.html.startswith("<")  # kept as HTML, not flattened to text


def test_plain_text_reads_words_out_of_any_markup() -> None:
    html = (
        "<p>Kursk &amp; Sudzha</p><script>alert('<p>no</p>')</script><!-- <b>hidden</b> -->"
        "<div>a < b &lt; c</div><style>p {}</style>tail<a href='x"
    )
    assert collapse_whitespace(plain_text(html)) == "Kursk & Sudzha\na < b < c\ntail"
    assert plain_text("<a " * 50_000) == ""
    assert is_tame("<p>short</p>") and not is_tame("<div>" * 600 + "x" * 4096)


def test_a_feed_item_of_unclosed_divs_is_stored_as_text_with_a_warning() -> None:
    description = "Kursk report " + "&lt;div&gt;" * 150_000 + " ends here"
    body = (
        '<rss version="2.0"><channel><title>T</title><item><guid>d</guid><title>A</title>'
        f"<description>{description}</description></item></channel></rss>"
    ).encode()
    started = time.thread_time()
    feed = parse_feed(body, "https://x.example/feed")
    assert time.thread_time() - started < 5.0
    (item,) = feed.items
    assert item.summary_text == "Kursk report\nends here"
    assert feed.warning == (
        "1 item: HTML too deeply nested or too large to sanitise: kept as plain text"
    )


def test_the_cpu_check_runs_between_items_and_stops_the_parse() -> None:
    items = "".join(f"<item><guid>{n}</guid><title>t{n}</title></item>" for n in range(5))
    body = f'<rss version="2.0"><channel><title>T</title>{items}</channel></rss>'.encode()
    calls: list[int] = []

    def check() -> None:
        calls.append(1)
        if len(calls) == 3:
            raise CpuBudgetExceeded(0.5)

    with pytest.raises(CpuBudgetExceeded):
        parse_feed(body, "https://x.example/feed", check=check)
    assert len(calls) == 3


def _collapsed_by_definition(text: str) -> str:
    """collapse_whitespace as regular expressions say it: runs of whitespace other than
    line breaks become one space, then spaces around line breaks and blank lines go."""
    text = re.sub(r"[^\S\n]+", " ", text.replace("\r", "\n"))
    return re.sub(r" ?\n[ \n]*", "\n", text).strip()


@settings(max_examples=500)
@given(st.text(st.sampled_from(list(" \t\n\r\x0b\x0c\x1c\x85\xa0\u2028\u3000ab"))) | st.text())
def test_collapse_whitespace_keeps_one_space_and_no_blank_line(text: str) -> None:
    assert collapse_whitespace(text) == _collapsed_by_definition(text)


_BASES = ["http://news.example/", "https://Wire.example:8443/world/kursk.html?page=2#top"]


@settings(max_examples=2000)
@given(
    base=st.sampled_from(_BASES),
    start=st.sampled_from(["", "/", "//", "http://", "https://", "HTTP://", "ftp://"]),
    rest=st.text(st.sampled_from(list("/./?#;:@%&=aZ09-_~ \t\n\x00é[]")), max_size=30),
)
def test_links_are_resolved_as_urljoin_resolves_them(base: str, start: str, rest: str) -> None:
    parts = urlsplit(base)
    link = start + rest
    try:
        expected: str | None = urljoin(base, link)
    except ValueError:  # "//[": the attribute is dropped
        expected = None
    assert resolve_link(base, f"{parts.scheme}://{parts.netloc}", link) == expected


def test_a_link_urljoin_cannot_read_is_dropped_quietly(capfd: pytest.CaptureFixture[str]) -> None:
    cleaned = clean_html('<p><a href="//[x">Kursk</a> report</p>', "http://news.example/")
    assert cleaned.html == '<p><a rel="noopener noreferrer">Kursk</a> report</p>'
    assert capfd.readouterr().err == ""
