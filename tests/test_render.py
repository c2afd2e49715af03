"""Snippets and header text as alerts show them."""

from __future__ import annotations

from datetime import UTC, datetime

from watcher.deliver.render import (
    MAX_EMAIL_BYTES,
    build_email,
    header_text,
    serialise_email,
)
from watcher.rules.match import compile_rules, match_item
from watcher.rules.snippets import make_snippets
from watcher.types import AlertItem, AlertMessage, AlsoReported, Hit, MatchItem, Rule


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


def test_a_summary_that_opens_the_content_is_shown_once_as_the_longer_snippet() -> None:
    summary = "DPRK troops rotate into Kursk."
    content = summary + " Satellite pictures show new trenches."
    texts = {"summary": (summary,), "content": (content,)}
    hits = (Hit("summary", 0, 0, 2), Hit("content", 0, 0, 2))
    assert make_snippets(texts, hits) == (
        "**DPRK troops** rotate into Kursk. Satellite pictures show new trenches.",
    )
    title = {"title": ("DPRK troops rotate",), "summary": (summary,)}
    both = (Hit("title", 0, 0, 2), Hit("summary", 0, 0, 2))
    assert make_snippets(title, both) == ("**DPRK troops** rotate into Kursk.",)


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


# --- size ------------------------------------------------------------------------------------


def message_of(items: list[AlertItem], **extra: object) -> AlertMessage:
    return AlertMessage(
        alert_id=7,
        kind="digest",
        created_at=datetime(2026, 11, 20, 12, tzinfo=UTC),
        rule_id="kursk",
        rule_description="Kursk",
        severity="high",
        items=tuple(items),
        subject="[watcher] kursk: many new items",
        **extra,  # type: ignore[arg-type]
    )


def entry(n: int, title: str = "", also: int = 0) -> AlertItem:
    return AlertItem(
        id=n,
        title=title or f"Kursk item {n} " + "é" * 1900,  # non-ASCII: encoded, so larger
        link=f"https://news.example.org/{n}",
        feed="wire",
        published_at=datetime(2026, 11, 20, 11, tzinfo=UTC),
        terms=("kursk",),
        snippets=(f"… fighting near **Kursk** goes on {n} …",),
        also_reported_by=tuple(
            AlsoReported(f"feed-{k}", f"https://copy.example.org/{k}") for k in range(also)
        ),
    )


def sent_size(message: AlertMessage) -> tuple[int, str]:
    email = build_email(message, sender="w@example.org", to=["d@example.org"], domain="x.watcher")
    data = serialise_email(email)
    body = email.get_body(("plain",))
    assert body is not None
    return len(data), body.get_content()


def test_an_email_never_exceeds_1_mb_and_says_what_it_left_out() -> None:
    size, text = sent_size(message_of([entry(n) for n in range(3000)]))  # ~27 MB in full
    assert size <= MAX_EMAIL_BYTES
    assert "Kursk item 0 " in text
    left = int(text.split("… and ")[1].split(" more items")[0].replace(",", ""))
    assert 2000 < left < 3000
    assert "this message was shortened to stay under 1 MB" in text


def test_a_story_reported_by_thousands_of_feeds_fits_too() -> None:
    size, text = sent_size(message_of([entry(1, "DPRK troops in Kursk", also=50_000)]))
    assert size <= MAX_EMAIL_BYTES
    assert "also reported by feed-9" in text and "also reported by 49,990 more feeds" in text


def test_a_small_email_is_not_shortened() -> None:
    size, text = sent_size(message_of([entry(n, f"Kursk {n}") for n in range(3)]))
    assert size < 10_000 and "shortened" not in text and "more item" not in text
