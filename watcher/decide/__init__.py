"""Pure decisions: what a poll's outcome means for items, alerts, health and the next poll.

feed.py decides one poll of a feed from its snapshot (what to read, then the intent: what
to write; the types are watcher.intent's); stories.py which items are new or changed and
which story each joins; alerts.py which alert rows their matches give, on a working copy
of the outbox; policy.py the alert policy's small decisions (backlog, channels, mutes,
caps); threshold.py when a volume rule fires; health.py when a feed is failing, back or
quiet; schedule.py when a feed is polled next. They take data and ``now`` and return
decisions: no I/O, no clock, no SQL. This package may import the types of
``watcher.rules`` and the kernel only, never the store.
"""
