"""Real local alert receivers for tests: an SMTP server and a webhook HTTP server.

Both listen on 127.0.0.1 only, record what they receive, and answer what the test
tells them to (an SMTP reply code, an HTTP status, or no answer at all).
"""

from __future__ import annotations

import email
import json
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler
from typing import Any, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.servers import ThreadedServer


def free_port() -> int:
    """A port nothing listens on right now (the SMTP controller needs it chosen first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- SMTP ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage
    login: str | None  # the user name of an authenticated session


class _Handler:
    def __init__(self, server: SmtpReceiver) -> None:
        self.server = server

    async def handle_RCPT(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.server.rcpt_reply:
            return self.server.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.server.data_replies:
            return self.server.data_replies.pop(0)
        raw = bytes(envelope.original_content)
        message = cast(EmailMessage, email.message_from_bytes(raw, policy=default_policy))
        login = session.auth_data.login.decode() if session.authenticated else None
        mail = ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), raw, message, login)
        self.server.messages.append(mail)
        return "250 Message accepted"


class SmtpReceiver:
    """An aiosmtpd server: ``messages`` received; ``rcpt_reply``/``data_replies`` to refuse.

    ``users`` (name -> password) turns on AUTH; ``tls`` serves STARTTLS with that
    context; ``implicit_tls`` wraps the whole connection (SMTPS).
    """

    def __init__(
        self,
        *,
        users: dict[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
        implicit_tls: ssl.SSLContext | None = None,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.messages: list[ReceivedMail] = []
        self.rcpt_reply: str | None = None
        self.data_replies: list[str] = []
        self.users = users
        kwargs: dict[str, Any] = {"auth_require_tls": False}
        if users is not None:
            kwargs["authenticator"] = self._authenticate
        if tls is not None:
            kwargs.update(tls_context=tls, require_starttls=True)
        self._controller = Controller(
            _Handler(self),
            hostname=self.host,
            port=self.port,
            ssl_context=implicit_tls,
            ready_timeout=10,
            **kwargs,
        )

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword) or self.users is None:
            return AuthResult(success=False, handled=False)
        name, password = auth_data.login.decode(), auth_data.password.decode()
        ok = self.users.get(name) == password
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def start(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- webhook ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookReceiver(ThreadedServer):
    """An HTTP server recording each request; ``statuses`` are answered in turn, then 200.

    ``hang = True`` records a request and never answers it (until the server stops);
    ``answer`` replaces the JSON body of every answer.
    """

    statuses: list[int] = field(default_factory=list)
    hang: bool = False
    answer: bytes | None = None
    requests: list[ReceivedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.serve(_handler_for(self))

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def record(self, request: ReceivedRequest) -> int | None:
        """Keep the request; the status to answer, or None to answer nothing."""
        with self._lock:
            self.requests.append(request)
            if self.hang:
                return None
            return self.statuses.pop(0) if self.statuses else 200


def _handler_for(receiver: WebhookReceiver) -> Callable[..., BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Keep test output quiet."""

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = receiver.record(ReceivedRequest("POST", self.path, headers, body))
            if status is None:
                receiver.stopping.wait()
                self.close_connection = True
                return
            answer = receiver.answer or json.dumps({"status": status}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    return Handler
