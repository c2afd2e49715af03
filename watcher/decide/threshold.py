"""Decide when a volume rule (``threshold: {count, within, distinct}``) fires; pure, no I/O.

A volume rule fires once when the number of matching items -- or of distinct feeds, with
``distinct: feed`` -- inside the sliding window ``(t - within, t]`` reaches ``count``. It then
stays quiet until it re-arms: at some moment after it fired, the window held fewer than
``count``. Times are the matches' ``matched_at``.

``decide_threshold`` and ``is_armed`` take every match since ``last_fired - within``. The
pipeline uses ``decide_volume`` instead, which carries what it learnt about re-arming in an
``ArmState`` from one match to the next, so each match reads at most two windows of history
(``history_start``), however long ago the rule last fired.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

from watcher.types import ArmState, Threshold, VolumeMatch


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
    """Whether the rule may fire: never fired, or the window fell below count since then."""
    if last_fired is None:
        return True
    return any(moment > last_fired for moment in _dips(threshold, matches, now))


def _dips(
    threshold: Threshold, matches: Sequence[VolumeMatch], now: datetime
) -> Iterator[datetime]:
    """The moments up to ``now`` when a match left the window and it held fewer than count.

    The count only drops when a match leaves the window, at ``matched_at + within``; one
    pass over the matches in time order keeps the window's contents in a counter. A moment
    is only right when every match of the window before it is in ``matches``.
    """
    within = timedelta(seconds=threshold.within_s)
    ordered = sorted(matches, key=lambda m: m.matched_at)
    inside: Counter[int] = Counter()
    low = high = 0
    for leaving in ordered:
        moment = leaving.matched_at + within
        if moment > now:
            return
        while high < len(ordered) and ordered[high].matched_at <= moment:
            inside[_key(threshold, ordered[high])] += 1
            high += 1
        while low < high and ordered[low].matched_at <= leaving.matched_at:
            _remove(inside, _key(threshold, ordered[low]))
            low += 1
        if len(inside) < threshold.count:
            yield moment


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
    return _item_ids(current)


# --- bounded, incremental decision -----------------------------------------------------------


def current_arm_state(saved: ArmState | None, fired: datetime | None) -> ArmState:
    """The re-arming progress to go on from: the saved one when it is about the rule's last
    firing on the channel (``fired``), else nothing known since that firing."""
    if fired is None or saved is None or saved.fired != fired:
        return ArmState(fired)
    return saved


def history_start(threshold: Threshold, state: ArmState, now: datetime) -> datetime:
    """The decision needs every match at or after this moment: at most two windows before now.

    Only the first look after a firing with no recorded progress reaches back to
    ``fired - within``; afterwards the moments already checked are not read again.
    """
    within = timedelta(seconds=threshold.within_s)
    if state.fired is None or state.armed:
        return now - within
    if state.checked is None:
        return state.fired - within
    return max(state.checked, now - within) - within


def observe_arming(
    threshold: Threshold, matches: Sequence[VolumeMatch], state: ArmState, now: datetime
) -> tuple[ArmState, bool]:
    """The state to keep after looking at the moments up to ``now``, and whether it is armed.

    ``matches``: every match at or after ``history_start``. A gap of more than one window since
    the last look means no match of the rule arrived in it (each match is looked at), so
    the window was empty at ``checked + within``: the rule re-armed. A dip at ``now`` itself
    arms the rule now but is not kept: another match arriving at ``now`` may fill it.
    """
    if state.fired is None or state.armed:
        return ArmState(state.fired, now, True), True
    within = timedelta(seconds=threshold.within_s)
    if state.checked is not None and state.checked + within < now:
        return ArmState(state.fired, now, True), True
    after = state.fired if state.checked is None else state.checked
    dips = [m for m in _dips(threshold, matches, now) if m > state.fired and m >= after]
    return ArmState(state.fired, now, any(m < now for m in dips)), bool(dips)


def decide_volume(
    threshold: Threshold, matches: Sequence[VolumeMatch], state: ArmState, now: datetime
) -> tuple[tuple[int, ...] | None, ArmState]:
    """The item ids of a volume alert to send now (or None), and the state to keep.

    ``matches``: every match of the rule at or after ``history_start(threshold, state, now)``.
    """
    observed, armed = observe_arming(threshold, matches, state, now)
    if not armed:
        return None, observed
    current = in_window(threshold, matches, now)
    if volume(threshold, current) < threshold.count:
        return None, observed
    return _item_ids(current), ArmState(now, now)


def _item_ids(matches: Sequence[VolumeMatch]) -> tuple[int, ...]:
    ordered = sorted(matches, key=lambda m: (m.matched_at, m.item_id))
    return tuple(dict.fromkeys(m.item_id for m in ordered))
