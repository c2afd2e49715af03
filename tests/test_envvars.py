"""``${VAR}`` templates: references, expansion, escaping, and errors that name the variable."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watcher import envvars
from watcher.exceptions import ConfigError


def test_references_are_the_valid_names_in_order_once() -> None:
    text = "https://${USER}:${PASS}@h/${USER}?x=$${LITERAL}&y=${1BAD}"
    assert envvars.references(text) == ["USER", "PASS"]
    assert envvars.has_references(text)
    assert not envvars.has_references("https://h/$${NOT_A_VAR}")
    assert not envvars.has_references("https://h/plain")


def test_expand_replaces_variables_and_unescapes_dollar_dollar() -> None:
    env = {"KEY": "k$y", "HOST": "h.example"}
    assert envvars.expand("https://${HOST}/?k=${KEY}&l=$${KEY}", env) == (
        "https://h.example/?k=k$y&l=${KEY}"
    )


def test_a_missing_variable_is_named_never_its_neighbours_values() -> None:
    with pytest.raises(ConfigError) as info:
        envvars.expand("https://u:${PASS}@h/?k=${KEY}", {"PASS": "s3cret"}, what="feed x url")
    assert str(info.value) == "feed x url: environment variable KEY is not set"
    assert envvars.missing("${A}${B}", {"B": ""}) == ["A"]


@pytest.mark.parametrize(
    ("text", "message"),
    [("a ${open", "unclosed '${'"), ("${1BAD}", "invalid environment variable name '1BAD'")],
)
def test_syntax_problems(text: str, message: str) -> None:
    assert message in (envvars.syntax_problem(text) or "")
    with pytest.raises(ConfigError, match="environment variable|unclosed"):
        envvars.expand(text, {})


def test_values_of_gives_the_set_variables() -> None:
    assert envvars.values_of("${A}/${B}", {"A": "1"}) == {"A": "1"}


@given(st.text(alphabet="${}ab_", max_size=30))
def test_escape_makes_any_text_a_template_of_itself(text: str) -> None:
    template = envvars.escape(text)
    assert not envvars.has_references(template)
    assert envvars.syntax_problem(template) is None
    assert envvars.expand(template, {"a": "SECRET", "b": "SECRET"}) == text
