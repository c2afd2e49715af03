"""The rule language: rule files, queries, the matcher and the snippets of a match.

load.py reads rule files into ``Rule`` objects, query.py parses queries, match.py decides
which rules match an item, snippets.py cuts the text around the hits; no I/O beyond reading
rule files. This package may import the kernel only, never the config: the settings it
needs (channel names, term lists) are handed in; text normalisation is ``watcher.text``.
"""
