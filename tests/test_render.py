"""Snippets and header text as alerts show them."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from email.utils import formataddr
from typing import cast

from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.deliver.render import (
    MAX_EMAIL_BYTES,
    email_bytes,
    header_text,
    render_html,
    render_text,
)
from watcher.printable import printable
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
    data = email_bytes(message, sender="w@example.org", to=["d@example.org"], domain="x.watcher")
    email = cast(EmailMessage, message_from_bytes(data, policy=default))
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


# --- the e-mail as written -------------------------------------------------------------------

HEADERS = {
    "subject",
    "from",
    "to",
    "date",
    "message-id",
    "x-watcher-alert-id",
    "x-watcher-rule",
    "mime-version",
    "content-type",
}


def written(
    message: AlertMessage, sender: str = "w@example.org", to: tuple[str, ...] = ("d@example.org",)
) -> tuple[bytes, EmailMessage]:
    data = email_bytes(message, sender=sender, to=list(to), domain="x.watcher")
    return data, cast(EmailMessage, message_from_bytes(data, policy=default))


def parts(email: EmailMessage) -> tuple[str, str]:
    text, page = email.get_body(("plain",)), email.get_body(("html",))
    assert text is not None and page is not None
    crlf = "\r\n"  # a 7bit part reads back with the line ends it was sent with
    return text.get_content().replace(crlf, "\n"), page.get_content().replace(crlf, "\n")


@settings(max_examples=150, deadline=None)
@given(
    subject=st.text(st.characters(exclude_categories=("Cs",)), max_size=300),
    title=st.text(st.characters(exclude_categories=("Cs",)), max_size=200),
    name=st.text(st.characters(categories=("L",), include_characters=" "), max_size=12),
)
def test_an_email_reads_back_as_rendered_whatever_its_text(
    subject: str, title: str, name: str
) -> None:
    message = replace(message_of([entry(1, title or "x")]), subject=subject, rule_id=title or "r")
    sender = formataddr((name.strip(), "w@example.org"))
    data, email = written(message, sender=sender, to=("d@example.org", "e@example.org"))
    head = data.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    assert data.isascii()  # quoted-printable and encoded words: safe for any SMTP server
    names = [
        line.split(b":", 1)[0].decode().lower()
        for line in head.split(b"\r\n")
        if line[:1] not in (b" ", b"\t")
    ]
    assert sorted(names) == sorted(HEADERS)
    assert str(email["Subject"]) == header_text(subject)
    assert str(email["X-Watcher-Rule"]) == header_text(title or "r")
    assert email["From"].addresses[0].addr_spec == "w@example.org"
    assert email["From"].addresses[0].display_name == " ".join(name.split())
    assert [a.addr_spec for a in email["To"].addresses] == ["d@example.org", "e@example.org"]
    assert email["Message-ID"] == "<watcher-alert-7@x.watcher>"
    assert parts(email) == (
        printable(render_text(message), newlines=True),
        printable(render_html(message), newlines=True),
    )
    assert written(message, sender=sender, to=("d@example.org", "e@example.org"))[0] == data


def test_ascii_words_of_a_subject_stay_readable_in_the_file() -> None:
    message = replace(
        message_of([entry(1, "Kursk")]), subject="[watcher] kursk: Войска КНДР в Kursk"
    )
    data, email = written(message)
    subject = data.split(b"\r\n\r\n")[0].split(b"\r\nFrom:")[0]
    assert (
        subject.startswith(b"Subject: [watcher] kursk: =?utf-8?b?") and b" in Kursk" not in subject
    )
    assert b"?= Kursk" in subject
    assert str(email["Subject"]) == "[watcher] kursk: Войска КНДР в Kursk"


def test_bodies_are_quoted_printable_with_ascii_words_left_readable() -> None:
    data, email = written(message_of([entry(1, "DPRK troops in Kursk " + "é" * 100)]))
    assert data.count(b"Content-Transfer-Encoding: quoted-printable") == 2
    assert b"DPRK troops in Kursk =C3=A9" in data
    assert "DPRK troops in Kursk " + "é" * 100 in parts(email)[0]


def test_text_holding_the_boundary_does_not_end_a_part() -> None:
    boundary = "--=_watcher-alert-7--"
    data, email = written(message_of([entry(1, boundary)]))
    text, page = parts(email)
    assert boundary in text and boundary in page
