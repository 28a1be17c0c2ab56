"""Stable state ids, built from the source so that unrelated edits do not rename states.

A statement's id is its enclosing path, then its own label, then `#n` when it
is the n-th (n >= 2) statement with that label among its siblings:

    order                     order = fetch_order(id)           (label: assignment target)
    notify, notify#2          two `notify(...)` statements      (label: the called name)
    if#2/then/decision        inside the then-arm of the second `if`
    try/catch_timeout/log     inside `catch timeout, ... as e`
    @pay                      `@pay receipt = refund_payment(...)`: an explicit id

Labels: the assignment target; else the called name (`notify`, `payments.refund`);
the checkpoint's name; the event's name for an event wait; else the keyword
(`if match for while parallel try wait return fail log yield`). Bodies add a
segment: `then`/`else` for `if`, the first member for a `match` arm, `body`,
`catch_<first kind>` and `finally` for `try`; loops and `parallel` add none
(the statements of all branches of a `parallel` are siblings). An explicit
`@id` is absolute (wrapping the statement in an `if` keeps it) and is written
with its `@`, so it can never collide with a derived id.
"""

from __future__ import annotations

from collections.abc import Sequence

from mnlang.syntax import ast

_KEYWORD_LABELS: dict[type, str] = {
    ast.If: "if",
    ast.Match: "match",
    ast.For: "for",
    ast.While: "while",
    ast.Parallel: "parallel",
    ast.Try: "try",
    ast.Select: "select",
    ast.Return: "return",
    ast.Fail: "fail",
    ast.Log: "log",
    ast.Publish: "publish",
    ast.Yield: "yield",
}


def callee_text(expr: ast.Expr) -> str:
    """`notify` or `payments.refund` for a call's callee; `call` for anything else."""
    if isinstance(expr, ast.Name):
        return expr.name
    if isinstance(expr, ast.Field):
        inner = callee_text(expr.obj)
        return f"{inner}.{expr.name.name}" if inner != "call" else "call"
    return "call"


def label_of(stmt: ast.Stmt) -> str:
    """A statement's own label, before occurrence numbering."""
    if isinstance(stmt, ast.Assign):
        return stmt.target.name
    if isinstance(stmt, ast.ExprStmt):
        return callee_text(stmt.expr.callee) if isinstance(stmt.expr, ast.Call) else "expr"
    if isinstance(stmt, ast.Checkpoint):
        return stmt.name.name
    if isinstance(stmt, ast.Wait):
        return stmt.event.name if stmt.event is not None else "wait"
    if isinstance(stmt, ast.OptionStmt):
        return stmt.key.name
    return _KEYWORD_LABELS[type(stmt)]


def join(prefix: str, segment: str) -> str:
    return f"{prefix}/{segment}" if prefix else segment


def sibling_ids(stmts: Sequence[ast.Stmt], prefix: str) -> list[str]:
    """The ids of statements that are siblings under `prefix`, in order."""
    seen: dict[str, int] = {}
    ids: list[str] = []
    for stmt in stmts:
        if stmt.label is not None:
            ids.append("@" + stmt.label.name)
            continue
        label = label_of(stmt)
        seen[label] = seen.get(label, 0) + 1
        n = seen[label]
        ids.append(join(prefix, label if n == 1 else f"{label}#{n}"))
    return ids


def catch_prefixes(catches: Sequence[ast.Catch], try_id: str) -> list[str]:
    """`try/catch_timeout`, numbered like statements when two catches start with one kind."""
    seen: dict[str, int] = {}
    out: list[str] = []
    for clause in catches:
        label = "catch_" + (clause.kinds[0].name if clause.kinds else "any")
        seen[label] = seen.get(label, 0) + 1
        n = seen[label]
        out.append(join(try_id, label if n == 1 else f"{label}#{n}"))
    return out


THEN, ELSE, BODY, FINALLY = "then", "else", "body", "finally"
ON_FAILURE = "on_failure"
