"""redact_url shows a URL's origin only; scrub removes known secrets from outside text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watcher.redact import excerpt, redact_url, scrub, without_credentials


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.example.org/T000/B000/XXXX", "https://hooks.example.org/…"),
        ("https://u:pw@hooks.example.org:8443/x?token=1", "https://hooks.example.org:8443/…"),
        ("https://example.org/?apikey=abc", "https://example.org/…"),
        ("https://example.org#frag", "https://example.org/…"),
        ("https://example.org/", "https://example.org/"),
        ("https://example.org", "https://example.org/"),
        ("http://[::1]:8080/hook", "http://[::1]:8080/…"),
        ("tgram://123456:ABCDEF/987", "tgram://…"),
        ("not a url", "(hidden URL)"),
        ("http://[broken/", "(hidden URL)"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@given(
    st.sampled_from(["http", "https"]),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.~%", min_size=4, max_size=20),
)
def test_redact_url_never_keeps_a_path_or_query_secret(scheme: str, secret: str) -> None:
    for url in (
        f"{scheme}://h.example/{secret}",
        f"{scheme}://h.example/x?k={secret}",
        f"{scheme}://user:{secret}@h.example/",
    ):
        assert secret not in redact_url(url).removeprefix(f"{scheme}://h.example")


def test_scrub_removes_values_their_long_words_and_encoded_forms() -> None:
    secrets = ["Bearer abcdefgh12345", "p@ss w0rd!", "ab"]
    text = "denied Bearer abcdefgh12345; token abcdefgh12345 p%40ss%20w0rd%21 ab"
    assert scrub(text, secrets) == "denied ****; token **** **** ab"


def test_excerpt_is_one_line_scrubbed_and_cut_at_the_limit() -> None:
    body = "line one\n\tsecret-token-1234 " + "x" * 1000
    kept = excerpt(body, ["secret-token-1234"], 500)
    assert kept.startswith("line one **** xxx") and len(kept) == 500
    assert "secret" not in kept


def test_without_credentials_keeps_scheme_host_port_and_path() -> None:
    assert without_credentials("https://u:p@h.example:81/a/b?k=s#f") == "https://h.example:81/a/b"
