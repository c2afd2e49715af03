"""Benchmark of normalisation + rule matching at 10, 1,000 and 10,000 rules; no feeds, no I/O.

Run: ``.venv/bin/python benchmarks/bench_match.py [--items N] [--seed S] [--broad]
[--processes P] [--passes K] [--python]``.

The workload is meant to look like real alerting:

- A 50,000-word vocabulary (made-up words from syllables) whose ranks follow Zipf's law
  (frequency ~ 1/rank), as words of news text do: the top words are in every item, most
  words are rare.
- Items of news length: a 7-14 word title, a 20-50 word summary and 150-650 words of
  content (about 450 words in all), in capitalised sentences with commas, full stops,
  hyphenated compounds and numbers such as ``11,000``.
- Rules are specific, as real alert rules are: their words are drawn from ranks 500 to
  30,000 (no stop-word-like words; a word that is a whole condition on its own, like a
  place name, from ranks 5,000 to 50,000), in a mix of phrase lists, wildcards (a prefix of at
  least 4 letters plus a term), boolean queries with OR and NOT, NEAR/5 with a phrase,
  joined forms (``"a-b"``) and a title scope.
- One item in three carries a passage written to satisfy one of the rules (the story a
  rule is about), so each rule count sees about 0.3 planted matches per item plus whatever
  matches by chance. A typical item thus matches few rules, whatever their number.

``--broad`` swaps in single common words and 3-letter prefixes (many matches per item) to
show how the engine behaves when rules are far less selective than real ones.

Prints items per second of CPU time (``time.process_time``, so that other work on a shared
machine does not skew it; on an idle machine it equals wall-clock throughput), matches per
item and the peak traced memory of compiling the rules and matching items, per rule count.
``--passes K`` times K passes over the same items and keeps the fastest: CPU time still
grows when other work on the machine evicts the matcher's tables from the shared caches,
which costs the 10,000-rule case (memory-bound) more than the 10-rule one.

``--python`` keeps the candidate look-up in Python even where the C module
(``watcher/rules/_scan.c``) is built, to measure the path an install without a C compiler
takes.

``--processes P`` (P > 1) also matches the same items in a pool of P worker processes, as
a poll does (``watcher/workers.py``): each worker compiles the rules once when it starts,
then matches chunks of items; the figure is items per second of wall-clock time from the
moment every worker is ready, so it counts the parent's share of the work too.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import multiprocessing.synchronize
import random
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

from watcher.rules.match import SCAN_BUILT, CompiledRules, compile_rules, match_item
from watcher.types import MatchItem, Rule

SYLLABLES = [
    "ka", "ro", "mi", "tu", "sen", "dra", "vol", "ne", "pik", "lo", "gor", "an", "esk", "bu",
    "ter", "xa", "il", "om", "zu", "fe", "shi", "nov", "ar", "gle",
]  # fmt: skip
VOCABULARY = 50_000
RULE_RANKS = (500, 30_000)  # specific rules: rarer words, never the most common ones
RARE_RANKS = (5_000, VOCABULARY)  # a word that alone makes a condition: a name, a place
BROAD_RANKS = (1_000, VOCABULARY)  # single words anywhere past the commonest


@dataclass(frozen=True)
class Words:
    """A vocabulary in rank order with Zipf cumulative weights for fast sampling."""

    ranked: list[str]
    cumulative: list[float]

    def text(self, rng: random.Random, count: int) -> list[str]:
        return rng.choices(self.ranked, cum_weights=self.cumulative, k=count)


def vocabulary(rng: random.Random, size: int = VOCABULARY) -> Words:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))))
    ranked = sorted(words)
    rng.shuffle(ranked)
    ranked.sort(key=len)  # short words are the common ones, as in real languages
    ranked = [w for _, w in sorted(enumerate(ranked), key=lambda p: p[0] + rng.random() * 4000)]
    cumulative = list(itertools.accumulate(1 / (rank + 1) for rank in range(size)))
    return Words(ranked, cumulative)


# --- rules, each with a passage that satisfies it ------------------------------------------


@dataclass(frozen=True)
class Planted:
    rule: Rule
    field: str  # where the witness passage goes: "title" or "content"
    passage: str


def make_rule(rng: random.Random, index: int, pick: Callable[[bool], str]) -> Planted:
    """One rule of six shapes; a word standing alone in a rule is a rare one (a name)."""
    rid, kind = f"r{index}", index % 6
    a, b, c, d = pick(False), pick(False), pick(False), pick(False)
    if kind == 0:
        rare = pick(True)
        rule = Rule(id=rid, file="bench", any=(f"{a} {b}", f"{c} {rare}"))
        return Planted(rule, "content", f"{a} {b}")
    if kind == 1:
        rare = pick(True)
        rule = Rule(id=rid, file="bench", query=f"{a}* AND {rare}")
        return Planted(rule, "content", f"{a}ed by the {rare}")
    if kind == 2:
        rule = Rule(id=rid, file="bench", query=f"({a} OR {b}) {c} NOT {d}")
        return Planted(rule, "content", f"{b} and {c}")
    if kind == 3:
        rule = Rule(id=rid, file="bench", query=f'{a} NEAR/5 "{b} {c}"')
        return Planted(rule, "content", f"{a} near the {b} {c}")
    if kind == 4:
        rule = Rule(id=rid, file="bench", all=(a,), any=(f'"{b}-{c}"',))
        return Planted(rule, "content", f"{a}, {b}{c}")
    rule = Rule(id=rid, file="bench", query=f'title:{a} AND ({b} OR "{c} {d}")')
    return Planted(rule, "title", f"{a} {c} {d}")


def make_broad_rule(rng: random.Random, index: int, pick: Callable[[bool], str]) -> Planted:
    rid, a, b, c = f"r{index}", pick(False), pick(False), pick(False)
    if index % 2:
        return Planted(Rule(id=rid, file="bench", query=f"{a[:3]}* AND {b}"), "content", a + b)
    return Planted(Rule(id=rid, file="bench", any=(a,), none=(c,)), "content", a)


def make_rules(rng: random.Random, words: Words, count: int, *, broad: bool) -> list[Planted]:
    make = make_broad_rule if broad else make_rule

    def pick(rare: bool) -> str:
        low, high = BROAD_RANKS if broad else RARE_RANKS if rare else RULE_RANKS
        return words.ranked[rng.randrange(low, high)]

    return [make(rng, i, pick) for i in range(count)]


# --- items ---------------------------------------------------------------------------------


def sentences(rng: random.Random, words: Words, count: int) -> str:
    out: list[str] = []
    left = count
    while left > 0:
        size = min(left, rng.randint(8, 25))
        sentence = words.text(rng, size)
        if rng.random() < 0.3:
            sentence[rng.randrange(size)] += ","
        if rng.random() < 0.15:
            sentence[rng.randrange(size)] = f"{rng.randint(1, 99)},{rng.randint(0, 999):03d}"
        if rng.random() < 0.2 and size > 1:
            i = rng.randrange(size - 1)
            sentence[i : i + 2] = [f"{sentence[i]}-{sentence[i + 1]}"]
        out.append(" ".join(sentence).capitalize() + ".")
        left -= size
    return " ".join(out)


def make_items(
    rng: random.Random, words: Words, planted: list[Planted], count: int
) -> list[MatchItem]:
    items = []
    for _ in range(count):
        fields = {
            "title": sentences(rng, words, rng.randint(7, 14)).rstrip("."),
            "summary": sentences(rng, words, rng.randint(20, 50)),
            "content": sentences(rng, words, rng.randint(150, 650)),
        }
        if rng.random() < 1 / 3:
            story = rng.choice(planted)
            fields[story.field] += " " + story.passage.capitalize() + "."
        items.append(MatchItem(fields={k: (v,) for k, v in fields.items()}, feed_name="bench"))
    return items


# --- measuring -----------------------------------------------------------------------------


def make_workload(
    rule_count: int, words: Words, item_count: int, seed: int, broad: bool
) -> tuple[list[Rule], list[MatchItem]]:
    planted = make_rules(random.Random(seed), words, rule_count, broad=broad)
    items = make_items(random.Random(seed + 1), words, planted, item_count)
    return [p.rule for p in planted], items


def run(rules: list[Rule], items: list[MatchItem], passes: int = 1, scan: bool = True) -> float:
    rule_count = len(rules)
    started = time.perf_counter()
    compiled = compile_rules(rules, scan)
    compile_s = time.perf_counter() - started
    rate = matched = 0.0
    for _ in range(passes):
        started = time.process_time()  # CPU time: other processes on the machine do not count
        matched = sum(len(match_item(compiled, item)) for item in items)
        rate = max(rate, len(items) / (time.process_time() - started))
    peak = peak_memory(rules, items[:300], scan)
    print(
        f"{rule_count:>6} rules: {rate:>8.0f} items/s  {matched / len(items):>6.2f} matches/item"
        f"  compile {compile_s:.2f} s  peak {peak / 1e6:.1f} MB (compile + match)",
        flush=True,
    )
    return rate


# --- several processes -----------------------------------------------------------------------

CHUNK_ITEMS = 250
# Set in the parent before the pool forks, so that workers inherit the items and rules.
_shared: dict[str, object] = {}
_compiled: CompiledRules | None = None


def _start_worker() -> None:
    """Compile the rules once in this worker, then wait until every worker is ready."""
    global _compiled
    rules = _shared["rules"]
    assert isinstance(rules, list)
    _compiled = compile_rules(rules, bool(_shared["scan"]))


def _ready(_: int) -> None:
    barrier = _shared["barrier"]
    assert isinstance(barrier, multiprocessing.synchronize.Barrier)
    barrier.wait()


def _match_chunk(start: int) -> int:
    items = _shared["items"]
    assert isinstance(items, list) and _compiled is not None
    return sum(len(match_item(_compiled, item)) for item in items[start : start + CHUNK_ITEMS])


def run_pool(rules: list[Rule], items: list[MatchItem], processes: int, scan: bool) -> float:
    """Items per second of wall-clock time, matched in chunks by ``processes`` workers."""
    context = multiprocessing.get_context("fork")
    _shared.update(rules=rules, items=items, barrier=context.Barrier(processes), scan=scan)
    with context.Pool(processes, initializer=_start_worker) as pool:
        pool.map(_ready, range(processes), chunksize=1)  # every worker has compiled
        started = time.perf_counter()
        chunks = range(0, len(items), CHUNK_ITEMS)
        matched = sum(pool.imap_unordered(_match_chunk, chunks))
        rate = len(items) / (time.perf_counter() - started)
    print(
        f"{len(rules):>6} rules: {rate:>8.0f} items/s wall clock with {processes} processes"
        f"  {matched / len(items):>6.2f} matches/item",
        flush=True,
    )
    return rate


def peak_memory(rules: list[Rule], items: list[MatchItem], scan: bool) -> int:
    """Peak traced memory of compiling the rules and matching a few items (slow: separate).

    Memory the C module allocates is traced too: it allocates through ``PyMem_*``.
    """
    tracemalloc.start()
    compiled = compile_rules(rules, scan)
    for item in items:
        match_item(compiled, item)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--broad", action="store_true", help="unselective rules (see above)")
    parser.add_argument("--processes", type=int, default=1, help="also match in P workers")
    parser.add_argument("--passes", type=int, default=1, help="keep the fastest of K passes")
    parser.add_argument("--python", action="store_true", help="no C candidate look-up")
    args = parser.parse_args()
    words = vocabulary(random.Random(args.seed))
    kind = "broad" if args.broad else "specific"
    scan = SCAN_BUILT and not args.python
    look_up = "C module" if scan else "Python"
    print(f"matching: {args.items} items of ~450 words, {kind} rules, {look_up} look-up")
    rates: dict[int, float] = {}
    pooled: dict[int, float] = {}
    for n in (10, 1_000, 10_000):
        rules, items = make_workload(n, words, args.items, args.seed, args.broad)
        rates[n] = run(rules, items, args.passes, scan)
        if args.processes > 1:
            pooled[n] = run_pool(rules, items, args.processes, scan)
    print(f"one process, CPU time: 10,000 rules / 10 rules = {rates[10_000] / rates[10]:.2f}")
    if pooled:
        ratio = pooled[10_000] / pooled[10]
        print(f"{args.processes} processes, wall clock: 10,000 rules / 10 rules = {ratio:.2f}")


if __name__ == "__main__":
    main()
