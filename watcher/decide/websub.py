"""Pure WebSub decisions: what to ask a hub next, whether to agree to its checks, whether a
pushed body is signed by it, and how a subscription reads in ``status``; no I/O, no clock.

    per subscription, each minute of the daemon (``next_action``):
      the feed is gone, disabled, or names no hub any more   -> unsubscribe (if one is held)
      the feed names another hub or topic                   -> subscribe anew (new token and
                                                               secret; the old callback
                                                               answers 410 Gone)
      nothing held, or the lease ends within its margin      -> subscribe (renew)
      asked, and no check from the hub within VERIFY_WAIT    -> a failure (``verify_overdue``)
      a failure                                             -> again after 1 min, doubling,
                                                               at most 1 d
      denied by the hub                                     -> nothing, until it names another
    the hub's check (``check_verification``): agree only to what was asked, for that topic,
      with a lease for a subscription
    a pushed body (``signature_ok``): X-Hub-Signature ``method=hex`` with sha1, sha256,
      sha384 or sha512, the HMAC of the body under the subscription's secret
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from watcher.types import Mode, Subscription, SubState

LEASE_ASKED_S = 7 * 86400  # what a subscription asks for; the hub decides
MAX_LEASE_S = 366 * 86400  # a longer lease from a hub is taken as a year
VERIFY_WAIT_S = 3600  # a hub that has not checked an asked subscription within this failed
RETRY_FIRST_S = 60
RETRY_MAX_S = 86400
MAX_CHALLENGE = 1024
SIGNATURES = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}


@dataclass(frozen=True)
class Action:
    """Ask ``hub`` for ``mode`` on ``topic``; ``fresh``: with a new callback token and secret."""

    mode: Mode
    hub: str
    topic: str
    fresh: bool = False


def next_action(sub: Subscription, now: datetime) -> Action | None:
    """What to ask the hub about this subscription now, if anything."""
    if sub.retry_at is not None and sub.retry_at > now:
        return None
    if sub.pending is not None:
        return None  # waiting for the hub's check (``verify_overdue`` ends the wait)
    if not sub.feed_active or sub.hub is None or sub.topic is None:
        if sub.live(now) and sub.sub_hub is not None and sub.sub_topic is not None:
            return Action(Mode.UNSUBSCRIBE, sub.sub_hub, sub.sub_topic)
        return None
    if moved(sub):  # the old hub's pushes go to a token no longer known: 410 Gone
        return Action(Mode.SUBSCRIBE, sub.hub, sub.topic, fresh=True)
    if sub.state is SubState.DENIED:
        return None
    if sub.live(now) and not renewal_due(sub, now):
        return None
    return Action(Mode.SUBSCRIBE, sub.hub, sub.topic, fresh=sub.token is None)


def moved(sub: Subscription) -> bool:
    """The feed names another hub or topic than the one asked or held."""
    if sub.sub_hub is None:
        return False
    return (sub.hub, sub.topic) != (sub.sub_hub, sub.sub_topic)


def verify_overdue(sub: Subscription, now: datetime) -> bool:
    """Asked long enough ago that the hub's silence counts as a failure."""
    asked = sub.requested_at
    return (
        sub.pending is not None
        and asked is not None
        and (now - asked).total_seconds() >= VERIFY_WAIT_S
    )


def disposable(sub: Subscription, now: datetime) -> bool:
    """A deleted feed's subscription with nothing left to undo: its row can go."""
    return sub.feed_id is None and sub.pending is None and not sub.live(now)


def renewal_due(sub: Subscription, now: datetime) -> bool:
    """Whether a held lease is close enough to its end to ask again: a tenth of a lease
    before it ends, at least half an hour (or half of a shorter lease), at most a day."""
    if sub.lease_until is None:
        return True
    left = (sub.lease_until - now).total_seconds()
    return left <= renewal_margin_s(sub)


def renewal_margin_s(sub: Subscription) -> float:
    granted = (
        (sub.lease_until - sub.requested_at).total_seconds()
        if sub.lease_until and sub.requested_at
        else 0.0
    )
    return min(max(granted / 10, min(1800.0, granted / 2)), 86400.0)


def retry_after(failures: int, now: datetime) -> datetime:
    """When to ask again after ``failures`` failed requests in a row."""
    delay = min(RETRY_FIRST_S * 2 ** max(0, failures - 1), RETRY_MAX_S)
    return now + timedelta(seconds=delay)


@dataclass(frozen=True)
class Verdict:
    """The answer to a hub's check: agree (echo ``challenge``) or not, and why."""

    agree: bool
    reason: str
    lease_s: int | None = None


def check_verification(
    sub: Subscription | None, mode: str, topic: str, challenge: str, lease: str | None
) -> Verdict:
    """Agree only to the mode asked, for the topic asked, with a lease for a subscription."""
    if sub is None:
        return Verdict(False, "unknown callback")
    if not challenge or len(challenge) > MAX_CHALLENGE:
        return Verdict(False, "no usable hub.challenge")
    if sub.pending is None or mode != sub.pending:
        asked = sub.pending.value if sub.pending else "nothing"
        return Verdict(False, f"hub.mode {mode!r} was not asked for (asked: {asked})")
    if topic != sub.sub_topic:
        return Verdict(False, f"hub.topic {topic!r} is not the topic asked for")
    if mode != Mode.SUBSCRIBE:
        return Verdict(True, "unsubscribed")
    if lease is None or not lease.strip().isdigit() or int(lease) <= 0:
        return Verdict(False, "a subscription's check needs a positive hub.lease_seconds")
    return Verdict(True, "subscribed", min(int(lease), MAX_LEASE_S))


def signature_ok(body: bytes, header: str | None, secret: str | None) -> tuple[bool, str]:
    """Whether ``X-Hub-Signature`` is the HMAC of ``body`` under ``secret``, and why not."""
    if not secret:
        return False, "the subscription has no secret"
    if not header:
        return False, "unsigned (no X-Hub-Signature)"
    method, _, given = header.strip().partition("=")
    digest = SIGNATURES.get(method.strip().lower())
    if digest is None:
        return False, f"unknown signature method {method.strip()[:20]!r}"
    expected = hmac.new(secret.encode(), body, digest).hexdigest()
    if not hmac.compare_digest(expected, given.strip().lower()):
        return False, f"{method.strip().lower()} signature does not match"
    return True, "signed"


def push_status(sub: Subscription | None, enabled: bool, now: datetime) -> str:
    """How a feed's push reads in ``watcher status``: subscribed, or why not."""
    if sub is None or sub.hub is None:
        return "" if sub is None or not sub.sub_hub else "not offered any more"
    if not enabled:
        return "off (the feed offers a hub; set websub: in the config)"
    if sub.live(now) and sub.pending is not Mode.UNSUBSCRIBE:
        return f"subscribed (lease until {_when(sub.lease_until)})"
    if sub.state is SubState.DENIED:
        return f"denied by the hub: {sub.last_error or 'no reason given'}"
    if sub.pending is Mode.SUBSCRIBE:
        return f"requested {_when(sub.requested_at)}, waiting for the hub's check"
    if sub.failures and sub.last_error:
        return f"failing: {sub.last_error} (next try {_when(sub.retry_at)})"
    if sub.state is SubState.SUBSCRIBED:
        return f"lease ended {_when(sub.lease_until)}; renewing"
    return "not subscribed yet"


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "?"


def effective_state(sub: Subscription, now: datetime) -> str:
    """One word per subscription, for the ``watcher_websub_subscriptions`` gauge."""
    if sub.live(now):
        return "subscribed"
    if sub.state is SubState.DENIED:
        return "denied"
    if sub.pending is not None:
        return "pending"
    if sub.failures:
        return "failing"
    return "unsubscribed"
