"""Matching semantics of SPEC §4, one table row per sentence, plus index-vs-direct properties."""

from __future__ import annotations

import time
import unicodedata
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.rules.match import (
    _near,
    _NearPartners,
    compile_rules,
    match_item,
    match_item_unindexed,
)
from watcher.text import tokenize
from watcher.types import Hit, MatchItem, Rule

# Every test runs with the C candidate scan and with the Python path (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("engine")


def rule(rule_id: str = "r", **kwargs: Any) -> Rule:
    return Rule(id=rule_id, file="rules/test.yaml", **kwargs)


def item(title: str = "", **fields: Any) -> MatchItem:
    values = {"title": (title,)} if title else {}
    for name, value in fields.items():
        values[name] = tuple(value) if isinstance(value, list) else (value,)
    return MatchItem(fields=values)


def matches(query: str, text: str, **kwargs: Any) -> bool:
    return bool(match_item(compile_rules([rule(query=query, **kwargs)]), item(text)))


# (query, text, expected): every row is one sentence of SPEC §4 "Matching semantics".
CASES = [
    # normalisation
    ("Straße", "STRASSE in Berlin", True),
    ("Kursk", "Kur\u00adsk", True),
    ("cafe", "Café", True),
    ("Zürich", "zurich", True),
    ("ёж", "еж", False),
    ("й", "и", False),
    ("łódź", "lodz", False),
    ("łódź", "ŁÓDŹ", True),
    # tokens
    ("Kursk", "KURSK", True),
    ("Kursk", "Kursk’s offensive", True),
    ("Kursk", "Kurskaya oblast", False),
    ("Korea", "North Korea’s troops", True),
    ('"korea s troops"', "North Korea’s troops", True),
    ('"11 000"', "about 11,000 soldiers", True),
    ("11,000", "about 11 000 soldiers", True),
    ("km2", "40 km² of land", True),
    ("東京都で会議", "東京都で会議", True),
    # scripts written without spaces: a token per character, a term is a phrase of them
    ("東京", "東京都で会議", True),
    ("库尔斯克", "朝鲜军队在库尔斯克州作战", True),
    ("库尔斯克", "库尔克斯", False),  # the characters must stand in a row, in order
    ("库尔 斯克", "朝鲜军队在库尔斯克州作战", True),  # a space inside changes nothing
    ('"库尔斯克州"', "库尔斯克 州", True),
    ("クルスク", "ロシア西部クルスク州で戦闘", True),
    ("クルスク", "ｸﾙｽｸ州", True),  # half-width kana
    ("쿠르스크", "쿠르스크에서 교전", True),
    ("북한", "북한군이 러시아에", True),
    ("북한군", "북한 군", True),  # the space between them changes nothing either
    ("ทหาร", "ทหารเกาหลีเหนือ", True),
    ("F-16", "乌克兰的F-16战斗机", True),
    ("F16", "乌克兰的F16战斗机", True),
    ('"乌克兰 F-16"', "乌克兰的F-16战斗机", False),  # 的 stands between them
    ('"乌克兰的 F-16 战斗机"', "乌克兰的F-16战斗机", True),
    ("Kursk", "库尔斯克Kursk州", True),  # a Latin word beside them is a token of its own
    ("Курськ*", "бої в Курській області", True),
    ("库尔斯克 NEAR/4 朝鲜", "朝鲜军队在库尔斯克", True),  # NEAR counts characters here
    ("库尔斯克 NEAR/3 朝鲜", "朝鲜军队在库尔斯克", False),
    ("title:北朝鮮", "北朝鮮兵がクルスクに", True),
    # wildcards
    ("drone*", "a drone", True),
    ("drone*", "the drones", True),
    ("drone*", "droneless", True),
    ("drone*", "a dron", False),
    ("drone*", "antidrone", False),
    ('"fiber-optic drone*"', "fiber-optic drones", True),
    ("ß*", "strasse", False),
    ("ß*", "ssh", True),
    # phrases
    ('"North Korean troops"', "North Korean troops", True),
    ('"North Korean troops"', "north. Korean troops arrived", True),
    ('"North Korean troops"', "North Korean forces and troops", False),
    ('"North Korean troops"', "troops North Korean", False),
    # bare words with several tokens are phrases
    ("fiber-optic", "fiber optic", True),
    ("fiber-optic", "optic fiber", False),
    ("Russia/Ukraine", "Russia-Ukraine war", True),
    ("10:30", "at 10.30 today", True),
    ("10:30", "30 10", False),
    # joined forms
    ("fiber-optic", "fiber-optic", True),
    ("fiber-optic", "Fiber\u2011Optic", True),
    ("fiber-optic", "fiberoptic", True),
    ("fiber-optic-cable", "fiberopticcable", True),
    ("fiber-optic-cable", "fiberoptic cable", False),  # only the full join
    ("fiber\u2010optic", "fiberoptic", True),
    ("fiber\ufe63optic", "fiberoptic", True),
    ("fiber\uff0doptic", "fiberoptic", True),
    ("fiber--optic", "fiberoptic", True),
    ("Russia/Ukraine", "RussiaUkraine", True),
    ("Korea's", "Koreas", False),  # apostrophes never join
    ("fiber—optic", "fiberoptic", False),  # an em dash never joins
    ('"fiber-optic drones"', "fiberoptic drones", True),
    # operators
    ("Kursk drones", "drones over Kursk", True),
    ("Kursk drones", "Kursk", False),
    ("Kursk AND drones", "drones over Kursk", True),
    ("Kursk OR Belgorod", "Belgorod", True),
    ("Kursk OR Belgorod", "Moscow", False),
    ("Kursk NOT drones", "Kursk drones", False),
    ("Kursk NOT drones", "Kursk", True),
    ("Kursk -drones", "Kursk drones", False),
    ("Kursk -drones", "Kursk", True),
    ("Kursk - drones", "Kursk", False),  # a lone "-" is ignored: Kursk AND drones
    ("Kursk -(drones OR missiles)", "Kursk missiles", False),
    ('Kursk -"video game"', "Kursk video game", False),
    ('Kursk -"video game"', "Kursk game video", True),
    ("Kursk and drones", "Kursk drones", False),  # lower-case and is a word
    ("Kursk and drones", "Kursk and drones", True),
    ("Kursk Or drones", "Kursk or drones", True),
    ("near/3", "near 3", True),
    ("“North Korean”", "north korean", True),
    ("„North Korean“", "north korean", True),
    ("«North Korean»", "north korean", True),
    ("Kursk & drones", "Kursk drones", True),  # a word with no token is ignored
    ("Kursk – drones", "Kursk drones", True),
    # precedence: scope, NEAR, NOT, AND, OR
    ("a b OR c", "c", True),
    ("a b OR c", "a", False),
    ("a (b OR c)", "c", False),
    ("NOT x a OR b", "x b", True),
    ("a NOT b NEAR c", "a b c", False),
    ("a NOT b NEAR c", "a b x x x x x x x x x x x c", True),
    # NEAR
    ("Korean NEAR/3 Kursk", "North Korean troops in Kursk", True),
    ("Korean NEAR/2 Kursk", "North Korean troops in Kursk", False),
    ("Kursk NEAR/3 Korean", "North Korean troops in Kursk", True),
    ("a NEAR b", "a 1 2 3 4 5 6 7 8 9 b", True),
    ("a NEAR b", "a 1 2 3 4 5 6 7 8 9 10 b", False),
    ('"north korean" NEAR/3 kursk', "north korean troops in kursk", True),
    ('"north korean" NEAR/2 kursk', "north korean troops in kursk", False),
    ('"north korean" NEAR/1 troops', "north korean troops", True),
    ('"north korean" NEAR/5 korean', "north korean", False),  # spans may not overlap
    ("drone NEAR drone*", "drone", False),
    ("drone NEAR drone*", "drone drones", True),
    ("(a OR b) NEAR/1 c", "b c", True),
    ("(a OR b) NEAR/1 c", "b x c", False),
    ('a NEAR/1 (b OR "c d")', "a c d", True),
    # scopes
    ("title:Kursk", "Kursk", True),
    # regex
    (r"/\d+ drones/", "40 drones", True),
    (r"/\d+ drones/", "forty drones", False),
    ("/kursk/", "KURSKAYA", True),  # case-insensitive search anywhere
    (r"/\bkursk\b/", "Kurskaya", False),
    (r"/a\/b/", "A/B", True),
    ("/ёж/", "ЁЖ", True),
    (r"/\pL+ск/", "Курск", True),
]


@pytest.mark.parametrize(("query", "text", "expected"), CASES)
def test_query_matches(query: str, text: str, expected: bool) -> None:
    assert matches(query, text) is expected


@pytest.mark.parametrize(("query", "text", "expected"), CASES)
def test_index_agrees_with_direct_evaluation(query: str, text: str, expected: bool) -> None:
    compiled = compile_rules([rule(query=query)])
    assert match_item(compiled, item(text)) == match_item_unindexed(compiled, item(text))


def test_any_all_none_combine_with_and() -> None:
    r = rule(
        any=("North Korean troops", "DPRK troops"),
        all=("Kursk",),
        none=("video game",),
    )
    compiled = compile_rules([r])
    assert match_item(compiled, item("DPRK troops seen in Kursk"))
    assert not match_item(compiled, item("DPRK troops seen in Belgorod"))
    assert not match_item(compiled, item("Kursk alone"))
    assert not match_item(compiled, item("DPRK troops in Kursk: the video game"))


def test_any_all_none_and_query_combine() -> None:
    compiled = compile_rules([rule(any=("drone*",), query="Kursk OR Belgorod")])
    assert match_item(compiled, item("Drones over Belgorod"))
    assert not match_item(compiled, item("Drones over Moscow"))


def test_list_entries_are_literal() -> None:
    compiled = compile_rules([rule(any=("Kursk OR Belgorod",))])
    assert match_item(compiled, item("Kursk or Belgorod"))
    assert not match_item(compiled, item("Belgorod"))
    compiled = compile_rules([rule(any=("title:x",))])
    assert match_item(compiled, item("title x"))


def test_terms_are_normalised_in_rule_order_without_duplicates() -> None:
    r = rule(
        any=("North Korean troops", "DPRK troops"),
        all=("Kursk",),
        query="drone* OR Kursk OR Fiber-Optic",
    )
    found = match_item(
        compile_rules([r]), item("North Korean troops, DPRK troops, drones near Kursk, fiberoptic")
    )
    assert found[0].terms == (
        "north korean troops",
        "dprk troops",
        "kursk",
        "drone*",
        "fiber-optic",
    )


def test_hits_locate_the_matched_tokens() -> None:
    found = match_item(
        compile_rules([rule(any=("North Korean troops",), all=("Kursk",))]),
        item("Seen: North Korean troops near Kursk", summary=["x", "in Kursk"]),
    )
    assert found[0].hits == (
        Hit("title", 0, 1, 4),
        Hit("title", 0, 5, 6),
        Hit("summary", 1, 1, 2),
    )


def test_terms_exclude_negated_and_failed_branches() -> None:
    found = match_item(
        compile_rules([rule(query="(Kursk OR Belgorod) NOT drones OR missiles")]),
        item("Kursk news"),
    )
    assert found[0].terms == ("kursk",)


def test_near_terms_and_regex_terms() -> None:
    found = match_item(
        compile_rules([rule(query=r"Korean NEAR/3 Kursk /\d+ troops/")]),
        item("North Korean troops in Kursk: 11 troops"),
    )
    assert found[0].terms == ("korean", "kursk", r"/\d+ troops/")


@pytest.mark.parametrize(
    ("query", "fields", "expected"),
    [
        ("title:Kursk", {"summary": "Kursk"}, False),
        ("summary:Kursk", {"summary": "Kursk"}, True),
        ("author:smith", {"author": "J. Smith"}, True),
        ("link:example", {"link": "https://example.org/a"}, True),
        ("tags:ukraine", {"tags": ["war", "Ukraine"]}, True),
        ('tags:"war ukraine"', {"tags": ["war", "Ukraine"]}, False),  # never spans two tags
        ("tags:(war NEAR/1 ukraine)", {"tags": ["war", "Ukraine"]}, False),
        ("feed:kyiv", {"feed": ["kyiv-independent", "The Kyiv Independent"]}, True),
        ('feed:"the kyiv"', {"feed": ["kyiv-independent", "The Kyiv Independent"]}, True),
        ("Kursk", {"author": "Kursk"}, False),  # default fields: title, summary, content
        ("Kursk", {"content": "Kursk"}, True),
        ("text:Kursk", {"content": "Kursk"}, True),
        ('title:(x OR "y z")', {"title": "y z"}, True),
        ('title:(x OR "y z")', {"summary": "y z"}, False),
        ("summary:/kursk$/", {"summary": "near Kursk"}, True),
        ("tags:/^war ukr/", {"tags": ["war", "ukraine"]}, False),  # each tag on its own
        ("tags:/^ukr/", {"tags": ["war", "ukraine"]}, True),
    ],
)
def test_field_scopes(query: str, fields: dict[str, Any], expected: bool) -> None:
    compiled = compile_rules([rule(query=query)])
    assert bool(match_item(compiled, item(**fields))) is expected


def test_rule_fields_apply_to_lists_and_text_scope() -> None:
    r = rule(any=("Kursk",), query="text:drone*", fields=("author",))
    compiled = compile_rules([r])
    assert match_item(compiled, item(author="Kursk drones"))
    assert not match_item(compiled, item("Kursk drones"))


@pytest.mark.parametrize(
    ("words", "text", "stem", "expected"),
    [
        ({"query": "troop"}, "troops", "english", True),
        ({"query": "troop"}, "troops", None, False),
        ({"any": ("troops movement",)}, "troop movements", "english", True),
        ({"query": "army*"}, "armies", "english", False),  # prefixes are not stemmed
        ({"query": "army*"}, "army", "english", True),
        ({"query": "войска"}, "войскам", "russian", True),
        ({"query": "the troops"}, "troops", "english", False),  # no stop words are dropped
        ({"query": "drone NEAR/1 strikes"}, "drones strike", "english", True),
        ({"none": ("video games",), "all": ("Kursk",)}, "Kursk video game", "english", False),
    ],
)
def test_stem(words: dict[str, Any], text: str, stem: str | None, expected: bool) -> None:
    compiled = compile_rules([rule(stem=stem, **words)])
    assert bool(match_item(compiled, item(text))) is expected


def test_feed_scope_and_enabled() -> None:
    rules = [
        rule("by-name", any=("Kursk",), feeds=("kyiv",)),
        rule("by-tag", any=("Kursk",), feeds=("tag:ukraine",)),
        rule("every", any=("Kursk",)),
        rule("off", any=("Kursk",), enabled=False),
    ]
    compiled = compile_rules(rules)
    base = {"title": ("Kursk",)}
    ids = [m.rule_id for m in match_item(compiled, MatchItem(base, "kyiv", ("ukraine",)))]
    assert ids == ["by-name", "by-tag", "every"]
    ids = [m.rule_id for m in match_item(compiled, MatchItem(base, "other", ("Ukraine",)))]
    assert ids == ["by-tag", "every"]
    ids = [m.rule_id for m in match_item(compiled, MatchItem(base, "other", ()))]
    assert ids == ["every"]


def test_matches_come_in_rule_order() -> None:
    rules = [rule(f"r{i}", query=q) for i, q in enumerate(["zeta", "/alpha/", "alph*", "alpha"])]
    found = match_item(compile_rules(rules), item("alpha zeta"))
    assert [m.rule_id for m in found] == ["r0", "r1", "r2", "r3"]


# --- properties ------------------------------------------------------------------------------

WORDS = ["kursk", "drone", "drones", "north", "korean", "troops", "fiber", "optic", "fiberoptic"]
word = st.sampled_from(WORDS)
text_strategy = st.lists(
    st.one_of(word, st.sampled_from(["Kursk’s", "fiber-optic", "DRONES", ".", "—", "x"])),
    max_size=14,
).map(" ".join)


@st.composite
def queries(draw: st.DrawFn, depth: int = 2) -> str:
    leaf = st.one_of(
        word,
        word.map(lambda w: w[:3] + "*"),
        st.lists(word, min_size=2, max_size=3).map(lambda ws: '"' + " ".join(ws) + '"'),
        st.just("fiber-optic"),
        st.just("/dr[o0]ne/"),
    )
    if depth == 0:
        return draw(leaf)
    kind = draw(st.sampled_from(["leaf", "and", "or", "not", "near", "scope"]))
    left = draw(queries(depth - 1))
    right = draw(queries(depth - 1))
    if kind == "and":
        return f"({left}) ({right})"
    if kind == "or":
        return f"({left}) OR ({right})"
    if kind == "not":
        return f"({left}) NOT ({right})"
    if kind == "near":
        n = draw(st.integers(1, 4))
        return f"{draw(word)} NEAR/{n} {draw(word)}"
    if kind == "scope":
        return f"summary:({left})"
    return draw(leaf)


@settings(max_examples=60, deadline=None)
@given(st.lists(queries(), min_size=1, max_size=8), text_strategy, text_strategy)
def test_indexed_engine_equals_rule_by_rule(
    rule_queries: list[str], title: str, summary: str
) -> None:
    rules = [rule(f"r{i}", query=q) for i, q in enumerate(rule_queries)]
    compiled = compile_rules(rules)
    subject = item(title, summary=summary)
    assert match_item(compiled, subject) == match_item_unindexed(compiled, subject)


@settings(max_examples=100, deadline=None)
@given(text_strategy, st.data())
def test_a_phrase_cut_from_a_text_matches_it(text: str, data: st.DataObject) -> None:
    words = text.split()
    if not any(w.strip(".—") for w in words):
        return
    start = data.draw(st.integers(0, len(words) - 1))
    end = data.draw(st.integers(start + 1, len(words)))
    phrase = " ".join(words[start:end])
    if not any(c.isalnum() for c in phrase):
        return
    assert match_item(compile_rules([rule(any=(phrase,))]), item(text))


# Text of scripts written without spaces: ideographs, kana, Hangul syllables, Thai letters
# with their marks, and the punctuation and spaces found between them.
unspaced_alphabet = st.sampled_from(
    list("朝鲜军队在库尔斯克州作战乌兰的东京都北国人")
    + list("くるすでにのはがクルスクドローンー")
    + list("쿠르스크에서북한군이")
    + list("ทหารเกลีหนือก่ั้")
    + list("ກອງທັບកងទ័ពတပ်မ")
    + list("、。 ,「」・")
)
unspaced_text = st.lists(unspaced_alphabet, min_size=1, max_size=30).map("".join)


def starts_a_character(text: str, at: int) -> bool:
    """Whether a cut before ``text[at]`` leaves whole characters: not before a combining
    mark, nor before a character that NFKC turns into one and a letter (Thai ำ)."""
    if at in (0, len(text)):
        return True
    first = unicodedata.normalize("NFKC", text[at])[:1]
    return unicodedata.category(first)[0] != "M"


@settings(max_examples=300, deadline=None)
@given(unspaced_text, st.data())
def test_a_substring_cut_from_unspaced_text_matches_it_as_a_phrase(
    text: str, data: st.DataObject
) -> None:
    """SPEC §4: a term in those scripts matches wherever its characters stand in a row."""
    cuts = [at for at in range(len(text) + 1) if starts_a_character(text, at)]
    start = data.draw(st.sampled_from(cuts[:-1]))
    end = data.draw(st.sampled_from([at for at in cuts if at > start]))
    piece = text[start:end]
    if not tokenize(piece):
        return
    found = match_item(compile_rules([rule(any=(piece,))]), item(text))
    assert found, (piece, text)
    quoted = piece.replace('"', " ")
    assert match_item(compile_rules([rule(query=f'"{quoted}"')]), item(text))


@settings(max_examples=200, deadline=None)
@given(unspaced_text, unspaced_text)
def test_unspaced_text_matches_a_term_exactly_when_its_characters_stand_in_a_row(
    text: str, term: str
) -> None:
    tokens, wanted = tokenize(text), tokenize(term)
    if not wanted:
        return
    expected = any(tokens[i : i + len(wanted)] == wanted for i in range(len(tokens)))
    assert bool(match_item(compile_rules([rule(any=(term,))]), item(text))) is expected


# --- term lists (SPEC §4) ------------------------------------------------------------------

KURSK = ("kursk", ("Kursk", "Курск", "Курськ*", "쿠르스크", "库尔斯克", "クルスク"))
DPRK = ("dprk", ("North Korean troops", "DPRK", "북한군"))


def listed(**kwargs: Any) -> Rule:
    return rule(term_lists=(DPRK, KURSK), **kwargs)


@pytest.mark.parametrize(
    ("conditions", "text", "terms"),
    [
        ({"all": ("$kursk", "troops")}, "Troops near Kursk", ["kursk", "troops"]),
        ({"all": ("$kursk", "troops")}, "Troops near Belgorod", None),
        ({"all": ("$kursk",)}, "бої в Курській області", ["курськ*"]),
        (
            {"any": ("$dprk",), "all": ("$kursk",)},
            "북한군, 쿠르스크에서 교전",
            ["북한군", "쿠르스크"],
        ),
        # the list entries that matched, in list order, whatever the text's order
        (
            {"all": ("$kursk",)},
            "クルスク, 库尔斯克州, Курск, Kursk",
            ["kursk", "курск", "库尔斯克", "クルスク"],
        ),
        ({"none": ("$kursk",), "any": ("troops",)}, "Troops in Курск", None),
        ({"query": "$dprk NEAR/3 $kursk"}, "DPRK units near Kursk", ["dprk", "kursk"]),
        ({"query": "$dprk NEAR/1 $kursk"}, "DPRK units near Kursk", None),
        (
            {"query": "($kursk OR Belgorod) NEAR/2 drones"},
            "Belgorod, drones",
            ["belgorod", "drones"],
        ),
        ({"query": "title:$kursk"}, "Курск", ["курск"]),
        ({"query": "drones -$kursk"}, "drones over Курськ", None),
        # $ before anything but a letter is literal; $$ writes a literal $ before one
        ({"query": "$5 billion"}, "a $5 billion deal", ["5", "billion"]),
        ({"query": "$$kursk"}, "Kursk", ["kursk"]),
        ({"any": ("$$kursk",)}, "$kursk", ["kursk"]),
    ],
)
def test_term_lists_stand_for_their_entries(
    conditions: dict[str, Any], text: str, terms: list[str] | None
) -> None:
    found = match_item(compile_rules([listed(**conditions)]), item(text))
    assert (list(found[0].terms) if found else None) == terms


def test_a_term_list_in_a_query_counts_as_one_term_however_long() -> None:
    many = ("many", tuple(f"word{i}" for i in range(1000)))
    query = " OR ".join(["$many"] * 256)
    found = match_item(compile_rules([rule(query=query, term_lists=(many,))]), item("word999"))
    assert [m.terms for m in found] == [("word999",)]


# --- languages (RFC 4647 basic filtering) -------------------------------------------------


@pytest.mark.parametrize(
    ("languages", "language", "expected"),
    [
        (("ko", "zh"), "ko", True),
        (("ko", "zh"), "zh-cn", True),  # a range matches the tags it prefixes
        (("ko", "zh"), "ZH-Hant-TW", True),  # case-insensitively
        (("ko", "zh"), "zhx", False),  # only up to a subtag boundary
        (("ko", "zh"), "en", False),
        (("ko", "zh"), None, True),  # an item with no language passes
        (("zh-cn",), "zh", False),  # a narrower range does not match a wider tag
        (("*",), "ru", True),
        ((), "ru", True),
    ],
)
def test_languages_limit_a_rule_to_items_in_those_languages(
    languages: tuple[str, ...], language: str | None, expected: bool
) -> None:
    compiled = compile_rules([rule(any=("Kursk", "쿠르스크"), languages=languages)])
    subject = MatchItem(fields={"title": ("Kursk 쿠르스크",)}, language=language)
    assert bool(match_item(compiled, subject)) is expected
    assert bool(match_item_unindexed(compiled, subject)) is expected


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.lists(
            st.sampled_from([*WORDS, "库尔斯克", "쿠르스크", "drone*"]), min_size=1, max_size=2
        ),
        min_size=1,
        max_size=4,
    ),
    text_strategy,
)
def test_a_term_list_matches_as_the_or_group_of_its_entries(
    entries: list[list[str]], text: str
) -> None:
    phrases = tuple(" ".join(words) for words in entries)
    listed_rule = rule("l", query="$l NEAR/3 kursk", term_lists=(("l", phrases),))
    written = rule("w", query="(" + " OR ".join(f'"{p}"' for p in phrases) + ") NEAR/3 kursk")
    subject = item(text)
    found = match_item(compile_rules([listed_rule]), subject)
    expected = match_item(compile_rules([written]), subject)
    assert [m.terms for m in found] == [m.terms for m in expected]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 2), st.integers(0, 30), st.integers(1, 3)), max_size=30),
    st.lists(st.tuples(st.integers(0, 2), st.integers(0, 30), st.integers(1, 3)), max_size=30),
    st.integers(1, 12),
)
def test_near_partners_are_exactly_the_near_spans(
    lefts: list[tuple[int, int, int]], rights: list[tuple[int, int, int]], distance: int
) -> None:
    spans = [(value, first, first + length) for value, first, length in rights]
    partners = _NearPartners(spans, distance)
    for value, first, length in lefts:
        a = (value, first, first + length)
        expected = [p for p, b in enumerate(spans) if a[0] == b[0] and _near(a, b, distance)]
        assert partners.of(a) == expected


def test_a_long_text_with_many_hits_matches_in_linear_time() -> None:
    rules = [
        Rule(id="near", file="r.yaml", query="kursk NEAR/3 drone"),
        Rule(id="far", file="r.yaml", query="kursk NEAR/3 belgorod"),
        Rule(id="any", file="r.yaml", any=("kursk",)),
    ]
    text = "kursk words " * 40_000 + "gap " * 10 + "drone belgorod " * 40_000
    started = time.process_time()  # CPU time: immune to a busy machine
    found = match_item(compile_rules(rules), MatchItem(fields={"content": (text,)}))
    assert time.process_time() - started < 5  # hours before: every pair was tried
    assert [m.rule_id for m in found] == ["any"]
    (hit,) = [m for m in found if m.rule_id == "any"]
    assert len(hit.hits) == 1000  # the first ones: enough for any snippet


def test_the_article_field_is_in_the_default_fields_and_a_scope() -> None:
    from datetime import UTC, datetime

    from watcher.rules.match import match_input
    from watcher.types import FeedState, ParsedItem, StoredItem

    feed = FeedState(id=1, url="https://a.example/rss", name="a")
    teaser = ParsedItem(guid="g", title="Frontline report", summary_text="Read more.")
    body = "Units there now rely on fiber-optic drones that jamming cannot stop."
    default = compile_rules([rule(any=("fiber-optic drones",))])
    scoped = compile_rules([rule(query="article:drone* AND title:frontline")])
    elsewhere = compile_rules([rule(any=("fiber-optic drones",), fields=("title", "summary"))])
    assert not match_item(default, match_input(teaser, feed))  # the teaser alone: silent
    (found,) = match_item(default, match_input(teaser, feed, body))
    assert {hit.field for hit in found.hits} == {"article"}
    assert match_item(scoped, match_input(teaser, feed, body))
    assert not match_item(scoped, match_input(teaser, feed))
    assert not match_item(elsewhere, match_input(teaser, feed, body))  # not in its fields
    stored = StoredItem(
        id=1,
        feed_id=1,
        guid="g",
        title="Frontline report",
        link=None,
        summary_text="Read more.",
        content_text="",
        author=None,
        tags=(),
        published_at=None,
        first_seen_at=datetime(2026, 1, 1, tzinfo=UTC),
        content_hash="h",
        story_id=1,
        change="unchanged",
        article_text=body,
    )
    assert match_item(default, match_input(stored, feed))  # a backtest sees the article too
