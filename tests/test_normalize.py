"""Normalisation and tokenisation as SPEC §4 "Matching semantics" states them."""

from __future__ import annotations

import itertools
import random
import sys
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.text import (
    ASSIGNED_PLANES,
    UNSPACED,
    is_unspaced,
    normalize,
    spaced,
    spaced_in_python,
    tokenize,
    tokenize_spans,
    unspaced_code_points,
)


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
        ("東京都で会議", ["東", "京", "都", "で", "会", "議"]),  # a token per character
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


# --- scripts written without spaces (SPEC §4) ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("乌克兰的F-16战斗机", "乌 克 兰 的 f 16 战 斗 机"),  # the SPEC's example
        ("朝鲜军队在库尔斯克州作战", "朝 鲜 军 队 在 库 尔 斯 克 州 作 战"),
        ("クルスクで", "ク ル ス ク で"),
        ("ドローン", "ド ロ ー ン"),  # the prolonged sound mark is a letter of Katakana
        ("ｸﾙｽｸ ｶﾞｿﾘﾝ", "ク ル ス ク ガ ソ リ ン"),  # half-width kana: NFKC first
        ("ウラジーミル・プーチン", "ウ ラ ジ ー ミ ル プ ー チ ン"),  # the middle dot separates
        ("쿠르스크에서 북한군이", "쿠 르 스 크 에 서 북 한 군 이"),
        ("\u1100\u1161\u11a8", "각"),  # conjoining jamo compose into one syllable
        ("ทหารเกาหลีเหนือ", "ท ห า ร เ ก า ห ลี เ ห นื อ"),  # Thai: marks join their letter
        ("ກອງທັບ", "ກ ອ ງ ທັ ບ"),  # Lao: the vowel sign stays with its letter
        ("កងទ័ព", "ក ង ទ័ ព"),  # Khmer
        ("တပ်မတော်", "တ ပ် မ တော်"),  # Myanmar: vowel signs and virama are marks
        ("二〇二四年", "二 〇 二 四 年"),  # the ideographic zero is a number of its own
        ("々", "々"),
        ("๒๕๖๗", "๒ ๕ ๖ ๗"),  # digits of those scripts too
        ("2024年3月", "2024 年 3 月"),  # other digits next to them stay one token
        ("Kursk库尔斯克Курск", "kursk 库 尔 斯 克 курск"),
        ("「库尔斯克」、", "库 尔 斯 克"),  # CJK punctuation separates
        ("ABC東京", "abc 東 京"),
        ("東\u0301京", "東\u0301 京"),  # a combining mark stays with the character before it
    ],
)
def test_unspaced_scripts_give_a_token_per_character(text: str, expected: str) -> None:
    assert tokenize(text) == expected.split()
    assert spaced(text) == f" {expected} "


def test_unspaced_spans_point_at_each_character() -> None:
    text = "在ｸﾙｽｸ州"
    spans = tokenize_spans(text)
    assert [t for t, _, _ in spans] == ["在", "ク", "ル", "ス", "ク", "州"]
    assert [text[s:e] for _, s, e in spans] == list(text)


def test_the_unspaced_table_is_the_issue_s_ranges() -> None:
    names = [name for name, _ in UNSPACED]
    assert names == ["Han", "Hiragana", "Katakana", "Hangul", "Thai", "Lao", "Khmer", "Myanmar"]
    codes = unspaced_code_points()
    for inside in (0x4E00, 0x9FFF, 0x3005, 0x30FC, 0xAC00, 0x0E01, 0x1780, 0x1000, 0x323AF):
        assert inside in codes
    for outside in (0x3006, 0x3031, 0x0DFF, 0x10A0, 0x0400, 0x3000, 0x3001):
        assert outside not in codes
    assert is_unspaced("库") and is_unspaced("ม่") and is_unspaced("〇")
    assert not is_unspaced("kursk") and not is_unspaced("курск") and not is_unspaced("16")


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


def reference_normalize(text: str) -> str:
    """SPEC §4 normalisation step by step, without the shortcuts ``normalize`` takes."""
    text = "".join(c for c in text if c not in "\u00ad\u200b\u200c\u200d\u2060\ufeff")
    text = unicodedata.normalize("NFKC", text).casefold()
    out: list[str] = []
    for char in unicodedata.normalize("NFD", text):
        base = out[-1][0] if out else ""
        after_latin = base.isalpha() and unicodedata.name(base, "").startswith("LATIN ")
        if unicodedata.category(char)[0] == "M" and after_latin:
            continue  # a mark on a Latin letter (the letter may carry several)
        if unicodedata.category(char)[0] == "M" and out:
            out[-1] += char
        else:
            out.append(char)
    return unicodedata.normalize("NFKC", "".join(out))


any_unicode = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
every_script = st.text(
    st.one_of(
        st.characters(codec="utf-8", exclude_categories=("Cs",)),
        st.sampled_from(
            "库尔斯克クルスクｸﾙｽｸﾞ쿠르스크\u1100\u1161ทหารำ่ก\u0e33Курськéǅİ\u0301\u00ad"
        ),
    ),
    max_size=30,
)


@settings(max_examples=400)
@given(st.one_of(any_unicode, every_script))
def test_normalize_takes_no_shortcut_that_changes_the_result(text: str) -> None:
    assert normalize(text) == reference_normalize(text)


@settings(max_examples=400)
@given(st.one_of(any_unicode, every_script))
def test_the_c_and_python_spaced_forms_agree_on_any_text(text: str) -> None:
    """The C module's spaced() reads the class table this module built: same tokens."""
    assert spaced(text) == spaced_in_python(text)
    assert spaced(text).split() == tokenize(text) == [t for t, _, _ in tokenize_spans(text)]


def test_folding_character_by_character_is_exact_for_every_bmp_character_and_pairs() -> None:
    """The C module folds a text character by character when each character's form does
    not depend on its neighbours; every BMP character alone, and 200,000 pairs drawn at
    random (seeded) with a bias to characters that compose, decompose or fold, normalise
    as SPEC §4 says."""
    bmp = [chr(c) for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF]
    for char in bmp:
        assert normalize(char) == reference_normalize(char), hex(ord(char))
    tricky = [c for c in bmp if unicodedata.decomposition(c) or c.casefold() != c]
    tricky += [c for c in bmp if unicodedata.category(c)[0] == "M"] + list("\u00ad\u200d")
    rng = random.Random(7)
    for _ in range(100_000):
        pair = rng.choice(tricky) + rng.choice(bmp)
        assert normalize(pair) == reference_normalize(pair), [hex(ord(c)) for c in pair]
        pair = rng.choice(bmp) + rng.choice(tricky)
        assert normalize(pair) == reference_normalize(pair), [hex(ord(c)) for c in pair]


def test_cjk_text_with_fullwidth_punctuation_is_folded_in_c() -> None:
    from watcher import text as module

    if module._c_fold is None:  # the module-level failure names the cause; never skipped
        pytest.fail("watcher._scan is not built; reinstall with a C compiler")
    module._classes()  # hands the callback to the C module (first use in this process)
    assert module._c_fold("北朝鲜军队在库尔斯克，ＡＢＣ１２３！") == "北朝鲜军队在库尔斯克,abc123!"
    assert module._c_fold("e\u0301") is None  # a mark composes: the whole text goes to Python
    assert module._c_fold("Kursk 🙂") is None  # beyond the BMP


def test_spaced_uses_the_c_module_when_it_is_built() -> None:
    from watcher import text as module

    if module._c_spaced is None:  # the module-level failure names the cause; never skipped
        pytest.fail("watcher._scan is not built; reinstall with a C compiler")
    module._classes()  # hands the class table to the C module (first use in this process)
    assert module._c_spaced(" 乌克兰的f-16 ") == " 乌 克 兰 的 f 16 "


def test_every_letter_mark_and_number_lies_in_the_planes_the_table_reads() -> None:
    planes = set(itertools.chain.from_iterable(ASSIGNED_PLANES))
    for code in range(sys.maxunicode + 1):
        if unicodedata.category(chr(code))[0] in "LMN":
            assert code in planes, hex(code)
