"""The fast paths of the matcher: spaced values, string-search positions, the anchor index."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.rules.match import (
    _ItemText,
    _leaves,
    candidates,
    compile_rules,
    match_item,
    match_item_unindexed,
)
from watcher.text import spaced, tokenize
from watcher.types import Hit, MatchItem, Rule

# Every test runs with the C candidate scan and with the Python path (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("engine")


def rule(rule_id: str = "r", **kwargs: Any) -> Rule:
    return Rule(id=rule_id, file="rules/test.yaml", **kwargs)


WORDS = ["kursk", "drone", "drones", "troops", "fiber", "optic", "fiberoptic", "north", "a"]
any_text = st.lists(
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6)
    | st.sampled_from([*WORDS, "Kursk’s", "Straße", "½", "ǅ"]),
    max_size=8,
).map("".join)
word_text = st.lists(
    st.sampled_from([*WORDS, "Kursk’s", "fiber-optic", "DRONES", ".", ",", "—", "Drône"]),
    max_size=16,
).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(any_text)
def test_spaced_holds_the_tokens_between_spaces(text: str) -> None:
    value = spaced(text)
    tokens = tokenize(text)
    assert value.split() == tokens
    assert value.startswith(" ") and value.endswith(" ")
    for token in tokens:
        assert f" {token} " in value
        assert f" {token[:2]}" in value


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "ab"]), max_size=12), st.data())
def test_phrase_and_term_hits_are_every_occurrence(tokens: list[str], data: st.DataObject) -> None:
    phrase = data.draw(st.lists(st.sampled_from(["a", "b", "ab"]), min_size=1, max_size=3))
    n = len(phrase)
    expected = [
        Hit("title", 0, i, i + n) for i in range(len(tokens) - n + 1) if tokens[i : i + n] == phrase
    ]
    found = match_item(
        compile_rules([rule(any=(" ".join(phrase),))]),
        MatchItem(fields={"title": (" ".join(tokens),)}),
    )
    assert list(found[0].hits if found else ()) == expected


def test_overlapping_phrase_occurrences_are_all_hits() -> None:
    found = match_item(
        compile_rules([rule(any=("north north",))]),
        MatchItem(fields={"title": ("North, north. NORTH",)}),
    )
    assert found[0].hits == (Hit("title", 0, 0, 2), Hit("title", 0, 1, 3))


# Rule shapes of the benchmark (benchmarks/bench_match.py) and a few more.
SHAPES = [
    lambda a, b, c, d: {"any": (f"{a} {b}", f"{c} {d}")},
    lambda a, b, c, d: {"query": f"{a[:4]}* AND {b}"},
    lambda a, b, c, d: {"query": f"({a} OR {b}) {c} NOT {d}"},
    lambda a, b, c, d: {"query": f'{a} NEAR/2 "{b} {c}"'},
    lambda a, b, c, d: {"all": (a,), "any": (f'"{b}-{c}"',)},
    lambda a, b, c, d: {"query": f'title:{a} AND ({b} OR "{c} {d}")'},
    lambda a, b, c, d: {"query": f"{a[:3]}*"},
    lambda a, b, c, d: {"query": f"author:{a} OR tags:{b}"},
    lambda a, b, c, d: {"any": (f"{a} {b}",), "stem": "english"},
    lambda a, b, c, d: {"query": f"/{a}s?/ AND {b}"},
    lambda a, b, c, d: {"none": (a,), "any": (b,), "fields": ("summary",)},
]


@st.composite
def rule_sets(draw: st.DrawFn) -> list[Rule]:
    rules = []
    for i in range(draw(st.integers(1, 12))):
        shape = draw(st.sampled_from(SHAPES))
        a, b, c, d = (draw(st.sampled_from(WORDS[:-1])) for _ in range(4))
        rules.append(rule(f"r{i}", **shape(a, b, c, d)))
    return rules


@settings(max_examples=150, deadline=None)
@given(rule_sets(), word_text, word_text, word_text, st.lists(word_text, max_size=2))
def test_indexed_engine_equals_rule_by_rule_on_every_field(
    rules: list[Rule], title: str, summary: str, content: str, tags: list[str]
) -> None:
    compiled = compile_rules(rules)
    subject = MatchItem(
        fields={
            "title": (title,),
            "summary": (summary,),
            "content": (content,),
            "author": (summary[:20],),
            "tags": tuple(tags),
        },
        feed_name="news",
    )
    assert match_item(compiled, subject) == match_item_unindexed(compiled, subject)


@settings(max_examples=60, deadline=None)
@given(rule_sets(), word_text, word_text, word_text)
def test_compiled_rules_unpickled_match_as_the_rules_compiled_here(
    rules: list[Rule], title: str, summary: str, content: str
) -> None:
    compiled = compile_rules(rules)
    copy = pickle.loads(pickle.dumps(compiled))  # what the compiled-rules cache holds
    assert (copy.index.scanner is None) == (compiled.index.scanner is None)
    subject = MatchItem(
        fields={"title": (title,), "summary": (summary,), "content": (content,)},
        feed_name="news",
    )
    assert match_item(copy, subject) == match_item(compiled, subject)


def test_fields_no_default_rule_reads_are_still_seen_by_scoped_rules() -> None:
    rules = [rule("plain", any=("smith",)), rule("scoped", query="author:smith")]
    subject = MatchItem(fields={"title": ("News",), "author": ("J. Smith",)})
    assert [m.rule_id for m in match_item(compile_rules(rules), subject)] == ["scoped"]


def test_prefix_only_rules_match_tokens_that_start_so() -> None:
    compiled = compile_rules([rule("p", query="dro*"), rule("q", query="kurs* AND troops")])
    ids = [m.rule_id for m in match_item(compiled, MatchItem(fields={"title": ("Drones",)}))]
    assert ids == ["p"]
    assert not match_item(compiled, MatchItem(fields={"title": ("adrone",)}))
    both = MatchItem(fields={"content": ("Troops near Kursk’s border",)})
    assert [m.rule_id for m in match_item(compiled, both)] == ["q"]


def test_a_companion_word_elsewhere_is_not_a_phrase() -> None:
    compiled = compile_rules([rule(any=("fiber optic",))])
    apart = MatchItem(fields={"title": ("optic cables and fiber",)})
    together = MatchItem(fields={"title": ("new Fiber optic cables",)})
    assert not match_item(compiled, apart)
    assert match_item(compiled, together)[0].hits == (Hit("title", 0, 1, 3),)


def test_compiled_rules_survive_pickling_as_a_spawned_worker_gets_them() -> None:
    rules = [
        rule("p", any=("fiber optic",), none=("kursk",)),
        rule("q", query='troops NEAR/2 "north korean"'),
    ]
    compiled = compile_rules(rules)
    copy = pickle.loads(pickle.dumps(compiled))
    subject = MatchItem(fields={"title": ("Fiber optic drones; north korean troops",)})
    assert match_item(copy, subject) == match_item(compiled, subject)
    assert [m.rule_id for m in match_item(copy, subject)] == ["p", "q"]
    for one in copy.rules:  # the prefilter of every leaf is found in the copy
        assert one.needles and all(isinstance(k, int) for k in one.needles)
        assert set(one.needles) <= {id(leaf) for leaf in _leaves(one.condition)}


def test_a_scoped_word_elsewhere_does_not_make_a_candidate_match() -> None:
    compiled = compile_rules(
        [
            rule("t", query='title:(drone* OR "fiber optic") AND troops'),
            rule("s", query="summary:(title:kursk) north"),
        ]
    )
    elsewhere = MatchItem(
        fields={"title": ("Troops", "North"), "content": ("drones fiber optic kursk",)}
    )
    assert not match_item(compiled, elsewhere)
    inside = MatchItem(fields={"title": ("Troops", "Fiber optic to Kursk"), "content": ("north",)})
    assert [m.rule_id for m in match_item(compiled, inside)] == ["t", "s"]
    assert match_item(compiled, inside) == match_item_unindexed(compiled, inside)


def test_a_phrase_pair_is_side_by_side_across_punctuation_but_not_across_values() -> None:
    compiled = compile_rules(
        [
            rule("p", any=("fiber optic",)),
            rule("s", any=("running drones",), stem="english"),
        ]
    )
    across_stop = MatchItem(fields={"title": ("Fiber. Optic cables",)})
    assert [m.rule_id for m in match_item(compiled, across_stop)] == ["p"]
    across_values = MatchItem(fields={"title": ("cheap fiber", "optic cables")})
    assert not match_item(compiled, across_values)
    stemmed = MatchItem(fields={"content": ("The drones ran; he runs drones",)})
    assert [m.rule_id for m in match_item(compiled, stemmed)] == ["s"]
    for subject in (across_stop, across_values, stemmed):
        assert match_item(compiled, subject) == match_item_unindexed(compiled, subject)


def test_each_engine_run_uses_its_own_candidate_look_up(engine: str) -> None:
    rules = [rule(any=("fiber optic",)), rule("s", any=("drones",), stem="english")]
    compiled = compile_rules(rules)
    assert (compiled.index.scanner is not None) == (engine == "c")
    subject = MatchItem(fields={"content": ("Fiber-optic drones near Kursk.",)})
    assert [m.rule_id for m in match_item(compiled, subject)] == ["r", "s"]
    assert match_item(compile_rules(rules, scan=False), subject) == match_item(compiled, subject)


@settings(max_examples=150, deadline=None)
@given(rule_sets(), any_text, any_text, word_text)
def test_c_and_python_look_ups_agree_on_any_text(
    rules: list[Rule], title: str, summary: str, content: str
) -> None:
    """Whatever the text (any Unicode), both candidate look-ups give the same matches."""
    subject = MatchItem(fields={"title": (title,), "summary": (summary,), "content": (content,)})
    with_c, python = compile_rules(rules), compile_rules(rules, scan=False)
    assert match_item(with_c, subject) == match_item(python, subject)


# Rules in scripts written without spaces, mixed with Latin ones: every character is a
# token, so anchors are single characters and pairs of them.
UNSPACED_WORDS = ["库尔斯克", "朝鲜", "军队", "クルスク", "쿠르스크", "북한", "ทหาร", "F-16"]
UNSPACED_WORDS += ["kursk", "州", "क", "ก"]  # one character of three UTF-8 bytes each
UNSPACED_SHAPES = [
    lambda a, b, c: {"any": (a, f"{b} {c}")},
    lambda a, b, c: {"query": f"{a} AND ({b} OR {c})"},
    lambda a, b, c: {"query": f"{a} NEAR/3 {b}"},
    lambda a, b, c: {"query": f"{a} NOT {b}"},
    lambda a, b, c: {"all": (a, b)},
    lambda a, b, c: {"query": f"title:{a} {b}"},
    lambda a, b, c: {"any": (a,), "stem": "russian"},
    lambda a, b, c: {"query": f'"{a}{b}"'},
]
mixed_text = st.lists(
    st.sampled_from([*UNSPACED_WORDS, "在", "州", "에서", "の", "、", " ", "F16", "Kursk’s"])
    | st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=4),
    max_size=12,
).map("".join)


@st.composite
def unspaced_rule_sets(draw: st.DrawFn) -> list[Rule]:
    rules = []
    for i in range(draw(st.integers(1, 12))):
        shape = draw(st.sampled_from(UNSPACED_SHAPES))
        a, b, c = (draw(st.sampled_from(UNSPACED_WORDS)) for _ in range(3))
        rules.append(rule(f"r{i}", **shape(a, b, c)))
    return rules


@settings(max_examples=200, deadline=None)
@given(unspaced_rule_sets(), mixed_text, mixed_text)
def test_c_and_python_agree_on_rules_and_text_in_every_script(
    rules: list[Rule], title: str, content: str
) -> None:
    """Both candidate look-ups, and rule-by-rule evaluation, on arbitrary mixed-script text."""
    subject = MatchItem(fields={"title": (title,), "content": (content,)})
    with_c, python = compile_rules(rules), compile_rules(rules, scan=False)
    expected = match_item_unindexed(python, subject)
    assert match_item(with_c, subject) == expected
    assert match_item(python, subject) == expected


def test_a_rule_in_an_unspaced_script_is_a_candidate_only_where_its_run_stands(
    engine: str,
) -> None:
    """Single characters are common; the index files such rules under whole runs."""
    rules = [rule("k", any=("库尔斯克",)), rule("q", query="(朝鲜 OR 北韩) 军队 NOT 游戏")]
    compiled = compile_rules(rules)
    index = compiled.index

    def candidates_in(text: str) -> list[int]:
        subject = MatchItem(fields={"content": (text,)})
        return candidates(
            compiled, _ItemText(subject, index.fields, index.vocabulary, index.scanner)
        )

    assert candidates_in("库尔和斯克，尔斯库克，库尔尔斯斯克") == []
    assert candidates_in("库尔斯克州") == [0]
    assert candidates_in("军队在库尔斯 克") == [0]  # 军队 without 朝鲜 or 北韩: not a candidate
    assert candidates_in("朝鲜军队游戏") == [1]  # the NOT is left to the evaluation

    assert candidates_in("军队，朝，韩") == []  # the characters, not the runs

    def scanned(text: str) -> list[int]:
        subject = MatchItem(fields={"content": (text,)})
        spaced_text = _ItemText(subject, index.fields, index.vocabulary).all_spaced()
        assert index.scanner is not None
        return index.scanner.scan(spaced_text).entries

    if engine == "c":  # the scan itself drops the rule there, not _may_match
        assert scanned("军队，朝，韩") == []
        assert scanned("北韩军队") != []
