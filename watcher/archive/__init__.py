"""The stored archive as users query and keep it: search, retention, backtests, backups.

search.py turns a query into an FTS5 expression, retention.py prunes what is too old,
backtest.py runs rules over stored items, backup.py copies the database. It may import
``watcher.rules``, the store and the kernel; the SQL itself lives in the store.
"""
