"""Benchmark of normalisation + rule matching at 10, 1,000 and 10,000 rules; no feeds, no I/O.

Run: ``.venv/bin/python benchmarks/bench_match.py [--items N] [--seed S]``. Rules mix phrases,
wildcards, boolean queries and NEAR, drawn from a synthetic vocabulary; items are ~300-word
texts whose words follow a Zipf-like distribution, as news text does. Prints items/s and the
peak memory of compiling and matching for each rule count.
"""

from __future__ import annotations

import argparse
import random
import time
import tracemalloc

from watcher.rules.match import compile_rules, match_item
from watcher.types import MatchItem, Rule

SYLLABLES = [
    "ka", "ro", "mi", "tu", "sen", "dra", "vol", "ne", "pik", "lo", "gor", "an", "esk", "bu",
    "ter", "xa", "il", "om", "zu", "fe",
]  # fmt: skip


def vocabulary(rng: random.Random, size: int) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))))
    return sorted(words)


def make_rule(rng: random.Random, index: int, words: list[str]) -> Rule:
    pick = lambda: rng.choice(words)  # noqa: E731
    kind = index % 5
    if kind == 0:
        return Rule(id=f"r{index}", file="bench", any=(f"{pick()} {pick()}", pick()))
    if kind == 1:
        return Rule(id=f"r{index}", file="bench", query=f"{pick()[:3]}* AND {pick()}")
    if kind == 2:
        return Rule(id=f"r{index}", file="bench", query=f"({pick()} OR {pick()}) NOT {pick()}")
    if kind == 3:
        return Rule(id=f"r{index}", file="bench", query=f"{pick()} NEAR/5 {pick()}")
    return Rule(id=f"r{index}", file="bench", all=(pick(),), any=(f'"{pick()}-{pick()}"',))


def make_items(rng: random.Random, words: list[str], count: int) -> list[MatchItem]:
    weights = [1 / (rank + 1) ** 1.1 for rank in range(len(words))]
    items = []
    for _ in range(count):
        body = rng.choices(words, weights, k=300)
        title = " ".join(rng.choices(words, weights, k=10)).capitalize()
        content = ". ".join(" ".join(body[i : i + 15]).capitalize() for i in range(0, 300, 15))
        items.append(MatchItem(fields={"title": (title,), "content": (content + ".",)}))
    return items


def run(rule_count: int, items: list[MatchItem], words: list[str], seed: int) -> None:
    rng = random.Random(seed)
    # Alert keywords are the rarer words of a language: skip the most common ranks.
    rare = words[len(words) // 10 :]
    rules = [make_rule(rng, i, rare) for i in range(rule_count)]
    compiled = compile_rules(rules)
    started = time.perf_counter()
    matched = sum(len(match_item(compiled, item)) for item in items)
    elapsed = time.perf_counter() - started
    peak = peak_memory(rules, items[:200])
    rate = len(items) / elapsed
    print(
        f"{rule_count:>6} rules: {rate:>8.0f} items/s  {matched / len(items):>6.2f} matches/item"
        f"  peak {peak / 1e6:.1f} MB (compile + match)"
    )


def peak_memory(rules: list[Rule], items: list[MatchItem]) -> int:
    """Peak traced memory of compiling the rules and matching a few items (slow: separate)."""
    tracemalloc.start()
    compiled = compile_rules(rules)
    for item in items:
        match_item(compiled, item)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    words = vocabulary(rng, 50_000)
    items = make_items(rng, words, args.items)
    for count in (10, 1_000, 10_000):
        run(count, items, words, args.seed)


if __name__ == "__main__":
    main()
