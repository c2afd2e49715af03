"""Hide secrets in what watcher shows or keeps: URLs that carry tokens, and known secret values.

    redact_url("https://u:pw@hooks.example.org/T000/B000/XXXX?k=1")  ->  "https://hooks.example.org/…"
    scrub("denied for Bearer s3cr3t-token", ["Bearer s3cr3t-token"])  ->  "denied for ****"

Use ``redact_url`` for any URL that may hold a credential (an expanded ``${VAR}``, a
webhook, a redirect target) before it reaches a log line, a table, an error message or
the database; use ``scrub`` on text that came back from a server or a library and may
echo a configured secret. Nothing here reads the config or the network.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote, urlsplit, urlunsplit

HIDDEN = "****"
ELLIPSIS = "…"
MIN_SECRET = 4  # shorter values (a port, "on") are not looked for: they would mangle the text
MIN_WORD = 8  # a word of a longer value (the token of "Bearer <token>") is looked for too


def redact_url(url: str) -> str:
    """``scheme://host[:port]/…``: user, password, path, query and fragment left out.

    The ellipsis stands for whatever followed the host; a URL that is only a scheme and a host
    (or ends in ``/``) is shown whole. Other schemes may carry a token in the host part
    (``tgram://TOKEN/``): only their scheme is shown. Text that is no URL gives ``(hidden URL)``.
    """
    scheme = url.strip().partition("://")[0].lower()
    if scheme and scheme not in ("http", "https") and re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme):
        return f"{scheme}://{ELLIPSIS}"
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(hidden URL)"
    if not parts.scheme or not host:
        return "(hidden URL)"
    if ":" in host:
        host = f"[{host}]"
    origin = f"{parts.scheme}://{host}" + (f":{port}" if port else "")
    rest = parts.path not in ("", "/") or parts.query or parts.fragment
    return f"{origin}/{ELLIPSIS}" if rest else f"{origin}/"


def without_credentials(url: str) -> str:
    """``url`` without its user, password and query: a base for resolving relative links."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return url
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{port}" if port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def secret_words(values: Iterable[str]) -> list[str]:
    """What ``scrub`` looks for: each value, and the long words inside it, longest first."""
    found: set[str] = set()
    for value in values:
        text = str(value).strip()
        if len(text) >= MIN_SECRET:
            found.add(text)
        found.update(word for word in re.split(r"[\s,;]+", text) if len(word) >= MIN_WORD)
    return sorted(found, key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (as written and %-encoded) replaced by ``****``."""
    for secret in secret_words(secrets):
        for form in dict.fromkeys((secret, quote(secret, safe=""), quote(secret))):
            text = text.replace(form, HIDDEN)
    return text


def header_secrets(headers: Mapping[str, str] | None) -> list[str]:
    """The values of configured HTTP headers: every one is treated as a secret."""
    return [str(value) for value in (headers or {}).values()]


def excerpt(text: str, secrets: Iterable[str], limit: int = 500) -> str:
    """A server's answer fit to keep: one line, secrets removed, at most ``limit`` characters."""
    line = scrub(" ".join(text.split()), secrets)
    return line if len(line) <= limit else line[: limit - 1] + ELLIPSIS
