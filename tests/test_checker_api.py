"""The checker's contract with later stages: resolved options and the annotated AST."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

from mnlang.checker import check
from mnlang.checker.builtins import BUILTINS
from mnlang.checker.options import RetryPolicy, check_options
from mnlang.checker.program import Symbol, load_program
from mnlang.checker.typecheck import check_types
from mnlang.checker.types import Type
from mnlang.diagnostics import Diagnostics
from mnlang.syntax import ast

ROOT = Path(__file__).resolve().parent.parent
REFUND = ROOT / "examples" / "refund" / "refund.mn"


def nodes(node: object) -> Iterator[ast.Node]:
    """Every AST node under `node`, itself included."""
    if isinstance(node, ast.Node):
        yield node
        for name in ast.field_names(type(node)):
            if name in ("ty", "ref", "target", "span"):
                continue
            yield from nodes(getattr(node, name))
    elif isinstance(node, list):
        for item in node:
            yield from nodes(item)


def check_text(text: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "main.mn"
    path.write_text(text, "utf-8")
    return [d.code for d in check(path).diagnostics]


def test_refund_options_are_resolved() -> None:
    result = check(REFUND)
    assert result.ok and not result.diagnostics
    opts = result.program.options if result.program else {}
    fetch = opts["fetch_order"]
    assert fetch["impl"] == "tools:fetch_order"
    assert fetch["timeout"] == 10_000
    assert fetch["retry"] == RetryPolicy(3, 1000, 2.0, 30_000, True, ("timeout", "transient"))
    assert fetch["isolation"] == "thread"
    triage = opts["triage"]
    assert triage["model"] == "gpt-5.4-mini"
    assert isinstance(triage["prompt"], ast.StrLit)
    assert triage["max_tokens"] == 400
    assert triage["retry"].attempts == 3
    assert triage["retry"].on == ("malformed_output", "timeout")
    refund = opts["refund_payment"]
    assert isinstance(refund["key"], ast.StrLit)
    assert refund["scope"] == "global"
    assert refund["retry"].max_delay_ms == 30_000
    assert opts["notify"]["scope"] == "run"
    assert opts["notify"]["retry"] == RetryPolicy()
    assert opts["refund"] == {
        "class": "support",
        "budget": Decimal("0.50"),
        "deadline": 259_200_000,
    }
    assert opts["std.policies.standard_retry"]["retry"].attempts == 3


def test_every_option_kind(tmp_path: Path) -> None:
    path = tmp_path / "shop.mn"
    path.write_text(
        """
policy slow { attempts: 4, backoff: 2s, on: [timeout] }
tool price(sku: str) -> money {
  impl: "shop:price"
  limit: { concurrent: 2, per_second: 0.5 }
  cost: $0.01
  timeout: never
  retry: slow
}
effect buy(sku: str) -> bool {
  impl: "shop:buy"
  once: true
  requires: approval
  compensate: cancel(sku)
}
effect cancel(sku: str) -> bool { impl: "shop:cancel", key: "cancel:{sku}" }
agent helper(q: str) -> str {
  model: "m"
  prompt: "{q}"
  tools: [price]
  max_turns: 3
  temperature: 0.5
}
workflow shop(sku: str) -> money {
  limit: 5
  p = price(sku)
  return p
}
schedule daily { run: shop("a"), cron: "0 9 * * *", timezone: "UTC" }
""",
        "utf-8",
    )
    result = check(path)
    assert [d.code for d in result.errors] == []
    assert result.program is not None
    opts = result.program.options
    assert opts["price"]["limit"] == {"concurrent": 2, "per_second": 0.5}
    assert opts["price"]["cost"] == Decimal("0.01")
    assert opts["price"]["timeout"] == "never"
    assert opts["price"]["retry"] == RetryPolicy(attempts=4, backoff_ms=2000, on=("timeout",))
    assert opts["buy"]["once"] is True
    assert opts["buy"]["requires"] == "approval"
    assert isinstance(opts["buy"]["compensate"], ast.Call)
    assert opts["helper"]["tools"] == ["price"]
    assert opts["helper"]["max_turns"] == 3
    assert opts["helper"]["temperature"] == 0.5
    assert opts["shop"]["limit"] == 5
    assert isinstance(opts["daily"]["run"], ast.Call)
    assert opts["daily"]["cron"] == "0 9 * * *"
    assert opts["daily"]["timezone"] == "UTC"


def test_the_refund_workflow_is_fully_annotated() -> None:
    result = check(REFUND)
    assert result.program is not None
    workflow = next(d for d in result.program.root.tree.decls if isinstance(d, ast.WorkflowDecl))
    blocks = {
        id(n.options) for n in nodes(workflow.body) if isinstance(n, ast.Checkpoint | ast.Wait)
    }
    exprs = [n for n in nodes(workflow.body) if isinstance(n, ast.Expr) and id(n) not in blocks]
    untyped = [n for n in exprs if not isinstance(n.ty, Type)]
    assert not untyped
    names = [n for n in exprs if isinstance(n, ast.Name)]
    refs = {n.name: n.ref for n in names}
    assert refs["order_id"] == "param"
    assert refs["order"] == "var"
    assert refs["reject"] == "enum"  # the checkpoint's `on_timeout` choice
    calls = [n for n in exprs if isinstance(n, ast.Call)]
    targets = {c.target.name for c in calls if isinstance(c.target, Symbol)}
    assert targets == {"fetch_order", "triage", "refund_payment", "notify"}
    assert all(c.is_step for c in calls)
    by_text = {str(n.ty) for n in exprs if isinstance(n, ast.Field) and n.name.name == "total"}
    assert by_text == {"money"}


def test_builtin_calls_name_their_builtin(tmp_path: Path) -> None:
    path = tmp_path / "b.mn"
    path.write_text("workflow w(xs: list[str]) -> int {\n  n = len(xs)\n  return n\n}\n", "utf-8")
    result = check(path)
    assert result.ok
    assert result.program is not None
    workflow = result.program.root.tree.decls[0]
    call = next(n for n in nodes(workflow) if isinstance(n, ast.Call))
    assert call.target == "len"
    assert not call.is_step
    assert str(call.ty) == "int"


def test_one_mistake_is_reported_once(tmp_path: Path) -> None:
    codes = check_text(
        "workflow w(x: int) -> int {\n  y = missing + 1\n  z = y * 2 - y\n  return z\n}\n",
        tmp_path,
    )
    assert codes == ["E101"]


def test_errors_in_every_workflow_are_reported_in_one_run(tmp_path: Path) -> None:
    codes = check_text(
        'workflow a() -> int {\n  return "x"\n}\nworkflow b() -> str {\n  return 1\n}\n',
        tmp_path,
    )
    assert codes == ["E201", "E201"]


def test_builtins_table_is_consistent() -> None:
    for name, builtin in BUILTINS.items():
        assert builtin.name == name
        assert builtin.signature.startswith(f"{name}(")
        assert 0 <= builtin.min_args <= builtin.max_args <= 3  # replace(text, old, new)
    assert {n for n, b in BUILTINS.items() if b.journaled} == {"now", "uuid"}


def _big_program(tmp_path: Path, lines: int) -> Path:
    source = REFUND.read_text("utf-8").split("\nscenario ", 1)[0]
    head, workflow = source.split("workflow refund", 1)
    parts = [head]
    count = head.count("\n")
    i = 0
    while count < lines:
        part = (f"workflow refund{i}" + workflow).replace("manager_review", f"review{i}")
        part += f"""
workflow tally{i}(xs: list[str], n: int) -> int {{
  total = 0
  for x in xs {{
    if len(x) > n and x != "a" {{
      total = total + len(x) * 2
    }} else {{
      total = total - 1
    }}
  }}
  return max(total, n)
}}
"""
        parts.append(part)
        count += part.count("\n")
        i += 1
    path = tmp_path / "big.mn"
    path.write_text("\n".join(parts), "utf-8")
    return path


def test_a_7000_line_file_checks_clean(tmp_path: Path) -> None:
    # Its speed is measured by benchmarks/check_speed.py, not asserted here.
    path = _big_program(tmp_path, 7000)
    diags = Diagnostics()
    program = load_program(path, diags)
    assert program is not None
    check_types(program, diags)
    check_options(program, diags)
    assert not diags.items
