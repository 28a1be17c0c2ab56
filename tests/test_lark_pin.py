"""Lark is pinned to one minor version because `mnlang/syntax/lalr.py` reads its private
LALR tables (`Lark.parser.parser.parser.parse_table`, the `Shift`/`Reduce` actions, rule
and symbol attributes). These tests say plainly which of them moved when Lark changes, so
that raising the pin is a deliberate step: update `build_tables`, then the pin."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
TINY = """
start: item+
item: NAME "=" value _NL
?value: NAME | "(" value ")"
NAME: /[a-z]+/
_NL: /\\n/
"""


def lark_pin() -> Requirement:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    pins = [Requirement(d) for d in project["dependencies"] if Requirement(d).name == "lark"]
    assert len(pins) == 1, "pyproject.toml should name `lark` once among the dependencies"
    return pins[0]


def changed(what: str) -> str:
    return (
        f"Lark {version('lark')} changed its LALR tables: {what}. mnlang/syntax/lalr.py "
        f"(build_tables) reads them; adapt it, then move the pin `{lark_pin()}` in "
        "pyproject.toml to this minor version."
    )


def test_the_lark_pin_allows_one_minor_version_only() -> None:
    pin = lark_pin()
    major, minor = (int(part) for part in version("lark").split(".")[:2])
    assert f"{major}.{minor}.0" in pin.specifier, f"installed Lark {version('lark')} vs `{pin}`"
    assert f"{major}.{minor + 1}.0" not in pin.specifier, f"`{pin}` lets the next minor in"
    assert f"{major}.{minor - 1}.99" not in pin.specifier, f"`{pin}` lets an older minor in"


def lark_tables(grammar: str) -> Any:
    from lark import Lark
    from lark.lexer import Lexer

    class NoLexer(Lexer):
        def __init__(self, conf: Any) -> None:
            pass

        def lex(self, lexer_state: Any, parser_state: Any) -> Any:
            return iter(())

    return Lark(grammar, parser="lalr", lexer=NoLexer, start=["start"])


def test_lark_keeps_the_table_layout_that_the_driver_reads() -> None:
    lark = lark_tables(TINY)
    try:
        table = lark.parser.parser.parser.parse_table
    except AttributeError as e:
        pytest.fail(changed(f"`Lark.parser.parser.parser.parse_table` is gone ({e})"))
    for name in ("states", "start_states", "end_states"):
        if not isinstance(getattr(table, name, None), dict):
            pytest.fail(changed(f"the parse table has no dict `{name}`"))
    actions = {
        getattr(action, "name", None)
        for row in table.states.values()
        for action, _arg in row.values()
    }
    if actions != {"Shift", "Reduce"}:
        pytest.fail(changed(f"the actions are {sorted(map(str, actions))}, not Shift and Reduce"))
    rules = set(lark.rules)
    for row in table.states.values():
        for action, arg in row.values():
            if action.name == "Shift" and not isinstance(arg, int):
                pytest.fail(changed(f"a Shift goes to {arg!r}, not to a state number"))
            if action.name == "Reduce" and arg not in rules:
                pytest.fail(changed(f"a Reduce names {arg!r}, not one of `Lark.rules`"))
    for rule in lark.rules:
        for attribute in ("origin", "expansion", "alias", "options"):
            if not hasattr(rule, attribute):
                pytest.fail(changed(f"a rule has no `{attribute}`"))
        if not hasattr(rule.origin, "name"):
            pytest.fail(changed("a rule's origin has no `name`"))
        if not hasattr(rule.options, "expand1"):
            pytest.fail(changed("rule options have no `expand1`"))
        for symbol in rule.expansion:
            if not hasattr(symbol, "is_term") or not hasattr(symbol, "name"):
                pytest.fail(changed("a rule's symbol has no `is_term` or `name`"))
    if {bool(r.options.expand1) for r in lark.rules if r.origin.name == "value"} != {True}:
        pytest.fail(changed("`?value` is no longer marked `expand1`"))
    dropped = {s.name for r in lark.rules for s in r.expansion if getattr(s, "filter_out", False)}
    if "_NL" not in dropped:
        pytest.fail(changed("a `_NL` terminal is no longer marked `filter_out`"))
