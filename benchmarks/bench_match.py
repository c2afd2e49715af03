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

``--mixed`` makes a third of the items and a third of the rules Chinese, Japanese or Korean
(in turn), where every character is a token (SPEC §4):

- Each language has its own Zipf vocabulary of 50,000 made-up words built from characters
  that follow Zipf's law too (3,000 ideographs, the kana, 1,500 Hangul syllables), so a few
  characters are in every item and most pairs of them are rare, as in real text.
- Chinese items run words together with no space (``，`` and ``。`` between clauses);
  Japanese ones put a particle (``の``, ``に``, ``を`` …) after many words and mix Katakana
  loanwords in; Korean ones space their words and attach particles (``에서``, ``이`` …).
  An item holds 400-1,200 characters, as a news story in those languages does.
- Unspaced rules have the shapes of the others without wildcards (a ``*`` after such a word
  is an error): phrase lists, boolean queries, NEAR/8 (characters), a title scope; a third
  of them also name the place in Latin and Cyrillic (``any: [Kursk, Курск, 库尔斯克]``),
  as a rule written with a term list does.

Prints items per second of CPU time (``time.process_time``, so that other work on a shared
machine does not skew it; on an idle machine it equals wall-clock throughput), matches per
item and the peak traced memory of compiling the rules and matching items, per rule count.
``--passes K`` times K passes over the same items and keeps the fastest: CPU time still
grows when other work on the machine evicts the matcher's tables from the shared caches,
which costs the 10,000-rule case (memory-bound) more than the 10-rule one.

``--python`` keeps the candidate look-up, and the spacing of non-ASCII text, in Python even
where the C module (``watcher/_scan.c``) is built, to measure the path an install
without a C compiler takes.

``--processes P`` (P > 1) also matches the same items in a pool of P worker processes, as
a poll does (``watcher/poll/workers.py``): each worker compiles the rules once when it starts,
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

from watcher import text as normalize
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
    language: str = "en"  # the items it is planted in (--mixed)


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


# --- scripts written without spaces (--mixed) ----------------------------------------------

HAN = [chr(code) for code in range(0x4E00, 0x4E00 + 3000)]
HIRAGANA = [chr(code) for code in range(0x3041, 0x3097)]
KATAKANA = [chr(code) for code in range(0x30A1, 0x30FB)] + ["ー"]
HANGUL = [chr(0xAC00 + 7 * i) for i in range(1500)]  # spread over the syllable block
PARTICLES = {
    "ja": ["の", "に", "は", "を", "で", "が", "と"],
    "ko": ["이", "가", "은", "는", "을", "를", "에서", "의"],
}
PLACES = ["Kursk", "Курск", "Курськ"]


@dataclass(frozen=True)
class Language:
    """How one language writes words into sentences."""

    code: str
    words: Words
    space: str  # between words
    particles: list[str]  # attached after some words


def char_vocabulary(rng: random.Random, chars: list[str], lengths: list[int]) -> Words:
    """Made-up words of Zipf-distributed characters, themselves in Zipf rank order."""
    weights = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(chars))))
    shuffled = chars[:]
    rng.shuffle(shuffled)
    words: set[str] = set()
    while len(words) < VOCABULARY:
        size = rng.choice(lengths)
        words.add("".join(rng.choices(shuffled, cum_weights=weights, k=size)))
    ranked = sorted(words)
    rng.shuffle(ranked)
    ranked.sort(key=len)
    ranked = [w for _, w in sorted(enumerate(ranked), key=lambda p: p[0] + rng.random() * 4000)]
    cumulative = list(itertools.accumulate(1 / (rank + 1) for rank in range(VOCABULARY)))
    return Words(ranked, cumulative)


def languages(rng: random.Random) -> list[Language]:
    """Chinese, Japanese and Korean, each with its own vocabulary."""
    japanese = HAN[:2000] + KATAKANA * 8  # Katakana loanwords among the ideographs
    return [
        Language("zh", char_vocabulary(rng, HAN, [1, 2, 2, 2, 2, 3, 4]), "", []),
        Language("ja", char_vocabulary(rng, japanese, [2, 2, 3, 4, 5]), "", PARTICLES["ja"]),
        Language("ko", char_vocabulary(rng, HANGUL, [2, 2, 3, 3, 4]), " ", PARTICLES["ko"]),
    ]


def unspaced_sentences(rng: random.Random, language: Language, count: int) -> str:
    """About ``count`` words of ``language`` in sentences, with its punctuation."""
    out: list[str] = []
    left = count
    while left > 0:
        size = min(left, rng.randint(8, 25))
        words = language.words.text(rng, size)
        if language.particles:
            words = [w + rng.choice(language.particles) if rng.random() < 0.4 else w for w in words]
        if rng.random() < 0.15:
            words[rng.randrange(size)] = str(rng.randint(2, 2030))
        clause = rng.randrange(size)
        words[clause] += "，" if language.code == "zh" else "、" if language.code == "ja" else ","
        out.append(language.space.join(words) + ("." if language.code == "ko" else "。"))
        left -= size
    return language.space.join(out)


def make_unspaced_rule(
    rng: random.Random, index: int, language: Language, pick: Callable[[bool], str]
) -> Planted:
    """One rule of six shapes in a language written without spaces; no wildcards."""
    rid, kind = f"r{index}", index % 6
    a, b, c, d = pick(False), pick(False), pick(False), pick(False)
    places = tuple(PLACES) if index % 3 == 0 else ()
    if kind == 0:
        rare = pick(True)
        rule = Rule(id=rid, file="bench", any=(f"{a}{b}", f"{c} {rare}", *places))
        return Planted(rule, "content", f"{a}{b}")
    if kind == 1:
        rare = pick(True)
        rule = Rule(id=rid, file="bench", query=f"{a} AND {rare}")
        return Planted(rule, "content", f"{a}，{rare}")
    if kind == 2:
        rule = Rule(id=rid, file="bench", query=f"({a} OR {b}) {c} NOT {d}")
        return Planted(rule, "content", f"{b}{c}")
    if kind == 3:
        rule = Rule(id=rid, file="bench", query=f'{a} NEAR/8 "{b}{c}"')
        return Planted(rule, "content", f"{a}{b}{c}")
    if kind == 4:
        rule = Rule(id=rid, file="bench", all=(a,), any=(f"{b} {c}", *places))
        return Planted(rule, "content", f"{a}，{b}{c}")
    rule = Rule(id=rid, file="bench", query=f'title:{a} AND ({b} OR "{c}{d}")')
    return Planted(rule, "title", f"{a}{c}{d}")


def make_mixed_rules(
    rng: random.Random, words: Words, tongues: list[Language], count: int
) -> list[Planted]:
    """Two rules in three as ``make_rules`` makes them, the third in Chinese, Japanese or
    Korean in turn; each planted passage says which language's items it belongs in."""
    out: list[Planted] = []
    for index in range(count):
        if index % 3 != 2:

            def pick_latin(rare: bool) -> str:
                low, high = RARE_RANKS if rare else RULE_RANKS
                return words.ranked[rng.randrange(low, high)]

            out.append(make_rule(rng, index, pick_latin))
            continue
        language = tongues[(index // 3) % len(tongues)]

        def pick(rare: bool, vocabulary: Words = language.words) -> str:
            low, high = RARE_RANKS if rare else RULE_RANKS
            return vocabulary.ranked[rng.randrange(low, high)]

        planted = make_unspaced_rule(rng, index, language, pick)
        out.append(Planted(planted.rule, planted.field, planted.passage, language.code))
    return out


def make_mixed_items(
    rng: random.Random,
    words: Words,
    tongues: list[Language],
    planted: list[Planted],
    count: int,
) -> list[MatchItem]:
    """Two items in three as ``make_items`` makes them; every third in Chinese, Japanese or
    Korean in turn. One item in three carries the passage of a rule of its language."""
    by_language: dict[str, list[Planted]] = {}
    for story in planted:
        by_language.setdefault(story.language, []).append(story)
    items = []
    for number in range(count):
        if number % 3 != 2:
            fields = {
                "title": sentences(rng, words, rng.randint(7, 14)).rstrip("."),
                "summary": sentences(rng, words, rng.randint(20, 50)),
                "content": sentences(rng, words, rng.randint(150, 650)),
            }
            code = "en"
        else:
            language = tongues[(number // 3) % len(tongues)]
            code = language.code
            fields = {
                "title": unspaced_sentences(rng, language, rng.randint(5, 10)).rstrip("。."),
                "summary": unspaced_sentences(rng, language, rng.randint(15, 30)),
                "content": unspaced_sentences(rng, language, rng.randint(150, 450)),
            }
        stories = by_language.get(code)
        if stories and rng.random() < 1 / 3:
            story = rng.choice(stories)
            fields[story.field] += story.passage + ("。" if code != "en" else ".")
        items.append(MatchItem(fields={k: (v,) for k, v in fields.items()}, feed_name="bench"))
    return items


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
    rule_count: int,
    words: Words,
    item_count: int,
    seed: int,
    broad: bool,
    tongues: list[Language] | None = None,
) -> tuple[list[Rule], list[MatchItem]]:
    if tongues:
        planted = make_mixed_rules(random.Random(seed), words, tongues, rule_count)
        items = make_mixed_items(random.Random(seed + 1), words, tongues, planted, item_count)
        return [p.rule for p in planted], items
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
    parser.add_argument("--mixed", action="store_true", help="a third in CJK (see above)")
    parser.add_argument(
        "--rules", type=int, nargs="+", default=[10, 1_000, 10_000], help="rule counts"
    )
    args = parser.parse_args()
    words = vocabulary(random.Random(args.seed))
    tongues = languages(random.Random(args.seed + 2)) if args.mixed else None
    kind = "broad" if args.broad else "mixed-script" if args.mixed else "specific"
    scan = SCAN_BUILT and not args.python
    if args.python:  # spacing non-ASCII text in Python too, as without a C compiler
        normalize._c_spaced = None
    look_up = "C module" if scan else "Python"
    print(f"matching: {args.items} items of ~450 words, {kind} rules, {look_up} look-up")
    rates: dict[int, float] = {}
    pooled: dict[int, float] = {}
    for n in args.rules:
        rules, items = make_workload(n, words, args.items, args.seed, args.broad, tongues)
        rates[n] = run(rules, items, args.passes, scan)
        if args.processes > 1:
            pooled[n] = run_pool(rules, items, args.processes, scan)
    most, fewest = max(rates), min(rates)
    if most != fewest:
        ratio = rates[most] / rates[fewest]
        print(f"one process, CPU time: {most:,} rules / {fewest:,} rules = {ratio:.2f}")
    if pooled and most != fewest:
        ratio = pooled[most] / pooled[fewest]
        print(f"{args.processes} processes, wall clock: {most:,} rules / {fewest:,} = {ratio:.2f}")


if __name__ == "__main__":
    main()
