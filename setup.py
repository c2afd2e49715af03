"""Build configuration beyond pyproject.toml: the optional C module of the rule matcher.

``watcher/rules/_scan.c`` finds candidate rules about three times faster than the
pure-Python path (see benchmarks/RESULTS.md). It is optional: without a C compiler the
install still succeeds and ``watcher.rules.match`` uses the Python path, which gives the
same results.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "watcher.rules._scan",
            sources=["watcher/rules/_scan.c"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
