"""An in-memory model of the store for the poll's snapshot and intent, without SQLite.

It answers ``snapshot`` and ``volume_history`` and applies intents the way the SQL in
watcher/store/snapshot.py and watcher/store/apply.py does, written plainly over Python
lists, so that the property tests can drive ``decide`` through many polls quickly and a
comparison test can check the real store against it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from watcher.decide.policy import is_duplicate
from watcher.intent import (
    FeedIntent,
    FeedSnapshot,
    KnownItem,
    OutboxAlert,
    SnapshotRequest,
    StoryKey,
    StoryRef,
    ThrottleWindow,
    whole_seconds,
)
from watcher.types import (
    Alert,
    AlertStatus,
    ArmState,
    FeedState,
    Mute,
    VolumeMatch,
)


@dataclass
class ModelItem:
    id: int
    feed_id: int
    guid: str
    content_hash: str
    story_id: int
    first_seen_at: datetime
    title: str


@dataclass
class ModelAlert:
    id: int
    rule_id: str
    channel: str
    item_ids: list[int]
    status: AlertStatus
    reason: str | None
    created_at: datetime
    next_attempt_at: datetime | None
    kind: str
    story_id: int | None
    retry_from: datetime | None = None
    attempts: int = 0
    sent_at: datetime | None = None

    @property
    def live(self) -> bool:
        return self.status is not AlertStatus.SUPPRESSED

    def row(self) -> Alert:
        return Alert(
            id=self.id,
            rule_id=self.rule_id,
            channel=self.channel,
            item_ids=tuple(self.item_ids),
            status=self.status,
            created_at=self.created_at,
            reason=self.reason,
            attempts=self.attempts,
            next_attempt_at=self.next_attempt_at,
            sent_at=self.sent_at,
        )


@dataclass
class ModelMatch:
    id: int
    item_id: int
    rule_id: str
    terms: tuple[str, ...]
    matched_at: datetime
    snippets: tuple[str, ...]


@dataclass
class ModelStore:
    feeds: dict[int, FeedState] = field(default_factory=dict)
    items: dict[int, ModelItem] = field(default_factory=dict)
    keys: dict[StoryKey, StoryRef] = field(default_factory=dict)
    matches: list[ModelMatch] = field(default_factory=list)
    alerts: dict[int, ModelAlert] = field(default_factory=dict)
    held: dict[int, tuple[str, int | None]] = field(default_factory=dict)  # id -> channel, into
    arming: dict[tuple[str, str], ArmState] = field(default_factory=dict)
    mutes: list[Mute] = field(default_factory=list)
    retry_until: dict[int, datetime | None] = field(default_factory=dict)
    polls: int = 0
    intents: list[FeedIntent] = field(default_factory=list)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        yield

    # --- reading ------------------------------------------------------------------------------

    def snapshot(self, request: SnapshotRequest) -> FeedSnapshot:
        feed = self.feeds[request.feed_id]
        ids = (
            max(self.items, default=0) + 1,
            max((m.id for m in self.matches), default=0) + 1,
            max(self.alerts, default=0) + 1,
        )
        if not request.items:
            return FeedSnapshot(feed, *ids)
        guids = {ref.guid for ref in request.items}
        known = {
            i.guid: KnownItem(i.id, i.content_hash, i.story_id, i.first_seen_at)
            for i in self.items.values()
            if i.feed_id == feed.id and i.guid in guids
        }
        changed = [
            ref
            for ref in request.items
            if ref.guid not in known or known[ref.guid].content_hash != ref.content_hash
        ]
        if not changed:
            return FeedSnapshot(feed, *ids, known=known)
        wanted = {key for ref in changed for key in ref.story_keys}
        keys = {k: v for k, v in self.keys.items() if k in wanted}
        updated = [known[ref.guid] for ref in changed if ref.guid in known]
        stories = {r.story_id for r in keys.values()} | {i.story_id for i in updated}
        heads = {s: self.items[s].first_seen_at for s in stories if s in self.items}
        rule_ids = {r for ref in changed for r in ref.rule_ids}
        needs = [n for n in request.rules if n.rule_id in rule_ids]
        if not needs:
            return FeedSnapshot(feed, *ids, known=known, story_keys=keys, story_heads=heads)
        rules = {n.rule_id for n in needs}
        began = min([*heads.values(), request.now])
        ordered = sorted(self.alerts.values(), key=lambda a: a.id)
        live = tuple(
            self._outbox(a)
            for a in ordered
            if a.live and a.kind == "match" and a.story_id in stories and a.rule_id in rules
        )
        changed_ids = {i.id for i in updated}
        alerted = frozenset(
            (a.rule_id, a.channel, i)
            for a in ordered
            if a.rule_id in rules and (a.live or is_duplicate(a.reason) or a.id in self.held)
            for i in a.item_ids
            if i in changed_ids
        )
        since = {
            n.rule_id: whole_seconds(began - timedelta(seconds=n.digest_s))
            for n in needs
            if n.digest_s
        }
        digests = tuple(
            self._outbox(a)
            for a in ordered
            if a.kind == "digest"
            and a.live
            and a.rule_id in since
            and (a.created_at > since[a.rule_id] or a.status is AlertStatus.PENDING)
        )
        in_digests = {i for d in digests for i in d.alert.item_ids}
        item_stories = {i: self.items[i].story_id for i in in_digests if i in self.items}
        windows = {w for n in needs for w in n.throttles}
        channels = {c for n in needs for c in n.channels}
        held: dict[str, tuple[int, ...]] = {}
        for alert_id in sorted(self.held):
            channel, into = self.held[alert_id]
            if into is None and channel in channels:
                held[channel] = (*held.get(channel, ()), alert_id)
        pairs = {(n.rule_id, c) for n in needs if n.volume for c in n.channels}
        last: dict[tuple[str, str], OutboxAlert] = {}
        for a in ordered:
            if a.kind == "threshold" and a.live and (a.rule_id, a.channel) in pairs:
                last[(a.rule_id, a.channel)] = self._outbox(a)
        return FeedSnapshot(
            feed,
            *ids,
            known=known,
            story_keys=keys,
            story_heads=heads,
            live=live,
            alerted=alerted,
            digests=digests,
            item_stories=item_stories,
            throttled={w: self._count(w) for w in windows},
            held_back=held,
            volume_last=last,
            arming={p: s for p, s in self.arming.items() if p in pairs},
            mutes=tuple(self.mutes),
        )

    def _outbox(self, alert: ModelAlert) -> OutboxAlert:
        return OutboxAlert(alert.row(), alert.kind, alert.story_id)

    def _count(self, window: ThrottleWindow) -> int:
        found = [
            a
            for a in self.alerts.values()
            if a.channel == window.channel
            and a.created_at > whole_seconds(window.since)
            and a.live
            and a.rule_id != "health"
            and (window.rule_id is None or a.rule_id == window.rule_id)
        ]
        return min(len(found), window.cap)

    def volume_history(self, starts: Mapping[str, datetime]) -> dict[str, tuple[VolumeMatch, ...]]:
        found: dict[str, tuple[VolumeMatch, ...]] = {}
        for rule, since in starts.items():
            rows = sorted(
                (
                    m
                    for m in self.matches
                    if m.rule_id == rule and m.matched_at >= whole_seconds(since)
                ),
                key=lambda m: (m.matched_at, m.id),
            )
            found[rule] = tuple(
                VolumeMatch(m.item_id, self.items[m.item_id].feed_id, m.matched_at) for m in rows
            )
        return found

    # --- writing ------------------------------------------------------------------------------

    def apply(self, intent: FeedIntent) -> None:
        self.intents.append(intent)
        for merge in intent.merges:
            for item in self.items.values():
                if item.story_id == merge.other:
                    item.story_id = merge.into
            for key, ref in list(self.keys.items()):
                if ref.story_id == merge.other:
                    self.keys[key] = replace(ref, story_id=merge.into)
            taken = {
                (a.rule_id, a.channel)
                for a in self.alerts.values()
                if a.live and a.kind == "match" and a.story_id == merge.into
            }
            for a in sorted(self.alerts.values(), key=lambda a: a.id):
                if a.kind == "match" and a.story_id == merge.other:
                    if a.live and (a.rule_id, a.channel) in taken:
                        continue
                    a.story_id = merge.into
                    if a.live:
                        taken.add((a.rule_id, a.channel))
        for write in intent.items:
            s = write.stored
            self.items[s.id] = ModelItem(
                s.id, s.feed_id, s.guid, s.content_hash, s.story_id, s.first_seen_at, s.title
            )
        for key in intent.story_keys:
            self.keys[key.key] = StoryRef(key.story_id, whole_seconds(key.first_at))
        for m in intent.matches:
            self.matches.append(
                ModelMatch(
                    m.id,
                    m.item_id,
                    m.match.rule_id,
                    m.match.terms,
                    whole_seconds(m.matched_at),
                    m.match.snippets,
                )
            )
        for a in intent.alerts:
            assert a.id not in self.alerts
            self.alerts[a.id] = ModelAlert(
                id=a.id,
                rule_id=a.rule_id,
                channel=a.channel,
                item_ids=list(a.item_ids),
                status=a.status,
                reason=a.reason,
                created_at=whole_seconds(a.created_at),
                next_attempt_at=None
                if a.next_attempt_at is None
                else whole_seconds(a.next_attempt_at),
                kind=a.kind,
                story_id=a.story_id,
                retry_from=_stored(a.retry_from),
            )
            if a.held_back:
                self.held[a.id] = (a.channel, None)
        for append in intent.appends:
            alert = self.alerts[append.alert_id]
            if append.item_id not in alert.item_ids:
                alert.item_ids.append(append.item_id)
        for summary in intent.summaries:
            self.held[summary.alert_id] = (self.held[summary.alert_id][0], summary.into)
            self.alerts[summary.alert_id].reason = summary.reason
        for arming in intent.arming:
            self.arming[(arming.rule_id, arming.channel)] = ArmState(
                *(
                    None if t is None else whole_seconds(t)
                    for t in (arming.state.fired, arming.state.checked)
                ),
                arming.state.armed,
            )
        f = intent.feed
        self.feeds[intent.feed_id] = replace(
            self.feeds[intent.feed_id],
            last_polled_at=whole_seconds(f.last_polled_at),
            last_status=f.last_status,
            last_error=f.last_error,
            last_success_at=_stored(f.last_success_at),
            consecutive_failures=f.consecutive_failures,
            disabled_reason=f.disabled_reason,
            next_poll_at=whole_seconds(f.next_poll_at),
            etag=f.etag,
            last_modified=f.last_modified,
            title=f.title,
            url=f.url,
        )
        self.retry_until[intent.feed_id] = intent.retry_until
        self.polls += 1

    def deliver(self, now: datetime) -> None:
        """Every due pending alert is sent (a channel that always accepts)."""
        for alert in self.alerts.values():
            due = alert.next_attempt_at is None or alert.next_attempt_at <= now
            if alert.status is AlertStatus.PENDING and due:
                alert.status = AlertStatus.SENT
                alert.attempts += 1
                alert.sent_at = whole_seconds(now)
                alert.next_attempt_at = None


def _stored(moment: datetime | None) -> datetime | None:
    return None if moment is None else whole_seconds(moment)
