"""Checks the demo data (sample feeds, example rules, demo config, systemd unit) with the stdlib.

It does not run watcher itself: a small reference reading of SPEC §4 matching checks that
tests/data/demo_expected.json agrees with the sample feeds and rule files.
"""

from __future__ import annotations

import configparser
import json
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXPECTED: dict[str, Any] = json.loads(
    (ROOT / "tests" / "data" / "demo_expected.json").read_text(encoding="utf-8")
)
ATOM = "{http://www.w3.org/2005/Atom}"
CONTENT_ENCODED = "{http://purl.org/rss/1.0/modules/content/}encoded"
EXAMPLE_HOSTS = re.compile(r"^https://[a-z0-9.-]+\.example\.(org|net|com)/")


# --- reading the sample feeds ------------------------------------------------------------


@dataclass(frozen=True)
class DemoItem:
    feed: str
    id: str
    title: str
    link: str
    published: datetime
    tags: tuple[str, ...]
    summary_html: str
    content_html: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.feed, self.title)


def read_rss(feed: str, path: Path) -> list[DemoItem]:
    channel = ET.parse(path).getroot().find("channel")
    assert channel is not None
    return [
        DemoItem(
            feed=feed,
            id=item.findtext("guid", ""),
            title=item.findtext("title", ""),
            link=item.findtext("link", ""),
            published=parsedate_to_datetime(item.findtext("pubDate", "")),
            tags=tuple(c.text or "" for c in item.findall("category")),
            summary_html=item.findtext("description", ""),
            content_html=item.findtext(CONTENT_ENCODED, ""),
        )
        for item in channel.findall("item")
    ]


def atom_content(entry: ET.Element) -> str:
    content = entry.find(f"{ATOM}content")
    if content is None:
        return ""
    if content.get("type") == "xhtml":
        return " ".join(content.itertext())
    return content.text or ""


def read_atom(feed: str, path: Path) -> list[DemoItem]:
    root = ET.parse(path).getroot()
    items = []
    for entry in root.findall(f"{ATOM}entry"):
        link = entry.find(f"{ATOM}link[@rel='alternate']")
        items.append(
            DemoItem(
                feed=feed,
                id=entry.findtext(f"{ATOM}id", ""),
                title=entry.findtext(f"{ATOM}title", ""),
                link="" if link is None else link.get("href", ""),
                published=datetime.fromisoformat(entry.findtext(f"{ATOM}published", "")),
                tags=tuple(c.get("term", "") for c in entry.findall(f"{ATOM}category")),
                summary_html=entry.findtext(f"{ATOM}summary", ""),
                content_html=atom_content(entry),
            )
        )
    return items


def read_json_feed(feed: str, path: Path) -> list[DemoItem]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [
        DemoItem(
            feed=feed,
            id=item["id"],
            title=item.get("title", ""),
            link=item.get("url", ""),
            published=datetime.fromisoformat(item["date_published"]),
            tags=tuple(item.get("tags", ())),
            summary_html=html_escape(item.get("summary", "")),
            content_html=item.get("content_html") or html_escape(item.get("content_text", "")),
        )
        for item in data["items"]
    ]


def html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;")


READERS = {"rss20": read_rss, "atom10": read_atom, "json11": read_json_feed}


def read_feed(name: str) -> list[DemoItem]:
    spec = EXPECTED["feeds"][name]
    return READERS[spec["format"]](name, ROOT / spec["file"])


def all_items() -> list[DemoItem]:
    return [item for name in EXPECTED["feeds"] for item in read_feed(name)]


def load_entries() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for path in sorted((ROOT / "rules").glob("*.yaml")):
        entries.extend(yaml.safe_load(path.read_text(encoding="utf-8")))
    return entries


def load_lists() -> dict[str, list[str]]:
    """The ``- terms:`` lists of every rule file."""
    lists: dict[str, list[str]] = {}
    for entry in load_entries():
        lists.update(entry.get("terms", {}))
    return lists


def load_rules() -> list[dict[str, Any]]:
    """The rules as written (``$NAME`` entries included)."""
    return [entry for entry in load_entries() if "terms" not in entry]


def alternatives(entry: str) -> list[str]:
    """An any/all/none entry as phrases one of which must match: ``$NAME`` is its list."""
    return load_lists()[entry[1:]] if entry.startswith("$") else [entry]


# --- a reference reading of SPEC §4 matching (any/all/none only) -------------------------

DELETED = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"))
JOINERS = re.compile("[-\u2010\u2011\ufe63\uff0d/]")
BLOCK_TAGS = {"p", "div", "br", "li", "h1", "h2", "h3", "blockquote"}


class TextExtractor(HTMLParser):
    """HTML -> plain text, dropping script and style contents."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self.skipping += 1
        elif tag in BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self.skipping -= 1
        elif tag in BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = TextExtractor()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts)


def strip_latin_accents(text: str) -> str:
    kept: list[str] = []
    for ch in unicodedata.normalize("NFD", text):
        base_is_latin = bool(kept) and "LATIN" in unicodedata.name(kept[-1], "")
        if unicodedata.combining(ch) and base_is_latin:
            continue
        kept.append(ch)
    return unicodedata.normalize("NFC", "".join(kept))


def normalise(text: str) -> str:
    return strip_latin_accents(unicodedata.normalize("NFKC", text.translate(DELETED)).casefold())


# Scripts written without spaces, as far as the demo uses them: each character a token.
UNSPACED_NAMES = ("CJK UNIFIED IDEOGRAPH", "HANGUL SYLLABLE", "HIRAGANA", "KATAKANA")


def tokens(text: str) -> list[str]:
    found: list[str] = []
    current: list[str] = []
    for ch in normalise(text):
        category = unicodedata.category(ch)
        if unicodedata.name(ch, "").startswith(UNSPACED_NAMES):
            found.extend(["".join(current), ch] if current else [ch])
            current = []
        elif category[0] in "LM" or category == "Nd":
            current.append(ch)
        elif current:
            found.append("".join(current))
            current = []
    if current:
        found.append("".join(current))
    return found


Form = list[tuple[str, bool]]  # consecutive (token, is_prefix) pairs
Pattern = list[list[Form]]  # per written word: its alternative forms


def word_alternatives(word: str) -> list[Form]:
    prefix = word.endswith("*")
    parts = tokens(word.rstrip("*"))
    forms = [parts]
    if len(parts) > 1 and JOINERS.search(unicodedata.normalize("NFKC", word)):
        forms.append(["".join(parts)])
    return [[(tok, prefix and i == len(form) - 1) for i, tok in enumerate(form)] for form in forms]


def compile_phrase(phrase: str) -> Pattern:
    return [alts for word in phrase.split() if (alts := word_alternatives(word)) != [[]]]


def ends_of(pattern: Pattern, text: list[str], start: int) -> Iterator[int]:
    """Yield every position where ``pattern`` ends when it starts at ``start``."""
    if not pattern:
        yield start
        return
    for form in pattern[0]:
        pos = start
        for tok, prefix in form:
            if pos >= len(text) or not (text[pos].startswith(tok) if prefix else text[pos] == tok):
                break
            pos += 1
        else:
            yield from ends_of(pattern[1:], text, pos)


def phrase_in(phrase: str, values: list[str]) -> bool:
    pattern = compile_phrase(phrase)
    for value in values:
        text = tokens(value)
        if any(next(ends_of(pattern, text, i), None) is not None for i in range(len(text))):
            return True
    return False


def item_values(item: DemoItem) -> list[str]:
    """The rule's default fields: title, summary and content, as plain text."""
    return [item.title, html_to_text(item.summary_html), html_to_text(item.content_html)]


def rule_matches(rule: dict[str, Any], item: DemoItem) -> bool:
    values = item_values(item)

    def holds(entry: str) -> bool:
        return any(phrase_in(p, values) for p in alternatives(entry))

    any_ok = not rule.get("any") or any(map(holds, rule["any"]))
    all_ok = all(map(holds, rule.get("all") or ()))
    none_ok = not any(map(holds, rule.get("none") or ()))
    return any_ok and all_ok and none_ok


# --- reference story identity (SPEC §4, "the same story") -------------------------------

TRACKING = re.compile(r"^(utm_.*|fbclid|gclid|mc_cid|mc_eid|ref)$")
OUTLET_SUFFIX = re.compile(r"\s(?:-|\||—)\s(?P<outlet>[^\d]+)$")


def canonical_link(link: str) -> str:
    parts = urlsplit(link)
    host = re.sub(r"^(www\.|amp\.)", "", parts.netloc.lower())
    path = re.sub(r"(/amp)?/?$", "", parts.path)
    query = sorted((k, v) for k, v in parse_qsl(parts.query) if not TRACKING.match(k))
    return f"{host}{path}?{urlencode(query)}"


def story_title(title: str) -> str:
    suffix = OUTLET_SUFFIX.search(title)
    if suffix and len(suffix["outlet"].split()) <= 4:
        title = title[: suffix.start()]
    return " ".join(tokens(title))


def same_story(a: DemoItem, b: DemoItem) -> str | None:
    if canonical_link(a.link) == canonical_link(b.link):
        return "link"
    close = abs(a.published - b.published) <= timedelta(hours=48)
    return "title" if close and story_title(a.title) == story_title(b.title) else None


# --- the reference matcher itself --------------------------------------------------------


@pytest.mark.parametrize(
    ("phrase", "text", "expected"),
    [
        ("Kursk", "fighting in Kur\u00adsk", True),
        ("Kursk", "KURSK’s governor", True),
        ("Kursk", "Kurskaya station", False),
        ("fiber-optic drone*", "Fiber\u2011Optic drones", True),
        ("fiber-optic drone*", "fiberoptic drone", True),
        ("fiber-optic drone*", "fiber optic droneless", True),
        ("fiber-optic drone*", "fiber-optic broadband drones", False),
        ("North Korea's troops", "North Korea’s troops", True),
        ("Straße", "STRASSE", True),
        ("11,000 casualties", "about 11 000 casualties", True),
        ("쿠르스크", "쿠르스크에서 교전", True),
        ("库尔斯克", "朝鲜军队在库尔斯克州作战", True),
        ("库尔斯克", "库尔克斯", False),
    ],
)
def test_reference_matcher_follows_spec_examples(phrase: str, text: str, expected: bool) -> None:
    assert phrase_in(phrase, [text]) is expected


# --- sample feeds ------------------------------------------------------------------------


def test_rss_feed_is_rss_2_0() -> None:
    root = ET.parse(ROOT / EXPECTED["feeds"]["frontline"]["file"]).getroot()
    assert (root.tag, root.get("version")) == ("rss", "2.0")


def test_atom_feed_is_atom_1_0() -> None:
    root = ET.parse(ROOT / EXPECTED["feeds"]["defense-wire"]["file"]).getroot()
    assert root.tag == f"{ATOM}feed"


def test_json_feed_is_json_feed_1_1() -> None:
    data = json.loads((ROOT / EXPECTED["feeds"]["eastern-desk"]["file"]).read_text("utf-8"))
    assert data["version"] == "https://jsonfeed.org/version/1.1"
    assert isinstance(data["items"], list)


@pytest.mark.parametrize("feed", sorted(EXPECTED["feeds"]))
def test_feed_holds_the_expected_number_of_items(feed: str) -> None:
    assert len(read_feed(feed)) == EXPECTED["feeds"][feed]["items"]


def test_demo_has_at_least_27_items() -> None:
    assert len(all_items()) >= 27


def test_item_ids_are_unique_across_feeds() -> None:
    ids = [item.id for item in all_items()]
    assert len(ids) == len(set(ids))


def test_every_item_has_title_link_date_and_tags() -> None:
    november = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    for item in all_items():
        assert item.title.strip() and item.tags, item
        assert EXAMPLE_HOSTS.match(item.link), item.link
        assert november[0] <= item.published < november[1], item
        assert item.published.utcoffset() is not None, item


def test_every_item_has_a_summary_or_content() -> None:
    for item in all_items():
        assert len(tokens(" ".join(item_values(item)[1:]))) >= 15, item.title


def test_titles_are_unique_within_each_feed() -> None:
    for feed in EXPECTED["feeds"]:
        titles = [item.title for item in read_feed(feed)]
        assert len(titles) == len(set(titles)), feed


def test_samples_show_the_tricky_spellings() -> None:
    raw = "".join(i.title + i.summary_html + i.content_html for i in all_items())
    for needle in ("Kur\u00adsk", "Korea’s", "DPRK troops", "11,000 casualties", "Kurylivka"):
        assert needle in raw, needle
    for spelling in ("fiber-optic drones", "fibre-optic drones", "fiberoptic drones"):
        assert spelling in raw.lower(), spelling
    assert "fiber optic drones" in raw


def test_samples_carry_html_including_a_script_to_strip() -> None:
    html = "".join(item.content_html for item in all_items())
    for tag in ("<p>", "<em>", "<a href=", "<script>"):
        assert tag in html, tag


# --- expected results table --------------------------------------------------------------


def test_expected_table_accounts_for_every_item_once() -> None:
    matched = {tuple(key) for keys in EXPECTED["matches"].values() for key in keys}
    unmatched = [tuple(key) for key in EXPECTED["no_match"]]
    assert matched.isdisjoint(unmatched)
    assert matched | set(unmatched) == {item.key for item in all_items()}
    assert len(unmatched) >= 8


def test_expected_table_names_existing_rules() -> None:
    rule_ids = {rule["id"] for rule in load_rules()}
    assert set(EXPECTED["matches"]) == rule_ids == set(EXPECTED["alerts"])


def test_expected_matches_follow_the_rules() -> None:
    rules = load_rules()
    for item in all_items():
        actual = {rule["id"] for rule in rules if rule_matches(rule, item)}
        expected = {rid for rid, keys in EXPECTED["matches"].items() if list(item.key) in keys}
        assert actual == expected, item.title


def test_near_misses_are_unmatched_items() -> None:
    unmatched_titles = {title for _, title in EXPECTED["no_match"]}
    assert set(EXPECTED["near_misses"]) <= unmatched_titles


def test_removing_none_would_let_the_game_review_match() -> None:
    rule = next(r for r in load_rules() if r["id"] == "nk-troops-kursk")
    review = next(i for i in all_items() if i.title.startswith("Review:"))
    assert not rule_matches(rule, review)
    assert rule_matches({**rule, "none": []}, review)


def test_script_contents_would_match_if_not_stripped() -> None:
    item = next(i for i in all_items() if "<script>" in i.content_html)
    raw = re.sub(r"<[^>]+>", " ", item.content_html)
    rules = load_rules()
    assert not any(rule_matches(rule, item) for rule in rules)
    assert phrase_in("North Korean troops", [raw]) and phrase_in("Kursk", [raw])


def test_declared_stories_are_the_only_duplicates() -> None:
    by_key = {item.key: item for item in all_items()}
    declared: dict[frozenset[tuple[str, str]], str] = {}
    for story in EXPECTED["stories"]:
        first, second = (by_key[tuple(key)] for key in story["copies"])
        assert same_story(first, second) == story["same"]
        declared[frozenset((first.key, second.key))] = story["same"]
    items = list(by_key.values())
    found = {
        frozenset((a.key, b.key))
        for i, a in enumerate(items)
        for b in items[i + 1 :]
        if same_story(a, b)
    }
    assert found == set(declared)


def test_expected_alerts_are_one_per_story() -> None:
    by_key = {item.key: item for item in all_items()}
    later_copies: set[tuple[str, str]] = set()
    for story in EXPECTED["stories"]:
        copies = sorted((by_key[tuple(key)] for key in story["copies"]), key=lambda i: i.published)
        later_copies.update(copy.key for copy in copies[1:])
    for rule_id, keys in EXPECTED["matches"].items():
        firsts = [title for feed, title in keys if (feed, title) not in later_copies]
        assert sorted(firsts) == sorted(EXPECTED["alerts"][rule_id]), rule_id


# --- rule files --------------------------------------------------------------------------

RULE_KEYS = {"id", "description", "any", "all", "none", "severity"}


@pytest.mark.parametrize("path", sorted((ROOT / "rules").glob("*.yaml")), ids=lambda p: p.name)
def test_rule_file_is_a_list_of_simple_rules_and_term_lists(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#"), "each rule file opens with a comment explaining the format"
    entries = yaml.safe_load(text)
    assert isinstance(entries, list) and entries
    for entry in entries:
        if "terms" in entry:
            assert set(entry) == {"terms"} and entry["terms"], entry
            continue
        rule = entry
        assert set(rule) <= RULE_KEYS, rule
        assert rule["severity"] in ("info", "low", "medium", "high", "critical")
        assert rule.get("any") or rule.get("all"), rule["id"]
        for key in ("any", "all", "none"):
            assert all(isinstance(p, str) and p.strip() for p in rule.get(key, [])), rule["id"]


def test_the_kursk_list_names_the_place_in_six_languages_and_the_rules_use_it() -> None:
    kursk = load_lists()["kursk"]
    assert {"Kursk", "Курск", "Курськ*", "쿠르스크", "库尔斯克", "クルスク"} <= set(kursk)
    uses = [e for e in load_entries() if "$kursk" in [*e.get("any", []), *e.get("all", [])]]
    assert {rule["id"] for rule in uses} == {"nk-troops-kursk", "casualties"}
    titles = {
        item.title
        for item in all_items()
        if item.key in map(tuple, EXPECTED["matches"]["nk-troops-kursk"])
    }
    assert any("쿠르스크" in t for t in titles) and any("库尔斯克" in t for t in titles)


def test_rule_ids_are_unique_across_files() -> None:
    ids = [rule["id"] for rule in load_rules()]
    assert len(ids) == len(set(ids))
    assert {"nk-troops-kursk", "fiber-optic-drones", "casualties"} <= set(ids)


def test_wildcards_only_end_words() -> None:
    for rule in load_rules():
        entries = [*rule.get("any", []), *rule.get("all", []), *rule.get("none", [])]
        for phrase in (p for entry in entries for p in alternatives(entry)):
            for word in phrase.split():
                assert "*" not in word[:-1], phrase
                if word.endswith("*"):
                    assert len(tokens(word[:-1])[-1]) >= 2, phrase


# --- demo config and systemd unit --------------------------------------------------------


def test_demo_config_uses_the_sample_feeds_and_rules() -> None:
    config = yaml.safe_load((ROOT / "watcher.yaml").read_text(encoding="utf-8"))
    assert config["database"] == "data/watcher.db"
    assert (ROOT / config["rules"]).is_dir()
    assert config["defaults"]["first_poll_alerts"] == "all"
    feeds = {feed["name"]: feed for feed in config["feeds"]}
    assert set(feeds) == set(EXPECTED["feeds"])
    for name, feed in feeds.items():
        assert feed["url"] == EXPECTED["feeds"][name]["file"]
        assert (ROOT / feed["url"]).is_file() and feed["tags"]
    assert config["channels"] == {
        "console": {"type": "console"},
        "files": {"type": "eml", "dir": "data/outbox"},
    }


def read_unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(ROOT / "contrib" / "watcher.service", encoding="utf-8")
    return unit


def test_systemd_unit_runs_the_daemon_as_its_own_user() -> None:
    service = read_unit()["Service"]
    assert service["ExecStart"].endswith("watcher --config /etc/watcher/watcher.yaml run")
    assert service["ExecStart"].startswith("/")
    assert (service["User"], service["Restart"], service["KillSignal"]) == (
        "watcher",
        "on-failure",
        "SIGTERM",
    )
    assert service["TimeoutStopSec"] and service["EnvironmentFile"].endswith("watcher.env")


def test_systemd_unit_is_hardened() -> None:
    service = read_unit()["Service"]
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["ReadWritePaths"] == "/var/lib/watcher"
    assert service["PrivateTmp"] == "yes"
    assert read_unit()["Install"]["WantedBy"] == "multi-user.target"
