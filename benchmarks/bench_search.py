"""Benchmark of ``watcher search`` on a generated archive; writes no file but its database.

Run: ``.venv/bin/python benchmarks/bench_search.py [--items 1000000] [--runs 300]
[--db PATH] [--write-results]``.

The archive is built through the real schema (``Store`` migrations, so the triggers queue
every row for the index) with one ``executemany`` in one transaction, then indexed from that
queue by ``catch_up``, the indexer's own loop (timed: the rate of a rebuild after an
upgrade, and of the index catching up after a large first poll). Its text is news-like:

- a vocabulary whose first words are real English and news words and whose tail is
  made-up words from syllables, 40,000 in all, drawn by Zipf's law (frequency ~ 1/rank);
- a 7-14 word title, a 20-50 word summary and 40-120 words of content per item (what
  most feeds carry), 200 feeds, first-seen times spread over a year.

Measured: the median and 95th percentile time of a two-term query (two words of ranks
100-3,000, so each matches tens of thousands of items) with ``--limit 20``, through the
same functions ``watcher search`` calls (translate, rank, snippets); a common-word query
(ranks 20-60) as the worst case; the database size and the index's own size (the
``items_fts`` tables, from ``dbstat``) per 100,000 items.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import statistics
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from watcher.archive.search import translate_query  # noqa: E402
from watcher.store import Store  # noqa: E402
from watcher.store.fts import SearchFilters, search_items  # noqa: E402
from watcher.store.fts_queue import catch_up  # noqa: E402

COMMON_TEXT = """the of and to in a is that for on with as was by at from it said has are be have
an not this but they were their after over new its who been more two will also about
than one into against government president forces military ministry officials people
country war city region troops attack said minister state security police report week
year last first border defence army killed told president's according since three
percent million economy market prices talks deal election vote party leader capital
drone drones missile strike front line kursk kyiv moscow ukraine russia russian
ukrainian north korean korea china chinese beijing washington united states european
union nato sanctions oil gas energy power plant nuclear water food aid refugees
hospital children soldiers fighting offensive ceasefire peace negotiations border
village villages town shelling artillery tanks brigade battalion regiment commander
general intelligence satellite images video footage statement spokesman agency
news reuters associated press sources unconfirmed reports claimed denied confirmed
"""
COMMON = COMMON_TEXT.split()
SYLLABLE_TEXT = "ka ro mi tu sen dra vol ne pik lo gor an esk bu ter xa il om zu fe shi nov ar"
SYLLABLES = SYLLABLE_TEXT.split()
VOCABULARY = 40_000
FEEDS = 200
TWO_TERM_RANKS = (100, 1_000)
COMMON_RANKS = (20, 60)
RESULTS = ROOT / "benchmarks" / "RESULTS.md"


def vocabulary() -> list[str]:
    """Real words first, then distinct made-up words, in rank order (always the same)."""
    rng = random.Random(1)
    words = list(dict.fromkeys(COMMON))
    seen = set(words)
    while len(words) < VOCABULARY:
        word = "".join(rng.choices(SYLLABLES, k=rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def cumulative_zipf(count: int) -> list[float]:
    total, out = 0.0, []
    for rank in range(1, count + 1):
        total += 1.0 / rank
        out.append(total)
    return out


def sentences(rng: random.Random, words: list[str], weights: list[float], count: int) -> str:
    """``count`` words as capitalised sentences of 6-18 words."""
    chosen = rng.choices(words, cum_weights=weights, k=count)
    parts, start = [], 0
    while start < count:
        end = min(count, start + rng.randint(6, 18))
        sentence = " ".join(chosen[start:end])
        parts.append(sentence[:1].upper() + sentence[1:] + ".")
        start = end
    return " ".join(parts)


def rows(rng: random.Random, words: list[str], total: int) -> Iterator[tuple[object, ...]]:
    weights = cumulative_zipf(len(words))
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for n in range(1, total + 1):
        title = sentences(rng, words, weights, rng.randint(7, 14)).rstrip(".")
        summary = sentences(rng, words, weights, rng.randint(20, 50))
        content = sentences(rng, words, weights, rng.randint(40, 120))
        seen = start + timedelta(seconds=n * 365 * 86400 // total)
        stamp = seen.strftime("%Y-%m-%dT%H:%M:%SZ")
        yield (
            n % FEEDS + 1,
            f"item-{n}",
            f"https://news{n % FEEDS}.example.org/{n}",
            title,
            f"<p>{summary}</p>",
            f"<p>{content}</p>",
            summary,
            content,
            stamp,
            stamp,
            f"{n:064x}",
            n,
        )


def build(path: Path, total: int, seed: int) -> tuple[float, float]:
    """Create the archive at ``path``; returns the seconds the rows and the index took."""
    began = time.perf_counter()
    rng = random.Random(seed)
    words = vocabulary()
    store = Store(path)
    try:
        store.db.execute("PRAGMA journal_mode = OFF")  # bulk load only; WAL again below
        store.db.execute("PRAGMA synchronous = OFF")
        with store.transaction():
            store.db.conn.executemany(
                "INSERT INTO feeds (id, url, name) VALUES (?, ?, ?)",
                [(i, f"https://news{i}.example.org/feed", f"news-{i}") for i in range(1, 201)],
            )
            store.db.conn.executemany(
                "INSERT INTO items (feed_id, guid, link, title, summary, content, summary_text,"
                " content_text, published_at, first_seen_at, content_hash, story_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows(rng, words, total),
            )
        store.db.execute("PRAGMA journal_mode = WAL")
        store.db.execute("PRAGMA synchronous = NORMAL")
        stored = time.perf_counter()
        catch_up(store)
        indexed = time.perf_counter()
    finally:
        store.close()
    return stored - began, indexed - stored


def index_bytes(path: Path) -> int:
    """Bytes of the items_fts tables (the index and its copy of the normalised text)."""
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        row = conn.execute("SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'items_fts%'").fetchone()
        return int(row[0] or 0)
    finally:
        conn.close()


def measure(path: Path, runs: int, ranks: tuple[int, int], seed: int) -> list[float]:
    """Milliseconds of each two-term search with --limit 20."""
    rng = random.Random(seed)
    words = vocabulary()
    store = Store(path)
    times: list[float] = []
    empty = 0
    try:
        for _ in range(runs):
            a, b = rng.sample(words[ranks[0] : ranks[1]], 2)
            began = time.perf_counter()
            query = translate_query(f"{a} {b}")
            hits = search_items(store, query.fts, SearchFilters(limit=20))
            times.append((time.perf_counter() - began) * 1000)
            empty += not hits
    finally:
        store.close()
    if empty:
        print(f"{empty} of {runs} queries found nothing", flush=True)
    return times


def startup_ms() -> float:
    """Median wall time of ``python -m watcher --version``: what a CLI call adds."""
    import subprocess

    times = []
    for _ in range(3):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "watcher", "--version"], check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    model = "unknown CPU"
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.*)$", cpuinfo.read_text(), re.MULTILINE)
        model = found.group(1).strip() if found else model
    import sqlite3

    return (
        f"{os.cpu_count()} CPUs (nproc), {model}; Python {platform.python_version()},"
        f" SQLite {sqlite3.sqlite_version}, {platform.system()} {platform.machine()};"
        f" load average {os.getloadavg()[0]:.1f} at the end (other work shares the CPUs)"
    )


def report(args: argparse.Namespace, built: tuple[float, float] | None, typical: list[float],
           common: list[float], size: int, index_size: int) -> str:  # fmt: skip
    per_100k = size / args.items * 100_000
    index_per_100k = index_size / args.items * 100_000
    build_line = "."
    if built is not None:
        rate = args.items / built[1] if built[1] else 0.0
        build_line = (
            f", rows written in {built[0]:.0f} s, then indexed from the queue in"
            f" {built[1]:.0f} s ({rate:,.0f} items/s)."
        )
    lines = [
        "## Search",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_search.py --items {args.items}"
        f" --runs {args.runs} --write-results`",
        "",
        f"Machine: {machine()}.",
        "",
        f"Archive: {args.items:,} generated items (news-like text, about 130 words each,"
        f" Zipf vocabulary of {VOCABULARY:,} words, {FEEDS} feeds)" + build_line,
        "",
        "| measure | result |",
        "|---|---|",
        f"| two-term query, `--limit 20`, median of {len(typical)} (target <= 100 ms)"
        f" | {statistics.median(typical):.1f} ms |",
        f"| same, 95th percentile | {_p95(typical):.1f} ms |",
        f"| two common words (ranks {COMMON_RANKS[0]}-{COMMON_RANKS[1]}), median"
        f" | {statistics.median(common):.1f} ms |",
        f"| database size | {size / 2**20:,.0f} MiB |",
        f"| database size per 100,000 items | {per_100k / 2**20:,.1f} MiB |",
        f"| search index (`items_fts` tables) per 100,000 items"
        f" | {index_per_100k / 2**20:,.1f} MiB |",
        "",
        "Each query is two different words of ranks"
        f" {TWO_TERM_RANKS[0]}-{TWO_TERM_RANKS[1]} (each in 1-12% of items),"
        " timed in-process through `translate_query` and `search_items` (what `watcher search`"
        " runs after start-up): bm25 ranking with the recency tiebreak, then titles and"
        " snippets for the 20 results. A `watcher search` command adds the start-up of"
        f" Python and the watcher package: {startup_ms():,.0f} ms for `watcher --version` here.",
        "",
    ]
    return "\n".join(lines)


def _p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.95) - 1)]


def write_results(section: str) -> None:
    """Replace the ``## Search`` section of RESULTS.md (other sections are kept)."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
    pattern = re.compile(r"^## Search\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text.rstrip("\n") + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--db", type=Path, help="reuse (or create) this archive file")
    parser.add_argument("--write-results", action="store_true", help="update RESULTS.md")
    args = parser.parse_args()
    path = args.db or Path(f"/tmp/watcher-bench-search-{args.items}.db")
    built = None
    if not path.exists():
        print(f"building {args.items:,} items in {path} ...", flush=True)
        built = build(path, args.items, args.seed)
        print(f"rows in {built[0]:.0f} s, index in {built[1]:.0f} s", flush=True)
    typical = measure(path, args.runs, TWO_TERM_RANKS, args.seed + 1)
    common = measure(path, max(20, args.runs // 10), COMMON_RANKS, args.seed + 2)
    size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    section = report(args, built, typical, common, size, index_bytes(path))
    print(section)
    if args.write_results:
        write_results(section)


if __name__ == "__main__":
    main()
