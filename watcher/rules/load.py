"""Read rule files into ``Rule`` objects, validating everything; does not match anything.

Every problem in every file is collected and raised as one ``ConfigError`` whose lines read
``rules/kursk.yaml:12: rule nk-troops: query: unbalanced quote at column 18``. Query columns
are 1-based character positions in the query text.

Beside rules, a file may hold term lists (``- terms: {kursk: [Kursk, Курск]}``), shared by
every file: all files are read first, then their rules, whose ``$NAME``s may name a list of
any file. Each rule carries the lists it uses (``Rule.term_lists``).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import snowballstemmer
import yaml

from watcher.exceptions import ConfigError, Problem
from watcher.rules.query import (
    LIST_NAME,
    QueryError,
    is_list_reference,
    parse_entry,
    parse_phrase,
    parse_query,
)
from watcher.types import FIELDS, SEVERITIES, RateLimit, Rule, Threshold
from watcher.units import parse_duration
from watcher.yamlnodes import check_expansion

KEYS: tuple[str, ...] = (
    "id",
    "description",
    "any",
    "all",
    "none",
    "query",
    "fields",
    "feeds",
    "severity",
    "notify",
    "stem",
    "enabled",
    "digest",
    "max_alerts",
    "threshold",
    "languages",
)
TERMS = "terms"  # the key of a term-list entry
MAX_LIST_ENTRIES = 1000
# An RFC 4647 basic language range: "*" or a BCP 47-like tag of 1-8 letter subtags.
LANGUAGE_RANGE = re.compile(r"\*|[a-z]{1,8}(-[a-z0-9]{1,8})*")
STEM_LANGUAGES: tuple[str, ...] = tuple(
    sorted(a for a in snowballstemmer.algorithms() if "porter" not in a)
)


@dataclass(frozen=True)
class QueryProblem(Problem):
    """A problem inside a query or phrase: ``text`` and the 1-based ``column`` (for a caret)."""

    text: str = ""
    column: int | None = None


class _Invalid(Exception):
    """One problem with one value, raised inside a field check."""

    def __init__(self, message: str, column: int | None = None, text: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.column = column
        self.text = text


# --- reading YAML with line numbers --------------------------------------------------------


def _display(path: Path) -> str:
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if relative.startswith("..") else relative


# libyaml's parser when built in (marks and nodes are the same, ~10x faster).
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _compose(
    path: Path, problems: list[Problem]
) -> tuple[yaml.Node | None, yaml.SafeLoader | None]:
    name = _display(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        problems.append(Problem(name, f"cannot read rule file: {error}"))
        return None, None
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
        check_expansion(node, aliases="*" in text)
        return node, loader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problems.append(Problem(name, f"invalid YAML: {getattr(error, 'problem', error)}", line))
        return None, None


def _rule_nodes(node: yaml.Node | None, name: str, problems: list[Problem]) -> list[yaml.Node]:
    if node is None:
        return []
    if isinstance(node, yaml.MappingNode):
        return [node]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    problems.append(Problem(name, "a rule file holds a list of rules or one rule", _line(node)))
    return []


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


# --- one rule ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _RuleId:
    """Where a rule id was written, whether or not the rule around it is valid."""

    id: str
    file: str
    line: int


@dataclass
class _RuleReader:
    """Validates one rule mapping, collecting problems instead of stopping at the first."""

    file: str
    node: yaml.Node
    loader: yaml.SafeLoader
    channels: Collection[str] | None
    problems: list[Problem]
    ids: list[_RuleId]
    lists: _RecordingLists = field(default_factory=lambda: _RecordingLists())
    label: str = "rule"

    def read(self, position: int) -> Rule | None:
        if not isinstance(self.node, yaml.MappingNode):
            self.problem("a rule must be a mapping of keys (id, any, query, ...)", self.node)
            return None
        self.label = f"rule {self.peek_id() or f'#{position}'}"
        values = self.entries()
        rule_id = values.get("id", (None, self.node))
        fields = self.check_all(values)
        if not isinstance(rule_id[0], str) or not rule_id[0].strip():
            self.problem("id: every rule needs an id (a non-empty string)", rule_id[1])
            return None
        self.ids.append(_RuleId(rule_id[0], self.file, _line(self.node)))
        if fields is None:
            return None
        used = tuple((name, tuple(self.lists[name])) for name in sorted(self.lists.used))
        return Rule(id=rule_id[0], file=self.file, line=_line(self.node), term_lists=used, **fields)

    def peek_id(self) -> str | None:
        for key_node, value_node in self.node.value:
            if key_node.value == "id" and isinstance(value_node, yaml.ScalarNode):
                return str(value_node.value) or None
        return None

    def entries(self) -> dict[str, tuple[Any, yaml.Node]]:
        values: dict[str, tuple[Any, yaml.Node]] = {}
        for key_node, value_node in self.node.value:
            key = self.loader.construct_object(key_node, deep=True)
            if key not in KEYS:
                close = difflib.get_close_matches(str(key), KEYS, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; keys are {', '.join(KEYS)}"
                self.problem(f"unknown key {key!r}{hint}", key_node)
                continue
            try:
                values[key] = (self.loader.construct_object(value_node, deep=True), value_node)
            except yaml.YAMLError as error:
                self.problem(f"{key}: unreadable value: {error}", value_node)
        return values

    def check_all(self, values: dict[str, tuple[Any, yaml.Node]]) -> dict[str, Any] | None:
        fields: dict[str, Any] = {}
        ok = True
        for key, (value, node) in values.items():
            if key == "id":
                continue
            try:
                fields.update(CHECKS[key](value, self))
            except _Invalid as invalid:
                ok = False
                self.query_problem(key, invalid, node)
        if ok and not (fields.get("any") or fields.get("all") or fields.get("query")):
            self.problem("a rule needs any:, all: or query: (something to look for)", self.node)
            ok = False
        return fields if ok else None

    def problem(self, message: str, node: yaml.Node) -> None:
        self.problems.append(Problem(self.file, message, _line(node), self.label))

    def query_problem(self, key: str, invalid: _Invalid, node: yaml.Node) -> None:
        message = f"{key}: {invalid.message}"
        self.problems.append(
            QueryProblem(self.file, message, _line(node), self.label, invalid.text, invalid.column)
        )


# --- per-key checks: value -> Rule fields, or _Invalid ---------------------------------------


def _query_error(error: QueryError, text: str, where: str = "") -> _Invalid:
    return _Invalid(f"{where}{error}", error.column, text)


def _phrases(value: Any, reader: _RuleReader) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _Invalid("must be a list of phrases")
    out: list[str] = []
    for index, entry in enumerate(value):
        if isinstance(entry, bool) or not isinstance(entry, str | int | float):
            raise _Invalid(f"[{index}]: must be a phrase (text)")
        text = str(entry)
        try:
            leaf = parse_entry(text, reader.lists)
        except QueryError as error:
            raise _query_error(error, text, f"[{index}]: ") from None
        if leaf is None:
            raise _Invalid(f"[{index}]: {text!r} has no word to look for")
        out.append(text)
    return tuple(out)


def _query(value: Any, reader: _RuleReader) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, str):
        raise _Invalid("must be a query string")
    try:
        parse_query(value, reader.lists)
    except QueryError as error:
        raise _query_error(error, value) from None
    return {"query": value}


def _choice_list(value: Any, allowed: Collection[str] | None, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Invalid(f"must be a list of {what}")
    for entry in value:
        if allowed is not None and entry not in allowed:
            raise _Invalid(_unknown(entry, allowed, what))
    return tuple(value)


def _unknown(entry: str, allowed: Collection[str], what: str) -> str:
    close = difflib.get_close_matches(entry.lower(), list(allowed), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; {what}: {', '.join(allowed)}"
    return f"unknown {what[:-1]} {entry!r}{hint}"


def _fields(value: Any, reader: _RuleReader) -> dict[str, Any]:
    fields = _choice_list(value, FIELDS, "fields")
    if not fields:
        raise _Invalid("needs at least one field")
    return {"fields": fields}


def _feeds(value: Any, reader: _RuleReader) -> dict[str, Any]:
    return {"feeds": _choice_list(value if value is not None else [], None, "feed names")}


def _notify(value: Any, reader: _RuleReader) -> dict[str, Any]:
    if value is None:
        return {"notify": None}
    return {"notify": _choice_list(value, reader.channels, "channels")}


def _severity(value: Any, reader: _RuleReader) -> dict[str, Any]:
    if value not in SEVERITIES:
        raise _Invalid(f"must be one of {', '.join(SEVERITIES)}, not {value!r}")
    return {"severity": value}


def _stem(value: Any, reader: _RuleReader) -> dict[str, Any]:
    if value is False or value is None:
        return {"stem": None}
    if value not in STEM_LANGUAGES:
        raise _Invalid(f"unknown language {value!r}; languages are {', '.join(STEM_LANGUAGES)}")
    return {"stem": value}


def _enabled(value: Any, reader: _RuleReader) -> dict[str, Any]:
    if not isinstance(value, bool):
        raise _Invalid(f"must be true or false, not {value!r}")
    return {"enabled": value}


def _description(value: Any, reader: _RuleReader) -> dict[str, Any]:
    if value is None:
        return {"description": ""}
    if not isinstance(value, str):
        raise _Invalid("must be text")
    return {"description": value}


def duration(value: Any) -> int:
    """Seconds in ``30s``, ``15m``, ``2h``, ``1d``; raises _Invalid."""
    try:
        seconds = parse_duration(value)
    except ValueError as error:
        raise _Invalid(str(error)) from None
    if seconds <= 0:
        raise _Invalid("must be a positive duration like 30s, 15m, 2h or 1d")
    return seconds


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Invalid(f"{what} must be a whole number of at least 1, not {value!r}")
    return value


def _mapping(value: Any, required: set[str], optional: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Invalid(f"must be a mapping with {', '.join(sorted(required))}")
    known = required | optional
    for key in value:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise _Invalid(f"unknown key {key!r}{hint}")
    missing = sorted(required - set(value))
    if missing:
        raise _Invalid(f"missing {', '.join(missing)}")
    return value


def _digest(value: Any, reader: _RuleReader) -> dict[str, Any]:
    return {"digest_s": None if value is None else duration(value)}


def _max_alerts(value: Any, reader: _RuleReader) -> dict[str, Any]:
    if value is None:
        return {"max_alerts": None}
    entries = _mapping(value, {"count", "per"}, set())
    count = _positive_int(entries["count"], "count")
    return {"max_alerts": RateLimit(count, duration(entries["per"]))}


def _threshold(value: Any, reader: _RuleReader) -> dict[str, Any]:
    if value is None:
        return {"threshold": None}
    entries = _mapping(value, {"count", "within"}, {"distinct"})
    distinct = entries.get("distinct")
    if distinct not in (None, "feed", "item"):
        raise _Invalid(f"distinct must be feed or item, not {distinct!r}")
    count = _positive_int(entries["count"], "count")
    within = duration(entries["within"])
    return {"threshold": Threshold(count, within, "feed" if distinct == "feed" else None)}


def _languages(value: Any, reader: _RuleReader) -> dict[str, Any]:
    """RFC 4647 language ranges (``ko``, ``zh``, ``pt-br``, ``*``), kept lower-case."""
    if value is None:
        return {"languages": ()}
    ranges = _choice_list(value, None, "language tags")
    for index, entry in enumerate(ranges):
        if not LANGUAGE_RANGE.fullmatch(entry.lower()):
            raise _Invalid(f"[{index}]: {entry!r} is not a language tag (like en, zh, pt-br)")
    return {"languages": tuple(dict.fromkeys(entry.lower() for entry in ranges))}


def _phrase_key(key: str) -> Callable[[Any, _RuleReader], dict[str, Any]]:
    def check(value: Any, reader: _RuleReader) -> dict[str, Any]:
        return {key: _phrases(value, reader)}

    return check


CHECKS: dict[str, Callable[[Any, _RuleReader], dict[str, Any]]] = {
    "description": _description,
    "any": _phrase_key("any"),
    "all": _phrase_key("all"),
    "none": _phrase_key("none"),
    "query": _query,
    "fields": _fields,
    "feeds": _feeds,
    "severity": _severity,
    "notify": _notify,
    "stem": _stem,
    "enabled": _enabled,
    "digest": _digest,
    "max_alerts": _max_alerts,
    "threshold": _threshold,
    "languages": _languages,
}


# --- term lists ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TermList:
    """One ``- terms:`` list: its name, its entries as written, and where it was defined."""

    name: str
    entries: tuple[str, ...]
    file: str
    line: int


class _RecordingLists(dict[str, tuple[str, ...]]):
    """The term lists by name, noting which ones a rule looks up."""

    def __init__(self, lists: dict[str, tuple[str, ...]] | None = None) -> None:
        super().__init__(lists or {})
        self.used: set[str] = set()

    def get(self, name: str, default: Any = None) -> Any:
        if name in self:
            self.used.add(name)
        return super().get(name, default)


def is_terms_entry(node: yaml.Node) -> bool:
    """Whether a file entry is a ``terms:`` mapping rather than a rule."""
    return isinstance(node, yaml.MappingNode) and any(
        isinstance(key, yaml.ScalarNode) and key.value == TERMS for key, _ in node.value
    )


def _read_term_lists(
    node: yaml.MappingNode, file: str, loader: yaml.SafeLoader, problems: list[Problem]
) -> list[TermList]:
    """The lists of one ``- terms: {NAME: [...], ...}`` entry; every problem is collected,
    and a list keeps its valid entries so that rules naming it report nothing more."""
    lists: list[TermList] = []
    for key_node, value_node in node.value:
        if not (isinstance(key_node, yaml.ScalarNode) and key_node.value == TERMS):
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
            message = (
                f"a terms: entry holds only terms:, not {key!r} (rules are entries of their own)"
            )
            problems.append(Problem(file, message, _line(key_node)))
            continue
        if not isinstance(value_node, yaml.MappingNode) or not value_node.value:
            message = "must map list names to lists of terms: {kursk: [Kursk, Курск]}"
            problems.append(Problem(file, message, _line(value_node), TERMS))
            continue
        for name_node, entries_node in value_node.value:
            term_list = _read_term_list(name_node, entries_node, file, loader, problems)
            if term_list is not None:
                lists.append(term_list)
    return lists


def _read_term_list(
    name_node: yaml.Node,
    entries_node: yaml.Node,
    file: str,
    loader: yaml.SafeLoader,
    problems: list[Problem],
) -> TermList | None:
    name = loader.construct_object(name_node, deep=True)
    line = _line(name_node)

    def problem(message: str, column: int | None = None, text: str = "") -> None:
        problems.append(QueryProblem(file, message, line, TERMS, text, column))

    if not isinstance(name, str) or not LIST_NAME.fullmatch(name):
        problem(
            f"list name {name!r} must start with a lower-case ASCII letter and hold only"
            " lower-case letters, digits, _ and -"
        )
        return None
    try:
        values = loader.construct_object(entries_node, deep=True)
    except yaml.YAMLError as error:
        problem(f"{name}: unreadable value: {error}")
        return None
    if not isinstance(values, list) or not values:
        problem(f"{name}: must be a non-empty list of terms and phrases")
        return TermList(name, (), file, line)
    if len(values) > MAX_LIST_ENTRIES:
        problem(f"{name}: holds {len(values)} entries; a list may hold {MAX_LIST_ENTRIES}")
        return TermList(name, (), file, line)
    entries: list[str] = []
    for index, value in enumerate(values):
        where = f"{name}[{index}]"
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            problem(f"{where}: must be a term or phrase (text)")
            continue
        text = str(value)
        if is_list_reference(text.strip()):
            problem(f"{where}: a term list cannot hold another list ({text.strip()})")
            continue
        try:
            leaf = parse_phrase(text)
        except QueryError as error:
            problem(f"{where}: {error}", error.column, text)
            continue
        if leaf is None:
            problem(f"{where}: {text!r} has no word to look for")
            continue
        entries.append(text)
    return TermList(name, tuple(entries), file, line)


def _collect_lists(found: list[TermList], problems: list[Problem]) -> dict[str, TermList]:
    """Lists by name; a name defined twice is an error naming both places."""
    lists: dict[str, TermList] = {}
    for term_list in found:
        first = lists.setdefault(term_list.name, term_list)
        if first is not term_list:
            message = (
                f"term list ${term_list.name} is defined twice (first in {first.file}:{first.line})"
            )
            problems.append(Problem(term_list.file, message, term_list.line, TERMS))
    return lists


def load_term_lists(paths: Sequence[Path]) -> dict[str, TermList]:
    """The term lists the files define, first definition first, without their rules; files
    that cannot be read, and lists with errors, are left out (``rules check`` reports them)."""
    lists: dict[str, TermList] = {}
    for path in paths:
        problems: list[Problem] = []
        node, loader = _compose(Path(path), problems)
        if loader is None:
            continue
        try:
            for entry in _rule_nodes(node, _display(Path(path)), problems):
                if is_terms_entry(entry):
                    assert isinstance(entry, yaml.MappingNode)
                    for term_list in _read_term_lists(
                        entry, _display(Path(path)), loader, problems
                    ):
                        lists.setdefault(term_list.name, term_list)
        finally:
            loader.dispose()
    return lists


def unused_list_problems(rule_set: RuleSet) -> list[Problem]:
    """One problem per term list no rule uses (``rules check`` warns about these)."""
    used = {name for rule in rule_set.rules for name, _ in rule.term_lists}
    return [
        Problem(t.file, f"term list ${t.name} is not used by any rule", t.line, TERMS)
        for name, t in sorted(rule_set.term_lists.items())
        if name not in used
    ]


# --- entry points --------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleSet:
    """Every rule of the rule files, and every term list they define."""

    rules: list[Rule]
    term_lists: dict[str, TermList]


def load_rules(paths: Sequence[Path], channels: Collection[str] | None = None) -> list[Rule]:
    """Read and validate every rule file; raise one ConfigError listing every problem.

    ``channels``: the configured channel names ``notify`` may use (``None``: not checked).
    """
    return load_rule_set(paths, channels).rules


def load_rule_set(
    paths: Sequence[Path],
    channels: Collection[str] | None = None,
    shared: Mapping[str, TermList] | None = None,
) -> RuleSet:
    """``load_rules``, with the term lists the files define. ``shared``: lists of other
    files the rules may also use (``rules test`` on one file of a folder); the files' own
    lists take precedence."""
    problems: list[Problem] = []
    files: list[tuple[str, yaml.SafeLoader, list[yaml.Node]]] = []
    found: list[TermList] = []
    try:
        for path in paths:
            node, loader = _compose(Path(path), problems)
            if loader is None:
                continue
            name = _display(Path(path))
            rule_nodes: list[yaml.Node] = []
            for entry in _rule_nodes(node, name, problems):
                if is_terms_entry(entry):
                    assert isinstance(entry, yaml.MappingNode)
                    found.extend(_read_term_lists(entry, name, loader, problems))
                else:
                    rule_nodes.append(entry)
            files.append((name, loader, rule_nodes))
        lists = _collect_lists(found, problems)
        entries = {name: t.entries for name, t in (shared or {}).items()}
        entries.update((name, t.entries) for name, t in lists.items())
        rules: list[Rule] = []
        ids: list[_RuleId] = []
        for name, loader, rule_nodes in files:
            for position, rule_node in enumerate(rule_nodes, start=1):
                reader = _RuleReader(
                    name, rule_node, loader, channels, problems, ids, _RecordingLists(entries)
                )
                rule = reader.read(position)
                if rule is not None:
                    rules.append(rule)
    finally:
        for _, loader, _ in files:
            loader.dispose()
    _check_duplicates(ids, problems)
    if problems:
        raise ConfigError(problems)
    return RuleSet(rules, lists)


def _check_duplicates(ids: list[_RuleId], problems: list[Problem]) -> None:
    """Report each id written twice, even where either copy has other problems."""
    first: dict[str, _RuleId] = {}
    for rule in ids:
        seen = first.setdefault(rule.id, rule)
        if seen is not rule:
            message = f"duplicate rule id {rule.id!r} (first defined in {seen.file}:{seen.line})"
            problems.append(Problem(rule.file, message, rule.line, f"rule {rule.id}"))


def scope_problems(
    rules: Sequence[Rule], feed_names: Collection[str], feed_tags: Collection[str]
) -> list[Problem]:
    """One problem per feed name or ``tag:NAME`` in a rule's ``feeds`` that no feed has.

    Such a rule never matches anything; ``rules check`` reports these as warnings.
    """
    problems: list[Problem] = []
    for rule in rules:
        for scope in rule.feeds:
            tag = scope.removeprefix("tag:") if scope.startswith("tag:") else None
            if tag is not None and tag not in feed_tags:
                close = difflib.get_close_matches(tag, list(feed_tags), n=1)
                hint = f"; did you mean 'tag:{close[0]}'?" if close else ""
                message = f"feeds: no feed has the tag {tag!r}{hint}"
            elif tag is None and scope not in feed_names:
                close = difflib.get_close_matches(scope, list(feed_names), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                message = f"feeds: no feed is named {scope!r}{hint}"
            else:
                continue
            problems.append(Problem(rule.file, message, rule.line, f"rule {rule.id}"))
    return problems
