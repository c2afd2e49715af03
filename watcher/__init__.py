"""watcher: a self-hosted news-feed monitoring and keyword-alert daemon.

The modules directly in this package are the kernel (types, exceptions, config, text,
story keys, redaction, ...): they import only each other. Each stage of the data flow is a
sub-package: ``poll`` -> ``rules`` -> ``decide`` -> ``store`` -> ``deliver``, with
``archive`` beside them and ``cli`` on top; docs/design.md draws the picture and
tests/test_layout.py checks which may import which.
"""

__version__ = "0.1.0"
