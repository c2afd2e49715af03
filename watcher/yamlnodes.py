"""Limits on a composed YAML document, checked before any value is built; reads no file.

A YAML alias (``*name``) stands for the whole value its anchor (``&name``) marks, so a
few lines of anchors that each repeat the previous one nine times stand for billions of
values (an "alias bomb"). Both watcher.yaml and the rule files are composed into nodes
first and checked here, in time linear in what was written, before anything walks them:

    expanded size <= max(MAX_EXPANDED, EXPANSION_FACTOR x values written)
    nesting depth <= MAX_DEPTH
    no alias inside the value it refers to

A document over a limit raises ``yaml.MarkedYAMLError`` at the offending node, so the
loaders report it as they report any other invalid YAML (file, line, column).
"""

from __future__ import annotations

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

MAX_EXPANDED = 100_000  # values any document may stand for, aliases counted in full
EXPANSION_FACTOR = 10  # larger documents may stand for this many times what they write
MAX_DEPTH = 100  # lists and mappings inside each other


def check_expansion(root: Node | None, aliases: bool = True) -> None:
    """Raise ``yaml.MarkedYAMLError`` when ``root`` is an alias bomb, too deep, or cyclic.

    ``aliases=False`` says the text holds no ``*``, without which no alias can be written:
    every node then stands for itself, and only the depth is checked (a third of the time
    of reading a config of 5,000 feeds went to sizing nodes that could not be shared).
    """
    if root is None:
        return
    if not aliases:
        _check_depth(root)
        return
    sizes = _expanded_sizes(root)
    written = len(sizes)
    limit = max(MAX_EXPANDED, EXPANSION_FACTOR * written)
    if sizes[id(root)] > limit:
        raise _error(
            root,
            f"aliases make the {written:,} values written stand for more than {limit:,}"
            " (an alias bomb): write the values out instead",
        )


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _expanded_sizes(root: Node) -> dict[int, int]:
    """Each distinct node's size with every alias expanded (iterative: no recursion limit)."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # on the current path: an alias back to one is a cycle
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise _error(node, "an alias refers to a value that contains it")
        if len(open_nodes) >= MAX_DEPTH:
            raise _error(node, f"lists and mappings are nested more than {MAX_DEPTH} deep")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    return sizes


def _check_depth(root: Node) -> None:
    """The depth limit of ``_expanded_sizes``, for a tree without shared nodes."""
    stack: list[tuple[Node, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if depth >= MAX_DEPTH:
            raise _error(node, f"lists and mappings are nested more than {MAX_DEPTH} deep")
        if isinstance(node, SequenceNode | MappingNode):
            stack.extend((child, depth + 1) for child in _children(node))


def _error(node: Node, problem: str) -> yaml.MarkedYAMLError:
    return yaml.MarkedYAMLError(problem=problem, problem_mark=node.start_mark)
