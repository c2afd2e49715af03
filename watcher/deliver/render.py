"""Turn an AlertMessage into text, HTML and an email message; no I/O.

Snippets come in as text with matched words between ``**`` (watcher.rules.snippets makes
them); this module escapes everything that came from a feed before it is put into HTML,
and flattens every header value to one line of plain text so feed text can never inject a
header. The text and HTML bodies hold no control character (NUL, ESC, C1) either: feed text shows
them as the visible ``\\xNN`` (watcher.printable). An e-mail is never larger than
``MAX_EMAIL_BYTES``: one that would be lists fewer items and says so.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from email.message import EmailMessage
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


def build_email(msg: AlertMessage, *, sender: str, to: list[str], domain: str) -> EmailMessage:
    """A multipart text + HTML message whose Message-ID is stable per alert.

    It is never larger than ``MAX_EMAIL_BYTES``: a message that would be (thousands of
    copies of a story, a long list held back) lists fewer items and says so.
    """
    email = _email(msg, sender, to, domain)
    if _size(email) <= MAX_EMAIL_BYTES:
        return email
    return _email(shorten(msg, lambda m: _size(_email(m, sender, to, domain))), sender, to, domain)


def _size(email: EmailMessage) -> int:
    return len(email.as_bytes(policy=SMTP))


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


def _email(msg: AlertMessage, sender: str, to: list[str], domain: str) -> EmailMessage:
    email = EmailMessage()
    email["Subject"] = header_text(msg.subject)
    email["From"] = sender
    email["To"] = ", ".join(to)
    email["Date"] = format_datetime(msg.created_at)
    email["Message-ID"] = message_id(msg, domain)
    email["X-Watcher-Alert-Id"] = str(msg.alert_id)
    email["X-Watcher-Rule"] = header_text(msg.rule_id)
    email.set_content(printable(render_text(msg), newlines=True))
    email.add_alternative(printable(render_html(msg), newlines=True), subtype="html")
    return email


def serialise_email(email: EmailMessage) -> bytes:
    """The message as SMTP bytes, after checking its header block once more.

    Every header line must be one the message was given, each exactly once, with no
    stray CR or LF: a guard against the runtime's own header-injection bugs
    (CVE-2024-6923), whatever the header values held. Raises ValueError otherwise.
    """
    data = email.as_bytes(policy=SMTP)
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
    expected = sorted(name.lower() for name in email)
    if sorted(found) != expected:
        raise ValueError(f"email headers {sorted(found)} differ from those set: {expected}")
    return data
