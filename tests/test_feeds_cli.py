"""``watcher feeds list|add|remove|import|export`` as a user runs them, OPML both ways."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.feedgen import Entry, rss
from tests.servers import FeedServer
from watcher.cli import cli
from watcher.store import Store

OPML = """\
<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>My subscriptions</title></head>
  <body>
    <outline text="News" title="News">
      <outline type="rss" text="World wire" title="World wire" xmlUrl="{world}"
               category="/Europe/Ukraine,russia"/>
      <outline type="rss" text="Tech desk" xmlUrl="{tech}"/>
    </outline>
    <outline type="rss" text="Config feed again" xmlUrl="{config}"/>
  </body>
</opml>
"""


@pytest.fixture
def project(tmp_path: Path, feed_server: FeedServer) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text('- id: kursk\n  any: ["DPRK troops"]\n')
    feed_server.set("/config.xml", rss([Entry("c1", "From the config feed")]))
    feed_server.set("/world.xml", rss([Entry("w1", "DPRK troops seen")], title="World"))
    (tmp_path / "watcher.yaml").write_text(
        "database: data/w.db\nrules: rules/\n"
        f"feeds:\n  - url: {feed_server.url('/config.xml')}\n    name: wire\n"
        "    title: Config wire\n    tags: [local]\n"
        "channels:\n  files: {type: eml, dir: outbox}\n"
    )
    feed_server.set("/tech.xml", rss([Entry("t1", "Chips")], title="Tech"))
    urls = {name: feed_server.url(f"/{name}.xml") for name in ("world", "tech", "config")}
    opml = OPML.format(**urls)
    (tmp_path / "subs.opml").write_text(opml)
    Store(tmp_path / "data" / "w.db").close()  # as `watcher init` or a first poll leaves it
    return tmp_path


def invoke(project: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--config", str(project / "watcher.yaml"), *args])
    return result.exit_code, result.stdout, result.stderr


def listed(project: Path) -> dict[str, dict[str, object]]:
    code, out, err = invoke(project, "feeds", "list", "--json")
    assert code == 0, err
    return {f["url"]: f for f in json.loads(out)}


def test_import_keeps_titles_turns_folders_and_categories_into_tags(
    project: Path, feed_server: FeedServer
) -> None:
    code, out, err = invoke(project, "feeds", "import", str(project / "subs.opml"))
    assert code == 0, err
    assert "imported 2 feeds, 1 already watched" in out
    feeds = listed(project)
    world = feeds[feed_server.url("/world.xml")]
    assert world["title"] == "World wire" and world["source"] == "cli"
    assert world["tags"] == ["News", "Europe", "Ukraine", "russia"]
    tech = feeds[feed_server.url("/tech.xml")]
    assert (tech["title"], tech["tags"], tech["source"]) == ("Tech desk", ["News"], "cli")
    config = feeds[feed_server.url("/config.xml")]
    assert (config["name"], config["source"], config["tags"]) == ("wire", "config", ["local"])


def test_importing_twice_adds_nothing_the_second_time(project: Path) -> None:
    invoke(project, "feeds", "import", str(project / "subs.opml"))
    code, out, err = invoke(project, "feeds", "import", "--json", str(project / "subs.opml"))
    assert code == 0, err
    result = json.loads(out)
    assert result["added"] == [] and len(result["skipped"]) == 3
    assert len(listed(project)) == 3


def test_imported_feeds_are_polled(project: Path, feed_server: FeedServer) -> None:
    invoke(project, "feeds", "import", str(project / "subs.opml"))
    code, _, err = invoke(project, "poll", "--all")
    assert code == 0, err
    assert {r.path for r in feed_server.requests} == {"/world.xml", "/tech.xml", "/config.xml"}
    assert {f["last_status"] for f in listed(project).values()} == {"ok"}


def test_export_writes_opml_2_that_imports_back_the_same_feeds(
    project: Path, tmp_path: Path
) -> None:
    invoke(project, "feeds", "import", str(project / "subs.opml"))
    code, out, err = invoke(project, "feeds", "export")
    assert code == 0, err
    root = ET.fromstring(out)
    assert root.tag == "opml" and root.get("version") == "2.0"
    outlines = {o.get("xmlUrl"): o for o in root.iter("outline")}
    assert len(outlines) == 3
    before = listed(project)
    for url, feed in before.items():
        assert outlines[url].get("title") == feed["title"]
        assert (outlines[url].get("category") or "").split(",") == (feed["tags"] or [""])

    other = tmp_path / "other"
    other.mkdir()
    (other / "watcher.yaml").write_text("database: w.db\nrules: []\nfeeds: []\n")
    exported = other / "exported.opml"
    code, _, err = invoke(project, "feeds", "export", "-o", str(exported))
    assert code == 0 and "exported 3 feeds" in err
    code, _, err = invoke(other, "feeds", "import", str(exported))
    assert code == 0, err
    after = listed(other)
    assert {u: (f["title"], f["tags"]) for u, f in after.items()} == {
        u: (f["title"], f["tags"]) for u, f in before.items()
    }
    assert {f["source"] for f in after.values()} == {"cli"}


def test_export_leaves_out_removed_feeds(project: Path) -> None:
    invoke(project, "feeds", "add", "https://gone.example.org/rss", "--no-check", "--name", "gone")
    invoke(project, "feeds", "remove", "gone")
    code, out, _ = invoke(project, "feeds", "export")
    assert code == 0 and "gone.example.org" not in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("<opml><body><outline", "invalid OPML"),
        ("<html><body/></html>", "not an OPML file"),
        ('<!DOCTYPE x [<!ENTITY a "b">]><opml><body/></opml>', "may not declare XML entities"),
    ],
    ids=["broken", "not-opml", "entities"],
)
def test_a_bad_opml_file_is_one_clear_error_and_adds_nothing(
    project: Path, content: str, message: str
) -> None:
    bad = project / "bad.opml"
    bad.write_text(content)
    code, out, err = invoke(project, "feeds", "import", str(bad))
    assert code == 1 and message in err and "Traceback" not in err
    assert len(listed(project)) == 1


def test_a_missing_opml_file_is_a_clear_error(project: Path) -> None:
    code, _, err = invoke(project, "feeds", "import", str(project / "nope.opml"))
    assert code == 1 and "cannot read OPML file" in err


def test_add_list_remove(project: Path) -> None:
    code, out, _ = invoke(
        project, "feeds", "add", "https://example.org/a.rss", "--no-check", "--tag", "t"
    )
    assert code == 0 and "added feed example-org-a-rss" in out
    code, _, err = invoke(project, "feeds", "add", "https://example.org/a.rss", "--no-check")
    assert code == 1 and "already watched" in err
    code, _, err = invoke(project, "feeds", "remove", "wire")
    assert code == 1 and "remove it there" in err
    code, out, _ = invoke(project, "feeds", "remove", "example-org-a-rss")
    assert code == 0 and "https://example.org/a.rss" not in json.dumps(listed(project))


def test_add_refuses_what_is_neither_a_url_nor_a_file(project: Path) -> None:
    code, out, err = invoke(project, "feeds", "add", "example.org/world.rss")
    assert code == 2
    assert "neither an http(s) URL nor an existing file" in err
    assert "example.org" not in json.dumps(listed(project))


def test_add_makes_a_local_file_absolute(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "local.xml").write_bytes(rss([Entry("l1", "A local item")]))
    monkeypatch.chdir(project)
    code, out, err = invoke(project, "feeds", "add", "local.xml", "--name", "local")
    assert code == 0, err
    assert out == f"added feed local: {project / 'local.xml'}\n"
    assert str(project / "local.xml") in listed(project)


def test_list_says_never_polled_as_status_does(project: Path) -> None:
    invoke(project, "feeds", "add", "https://example.org/new.rss", "--no-check", "--name", "new")
    code, out, _ = invoke(project, "feeds", "list")
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("new "))
    assert "never polled" in row


@pytest.mark.parametrize("interval", ["1s", "0s", "59s"])
def test_every_path_that_sets_an_interval_enforces_one_minute(project: Path, interval: str) -> None:
    code, _, err = invoke(
        project, "feeds", "add", "https://example.org/n.rss", "--no-check", "--interval", interval
    )
    assert code == 2 and f"--interval: must be at least 1m, not {interval}" in err
    config = project / "watcher.yaml"
    config.write_text(config.read_text() + f"defaults: {{interval: {interval}}}\n")
    code, _, err = invoke(project, "rules", "check")
    assert code == 1 and f"defaults.interval: must be at least 1m, not {interval}" in err


def test_a_feed_added_without_interval_follows_the_default(project: Path) -> None:
    invoke(project, "feeds", "add", "https://example.org/d.rss", "--no-check", "--name", "follows")
    invoke(
        project,
        "feeds",
        "add",
        "https://example.org/o.rss",
        "--no-check",
        "--name",
        "own",
        "--interval",
        "2h",
    )
    config = project / "watcher.yaml"
    config.write_text(config.read_text() + "defaults: {interval: 5m}\n")
    feeds = {f["name"]: f for f in listed(project).values()}
    assert (feeds["follows"]["interval_s"], feeds["follows"]["interval_source"]) == (300, "default")
    assert (feeds["own"]["interval_s"], feeds["own"]["interval_source"]) == (7200, "feed")


HOSTILE = """\
<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0"><body>
  <outline text="ok" xmlUrl="{ok}"/>
  <outline text="env" xmlUrl="{ok}?k=${{HOME}}"/>
  <outline text="js" xmlUrl="javascript:alert(1)"/>
  <outline text="file" xmlUrl="file:///etc/passwd"/>
  <outline text="path" xmlUrl="/etc/passwd"/>
  <outline text="relative" xmlUrl="subs.opml"/>
  <outline text="ftp" xmlUrl="ftp://files.example/feed.xml"/>
  <outline text="no host" xmlUrl="https:///feed.xml"/>
  <outline text="spaces" xmlUrl="https://a.example/a feed.xml"/>
</body></opml>
"""


def test_import_takes_only_http_urls_and_reports_every_skipped_entry(
    project: Path, feed_server: FeedServer
) -> None:
    hostile = project / "hostile.opml"
    hostile.write_text(HOSTILE.format(ok=feed_server.url("/tech.xml")))
    code, out, err = invoke(project, "feeds", "import", "--json", str(hostile))
    assert code == 0, err
    result = json.loads(out)
    assert len(result["added"]) == 2
    local = "a local file: an OPML import takes http(s) URLs only"
    assert [(s["url"], s["reason"].split(" (")[0]) for s in result["skipped"]] == [
        ("javascript:alert(1)", "not an http(s) URL"),
        ("file:///etc/passwd", local),
        ("/etc/passwd", local),
        ("subs.opml", local),
        ("ftp://files.example/feed.xml", "not an http(s) URL"),
        ("https:///feed.xml", "the URL has no host"),
        ("https://a.example/a feed.xml", "not a valid URL: it holds spaces or control characters"),
    ]
    urls = set(listed(project))
    assert feed_server.url("/tech.xml") + "?k=$${HOME}" in urls  # text, never a variable
    assert not any("passwd" in url or "javascript" in url for url in urls)


def test_import_summary_lists_skipped_entries(project: Path, feed_server: FeedServer) -> None:
    hostile = project / "hostile.opml"
    hostile.write_text(HOSTILE.format(ok=feed_server.url("/tech.xml")))
    code, out, err = invoke(project, "feeds", "import", str(hostile))
    assert code == 0, err
    assert "skipped javascript:alert(1): not an http(s) URL (scheme 'javascript')" in out
    assert "skipped /etc/passwd: a local file" in out and "`watcher feeds add PATH`" in out
    assert out.rstrip().endswith("imported 2 feeds, 0 already watched, 7 skipped")


def test_feeds_add_still_takes_a_local_file(project: Path, tmp_path: Path) -> None:
    local = tmp_path / "local.xml"
    local.write_bytes(rss([Entry("l1", "Local")]))
    code, out, err = invoke(project, "feeds", "add", str(local), "--name", "local")
    assert code == 0, err
    assert listed(project)[str(local)]["name"] == "local"
