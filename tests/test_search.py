"""Full-text search: the query translation, agreement with rule matching, and the command."""

from __future__ import annotations

import csv
import io
import json
import random
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.feedgen import Entry, rss
from tests.servers import FeedServer
from tests.storing import upsert_item
from watcher.archive.search import SearchQueryError, translate_query
from watcher.cli import cli
from watcher.rules.match import compile_rules, match_item
from watcher.store import Store
from watcher.store.feeds import add_feed, feed_by_name
from watcher.store.fts import MARK_END, MARK_START, SearchFilters, search_items
from watcher.store.fts_queue import catch_up
from watcher.text import tokenize
from watcher.types import MatchItem, ParsedItem, Rule

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

# --- translation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "fts"),
    [
        ("Kursk", '"kursk"'),
        ("drone*", '"drone"*'),
        ('"North Korean troops"', '"north" + "korean" + "troops"'),
        ("fiber-optic", '("fiber" + "optic" OR "fiberoptic")'),
        ("Korean NEAR/3 Kursk", 'NEAR("korean" "kursk", 2)'),
        ("a NEAR b", 'NEAR("a" "b", 9)'),
        ("a OR b", '("a" OR "b")'),
        ("a b", '("a" AND "b")'),
        ("a -b", '("a") NOT ("b")'),
        ("a -b -c", '("a") NOT ("b" OR "c")'),
        ("a NOT title:b", '("a") NOT ({title} : "b")'),
        ("title:(a OR b)", '({title} : "a" OR {title} : "b")'),
        ("summary:a content:b", '({summary_text} : "a" AND {content_text} : "b")'),
        ("text:a", '"a"'),
        ("Straße", '"strasse"'),
        ("Groß*", '"gross"*'),
        ('"Große Straße"', '"grosse" + "strasse"'),
        ("Österreich", '"osterreich"'),
        ("库尔斯克", '"库" + "尔" + "斯" + "克"'),
        ("article:kursk", '{article_text} : "kursk"'),
        ("x'; DROP TABLE items", '("x" AND "drop" AND "table" AND "items")'),
    ],
)
def test_queries_become_quoted_fts5_expressions(query: str, fts: str) -> None:
    assert translate_query(query).fts == fts


@pytest.mark.parametrize(
    ("query", "message", "column"),
    [
        ('Kursk "North', "unbalanced quote", 7),
        ("(a OR b", "unbalanced parenthesis", 1),
        ("a OR", "OR needs a condition on its right", 3),
        ("NOT a", "only NOT", 1),
        ("a /dro+ne/", "a /regex/ works in rules only", 3),
        ("troops stem:english", "stem: is a rule option, not part of a query", 8),
        ("a feed:kyiv", "search cannot look in feed:", 3),
        ("author:smith", "search cannot look in author:", 1),
        ("Title:x", "did you mean 'title'?", 1),
        ("a NEAR/0 b", "NEAR/ needs a whole number", 3),
        ("", "empty query", None),
        ("Robert'); DROP TABLE items; --", "unbalanced parenthesis", 8),
    ],
)
def test_query_errors_name_the_column(query: str, message: str, column: int | None) -> None:
    with pytest.raises(SearchQueryError) as caught:
        translate_query(query)
    assert message in str(caught.value)
    assert caught.value.column == column
    assert str(caught.value).startswith("query: ")
    if column:
        assert str(caught.value).endswith(f"at column {column}")


QUERY_PIECES = [
    "kursk", "drone*", '"north korean"', "fiber-optic", "(", ")", "AND", "OR", "NOT", "-",
    "NEAR", "NEAR/2", "title:", "content:", "summary:", '"', "x*y", "é", "10:30", "{", "}",
    "^", "+", ":", "'", "*", "NEAR/0", "feed:", "/re/", "«a»", "\\",
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.text(max_size=40),
        st.lists(st.sampled_from(QUERY_PIECES), min_size=1, max_size=8).map(" ".join),
    )
)
def test_any_text_is_a_clear_error_or_a_query_sqlite_accepts(text: str) -> None:
    try:
        query = translate_query(text)
    except SearchQueryError as error:
        assert str(error).startswith("query: ")
        return
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(title, summary_text, content_text)")
    db.execute("INSERT INTO t VALUES ('kursk drone', 'north korean', 'fiber optic')")
    db.execute("SELECT rowid FROM t WHERE t MATCH ?", [query.fts]).fetchall()  # no error


# --- search agrees with rule matching ------------------------------------------------------

WORDS = ["kursk", "drone", "drones", "korean", "north", "troops", "fiber", "optic", "kyiv"]
PLANTED = ["North Korean troops", "fiber-optic drones", "Korean troops in Kursk", "FiberOptic"]
JOINS = [" ", " ", " ", "-", ", ", ". ", " the "]


def _text(rng: random.Random, count: int) -> str:
    pieces = [rng.choice(PLANTED if rng.random() < 0.15 else WORDS) for _ in range(count)]
    out = pieces[0]
    for piece in pieces[1:]:
        out += rng.choice(JOINS) + piece
    return out


Corpus = tuple[Store, dict[int, MatchItem]]


@pytest.fixture(scope="module")
def corpus(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Store, dict[int, MatchItem]]]:
    store = Store(tmp_path_factory.mktemp("corpus") / "w.db")
    feed = add_feed(store, "https://example.org/f.xml", name="wire", now=NOW)
    rng = random.Random(4)
    items: dict[int, MatchItem] = {}
    for n in range(120):
        title, summary, content = _text(rng, 3), _text(rng, 6), _text(rng, 8)
        parsed = ParsedItem(guid=str(n), title=title, summary_text=summary, content_text=content)
        stored = upsert_item(store, feed.id, parsed, NOW)
        fields = {"title": (title,), "summary": (summary,), "content": (content,)}
        items[stored.id] = MatchItem(fields=fields, feed_name="wire")
    yield store, items
    store.close()


def _rule_ids(items: dict[int, MatchItem], query: str) -> set[int]:
    compiled = compile_rules([Rule(id="q", file="t.yaml", query=query)])
    return {i for i, item in items.items() if match_item(compiled, item)}


def _search_ids(store: Store, query: str) -> set[int]:
    catch_up(store)
    hits = search_items(store, translate_query(query).fts, SearchFilters(limit=1000))
    return {h.id for h in hits}


AGREEING_QUERIES = [
    "kursk",
    "drone*",
    "dro*",
    '"north korean troops"',
    '"korean troops" kursk',
    "fiber-optic",
    '"fiber-optic drone*"',
    "kursk OR kyiv",
    "kursk -drones",
    "title:kursk",
    "title:(kursk OR kyiv) content:drone*",
    "drones NOT title:drones",
    "korean NEAR/1 troops",
    "korean NEAR/3 kursk",
    "(kyiv OR kursk) NEAR/2 drone*",
    '"north korean" NEAR/4 (troops OR drones)',
]


@pytest.mark.parametrize("query", AGREEING_QUERIES)
def test_search_finds_exactly_what_a_rule_with_the_query_matches(
    corpus: Corpus, query: str
) -> None:
    store, items = corpus
    expected = _rule_ids(items, query)
    assert expected, "the corpus should hold matches for every query"
    assert _search_ids(store, query) == expected


SIMPLE = st.sampled_from(["kursk", "drone*", "korean", '"north korean"', "fiber-optic", "kyiv"])


def _combined(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, children).map(lambda p: f"({p[0]} OR {p[1]})"),
        st.tuples(children, children).map(lambda p: f"({p[0]} {p[1]})"),
        st.tuples(children, children).map(lambda p: f"({p[0]} -{p[1]})"),
        children.map(lambda c: f"title:({c})"),
        children.map(lambda c: f"content:({c})"),
    )


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.recursive(SIMPLE, _combined, max_leaves=5))
def test_random_boolean_queries_agree_with_rules(corpus: Corpus, query: str) -> None:
    store, items = corpus
    assert _search_ids(store, query) == _rule_ids(items, query)


# --- search = rules on any text --------------------------------------------------------------

# Letters and marks of many scripts, with the characters the normalisation treats specially.
MIXED = (
    "abcdeßøłéüÅǅﬁ½²İı"  # Latin, accents, ß, ligatures, fractions, dotted/dotless i
    "курскїйёКУРСЬК"  # Cyrillic
    "σςΣάΩ"  # Greek
    "库尔斯克北韩軍队乌克兰的々〇"  # Han
    "クルスクのｸﾙｽｸー"  # Katakana (half-width too), Hiragana, the prolonged sound mark
    "쿠르스크에서북한군"  # Hangul
    "กรุงเทพฯ"  # Thai
    "0123٣"  # digits
    "   -‐'’ʼ,./:\u00ad\u200b"  # separators, hyphens, apostrophes, soft hyphen, zero width
)


@pytest.fixture(scope="module")
def mixed_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    with Store(tmp_path_factory.mktemp("mixed") / "w.db") as store:
        add_feed(store, "https://example.org/m.xml", name="mixed", now=NOW)
        yield store


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    texts=st.lists(st.text(st.sampled_from(MIXED), max_size=40), min_size=1, max_size=4),
    pick=st.tuples(st.integers(0, 3), st.integers(0, 40), st.integers(1, 8)),
)
def test_a_word_is_found_exactly_where_a_one_word_rule_matches(
    mixed_store: Store, texts: list[str], pick: tuple[int, int, int]
) -> None:
    """Any cut of a stored text (or of none) is found by search on exactly the items a
    rule with that one word matches; deleted items leave the index."""
    store = mixed_store
    feed = feed_by_name(store, "mixed")
    assert feed is not None
    which, start, length = pick
    source = texts[which % len(texts)]
    word = source[start : start + length]
    assume_word = "".join(c for c in word if c not in "-:/*'’ʼ")
    if not tokenize(assume_word):
        return
    query = f'"{assume_word}"'
    items: dict[int, MatchItem] = {}
    for n, text in enumerate(texts):
        half = len(text) // 2
        parsed = ParsedItem(guid=f"h{n}", title=text[:half], summary_text=text[half:])
        stored = upsert_item(store, feed.id, parsed, NOW)
        items[stored.id] = MatchItem(
            fields={"title": (text[:half],), "summary": (text[half:],)}, feed_name="mixed"
        )
    try:
        assert _search_ids(store, query) == _rule_ids(items, query), query
    finally:
        store.db.execute("DELETE FROM items")
        catch_up(store)
        assert store.scalar("SELECT count(*) FROM items_fts") == 0


# --- ranking and filters -------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "w.db") as opened:
        yield opened


def _add(store: Store, feed: str, guid: str, title: str, body: str = "", days_ago: int = 0) -> int:
    found = feed_by_name(store, feed)
    feed_id = found.id if found else add_feed(store, f"https://{feed}.org/f", name=feed, now=NOW).id
    published = NOW - timedelta(days=days_ago)
    item = ParsedItem(guid=guid, title=title, summary_text=body, published_at=published)
    return upsert_item(store, feed_id, item, NOW).id


def _ids(store: Store, query: str, **filters: object) -> list[int]:
    catch_up(store)
    hits = search_items(store, translate_query(query).fts, SearchFilters(**filters))  # type: ignore[arg-type]
    return [h.id for h in hits]


def test_a_title_hit_ranks_above_a_body_hit_and_ties_go_to_the_newest(store: Store) -> None:
    body_old = _add(store, "a", "1", "Weather report", "snow in kursk today", days_ago=3)
    title_hit = _add(store, "a", "2", "Kursk offensive", "troops advance", days_ago=5)
    body_new = _add(store, "a", "3", "Weather report", "snow in kursk today", days_ago=1)
    _add(store, "a", "4", "Unrelated", "markets")
    assert _ids(store, "kursk") == [title_hit, body_new, body_old]
    assert _ids(store, "kursk", sort="relevance") == [title_hit, body_new, body_old]
    assert _ids(store, "kursk", sort="date") == [body_new, body_old, title_hit]


def test_filters_since_feed_rule_and_limit(store: Store) -> None:
    old = _add(store, "wire", "1", "Kursk old", days_ago=10)
    new = _add(store, "wire", "2", "Kursk new", days_ago=1)
    other = _add(store, "other", "3", "Kursk other", days_ago=1)
    store.db.execute(
        "INSERT INTO matches (item_id, rule_id, terms, matched_at) VALUES (?, 'r', '[]', ?)",
        [old, "2026-03-01T00:00:00Z"],
    )
    assert set(_ids(store, "kursk")) == {old, new, other}
    assert set(_ids(store, "kursk", since=NOW - timedelta(days=7))) == {new, other}
    assert set(_ids(store, "kursk", feeds=("wire",))) == {old, new}
    assert _ids(store, "kursk", rule_id="r") == [old]
    assert len(_ids(store, "kursk", limit=2)) == 2


def test_hits_carry_highlighted_title_snippet_and_rules(store: Store) -> None:
    item_id = _add(
        store, "wire", "1", "North Korean troops in Kursk", "Reports of troops near Kursk"
    )
    store.db.execute(
        "INSERT INTO matches (item_id, rule_id, terms, matched_at) VALUES (?, 'nk', '[]', ?)",
        [item_id, "2026-03-01T00:00:00Z"],
    )
    catch_up(store)
    (hit,) = search_items(store, translate_query("kursk").fts, SearchFilters())
    assert hit.title == f"North Korean troops in {MARK_START}Kursk{MARK_END}"
    assert f"{MARK_START}Kursk{MARK_END}" in hit.snippet
    assert hit.rules == ("nk",) and hit.feed == "wire"


def test_article_text_is_searched_and_its_snippet_shown(store: Store) -> None:
    item_id = _add(store, "wire", "1", "Front report", "A short teaser")
    store.db.execute(
        "UPDATE items SET article_text = ? WHERE id = ?",
        ["The fourth paragraph says North Korean troops were seen near Курськ.", item_id],
    )
    assert _ids(store, "article:курськ") == _ids(store, "КУРСЬК") == [item_id]
    assert _ids(store, "title:курськ") == []
    (hit,) = search_items(store, translate_query("курськ").fts, SearchFilters())
    assert f"{MARK_START}Курськ{MARK_END}" in hit.snippet


# --- the command ---------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, feed_server: FeedServer) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(
        "- id: nk-troops-kursk\n  any: ['North Korean troops']\n  all: [Kursk]\n"
    )
    now = datetime.now(UTC)
    month_ago = now - timedelta(days=30)
    feed_server.set(
        "/f.xml",
        rss(
            [
                Entry("1", "North Korean troops reach Kursk", "Fights near Kursk", published=now),
                Entry("2", "Kursk weather", "Snow expected in the region", published=now),
                Entry("3", "Old Kursk story", "From last month", published=month_ago),
                Entry("4", "Markets rally", "Nothing about the war", published=now),
            ]
        ),
    )
    (tmp_path / "watcher.yaml").write_text(
        f"database: w.db\nrules: rules/\nfeeds:\n  - url: {feed_server.url('/f.xml')}\n"
        "    name: wire\n    first_poll_alerts: none\n"
        "channels:\n  files: {type: eml, dir: outbox}\n"
    )
    assert _run(tmp_path, "poll", "--all")[0] == 0
    return tmp_path


def _run(project: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--config", str(project / "watcher.yaml"), *args])
    return result.exit_code, result.stdout, result.stderr


def test_search_command_prints_a_table_with_marked_snippets(project: Path) -> None:
    code, out, _ = _run(project, "search", "kursk", "--since", "7d")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["published", "feed", "title"]
    assert "wire  North Korean troops reach **Kursk**" in out
    assert "matched: nk-troops-kursk" in out
    assert "Old Kursk story" not in out and "Markets" not in out
    assert out.rstrip().endswith("2 items")


def test_search_command_json_and_csv(project: Path) -> None:
    code, out, _ = _run(project, "search", "kursk", "--rule", "nk-troops-kursk", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["index_lag"] == 0
    (hit,) = data["items"]
    assert hit["title"] == "North Korean troops reach Kursk"
    assert hit["title_marked"] == "North Korean troops reach **Kursk**"
    assert hit["rules"] == ["nk-troops-kursk"] and hit["feed"] == "wire"
    assert "**Kursk**" in hit["snippet"] and hit["published_at"].endswith("Z")
    code, out, _ = _run(project, "search", "kursk", "--csv", "--limit", "2")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 2
    assert rows[0]["title"] == "North Korean troops reach Kursk" and rows[0]["feed"] == "wire"


def test_search_command_sorts_by_relevance_or_date_and_json_keeps_the_score(
    project: Path,
) -> None:
    code, out, _ = _run(project, "search", "kursk", "--json")
    by_relevance = json.loads(out)["items"]
    scores = [h["score"] for h in by_relevance]
    assert code == 0 and scores == sorted(scores) and all(s < 0 for s in scores)
    assert by_relevance[0]["title"] == "North Korean troops reach Kursk"  # two hits
    code, out, _ = _run(project, "search", "kursk", "--sort", "date", "--json")
    by_date = json.loads(out)["items"]
    assert code == 0 and by_date[-1]["title"] == "Old Kursk story"
    dates = [h["published_at"] for h in by_date]
    assert dates == sorted(dates, reverse=True) and "score" in by_date[0]
    code, out, _ = _run(project, "search", "kursk", "--sort", "date")
    assert code == 0 and out.splitlines()[-3].strip().startswith("From last month")
    code, _, err = _run(project, "search", "kursk", "--sort", "newest")
    assert code == 2 and "'relevance', 'date'" in err


def test_search_command_errors_are_one_line(project: Path) -> None:
    code, out, err = _run(project, "search", 'Kursk "North')
    assert code == 1 and out == ""
    assert err == "error: query: unbalanced quote at column 7\n"
    code, _, err = _run(project, "search", "kursk", "--feed", "nope")
    assert code == 1 and err == "error: no feed named 'nope'\n"
    code, _, err = _run(project, "search", "kursk", "--since", "soon")
    assert code == 2 and "Invalid value for --since: invalid duration" in err
    code, out, _ = _run(project, "search", "zebra")
    assert code == 0 and "no items found" in out


def test_words_are_found_as_rules_read_them(tmp_path: Path) -> None:
    with Store(tmp_path / "w.db") as store:
        feed = add_feed(store, "https://example.org/f.xml", name="wire", now=NOW)
        titles = ["Sperre der Straße nach Kursk", "Großbritannien schickt Drohnen", "Österreich"]
        ids = [
            upsert_item(store, feed.id, ParsedItem(guid=str(n), title=title), NOW).id
            for n, title in enumerate(titles)
        ]

        def found(query: str) -> list[int]:
            catch_up(store)
            hits = search_items(store, translate_query(query).fts, SearchFilters())
            return sorted(h.id for h in hits)

        assert found("Straße") == [ids[0]]
        assert found('"der Straße"') == [ids[0]]
        assert found("Groß*") == [ids[1]]
        assert found("österreich") == found("Osterreich") == [ids[2]]
        assert found("Strasse") == found("STRASSE") == [ids[0]]  # as a rule on Strasse


# --- bounds --------------------------------------------------------------------------------


def test_a_word_followed_by_a_hundred_exclusions_runs(tmp_path: Path) -> None:
    with Store(tmp_path / "w.db") as store:
        feed = add_feed(store, "https://example.org/f.xml", name="wire", now=NOW)
        for n, title in enumerate(["Kursk front", "Kursk x report", "Belgorod"]):
            upsert_item(store, feed.id, ParsedItem(guid=f"g{n}", title=title), NOW)
        query = translate_query("kursk" + " -x" * 100)
        catch_up(store)
        hits = search_items(store, query.fts, SearchFilters())
    assert [h.title for h in hits] == [f"{MARK_START}Kursk{MARK_END} front"]


def _nested(depth: int, shape: int) -> str:
    query = "kursk"
    for n in range(depth):
        query = [
            f"(a{n} OR {query})",
            f"(b{n} {query})",
            f"title:(c{n} OR {query})",
            f"(d{n} -({query} OR e{n}))",
        ][(shape + n) % 4]
    return query


@pytest.mark.parametrize("shape", range(4))
@pytest.mark.parametrize("depth", [8, 16, 24, 32, 48, 64, 170])
def test_deep_queries_are_a_clear_error_or_a_query_sqlite_accepts(depth: int, shape: int) -> None:
    text = _nested(depth, shape)
    try:
        query = translate_query(text)
    except SearchQueryError as error:
        assert "deep" in str(error) and error.column is not None
        return
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(title, summary_text, content_text)")
    db.execute("INSERT INTO t VALUES ('kursk drone', 'north korean', 'fiber optic')")
    db.execute("SELECT rowid FROM t WHERE t MATCH ?", [query.fts]).fetchall()  # no error


def test_search_command_on_a_deep_query_is_one_line(project: Path) -> None:
    code, out, err = _run(project, "search", "(" * 170 + "kursk" + ")" * 170)
    assert code == 1 and out == ""
    assert err == (
        "error: query: the query nests parentheses, NOT and field scopes more than 64 deep"
        " at column 65\n"
    )
    code, out, err = _run(project, "search", _nested(30, 0))
    assert code == 1 and out == ""
    assert err.startswith("error: query: the query nests too deeply for the search index")
    assert err.count("\n") == 1


def test_search_reads_term_lists_from_the_rule_files(project: Path) -> None:
    (project / "rules" / "terms.yaml").write_text("- terms: {place: [Belgorod, Kursk]}\n")
    code, out, _ = _run(project, "search", "$place NOT weather", "--since", "7d", "--json")
    assert code == 0
    assert [hit["title"] for hit in json.loads(out)["items"]] == ["North Korean troops reach Kursk"]
    code, _, err = _run(project, "search", "$plcae")
    assert code == 1 and "unknown term list $plcae; did you mean $place?" in err
