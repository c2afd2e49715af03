"""The peers ``bench_poll.py`` measures watcher against, each run as its own process.

- ``plain``: a plain loop, as one would write it in an afternoon: one ``requests``
  session, each feed fetched in turn with its ETag / Last-Modified, parsed with
  ``feedparser`` and its entries inserted (``INSERT OR IGNORE`` on the guid) into an
  SQLite table, one commit per feed. No matching, no alerts.
- ``reader``: `reader <https://pypi.org/project/reader/>`_ (lemon24/reader), a feed reader
  library, with ``update_feeds(workers=8, scheduled=False)``; its full-text search is left
  off, as it is by default. No matching, no alerts. ``make bench`` installs it into the
  virtualenv (``benchmarks/requirements.txt``); it is never a dependency of watcher.

Run: ``python benchmarks/peers.py plain|reader --urls FILE --db PATH``; prints one JSON
line: feeds, ok, not_modified, failed, entries (rows stored in total).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

READER_WORKERS = 8


def plain(urls: list[str], db: Path) -> dict[str, Any]:
    import feedparser
    import requests

    conn = sqlite3.connect(db)
    conn.executescript(
        "CREATE TABLE IF NOT EXISTS feeds (url TEXT PRIMARY KEY, etag TEXT, modified TEXT);"
        "CREATE TABLE IF NOT EXISTS entries (feed TEXT, guid TEXT, title TEXT, link TEXT,"
        " summary TEXT, published TEXT, PRIMARY KEY (feed, guid));"
    )
    known = {row[0]: (row[1], row[2]) for row in conn.execute("SELECT * FROM feeds")}
    counts = {"feeds": len(urls), "ok": 0, "not_modified": 0, "failed": 0}
    session = requests.Session()
    for url in urls:
        etag, modified = known.get(url, (None, None))
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if modified:
            headers["If-Modified-Since"] = modified
        try:
            response = session.get(url, headers=headers, timeout=20)
        except requests.RequestException:
            counts["failed"] += 1
            continue
        if response.status_code == 304:
            counts["not_modified"] += 1
            continue
        if response.status_code != 200:
            counts["failed"] += 1
            continue
        parsed = feedparser.parse(response.content)
        rows = [
            (
                url,
                entry.get("id") or entry.get("link"),
                entry.get("title"),
                entry.get("link"),
                entry.get("summary"),
                entry.get("published"),
            )
            for entry in parsed.entries
        ]
        with conn:
            conn.executemany("INSERT OR IGNORE INTO entries VALUES (?, ?, ?, ?, ?, ?)", rows)
            conn.execute(
                "INSERT OR REPLACE INTO feeds VALUES (?, ?, ?)",
                (url, response.headers.get("ETag"), response.headers.get("Last-Modified")),
            )
        counts["ok"] += 1
    counts["entries"] = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
    conn.close()
    return counts


def reader(urls: list[str], db: Path) -> dict[str, Any]:
    from reader import make_reader

    feeds = make_reader(str(db))
    known = {feed.url for feed in feeds.get_feeds()}
    for url in urls:
        if url not in known:
            feeds.add_feed(url)
    counts = {"feeds": len(urls), "ok": 0, "not_modified": 0, "failed": 0}
    for result in feeds.update_feeds_iter(workers=READER_WORKERS, scheduled=False):
        value = result.value
        if isinstance(value, Exception):
            counts["failed"] += 1
        elif value is None:
            counts["not_modified"] += 1
        else:
            counts["ok"] += 1
    counts["entries"] = feeds.get_entry_counts().total
    feeds.close()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("peer", choices=["plain", "reader"])
    parser.add_argument("--urls", type=Path, required=True, help="a file of URLs, one a line")
    parser.add_argument("--db", type=Path, required=True)
    args = parser.parse_args()
    urls = args.urls.read_text().split()
    counts = (plain if args.peer == "plain" else reader)(urls, args.db)
    json.dump(counts, sys.stdout)
    print()


if __name__ == "__main__":
    main()
