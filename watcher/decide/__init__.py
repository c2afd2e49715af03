"""Pure decisions: what a poll's outcome means for alerts, the sources' health and the next poll.

policy.py holds the alert policy's small decisions (backlog, channels, mutes, caps),
threshold.py when a volume rule fires, health.py when a feed is failing, back or quiet,
schedule.py when a feed is polled next, and alerts.py which alert row a match gives. They
take data and ``now`` and return decisions: no I/O, no clock, no SQL. This package may
import the types of ``watcher.rules`` and the kernel only, never the store; alerts.py still
asks the store inside its decision, a known exception listed in tests/test_layout.py.
"""
