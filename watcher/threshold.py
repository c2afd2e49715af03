"""Decide when a volume rule (``threshold: {count, within, distinct}``) fires; pure, no I/O.

A volume rule fires once when the number of matching items -- or of distinct feeds, with
``distinct: feed`` -- inside the sliding window ``(t - within, t]`` reaches ``count``. It then
stays quiet until it re-arms: at some moment after it fired, the window held fewer than
``count``. Times are the matches' ``matched_at``; the caller passes every match of the rule
since ``last_fired - within`` and the time of the last firing, read from the database.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from watcher.types import Threshold


@dataclass(frozen=True)
class VolumeMatch:
    """One recorded match of a volume rule."""

    item_id: int
    feed_id: int
    matched_at: datetime


def in_window(
    threshold: Threshold, matches: Sequence[VolumeMatch], at: datetime
) -> list[VolumeMatch]:
    """The matches inside the window that ends at ``at``: ``(at - within, at]``."""
    start = at - timedelta(seconds=threshold.within_s)
    return [m for m in matches if start < m.matched_at <= at]


def volume(threshold: Threshold, matches: Sequence[VolumeMatch]) -> int:
    """What the rule counts: distinct items, or distinct feeds with ``distinct: feed``."""
    return len({_key(threshold, m) for m in matches})


def is_armed(
    threshold: Threshold,
    matches: Sequence[VolumeMatch],
    last_fired: datetime | None,
    now: datetime,
) -> bool:
    """Whether the rule may fire: never fired, or the window fell below count since then.

    The count only drops when a match leaves the window, at ``matched_at + within``; those
    moments between the last firing and ``now`` are the only ones to check. One pass over
    the matches in time order keeps the window's contents in a counter.
    """
    if last_fired is None:
        return True
    within = timedelta(seconds=threshold.within_s)
    ordered = sorted(matches, key=lambda m: m.matched_at)
    inside: Counter[int] = Counter()
    low = high = 0
    for leaving in ordered:
        moment = leaving.matched_at + within
        if moment > now:
            break
        while high < len(ordered) and ordered[high].matched_at <= moment:
            inside[_key(threshold, ordered[high])] += 1
            high += 1
        while low < high and ordered[low].matched_at <= leaving.matched_at:
            _remove(inside, _key(threshold, ordered[low]))
            low += 1
        if moment > last_fired and len(inside) < threshold.count:
            return True
    return False


def _key(threshold: Threshold, match: VolumeMatch) -> int:
    return match.feed_id if threshold.distinct == "feed" else match.item_id


def _remove(counter: Counter[int], key: int) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


def decide_threshold(
    threshold: Threshold,
    matches: Sequence[VolumeMatch],
    last_fired: datetime | None,
    now: datetime,
) -> tuple[int, ...] | None:
    """The item ids of a volume alert to send now, or None when the rule does not fire."""
    if not is_armed(threshold, matches, last_fired, now):
        return None
    current = in_window(threshold, matches, now)
    if volume(threshold, current) < threshold.count:
        return None
    ordered = sorted(current, key=lambda m: (m.matched_at, m.item_id))
    return tuple(dict.fromkeys(m.item_id for m in ordered))
