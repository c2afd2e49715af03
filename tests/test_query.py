"""The query grammar of SPEC §4: what parses to what, and every error with its column."""

from __future__ import annotations

import pytest

from watcher.rules.query import (
    UNSPACED_PREFIX,
    And,
    Near,
    Not,
    Or,
    Phrase,
    Prefix,
    QueryError,
    Regex,
    Scope,
    Term,
    Word,
    parse_entry,
    parse_phrase,
    parse_query,
)


def test_words_terms_and_prefixes() -> None:
    assert parse_query("Kursk") == Term("kursk", "kursk", 1)
    assert parse_query("Drone*") == Prefix("drone", "drone*", 1)
    assert parse_query("ß*") == Prefix("ss", "ss*", 1)


def test_a_word_with_joiners_is_a_phrase_with_its_joined_form() -> None:
    node = parse_query("fiber-optic")
    assert isinstance(node, Phrase)
    assert node.words == (Word((("fiber", "optic"), ("fiberoptic",))),)
    assert node.label == "fiber-optic"


def test_apostrophes_never_join() -> None:
    node = parse_query("Korea’s")
    assert isinstance(node, Phrase)
    assert node.words == (Word((("korea", "s"),)),)


def test_operators_and_precedence() -> None:
    node = parse_query("a b OR NOT c d NEAR/2 e")
    assert isinstance(node, Or)
    left, right = node.children
    assert isinstance(left, And) and len(left.children) == 2
    assert isinstance(right, And)
    negated, near = right.children
    assert isinstance(negated, Not) and negated.child == Term("c", "c", 12)
    assert isinstance(near, Near) and near.distance == 2


def test_not_binds_looser_than_near() -> None:
    node = parse_query("a NOT b NEAR c")
    assert isinstance(node, And)
    negated = node.children[1]
    assert isinstance(negated, Not) and isinstance(negated.child, Near)


def test_near_defaults_to_ten_and_takes_groups() -> None:
    node = parse_query('a NEAR (b OR "c d")')
    assert isinstance(node, Near)
    assert node.distance == 10
    assert [x.label for x in node.right] == ["b", "c d"]


def test_scopes_and_regex() -> None:
    node = parse_query('title:(x OR "y z") /a\\/b/')
    assert isinstance(node, And)
    scope, regex = node.children
    assert isinstance(scope, Scope) and scope.field == "title"
    assert isinstance(regex, Regex) and regex.pattern == "a/b"


@pytest.mark.parametrize("query", ["near/3", "and", "Or", "NEARBY", "Near"])
def test_other_spellings_of_operators_are_words(query: str) -> None:
    assert isinstance(parse_query(f"x {query}"), And)


def test_ignored_words() -> None:
    assert parse_query("a - & – b") == And((Term("a", "a", 1), Term("b", "b", 9)), 1)


def test_clock_is_a_phrase() -> None:
    node = parse_query("10:30")
    assert isinstance(node, Phrase)
    assert node.words[0].alternatives[0] == ("10", "30")


# (query, message, 1-based column or None)
ERRORS = [
    ("", "empty query", None),
    ("   ", "empty query", None),
    ("&", "the query has no word to look for", None),
    ("NOT a", "a query needs a word to look for, not only NOT", 1),
    ("-a", "a query needs a word to look for, not only NOT", 1),
    ("NOT (a OR b)", "a query needs a word to look for, not only NOT", 1),
    ("drones (Kursk OR NOT opinion)", "every OR branch needs a word to look for", 18),
    ("a OR -b", "every OR branch needs a word to look for", 6),
    ("NOT NOT a", "NOT NOT is not allowed", 1),
    ("x --a", "NOT NOT is not allowed", 3),
    ("()", "empty parentheses", 1),
    ("a ( )", "empty parentheses", 3),
    ("title:", "title: needs an operand", 1),
    ("title: x", "title: needs an operand", 1),
    ("(title:)", "title: needs an operand", 2),
    ("title:-x", "title: needs an operand", 1),
    ('"abc', "unbalanced quote", 1),
    ('a “abc"', "unbalanced quote", 3),
    ("a «abc", "unbalanced quote", 3),
    ("„abc”", "unbalanced quote", 1),
    ("(a", "unbalanced parenthesis", 1),
    ("a)", "unbalanced parenthesis", 2),
    ("(a OR b))", "unbalanced parenthesis", 9),
    ("a NEAR b NEAR c", "NEAR cannot be chained", 10),
    ("(a AND b) NEAR c", "NEAR operands must be words, phrases or (a OR b) groups of them", 11),
    ("(a b) NEAR c", "NEAR operands must be words, phrases or (a OR b) groups of them", 7),
    ("/x/ NEAR b", "NEAR operands must be words, phrases or (a OR b) groups of them", 5),
    ("title:x NEAR b", "NEAR operands must be words, phrases or (a OR b) groups of them", 9),
    ("a NEAR NOT b", "NEAR needs a word or phrase on both sides", 3),
    ("NEAR b", "unexpected 'NEAR'", 1),
    ("a NEAR", "NEAR needs a word or phrase on both sides", 3),
    ("a NEAR/ b", "NEAR/ needs a whole number of at least 1", 3),
    ("a NEAR/0 b", "NEAR/ needs a whole number of at least 1", 3),
    ("a NEAR/x b", "NEAR/ needs a whole number of at least 1", 3),
    ("Title:x", "unknown field 'Title'; did you mean 'title'?", 1),
    ("a titel:x", "unknown field 'titel'; did you mean 'title'?", 3),
    (
        "foo:bar",
        "unknown field 'foo'; fields are title, summary, content, article, author, link, tags,"
        " feed, text",
        1,
    ),
    (
        "10:30am",
        "unknown field '10'; fields are title, summary, content, article, author, link, tags,"
        " feed, text",
        1,
    ),
    ("fiber*-optic", "a * may only end a word", 6),
    ("dr*one", "a * may only end a word", 3),
    ("F-1*", "a wildcard prefix needs at least 2 characters", 4),
    ("a*", "a wildcard prefix needs at least 2 characters", 2),
    ("x *", "a * must follow a letter or digit", 3),
    ("x drone.*", "a * must follow a letter or digit", 9),
    ("x drone**", "a * may only end a word", 8),
    ("库尔斯克*", UNSPACED_PREFIX, 5),
    ("x クルスク*", UNSPACED_PREFIX, 7),
    ('"북한 쿠르스크*"', UNSPACED_PREFIX, 9),
    ("ทหาร*", UNSPACED_PREFIX, 5),
    ("F-16库*", UNSPACED_PREFIX, 6),
    ('"fiber d*x"', "a * may only end a word", 9),
    ("a OR", "OR needs a condition on its right", 3),
    ("OR a", "OR needs a condition on its left", 1),
    ("a OR OR b", "OR needs a condition on its right", 3),
    ("AND a", "AND needs a condition on both sides", 1),
    ("a AND", "AND needs a condition on both sides", 3),
    ("a NOT", "NOT needs a condition after it", 3),
    ("//", "empty regex", 1),
    ("a /b", "unterminated regex (no closing /)", 3),
    ("/a(/", "invalid regex: missing ): a(", 1),
    ("/(?=a)/", "invalid regex: invalid perl operator: (?=", 1),
    (r"/(a)\1/", "invalid regex: invalid escape sequence: \\1", 1),
]


@pytest.mark.parametrize(("query", "message", "column"), ERRORS)
def test_errors_carry_message_and_column(query: str, message: str, column: int | None) -> None:
    with pytest.raises(QueryError) as caught:
        parse_query(query)
    assert caught.value.message == message
    assert caught.value.column == column
    expected = f"{message} at column {column}" if column else message
    assert str(caught.value) == expected


def test_a_star_inside_a_phrase_word_is_an_error_but_ends_are_fine() -> None:
    node = parse_query('"fiber-optic drone* strike*"')
    assert isinstance(node, Phrase)
    assert [w.prefix for w in node.words] == [False, True, True]


def test_a_term_in_unspaced_scripts_is_a_phrase_of_characters_and_keeps_its_label() -> None:
    node = parse_query("库尔 斯克")
    assert isinstance(node, And)  # two bare words, as for any script
    leaf = parse_phrase("库尔 斯克")
    assert isinstance(leaf, Phrase) and leaf.label == "库尔斯克"
    assert [w.alternatives for w in leaf.words] == [(("库", "尔"),), (("斯", "克"),)]
    assert parse_phrase("北朝鮮 Kursk 쿠르스크").label == "北朝鮮 kursk 쿠르스크"  # type: ignore[union-attr]
    assert parse_phrase("ｸﾙｽｸ").label == "クルスク"  # type: ignore[union-attr]
    assert parse_query("库") == Term("库", "库", 1, "库")


def test_list_entries_are_literal_phrases() -> None:
    leaf = parse_phrase("Kursk OR (Belgorod)")
    assert isinstance(leaf, Phrase)
    assert [w.alternatives[0] for w in leaf.words] == [("kursk",), ("or",), ("belgorod",)]
    assert parse_phrase("& —") is None
    with pytest.raises(QueryError, match="a wildcard prefix needs at least 2 characters"):
        parse_phrase("x*")


# --- bounds: no query can exhaust a stack -----------------------------------------------------


def test_nesting_up_to_64_levels_parses_and_one_more_is_an_error_at_its_column() -> None:
    assert parse_query("(" * 64 + "kursk" + ")" * 64) == Term("kursk", "kursk", 65)
    with pytest.raises(QueryError) as caught:
        parse_query("(" * 170 + "kursk" + ")" * 170)
    assert caught.value.message == (
        "the query nests parentheses, NOT and field scopes more than 64 deep"
    )
    assert caught.value.column == 65


def test_thousands_of_nots_are_one_clear_error() -> None:
    with pytest.raises(QueryError) as caught:
        parse_query("kursk " + "NOT " * 3000 + "x")
    assert (caught.value.message, caught.value.column) == ("NOT NOT is not allowed", 7)
    with pytest.raises(QueryError, match="NOT NOT is not allowed at column 7"):
        parse_query("kursk " + "-" * 3000 + "x")


def test_nots_and_scopes_count_towards_the_depth() -> None:
    deep = "kursk"
    for n in range(40):
        deep = f"a{n} -(b{n} OR {deep})"
    with pytest.raises(QueryError, match="more than 64 deep"):
        parse_query(deep)
    scoped = "kursk"
    for n in range(70):
        scoped = f"title:(a{n} OR {scoped})"
    with pytest.raises(QueryError, match="more than 64 deep"):
        parse_query(scoped)


def test_at_most_256_terms_counted_as_written() -> None:
    words = [f"w{n}" for n in range(256)]
    assert isinstance(parse_query(" OR ".join(words)), Or)
    query = " OR ".join([*words, "one-too-many"])
    with pytest.raises(QueryError) as caught:
        parse_query(query)
    assert caught.value.message == "the query holds more than 256 words and phrases"
    assert caught.value.column == query.index("one-too-many") + 1


def test_kursk_and_a_hundred_exclusions_parse() -> None:
    node = parse_query("kursk" + " -x" * 100)
    assert isinstance(node, And) and len(node.children) == 101


LISTS = {"kursk": ["Kursk", "Курск"], "dprk": ["North Korean troops"]}


def test_a_term_list_is_an_or_group_of_its_entries() -> None:
    node = parse_query("$kursk", LISTS)
    assert isinstance(node, Or) and [c.label for c in node.children] == ["kursk", "курск"]  # type: ignore[union-attr]
    near = parse_query("$dprk NEAR/3 ($kursk OR Belgorod)", LISTS)
    assert isinstance(near, Near) and [x.label for x in near.right] == [
        "kursk",
        "курск",
        "belgorod",
    ]
    assert parse_entry(" $dprk ", LISTS) == parse_phrase("North Korean troops")
    assert parse_query("$5", LISTS) == Term("5", "5", 1)
    assert parse_query("$$kursk", LISTS) == Term("kursk", "kursk", 1)


@pytest.mark.parametrize(
    ("query", "message", "column"),
    [
        ("$Kursk", "unknown term list $Kursk; did you mean $kursk?", 1),
        ("troops $krusk", "unknown term list $krusk; did you mean $kursk?", 8),
        ("$belgorod", "unknown term list $belgorod; lists are $dprk, $kursk", 1),
        (
            "$kursk,",
            "invalid term list name $kursk,: a name is lower-case letters, digits, _ and -"
            " (write $$ for a literal $)",
            1,
        ),
        (
            '"$kursk troops"',
            "a term list ($kursk) stands alone as an entry or a query word, not inside a"
            " phrase; write $$ for a literal $",
            2,
        ),
    ],
)
def test_term_list_errors(query: str, message: str, column: int) -> None:
    with pytest.raises(QueryError) as caught:
        parse_query(query, LISTS)
    assert (caught.value.message, caught.value.column) == (message, column)
