"""Article extraction: quality on the project's test pages, time per page, hostile pages.

Run: ``.venv/bin/python benchmarks/bench_extract.py [--repeat 20] [--no-hostile]
[--raw-hostile]``.

Extractors compared (a library that is not installed is left out with a note):

- ``watcher``: ``watcher.poll.article.extract_article``, what watcher stores: its own
  decoding and bounds, boilerplate containers pruned, then readability-lxml;
- ``readability``: readability-lxml alone on the raw bytes;
- ``trafilatura``: trafilatura alone, precision first and without comments;
- ``trafilatura-defaults``: trafilatura alone with its default options;
- ``trafilatura+pruning``: watcher's decoding and pruning, then trafilatura as above
  (trafilatura is not a dependency: ``pip install trafilatura`` in the virtualenv to
  measure it).

Quality, over the pages of tests/data/articles (see tests/articles.py for their
expectations): body recall (the share of body paragraphs found in the text), boilerplate
leaks (the pieces of navigation, footer, sidebar, share bar, cookie banner, related
stories, comments and subscription boxes found in the text, out of all listed), the pages
with any leak, and the negatives: pages whose topic phrase stands only outside the body
but that a rule on it would match.

Time: the median over ``--repeat`` runs of each page, per extractor. Hostile pages
(tests/articles.py HOSTILE): each runs in a child process, which reports its CPU time,
its peak memory and the outcome; ``--raw-hostile`` also runs the libraries alone on them
(some take minutes).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lxml.html import HtmlElement  # noqa: E402

from tests.articles import HOSTILE, Page, flat, holds, pages  # noqa: E402
from watcher.poll import article  # noqa: E402
from watcher.poll.article import extract_article  # noqa: E402
from watcher.poll.charset import decode_html  # noqa: E402
from watcher.poll.html import html_to_text  # noqa: E402

Extractor = Callable[[Page], str]


def _watcher(page: Page) -> str:
    return extract_article(page.html, page.url, page.content_type).text


def _pruned_tree(page: Page) -> HtmlElement | None:
    """The page as watcher parses and prunes it before its extractor runs."""
    text, _ = decode_html(page.html, page.content_type)
    tree = article._parse(text)
    if tree is not None:
        article._prune_boilerplate(tree)
    return tree


def _extractors() -> tuple[dict[str, Extractor], list[str]]:
    found: dict[str, Extractor] = {"watcher": _watcher}
    notes = []
    try:
        from readability import Document
    except ImportError:
        notes.append("readability-lxml is not installed: not measured alone")
    else:

        def readability(page: Page) -> str:
            return html_to_text(Document(page.html, url=page.url).summary(html_partial=True))

        found["readability"] = readability
    try:
        import trafilatura
    except ImportError:
        notes.append("trafilatura is not installed: not measured (pip install trafilatura)")
    else:
        options = {"favor_precision": True, "include_comments": False}

        def trafilatura_alone(page: Page) -> str:
            return trafilatura.extract(page.html, url=page.url, **options) or ""

        def trafilatura_pruned(page: Page) -> str:
            tree = _pruned_tree(page)
            return "" if tree is None else trafilatura.extract(tree, url=page.url, **options) or ""

        found["trafilatura"] = trafilatura_alone
        found["trafilatura-defaults"] = lambda page: trafilatura.extract(page.html) or ""
        found["trafilatura+pruning"] = trafilatura_pruned
    return found, notes


@dataclass
class Quality:
    body_found: int = 0
    body_total: int = 0
    leaked: int = 0
    boilerplate_total: int = 0
    pages_leaking: list[str] = field(default_factory=list)
    false_alerts: list[str] = field(default_factory=list)  # negatives whose phrase is in text
    missed: list[str] = field(default_factory=list)  # positives whose phrase is not
    leaks: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)


def measure_quality(extract: Extractor, corpus: list[Page]) -> Quality:
    quality = Quality()
    for page in corpus:
        text = extract(page)
        found = [fragment for fragment in page.body if holds(text, fragment)]
        leaked = [fragment for fragment in page.boilerplate if holds(text, fragment)]
        quality.body_found += len(found)
        quality.body_total += len(page.body)
        quality.leaked += len(leaked)
        quality.boilerplate_total += len(page.boilerplate)
        quality.lost += [f"{page.name}: {f}" for f in page.body if f not in found]
        quality.leaks += [f"{page.name}: {f}" for f in leaked]
        if leaked:
            quality.pages_leaking.append(page.name)
        has_phrase = flat(page.keyword).casefold() in flat(text).casefold()
        if has_phrase and not page.keyword_in_body:
            quality.false_alerts.append(page.name)
        if page.keyword_in_body and not has_phrase:
            quality.missed.append(page.name)
    return quality


def time_pages(extract: Extractor, corpus: list[Page], repeat: int) -> dict[str, float]:
    """Median milliseconds per page."""
    medians = {}
    for page in corpus:
        runs = []
        for _ in range(repeat):
            start = time.perf_counter()
            extract(page)
            runs.append((time.perf_counter() - start) * 1000)
        medians[page.name] = statistics.median(runs)
    return medians


def run_hostile_child(name: str, extractor: str) -> None:
    """In a child process: one hostile page through one extractor; prints a JSON line."""
    html = HOSTILE[name]()
    page = Page(name, html, "https://hostile.example/a", "text/html", "", False, (), ())
    extractors, _ = _extractors()
    start = time.process_time()
    if extractor == "watcher":
        result = extract_article(html, page.url, page.content_type)
        outcome = str(result.error) if result.error else f"{len(result.text)} characters"
    else:
        outcome = f"{len(extractors[extractor](page))} characters"
    cpu = time.process_time() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"bytes": len(html), "cpu_s": cpu, "peak_mb": peak, "outcome": outcome}))


def measure_hostile(extractor: str, timeout: float) -> dict[str, dict[str, object]]:
    results: dict[str, dict[str, object]] = {}
    for name in HOSTILE:
        command = [sys.executable, __file__, "--hostile-child", name, extractor]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            results[name] = {"outcome": f"not finished in {timeout:.0f} s"}
            continue
        lines = done.stdout.strip().splitlines()
        results[name] = json.loads(lines[-1]) if lines else {"outcome": done.stderr[-200:]}
    return results


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "-"


def report_quality(name: str, quality: Quality, corpus: list[Page], verbose: bool) -> None:
    negatives = sum(1 for page in corpus if not page.keyword_in_body)
    positives = len(corpus) - negatives
    print(
        f"{name:22} body recall {_percent(quality.body_found, quality.body_total):>7}"
        f" ({quality.body_found}/{quality.body_total})"
        f"  boilerplate leaked {_percent(quality.leaked, quality.boilerplate_total):>7}"
        f" ({quality.leaked}/{quality.boilerplate_total})"
        f"  pages leaking {len(quality.pages_leaking)}/{len(corpus)}"
        f"  negatives matched {len(quality.false_alerts)}/{negatives}"
        f"  positives missed {len(quality.missed)}/{positives}"
    )
    if verbose:
        for line in quality.leaks:
            print(f"    leaked  {line}")
        for line in quality.lost:
            print(f"    lost    {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="runs per page for timing")
    parser.add_argument("--no-hostile", action="store_true", help="skip the hostile pages")
    parser.add_argument("--raw-hostile", action="store_true", help="libraries alone too")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per hostile run")
    parser.add_argument("--verbose", action="store_true", help="list every leak and loss")
    parser.add_argument("--hostile-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hostile_child:
        run_hostile_child(*args.hostile_child)
        return

    corpus = pages()
    extractors, notes = _extractors()
    print(f"python {platform.python_version()}, {len(corpus)} pages")
    for note in notes:
        print(f"note: {note}")
    print("\n== quality")
    for name, extract in extractors.items():
        report_quality(name, measure_quality(extract, corpus), corpus, args.verbose)
    print(f"\n== median ms per page over {args.repeat} runs")
    times = {name: time_pages(extract, corpus, args.repeat) for name, extract in extractors.items()}
    print(f"{'page':32}" + "".join(f"{name:>22}" for name in times))
    for page in corpus:
        print(f"{page.name:32}" + "".join(f"{times[name][page.name]:>22.1f}" for name in times))
    if args.no_hostile:
        return
    print("\n== hostile pages (CPU s, peak MB, outcome), one child process each")
    for name in ["watcher", *([n for n in extractors if n != "watcher"] * args.raw_hostile)]:
        for case, result in measure_hostile(name, args.timeout).items():
            cpu = result.get("cpu_s")
            peak = result.get("peak_mb")
            figures = f"{cpu:8.2f} s {peak:7.0f} MB" if cpu is not None else " " * 20
            print(f"{name:22} {case:20} {figures}  {result['outcome']}")


if __name__ == "__main__":
    main()
