"""The ``email`` channel: sends each alert over SMTP; rendering lives in render.py.

Plain SMTP, STARTTLS or implicit TLS, with an optional login. Every smtplib or socket
failure becomes one DeliveryError saying whether a retry can help: connection trouble,
timeouts and SMTP 4xx replies are transient; SMTP 5xx replies and a refused login are
permanent. It never touches the database.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, replace
from email.utils import getaddresses
from typing import Any

from watcher.deliver.render import email_bytes, mail_domain
from watcher.exceptions import DeliveryError
from watcher.redact import scrub
from watcher.types import AlertMessage, ChannelConfig

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "[watcher]"


@dataclass(frozen=True)
class SmtpSettings:
    """The ``smtp:`` mapping of an email channel, with its defaults filled in."""

    host: str = "localhost"
    port: int = 25
    starttls: bool = False
    tls: bool = False
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0
    verify: bool = True  # check the server certificate (TLS and STARTTLS)
    ca_file: str | None = None  # trust this CA bundle instead of the system's

    @classmethod
    def from_options(cls, raw: Mapping[str, Any]) -> SmtpSettings:
        tls = bool(raw.get("tls") or False)
        starttls = bool(raw.get("starttls") or False)
        port = raw.get("port") or (465 if tls else 587 if starttls else 25)
        verify = raw.get("verify")
        ca_file = raw.get("ca_file")
        return cls(
            host=str(raw.get("host") or "localhost"),
            port=int(port),
            starttls=starttls,
            tls=tls,
            username=_text_or_none(raw.get("username")),
            password=_text_or_none(raw.get("password")),
            timeout=float(raw.get("timeout") or 30.0),
            verify=True if verify is None else bool(verify),
            ca_file=None if ca_file is None else str(ca_file),
        )

    @property
    def mode(self) -> str:
        return "tls" if self.tls else "starttls" if self.starttls else "plain"

    def tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def _text_or_none(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


class EmailChannel:
    """``type: email``: one multipart text + HTML message per alert."""

    def __init__(self, config: ChannelConfig, instance: str = "") -> None:
        options = config.options
        self.name = config.name
        self.sender = str(options.get("from", "watcher@localhost"))
        to = options.get("to", ())
        self.to = [to] if isinstance(to, str) else [str(t) for t in to]
        prefix = options.get("subject_prefix")
        self.prefix = DEFAULT_PREFIX if prefix is None else str(prefix)
        self.smtp = SmtpSettings.from_options(options.get("smtp") or {})
        self.domain = mail_domain(instance)
        self.secrets = config.secrets

    def describe(self) -> str:
        s = self.smtp
        login = f"{s.username}{':****' if s.password else ''}@" if s.username else ""
        return f"email {self.name} smtp://{login}{s.host}:{s.port} {s.mode} to={','.join(self.to)}"

    def send(self, message: AlertMessage) -> None:
        data = self._render(message)
        sender = getaddresses([self.sender])[0][1]
        recipients = [address for _, address in getaddresses(self.to)]
        try:
            refused = self._deliver(sender, recipients, data)
        except (smtplib.SMTPException, OSError) as e:
            what, permanent = classify_smtp_error(e)
            where = f"smtp://{self.smtp.host}:{self.smtp.port}"
            reason = scrub(_reason(e), [self.smtp.password or "", *self.secrets])
            text = f"{what}: {where}: {type(e).__name__}: {reason}"
            raise DeliveryError(self.name, message.alert_id, text, permanent=permanent) from e
        if refused:
            log.error(
                "recipients refused alert=%d channel=%s refused=%s",
                message.alert_id,
                self.name,
                ",".join(sorted(refused)),
            )

    def _render(self, message: AlertMessage) -> bytes:
        if self.prefix != DEFAULT_PREFIX and message.subject.startswith(DEFAULT_PREFIX):
            rest = message.subject[len(DEFAULT_PREFIX) :]
            subject = self.prefix + rest if self.prefix else rest.lstrip()
            message = replace(message, subject=subject)
        try:
            return email_bytes(message, sender=self.sender, to=self.to, domain=self.domain)
        except ValueError as e:
            text = f"refusing to send a message with unexpected headers: {e}"
            raise DeliveryError(self.name, message.alert_id, text, permanent=True) from e

    def _deliver(self, sender: str, recipients: list[str], data: bytes) -> dict[str, Any]:
        """Connect, upgrade, log in and send; the recipients refused while others took it."""
        s = self.smtp
        log.debug(
            "smtp connect channel=%s host=%s port=%d mode=%s", self.name, s.host, s.port, s.mode
        )
        client: smtplib.SMTP
        if s.tls:
            client = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=s.tls_context())
        else:
            client = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        try:
            if s.starttls:
                client.starttls(context=s.tls_context())
            if s.username:
                client.login(s.username, s.password or "")
            return dict(client.sendmail(sender, recipients, data))
        finally:
            _close_quietly(client)


def _close_quietly(client: smtplib.SMTP) -> None:
    """Say QUIT if the server still listens; a failure here cannot undo a sent message."""
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


def classify_smtp_error(error: BaseException) -> tuple[str, bool]:
    """What went wrong, in words that say what to check, and whether it is permanent."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        return "every recipient was refused (check to:)", bool(codes) and min(codes) >= 500
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return "SMTP login refused (check smtp.username and smtp.password)", error.smtp_code != 454
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return "SMTP server lacks a needed extension (check smtp.starttls and smtp.tls)", True
    if isinstance(error, smtplib.SMTPResponseException):
        return "SMTP server refused the message", error.smtp_code >= 500
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return "SMTP server hung up", False
    if isinstance(error, ssl.SSLCertVerificationError):
        return "SMTP server certificate not trusted (check smtp.ca_file)", False
    if isinstance(error, TimeoutError):
        return "SMTP server timed out (check smtp.timeout)", False
    if isinstance(error, OSError):
        return "cannot connect to the SMTP server (check smtp.host and smtp.port)", False
    return "SMTP error", False


def _reason(error: BaseException) -> str:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return "; ".join(
            f"{address}: {code} {_decode(text)}"
            for address, (code, text) in error.recipients.items()
        )
    if isinstance(error, smtplib.SMTPResponseException):
        return f"{error.smtp_code} {_decode(error.smtp_error)}"
    return str(error) or type(error).__name__


def _decode(text: bytes | str) -> str:
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return " ".join(raw.split())
