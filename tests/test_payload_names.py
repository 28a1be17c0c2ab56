"""Issue 16, item 7: reserved words as field names (`e.type`) and object literals
(`{ "seed": 42 }` as `json`, `map[T]` or a record's fields): parsed by the LALR tables,
checked, compiled, run, formatted, diffed and drawn."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import msgspec
import pytest

from mnlang import api
from mnlang.checker import check
from mnlang.fmt import format_source
from mnlang.graph.dot import workflow_dot
from mnlang.ir.compile import compile_file
from mnlang.ir.diff import diff_programs
from mnlang.syntax import ast
from mnlang.syntax.parser import parse
from mnlang.syntax.tokens import KEYWORDS
from mnlang.testing.runner import run_scenario

ROUTE = textwrap.dedent(
    """\
    type Envelope {
      type: str
      event: str
      match: int
      schedule: str?
    }

    tool weigh(weights: map[int], config: json) -> int {
      impl: "payload_tools:weigh"
    }

    workflow route(input: json) -> json {
      e = Envelope { type: to_str(input.type), event: to_str(input["event"]), match: 2, schedule: null }
      config = { "seed": 42, "mode": { "quorum": 2 }, "charge-id": "ch_1", "if": true }
      same = false
      if input.mode == { "quorum": 2 } {
        same = true
      }
      n = weigh({ "a": 1, "b": 2 }, config)
      return { "type": e.type, "event": e.event, "same": same, "total": n, "config": config }
    }
    """
)

TOOLS = textwrap.dedent(
    """\
    def weigh(weights, config):
        assert isinstance(weights, dict) and isinstance(config, dict), (weights, config)
        return sum(weights.values()) + config["seed"] + config["mode"]["quorum"]
    """
)


def module(text: str) -> ast.Module:
    tree, diags = parse(text, "t.mn")
    assert tree is not None, [f"{d.code} {d.message}" for d in diags]
    return tree


def workflow_body(text: str) -> list[ast.Stmt]:
    decl = module(text).decls[-1]
    assert isinstance(decl, ast.WorkflowDecl)
    return decl.body.stmts


@pytest.mark.parametrize("word", sorted(KEYWORDS))
def test_every_reserved_word_is_a_field_name_in_a_type_an_access_and_a_key(word: str) -> None:
    text = (
        f"type T {{\n  {word}: int\n}}\n"
        f'workflow w(t: T) -> json {{\n  x = t.{word}\n  return {{ {word}: x, "{word}": 1 }}\n}}\n'
    )
    tree = module(text)
    decl = tree.decls[0]
    assert isinstance(decl, ast.TypeDecl) and decl.fields[0].name.name == word
    assign, ret = workflow_body(text)
    assert isinstance(assign, ast.Assign) and isinstance(assign.value, ast.Field)
    assert assign.value.name.name == word
    assert isinstance(ret, ast.Return) and isinstance(ret.value, ast.ObjectLit)
    assert [e.key.name for e in ret.value.entries] == [word, word]


def test_a_brace_after_an_operator_is_an_object_and_after_the_condition_a_block() -> None:
    (stmt,) = workflow_body(
        'workflow w(x: json) -> int {\n  if x == { "a": { "b": 1 } } {\n    return 1\n  }\n}\n'
    )
    assert isinstance(stmt, ast.If)
    assert isinstance(stmt.cond, ast.Binary) and isinstance(stmt.cond.right, ast.ObjectLit)
    inner = stmt.cond.right.entries[0].value
    assert isinstance(inner, ast.ObjectLit) and inner.entries[0].key.name == "b"
    assert isinstance(stmt.then.stmts[0], ast.Return)


def test_in_a_parallel_branch_a_brace_opens_a_block() -> None:
    (par,) = workflow_body(
        'workflow w() -> int {\n  parallel {\n    {}\n    {\n      a: 1\n    }\n    { "a": 1 }\n  }\n}\n'
    )
    assert isinstance(par, ast.Parallel)
    empty, options, obj = par.branches
    assert empty.stmts == []
    assert isinstance(options.stmts[0], ast.OptionStmt)  # a block with an option line
    (stmt,) = obj.stmts  # a quoted key can only be an object
    assert isinstance(stmt, ast.ExprStmt) and isinstance(stmt.expr, ast.ObjectLit)


def test_quoted_keys_are_their_text_with_escapes() -> None:
    (ret,) = workflow_body(
        'workflow w() -> json {\n  return { "charge-id": 1, "say \\"hi\\"": 2, "": 3, "a b": 4 }\n}\n'
    )
    assert isinstance(ret, ast.Return) and isinstance(ret.value, ast.ObjectLit)
    assert [e.key.name for e in ret.value.entries] == ["charge-id", 'say "hi"', "", "a b"]


def test_an_object_is_json_a_map_or_a_record_by_what_is_expected(tmp_path: Path) -> None:
    path = tmp_path / "route.mn"
    path.write_text(ROUTE)
    assert [d.code for d in check(path).diagnostics] == []
    wrong = ROUTE.replace('{ "a": 1, "b": 2 }', '{ "a": 1, "b": "two" }')
    path.write_text(wrong)
    diags = check(path).diagnostics
    assert [(d.code, d.message) for d in diags] == [
        ("E201", "expected `int`, found `str` for key `b`")
    ]


def test_a_run_passes_objects_to_tools_and_reads_keyword_fields(tmp_path: Path) -> None:
    path = tmp_path / "route.mn"
    path.write_text(ROUTE)
    (tmp_path / "payload_tools.py").write_text(TOOLS)
    given = {"input": {"type": "charge.succeeded", "event": "evt_1", "mode": {"quorum": 2}}}
    outcome = api.start_run(path, given, db=tmp_path / "j.db")
    assert outcome.status == "completed", outcome.error
    assert outcome.result == {
        "type": "charge.succeeded",
        "event": "evt_1",
        "same": True,
        "total": 3 + 42 + 2,
        "config": {"seed": 42, "mode": {"quorum": 2}, "charge-id": "ch_1", "if": True},
    }
    # The journal holds the object as it went to the tool.
    events = api.run_journal(outcome.run_id, db=tmp_path / "j.db")
    assert any('"charge-id"' in json.dumps(e.data) for e in events)


def test_a_scenario_passes_an_object_as_input(tmp_path: Path) -> None:
    path = tmp_path / "route.mn"
    path.write_text(
        ROUTE
        + textwrap.dedent(
            """
            scenario seeded {
              run: route({ "type": "t", "event": "e", "mode": { "quorum": 3 } })
              tools: { weigh: [7] }
              expect: { status: completed }
            }
            """
        )
    )
    program, diags = compile_file(path, path.read_text())
    assert program is not None, diags
    (scenario,) = program.scenarios.values()
    result = run_scenario(program, scenario, str(path))
    assert result.mismatches == [] and result.status == "completed", result


def test_fmt_keeps_quoted_keys_and_keyword_fields() -> None:
    source = ROUTE.replace('{ "a": 1, "b": 2 }', '{\n    "a": 1\n    "b": 2,\n  }')
    formatted = format_source(source).text
    assert formatted is not None
    assert '{ "a": 1, "b": 2 }' in formatted
    assert '"charge-id": "ch_1"' in formatted and "e.type" in formatted
    assert format_source(formatted).text == formatted


def test_ir_diff_and_graph_see_object_literals(tmp_path: Path) -> None:
    path = tmp_path / "route.mn"
    old, diags = compile_file(path, ROUTE)
    assert old is not None, diags
    new, _ = compile_file(path, ROUTE.replace('"seed": 42', '"seed": 43'))
    assert new is not None
    (wf,) = diff_programs(old, new).workflows
    assert wf.status == "changed"
    dumped = msgspec.json.encode(old).decode()
    assert '"charge-id"' in dumped
    assert "weigh" in workflow_dot(old, "route")
