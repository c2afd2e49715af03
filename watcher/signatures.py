"""Webhook signatures, both schemes a ``webhook`` channel offers; pure, no I/O, no clock.

    signature: watcher   (the default)
      X-Watcher-Signature: sha256=<hex HMAC-SHA256 of the body>, keyed with the secret's UTF-8
    signature: standard  (Standard Webhooks, https://www.standardwebhooks.com)
      webhook-id:        the alert id, the same on every attempt
      webhook-timestamp: the attempt's time, integer seconds since the Unix epoch
      webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">, keyed with
                         the bytes of the secret ``whsec_<base64>`` after its prefix

Only the standard scheme binds a time and an id to the body, so that a receiver can
refuse an old or a repeated request (a replay).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

SIGNATURES: tuple[str, ...] = ("watcher", "standard")
STANDARD_PREFIX = "whsec_"
MIN_KEY_BYTES = 24  # the Standard Webhooks spec: at least 192 bits …
MAX_KEY_BYTES = 64  # … and at most 512

NEW_SECRET_HINT = (
    "python3 -c 'import base64, os; print(\"whsec_\" + base64.b64encode(os.urandom(32)).decode())'"
)


def watcher_signature(secret: str, body: bytes) -> str:
    """The ``X-Watcher-Signature`` value: ``sha256=`` and the hex HMAC-SHA256 of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def standard_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret; ValueError (never echoing the secret)
    when it is not one."""
    if not secret.startswith(STANDARD_PREFIX):
        raise ValueError(
            "with signature: standard the secret must be whsec_ followed by base64"
            f" (make one with: {NEW_SECRET_HINT})"
        )
    text = secret[len(STANDARD_PREFIX) :]
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the secret after whsec_ is not valid base64") from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise ValueError(
            f"the secret after whsec_ must decode to {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes,"
            f" not {len(key)} (make one with: {NEW_SECRET_HINT})"
        )
    return key


def standard_signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,`` and the base64 HMAC-SHA256 of
    ``<id>.<timestamp>.<body>``."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
