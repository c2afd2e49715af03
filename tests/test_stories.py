"""Story keys: canonical links and normalised titles (SPEC §4)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watcher.storykeys import canonical_link, strip_outlet, title_key


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.org/world/story", "example.org/world/story"),
        ("http://example.org/world/story", "example.org/world/story"),
        ("https://WWW.Example.ORG/world/story", "example.org/world/story"),
        ("https://amp.example.org/world/story", "example.org/world/story"),
        ("https://www.amp.example.org/world/story", "example.org/world/story"),
        ("https://example.org/world/story/", "example.org/world/story"),
        ("https://example.org/world/story/amp", "example.org/world/story"),
        ("https://example.org/world/story/amp/", "example.org/world/story"),
        ("https://example.org/world/story#comments", "example.org/world/story"),
        ("https://example.org/", "example.org"),
        ("https://example.org:443/a", "example.org/a"),
        ("http://example.org:8080/a", "example.org:8080/a"),
        ("https://example.org/a?utm_source=x&utm_medium=rss", "example.org/a"),
        ("https://example.org/a?UTM_Campaign=x", "example.org/a"),
        ("https://example.org/a?fbclid=1&gclid=2&mc_cid=3&mc_eid=4&ref=rss", "example.org/a"),
        ("https://example.org/a?b=2&a=1", "example.org/a?a=1&b=2"),
        ("https://example.org/a?id=7&utm_source=x#top", "example.org/a?id=7"),
        ("https://example.org/a?referrer=x", "example.org/a?referrer=x"),
        ("https://example.org/Path/Case", "example.org/Path/Case"),
        ("", ""),
        ("   ", ""),
    ],
)
def test_canonical_link(url: str, expected: str) -> None:
    assert canonical_link(url) == expected


def test_canonical_link_keeps_different_stories_apart() -> None:
    assert canonical_link("https://example.org/a?id=1") != canonical_link(
        "https://example.org/a?id=2"
    )
    assert canonical_link("https://example.org/a") != canonical_link("https://example.com/a")
    assert canonical_link("https://example.org/amplify") == "example.org/amplify"


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("North Korean troops in Kursk - Reuters", "north korean troops in kursk"),
        ("North Korean troops in Kursk | Kyiv Independent", "north korean troops in kursk"),
        (
            "North Korean troops in Kursk \u2014 The Associated Press",
            "north korean troops in kursk",
        ),
        ("NORTH KOREAN TROOPS IN KURSK", "north korean troops in kursk"),
        ("North Korea\u2019s troops", "north korea s troops"),
        ("Kur\u00adsk battle", "kursk battle"),
        # a suffix of more than four words is part of the title
        ("Troops - what we know so far today", "troops what we know so far today"),
        # a suffix holding a digit is part of the title
        ("Talks resume - Day 3", "talks resume day 3"),
        ("Talks resume - 2025", "talks resume 2025"),
        # only the last suffix is dropped
        ("Ukraine - Russia talks - Reuters", "ukraine russia talks"),
        # a hyphen without spaces is no separator
        ("Fiber-optic drones", "fiber optic drones"),
        ("- Reuters", "reuters"),
        # characters of scripts written without spaces stay together, spaces or not
        ("朝鲜军队在库尔斯克州作战 - 新华网", "朝鲜军队在库尔斯克州作战"),
        ("朝鲜军队 在库尔斯克州作战", "朝鲜军队在库尔斯克州作战"),
        ("乌克兰的F-16战斗机", "乌克兰的 f 16 战斗机"),
        ("북한군, 쿠르스크에서 교전", "북한군쿠르스크에서교전"),
        ("", None),
        ("  \u2014  ", None),
    ],
)
def test_title_key(title: str, expected: str | None) -> None:
    assert title_key(title) == expected


def test_copies_from_two_outlets_share_a_title_key() -> None:
    assert title_key("Drone strike hits depot - BBC News") == title_key(
        "Drone strike hits depot | The Guardian"
    )


def test_strip_outlet_keeps_the_head_as_written() -> None:
    assert strip_outlet("  Big News - Reuters ") == "Big News"
    assert strip_outlet("Big News") == "Big News"


@given(
    host=st.from_regex(r"[a-z]{1,10}\.(org|com)", fullmatch=True),
    path=st.from_regex(r"(/[a-z0-9]{1,8}){0,3}", fullmatch=True),
    params=st.lists(st.from_regex(r"[a-z]{1,5}=[a-z0-9]{0,5}", fullmatch=True), max_size=4),
)
def test_variants_of_a_link_agree(host: str, path: str, params: list[str]) -> None:
    kept = [p for p in params if not p.startswith("ref=")]
    plain = f"https://{host}{path}?{'&'.join(kept)}"
    variant = f"http://www.{host}{path}/amp/?utm_source=feed&{'&'.join(reversed(kept))}#x"
    assert canonical_link(plain) == canonical_link(variant)
