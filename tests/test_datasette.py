"""Datasette on a database filled by real polls: metadata, every canned query, `watcher serve`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from tests.feedgen import Entry, rss
from tests.servers import FeedServer
from watcher.cli import cli, serve
from watcher.cli.serve import datasette_metadata, make_datasette
from watcher.store import Store
from watcher.store.schema import PUBLIC_TABLES

pytest.importorskip("datasette")
from datasette.app import Datasette  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# Values for the canned queries' parameters (an empty one means "all").
PARAMS = {"q": "kursk", "rule_id": "nk-troops-kursk", "days": ""}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A project polled once: matches and alerts for a rule, and one failing feed."""
    folder = tmp_path_factory.mktemp("ds")
    with FeedServer() as server:
        now = datetime.now(UTC)
        server.set(
            "/wire.xml",
            rss(
                [
                    Entry("1", "North Korean troops seen in Kursk", "Near Kursk", published=now),
                    Entry("2", "Kursk weather", "Snow", published=now - timedelta(hours=2)),
                    Entry("3", "Markets", "Rates", published=now),
                ]
            ),
        )
        server.set("/gone.xml", b"not here", status=404)
        (folder / "rules").mkdir()
        (folder / "rules" / "r.yaml").write_text(
            "- id: nk-troops-kursk\n  any: ['North Korean troops']\n  all: [Kursk]\n"
        )
        (folder / "watcher.yaml").write_text(
            f"database: watcher.db\nrules: rules/\nfeeds:\n"
            f"  - url: {server.url('/wire.xml')}\n    name: wire\n    first_poll_alerts: all\n"
            f"  - url: {server.url('/gone.xml')}\n    name: gone\n"
            "channels:\n  files: {type: eml, dir: outbox}\n"
        )
        result = CliRunner().invoke(cli, ["--config", str(folder / "watcher.yaml"), "poll"])
        assert result.exit_code == 0, result.output
    return folder


def get_all(db: Path, paths: list[str]) -> list[tuple[int, Any]]:
    """GET each path through Datasette's own test client; (status, JSON body) each."""

    async def run() -> list[tuple[int, Any]]:
        ds = Datasette([str(db)], metadata=datasette_metadata(db))
        await ds.invoke_startup()
        out = []
        for path in paths:
            response = await ds.client.get(path)
            out.append((response.status_code, response.json()))
        return out

    return asyncio.run(run())


def canned_queries() -> dict[str, Any]:
    queries: dict[str, Any] = datasette_metadata()["databases"]["watcher"]["queries"]
    return queries


@pytest.mark.parametrize("name", sorted(canned_queries()))
def test_every_canned_query_runs_and_returns_rows(project: Path, name: str) -> None:
    query = canned_queries()[name]
    params = "&".join(f"{k}={v}" for k, v in PARAMS.items() if f":{k}" in query["sql"])
    [(status, rows)] = get_all(
        project / "watcher.db", [f"/watcher/{name}.json?_shape=array&{params}"]
    )
    assert status == 200, rows
    assert rows, f"{name} returned no rows"
    assert query["title"] and query["description"]


def test_canned_queries_answer_what_was_seen_and_what_alerted(project: Path) -> None:
    [(_, found), (_, failing), (_, per_day)] = get_all(
        project / "watcher.db",
        [
            "/watcher/search_with_alerts.json?_shape=array&q=kursk&days=7",
            "/watcher/failing_feeds.json?_shape=array",
            "/watcher/alerts_per_rule_per_day.json?_shape=array",
        ],
    )
    by_title = {r["title"]: r for r in found}
    assert set(by_title) == {"North Korean troops seen in Kursk", "Kursk weather"}
    troops = by_title["North Korean troops seen in Kursk"]
    assert troops["matched_rules"] == "nk-troops-kursk" and "**Kursk**" in troops["snippet"]
    assert troops["alerts"] == "nk-troops-kursk sent"
    assert by_title["Kursk weather"]["alerts"] is None
    assert [(r["name"], r["last_http_status"]) for r in failing] == [("gone", 404)]
    assert per_day[0]["rule_id"] == "nk-troops-kursk" and per_day[0]["sent"] == 1


def test_views_and_tables_are_described_and_internal_tables_hidden(project: Path) -> None:
    [(status, database)] = get_all(project / "watcher.db", ["/watcher.json"])
    assert status == 200
    tables = {t["name"]: t for t in database["tables"]}
    assert all(tables[name]["hidden"] for name in tables if name.startswith("_"))
    assert not any(tables[name]["hidden"] for name in ("feeds", "items", "alerts"))
    views = {v["name"] if isinstance(v, dict) else v for v in database["views"]}
    assert {"recent_alerts", "failing_feeds", "rule_activity", "recent_matches"} <= views
    described = datasette_metadata()["databases"]["watcher"]["tables"]
    with Store(project / "watcher.db") as store:
        for table in [*PUBLIC_TABLES, "rule_activity"]:
            if table == "items_fts":
                continue
            columns = set(store.db[table].columns_dict)
            assert described[table]["description"], table
            assert set(described[table].get("columns", {})) <= columns, table
            if table in ("feeds", "items", "matches", "alerts", "polls"):
                assert set(described[table]["columns"]) == columns, table


def test_rule_activity_counts_matches_and_alerts(project: Path) -> None:
    [(_, rows)] = get_all(project / "watcher.db", ["/watcher/rule_activity.json?_shape=array"])
    (row,) = rows
    assert row["rule_id"] == "nk-troops-kursk"
    assert (row["matches"], row["matches_7d"], row["alerts"], row["sent"]) == (1, 1, 1, 1)


def test_metadata_follows_the_database_file_name(tmp_path: Path) -> None:
    metadata = datasette_metadata(tmp_path / "archive.db")
    assert list(metadata["databases"]) == ["archive"]


def test_serve_starts_datasette_with_the_metadata(project: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "watcher", "--config", str(project / "watcher.yaml")]
    process = subprocess.Popen(
        [*command, "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:  # uvicorn says so once it listens
            if "Uvicorn running on" in line:
                break
        base = f"http://127.0.0.1:{port}/watcher"
        rows = requests.get(f"{base}/failing_feeds.json?_shape=array", timeout=10).json()
        assert [r["name"] for r in rows] == ["gone"]
        page = requests.get(f"{base}/items", timeout=10).text
        assert "One row per feed entry" in page
        own_sql = requests.get(f"{base}.json?sql=select+1", timeout=10)
        assert own_sql.status_code == 403  # no --allow-sql
    finally:
        process.terminate()
        process.communicate(timeout=10)
    assert process.returncode in (0, -signal.SIGTERM)  # stopped by SIGTERM, not hung


def test_serve_without_datasette_says_how_to_install_it(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serve, "datasette_installed", lambda: False)
    config = str(project / "watcher.yaml")
    result = CliRunner().invoke(cli, ["--config", config, "serve"])
    assert result.exit_code == 1
    assert "pip install 'watcher[datasette]'" in result.stderr
    result = CliRunner().invoke(cli, ["--config", config, "serve", "--metadata"])
    assert (
        result.exit_code == 0
        and "alerts_per_rule_per_day"
        in json.loads(result.stdout)["databases"]["watcher"]["queries"]
    )


def fetch(datasette: Any, paths: list[str]) -> list[tuple[int, str]]:
    """GET each path through a Datasette instance's own client; (status, body text) each."""

    async def run() -> list[tuple[int, str]]:
        await datasette.invoke_startup()
        return [(r.status_code, r.text) for r in [await datasette.client.get(p) for p in paths]]

    return asyncio.run(run())


def test_search_items_with_nothing_typed_shows_the_latest_items(project: Path) -> None:
    [(status, rows), (_, blank), (_, quote)] = get_all(
        project / "watcher.db",
        [
            "/watcher/search_with_alerts.json?_shape=array&q=&days=",
            "/watcher/search_with_alerts.json?_shape=array&q=+++&days=7",
            "/watcher/search_with_alerts.json?_shape=array&q=%22&days=",
        ],
    )
    assert status == 200, rows
    assert [r["title"] for r in rows] == [
        "Markets",
        "Kursk weather",
        "North Korean troops seen in Kursk",
    ]  # newest first seen first
    troops = rows[2]
    assert (
        troops["matched_rules"] == "nk-troops-kursk" and troops["alerts"] == "nk-troops-kursk sent"
    )
    assert troops["snippet"] == "Near Kursk"
    assert blank == rows and quote == rows


def test_items_page_note_points_to_the_search_box_below_it(project: Path) -> None:
    [(status, page)] = fetch(make_datasette(project / "watcher.db"), ["/watcher/items"])
    assert status == 200
    note = page.index("use the Search box below this list of columns")
    assert note < page.index('id="_search"')  # the box is where the note says
    assert page.index('<dl class="column-descriptions">') < page.index('id="_search"')


def test_arbitrary_sql_is_off_unless_allowed(project: Path) -> None:
    paths = ["/watcher.json?sql=select+count(*)+from+feeds", "/watcher/failing_feeds.json"]
    [(refused, _), (canned, _)] = fetch(make_datasette(project / "watcher.db"), paths)
    assert (refused, canned) == (403, 200)
    [(allowed, body), _] = fetch(make_datasette(project / "watcher.db", allow_sql=True), paths)
    assert allowed == 200 and json.loads(body)["rows"] == [[2]]


def test_serve_on_a_busy_port_names_the_port(project: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = CliRunner().invoke(
            cli, ["--config", str(project / "watcher.yaml"), "serve", "--port", str(port)]
        )
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: cannot listen on 127.0.0.1 port {port}: ")
    assert result.stderr.endswith("; choose another with --port\n")


def test_search_box_and_canned_query_read_the_normalised_index(project: Path) -> None:
    """The canned query takes watcher's query language and shows the item's own text;
    the items page's search box finds ASCII words as typed."""
    [(_, phrase), (_, bad), (_, box)] = get_all(
        project / "watcher.db",
        [
            "/watcher/search_with_alerts.json?_shape=array&days=&q="
            + "%22North%20Korean%22%20NEAR/4%20KURSK%20-weather",
            "/watcher/search_with_alerts.json?_shape=array&days=&q=%28unbalanced",
            "/watcher/items.json?_shape=array&_search=KURSK",
        ],
    )
    assert [r["title"] for r in phrase] == ["North Korean troops seen in Kursk"]
    assert phrase[0]["snippet"] == "Near Kursk"  # matched in the title: the summary's start
    assert "query_error_unbalanced_parenthesis_at_column_1" in json.dumps(bad)
    assert {r["title"] for r in box} == {"North Korean troops seen in Kursk", "Kursk weather"}
