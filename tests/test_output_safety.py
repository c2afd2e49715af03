"""A hostile feed and hostile servers cannot drive the terminal through any output.

The feed's title and item carry OSC 52 (writes the clipboard), OSC 0 (window title),
CSI 2J (clears the screen), a one-byte C1 CSI and NUL; a second feed server and a
webhook receiver answer with the same bytes in their HTTP reason phrase. Every command
that shows this text is run as a user would (CliRunner with colours on, as on a
terminal, and one ``python -m watcher`` subprocess): no control character from outside
reaches the output, and its escaped form does.
"""

from __future__ import annotations

import email
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.faults import RawServer, Step
from tests.servers import FeedServer
from watcher.cli import cli

ROOT = Path(__file__).resolve().parent.parent

HOSTILE = "\x1b]52;c;ZXZpbA==\x07 \x1b]0;owned\x07 \x1b[2J \x9b6n \x00"
SHOWN = r"\x1b]52;c;ZXZpbA==\x07 \x1b]0;owned\x07 \x1b[2J \x9b6n"
JSON_SHOWN = r"\u001b]52;c;ZXZpbA==\u0007 \u001b]0;owned\u0007 \u001b[2J \u009b6n"
BUSY = b"HTTP/1.1 503 Busy " + HOSTILE.encode("latin-1") + b"\r\n"
REFUSED = b"HTTP/1.1 400 Refused " + HOSTILE.encode("latin-1") + b"\r\n"
CLOSE = b"Content-Length: 0\r\nConnection: close\r\n\r\n"
ANSWER = ("no thanks " + HOSTILE).encode()
WITH_BODY = b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(ANSWER), ANSWER)
# watcher's own styling: the console channel's bold, coloured severity head.
OWN_STYLE = re.compile(r"\x1b\[[0-9;]*m")


def raw_controls(text: str) -> list[str]:
    """The control characters of ``text`` other than line breaks, tabs and watcher's styling."""
    text = OWN_STYLE.sub("", text)
    return [ch for ch in text if (ord(ch) < 0x20 and ch not in "\n\t") or 0x7F <= ord(ch) <= 0x9F]


def hostile_feed() -> bytes:
    document = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "Wire " + HOSTILE,
        "items": [
            {
                "id": "1",
                "title": "Kursk " + HOSTILE,
                "url": "https://wire.example/1",
                "content_text": "North Korean troops in Kursk " + HOSTILE,
                "date_published": datetime.now(UTC).isoformat(),
            }
        ],
    }
    return json.dumps(document).encode()


@pytest.fixture
def project(tmp_path: Path, feed_server: FeedServer) -> Iterator[Path]:
    """A project with the hostile feed, a feed server and a webhook with a hostile status line."""
    feed_server.set("/wire.json", hostile_feed(), headers={"Content-Type": "application/json"})
    with (
        RawServer([Step(BUSY + CLOSE)]) as bad_server,
        RawServer([Step(REFUSED + WITH_BODY)]) as hook,
    ):
        (tmp_path / "rules").mkdir()
        (tmp_path / "rules" / "r.yaml").write_text("- id: kursk\n  any: [Kursk]\n")
        (tmp_path / "watcher.yaml").write_text(
            "database: w.db\nrules: rules/\ndefaults: {first_poll_alerts: all}\n"
            f"feeds:\n  - url: {feed_server.url('/wire.json')}\n    name: wire\n"
            f"  - url: {bad_server.url('/feed.xml')}\n    name: busy\n"
            "channels:\n  console: {type: console}\n  files: {type: eml, dir: outbox}\n"
            f"  hook: {{type: webhook, url: '{hook.url('/hook')}'}}\n"
        )
        yield tmp_path


def run(project: Path, *args: str) -> tuple[int, str]:
    """Run a command with colours on, as on a terminal; stdout and stderr together."""
    result = CliRunner().invoke(cli, ["--config", str(project / "watcher.yaml"), *args], color=True)
    return result.exit_code, result.stdout + result.stderr


def assert_safe(output: str, shown: str = SHOWN) -> None:
    assert raw_controls(output) == []
    assert shown in output


def test_every_command_shows_outside_text_escaped(project: Path) -> None:
    code, out = run(project, "-v", "poll", "--all")
    assert code == 0
    assert_safe(out)  # the console channel and the log lines
    assert "[medium] kursk" in OWN_STYLE.sub("", out) and OWN_STYLE.search(out)
    assert f"feed busy failed: HTTP 503 Busy {SHOWN}" in out
    assert f"error='HTTP 503 Busy {SHOWN} \\x00'" in out  # the log line's repr
    for args in (
        ["alerts"],
        ["search", "kursk"],
        ["search", "kursk", "--csv"],
        ["rules", "test", "rules/", "--since", "30d"],
        ["channels", "test", "hook"],
    ):
        code, out = run(project, *args)
        assert_safe(out, SHOWN if args[0] != "alerts" else r"Kursk \x1b]52;c;ZXZpbA==\x07")
    code, out = run(project, "status")
    assert code == 0
    assert raw_controls(out) == [] and r"HTTP 503 Busy \x1b]52;c;ZXZpbA==\x07" in out


def test_json_output_escapes_c0_and_c1_controls(project: Path) -> None:
    run(project, "poll", "--all")
    for args in (["alerts"], ["search", "kursk"], ["status"], ["feeds", "list"], ["poll"]):
        code, out = run(project, "--json", *args)
        assert code == 0, out
        assert raw_controls(out.replace("\n", "")) == []
        json.loads(out)
    assert JSON_SHOWN in run(project, "--json", "status")[1]
    assert JSON_SHOWN in run(project, "--json", "feeds", "list")[1]
    assert "Wire " + HOSTILE in {f["title"] for f in json.loads(run(project, "--json", "feeds")[1])}


def test_feeds_export_writes_a_title_with_controls_as_valid_xml(project: Path) -> None:
    run(project, "poll", "--all")
    code, out = run(project, "feeds", "export")
    assert code == 0 and raw_controls(out) == []
    assert f'title="Wire {SHOWN} \\x00"' in out


def parts(message: Message) -> list[str]:
    return [
        str(part.get_payload(decode=True).decode())  # type: ignore[union-attr]
        for part in message.walk()
        if not part.is_multipart()
    ]


def test_no_control_character_reaches_an_eml_file(project: Path) -> None:
    run(project, "poll", "--all")
    data = next((project / "outbox").glob("*.eml")).read_bytes()
    assert not re.search(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", data)
    message = email.message_from_bytes(data)
    assert raw_controls(message["Subject"]) == []
    text, html = parts(message)
    assert raw_controls(text.replace("\r", "")) == [] and f"Kursk {SHOWN}" in text
    assert raw_controls(html.replace("\r", "")) == [] and f"Kursk {SHOWN}" in html


def test_python_dash_m_watcher_output_holds_no_control_from_outside(project: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "watcher", "--config", str(project / "watcher.yaml")]
    polled = subprocess.run([*cmd, "-v", "poll", "--all"], capture_output=True, env=env, timeout=60)
    status = subprocess.run([*cmd, "status"], capture_output=True, env=env, timeout=60)
    for proc in (polled, status):
        out = (proc.stdout + proc.stderr).decode()
        assert raw_controls(out) == []
    assert SHOWN in polled.stdout.decode()
    assert f"HTTP 503 Busy {SHOWN}" in polled.stderr.decode()
    assert r"HTTP 503 Busy \x1b]52;c;ZXZpbA==\x07" in status.stdout.decode()
