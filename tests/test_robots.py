"""robots.txt for article pages: the rules of our group, the longest match, the cache policy."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from watcher.poll.robots import (
    RETRY,
    STALE_LIMIT,
    TTL,
    RobotsAnswer,
    RobotsEntry,
    RobotsRules,
    Verdict,
    robots_entry,
    robots_key,
    robots_url,
)

UA = "watcher/0.1.0 (+https://github.com/example/watcher)"
NOW = datetime(2024, 11, 6, 9, 0, tzinfo=UTC)

NEWS_SITE = """\
# robots.txt for a news site
User-agent: *
Disallow: /search
Disallow: /*?share=
Disallow: /*.pdf$
Allow: /search/help
Disallow: /private/
Allow: /private/press-releases/

User-agent: GPTBot
User-agent: CCBot
Disallow: /

Sitemap: https://news.example/sitemap.xml
"""


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/world/2024/nov/06/kursk", True),
        ("/search", False),
        ("/search?q=kursk", False),
        ("/searching-for-peace", False),  # a prefix of the path
        ("/search/help", True),  # the longer allow wins
        ("/world/kursk?share=x", False),  # * in the middle
        ("/files/report.pdf", False),  # $ ends the path
        ("/files/report.pdf?download=1", True),
        ("/files/report.pdfx", True),
        ("/private/notes", False),
        ("/private/press-releases/2024", True),
        ("/robots.txt", True),
        ("", True),
    ],
)
def test_the_star_group_decides_for_us(path: str, allowed: bool) -> None:
    rules = RobotsRules.parse(NEWS_SITE)
    assert rules.allows(UA, f"https://news.example{path}") is allowed


def test_groups_naming_other_crawlers_do_not_apply_to_us() -> None:
    rules = RobotsRules.parse(NEWS_SITE)
    assert not rules.allows("GPTBot/1.0", "https://news.example/world/kursk")
    assert not rules.allows("ccbot", "https://news.example/world/kursk")
    assert rules.allows(UA, "https://news.example/world/kursk")


@pytest.mark.parametrize(
    ("text", "path", "allowed"),
    [
        # our own group wins over *, whatever its order; names compare without case
        ("User-agent: *\nDisallow: /\n\nUser-agent: Watcher\nAllow: /\n", "/a", True),
        ("User-agent: watcher/2.0\nDisallow: /news\nUser-agent: *\nDisallow: /\n", "/a", True),
        ("User-agent: watcher/2.0\nDisallow: /news\nUser-agent: *\nDisallow: /\n", "/news", False),
        # a group naming us with no rules allows everything, even if * disallows
        ("User-agent: *\nDisallow: /\nUser-agent: watcher\n", "/a", True),
        # consecutive user-agent lines, blank lines between them too, make one group
        ("User-agent: other\n\nUser-agent: watcher\nDisallow: /x\n", "/x", False),
        # groups naming us twice are merged
        ("User-agent: watcher\nDisallow: /a\nUser-agent: watcher\nDisallow: /b\n", "/b", False),
        # no group for us and no *: everything allowed
        ("User-agent: other\nDisallow: /\n", "/a", True),
        # an empty Disallow says nothing; rules before any user-agent are ignored
        ("User-agent: *\nDisallow:\n", "/a", True),
        ("Disallow: /\nUser-agent: *\nAllow: /\n", "/a", True),
        # equal lengths: allow wins
        ("User-agent: *\nDisallow: /page\nAllow: /page\n", "/page", True),
        # longest match, whichever order
        ("User-agent: *\nAllow: /p\nDisallow: /page\n", "/page", False),
        ("User-agent: *\nDisallow: /\nAllow: /$\n", "/", True),
        ("User-agent: *\nDisallow: /\nAllow: /$\n", "/a", False),
        # comments, odd case and spacing, a byte order mark
        ("\ufeffUSER-AGENT : *   # all\nDISALLOW:/a # not a\n", "/a/b", False),
        ("user agent: *\ndisallow: /a\n", "/a", False),
        # percent-encoding is compared uniformly; non-ASCII is compared as UTF-8
        ("User-agent: *\nDisallow: /%7Ejoe/\n", "/~joe/x", False),
        ("User-agent: *\nDisallow: /~joe/\n", "/%7ejoe/x", False),
        ("User-agent: *\nDisallow: /курск\n", "/%D0%BA%D1%83%D1%80%D1%81%D0%BA/1", False),
        ("User-agent: *\nDisallow: /a%2fb\n", "/a%2Fb", False),
        ("User-agent: *\nDisallow: /a%2Fb\n", "/a/b", True),
        # not a robots.txt at all: an HTML error page served with 200
        ("<html><body><h1>Welcome</h1></body></html>", "/a", True),
    ],
)
def test_rules(text: str, path: str, allowed: bool) -> None:
    assert RobotsRules.parse(text).allows(UA, f"https://e.example{path}") is allowed


def test_matching_stays_linear_on_hostile_patterns() -> None:
    text = "User-agent: *\n" + "".join(f"Disallow: /{'*a' * 200}{i}$\n" for i in range(2000))
    rules = RobotsRules.parse(text)
    started = time.process_time()
    assert rules.allows(UA, "https://e.example/" + "a" * 2000)
    assert time.process_time() - started < 5


def test_only_the_first_half_megabyte_is_read() -> None:
    text = "User-agent: *\n" + "# filler\n" * 60_000 + "Disallow: /\n"
    assert RobotsRules.parse(text).allows(UA, "https://e.example/a")


@pytest.mark.parametrize(
    ("url", "robots", "key"),
    [
        (
            "https://news.example/world/a?b=1#c",
            "https://news.example/robots.txt",
            "https://news.example:443",
        ),
        (
            "http://News.Example:8080/a",
            "http://News.Example:8080/robots.txt",
            "http://news.example:8080",
        ),
        (
            "https://user:pw@news.example/a",
            "https://news.example/robots.txt",
            "https://news.example:443",
        ),
        ("http://[::1]:8000/a", "http://[::1]:8000/robots.txt", "http://::1:8000"),
        ("file:///etc/passwd", None, None),
        ("ftp://news.example/a", None, None),
        ("/relative/path", None, None),
    ],
)
def test_where_robots_txt_is_and_whose_it_is(url: str, robots: str | None, key: str | None) -> None:
    assert robots_url(url) == robots
    assert robots_key(url) == key


ALLOW_ALL = Verdict.ALLOW
PAGE = "https://news.example/private/x"


@pytest.mark.parametrize(
    ("answer", "verdict", "lasts"),
    [
        (RobotsAnswer(200, b"User-agent: *\nDisallow: /private/\n"), Verdict.DISALLOW, TTL),
        (RobotsAnswer(200, b""), ALLOW_ALL, TTL),
        (RobotsAnswer(404), ALLOW_ALL, TTL),
        (RobotsAnswer(401), ALLOW_ALL, TTL),
        (RobotsAnswer(403), ALLOW_ALL, TTL),
        (RobotsAnswer(410), ALLOW_ALL, TTL),
        (RobotsAnswer(310), ALLOW_ALL, TTL),  # redirects left over after following them
        (RobotsAnswer(None), ALLOW_ALL, RETRY),  # no answer: allowed, asked again soon
        (RobotsAnswer(500), Verdict.WAIT, RETRY),
        (RobotsAnswer(503), Verdict.WAIT, RETRY),
        (RobotsAnswer(429), Verdict.WAIT, RETRY),
    ],
)
def test_the_answer_decides_for_the_whole_origin(
    answer: RobotsAnswer, verdict: Verdict, lasts: timedelta
) -> None:
    entry = robots_entry(answer, NOW)
    assert entry.verdict(UA, PAGE) is verdict
    assert entry.expires_at == NOW + lasts
    assert entry.fresh(NOW + lasts - timedelta(seconds=1))
    assert not entry.fresh(NOW + lasts)


def test_a_server_error_keeps_the_rules_of_a_recent_copy() -> None:
    good = robots_entry(RobotsAnswer(200, b"User-agent: *\nDisallow: /private/\n"), NOW)
    later = NOW + timedelta(days=3)
    entry = robots_entry(RobotsAnswer(503), later, previous=good)
    assert entry.verdict(UA, PAGE) is Verdict.DISALLOW
    assert entry.verdict(UA, "https://news.example/world/x") is Verdict.ALLOW
    assert entry.expires_at == later + RETRY
    too_old = robots_entry(RobotsAnswer(503), NOW + STALE_LIMIT, previous=good)
    assert too_old.verdict(UA, "https://news.example/world/x") is Verdict.WAIT


def test_a_server_error_after_a_wait_still_waits() -> None:
    waiting = robots_entry(RobotsAnswer(500), NOW)
    entry = robots_entry(RobotsAnswer(500), NOW + RETRY, previous=waiting)
    assert entry.verdict(UA, PAGE) is Verdict.WAIT


def test_a_large_body_is_cut_before_it_is_decoded() -> None:
    body = b"User-agent: *\nDisallow: /private/\n" + b"\xff" * 10_000_000
    entry = robots_entry(RobotsAnswer(200, body), NOW)
    assert entry.verdict(UA, PAGE) is Verdict.DISALLOW
    assert isinstance(entry, RobotsEntry)
