"""The poll stage: fetch feeds, parse them, match their items and store the outcome.

fetch.py (with guard.py and deadline.py) downloads a feed; parse.py reads it (with
fastparse, jsonfeed, html, tame, finish and cpu); result.py joins both into a FeedResult
that is never an exception; workers.py runs them in processes for a large poll; pipeline.py
is the stage order of a pass; runtime.py holds what a pass needs; daemon.py schedules
passes for ``watcher run``. This package may import ``watcher.rules``, ``watcher.decide``,
the store, ``watcher.deliver`` and the kernel; never the command line.
"""
