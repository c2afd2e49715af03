"""The email, webhook and apprise channels, against real servers on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import hmac
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.receivers import SmtpReceiver, WebhookReceiver, free_port
from watcher.config import load_settings
from watcher.deliver.channels import make_channel
from watcher.deliver.email import EmailChannel
from watcher.deliver.render import render_text
from watcher.deliver.webhook import WebhookChannel, webhook_body
from watcher.exceptions import ConfigError, DeliveryError
from watcher.types import AlertItem, AlertMessage, AlsoReported, ChannelConfig

RULE = "nk-troops-kursk"
TITLE = "North Korean troops seen near Kursk"
SNIPPET = "… officials said **North Korean troops** moved towards **Kursk** on Monday …"


def make_message(alert_id: int = 7, title: str = TITLE) -> AlertMessage:
    item = AlertItem(
        id=42,
        title=title,
        link="https://news.example.org/world/kursk?id=1",
        feed="example-world",
        published_at=datetime(2024, 11, 5, 8, 30, 15, tzinfo=UTC),
        terms=("north korean troops", "kursk"),
        snippets=(SNIPPET,),
        also_reported_by=(AlsoReported("other-news", "https://other.example.org/kursk"),),
    )
    return AlertMessage(
        alert_id=alert_id,
        kind="match",
        created_at=datetime(2024, 11, 5, 9, 0, 0, tzinfo=UTC),
        rule_id=RULE,
        rule_description="North Korean troops in Kursk",
        severity="high",
        items=(item,),
        subject=f"[watcher] {RULE}: {title}",
    )


# --- email -------------------------------------------------------------------------------


def email_config(port: int, **smtp: Any) -> ChannelConfig:
    options = {
        "to": ("desk@example.org",),
        "from": "Watcher <watcher@example.org>",
        "smtp": {"host": "127.0.0.1", "port": port, "timeout": 5.0, **smtp},
    }
    return ChannelConfig(name="analysts", type="email", options=options)


def send_email(port: int, message: AlertMessage | None = None, **smtp: Any) -> None:
    EmailChannel(email_config(port, **smtp), "inst1").send(message or make_message())


def parts(mail: Any) -> dict[str, str]:
    return {p.get_content_type(): p.get_content() for p in mail.message.iter_parts()}


def test_email_is_multipart_with_subject_and_stable_message_id(
    smtp_server: SmtpReceiver,
) -> None:
    send_email(smtp_server.port)
    send_email(smtp_server.port)

    first, second = smtp_server.messages
    assert first.mail_from == "watcher@example.org"
    assert first.rcpt_tos == ["desk@example.org"]
    assert first.message["Subject"] == f"[watcher] {RULE}: {TITLE}"
    assert first.message["Message-ID"] == "<watcher-alert-7@inst1.watcher>"
    assert second.message["Message-ID"] == first.message["Message-ID"]
    assert first.message.get_content_type() == "multipart/alternative"
    body = parts(first)
    assert set(body) == {"text/plain", "text/html"}
    assert "**North Korean troops**" in body["text/plain"]
    assert "<b>North Korean troops</b>" in body["text/html"]
    assert "https://news.example.org/world/kursk?id=1" in body["text/plain"]


def test_email_message_id_differs_per_alert(smtp_server: SmtpReceiver) -> None:
    send_email(smtp_server.port, make_message(alert_id=1))
    send_email(smtp_server.port, make_message(alert_id=2))

    ids = [m.message["Message-ID"] for m in smtp_server.messages]
    assert len(set(ids)) == 2


def test_email_never_unescapes_feed_html(smtp_server: SmtpReceiver) -> None:
    send_email(smtp_server.port, make_message(title="<script>alert(1)</script> Kursk"))

    html = parts(smtp_server.messages[0])["text/html"]
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Kursk" in html


@pytest.mark.parametrize(
    "title",
    [
        "Kursk\r\nBcc: evil@example.org",
        "=?utf-8?q?x=0D=0ABcc:_evil@example.org?=",
        "Kursk\nBcc: evil@example.org\u2028X-Other: 1",
    ],
)
def test_email_header_injection_from_a_title_is_impossible(
    smtp_server: SmtpReceiver, title: str
) -> None:
    send_email(smtp_server.port, make_message(title=title))

    (mail,) = smtp_server.messages
    head = mail.raw.split(b"\r\n\r\n", 1)[0]
    names = [line.split(b":", 1)[0].lower() for line in head.split(b"\r\n") if line[:1] != b" "]
    assert names.count(b"subject") == 1
    assert b"bcc" not in names and b"x-other" not in names
    assert mail.message["Bcc"] is None
    assert mail.rcpt_tos == ["desk@example.org"]
    assert "evil@example.org" in mail.message["Subject"]  # kept as plain text, on one line
    assert "\n" not in mail.message["Subject"] and "\r" not in mail.message["Subject"]


def test_email_long_non_ascii_title_arrives_whole_on_one_subject(
    smtp_server: SmtpReceiver,
) -> None:
    title = "Північнокорейські війська помічені біля Курська " * 3
    send_email(smtp_server.port, make_message(title=title.strip()))

    subject = smtp_server.messages[0].message["Subject"]
    assert subject.startswith(f"[watcher] {RULE}: Північнокорейські війська")
    assert len(subject) <= 200 and "\n" not in subject


@pytest.mark.parametrize(
    ("prefix", "subject"), [("[desk]", f"[desk] {RULE}: {TITLE}"), ("", f"{RULE}: {TITLE}")]
)
def test_email_subject_prefix_replaces_the_default(
    smtp_server: SmtpReceiver, prefix: str, subject: str
) -> None:
    config = email_config(smtp_server.port)
    options = {**config.options, "subject_prefix": prefix}
    EmailChannel(ChannelConfig("analysts", "email", options), "inst1").send(make_message())

    assert smtp_server.messages[0].message["Subject"] == subject


def test_email_logs_in() -> None:
    with SmtpReceiver(users={"alice": "s3cret"}) as server:
        send_email(server.port, username="alice", password="s3cret")
    assert server.messages[0].login == "alice"


def test_email_refused_login_is_permanent() -> None:
    with SmtpReceiver(users={"alice": "s3cret"}) as server, pytest.raises(DeliveryError) as info:
        send_email(server.port, username="alice", password="wrong")
    assert info.value.permanent
    assert "login refused" in str(info.value) and "535" in str(info.value)
    assert server.messages == []


def test_email_server_down_is_transient() -> None:
    with pytest.raises(DeliveryError) as info:
        send_email(free_port())
    assert not info.value.permanent
    assert info.value.channel == "analysts" and info.value.alert_id == 7
    assert "cannot connect" in str(info.value)


def test_email_silent_server_times_out_as_transient() -> None:
    with socket.socket() as listener:  # accepts connections (backlog) but never greets
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with pytest.raises(DeliveryError) as info:
            send_email(listener.getsockname()[1], timeout=0.2)
    assert not info.value.permanent
    assert "timed out" in str(info.value)


def test_email_550_recipient_is_permanent(smtp_server: SmtpReceiver) -> None:
    smtp_server.rcpt_reply = "550 5.1.1 no such mailbox"
    with pytest.raises(DeliveryError) as info:
        send_email(smtp_server.port)
    assert info.value.permanent
    assert "550" in str(info.value) and "desk@example.org" in str(info.value)


def test_email_4xx_is_transient_and_a_retry_delivers(smtp_server: SmtpReceiver) -> None:
    smtp_server.data_replies = ["451 4.3.0 try again later"]
    with pytest.raises(DeliveryError) as info:
        send_email(smtp_server.port)
    assert not info.value.permanent and "451" in str(info.value)

    send_email(smtp_server.port)
    assert len(smtp_server.messages) == 1


def test_email_554_data_is_permanent(smtp_server: SmtpReceiver) -> None:
    smtp_server.data_replies = ["554 5.7.1 rejected as spam"]
    with pytest.raises(DeliveryError) as info:
        send_email(smtp_server.port)
    assert info.value.permanent


def test_email_describe_masks_the_password() -> None:
    channel = EmailChannel(email_config(2525, username="alice", password="s3cret"), "x")
    text = channel.describe()
    assert "s3cret" not in text
    assert "alice:****@127.0.0.1:2525" in text and "desk@example.org" in text


# --- email over TLS ----------------------------------------------------------------------


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1, made by the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
        + ["-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2"]
        + ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return Certificate(cert, key)


@pytest.fixture
def starttls_server(certificate: Certificate) -> Iterator[SmtpReceiver]:
    with SmtpReceiver(users={"alice": "s3cret"}, tls=certificate.server_context()) as server:
        yield server


def test_email_starttls_with_login(starttls_server: SmtpReceiver, certificate: Certificate) -> None:
    send_email(
        starttls_server.port,
        starttls=True,
        ca_file=str(certificate.cert),
        username="alice",
        password="s3cret",
    )
    assert starttls_server.messages[0].login == "alice"


def test_email_implicit_tls(certificate: Certificate) -> None:
    with SmtpReceiver(implicit_tls=certificate.server_context()) as server:
        send_email(server.port, tls=True, ca_file=str(certificate.cert))
    assert server.messages[0].message["Subject"] == f"[watcher] {RULE}: {TITLE}"


def test_email_untrusted_certificate_fails_unless_verify_is_off(
    starttls_server: SmtpReceiver,
) -> None:
    with pytest.raises(DeliveryError) as info:
        send_email(starttls_server.port, starttls=True)
    assert "certificate" in str(info.value)
    assert starttls_server.messages == []

    send_email(starttls_server.port, starttls=True, verify=False)
    assert len(starttls_server.messages) == 1


def test_email_without_starttls_on_a_server_requiring_it_fails(
    starttls_server: SmtpReceiver,
) -> None:
    with pytest.raises(DeliveryError) as info:
        send_email(starttls_server.port)
    assert info.value.permanent  # 530 "must issue STARTTLS first": fix the config
    assert starttls_server.messages == []


# --- webhook -----------------------------------------------------------------------------


def webhook_config(url: str, **options: Any) -> ChannelConfig:
    return ChannelConfig(name="ops-hook", type="webhook", options={"url": url, **options})


def send_webhook(server: WebhookReceiver, message: AlertMessage | None = None, **opts: Any) -> None:
    WebhookChannel(webhook_config(server.url(), **opts), "inst1").send(message or make_message())


def test_webhook_posts_the_spec_json_body(webhook_server: WebhookReceiver) -> None:
    send_webhook(webhook_server)

    (request,) = webhook_server.requests
    assert request.path == "/hook"
    assert request.header("Content-Type") == "application/json"
    assert request.header("X-Watcher-Alert-Id") == "7"
    assert request.header("X-Watcher-Signature") is None
    assert request.json() == {
        "alert_id": "7",
        "kind": "match",
        "created_at": "2024-11-05T09:00:00Z",
        "rule": {
            "id": RULE,
            "description": "North Korean troops in Kursk",
            "severity": "high",
        },
        "items": [
            {
                "id": 42,
                "title": TITLE,
                "link": "https://news.example.org/world/kursk?id=1",
                "feed": "example-world",
                "published_at": "2024-11-05T08:30:15Z",
                "terms": ["north korean troops", "kursk"],
                "snippets": [SNIPPET],
                "matched_in": [],
                "also_reported_by": [
                    {"feed": "other-news", "link": "https://other.example.org/kursk"}
                ],
            }
        ],
    }


def test_webhook_signs_the_exact_body_and_sends_custom_headers(
    webhook_server: WebhookReceiver,
) -> None:
    send_webhook(webhook_server, secret="hush", headers={"Authorization": "Bearer tok"})

    (request,) = webhook_server.requests
    expected = hmac.new(b"hush", request.body, hashlib.sha256).hexdigest()
    assert request.header("X-Watcher-Signature") == f"sha256={expected}"
    assert request.header("Authorization") == "Bearer tok"


def test_webhook_custom_headers_cannot_replace_the_alert_headers(
    webhook_server: WebhookReceiver,
) -> None:
    headers = {"X-Watcher-Alert-Id": "999", "Content-Type": "text/plain"}
    send_webhook(webhook_server, headers=headers)

    (request,) = webhook_server.requests
    assert request.header("X-Watcher-Alert-Id") == "7"
    assert request.header("Content-Type") == "application/json"


def test_webhook_times_are_utc_with_z_and_missing_ones_null() -> None:
    message = make_message()
    kyiv = timezone(timedelta(hours=2))
    item = message.items[0]
    undated = AlertItem(**{**item.__dict__, "published_at": None})
    local = AlertMessage(
        **{**message.__dict__, "created_at": datetime(2024, 1, 1, 2, 0, tzinfo=kyiv)}
    )
    body = webhook_body(AlertMessage(**{**local.__dict__, "items": (undated,)}))
    assert body["created_at"] == "2024-01-01T00:00:00Z"
    assert body["items"][0]["published_at"] is None


@pytest.mark.parametrize(
    ("status", "permanent"),
    [(500, False), (503, False), (408, False), (429, False), (400, True), (404, True)],
)
def test_webhook_failure_classes(
    webhook_server: WebhookReceiver, status: int, permanent: bool
) -> None:
    webhook_server.statuses = [status]
    with pytest.raises(DeliveryError) as info:
        send_webhook(webhook_server)
    assert info.value.permanent is permanent
    assert f"HTTP {status}" in str(info.value)


def test_webhook_retry_after_500_sends_the_same_alert(webhook_server: WebhookReceiver) -> None:
    webhook_server.statuses = [500, 200]
    with pytest.raises(DeliveryError):
        send_webhook(webhook_server, secret="hush")
    send_webhook(webhook_server, secret="hush")

    first, second = webhook_server.requests
    assert first.body == second.body
    assert first.header("X-Watcher-Alert-Id") == second.header("X-Watcher-Alert-Id") == "7"
    assert first.header("X-Watcher-Signature") == second.header("X-Watcher-Signature")


def test_webhook_redirect_is_not_followed(webhook_server: WebhookReceiver) -> None:
    webhook_server.statuses = [302]
    with pytest.raises(DeliveryError) as info:
        send_webhook(webhook_server)
    assert info.value.permanent
    assert len(webhook_server.requests) == 1


def test_webhook_receiver_that_never_answers_is_a_transient_timeout(
    webhook_server: WebhookReceiver,
) -> None:
    webhook_server.hang = True
    with pytest.raises(DeliveryError) as info:
        send_webhook(webhook_server, timeout=0.3)
    assert not info.value.permanent
    assert "timed out" in str(info.value)


def test_webhook_connection_refused_is_transient() -> None:
    config = webhook_config(f"http://127.0.0.1:{free_port()}/hook")
    with pytest.raises(DeliveryError) as info:
        WebhookChannel(config, "inst1").send(make_message())
    assert not info.value.permanent
    assert "cannot reach" in str(info.value)


def test_webhook_describe_masks_secrets() -> None:
    url = "https://bob:pw9x@hooks.example.org/services/T0123456789ABCDEF/hook?token=q7q7"
    config = webhook_config(url, secret="hush", headers={"Authorization": "Bearer zz8zz"})
    text = WebhookChannel(config, "x").describe()
    for secret in ("pw9x", "T0123456789ABCDEF", "q7q7", "hush", "zz8zz"):
        assert secret not in text
    assert "hooks.example.org" in text and "Authorization" in text and "signed" in text


# --- apprise -----------------------------------------------------------------------------


def apprise_channel(*urls: str) -> Any:
    pytest.importorskip("apprise")
    config = ChannelConfig(name="chat", type="apprise", options={"urls": urls})
    return make_channel(config, "inst1")


# Apprise's plugin loader imports the deprecated stdlib module imghdr.
apprise_warnings = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@apprise_warnings
def test_apprise_sends_title_and_text_body(webhook_server: WebhookReceiver) -> None:
    url = f"json://127.0.0.1:{webhook_server.port}/notify"
    message = make_message()
    apprise_channel(url).send(message)

    (request,) = webhook_server.requests
    assert request.path == "/notify"
    body = request.json()
    assert body["title"] == f"[watcher] {RULE}: {TITLE}"
    assert body["message"] == render_text(message).strip()
    assert "**North Korean troops**" in body["message"]


@apprise_warnings
def test_apprise_sends_through_every_url(webhook_server: WebhookReceiver) -> None:
    base = f"json://127.0.0.1:{webhook_server.port}"
    apprise_channel(f"{base}/a", f"{base}/b").send(make_message())

    assert sorted(r.path for r in webhook_server.requests) == ["/a", "/b"]


@apprise_warnings
def test_apprise_failure_is_transient_and_names_the_url(webhook_server: WebhookReceiver) -> None:
    webhook_server.statuses = [500]
    channel = apprise_channel(f"json://user:pw@127.0.0.1:{webhook_server.port}/notify")
    with pytest.raises(DeliveryError) as info:
        channel.send(make_message())
    assert not info.value.permanent
    assert f"json://user:****@127.0.0.1:{webhook_server.port}/notify" in str(info.value)


@apprise_warnings
def test_apprise_describe_uses_the_privacy_form() -> None:
    text = apprise_channel("json://user:pw@127.0.0.1:8080/notify").describe()
    assert text == "apprise chat json://user:****@127.0.0.1:8080/notify"


@apprise_warnings
def test_apprise_unknown_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        apprise_channel("nosuchservice://x")
    assert "channels.chat.urls[0]" in str(info.value)


def test_apprise_missing_extra_is_a_clear_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "apprise", None)  # makes `import apprise` fail
    config = ChannelConfig(name="chat", type="apprise", options={"urls": ("json://x/y",)})
    with pytest.raises(ConfigError) as info:
        make_channel(config, "inst1")
    assert "pip install 'watcher[apprise]'" in str(info.value)
    assert "channels.chat.type" in str(info.value)


# --- from watcher.yaml -------------------------------------------------------------------


def test_channels_built_from_a_config_file_deliver(
    tmp_path: Path, smtp_server: SmtpReceiver, webhook_server: WebhookReceiver
) -> None:
    config = tmp_path / "watcher.yaml"
    config.write_text(
        "rules: []\n"
        "channels:\n"
        "  analysts:\n"
        "    type: email\n"
        "    to: [desk@example.org]\n"
        "    from: watcher@example.org\n"
        f"    smtp: {{host: 127.0.0.1, port: {smtp_server.port}, timeout: 5s}}\n"
        "  ops-hook:\n"
        "    type: webhook\n"
        f"    url: {webhook_server.url()}\n"
        '    secret: "${WEBHOOK_SECRET}"\n'
        "    timeout: 5s\n"
    )
    settings = load_settings(config, {"WEBHOOK_SECRET": "hush"})
    for name in ("analysts", "ops-hook"):
        make_channel(settings.channels[name], "inst1").send(make_message())

    assert smtp_server.messages[0].message["Message-ID"] == "<watcher-alert-7@inst1.watcher>"
    request = webhook_server.requests[0]
    expected = hmac.new(b"hush", request.body, hashlib.sha256).hexdigest()
    assert request.header("X-Watcher-Signature") == f"sha256={expected}"


# --- Standard Webhooks (signature: standard) -------------------------------------------------

STANDARD_SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()


def verify_standard_webhook(secret: str, headers: dict[str, str], body: bytes) -> str:
    """A receiver's check, written from the Standard Webhooks spec and nothing of watcher's:
    the key is the base64 after ``whsec_``; the signed content is ``id.timestamp.body``;
    ``webhook-signature`` lists ``version,base64`` pairs; the time must be within 5 minutes.
    Returns the webhook id; raises AssertionError on any mismatch."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id, stamp = headers["webhook-id"], headers["webhook-timestamp"]
    assert "." not in msg_id and stamp.isdigit()
    assert abs(time.time() - int(stamp)) <= 300, "stale or future timestamp"
    content = msg_id.encode() + b"." + stamp.encode() + b"." + body
    expected = hmac.new(key, content, hashlib.sha256).digest()
    sent = [s.split(",", 1) for s in headers["webhook-signature"].split(" ")]
    assert any(
        v == "v1" and hmac.compare_digest(base64.b64decode(sig), expected) for v, sig in sent
    )
    return msg_id


def test_standard_webhooks_signature_verifies_with_the_spec(
    webhook_server: WebhookReceiver,
) -> None:
    webhook_server.statuses = [503, 200]
    with pytest.raises(DeliveryError):
        send_webhook(webhook_server, secret=STANDARD_SECRET, signature="standard")
    send_webhook(webhook_server, secret=STANDARD_SECRET, signature="standard")

    first, second = webhook_server.requests
    for request in (first, second):
        assert verify_standard_webhook(STANDARD_SECRET, request.headers, request.body) == "7"
        assert request.header("X-Watcher-Alert-Id") == "7"  # still sent
        assert request.header("X-Watcher-Signature") is None
    assert first.header("webhook-id") == second.header("webhook-id")  # the same on a retry
    tampered = second.body.replace(b"Kursk", b"Kyiv")
    with pytest.raises(AssertionError):
        verify_standard_webhook(STANDARD_SECRET, second.headers, tampered)
    with pytest.raises(AssertionError):  # a replayed request an hour later is refused
        old = {**second.headers, "webhook-timestamp": str(int(time.time()) - 3600)}
        verify_standard_webhook(STANDARD_SECRET, old, second.body)


def test_standard_signature_binds_the_timestamp_of_each_attempt() -> None:
    channel = WebhookChannel(
        webhook_config("http://127.0.0.1:9/hook", secret=STANDARD_SECRET, signature="standard")
    )
    one = channel.request_headers(7, b"{}", timestamp=1_700_000_000)
    two = channel.request_headers(7, b"{}", timestamp=1_700_000_060)
    assert (one["webhook-id"], one["webhook-timestamp"]) == ("7", "1700000000")
    assert one["webhook-signature"] != two["webhook-signature"]
    assert "Standard Webhooks" in channel.describe()
    assert STANDARD_SECRET not in channel.describe()


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        (None, "signature: standard needs a secret"),
        ("hush", "must be whsec_ followed by base64"),
        ("whsec_not*base64", "not valid base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "to 64 bytes, not 5"),
    ],
)
def test_standard_signature_needs_a_whsec_secret(
    tmp_path: Path, secret: str | None, message: str
) -> None:
    config = tmp_path / "watcher.yaml"
    line = f"    secret: {secret}\n" if secret else ""
    config.write_text(
        "rules: []\nchannels:\n  hook:\n    type: webhook\n    url: https://h.example.org/\n"
        f"    signature: standard\n{line}"
    )
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert "channels.hook.secret" in str(info.value) and message in str(info.value)
    if secret:
        assert secret not in str(info.value)


def test_a_standard_secret_from_the_environment_is_checked_when_the_channel_is_built(
    tmp_path: Path,
) -> None:
    config = tmp_path / "watcher.yaml"
    config.write_text(
        "rules: []\nchannels:\n  hook:\n    type: webhook\n    url: https://h.example.org/\n"
        '    signature: standard\n    secret: "${HOOK_SECRET}"\n'
    )
    assert load_settings(config, {"HOOK_SECRET": STANDARD_SECRET}).channels["hook"]
    with pytest.raises(ConfigError, match="must be whsec_"):
        load_settings(config, {"HOOK_SECRET": "plain-secret-value"})
    unset = load_settings(config, {})  # a command that does not deliver needs no secret
    with pytest.raises(ConfigError, match="HOOK_SECRET is not set"):
        make_channel(unset.channels["hook"], "inst1")
