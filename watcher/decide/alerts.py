"""Which alert rows the matches of one poll give; pure: a working copy of the outbox, no I/O.

For each new or changed item, each rule it matches and each of the rule's channels, in
that order (``Outbox.queue``):

    backlog / too old / muted     -> a ``suppressed`` row with that reason
    over the feed's limit         -> ``suppressed``, ``over feed limit``; the poll sums them
                                     up in one ``summary`` alert per channel
    volume rule (threshold)       -> one ``threshold`` alert when the count is reached
    an updated item that alerted  -> nothing: an item never alerts twice for a rule
    the story already alerted     -> added to the unsent alert, or ``duplicate of alert N``
    digest                        -> added to the rule's open digest, or a new digest
    max_alerts (rule or channel)  -> ``suppressed`` as throttled; the next alert that is
                                     allowed on the channel carries these items as a summary
    otherwise                     -> ``pending``

Everything it looks at comes from the poll's snapshot and is kept here as a working copy
that each decision updates, so a later item of the same poll sees what an earlier one
queued (two copies of one story in one feed alert once). New alerts take the snapshot's
next free ids (see watcher.intent); what to write is read off at the end
(``Outbox.writes``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from watcher.decide.policy import (
    MUTED,
    THROTTLED,
    duplicate_reason,
    is_duplicate,
    is_muted,
    limits_for,
    summarised_reason,
)
from watcher.decide.stories import Stories
from watcher.decide.threshold import (
    current_arm_state,
    decide_volume,
    history_start,
    observe_arming,
)
from watcher.intent import (
    AlertAppend,
    AlertWrite,
    ArmingWrite,
    FeedSnapshot,
    OutboxAlert,
    Pair,
    Summary,
    ThrottleWindow,
    VolumeHistory,
    whole_seconds,
)
from watcher.types import (
    HEALTH_KIND,
    HEALTH_RULE_ID,
    OVER_FEED_LIMIT,
    SUMMARY_KIND,
    SUMMARY_RULE_ID,
    AlertStatus,
    ArmState,
    HealthEvent,
    Mute,
    Rule,
    Settings,
    StoredItem,
    VolumeMatch,
)

# What a poll's outbox writes: new alert rows, items appended to stored alerts, held-back
# alerts summarised, and volume rules' arming.
OutboxWrites = tuple[
    tuple[AlertWrite, ...], tuple[AlertAppend, ...], tuple[Summary, ...], tuple[ArmingWrite, ...]
]


@dataclass
class _Alert:
    """An alert as this poll sees it: stored, or new in this poll."""

    id: int
    rule_id: str
    channel: str
    kind: str
    status: AlertStatus
    created_at: datetime
    item_ids: list[int]
    story_id: int | None = None
    reason: str | None = None
    attempts: int = 0
    next_attempt_at: datetime | None = None
    held_back: bool = False
    new: bool = False
    retry_from: datetime | None = None
    health: HealthEvent | None = None

    @classmethod
    def stored(cls, known: OutboxAlert) -> _Alert:
        a = known.alert
        return cls(
            id=a.id,
            rule_id=a.rule_id,
            channel=a.channel,
            kind=known.kind,
            status=a.status,
            created_at=a.created_at,
            item_ids=list(a.item_ids),
            story_id=known.story_id,
            reason=a.reason,
            attempts=a.attempts,
            next_attempt_at=a.next_attempt_at,
        )

    @property
    def counts_as_alerted(self) -> bool:
        """Whether the items it lists alerted: sent or to be sent, held back for a summary,
        or a duplicate of an alert sent."""
        return (
            self.status is not AlertStatus.SUPPRESSED or self.held_back or is_duplicate(self.reason)
        )


@dataclass
class Outbox:
    """The working copy of the outbox for one poll of one feed."""

    settings: Settings
    feed_name: str
    now: datetime
    stories: Stories
    next_id: int
    mutes: tuple[Mute, ...] = ()
    alerts: dict[int, _Alert] = field(default_factory=dict)
    live: dict[tuple[str, str, int], _Alert] = field(default_factory=dict)  # match alerts
    digests: dict[Pair, list[_Alert]] = field(default_factory=dict)
    item_stories: dict[int, int] = field(default_factory=dict)
    heads: dict[int, datetime] = field(default_factory=dict)
    alerted: set[tuple[str, str, int]] = field(default_factory=set)
    throttled: dict[ThrottleWindow, int] = field(default_factory=dict)
    held: dict[str, list[int]] = field(default_factory=dict)
    volume_last: dict[Pair, _Alert] = field(default_factory=dict)
    arming: dict[Pair, ArmState] = field(default_factory=dict)
    armed_changed: dict[Pair, ArmState] = field(default_factory=dict)
    history: dict[str, list[VolumeMatch]] = field(default_factory=dict)
    appends: list[AlertAppend] = field(default_factory=list)
    summaries: list[Summary] = field(default_factory=list)

    @classmethod
    def open(
        cls,
        snapshot: FeedSnapshot,
        history: VolumeHistory,
        stories: Stories,
        heads: Mapping[int, datetime],
        settings: Settings,
        now: datetime,
    ) -> Outbox:
        """The working copy of what the snapshot read, after this poll's story merges."""
        box = cls(
            settings=settings,
            feed_name=snapshot.feed.name,
            now=now,
            stories=stories,
            next_id=snapshot.next_alert_id,
            mutes=tuple(snapshot.mutes),
            item_stories=dict(snapshot.item_stories),
            heads=dict(heads),
            alerted=set(snapshot.alerted),
            throttled=dict(snapshot.throttled),
            held={channel: list(ids) for channel, ids in snapshot.held_back.items()},
            arming=dict(snapshot.arming),
            history={rule: list(matches) for rule, matches in history.items()},
        )
        for known in snapshot.live:
            alert = box._remember(_Alert.stored(known))
            if alert.story_id is not None:
                box.live[(alert.rule_id, alert.channel, alert.story_id)] = alert
        box._follow_merges()
        for known in snapshot.digests:
            alert = box._remember(_Alert.stored(known))
            box.digests.setdefault((alert.rule_id, alert.channel), []).append(alert)
        for pair, known in snapshot.volume_last.items():
            box.volume_last[pair] = box._remember(_Alert.stored(known))
        return box

    def _remember(self, alert: _Alert) -> _Alert:
        return self.alerts.setdefault(alert.id, alert)

    def _follow_merges(self) -> None:
        """Live alerts of a story that joined another move with it, unless the other story
        already has one for the same rule and channel: that one stays where it was."""
        for merge in self.stories.merges:
            for key in [k for k in self.live if k[2] == merge.other]:
                target = (key[0], key[1], merge.into)
                if target not in self.live:
                    alert = self.live.pop(key)
                    alert.story_id = merge.into
                    self.live[target] = alert

    # --- what the poll records about its items -----------------------------------------------

    def place_item(self, item: StoredItem) -> None:
        """Know the final story of a new or changed item of this poll."""
        self.item_stories[item.id] = item.story_id

    def record_match(self, rule: Rule, item: StoredItem) -> None:
        """A match of ``rule`` on ``item`` at ``now``: a volume rule counts it."""
        if rule.threshold is not None:
            self.history.setdefault(rule.id, []).append(
                VolumeMatch(item.id, item.feed_id, whole_seconds(self.now))
            )

    # --- one (rule, channel, item) -----------------------------------------------------------

    def queue(
        self,
        rule: Rule,
        channel: str,
        item: StoredItem,
        reason: str | None,
        *,
        over_limit: bool = False,
    ) -> AlertStatus | None:
        """Decide the alert row for one (rule, channel, item); None when no row is added.

        ``over_limit``: the poll has queued all the alerts it may on this channel
        (``poll.max_new_alerts_per_feed``), so a match that would alert is recorded as
        suppressed, ``over feed limit``, instead.
        """
        if reason is None and is_muted(self.mutes, rule.id, self.feed_name, self.now):
            reason = MUTED
        if reason is None and over_limit:
            reason = OVER_FEED_LIMIT
        if rule.threshold is not None:
            return self._queue_threshold(rule, channel, item, reason)
        if item.change == "updated" and (rule.id, channel, item.id) in self.alerted:
            return None  # an item that alerted for a rule never alerts again for it
        live = self.live.get((rule.id, channel, item.story_id))
        if live is not None:
            if item.id in live.item_ids:
                return None
            if live.status is not AlertStatus.SENT:  # pending or failed: still unsent
                self._append(live, item.id)
                return None
            reason = duplicate_reason(live.id)
        if rule.digest_s and reason is None:
            return self._queue_digest(rule, channel, item)
        if reason is None:
            reason = self._throttled(rule, channel)
        return self._add(rule, channel, item, reason)

    def _add(self, rule: Rule, channel: str, item: StoredItem, reason: str | None) -> AlertStatus:
        status = AlertStatus.SUPPRESSED if reason else AlertStatus.PENDING
        alert = self._new(
            rule.id,
            channel,
            [item.id],
            status,
            reason=reason,
            story_id=None if reason else item.story_id,
        )
        if status is AlertStatus.PENDING:
            self._summarise_held_back(channel, alert.id)
        return status

    def _new(
        self,
        rule_id: str,
        channel: str,
        item_ids: list[int],
        status: AlertStatus,
        *,
        reason: str | None = None,
        kind: str = "match",
        story_id: int | None = None,
        next_attempt_at: datetime | None = None,
    ) -> _Alert:
        alert = _Alert(
            id=self.next_id,
            rule_id=rule_id,
            channel=channel,
            kind=kind,
            status=status,
            created_at=self.now,
            item_ids=item_ids,
            story_id=story_id,
            reason=reason,
            next_attempt_at=next_attempt_at,
            held_back=reason == THROTTLED,
            new=True,
        )
        self.next_id += 1
        self.alerts[alert.id] = alert
        if kind == "match" and story_id is not None:
            self.live[(rule_id, channel, story_id)] = alert
        if alert.held_back:
            self.held.setdefault(channel, []).append(alert.id)
        self._note_alerted(alert, item_ids)
        return alert

    def _append(self, alert: _Alert, item_id: int) -> None:
        """Add an item to an alert that does not list it yet."""
        if item_id in alert.item_ids:
            return
        alert.item_ids.append(item_id)
        if not alert.new:
            self.appends.append(AlertAppend(alert.id, item_id))
        self._note_alerted(alert, [item_id])

    def _note_alerted(self, alert: _Alert, item_ids: Iterable[int]) -> None:
        if alert.counts_as_alerted:
            self.alerted.update((alert.rule_id, alert.channel, i) for i in item_ids)

    def _throttled(self, rule: Rule, channel: str) -> str | None:
        """``throttled by max_alerts`` when a rule or channel cap is used up, else None."""
        for window in throttle_windows(rule, self.settings, channel, self.now):
            queued = self.throttled.get(window, 0) + self._queued_here(window)
            if is_over_limit_count(window, queued):
                return THROTTLED
        return None

    def _queued_here(self, window: ThrottleWindow) -> int:
        """Alerts this poll queued that count against a cap (health alerts never do)."""
        return sum(
            1
            for a in self.alerts.values()
            if a.new
            and a.channel == window.channel
            and a.status is not AlertStatus.SUPPRESSED
            and a.rule_id != HEALTH_RULE_ID
            and (window.rule_id is None or a.rule_id == window.rule_id)
            and a.created_at > window.since
        )

    def _summarise_held_back(self, channel: str, alert_id: int) -> None:
        """Attach the channel's throttled, not yet summarised alerts to an allowed alert."""
        for held_id in self.held.pop(channel, []):
            if held_id != alert_id:
                self.summaries.append(Summary(held_id, alert_id, summarised_reason(alert_id)))
                if held_id in self.alerts:
                    self.alerts[held_id].reason = summarised_reason(alert_id)

    # --- digests -----------------------------------------------------------------------------

    def _queue_digest(self, rule: Rule, channel: str, item: StoredItem) -> AlertStatus | None:
        """Add the item to the rule's open digest on this channel, or open a new one.

        A digest that holds the story takes the copy while unsent, or makes it a duplicate
        once sent. Only digests created at most one interval before the story began can
        hold it.
        """
        assert rule.digest_s is not None
        began = min(self.now, self.heads.get(item.story_id) or self.now)
        since = began - timedelta(seconds=rule.digest_s)
        holding = self._digest_with_story(rule.id, channel, item.story_id, since)
        if holding is not None and item.id in holding.item_ids:
            return None
        if holding is not None and holding.status is AlertStatus.SENT:
            return self._add(rule, channel, item, duplicate_reason(holding.id))
        digest = holding or self._open_digest(rule.id, channel)
        if digest is not None:
            self._append(digest, item.id)
            return None
        throttled = self._throttled(rule, channel)
        if throttled:
            return self._add(rule, channel, item, throttled)
        due = self.now + timedelta(seconds=rule.digest_s)
        alert = self._new(
            rule.id, channel, [item.id], AlertStatus.PENDING, kind="digest", next_attempt_at=due
        )
        alert.retry_from = due
        self.digests.setdefault((rule.id, channel), []).append(alert)
        self._summarise_held_back(channel, alert.id)
        return AlertStatus.PENDING

    def _digest_with_story(
        self, rule_id: str, channel: str, story_id: int, since: datetime
    ) -> _Alert | None:
        """The first live digest, pending or created after ``since``, holding a copy."""
        for digest in self.digests.get((rule_id, channel), []):
            if digest.status is AlertStatus.SUPPRESSED:
                continue
            if digest.status is not AlertStatus.PENDING and digest.created_at <= since:
                continue
            if any(self._story_of(i) == story_id for i in digest.item_ids):
                return digest
        return None

    def _story_of(self, item_id: int) -> int | None:
        story = self.item_stories.get(item_id)
        return None if story is None else self.stories.resolve(story)

    def _open_digest(self, rule_id: str, channel: str) -> _Alert | None:
        """The digest of this rule and channel still collecting items (not yet due)."""
        open_ = [
            d
            for d in self.digests.get((rule_id, channel), [])
            if d.status is AlertStatus.PENDING
            and d.attempts == 0
            and d.next_attempt_at is not None
            and d.next_attempt_at > self.now
        ]
        return max(open_, key=lambda d: d.id, default=None)

    # --- volume rules ------------------------------------------------------------------------

    def _queue_threshold(
        self, rule: Rule, channel: str, item: StoredItem, reason: str | None
    ) -> AlertStatus | None:
        """A volume rule alerts once when its count is reached within the window.

        It fires again only after re-arming: the window held fewer than count at some
        moment after the last firing (threshold.decide_volume). Every match is looked at,
        suppressed or not, so the re-arming kept is current and the read stays two windows.
        """
        threshold = rule.threshold
        assert threshold is not None
        pair = (rule.id, channel)
        last = self.volume_last.get(pair)
        state = self._arm_state(pair, last.created_at if last is not None else None)
        start = whole_seconds(history_start(threshold, state, self.now))  # as the store reads
        history = [m for m in self.history.get(rule.id, []) if m.matched_at >= start]
        if reason is not None or self._adds_to_pending(last, item, threshold.within_s):
            self._save_arming(pair, observe_arming(threshold, history, state, self.now)[0])
            return self._add(rule, channel, item, reason) if reason is not None else None
        item_ids, state = decide_volume(threshold, history, state, self.now)
        self._save_arming(pair, state)
        if item_ids is None:
            return None
        self.volume_last[pair] = self._new(
            rule.id, channel, list(item_ids), AlertStatus.PENDING, kind="threshold"
        )
        return AlertStatus.PENDING

    def _adds_to_pending(self, last: _Alert | None, item: StoredItem, within_s: int) -> bool:
        """Add the item to the volume alert fired within the window and still unsent, if any."""
        if last is None or last.status is not AlertStatus.PENDING:
            return False
        if last.created_at <= self.now - timedelta(seconds=within_s):
            return False
        self._append(last, item.id)  # unsent yet: it carries every contributing item
        return True

    def _arm_state(self, pair: Pair, fired: datetime | None) -> ArmState:
        return current_arm_state(self.arming.get(pair), fired)

    def _save_arming(self, pair: Pair, state: ArmState) -> None:
        self.arming[pair] = self.armed_changed[pair] = state

    # --- a feed's matches over its limit ----------------------------------------------------

    def summarise_over_limit(self) -> list[str]:
        """One ``summary`` alert per channel for the matches this poll held over the feed's
        limit, listing each of their items once; returns the channels. It is sent like any
        alert (no cap holds it back)."""
        held: dict[str, list[_Alert]] = {}
        for alert in sorted(self.alerts.values(), key=lambda a: a.id):
            if alert.new and alert.reason == OVER_FEED_LIMIT:
                held.setdefault(alert.channel, []).append(alert)
        for channel, alerts in held.items():
            item_ids = list(dict.fromkeys(i for alert in alerts for i in alert.item_ids))
            reason = f"feed {self.feed_name}: {len(alerts)} matches over the feed limit"
            self._new(
                SUMMARY_RULE_ID, channel, item_ids, AlertStatus.PENDING, reason=reason,
                kind=SUMMARY_KIND,
            )  # fmt: skip
        return list(held)

    # --- health ------------------------------------------------------------------------------

    def add_health(self, event: HealthEvent, channels: Sequence[str]) -> None:
        """One pending health alert per channel, with the event kept for its message."""
        for channel in channels:
            alert = self._new(
                HEALTH_RULE_ID,
                channel,
                [],
                AlertStatus.PENDING,
                reason=f"feed {event.feed}: {event.kind}",  # readable from SQL and `alerts`
                kind=HEALTH_KIND,
            )
            alert.health = event

    # --- what to write -----------------------------------------------------------------------

    def writes(self) -> OutboxWrites:
        """The new alert rows, appends to stored alerts, summaries and arming states."""
        alerts = tuple(
            AlertWrite(
                id=a.id,
                rule_id=a.rule_id,
                channel=a.channel,
                item_ids=tuple(a.item_ids),
                status=a.status,
                created_at=a.created_at,
                reason=a.reason,
                kind=a.kind,
                story_id=a.story_id,
                next_attempt_at=a.next_attempt_at,
                retry_from=a.retry_from,
                held_back=a.held_back,
                health=a.health,
            )
            for a in sorted(self.alerts.values(), key=lambda a: a.id)
            if a.new
        )
        arming = tuple(ArmingWrite(r, c, s) for (r, c), s in self.armed_changed.items())
        return alerts, tuple(self.appends), tuple(self.summaries), arming


def throttle_windows(
    rule: Rule, settings: Settings, channel: str, now: datetime
) -> tuple[ThrottleWindow, ...]:
    """The caps an alert of ``rule`` on ``channel`` must fit, as windows to count in."""
    return tuple(
        ThrottleWindow(
            channel=channel,
            rule_id=rule.id if per_rule else None,
            since=now - timedelta(seconds=limit.per_s),
            cap=limit.count,
        )
        for limit, per_rule in limits_for(rule, settings, channel)
    )


def is_over_limit_count(window: ThrottleWindow, queued: int) -> bool:
    """True when ``queued`` alerts in the window already used up its cap."""
    return queued >= window.cap
