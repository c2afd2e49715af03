"""The ``webhook`` channel: POSTs each alert as JSON (optionally signed); no retries here.

The body is ``webhook_body`` serialised once; the signature covers exactly those bytes
(``signature: watcher`` or ``standard``, see watcher/signatures.py).
Connection errors, timeouts and HTTP 5xx/408/429 are transient DeliveryErrors; any other
non-2xx answer (redirects included: a POST is never re-sent elsewhere) is permanent.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from watcher import __version__
from watcher.exceptions import ConfigError, DeliveryError
from watcher.redact import excerpt, header_secrets, redact_url, scrub
from watcher.signatures import standard_key, standard_signature, watcher_signature
from watcher.types import AlertItem, AlertMessage, ChannelConfig

log = logging.getLogger(__name__)

ALERT_ID_HEADER = "X-Watcher-Alert-Id"
SIGNATURE_HEADER = "X-Watcher-Signature"
STANDARD_ID_HEADER = "webhook-id"  # signature: standard (Standard Webhooks)
STANDARD_TIMESTAMP_HEADER = "webhook-timestamp"
STANDARD_SIGNATURE_HEADER = "webhook-signature"
RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "Content-Type",
        ALERT_ID_HEADER,
        SIGNATURE_HEADER,
        STANDARD_ID_HEADER,
        STANDARD_TIMESTAMP_HEADER,
        STANDARD_SIGNATURE_HEADER,
    )
)  # `headers:` cannot set these
TRANSIENT_STATUSES = frozenset({408, 429})
MAX_CONNECT_TIMEOUT = 5.0
EXCERPT_CHARS = 500  # of a refusing receiver's answer, kept in the error (secrets removed)
EXCERPT_BYTES = 4096  # read to find them


def format_utc(when: datetime | None) -> str | None:
    """``YYYY-MM-DDTHH:MM:SSZ``; a naive time is taken as UTC already."""
    if when is None:
        return None
    aware = when if when.tzinfo else when.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def webhook_body(message: AlertMessage) -> dict[str, Any]:
    """The JSON document of SPEC §5 for one alert; snippets keep their ``**`` marks."""
    body: dict[str, Any] = {
        "alert_id": str(message.alert_id),
        "kind": message.kind,
        "created_at": format_utc(message.created_at),
        "rule": {
            "id": message.rule_id,
            "description": message.rule_description,
            "severity": message.severity,
        },
        "items": [_item_body(item) for item in message.items],
    }
    if message.held_back:  # only when max_alerts kept matches back: the SPEC shape otherwise
        body["held_back"] = [_item_body(item) for item in message.held_back]
    if message.omitted:  # a summary: the items beyond those listed
        body["omitted"] = message.omitted
    return body


def _item_body(item: AlertItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "title": item.title,
        "link": item.link,
        "feed": item.feed,
        "published_at": format_utc(item.published_at),
        "terms": list(item.terms),
        "snippets": list(item.snippets),
        "matched_in": list(item.matched_in),
        "also_reported_by": [{"feed": o.feed, "link": o.link} for o in item.also_reported_by],
    }


def encode_body(message: AlertMessage) -> bytes:
    return json.dumps(webhook_body(message), ensure_ascii=False, separators=(",", ":")).encode()


class WebhookChannel:
    """``type: webhook``: one POST per alert, ``X-Watcher-Alert-Id`` stable per alert."""

    def __init__(self, config: ChannelConfig, instance: str = "") -> None:
        options = config.options
        self.name = config.name
        self.url = str(options["url"])
        secret = options.get("secret")
        self.secret = str(secret) if secret else None
        self.signature = str(options.get("signature") or "watcher")
        self.key = self._standard_key() if self.signature == "standard" else None
        self.headers = {str(k): str(v) for k, v in (options.get("headers") or {}).items()}
        read = float(options.get("timeout") or 10.0)
        self.timeout = (min(read, MAX_CONNECT_TIMEOUT), read)
        self.secrets = webhook_secrets(self.url, self.secret, self.headers, config.secrets)

    def _standard_key(self) -> bytes:
        try:
            return standard_key(self.secret or "")
        except ValueError as e:
            raise ConfigError(f"channels.{self.name}.secret: {e}") from None

    def describe(self) -> str:
        parts = [f"webhook {self.name} {redact_url(self.url)}"]
        if self.key is not None:
            parts.append("signed (Standard Webhooks)")
        elif self.secret:
            parts.append("signed")
        if self.headers:
            parts.append("headers=" + ",".join(f"{name}:****" for name in self.headers))
        return " ".join(parts)

    def request_headers(
        self, alert_id: int, body: bytes, timestamp: int | None = None
    ) -> dict[str, str]:
        """The headers of one attempt; ``timestamp`` (Unix seconds) defaults to now."""
        own = {k: v for k, v in self.headers.items() if k.lower() not in RESERVED_HEADERS}
        headers = {"User-Agent": f"watcher/{__version__}", **own}
        headers["Content-Type"] = "application/json"
        headers[ALERT_ID_HEADER] = str(alert_id)
        if self.key is not None:
            at = int(time.time()) if timestamp is None else timestamp
            headers[STANDARD_ID_HEADER] = str(alert_id)
            headers[STANDARD_TIMESTAMP_HEADER] = str(at)
            headers[STANDARD_SIGNATURE_HEADER] = standard_signature(
                self.key, str(alert_id), at, body
            )
        elif self.secret:
            headers[SIGNATURE_HEADER] = watcher_signature(self.secret, body)
        return headers

    def send(self, message: AlertMessage) -> None:
        body = encode_body(message)
        headers = self.request_headers(message.alert_id, body)
        try:
            with requests.post(
                self.url,
                data=body,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
                stream=True,
            ) as response:
                status = response.status_code
                if status < 200 or status >= 300:
                    raise self._refused(message.alert_id, response)
        except requests.RequestException as e:
            what, permanent = classify_request_error(e)
            cause = scrub(str(e), self.secrets)
            text = f"{what}: {redact_url(self.url)}: {type(e).__name__}: {cause}"
            raise DeliveryError(self.name, message.alert_id, text, permanent=permanent) from e
        log.debug(
            "webhook answered alert=%d channel=%s status=%d", message.alert_id, self.name, status
        )

    def _refused(self, alert_id: int, response: requests.Response) -> DeliveryError:
        status = response.status_code
        permanent = status < 500 and status not in TRANSIENT_STATUSES
        if 300 <= status < 400:
            where = redact_url(response.headers.get("Location", "?"))
            what = f"receiver redirected to {where} (update url)"
        elif status in (401, 403):
            what = "receiver refused the credentials (check headers and secret)"
        else:
            what = "receiver refused the alert" if permanent else "receiver failed"
        answer = _answer(response, self.secrets)
        text = f"{what}: {redact_url(self.url)}: HTTP {status}" + (f": {answer}" if answer else "")
        if status == 429 and response.headers.get("Retry-After"):
            text += f" (Retry-After: {response.headers['Retry-After']})"
        return DeliveryError(self.name, alert_id, text, permanent=permanent)


def classify_request_error(error: requests.RequestException) -> tuple[str, bool]:
    """What went wrong before any answer came, and whether retrying cannot help."""
    if isinstance(error, requests.Timeout):
        return "receiver timed out (check timeout)", False
    if isinstance(error, requests.ConnectionError):
        return "cannot reach the receiver (check url)", False
    if isinstance(error, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema)):
        return "invalid url", True
    if isinstance(error, (requests.exceptions.InvalidSchema, requests.exceptions.InvalidHeader)):
        return "invalid url or headers", True
    return "request failed", False


def webhook_secrets(
    url: str, secret: str | None, headers: dict[str, str], expanded: tuple[str, ...] = ()
) -> list[str]:
    """What must never be kept from an answer: the URL and its path and query, the signing
    secret, every header value and every ``${VAR}`` value of the channel."""
    try:
        parts = urlsplit(url)
        pieces = [parts.path if parts.path != "/" else "", parts.query, parts.password or ""]
    except ValueError:
        pieces = []
    return [url, *pieces, secret or "", *header_secrets(headers), *expanded]


def _answer(response: requests.Response, secrets: list[str]) -> str:
    """The start of an error answer: one line, at most 500 characters, secrets removed."""
    try:
        raw = response.raw.read(EXCERPT_BYTES, decode_content=True)
    except Exception:  # the answer is only decoration for the error message
        return ""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
    return excerpt(text, secrets, EXCERPT_CHARS)
