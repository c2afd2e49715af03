"""Rule files: what loads into which Rule, and every validation problem with file and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from watcher.exceptions import ConfigError
from watcher.rules.load import (
    QueryProblem,
    load_rule_set,
    load_rules,
    unused_list_problems,
)
from watcher.rules.query import UNSPACED_PREFIX, QueryError, parse_query
from watcher.types import RateLimit, Threshold


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str, channels: list[str] | None = None) -> list[str]:
    path = write(tmp_path, "kursk.yaml", text)
    with pytest.raises(ConfigError) as caught:
        load_rules([path], channels=channels)
    return [str(p).replace(str(path), "kursk.yaml") for p in caught.value.problems]


def test_loads_every_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rules.yaml",
        """\
        - id: nk-troops-kursk
          description: North Korean forces
          any: ["North Korean troops", DPRK troops]
          all: [Kursk]
          none: ["video game"]
          severity: high
          notify: [analysts]
        - id: fiber-optic-drones
          query: '("fiber-optic drone*" OR fiber NEAR/3 drone*) AND NOT title:review'
          fields: [title, summary]
          feeds: [tag:ukraine, kyiv]
          digest: 1h
          max_alerts: {count: 10, per: 1h}
          stem: english
          enabled: false
        - id: kursk-surge
          query: Kursk
          threshold: {count: 5, within: 2h, distinct: feed}
        """,
    )
    first, second, third = load_rules([path], channels=["analysts"])
    assert first.id == "nk-troops-kursk" and first.line == 1
    assert first.any == ("North Korean troops", "DPRK troops")
    assert first.all == ("Kursk",) and first.none == ("video game",)
    assert first.severity == "high" and first.notify == ("analysts",)
    assert first.fields == ("title", "summary", "content", "article") and first.enabled
    assert second.fields == ("title", "summary") and second.feeds == ("tag:ukraine", "kyiv")
    assert second.digest_s == 3600 and second.max_alerts == RateLimit(10, 3600)
    assert second.stem == "english" and not second.enabled and second.line == 8
    assert third.threshold == Threshold(5, 7200, "feed")
    assert third.severity == "medium" and third.notify is None


def test_one_rule_mapping_per_file(tmp_path: Path) -> None:
    path = write(tmp_path, "one.yaml", "id: solo\nany: [Kursk]\nstem: false\n")
    (rule,) = load_rules([path])
    assert rule.id == "solo" and rule.stem is None and rule.file.endswith("one.yaml")


def test_empty_lists_count_as_absent(tmp_path: Path) -> None:
    found = problems(tmp_path, "- id: x\n  any: []\n  all: []\n  none: [a]\n")
    assert found == [
        "kursk.yaml:1: rule x: a rule needs any:, all: or query: (something to look for)"
    ]


LANGUAGES = (
    "arabic, armenian, basque, catalan, czech, danish, dutch, english, esperanto, estonian, "
    "finnish, french, german, greek, hindi, hungarian, indonesian, irish, italian, lithuanian, "
    "nepali, norwegian, persian, polish, portuguese, romanian, russian, serbian, sesotho, "
    "spanish, swedish, tamil, turkish, yiddish"
)
SEVERITY = "severity: must be one of info, low, medium, high, critical, not"


@pytest.mark.parametrize(
    ("body", "line", "expected"),
    [
        ("  qeury: x\n  any: [a]", 3, "unknown key 'qeury'; did you mean 'query'?"),
        ("  query: '\"North Korean'", 3, "query: unbalanced quote at column 1"),
        (
            "  query: 'drones (Kursk OR NOT x)'",
            3,
            "query: every OR branch needs a word to look for at column 18",
        ),
        ("  query: 'a /(a/'", 3, "query: invalid regex: missing ): (a at column 3"),
        ("  query: 42", 3, "query: must be a query string"),
        ("  any: ['fiber*-optic']", 3, "any: [0]: a * may only end a word at column 6"),
        ("  all: [ok, '&']", 3, "all: [1]: '&' has no word to look for"),
        ("  none: x\n  any: [a]", 3, "none: must be a list of phrases"),
        ("  any: [a]\n  severity: urgent", 4, f"{SEVERITY} 'urgent'"),
        (
            "  any: [a]\n  fields: [title, body]",
            4,
            "fields: unknown field 'body'; fields: title, summary, content, article, author, link, "
            "tags, feed",
        ),
        (
            "  any: [a]\n  fields: [Titel]",
            4,
            "fields: unknown field 'Titel'; did you mean 'title'?",
        ),
        ("  any: [a]\n  fields: []", 4, "fields: needs at least one field"),
        (
            "  any: [a]\n  notify: [analyst]",
            4,
            "notify: unknown channel 'analyst'; did you mean 'analysts'?",
        ),
        ("  any: [a]\n  enabled: maybe", 4, "enabled: must be true or false, not 'maybe'"),
        (
            "  any: [a]\n  digest: 2x",
            4,
            "digest: invalid duration '2x': use a number with s, m, h or d (30s, 15m, 2h, 1d)",
        ),
        (
            "  any: [a]\n  max_alerts: {count: 0, per: 1h}",
            4,
            "max_alerts: count must be a whole number of at least 1, not 0",
        ),
        ("  any: [a]\n  max_alerts: {count: 3}", 4, "max_alerts: missing per"),
        (
            "  any: [a]\n  threshold: {count: 3, within: 1h, distinct: author}",
            4,
            "threshold: distinct must be feed or item, not 'author'",
        ),
        (
            "  any: [a]\n  threshold: {count: 3, withn: 1h}",
            4,
            "threshold: unknown key 'withn'; did you mean 'within'?",
        ),
        (
            "  any: [a]\n  stem: porter",
            4,
            f"stem: unknown language 'porter'; languages are {LANGUAGES}",
        ),
        ("  any: [a]\n  stem: true", 4, f"stem: unknown language True; languages are {LANGUAGES}"),
    ],
)
def test_each_problem(tmp_path: Path, body: str, line: int, expected: str) -> None:
    text = "# rules\n- id: nk\n" + body + "\n"
    found = problems(tmp_path, text, channels=["analysts", "ops"])
    assert found == [f"kursk.yaml:{line}: rule nk: {expected}"]


def test_every_problem_is_collected(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        - id: a
          query: 'NOT x'
          severity: loud
        - any: [x]
        - id: c
        - [not, a, mapping]
        """,
    )
    assert found == [
        "kursk.yaml:2: rule a: query: a query needs a word to look for, not only NOT at column 1",
        f"kursk.yaml:3: rule a: {SEVERITY} 'loud'",
        "kursk.yaml:4: rule #2: id: every rule needs an id (a non-empty string)",
        "kursk.yaml:5: rule c: a rule needs any:, all: or query: (something to look for)",
        "kursk.yaml:6: rule: a rule must be a mapping of keys (id, any, query, ...)",
    ]


def test_query_problems_carry_text_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "q.yaml", "- id: q\n  query: 'drones AND (Kursk'\n")
    with pytest.raises(ConfigError) as caught:
        load_rules([path])
    (problem,) = caught.value.problems
    assert isinstance(problem, QueryProblem)
    assert (problem.text, problem.column, problem.line) == ("drones AND (Kursk", 12, 2)


def test_duplicate_ids_name_both_files(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", "- id: same\n  any: [x]\n")
    second = write(tmp_path, "b.yaml", "- id: other\n  any: [y]\n- id: same\n  any: [z]\n")
    with pytest.raises(ConfigError) as caught:
        load_rules([first, second])
    (problem,) = caught.value.problems
    assert problem.file.endswith("b.yaml") and problem.line == 3
    assert f"{first}:1" in problem.message or "a.yaml:1" in problem.message


@pytest.mark.parametrize("broken", ["first", "second"])
def test_duplicate_ids_are_reported_when_either_copy_is_invalid(
    tmp_path: Path, broken: str
) -> None:
    bad = "  any: [x]\n  severity: urgent\n"  # an invalid severity
    good = "  any: [y]\n"
    first = write(tmp_path, "a.yaml", "- id: same\n" + (bad if broken == "first" else good))
    second = write(tmp_path, "b.yaml", "- id: same\n" + (bad if broken == "second" else good))
    with pytest.raises(ConfigError) as caught:
        load_rules([first, second])
    messages = [(Path(p.file).name, p.line, p.message) for p in caught.value.problems]
    duplicates = [m for m in messages if m[2].startswith("duplicate rule id 'same'")]
    assert len(duplicates) == 1 and duplicates[0][:2] == ("b.yaml", 1)
    assert "a.yaml:1" in duplicates[0][2]
    assert any(m[2].startswith("severity:") for m in messages)


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    broken = write(tmp_path, "broken.yaml", "- id: x\n  any: [a\n")
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError) as caught:
        load_rules([broken, missing])
    first, second = caught.value.problems
    assert first.message.startswith("invalid YAML") and first.line is not None
    assert second.message.startswith("cannot read rule file")


def test_not_a_rule_list(tmp_path: Path) -> None:
    assert problems(tmp_path, "just text\n") == [
        "kursk.yaml:1: a rule file holds a list of rules or one rule"
    ]


def test_channels_unchecked_without_a_list(tmp_path: Path) -> None:
    path = write(tmp_path, "n.yaml", "- id: n\n  any: [x]\n  notify: [anything]\n")
    assert load_rules([path])[0].notify == ("anything",)


def test_the_example_rule_files_load() -> None:
    folder = Path(__file__).parent.parent / "rules"
    paths = sorted(folder.glob("*.yaml"))
    if not paths:
        pytest.skip("no example rules")
    assert load_rules(paths)


def test_an_invalid_query_names_its_column() -> None:
    parse_query("Kursk NEAR/3 drone*")
    with pytest.raises(QueryError) as caught:
        parse_query("Kursk NEAR/0 drone*")
    assert caught.value.column == 7


# --- term lists ----------------------------------------------------------------------------


def test_term_lists_are_shared_by_every_file_and_each_rule_carries_those_it_uses(
    tmp_path: Path,
) -> None:
    rules = write(
        tmp_path,
        "a.yaml",
        """\
        - id: nk
          all: [$kursk, troops]
          query: '$dprk NEAR/5 $kursk'
        - id: plain
          any: [$$kursk, "$5 billion"]
        """,
    )
    terms = write(
        tmp_path,
        "b.yaml",
        """\
        - terms:
            kursk: [Kursk, Курск, "Kursk region"]
            dprk: [DPRK, 북한군]
        - terms: {spare: [x]}
        """,
    )
    rule_set = load_rule_set([rules, terms])
    nk, plain = rule_set.rules
    assert nk.term_lists == (
        ("dprk", ("DPRK", "북한군")),
        ("kursk", ("Kursk", "Курск", "Kursk region")),
    )
    assert plain.term_lists == () and plain.any == ("$$kursk", "$5 billion")
    assert sorted(rule_set.term_lists) == ["dprk", "kursk", "spare"]
    assert rule_set.term_lists["spare"].line == 4
    assert [str(p) for p in unused_list_problems(rule_set)] == [
        f"{terms}:4: terms: term list $spare is not used by any rule"
    ]
    assert load_rules([terms]) == []  # a file of lists only


def test_a_file_may_be_one_terms_mapping(tmp_path: Path) -> None:
    terms = write(tmp_path, "terms.yaml", "terms: {kursk: [Kursk, Курск]}\n")
    rules = write(tmp_path, "r.yaml", "- {id: r, any: [$kursk]}\n")
    (rule,) = load_rules([terms, rules])
    assert rule.term_lists == (("kursk", ("Kursk", "Курск")),)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "- terms: {kursk: [Kursk]}\n- terms: {kursk: [Курск]}\n",
            ["kursk.yaml:2: terms: term list $kursk is defined twice (first in kursk.yaml:1)"],
        ),
        (
            "- terms: {Kursk: [x]}\n",
            [
                "kursk.yaml:1: terms: list name 'Kursk' must start with a lower-case ASCII"
                " letter and hold only lower-case letters, digits, _ and -"
            ],
        ),
        (
            "- terms: {kursk: []}\n",
            ["kursk.yaml:1: terms: kursk: must be a non-empty list of terms and phrases"],
        ),
        (
            "- terms: [kursk]\n",
            ["kursk.yaml:1: terms: must map list names to lists of terms: {kursk: [Kursk, Курск]}"],
        ),
        (
            "- terms: {a: [x], b: [$a]}\n",
            ["kursk.yaml:1: terms: b[0]: a term list cannot hold another list ($a)"],
        ),
        (
            "- terms: {a: [库*]}\n",
            ["kursk.yaml:1: terms: a[0]: " + UNSPACED_PREFIX + " at column 2"],
        ),
        ("- terms: {a: ['&']}\n", ["kursk.yaml:1: terms: a[0]: '&' has no word to look for"]),
        (
            "- terms: {a: [x]}\n  id: r\n",
            [
                "kursk.yaml:2: a terms: entry holds only terms:, not 'id' (rules are entries of"
                " their own)"
            ],
        ),
        (
            "- terms: {kursk: [x]}\n- {id: r, all: [$Kursk]}\n",
            [
                "kursk.yaml:2: rule r: all: [0]: unknown term list $Kursk; did you mean $kursk?"
                " at column 1"
            ],
        ),
        (
            "- terms: {kursk: [x]}\n- {id: r, query: 'drones $krusk'}\n",
            [
                "kursk.yaml:2: rule r: query: unknown term list $krusk; did you mean $kursk? at"
                " column 8"
            ],
        ),
        (
            "- {id: r, any: [$kursk]}\n",
            [
                "kursk.yaml:1: rule r: any: [0]: unknown term list $kursk: no terms: lists"
                " are defined (write $$ for a literal $) at column 1"
            ],
        ),
        (
            "- terms: {kursk: [x]}\n- {id: r, any: ['$kursk region']}\n",
            [
                "kursk.yaml:2: rule r: any: [0]: a term list ($kursk) stands alone as an entry"
                " or a query word, not inside a phrase; write $$ for a literal $ at column 1"
            ],
        ),
    ],
)
def test_term_list_problems(tmp_path: Path, text: str, expected: list[str]) -> None:
    assert problems(tmp_path, text) == expected


def test_languages_are_language_ranges_kept_lower_case(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "- {id: r, any: [x], languages: [KO, zh-CN, '*']}\n")
    (rule,) = load_rules([path])
    assert rule.languages == ("ko", "zh-cn", "*")
    assert problems(tmp_path, "- {id: r, any: [x], languages: [en_US]}\n") == [
        "kursk.yaml:1: rule r: languages: [0]: 'en_US' is not a language tag (like en, zh, pt-br)"
    ]
