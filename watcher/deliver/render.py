"""Turn an AlertMessage into text, HTML and an email message; no I/O.

Snippets come in as text with matched words between ``**`` (watcher.rules.snippets makes
them); this module escapes everything that came from a feed before it is put into HTML,
and flattens every header value to one line of plain text so feed text can never inject a
header. The text and HTML bodies hold no control character (NUL, ESC, C1) either: feed text shows
them as the visible ``\\xNN`` (watcher.printable). An e-mail is never larger than
``MAX_EMAIL_BYTES``: one that would be lists fewer items and says so.
"""

from __future__ import annotations

import base64
import binascii
import functools
import html
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from email.policy import SMTP
from email.utils import format_datetime
from zoneinfo import ZoneInfo

from watcher.printable import printable
from watcher.types import AlertItem, AlertMessage, AlsoReported

ARTICLE = "article"  # the field of an item's fetched article page
MAX_EMAIL_BYTES = 1_000_000  # an e-mail, encoded, headers included
SHORT_TITLE = 300  # characters of a title in a shortened e-mail
SHORT_ALSO = 10  # "also reported by" lines of an entry in a shortened e-mail

_HEADER_NAME = re.compile(rb"([!-9;-~]+):")
_BOLD = re.compile(r"\*\*(.+?)\*\*", re.S)
_SPACES = re.compile(r"\s+")


def format_time(when: datetime | None, zone: str) -> str:
    if when is None:
        return "(no date)"
    local = when.astimezone(ZoneInfo(zone))
    return local.strftime("%Y-%m-%d %H:%M %Z")


def render_text(msg: AlertMessage) -> str:
    lines = [f"{msg.rule_id} ({msg.severity}): {msg.rule_description}".rstrip(": "), ""]
    for item in msg.items:
        lines.extend(_item_text(item, msg.display_timezone))
    if msg.held_back:
        lines.append(f"Held back by max_alerts ({len(msg.held_back)}):")
        lines.append("")
        for item in msg.held_back:
            lines.extend(_item_text(item, msg.display_timezone))
    if omitted_note(msg):
        lines.extend([omitted_note(msg), ""])
    lines.append(
        f"alert {msg.alert_id} · created {format_time(msg.created_at, msg.display_timezone)}"
    )
    return "\n".join(lines) + "\n"


def omitted_note(msg: AlertMessage) -> str:
    """What a message says about the items it does not list ("" when it lists them all)."""
    if not msg.omitted and not msg.shortened:
        return ""
    more = f"{msg.omitted:,} more item{'' if msg.omitted == 1 else 's'} not listed"
    if not msg.shortened:
        return f"… and {more} (`watcher alerts` and the database have them all)."
    return (
        f"… and {more}: this message was shortened to stay under"
        f" {MAX_EMAIL_BYTES // 1_000_000} MB (`watcher alerts` and the database have them all)."
    )


def matched_in_note(item: AlertItem) -> str:
    """``matched in the article`` (or ``in the title and the article``) when the item's
    article page is where the rule matched, at least in part; else "" (the item's own text:
    the snippets show where)."""
    if ARTICLE not in item.matched_in:
        return ""
    places = [f"the {field}" for field in item.matched_in]
    listed = ", ".join(places[:-1]) + " and " + places[-1] if len(places) > 1 else places[0]
    return f"matched in {listed}"


def _item_text(item: AlertItem, zone: str) -> list[str]:
    lines = [item.title or "(no title)"]
    if item.link:
        lines.append(f"  {item.link}")
    lines.append(f"  {item.feed} · {format_time(item.published_at, zone)}")
    if item.terms:
        lines.append("  matched: " + ", ".join(item.terms))
    if matched_in_note(item):
        lines.append(f"  {matched_in_note(item)}")
    lines.extend(f"  {snippet}" for snippet in item.snippets)
    for other in item.also_reported_by:
        lines.append(f"  also reported by {other.feed}" + (f": {other.link}" if other.link else ""))
    lines.append("")
    return lines


def render_html(msg: AlertMessage) -> str:
    esc = html.escape
    parts = [
        "<!DOCTYPE html><html><body>",
        f"<p><strong>{esc(msg.rule_id)}</strong> ({esc(msg.severity)})"
        + (f": {esc(msg.rule_description)}" if msg.rule_description else "")
        + "</p>",
    ]
    for item in msg.items:
        parts.extend(_item_html(item, msg.display_timezone))
    if msg.held_back:
        parts.append(f"<h4>Held back by max_alerts ({len(msg.held_back)})</h4>")
        for item in msg.held_back:
            parts.extend(_item_html(item, msg.display_timezone))
    if omitted_note(msg):
        parts.append(f"<p><em>{esc(omitted_note(msg))}</em></p>")
    parts.append(f"<p><small>alert {msg.alert_id}</small></p></body></html>")
    return "\n".join(parts) + "\n"


def _item_html(item: AlertItem, zone: str) -> list[str]:
    esc = html.escape
    title = esc(item.title or "(no title)")
    link = _safe_link(item.link)
    heading = f'<a href="{esc(link)}">{title}</a>' if link else title
    parts = [f"<h3>{heading}</h3>"]
    parts.append(f"<p>{esc(item.feed)} · {esc(format_time(item.published_at, zone))}</p>")
    if item.terms:
        parts.append(f"<p>matched: {esc(', '.join(item.terms))}</p>")
    if matched_in_note(item):
        parts.append(f"<p><em>{esc(matched_in_note(item))}</em></p>")
    for snippet in item.snippets:
        parts.append(f"<p>{_bold_html(snippet)}</p>")
    for other in item.also_reported_by:
        href = _safe_link(other.link)
        name = esc(other.feed)
        parts.append(
            f'<p>also reported by <a href="{esc(href)}">{name}</a></p>'
            if href
            else f"<p>also reported by {name}</p>"
        )
    return parts


def _bold_html(snippet: str) -> str:
    """Escape a snippet and turn its ``**x**`` marks into <b>x</b>."""
    out: list[str] = []
    pos = 0
    for m in _BOLD.finditer(snippet):
        out.append(html.escape(snippet[pos : m.start()]))
        out.append("<b>" + html.escape(m.group(1)) + "</b>")
        pos = m.end()
    out.append(html.escape(snippet[pos:]))
    return "".join(out)


def _safe_link(link: str | None) -> str | None:
    if link and link.lower().startswith(("http://", "https://")):
        return link
    return None


# --- email ---------------------------------------------------------------------------------


def header_text(value: str, limit: int = 200) -> str:
    """One line of plain text for a header: no control characters, no pre-encoded words."""
    cleaned = "".join(
        " " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch for ch in value
    )
    cleaned = _SPACES.sub(" ", cleaned).strip()
    # Text that looks like an RFC 2047 encoded word is broken up, so that a mail
    # reader can never decode feed text into header syntax.
    cleaned = cleaned.replace("=?", "= ?").replace("?=", "? =")
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1].rstrip() + "…"
    return cleaned


def mail_domain(instance: str) -> str:
    """The domain part of this installation's Message-IDs: the same for every send."""
    return f"{instance or 'local'}.watcher"


def message_id(msg: AlertMessage, domain: str) -> str:
    return f"<watcher-alert-{msg.alert_id}@{domain}>"


def email_bytes(msg: AlertMessage, *, sender: str, to: list[str], domain: str) -> bytes:
    """The alert as one multipart text + HTML e-mail, CRLF line ends, ready to send or file.

    Its Message-ID (and the rest of it) is the same on every call for the same alert. It is
    never larger than ``MAX_EMAIL_BYTES``: a message that would be (thousands of copies of a
    story, a long list held back) lists fewer items and says so. Raises ValueError when its
    header block is not exactly the headers set (see ``check_header_block``).
    """
    data = _email_bytes(msg, sender, to, domain)
    if len(data) > MAX_EMAIL_BYTES:
        fits = shorten(msg, lambda m: len(_email_bytes(m, sender, to, domain)))
        data = _email_bytes(fits, sender, to, domain)
    return check_header_block(data, _HEADERS)


def shorten(msg: AlertMessage, size: Callable[[AlertMessage], int]) -> AlertMessage:
    """``msg`` with as many of its entries as fit in ``MAX_EMAIL_BYTES`` (by ``size``).

    Each entry keeps a title of at most ``SHORT_TITLE`` characters and ``SHORT_ALSO``
    "also reported by" lines; the entries left out are counted in ``omitted``.
    """
    entries = [_short_entry(item) for item in (*msg.items, *msg.held_back)]
    listed = len(msg.items)

    def keep(count: int) -> AlertMessage:
        return replace(
            msg,
            items=tuple(entries[: min(count, listed)]),
            held_back=tuple(entries[listed:count]),
            omitted=msg.omitted + len(entries) - count,
            shortened=True,
        )

    low, high = 0, len(entries)  # keep(low) fits (nearly nothing is left), find the most
    while low < high:
        middle = (low + high + 1) // 2
        if size(keep(middle)) <= MAX_EMAIL_BYTES:
            low = middle
        else:
            high = middle - 1
    return keep(low)


def _short_entry(item: AlertItem) -> AlertItem:
    also = item.also_reported_by
    if len(item.title) <= SHORT_TITLE and len(also) <= SHORT_ALSO:
        return item
    title = item.title if len(item.title) <= SHORT_TITLE else item.title[: SHORT_TITLE - 1] + "…"
    if len(also) > SHORT_ALSO:
        rest = AlsoReported(feed=f"{len(also) - SHORT_ALSO:,} more feeds", link=None)
        also = (*also[:SHORT_ALSO], rest)
    return replace(item, title=title, also_reported_by=also)


_HEADERS = (
    "Subject",
    "From",
    "To",
    "Date",
    "Message-ID",
    "X-Watcher-Alert-Id",
    "X-Watcher-Rule",
    "MIME-Version",
    "Content-Type",
)
_LINE = 78  # the longest header or body line written unencoded (RFC 5322 says 78)
_WORD_BYTES = 45  # UTF-8 bytes per encoded word: 60 base64 characters, 72 with its marks


def _email_bytes(msg: AlertMessage, sender: str, to: list[str], domain: str) -> bytes:
    """Written directly rather than through the ``email`` package, which took ~2 ms a
    message to lay out headers these few fixed ones do not need; addresses, whose syntax
    matters, are still folded by it (once per address list)."""
    boundary = f"=_watcher-alert-{msg.alert_id}"  # "=_" never occurs in quoted-printable
    text = _body_part("plain", printable(render_text(msg), newlines=True))
    page = _body_part("html", printable(render_html(msg), newlines=True))
    head = b"".join(
        (
            _unstructured("Subject", header_text(msg.subject)),
            _header("From", sender),
            _header("To", ", ".join(to)),
            f"Date: {format_datetime(msg.created_at)}\r\n".encode(),
            _header("Message-ID", message_id(msg, domain)),
            f"X-Watcher-Alert-Id: {msg.alert_id}\r\n".encode(),
            _unstructured("X-Watcher-Rule", header_text(msg.rule_id)),
            b"MIME-Version: 1.0\r\n",
            f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n'.encode(),
        )
    )
    mark = f"--{boundary}".encode()
    # Each part ends in its own line break; the one before a boundary belongs to the boundary.
    return b"\r\n".join((head, mark, text, mark, page, mark + b"--", b""))


def _unstructured(name: str, value: str) -> bytes:
    """``name: value`` folded at spaces; runs of words that are not ASCII become RFC 2047
    encoded words, the ASCII words stay as they are (a subject can still be grepped)."""
    items: list[str] = []
    run: list[str] = []
    for word in value.split(" "):
        if word.isascii():
            if run:
                items.extend(_encoded_words(" ".join(run)))
                run = []
            items.append(word)
        else:
            run.append(word)
    if run:
        items.extend(_encoded_words(" ".join(run)))
    lines = [f"{name}:"]
    for item in items:
        if len(lines[-1]) + 1 + len(item) > _LINE and len(lines[-1]) > len(name) + 1:
            lines.append("")  # fold: the next line starts with the space added below
        lines[-1] += " " + item
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _encoded_words(text: str) -> list[str]:
    """``text`` as base64 encoded words of whole characters, each at most 72 characters."""
    words: list[bytes] = []
    chunk = b""
    for char in text:
        data = char.encode("utf-8", "replace")
        if len(chunk) + len(data) > _WORD_BYTES:
            words.append(chunk)
            chunk = b""
        chunk += data
    words.append(chunk)
    return ["=?utf-8?b?" + base64.b64encode(w).decode("ascii") + "?=" for w in words]


def _header(name: str, value: str) -> bytes:
    """``name: value`` as it is when short plain ASCII, else laid out by the ``email``
    package (display names encoded, long address lists folded)."""
    if value.isascii() and value.isprintable() and len(name) + 2 + len(value) <= _LINE:
        return f"{name}: {value}\r\n".encode("ascii")
    return _folded(name, value)


@functools.lru_cache(maxsize=64)
def _folded(name: str, value: str) -> bytes:
    header = SMTP.header_factory(name, value)  # cached: a channel's addresses repeat
    folded: str = header.fold(policy=SMTP)
    return folded.encode("ascii")


def _body_part(subtype: str, text: str) -> bytes:
    """One text part, quoted-printable UTF-8: every line short and ASCII, whatever the text
    (watcher's own "·" and "…" mean that no alert is plain ASCII anyway)."""
    body = binascii.b2a_qp(text.encode("utf-8", "replace"), istext=True)
    return (
        (
            f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        ).encode("ascii")
        + body.replace(b"\n", b"\r\n").removesuffix(b"\r\n")
        + b"\r\n"
    )


def check_header_block(data: bytes, names: Iterable[str]) -> bytes:
    """``data``, after checking that its header block holds exactly the headers ``names``.

    Every header line must be one the message was given, each exactly once, with no
    stray CR or LF: a guard against header injection, whatever the header values held
    (the same guard once caught the runtime's own bug, CVE-2024-6923). Raises ValueError.
    """
    head = data.split(b"\r\n\r\n", 1)[0]
    if b"\r" in head.replace(b"\r\n", b"") or b"\n" in head.replace(b"\r\n", b""):
        raise ValueError("email header block holds a bare CR or LF")
    found: list[str] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            continue  # a folded continuation of the previous header
        match = _HEADER_NAME.match(line)
        if match is None:
            raise ValueError(f"email header block holds a malformed line {line[:40]!r}")
        found.append(match.group(1).decode("ascii").lower())
    expected = sorted(name.lower() for name in names)
    if sorted(found) != expected:
        raise ValueError(f"email headers {sorted(found)} differ from those set: {expected}")
    return data
