"""Outside text made safe to show: printable(), JSON output and log lines."""

from __future__ import annotations

import json
import logging
import sys

from hypothesis import given
from hypothesis import strategies as st

from watcher._logging import LOG_FORMAT, SafeFormatter
from watcher.printable import dumps_json, printable, printable_value

HOSTILE = "Kursk \x1b]52;c;ZXZpbA==\x07 \x1b[2J \x9b6n \x00end"


def is_control(ch: str) -> bool:
    return (ord(ch) < 0x20 and ch != "\t") or 0x7F <= ord(ch) <= 0x9F


def test_controls_become_four_visible_characters() -> None:
    assert printable(HOSTILE) == "Kursk \\x1b]52;c;ZXZpbA==\\x07 \\x1b[2J \\x9b6n \\x00end"


def test_tab_stays_and_newline_is_escaped_unless_kept() -> None:
    assert printable("a\tb\nc\rd") == "a\tb\\x0ac\\x0dd"
    assert printable("a\tb\nc\rd", newlines=True) == "a\tb\nc\\x0dd"


def test_delete_and_every_c1_control_are_escaped() -> None:
    assert printable("\x7f\x80\x9f\xa0é") == "\\x7f\\x80\\x9f\xa0é"


def test_printable_value_shows_none_as_empty() -> None:
    assert printable_value(None) == ""
    assert printable_value(3) == "3"
    assert printable_value("a\x1bb") == "a\\x1bb"


def test_controls_are_shown_and_tab_and_other_scripts_kept() -> None:
    assert printable("a\x9bb") == "a\\x9bb"
    assert printable("a\nb") == "a\\x0ab"
    assert printable("Kursk\tКурск 库尔斯克") == "Kursk\tКурск 库尔斯克"


@given(st.text())
def test_printable_output_has_no_control_and_keeps_other_text(text: str) -> None:
    shown = printable(text)
    assert not any(is_control(ch) for ch in shown)
    if not any(is_control(ch) for ch in text):
        assert shown == text


@given(
    st.recursive(
        st.text() | st.integers() | st.none(), lambda c: st.lists(c) | st.dictionaries(st.text(), c)
    )
)
def test_json_output_has_no_raw_control_and_round_trips(data: object) -> None:
    text = dumps_json(data)
    body = text.replace("\n", "")  # the indentation's own line breaks
    assert not any(is_control(ch) for ch in body)
    assert json.loads(text) == data


def test_json_escapes_c1_as_u00nn_and_keeps_other_text_readable() -> None:
    text = dumps_json({"title": "Курск \x9b\x1b[2J"}, indent=None)
    assert text == '{"title": "Курск \\u009b\\u001b[2J"}'


def record(msg: object, args: object = (), exc_info: object = None) -> logging.LogRecord:
    return logging.LogRecord("watcher.x", logging.WARNING, __file__, 1, msg, args, exc_info)  # type: ignore[arg-type]


def test_log_arguments_lose_controls_and_newlines_but_keep_the_format() -> None:
    formatter = SafeFormatter("%(levelname)s %(name)s: %(message)s")
    line = formatter.format(
        record(
            "fetch failed feed=%s status=%d took=%.1f error=%r",
            ("wire\nFORGED", 500, 1.25, "Bad\x1b[2J"),
        )
    )
    assert line == (
        "WARNING watcher.x: fetch failed "
        "feed=wire\\x0aFORGED status=500 took=1.2 error='Bad\\x1b[2J'"
    )


def test_log_objects_and_mappings_are_escaped() -> None:
    formatter = SafeFormatter("%(message)s")
    assert formatter.format(record("%(feed)s", ({"feed": "a\x07b"},))) == "a\\x07b"
    assert formatter.format(record("error=%s", (ValueError("x\x9by"),))) == "error=x\\x9by"
    assert formatter.format(record(ValueError("\x1b]0;t\x07"))) == "\\x1b]0;t\\x07"


def test_exception_text_keeps_its_lines_but_not_controls() -> None:
    formatter = SafeFormatter(LOG_FORMAT)
    try:
        raise RuntimeError("reason \x1b[2J here")
    except RuntimeError:
        line = formatter.format(record("failed", exc_info=sys.exc_info()))
    assert "Traceback" in line and "\n" in line
    assert "reason \\x1b[2J here" in line
    assert not any(is_control(ch) for ch in line.replace("\n", ""))


def test_the_record_handed_to_other_handlers_is_untouched() -> None:
    rec = record("x=%s", ("a\x1bb",))
    SafeFormatter("%(message)s").format(rec)
    assert rec.args == ("a\x1bb",)
