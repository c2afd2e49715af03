"""The feed session's own client duties: proxies from the environment and TLS verification.

Real servers on 127.0.0.1: a ``FeedServer`` doubles as an HTTP proxy (it records the
absolute URLs a proxy is sent), and a TLS server uses a certificate made for the test.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.feedgen import Entry, rss
from tests.servers import FeedServer
from watcher.exceptions import FetchError
from watcher.poll.fetch import fetch_feed, make_session

BODY = rss([Entry("1", "Through the proxy")])
FAR = "http://feeds.example.invalid/world.xml"  # resolvable only by the proxy


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_http_proxy_from_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    with FeedServer() as proxy:
        proxy.set(FAR, BODY, etag='"p1"')
        clean_env.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        with make_session("watcher-tests/1.0") as session:
            fetched = fetch_feed(session, FAR, timeout=5)
            again = fetch_feed(session, FAR, etag=fetched.etag, timeout=5)
    assert (fetched.status, fetched.content) == (200, BODY)
    assert again.not_modified
    assert [r.path for r in proxy.requests] == [FAR, FAR]
    assert proxy.requests[0].header("User-Agent") == "watcher-tests/1.0"


def test_proxy_credentials_in_the_proxy_url_are_sent(clean_env: pytest.MonkeyPatch) -> None:
    with FeedServer() as proxy:
        proxy.set(FAR, BODY)
        clean_env.setenv("http_proxy", f"http://ann:p%40ss@127.0.0.1:{proxy.port}")
        with make_session("watcher-tests/1.0") as session:
            fetch_feed(session, FAR, timeout=5)
    # "ann:p@ss" in base64
    assert proxy.requests[0].header("Proxy-Authorization") == "Basic YW5uOnBAc3M="


def test_no_proxy_hosts_are_fetched_directly(
    clean_env: pytest.MonkeyPatch, feed_server: FeedServer
) -> None:
    feed_server.set("/direct.xml", BODY)
    with FeedServer() as proxy:
        clean_env.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        clean_env.setenv("NO_PROXY", "localhost,127.0.0.1")
        with make_session("watcher-tests/1.0") as session:
            assert fetch_feed(session, feed_server.url("/direct.xml")).content == BODY
        assert proxy.requests == []
    assert [r.path for r in feed_server.requests] == ["/direct.xml"]


def test_an_unreachable_proxy_is_named_in_the_error(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # discard port: nothing listens
    with make_session("watcher-tests/1.0") as session, pytest.raises(FetchError) as caught:
        fetch_feed(session, FAR, timeout=5)
    assert caught.value.message.startswith("proxy error (")
    assert "Connection refused" in caught.value.message


# --- TLS --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (made with the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[FeedServer]:
    server = FeedServer()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    httpd = server._httpd
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    with server:
        yield server


def test_an_untrusted_certificate_is_refused(
    clean_env: pytest.MonkeyPatch, tls_server: FeedServer
) -> None:
    tls_server.set("/feed.xml", BODY)
    url = tls_server.url("/feed.xml").replace("http://", "https://")
    with make_session("watcher-tests/1.0") as session, pytest.raises(FetchError) as caught:
        fetch_feed(session, url, timeout=5)
    assert caught.value.message.startswith("TLS error")
    assert "CERTIFICATE_VERIFY_FAILED" in caught.value.message
    assert tls_server.requests == []


def test_a_ca_bundle_named_in_the_environment_is_trusted(
    clean_env: pytest.MonkeyPatch, tls_server: FeedServer, certificate: tuple[Path, Path]
) -> None:
    tls_server.set("/feed.xml", BODY)
    clean_env.setenv("REQUESTS_CA_BUNDLE", str(certificate[0]))
    url = tls_server.url("/feed.xml").replace("http://", "https://")
    with make_session("watcher-tests/1.0") as session:
        assert fetch_feed(session, url, timeout=5).content == BODY
