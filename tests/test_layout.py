"""The package layout: which part of watcher may import which, and no import cycles.

The modules directly in ``watcher/`` are the kernel; each sub-package is one stage of the
data flow (docs/design.md draws it). Every import counts, at module level or inside a
function; an import under ``if TYPE_CHECKING:`` counts for the layers but not for cycles.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

WATCHER = Path(__file__).resolve().parent.parent / "watcher"
KERNEL = "kernel"

# What each layer may import besides itself; upward never. The types of rules and matches
# (Rule, Match, Threshold) are in the kernel's watcher.types, which is what decide needs.
ALLOWED: dict[str, frozenset[str]] = {
    KERNEL: frozenset(),
    "rules": frozenset({KERNEL}),
    "decide": frozenset({KERNEL}),
    "store": frozenset({KERNEL}),
    "deliver": frozenset({"store", KERNEL}),
    "archive": frozenset({"rules", "store", KERNEL}),
    "poll": frozenset({"rules", "decide", "store", "deliver", KERNEL}),
    "cli": frozenset({"poll", "rules", "decide", "store", "deliver", "archive", KERNEL}),
}
# Kernel modules a layer may not import although it may import the kernel: settings are
# handed to the rules, never read by them.
FORBIDDEN: dict[str, frozenset[str]] = {"rules": frozenset({"watcher.config"})}
# Modules that belong to a layer other than their folder's.
ENTRY_POINTS = {"watcher.__main__": "cli"}

# Known exceptions, each to go when its stage decides on data it was handed. The list may
# only shrink: an exception no longer used fails the test, so remove it then.
EXCEPTIONS: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    type_only: bool  # under ``if TYPE_CHECKING:``


def module_files(root: Path) -> dict[str, Path]:
    """Dotted name -> file of every module of the package at ``root``."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def layer_of(module: str, root: Path) -> str:
    """The layer of a dotted module name: its top-level sub-package, else the kernel."""
    if module in ENTRY_POINTS:
        return ENTRY_POINTS[module]
    parts = module.split(".")
    if len(parts) > 1 and (root / parts[1]).is_dir():
        return parts[1]
    return KERNEL


def imports(module: str, path: Path, known: set[str], package: str) -> Iterator[Edge]:
    """Every import of one of the package's modules in ``path``, wherever it stands."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    type_only_nodes = _type_checking_nodes(tree)
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, is_package, node)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.append(sub if sub in known else base)
        for target in targets:
            if target == package or target.startswith(package + "."):
                yield Edge(module, target, node.lineno, id(node) in type_only_nodes)


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([*parts, *([node.module] if node.module else [])])


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside ``if TYPE_CHECKING:`` blocks."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for stmt in node.body:
                found.update(id(n) for n in ast.walk(stmt))
    return found


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def all_edges(root: Path) -> list[Edge]:
    files = module_files(root)
    known = set(files)
    package = root.name
    return [e for m, p in files.items() for e in imports(m, p, known, package)]


def layer_violations(root: Path, edges: list[Edge]) -> tuple[list[str], set[tuple[str, str]]]:
    """Forbidden imports (one line each) and the exceptions that were used."""
    problems: list[str] = []
    used: set[tuple[str, str]] = set()
    for edge in edges:
        source, target = layer_of(edge.source, root), layer_of(edge.target, root)
        allowed = target == source or target in ALLOWED[source]
        if target == KERNEL and edge.target in FORBIDDEN.get(source, frozenset()):
            allowed = False
        if allowed:
            continue
        key = (edge.source, target)
        if key in EXCEPTIONS:
            used.add(key)
            continue
        problems.append(
            f"{edge.source} (line {edge.line}) imports {edge.target}: {source} may import "
            f"{', '.join(sorted(ALLOWED[source])) or 'nothing'} besides itself"
        )
    return problems, used


def cycles(edges: list[Edge]) -> list[list[str]]:
    """The import cycles (strongly connected groups of modules), runtime imports only."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        if not edge.type_only:
            graph.setdefault(edge.source, set()).add(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph.get(node, ()):
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


# --- the package itself --------------------------------------------------------------------

EDGES = all_edges(WATCHER)


def test_every_folder_of_watcher_is_a_known_layer() -> None:
    folders = {p.name for p in WATCHER.iterdir() if (p / "__init__.py").is_file()}
    assert folders == set(ALLOWED) - {KERNEL}


def test_no_module_imports_a_layer_it_may_not() -> None:
    problems, _ = layer_violations(WATCHER, EDGES)
    assert problems == []


def test_every_listed_exception_is_still_needed() -> None:
    _, used = layer_violations(WATCHER, EDGES)
    unused = sorted(set(EXCEPTIONS) - used)
    assert unused == [], f"no longer needed, remove from EXCEPTIONS: {unused}"


def test_no_import_cycles() -> None:
    assert cycles(EDGES) == []


def test_each_package_says_what_it_owns_and_may_import() -> None:
    for init in sorted(WATCHER.glob("*/__init__.py")):
        doc = " ".join((ast.get_docstring(ast.parse(init.read_text())) or "").split())
        assert "may import" in doc, f"{init.relative_to(WATCHER.parent)}: no docstring saying so"


# --- the checks themselves, on a small package that breaks every rule ------------------------


@pytest.fixture
def bad_package(tmp_path: Path) -> Path:
    root = tmp_path / "watcher"
    files = {
        "__init__.py": "",
        "config.py": "",
        "types.py": "from watcher.store import Store\n",  # the kernel importing a stage
        "rules/__init__.py": "",
        "rules/load.py": "def f():\n    from watcher.config import X\n",  # in a function
        "store/__init__.py": "from watcher.store import rows\n",
        "store/rows.py": "from . import other\n",
        "store/other.py": "import watcher.store.rows\n",  # rows -> other -> rows
        "decide/__init__.py": "",
        "decide/alerts.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from watcher.deliver import send\n"
        ),
        "deliver/__init__.py": "",
        "deliver/send.py": "from watcher.decide import alerts\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_checks_find_forbidden_imports_and_cycles(bad_package: Path) -> None:
    edges = all_edges(bad_package)
    problems, used = layer_violations(bad_package, edges)
    assert sorted(p.split(" (line")[0] for p in problems) == [
        "watcher.decide.alerts",  # an import for type checking counts for the layers
        "watcher.deliver.send",
        "watcher.rules.load",  # rules never read the config, even inside a function
        "watcher.types",
    ]
    assert used == set()
    # decide.alerts -> deliver.send is for type checking only: not a cycle
    assert cycles(edges) == [["watcher.store.other", "watcher.store.rows"]]
