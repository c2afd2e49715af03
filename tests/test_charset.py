"""Decoding a fetched page: BOM, then the header's charset, then <meta>, then UTF-8 or 1252."""

from __future__ import annotations

import pytest

from watcher.poll.charset import decode_html

KURSK_RU = "Курская область"


def meta(charset: str) -> bytes:
    return f'<html><head><meta charset="{charset}"><title>t</title></head><body>'.encode()


@pytest.mark.parametrize(
    ("data", "content_type", "encoding"),
    [
        # a byte order mark wins over everything
        (
            b"\xef\xbb\xbf" + meta("windows-1251") + KURSK_RU.encode(),
            "text/html; charset=koi8-r",
            "utf-8",
        ),
        # the header wins over the meta
        (meta("utf-8") + KURSK_RU.encode("koi8-r"), "text/html; charset=KOI8-R", "koi8-r"),
        (meta("utf-8") + KURSK_RU.encode("koi8-r"), 'text/html; charset="koi8-r"', "koi8-r"),
        # the meta, in both of its spellings
        (meta("windows-1251") + KURSK_RU.encode("cp1251"), "text/html", "cp1251"),
        (
            b'<meta http-equiv="Content-Type" content="text/html; charset=windows-1251">'
            + KURSK_RU.encode("cp1251"),
            None,
            "cp1251",
        ),
        # labels as browsers read them
        (meta("gb2312") + "库尔斯克".encode("gbk"), None, "gbk"),
        (meta("euc-kr") + "쿠르스크".encode("cp949"), None, "cp949"),
        (meta("shift_jis") + "クルスク".encode("cp932"), None, "cp932"),
        (meta("iso-8859-1") + "caf\xe9 \u20ac".encode("cp1252"), None, "cp1252"),
        # a meta naming UTF-16 means UTF-8; an unknown or unsafe label is ignored
        (meta("utf-16") + KURSK_RU.encode(), None, "utf-8"),
        (meta("no-such-charset") + KURSK_RU.encode(), None, "utf-8"),
        (meta("utf-7") + KURSK_RU.encode(), None, "utf-8"),
        (meta("base64") + KURSK_RU.encode(), None, "utf-8"),
        # nothing declared: UTF-8 when valid, else windows-1252
        (b"<p>" + KURSK_RU.encode(), None, "utf-8"),
        (b"<p>caf\xe9 \x80", None, "cp1252"),
    ],
)
def test_the_declared_encoding_is_used(
    data: bytes, content_type: str | None, encoding: str
) -> None:
    text, used = decode_html(data, content_type)
    assert used == encoding
    assert any(word in text for word in (KURSK_RU, "库尔斯克", "쿠르스크", "クルスク", "café €"))


def test_utf16_with_a_byte_order_mark() -> None:
    data = "\ufeff<p>Курск</p>".encode("utf-16-le")
    assert decode_html(data, "text/html") == ("<p>Курск</p>", "utf-16-le")


def test_bytes_invalid_in_the_declared_encoding_become_replacement_characters() -> None:
    text, _ = decode_html(b"<p>ok \xff\xfe end</p>", "text/html; charset=utf-8")
    assert text == "<p>ok \ufffd\ufffd end</p>"


def test_a_meta_far_down_the_page_is_not_looked_for() -> None:
    data = b"<html><head>" + b" " * 5000 + meta("windows-1251") + "Курск".encode("cp1251")
    assert decode_html(data, None)[1] == "cp1252"
