"""The C candidate scan (watcher/_scan.c) on its own: what it finds, what it refuses."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.rules.match import ScanIndex, _starts, c_starts
from watcher.text import spaced

if ScanIndex is None:  # the module-level failure names the cause; no test is skipped
    pytest.fail("watcher._scan is not built; reinstall with a C compiler")
assert ScanIndex is not None
Index = ScanIndex


def test_words_held_as_whole_tokens_only() -> None:
    index = Index(["kursk", "troops", "straße", "11"], [])
    found = index.scan(spaced("North Korean troops near Kursk’s border; 11,000 men"))
    assert "kursk" in found and "troops" in found and "11" in found
    assert "straße" not in found  # a rule word the text does not hold
    assert "north" not in found  # held by the text, but not a rule word: never asked
    assert "troop" not in found and 11 not in found
    assert found.isdisjoint(["straße", "drones"]) and not found.isdisjoint(["x", "kursk"])


def test_non_ascii_words_are_compared_as_utf8() -> None:
    index = Index(["курск", "ötzi"], [])
    found = index.scan(" войска у курск ötzi ")
    assert "курск" in found and "ötzi" in found and "курска" not in found


def test_entries_pass_on_a_companion_word_or_prefix_and_come_sorted() -> None:
    words = ["kursk", "troops", "north", "fiber"]
    entries = [
        (0, (1,), (), ()),  # kursk with troops
        (1, (), (" dron",), ()),  # troops with a token starting "dron"
        (2, (0,), (), ()),  # north with kursk
        (3, (2,), (" opti",), ()),  # fiber with north, or a token starting "opti"
    ]
    index = Index(words, entries)
    assert index.words == 4
    assert index.scan(" north korean troops near kursk ").entries == [0, 2]
    assert index.scan(" troops with drones and fiber optics ").entries == [1, 3]
    assert index.scan(" troops with the drone ").entries == [1]
    assert index.scan(" kursk ").entries == []  # the anchor alone is not enough
    assert index.scan("").entries == [] and index.scan("     ").entries == []
    assert index.scan(" xdrone troops ").entries == []  # a prefix starts a token


def test_a_pair_is_side_by_side_within_one_value() -> None:
    index = Index(["fiber", "optic"], [(0, (1,), (), (0, 1))])  # "fiber optic"
    assert index.scan(" fiber optic drones ").entries == [0]
    assert index.scan(spaced("fiber, optic")).entries == [0]  # punctuation between: a pair
    assert index.scan(" fiber x optic ").entries == []
    assert index.scan(" optic fiber ").entries == []
    assert index.scan(" a fiber \n optic b ").entries == []  # two values
    assert index.scan(" fiber \n fiber optic ").entries == [0]


def test_a_chain_needs_every_pair_side_by_side_and_its_run_as_it_stands() -> None:
    words = ["库", "尔", "斯", "克", "州"]
    run = " 库 尔 斯 克 "
    index = Index(words, [(0, (1,), (), (0, 1, 2, 3), run), (4, (0,), (), (0, 1))])
    assert index.scan(spaced("朝鲜军队在库尔斯克州作战")).entries == [0, 1]
    assert index.scan(spaced("库尔斯 克")).entries == [0]  # spaces change nothing
    assert index.scan(spaced("库尔，斯克，州")).entries == [0, 1]  # across punctuation
    assert index.scan(spaced("库尔尔斯斯克州")).entries == [1]  # each pair, but not the run
    assert index.scan(spaced("克斯尔库州")).entries == []
    assert index.scan(" 库 尔 \n 斯 克 ").entries == []  # two values
    # Filed under its first pair: an anchor that is not in the chain must still be held.
    index = Index(["a", "b", "c"], [(2, (0,), (), (0, 1))])
    assert index.scan(" a b ").entries == [] and index.scan(" a b c ").entries == [0]


def test_thousands_of_pairs_in_one_long_text() -> None:
    words = [f"w{i}" for i in range(5000)]
    entries = [(i, ((i + 1) % 5000,), (), (i, (i + 1) % 5000)) for i in range(5000)]
    index = Index(words, entries)
    assert index.scan(" " + " ".join(words) + " ").entries == list(range(4999))
    assert index.scan(" " + " ".join(reversed(words)) + " ").entries == []


def test_entries_sharing_a_prefix_agree() -> None:
    entries = [(0, (), (" dron",), ()), (1, (), (" dron",), ()), (1, (), (" xyzw",), ())]
    index = Index(["kursk", "troops"], entries)
    assert index.scan(" kursk troops drones ").entries == [0, 1]
    assert index.scan(" kursk troops ").entries == []


def test_long_prefixes_are_found_past_the_start_bitmap() -> None:
    words = ["kursk"]
    entries = [(0, (), (" dron", " drone", " abc", " fiberopt"), ())]
    index = Index(words, entries)
    for text, passes in [
        (" kursk drones ", True),
        (" kursk fiberoptic ", True),
        (" kursk abcd ", True),  # a prefix under four letters is searched for
        (" kursk xdrone fibe ", False),
        (" kursk dro ", False),
    ]:
        assert (index.scan(text).entries == [0]) is passes, text


def test_bad_input_is_refused_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="distinct"):
        Index(["a", "a"], [])
    with pytest.raises(ValueError, match="out of range"):
        Index(["a"], [(1, (), (), ())])
    with pytest.raises(ValueError, match="out of range"):
        Index(["a"], [(0, (3,), (), ())])
    with pytest.raises(ValueError, match="pair"):
        Index(["a"], [(0, (), (), (0,))])
    with pytest.raises(TypeError):
        Index(["a"], [(0, (), ())])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        Index([1], [])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        Index(["a"], [(0, (), (b" a",), ())])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        Index(["a"], []).scan(b" a ")  # type: ignore[arg-type]
    index = Index(["a"], [])
    with pytest.raises(TypeError, match="twice"):
        index.__init__(["a", "b"], [])  # type: ignore[misc]
    with pytest.raises(TypeError, match="not initialised"):
        Index.__new__(Index).scan(" a ")


word = st.text("abcdeé", min_size=1, max_size=4)


@settings(max_examples=200, deadline=None)
@given(st.lists(word, unique=True, max_size=40), st.lists(word, max_size=30), st.data())
def test_scan_agrees_with_python_sets(
    words: list[str], tokens: list[str], data: st.DataObject
) -> None:
    """Membership and passing entries exactly as the Python path computes them."""
    entries = []
    if words:
        for _ in range(data.draw(st.integers(0, 12))):
            anchor = data.draw(st.integers(0, len(words) - 1))
            companions = tuple(data.draw(st.lists(st.integers(0, len(words) - 1), max_size=3)))
            prefixes = tuple(" " + p for p in data.draw(st.lists(word, max_size=2)))
            ids = st.integers(0, len(words) - 1)
            pair = data.draw(st.just(()) | st.lists(ids, min_size=2, max_size=4).map(tuple))
            run = " " + " ".join(words[i] for i in pair) + " " if len(pair) > 2 else ""
            if run and data.draw(st.booleans()):
                entries.append((anchor, companions, prefixes, pair, run))
            else:
                entries.append((anchor, companions, prefixes, pair))
    cut = data.draw(st.integers(0, len(tokens)))
    values = [" " + " ".join(tokens[:cut]) + " ", " " + "  ".join(tokens[cut:]) + " "]
    text = "\n".join(values)
    found = Index(words, entries).scan(text)
    held = set(words) & set(tokens)
    assert {w for w in words if w in found} == held
    joined = "\n".join(" " + " ".join(v.split()) + " " for v in values)
    expected = [
        number
        for number, (anchor, companions, prefixes, pair, *run) in enumerate(entries)
        if words[anchor] in held
        and (any(words[c] in held for c in companions) or any(p in text for p in prefixes))
        and all(f" {words[a]} {words[b]} " in joined for a, b in itertools.pairwise(pair))
        and all(r in text for r in run)
    ]
    assert found.entries == expected


def test_starts_gives_token_positions_of_a_run_of_tokens() -> None:
    assert c_starts is not None
    value = spaced("North Korean troops, north korean troops; NORTH. Korean")
    assert c_starts(value, ["north", "korean"]) == [0, 3, 6]
    assert c_starts(value, ["north", "korean", "troops"]) == [0, 3]
    assert c_starts(value, ["troops"]) == [2, 5]
    assert c_starts(value, ["korea"]) == [] and c_starts(value, []) == []
    assert c_starts(" a a a ", ["a", "a"]) == [0, 1]  # overlapping runs
    assert c_starts(" курск  курск ", ["курск"]) == [0, 1]
    with pytest.raises(TypeError):
        c_starts(b" a ", ["a"])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        c_starts(" a ", [1])  # type: ignore[list-item]


@settings(max_examples=300, deadline=None)
@given(st.lists(word, max_size=30), st.lists(word, min_size=1, max_size=3), st.data())
def test_starts_agrees_with_the_single_spaced_search(
    tokens: list[str], wanted: list[str], data: st.DataObject
) -> None:
    assert c_starts is not None
    gaps = data.draw(st.lists(st.integers(1, 3), min_size=len(tokens), max_size=len(tokens)))
    value = " " + "".join(t + " " * g for t, g in zip(tokens, gaps, strict=True))
    joined = " " + " ".join(tokens) + " "
    assert c_starts(value, wanted) == _starts(joined, tuple(wanted))


LYING_LENGTHS = """
from watcher.rules.match import ScanIndex


class Lying:
    '''A sequence whose __len__ says fewer items than iterating it yields.'''

    def __init__(self, items, length):
        self.items, self.length = list(items), length

    def __len__(self):
        return self.length

    def __iter__(self):
        return iter(self.items)

    def __getitem__(self, i):
        return self.items[i]


words = [f"w{i}" for i in range(400)]
entries = [
    (0, Lying(range(1, 300), 0), Lying([f" p{i}" for i in range(200)], 0), ()),
    (300, Lying([1], 1), Lying([" p1"], 1), ()),
]
index = ScanIndex(words, entries)
print(index.scan(" w0 w1 ").entries, index.scan(" w300 p1x ").entries, index.scan(" w0 ").entries)
del index
"""


def test_a_sequence_whose_length_lies_is_read_as_it_iterates() -> None:
    """The index is sized from what each sequence yields, not from its ``__len__``: with
    Python's debug allocator, a write past a buffer ends the process."""
    env = {**os.environ, "PYTHONMALLOC": "debug"}
    done = subprocess.run(
        [sys.executable, "-c", LYING_LENGTHS], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == "[0] [1] []\n"
