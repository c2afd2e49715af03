"""Story keys: the canonical link and normalised title that tie copies of one story; pure, no I/O.

Two items are copies of one story when their :func:`canonical_link` values are equal, or
when their :func:`title_key` values are equal and they were published within 48 hours of
each other (SPEC §4). Deciding which stored story an item joins is the store's job.
"""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

from watcher.text import join_tokens, tokenize

# Query parameters that only track where a reader came from (compared lower-cased).
TRACKING_PARAMS: frozenset[str] = frozenset({"fbclid", "gclid", "mc_cid", "mc_eid", "ref"})
TRACKING_PREFIX = "utm_"
# Host prefixes that name another copy of the same site.
HOST_PREFIXES: tuple[str, ...] = ("www.", "amp.")
# Separators before an outlet name at the end of a title.
OUTLET_SEPARATORS: tuple[str, ...] = (" - ", " | ", " \u2014 ")
MAX_OUTLET_WORDS = 4


def canonical_link(url: str) -> str:
    """The link with the parts that differ between copies removed.

    ``https://www.example.org/a/b/amp/?utm_source=x&b=2&a=1#top`` -> ``example.org/a/b?a=1&b=2``.
    An empty or blank URL gives ``""``.
    """
    url = url.strip()
    if not url:
        return ""
    parts = urlsplit(url)
    if not parts.netloc:
        return _strip_path(parts.path) + _query_suffix(parts.query)
    return _host(parts) + _strip_path(parts.path) + _query_suffix(parts.query)


def _host(parts: SplitResult) -> str:
    """Host lower-cased without ``www.``/``amp.`` (any number of them), keeping a port."""
    host = (parts.hostname or "").rstrip(".")
    changed = True
    while changed:
        changed = False
        for prefix in HOST_PREFIXES:
            if host.startswith(prefix) and len(host) > len(prefix):
                host = host[len(prefix) :]
                changed = True
    port = _port(parts)
    return f"{host}:{port}" if port else host


def _port(parts: SplitResult) -> int | None:
    """The explicit port, unless it is the scheme's default (or unreadable)."""
    try:
        port = parts.port
    except ValueError:
        return None
    defaults = {"http": 80, "https": 443}
    if port is None or defaults.get(parts.scheme.lower()) == port:
        return None
    return port


def _strip_path(path: str) -> str:
    """Drop trailing ``/`` and ``/amp`` segments, repeatedly: ``/a/amp/`` -> ``/a``."""
    while True:
        if path.endswith("/"):
            path = path[:-1]
        elif path.lower().endswith("/amp"):
            path = path[: -len("/amp")]
        else:
            return path


def _query_suffix(query: str) -> str:
    """``?`` and the remaining parameters sorted, or ``""`` when none are left."""
    kept = sorted(p for p in query.split("&") if p and not _is_tracking(p))
    return "?" + "&".join(kept) if kept else ""


def _is_tracking(param: str) -> bool:
    name = param.split("=", 1)[0].lower()
    return name in TRACKING_PARAMS or name.startswith(TRACKING_PREFIX)


def title_key(title: str) -> str | None:
    """The normalised title without an outlet suffix, or None when no token is left.

    ``"North Korean troops in Kursk - Reuters"`` -> ``"north korean troops in kursk"``.
    Characters of scripts written without spaces are kept together (``库尔斯克``), so that
    the key of a Chinese or Japanese title is what it was before they were tokens each.
    """
    tokens = tokenize(strip_outlet(title))
    return join_tokens(tokens) if tokens else None


def strip_outlet(title: str) -> str:
    """Drop a trailing `` - X``, `` | X`` or `` — X`` where X is at most four words, no digit."""
    title = title.strip()
    cut = max(title.rfind(sep) for sep in OUTLET_SEPARATORS)
    if cut <= 0:
        return title
    head, tail = title[:cut], title[cut + 3 :]
    if _is_outlet(tail) and head.strip():
        return head
    return title


def _is_outlet(text: str) -> bool:
    words = text.split()
    return 0 < len(words) <= MAX_OUTLET_WORDS and not any(c.isdigit() for c in text)
