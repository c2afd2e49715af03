"""Run every ``benchmarks/bench_*.py`` in turn (``make bench``); each prints its own figures.

Run: ``.venv/bin/python benchmarks/run.py [NAME ...]`` where NAME picks benchmarks by a part
of their file name (``match``, ``poll``). A failing benchmark is reported and the rest run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if any(name in s.stem for name in argv)]
    failed = 0
    for script in scripts:
        print(f"== {script.name}", flush=True)
        code = subprocess.call([sys.executable, str(script)], cwd=HERE.parent)
        if code != 0:
            print(f"!! {script.name} exited {code}", flush=True)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
