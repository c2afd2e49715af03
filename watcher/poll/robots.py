"""robots.txt for article pages: what a user agent may fetch, and how long an answer holds.

Pure: the caller fetches ``robots_url(page)`` (with the article fetcher's limits, address
policy and User-Agent), hands the outcome to ``robots_entry`` and keeps the entry per
``robots_key`` (an origin: scheme, host and port); ``RobotsEntry.verdict`` then answers
for each page of that origin until the entry expires.

    answer of /robots.txt              verdict for the origin's pages   asked again after
    2xx                                its rules                        ``TTL`` (a day)
    4xx but 429, too many redirects    everything allowed               ``TTL``
    no answer (connection, timeout)    everything allowed               ``RETRY``
    5xx or 429                         wait: fetch no page of it        ``RETRY``
        (a copy of its rules under ``STALE_LIMIT`` old is used instead)

The rules follow RFC 9309: the groups naming our product token (``watcher`` in
``watcher/0.2 (+https://…)``, compared without case), else the ``*`` groups, else none;
the rule whose path pattern is longest wins, an ``allow`` on a tie; ``*`` matches any
characters and a final ``$`` ends the path; ``Disallow:`` with no path says nothing;
paths and patterns are compared with their percent-encoding made uniform; ``/robots.txt``
itself is always allowed. Only the first ``MAX_BYTES`` of the file are read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar
from urllib.parse import quote, urlsplit

MAX_BYTES = 512 * 1024  # RFC 9309 asks crawlers to read at least 500 KiB
TTL = timedelta(days=1)
RETRY = timedelta(hours=1)
STALE_LIMIT = timedelta(days=30)

_Text = TypeVar("_Text", str, bytes)


@dataclass(frozen=True)
class Rule:
    allow: bool
    pattern: str  # normalised; may hold "*" and a final "$"


@dataclass(frozen=True)
class Group:
    agents: tuple[str, ...]  # lower-case product tokens, or "*"
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class RobotsRules:
    """The groups of one robots.txt; no group allows everything."""

    groups: tuple[Group, ...] = ()

    @classmethod
    def parse(cls, text: str) -> RobotsRules:
        """The groups of ``text``; lines that are not ``key: value`` are skipped."""
        groups: list[Group] = []
        agents: list[str] = []
        rules: list[Rule] = []
        for line in _head(text).removeprefix("\ufeff").splitlines():
            key, _, value = line.split("#", 1)[0].partition(":")
            key, value = key.strip().lower().replace(" ", "-"), value.strip()
            if key in ("user-agent", "useragent"):
                if rules:  # a user-agent line after rules starts the next group
                    groups.append(Group(tuple(agents), tuple(rules)))
                    agents, rules = [], []
                agents.append(_product(value))
            elif key in ("allow", "disallow") and agents and value:
                rules.append(Rule(key == "allow", _normalise(value)))
        if agents:
            groups.append(Group(tuple(agents), tuple(rules)))
        return cls(tuple(groups))

    def rules_for(self, user_agent: str) -> tuple[Rule, ...]:
        """The rules of every group naming ``user_agent``'s product, else of the ``*`` ones."""
        product = _product(user_agent)
        named = [rule for g in self.groups if product in g.agents for rule in g.rules]
        if named or any(product in g.agents for g in self.groups):
            return tuple(named)
        return tuple(rule for g in self.groups if "*" in g.agents for rule in g.rules)

    def allows(self, user_agent: str, url: str) -> bool:
        """Whether ``user_agent`` may fetch ``url`` by these rules."""
        path = _path_of(url)
        if path == "/robots.txt":
            return True
        best: Rule | None = None
        for rule in self.rules_for(user_agent):
            if _matches(rule.pattern, path) and _longer(rule, best):
                best = rule
        return best is None or best.allow


def _head(text: _Text) -> _Text:
    """The first MAX_BYTES of ``text`` without the line cut there: a rule cut short would
    say something else (``Disallow: /news/2024`` cut to ``Disallow: /n``)."""
    if len(text) <= MAX_BYTES:
        return text
    head = text[:MAX_BYTES]
    return head[: head.rfind(b"\n" if isinstance(head, bytes) else "\n") + 1]


def _longer(rule: Rule, best: Rule | None) -> bool:
    if best is None or len(rule.pattern) > len(best.pattern):
        return True
    return len(rule.pattern) == len(best.pattern) and rule.allow and not best.allow


def _product(user_agent: str) -> str:
    """``watcher`` of ``watcher/0.2 (+https://…)``, lower-case; ``*`` stays."""
    return re.split(r"[/\s]", user_agent.strip(), maxsplit=1)[0].lower()


def _matches(pattern: str, path: str) -> bool:
    """Whether ``path`` starts with ``pattern``, where ``*`` is any run of characters and a
    final ``$`` says the path ends there. Linear: each piece is found once, leftmost."""
    anchored = pattern.endswith("$")
    pieces = (pattern[:-1] if anchored else pattern).split("*")
    if not path.startswith(pieces[0]):
        return False
    position = len(pieces[0])
    if len(pieces) == 1:
        return not anchored or position == len(path)
    for piece in pieces[1:-1]:
        found = path.find(piece, position)
        if found < 0:
            return False
        position = found + len(piece)
    last = pieces[-1]
    if anchored:
        return len(path) - len(last) >= position and path.endswith(last)
    return path.find(last, position) >= 0


_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")


def _normalise(path: str) -> str:
    """``path`` with non-ASCII characters percent-encoded as UTF-8, escapes of unreserved
    characters decoded, and the other escapes in upper case."""
    encoded = quote(path, safe="".join(chr(c) for c in range(0x21, 0x7F)))

    def escape(found: re.Match[str]) -> str:
        char = chr(int(found.group(1), 16))
        return char if char in _UNRESERVED else f"%{found.group(1).upper()}"

    return _ESCAPE.sub(escape, encoded)


def _path_of(url: str) -> str:
    parts = urlsplit(url)
    path = parts.path or "/"
    return _normalise(f"{path}?{parts.query}" if parts.query else path)


def robots_url(url: str) -> str | None:
    """Where the robots.txt for ``url`` is; None for what is not http(s)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/robots.txt"


def robots_key(url: str) -> str | None:
    """The origin whose robots.txt rules ``url``: ``https://host:443``; None if not http(s)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{parts.hostname.lower()}:{port}"


class Verdict(StrEnum):
    ALLOW = "allow"
    DISALLOW = "disallow"  # the page's article_error is "robots"
    WAIT = "wait"  # fetch no page of this origin until the entry expires


@dataclass(frozen=True)
class RobotsAnswer:
    """What fetching a robots.txt gave: its status (None when there was no answer)."""

    status: int | None
    body: bytes = b""


@dataclass(frozen=True)
class RobotsEntry:
    """One origin's robots.txt as cached: its rules (None: wait) until ``expires_at``."""

    rules: RobotsRules | None
    fetched_at: datetime
    expires_at: datetime

    def fresh(self, now: datetime) -> bool:
        return now < self.expires_at

    def verdict(self, user_agent: str, url: str) -> Verdict:
        if self.rules is None:
            return Verdict.WAIT
        return Verdict.ALLOW if self.rules.allows(user_agent, url) else Verdict.DISALLOW


def robots_entry(
    answer: RobotsAnswer, now: datetime, previous: RobotsEntry | None = None
) -> RobotsEntry:
    """The entry to keep for an origin after asking for its robots.txt at ``now``."""
    status = answer.status
    if status is None:
        return RobotsEntry(RobotsRules(), now, now + RETRY)
    if 200 <= status < 300:
        text = _head(answer.body).decode("utf-8", errors="replace")
        return RobotsEntry(RobotsRules.parse(text), now, now + TTL)
    if status == 429 or status >= 500:
        if previous and previous.rules is not None and now - previous.fetched_at < STALE_LIMIT:
            return RobotsEntry(previous.rules, previous.fetched_at, now + RETRY)
        return RobotsEntry(None, now, now + RETRY)
    return RobotsEntry(RobotsRules(), now, now + TTL)  # 4xx, and 3xx left over: none
