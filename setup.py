"""Build configuration beyond pyproject.toml: the optional C module of the rule matcher.

``watcher/_scan.c`` spaces normalised text for ``watcher.text`` and finds candidate rules
for ``watcher.rules.match``, making rule matching about 2.5 times as fast as the
pure-Python path (see benchmarks/RESULTS.md). It is optional: without a C compiler the
install still succeeds and both modules use their Python path, which gives the same
results.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "watcher._scan",
            sources=["watcher/_scan.c"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
