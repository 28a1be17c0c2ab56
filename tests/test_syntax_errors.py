"""Syntax diagnostics for a workflow option line missing its `:` (E011 with the fixed line)."""

from __future__ import annotations

import pytest

from mnlang.checker.options import WORKFLOW_OPTIONS
from mnlang.syntax.parser import parse
from mnlang.syntax.syntax_errors import WORKFLOW_OPTION_KEYS


def diagnostic(text: str) -> tuple[str, int, int, str, str | None]:
    module, diags = parse(text, "t.mn")
    assert module is None
    (d,) = diags
    assert d.span is not None
    return d.code, d.span.line, d.span.col, d.message, d.help


def workflow(head: str) -> str:
    return "workflow w(order_id: str) -> str {\n" + head + "\n  return order_id\n}\n"


def test_the_option_keys_are_the_checkers() -> None:
    assert set(WORKFLOW_OPTIONS) == WORKFLOW_OPTION_KEYS


@pytest.mark.parametrize(
    ("line", "fixed"),
    [
        ("budget $0.50", "budget: $0.50"),
        ('class "support"', 'class: "support"'),
        ("deadline 3d", "deadline: 3d"),
        ("limit 5", "limit: 5"),
        ("budget $0.50   # the cap", "budget: $0.50"),
        ("class Support", "class: Support"),
        ("limit { concurrent: 2 }", "limit: { concurrent: 2 }"),
    ],
)
def test_a_head_option_line_without_its_colon_is_e011(line: str, fixed: str) -> None:
    key = line.split()[0]
    assert diagnostic(workflow("  " + line)) == (
        "E011",
        2,
        3,
        f"missing `:` after the workflow option `{key}`",
        f"write `{fixed}`",
    )


def test_later_head_lines_count_while_every_line_before_is_an_option() -> None:
    text = workflow('  class: "support"\n  limit: { concurrent: 2,\n    per: 1 }\n  budget $1')
    assert diagnostic(text)[:3] == ("E011", 5, 3)


def test_a_value_over_several_lines_is_cut_in_the_help() -> None:
    text = workflow('  class """first\n  second"""')
    assert diagnostic(text)[4] == 'write `class: """first ...`'


@pytest.mark.parametrize(
    "head",
    [
        "  costs $0.50",  # not a workflow option
        "  x = 1\n  budget $0.50",  # after the first statement
        "  if true {\n    budget $0.50\n  }",  # in a nested block
        "  x = budget $0.50",  # not at the start of the line
    ],
)
def test_elsewhere_the_same_words_stay_e010(head: str) -> None:
    assert diagnostic(workflow(head))[0] == "E010"


def test_a_later_workflow_has_its_own_head() -> None:
    text = (
        "workflow a() -> int {\n  x = 1\n  return x\n}\n\n"
        "workflow b() -> int {\n  budget $2\n  return 1\n}\n"
    )
    assert diagnostic(text)[:3] == ("E011", 7, 3)
