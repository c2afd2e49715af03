"""WebSub for the daemon: find a feed's hub, ask it for pushes, answer it at the callback.

    after each poll (``note_offer``)       the hub and self URL the feed names: the HTTP
                                          ``Link`` header first, else the feed's own links
                                          (atom:link rel=hub/self, JSON Feed ``hubs``)
    internal:websub, every minute         per subscription, decide/websub.py's next action:
      (``Subscriber.tick``)               POST hub.mode=subscribe|unsubscribe, hub.topic,
                                          hub.callback=<public_url>/<token>, hub.secret,
                                          hub.lease_seconds to the hub, through the feed
                                          session (the outbound address policy, per hop)
    the callback server (``Callback``)    GET: the hub's check, agreed only to what was
                                          asked (topic, mode, lease); POST: a delivery,
                                          kept only when X-Hub-Signature is the HMAC of the
                                          body under the subscription's secret, then handed
                                          to the daemon to parse and store as a poll's body
                                          is (same parser, CPU budget and store path)

The callback's token (the last path segment) names the subscription; it and the secret
are random, made afresh for each hub and topic. Every delivery is answered 2xx once read,
signed or not (the WebSub recommendation asks for it, and it tells a forger nothing); an
unknown token gets 410 Gone, which tells a hub to drop the subscription.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode, urljoin, urlsplit

import urllib3

from watcher.decide.websub import (
    LEASE_ASKED_S,
    Action,
    check_verification,
    disposable,
    next_action,
    retry_after,
    signature_ok,
    verify_overdue,
)
from watcher.poll import guard
from watcher.poll.fetch import FeedSession
from watcher.poll.httpd import Answer, BodyTooLarge, Request
from watcher.redact import redact_url
from watcher.store import Store
from watcher.store.websub import (
    delete_subscriptions,
    list_subscriptions,
    mark_denied,
    mark_failed,
    mark_requested,
    mark_verified,
    record_offer,
    record_push,
    subscription_by_token,
)
from watcher.types import Fetched, Mode, ParsedFeed, Subscription, WebSubSettings

log = logging.getLogger(__name__)

HUB_TIMEOUT_S = 20.0
MAX_HUB_REDIRECTS = 3
MAX_ANSWER = 2048  # bytes of a hub's error answer kept for the log and status
_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]*)*)")
_REL = re.compile(r"""rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))""", re.I)


# --- discovery -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    """The hub a feed names for push, and the topic (its self URL) to subscribe to."""

    hub: str | None
    topic: str | None


def find_offer(fetched: Fetched, parsed: ParsedFeed | None) -> Offer:
    """The feed's hub and topic: from the ``Link`` header if it names a hub, else from the
    document; the topic falls back to the URL fetched. Only http(s) URLs count."""
    headers = link_header(fetched.headers.get("link", ""), fetched.final_url)
    hubs = headers.get("hub", [])
    topic = next(iter(headers.get("self", [])), None)
    if not hubs and parsed is not None:
        hubs = [h for h in parsed.hubs if _is_http(h)]
        topic = topic or parsed.self_url
    if not hubs:
        return Offer(None, None)
    topic = topic if topic and _is_http(topic) else fetched.final_url
    return Offer(hubs[0], topic)


def link_header(value: str, base: str) -> dict[str, list[str]]:
    """rel -> absolute http(s) URLs of a ``Link`` header (several headers joined by ", ")."""
    found: dict[str, list[str]] = {}
    for target, params in _LINK.findall(value[:16384]):
        rel = _REL.search(params)
        if rel is None:
            continue
        try:
            url = urljoin(base, target.strip())
        except ValueError:  # a URL urllib cannot even split
            continue
        if not _is_http(url):
            continue
        for name in (rel[1] or rel[2] or "").lower().split():
            found.setdefault(name, []).append(url)
    return found


def _is_http(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def note_offer(
    store: Store, fetched: Fetched | None, parsed: ParsedFeed | None, feed_id: int, now: datetime
) -> None:
    """Record what a parsed poll says about the feed's hub (a 304 or a failure: nothing)."""
    if fetched is None or parsed is None or fetched.not_modified:
        return
    offer = find_offer(fetched, parsed)
    record_offer(store, feed_id, offer.hub, offer.topic, now)


# --- asking hubs ---------------------------------------------------------------------------


class HubError(Exception):
    """A hub refused a request or could not be reached; the message says which."""


def ask_hub(session: FeedSession, hub: str, fields: Mapping[str, str]) -> int:
    """POST the form to the hub (following 307/308 a few times); the 2xx status, else
    HubError. Every hop obeys the outbound address policy."""
    body = urlencode(fields).encode()
    headers = {
        **session.headers,
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
        "Accept": "text/plain, */*;q=0.5",
    }
    url = hub
    deadline = time.monotonic() + HUB_TIMEOUT_S
    with guard.scope(guard.FetchScope(session.policy)) as scope:
        for _ in range(MAX_HUB_REDIRECTS + 1):
            status, location, answer = _post(session, url, body, headers, deadline)
            if status in (307, 308) and location:
                url = urljoin(url, location)
                scope.hop += 1
                continue
            if 200 <= status < 300:
                return status
            first = answer.decode("utf-8", "replace").strip().splitlines()[:1]
            raise HubError(
                f"the hub answered HTTP {status}" + (f": {first[0][:200]}" if first else "")
            )
    raise HubError(f"more than {MAX_HUB_REDIRECTS} redirects from the hub")


def _post(
    session: FeedSession, url: str, body: bytes, headers: dict[str, str], deadline: float
) -> tuple[int, str | None, bytes]:
    left = deadline - time.monotonic()
    if left <= 0:
        raise HubError("the hub took longer than 20s")
    try:
        target = urllib3.util.parse_url(url)
        if target.scheme not in ("http", "https") or not target.host:
            raise HubError(f"not an http(s) hub URL: {redact_url(url)}")
        manager = session.manager_for(target.scheme, target.host)
        if isinstance(manager, urllib3.ProxyManager):
            guard.check_host(target.host)
        response = manager.urlopen(
            "POST",
            target.url,
            body=body,
            headers=headers,
            timeout=urllib3.Timeout(connect=min(left, 10.0), read=left),
            redirect=False,
            retries=False,
            preload_content=False,
        )
    except guard.AddressRefused as e:
        raise HubError(f"refused to connect to {e.host} ({e.address}): {e.reason}") from e
    except (urllib3.exceptions.HTTPError, OSError, ValueError) as e:
        raise HubError(f"cannot reach the hub ({type(e).__name__}: {e})") from e
    try:
        answer = response.read(MAX_ANSWER, decode_content=False) or b""
    except (urllib3.exceptions.HTTPError, OSError):
        answer = b""
    finally:
        response.release_conn()
    return response.status, response.headers.get("Location"), answer


class Subscriber:
    """The subscriptions' upkeep, one ``tick`` a minute in the daemon's internal executor."""

    def __init__(self, settings: WebSubSettings, session: FeedSession) -> None:
        self.settings = settings
        self.session = session

    def callback_url(self, token: str) -> str:
        assert self.settings.public_url is not None
        return f"{self.settings.public_url.rstrip('/')}/{token}"

    def tick(self, store: Store, now: datetime, stopping: Callable[[], bool]) -> None:
        """Ask the hubs what each subscription needs now."""
        subs = list_subscriptions(store)
        delete_subscriptions(store, [s.id for s in subs if disposable(s, now)])
        for sub in subs:
            if stopping():
                return
            if verify_overdue(sub, now):
                error = "the hub did not check the request within an hour"
                with store.transaction():
                    mark_failed(store, sub.id, sub.token, error, retry_after(sub.failures + 1, now))
                log.warning(
                    "websub failed feed=%s hub=%s error=%r", sub.feed_name, sub.sub_hub, error
                )
                continue
            action = next_action(sub, now)
            if action is not None:
                self.ask(store, sub, action, now)

    def ask(self, store: Store, sub: Subscription, action: Action, now: datetime) -> None:
        """Mark the request, then send it: a hub may check before its answer arrives."""
        fresh = action.fresh or sub.token is None or sub.secret is None
        token = secrets.token_urlsafe(24) if fresh else sub.token
        secret = secrets.token_hex(32) if fresh else sub.secret
        assert token is not None and secret is not None
        with store.transaction():
            mark_requested(store, sub.id, action.mode, action.hub, action.topic, token, secret, now)
        fields = {
            "hub.mode": action.mode.value,
            "hub.topic": action.topic,
            "hub.callback": self.callback_url(token),
        }
        if action.mode is Mode.SUBSCRIBE:
            fields["hub.secret"] = secret
            fields["hub.lease_seconds"] = str(LEASE_ASKED_S)
        try:
            ask_hub(self.session, action.hub, fields)
        except HubError as e:
            with store.transaction():
                mark_failed(store, sub.id, token, str(e), retry_after(sub.failures + 1, now))
            log.warning(
                "websub %s failed feed=%s hub=%s error=%r",
                action.mode.value,
                sub.feed_name,
                redact_url(action.hub),
                str(e),
            )
            return
        log.info(
            "websub %s asked feed=%s hub=%s",
            action.mode.value,
            sub.feed_name,
            redact_url(action.hub),
        )


# --- the callback --------------------------------------------------------------------------


@dataclass(frozen=True)
class Push:
    """A signed delivery, for the daemon to parse and store as the feed's body."""

    feed_id: int
    body: bytes
    content_type: str | None
    headers: Mapping[str, str]


# What the daemon does with a signed push: True when taken, False when it cannot now.
TakePush = Callable[[Push], bool]


class Callback:
    """Answers a hub's checks and deliveries at ``<public_url>/<token>``."""

    def __init__(
        self,
        open_store: Callable[[], Store],
        now: Callable[[], datetime],
        max_bytes: int,
        take: TakePush,
        count: Callable[[str], None] = lambda result: None,
    ) -> None:
        self._open_store = open_store
        self._now = now
        self.max_bytes = max_bytes
        self._take = take
        self._count = count

    def __call__(self, request: Request) -> Answer:
        token = request.path.rstrip("/").rpartition("/")[2]
        if request.method == "GET":
            return self._check(token, request.query)
        if request.method == "POST":
            return self._deliver(token, request)
        return Answer(405, b"GET or POST\n", headers={"Allow": "GET, POST"})

    def _check(self, token: str, query: Mapping[str, str]) -> Answer:
        mode = query.get("hub.mode", "")
        topic = query.get("hub.topic", "")
        store = self._open_store()
        try:
            sub = subscription_by_token(store, token) if token else None
            if mode == "denied":
                return self._denied(store, sub, topic, query.get("hub.reason", ""))
            verdict = check_verification(
                sub, mode, topic, query.get("hub.challenge", ""), query.get("hub.lease_seconds")
            )
            name = sub.feed_name if sub else "?"
            if not verdict.agree or sub is None:
                log.warning(
                    "websub check refused feed=%s mode=%s reason=%r", name, mode, verdict.reason
                )
                return Answer(404, b"not found\n")
            now = self._now()
            lease = None
            if verdict.lease_s is not None:
                lease = datetime.fromtimestamp(now.timestamp() + verdict.lease_s, now.tzinfo)
            with store.transaction():
                mark_verified(store, sub.id, Mode(mode), lease)
            log.info("websub %s feed=%s lease_s=%s", verdict.reason, name, verdict.lease_s)
            return Answer(200, query.get("hub.challenge", "").encode())
        finally:
            store.close()

    def _denied(self, store: Store, sub: Subscription | None, topic: str, reason: str) -> Answer:
        if sub is None or topic != sub.sub_topic:
            return Answer(404, b"not found\n")
        text = reason.strip()[:200] or "no reason given"
        with store.transaction():
            mark_denied(store, sub.id, text)
        log.warning("websub denied feed=%s reason=%r", sub.feed_name, text)
        return Answer(200, b"ok\n")

    def _deliver(self, token: str, request: Request) -> Answer:
        store = self._open_store()
        try:
            sub = subscription_by_token(store, token) if token else None
            if (
                sub is None
                or sub.feed_id is None
                or sub.token != token
                or not sub.live(self._now())
            ):
                self._count("dropped")
                return Answer(410, b"no such subscription\n")
            try:
                raw = request.body(self.max_bytes)
            except BodyTooLarge:
                log.warning(
                    "websub push dropped feed=%s reason=%r",
                    sub.feed_name,
                    f"larger than poll.max_bytes ({self.max_bytes} bytes)",
                )
                self._count("dropped")
                return Answer(202, b"too large: dropped\n")
            ok, why = signature_ok(raw, request.headers.get("x-hub-signature"), sub.secret)
            if not ok:
                with store.transaction():
                    record_push(store, sub.id, self._now(), accepted=False)
                log.warning("websub push rejected feed=%s reason=%r", sub.feed_name, why)
                self._count("rejected")
                return Answer(202, b"received\n")
            try:
                body = decode_body(raw, request.headers.get("content-encoding", ""), self.max_bytes)
            except ValueError as e:
                log.warning("websub push dropped feed=%s reason=%r", sub.feed_name, str(e))
                self._count("dropped")
                return Answer(202, b"received\n")
            push = Push(sub.feed_id, body, request.headers.get("content-type"), request.headers)
            if not self._take(push):
                self._count("dropped")
                return Answer(503, b"busy: try again\n", headers={"Retry-After": "30"})
            with store.transaction():
                record_push(store, sub.id, self._now(), accepted=True)
            return Answer(202, b"received\n")
        finally:
            store.close()


def decode_body(data: bytes, encoding: str, max_bytes: int) -> bytes:
    """A delivery's body without its gzip/deflate coding, at most ``max_bytes`` of it."""
    coding = encoding.strip().lower()
    if coding in ("", "identity"):
        return data
    if coding not in ("gzip", "x-gzip", "deflate"):
        raise ValueError(f"unsupported Content-Encoding {encoding!r}")
    wbits = 16 + zlib.MAX_WBITS if coding != "deflate" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(data, max_bytes + 1)
    except zlib.error as e:
        raise ValueError(f"body is not valid {coding} data: {e}") from e
    if len(out) > max_bytes:
        raise ValueError(f"larger than poll.max_bytes ({max_bytes} bytes) once decompressed")
    return out
