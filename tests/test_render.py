"""Snippets and header text as alerts show them."""

from __future__ import annotations

from watcher.deliver.render import header_text
from watcher.rules.match import compile_rules, match_item
from watcher.rules.snippets import make_snippets
from watcher.types import Hit, MatchItem, Rule


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


def snippets_of(rule: Rule, text: str) -> tuple[str, ...]:
    """Match ``rule`` on a content ``text`` and return the alert's snippets."""
    subject = MatchItem(fields={"content": (text,)})
    (found,) = match_item(compile_rules([rule]), subject)
    return make_snippets(subject.fields, found.hits)


def test_matched_characters_of_unspaced_scripts_are_one_highlighted_span() -> None:
    kursk = Rule(id="k", file="rules/k.yaml", any=("库尔斯克", "クルスク", "쿠르스크"))
    assert snippets_of(kursk, "朝鲜军队在库尔斯克州作战") == ("朝鲜军队在**库尔斯克**州作战",)
    assert snippets_of(kursk, "ロシア西部ｸﾙｽｸ州で") == ("ロシア西部**ｸﾙｽｸ**州で",)
    assert snippets_of(kursk, "북한군이 쿠르스크에서 교전") == ("북한군이 **쿠르스크**에서 교전",)
    both = Rule(id="b", file="rules/k.yaml", all=("库尔", "斯克"))
    assert snippets_of(both, "在库尔斯克州") == ("在**库尔斯克**州",)


def test_a_snippet_of_text_without_spaces_is_cut_around_the_match() -> None:
    text = "据报道，" * 60 + "朝鲜军队在库尔斯克州作战" + "。乌克兰称" * 60
    (snippet,) = snippets_of(Rule(id="k", file="rules/k.yaml", any=("库尔斯克",)), text)
    assert snippet.startswith("… ") and snippet.endswith(" …")
    assert "朝鲜军队在**库尔斯克**州作战" in snippet and len(snippet) < 200
    thai = "ที่" * 60 + "กรุงเทพ" + "ที่" * 60  # never cut between a letter and its marks
    (snippet,) = snippets_of(Rule(id="t", file="rules/k.yaml", any=("กรุงเทพ",)), thai)
    assert "**กรุงเทพ**" in snippet and "… ที่" in snippet and snippet.endswith("ที่ …")


def test_header_text_is_one_line_without_encoded_words() -> None:
    value = header_text("Kursk\r\nBcc: evil@example.org =?utf-8?q?x=0D=0A?=\u2028end")
    assert "\r" not in value and "\n" not in value and "\u2028" not in value
    assert "=?" not in value and "?=" not in value
    assert value.startswith("Kursk Bcc: evil@example.org")
