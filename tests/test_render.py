"""Snippets and header text as alerts show them."""

from __future__ import annotations

from watcher.alerts.render import header_text, make_snippets
from watcher.types import Hit


def test_snippet_highlights_the_matched_words_in_the_original_text() -> None:
    text = "Officials said North Korea’s troops moved into the Kursk region overnight."
    hits = (Hit("summary", 0, 2, 6), Hit("summary", 0, 9, 10))
    (snippet,) = make_snippets({"summary": (text,)}, hits)
    assert "**North Korea’s troops**" in snippet and "**Kursk**" in snippet


def test_long_text_is_cut_around_the_match_with_ellipses() -> None:
    text = " ".join(["filler"] * 60) + " fiber-optic drones hit a convoy " + " ".join(["tail"] * 60)
    start = 60  # token index of "fiber"
    (snippet,) = make_snippets({"content": (text,)}, (Hit("content", 0, start, start + 3),))
    assert snippet.startswith("… ") and snippet.endswith(" …")
    assert "**fiber-optic drones**" in snippet and len(snippet) < 220


def test_the_same_snippet_in_summary_and_content_is_shown_once() -> None:
    text = "DPRK troops rotate into Kursk."
    texts = {"summary": (text,), "content": (text,)}
    hits = (Hit("summary", 0, 0, 2), Hit("content", 0, 0, 2))
    assert make_snippets(texts, hits) == ("**DPRK troops** rotate into Kursk.",)


def test_header_text_is_one_line_without_encoded_words() -> None:
    value = header_text("Kursk\r\nBcc: evil@example.org =?utf-8?q?x=0D=0A?=\u2028end")
    assert "\r" not in value and "\n" not in value and "\u2028" not in value
    assert "=?" not in value and "?=" not in value
    assert value.startswith("Kursk Bcc: evil@example.org")
