"""Normalisation and tokenisation as SPEC §4 "Matching semantics" states them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.rules.normalize import normalize, tokenize, tokenize_spans


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Straße", "strasse"),
        ("STRASSE", "strasse"),
        ("Kur\u00adsk", "kursk"),
        ("Ku\u200brs\u200c\u200dk\u2060\ufeff", "kursk"),
        ("Café Zürich", "cafe zurich"),
        ("Ｋｕｒｓｋ", "kursk"),  # NFKC folds full-width letters
        ("ﬁre", "fire"),
        ("e\u0301cole", "ecole"),  # decomposed accent on a Latin letter
        ("ł ø đ", "ł ø đ"),  # letters of their own, not accented ones
        ("й ї ё", "й ї ё"),  # other scripts keep their marks
        ("Йогурт", "йогурт"),
        ("İstanbul", "istanbul"),
        ("ΣΊΣΥΦΟΣ", "σίσυφοσ"),  # Greek keeps its accent
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_marks_of_other_scripts_stay_distinct() -> None:
    assert normalize("й") != normalize("и")
    assert normalize("ї") != normalize("і")
    assert normalize("ё") != normalize("е")
    assert normalize("é") == normalize("e")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("North Korea’s troops", ["north", "korea", "s", "troops"]),
        ("Korea's Korea\u02bcs Korea\u02bbs", ["korea", "s"] * 3),
        ("11,000", ["11", "000"]),
        ("km²", ["km2"]),
        ("fiber-optic fiber\u2011optic fiber—optic", ["fiber", "optic"] * 3),
        ("Russia/Ukraine 10:30", ["russia", "ukraine", "10", "30"]),
        ("…north. Korean", ["north", "korean"]),
        ("東京都で会議", ["東京都で会議"]),  # no spaces: one long token
        ("", []),
        ("— & ! ?", []),
        ("a_b", ["a", "b"]),  # underscore is punctuation
        ("x\u0301y", ["xy"]),  # a mark on a Latin letter is dropped
        ("д\u0301ом", ["д\u0301ом"]),  # a mark in a Cyrillic word stays inside the token
        ("٣٤ ४२", ["٣٤", "४२"]),  # decimal digits of any script
        ("Ⅻ", ["xii"]),  # NFKC turns the Roman numeral into letters
        ("Kur\u00adsk’s", ["kursk", "s"]),
    ],
)
def test_tokenize(text: str, expected: list[str]) -> None:
    assert tokenize(text) == expected


def test_tokenize_spans_point_into_the_original_text() -> None:
    text = "Die STRAẞE in Kur\u00adsk’s Zentrum"
    spans = tokenize_spans(text)
    assert [t for t, _, _ in spans] == ["die", "strasse", "in", "kursk", "s", "zentrum"]
    assert [text[s:e] for _, s, e in spans] == [
        "Die",
        "STRAẞE",
        "in",
        "Kur\u00adsk",
        "s",
        "Zentrum",
    ]


def test_tokenize_spans_ascii_fast_path() -> None:
    text = "Drones hit Kursk, again."
    assert tokenize_spans(text) == [
        ("drones", 0, 6),
        ("hit", 7, 10),
        ("kursk", 11, 16),
        ("again", 18, 23),
    ]


def test_one_character_giving_two_tokens_shares_its_span() -> None:
    assert tokenize_spans("x ½") == [("x", 0, 1), ("1", 2, 3), ("2", 2, 3)]


texts = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8", exclude_categories=("Cs",)),
        st.sampled_from("aeiouéÉüßẞłİıйЙ\u0301\u0308\u00ad\u200b-‐/’'²½ﬁ 東\u1100\u1161\u11a8"),
    ),
    max_size=40,
)


@settings(max_examples=300)
@given(texts)
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


@settings(max_examples=300)
@given(texts)
def test_tokenize_spans_agrees_with_tokenize(text: str) -> None:
    spans = tokenize_spans(text)
    assert [t for t, _, _ in spans] == tokenize(text)
    for _, start, end in spans:
        assert 0 <= start < end <= len(text)


@settings(max_examples=200)
@given(texts)
def test_tokens_are_normalised(text: str) -> None:
    for token in tokenize(text):
        assert tokenize(token) == [token]
