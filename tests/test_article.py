"""Article extraction: the story's text from real-looking pages, no boilerplate, bounded."""

from __future__ import annotations

import time

import pytest

from tests.articles import HOSTILE, Page, holds, pages
from watcher.poll.article import (
    MAX_PAGE_BYTES,
    MAX_TEXT,
    ArticleError,
    ArticleText,
    extract_article,
)
from watcher.text import tokenize

PAGES = pages()


def extract(page: Page) -> ArticleText:
    return extract_article(page.html, page.url, page.content_type)


def phrase_in(text: str, phrase: str) -> bool:
    """Whether a rule on ``phrase`` matches ``text``: its tokens stand in a row there."""
    return f" {' '.join(tokenize(phrase))} " in f" {' '.join(tokenize(text))} "


def html_page(body: str, head: str = "<title>t</title>") -> bytes:
    return f"<!DOCTYPE html><html><head>{head}</head><body>{body}</body></html>".encode()


STORY = (
    "<article><h1>Drone fragments found near the border</h1>"
    "<p>Fragments of a drone were found on Sunday morning near a village on the river,"
    " the defence ministry said, and no casualties were reported.</p>"
    "<p>It was the fifth such incident this year; residents were sent an alert asking"
    " them to take shelter while fighters patrolled the border overnight.</p></article>"
)


def test_the_corpus_has_the_pages_the_tests_need() -> None:
    names = {page.name for page in PAGES}
    assert len(PAGES) >= 12
    assert sum(not page.keyword_in_body for page in PAGES) >= 4  # keyword only outside
    assert {"guoji-zh-kursk", "hanbit-ko-kursk", "kurier-ru-drones"} <= names
    assert {"meridian-paywall", "frontline-amp-drones", "ledger-casualties-jsonld"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_body_paragraph_and_no_boilerplate(page: Page) -> None:
    result = extract(page)
    assert result.error is None, result.detail
    missing = [fragment for fragment in page.body if not holds(result.text, fragment)]
    leaked = [fragment for fragment in page.boilerplate if holds(result.text, fragment)]
    assert missing == [], "body paragraphs missing"
    assert leaked == [], "boilerplate in the text"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_a_rule_on_the_topic_matches_only_when_the_body_says_it(page: Page) -> None:
    assert phrase_in(extract(page).text, page.keyword) is page.keyword_in_body


def test_a_keyword_only_in_the_menu_sidebar_related_and_comments_is_not_in_the_text() -> None:
    page = next(p for p in PAGES if p.name == "meridian-negative-nav")
    assert phrase_in(page.html.decode(), "North Korean troops")  # four times, outside the body
    text = extract(page).text
    assert not phrase_in(text, "North Korean troops")
    assert not phrase_in(text, "Kursk")
    assert "Lisbon" in text


def test_a_paywall_stub_gives_its_teaser_without_the_subscribe_box() -> None:
    page = next(p for p in PAGES if p.name == "meridian-paywall")
    text = extract(page).text
    assert text.startswith("Months before the first North Korean troops")
    assert "Subscribe" not in text and "subscriber" not in text


def test_text_is_plain_with_one_line_per_block() -> None:
    page = next(p for p in PAGES if p.name == "meridian-nk-troops")
    lines = extract(page).text.splitlines()
    assert lines[0].startswith("Units sent to Russia by Pyongyang have moved")
    assert all(line == line.strip() and line for line in lines)
    assert not any("<" in line or "&amp;" in line for line in lines)


def test_a_page_in_windows_1251_is_read_by_its_meta_charset() -> None:
    page = next(p for p in PAGES if p.name == "kurier-ru-drones")
    assert page.content_type == "text/html"  # no charset in the header
    result = extract(page)
    assert result.encoding == "cp1251"
    assert "Речь идёт о дронах на оптоволокне" in result.text


def test_the_header_charset_wins_over_the_meta() -> None:
    body = "<p>Пример текста о курской области, достаточно длинный для статьи целиком.</p>"
    data = html_page(body, "<meta charset='utf-8'><title>t</title>").decode().encode("koi8-r")
    result = extract_article(data, "https://e.example/", "text/html; charset=KOI8-R")
    assert "Пример текста о курской области" in result.text


def test_undeclared_bytes_that_are_not_utf8_are_read_as_windows_1252() -> None:
    body = "<p>Caf\xe9 owners in the old town say the caf\xe9 season was the best in years.</p>"
    result = extract_article(html_page(body).decode().encode("cp1252"), "https://e.example/", None)
    assert result.encoding == "cp1252"
    assert "Café owners in the old town" in result.text


def test_bad_bytes_and_surrogate_references_become_replacement_characters() -> None:
    body = (
        "<p>A broken \xff\xfe sequence and a lone &#xD800; reference inside a paragraph"
        " that is long enough to be kept as the text of the story.</p>"
    )
    data = html_page("").replace(b"</body>", body.encode("latin-1") + b"</body>")
    result = extract_article(data, "https://e.example/", "text/html; charset=utf-8")
    assert result.error is None
    assert "\ufffd" in result.text
    assert not any("\ud800" <= char <= "\udfff" for char in result.text)
    result.text.encode("utf-8")  # storable


@pytest.mark.parametrize(
    ("content_type", "data"),
    [
        ("application/pdf", b"%PDF-1.7\n..."),
        ("image/png", b"\x89PNG\r\n\x1a\n..."),
        ("text/plain", b"Plain text about Kursk."),
        ("application/rss+xml", b"<?xml version='1.0'?><rss version='2.0'><channel/></rss>"),
        ("application/json", b'{"title": "Kursk"}'),
        ("text/html", b"%PDF-1.7 served as a web page"),
        ("application/octet-stream", b"\x89PNG\r\n\x1a\n..."),
        (None, b"Just some words, no markup at all."),
    ],
)
def test_what_is_not_a_web_page_is_not_html(content_type: str | None, data: bytes) -> None:
    result = extract_article(data, "https://e.example/a", content_type)
    assert result.error is ArticleError.NOT_HTML
    assert result.text == ""


@pytest.mark.parametrize("content_type", [None, "", "application/octet-stream"])
def test_a_page_served_without_a_useful_type_is_read_when_it_looks_like_html(
    content_type: str | None,
) -> None:
    result = extract_article(html_page(STORY), "https://e.example/a", content_type)
    assert result.error is None
    assert "Fragments of a drone were found" in result.text


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   \n",
        html_page(""),
        html_page("<nav><a href='/'>Home</a> <a href='/world'>World</a></nav><footer>(c)</footer>"),
    ],
    ids=["no bytes", "white space", "empty body", "only navigation"],
)
def test_a_page_without_a_story_is_empty(data: bytes) -> None:
    result = extract_article(data, "https://e.example/a", "text/html")
    assert result.error is ArticleError.EMPTY
    assert result.text == ""


def test_a_page_over_the_size_limit_is_too_large() -> None:
    data = html_page(STORY) + b" " * MAX_PAGE_BYTES
    result = extract_article(data, "https://e.example/a", "text/html")
    assert result.error is ArticleError.TOO_LARGE


@pytest.mark.parametrize(
    "wrapper",
    [
        '<div class="comments-open single-post">{}</div>',
        '<div id="content" class="has-share-bar">{}</div>',
        '<form id="aspnetForm">{}</form>',
    ],
)
def test_a_story_wrapped_in_a_container_with_a_boilerplate_name_is_kept(wrapper: str) -> None:
    page = html_page(wrapper.format(STORY + "<div class='comments'><p>First!</p></div>"))
    text = extract_article(page, "https://e.example/a", "text/html").text
    assert "Fragments of a drone were found" in text
    assert "First!" not in text


def test_a_read_also_line_inside_the_body_is_dropped() -> None:
    line = "<p><strong>Read also:</strong> <a href='/x'>Kursk villages evacuated again</a></p>"
    page = html_page(STORY.replace("</p><p>", f"</p>{line}<p>"))
    text = extract_article(page, "https://e.example/a", "text/html").text
    assert "It was the fifth such incident" in text
    assert "Kursk" not in text


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_pages_end_in_bounded_time_with_text_or_an_error(name: str) -> None:
    html = HOSTILE[name]()
    started = time.process_time()
    result = extract_article(html, "https://hostile.example/", "text/html")
    spent = time.process_time() - started
    assert spent < 10, f"{spent:.1f} s of CPU"  # quadratic behaviour takes minutes here
    if name in ("deep-within-bounds", "long-story"):
        assert result.error is None
    else:
        assert result.error is ArticleError.TOO_LARGE, result
    assert len(result.text) <= MAX_TEXT


def test_text_is_capped_and_says_so() -> None:
    result = extract_article(HOSTILE["long-story"](), "https://e.example/", "text/html")
    assert result.truncated
    assert len(result.text) == MAX_TEXT
    assert result.text.startswith("Paragraph 0 of a very long report")
