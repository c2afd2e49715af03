"""Names that do not exist: one error, exit 1, and the closest names that do."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.feedgen import Entry, rss
from watcher.cli import cli
from watcher.exceptions import NotFoundError
from watcher.suggest import did_you_mean, not_found


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """Rules kursk and drones, a feed wire, channel files; polled once (kursk matched)."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(
        "- id: kursk\n  any: [Kursk]\n- id: drones\n  any: [drone*]\n"
    )
    now = datetime.now(UTC)
    (tmp_path / "wire.xml").write_bytes(rss([Entry("1", "Troops in Kursk", published=now)]))
    (tmp_path / "watcher.yaml").write_text(
        "database: w.db\nrules: rules/\n"
        f"feeds:\n  - url: {tmp_path / 'wire.xml'}\n    name: wire\n"
        "channels:\n  files: {type: eml, dir: outbox}\n"
    )
    assert run(tmp_path, "poll", "--all")[0] == 0
    return tmp_path


def run(project: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--config", str(project / "watcher.yaml"), *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "kursk", "--rule", "nosuch"], "no rule named 'nosuch'"),
        (["search", "kursk", "--rule", "kurks"], "no rule named 'kurks'; did you mean 'kursk'?"),
        (["search", "kursk", "--feed", "wier"], "no feed named 'wier'; did you mean 'wire'?"),
        (["alerts", "--rule", "kurks"], "no rule named 'kurks'; did you mean 'kursk'?"),
        (["mute", "nosuch", "--for", "1h"], "no rule or feed named 'nosuch'"),
        (["mute", "drone", "--for", "1h"], "no rule or feed named 'drone'; did you mean 'drones'?"),
        (["mute", "feed:wir", "--for", "1h"], "no feed named 'wir'; did you mean 'wire'?"),
        (["alerts", "retry", "9999"], "no alert 9999"),
        (["poll", "--feed", "wier"], "no feed named 'wier'; did you mean 'wire'?"),
        (["feeds", "enable", "wier"], "no feed named 'wier'; did you mean 'wire'?"),
        (["channels", "test", "file"], "no channel named 'file'; did you mean 'files'?"),
    ],
)
def test_a_name_that_does_not_exist_is_one_line_and_exit_1(
    project: Path, args: list[str], message: str
) -> None:
    code, out, err = run(project, *args)
    assert (code, out, err) == (1, "", f"error: {message}\n")


def test_a_configured_rule_without_matches_and_a_removed_rule_with_matches_are_found(
    project: Path,
) -> None:
    code, out, _ = run(project, "search", "kursk", "--rule", "drones")
    assert code == 0 and out == "no items found\n"
    (project / "rules" / "r.yaml").write_text("- id: drones\n  any: [drone*]\n")
    code, out, _ = run(project, "search", "kursk", "--rule", "kursk")  # its matches stay
    assert code == 0 and "Troops in **Kursk**" in out
    code, out, _ = run(project, "alerts", "--rule", "kursk")
    assert code == 0 and "Troops in Kursk" in out


def test_retry_checks_every_id_before_requeuing_any(project: Path) -> None:
    code, _, err = run(project, "alerts", "retry", "1", "9999", "10000")
    assert code == 1 and err == "error: no alert 9999, 10000\n"


def test_did_you_mean_offers_the_closest_names() -> None:
    assert did_you_mean("kurks", ["kursk", "drones"]) == "; did you mean 'kursk'?"
    assert did_you_mean("zzz", ["kursk"]) == ""
    close = did_you_mean("wire", ["wire-12", "wire-1", "other"], n=3)
    assert close == "; did you mean 'wire-1' or 'wire-12'?"  # the closest first
    error = not_found("feed", "wir", ["wire", "wire"])
    assert isinstance(error, NotFoundError) and isinstance(error, LookupError)
    assert str(error) == "no feed named 'wir'; did you mean 'wire'?"
    assert (error.kind, error.name) == ("feed", "wir")
