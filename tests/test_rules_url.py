"""``watcher rules test FILE --url URL``: one article page fetched as a poll would, matched
as the item's article, with what matched and where."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.articles import ARTICLES
from tests.servers import FeedServer
from watcher.cli import cli

HTML = {"Content-Type": "text/html; charset=utf-8"}
RULES = """\
- id: fod
  any: ["fiber-optic drones"]
- id: nk
  any: ["North Korean troops"]
- id: titles
  any: [drones]
  fields: [title]
"""


@pytest.fixture
def project(tmp_path: Path, feed_server: FeedServer) -> Path:
    (tmp_path / "rules.yaml").write_text(RULES)
    (tmp_path / "watcher.yaml").write_text(
        "database: w.db\nrules: []\npoll: {user_agent: 'watcher/1.0 (+https://x.example)'}\n"
    )
    for name in ("frontline-fiber-drones", "meridian-negative-nav"):
        page = (ARTICLES / f"{name}.html").read_bytes()
        feed_server.set(f"/news/{name}", page, headers=HTML)
    feed_server.set("/robots.txt", b"User-agent: *\nDisallow: /private/\n")
    feed_server.set("/private/a", (ARTICLES / "frontline-fiber-drones.html").read_bytes())
    feed_server.set("/report.pdf", b"%PDF-1.4 ...", headers={"Content-Type": "application/pdf"})
    return tmp_path


def invoke(project: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        cli, ["--config", str(project / "watcher.yaml"), "rules", "test", *args]
    )
    return result.exit_code, result.stdout, result.stderr


def test_a_page_whose_body_holds_the_words_matches_in_the_article(
    project: Path, feed_server: FeedServer
) -> None:
    url = feed_server.url("/news/frontline-fiber-drones")
    code, out, err = invoke(project, str(project / "rules.yaml"), "--url", url)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"read {url}: ") and "characters of article text" in lines[0]
    assert lines[1] == "fod: fiber-optic drones"
    assert lines[2].startswith("  article: ") and "**fiber-optic drones**" in lines[2]
    assert not any(line.startswith(("nk:", "titles:")) for line in lines)
    asked = [r.path for r in feed_server.requests]
    assert asked == ["/robots.txt", "/news/frontline-fiber-drones"]
    assert all(
        r.header("User-Agent") == "watcher/1.0 (+https://x.example)" for r in feed_server.requests
    )


def test_json_lists_fields_and_snippets(project: Path, feed_server: FeedServer) -> None:
    url = feed_server.url("/news/frontline-fiber-drones")
    code, out, err = invoke(project, str(project / "rules.yaml"), "--url", url, "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["url"] == url and shown["article_chars"] > 1000
    (match,) = shown["matches"]
    assert (match["rule_id"], match["terms"], match["matched_in"]) == (
        "fod",
        ["fiber-optic drones"],
        ["article"],
    )
    assert match["snippets"][0]["field"] == "article"
    assert "**fiber-optic drones**" in match["snippets"][0]["text"]


def test_words_only_in_the_navigation_do_not_match(project: Path, feed_server: FeedServer) -> None:
    url = feed_server.url("/news/meridian-negative-nav")
    code, out, err = invoke(project, str(project / "rules.yaml"), "--url", url)
    assert code == 0, err
    assert out.splitlines()[1:] == ["no rule matched"]


@pytest.mark.parametrize(
    ("path", "error"),
    [("/missing", "http 404"), ("/report.pdf", "not html"), ("/private/a", "robots")],
)
def test_a_page_that_cannot_be_read_is_one_line(
    project: Path, feed_server: FeedServer, path: str, error: str
) -> None:
    url = feed_server.url(path)
    code, out, err = invoke(project, str(project / "rules.yaml"), "--url", url)
    assert (code, out) == (1, "")
    assert err == f"error: cannot read the article at {url}: {error}\n"


def test_the_address_policy_holds(project: Path, feed_server: FeedServer) -> None:
    config = project / "watcher.yaml"
    config.write_text(config.read_text().replace("poll: {", "poll: {block_private: true, "))
    url = feed_server.url("/news/frontline-fiber-drones")
    code, _, err = invoke(project, str(project / "rules.yaml"), "--url", url)
    assert code == 1 and err.endswith(": address refused\n")
    assert feed_server.requests == []


def test_url_is_one_of_the_sources(project: Path) -> None:
    code, _, err = invoke(project, str(project / "rules.yaml"), "--url", "x", "--text", "y")
    assert code == 2 and "exactly one of --text, --item, --url or --since" in err
    code, _, err = invoke(project, str(project / "rules.yaml"), "--url", "file:///etc/passwd")
    assert code == 2 and "is not an http(s) URL" in err
