"""The fix of E213 (a step inside an expression): assign the call to a new variable on a
line of its own before the statement, and use the variable in its place.

Offered only where that keeps the meaning: the call is evaluated exactly once, before
anything else of the statement that could be skipped. So not in a `while` condition
(evaluated each round), an `else if` condition, the right side of `and`, `or` or `??`
(evaluated only sometimes), nor in a `parallel` block (a new statement there would be a
branch of its own).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from mnlang.diagnostics import Edit, Fix
from mnlang.span import Span
from mnlang.syntax import ast

_SHORT_CIRCUIT = frozenset({"and", "or", "??"})


def hoist_fix(
    source: str, stmt: ast.Stmt, call: ast.Call, callee: str, taken: Callable[[str], bool]
) -> Fix | None:
    """The edits that move `call` out of `stmt` into `NAME = call` before it, or None
    when that could change what the statement does."""
    part = _evaluated_first(stmt)
    if part is None or not _unconditionally_in(part, call):
        return None
    line_start = source.rfind("\n", 0, stmt.span.start) + 1
    indent = source[line_start : stmt.span.start]
    if indent.strip():
        return None  # the statement does not start its line (`} else {` and the like)
    name = _fresh(f"{callee}_result", taken)
    text = source[call.span.start : call.span.end]
    at = stmt.span
    before = Span(at.file, at.line, at.col, at.line, at.col, at.start, at.start)
    return Fix(
        f"Assign `{callee}(...)` to `{name}` first",
        (Edit(before, f"{name} = {text}\n{indent}"), Edit(call.span, name)),
    )


def _evaluated_first(stmt: ast.Stmt) -> ast.Node | None:
    """The part of a statement evaluated once, before the rest of it."""
    if isinstance(stmt, ast.If):
        return stmt.cond
    if isinstance(stmt, ast.Match):
        return stmt.subject
    if isinstance(stmt, ast.For):
        return stmt.iterable
    if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Expr):
        return stmt.value
    if isinstance(stmt, ast.ExprStmt | ast.Log | ast.Fail | ast.Yield | ast.Publish):
        return stmt
    if isinstance(stmt, ast.Return):
        return stmt.value
    return None


def _unconditionally_in(node: ast.Node, call: ast.Call) -> bool:
    """Whether `call` is inside `node` and not on a side that may be skipped."""
    if node is call:
        return True
    if isinstance(node, ast.Binary) and node.op in _SHORT_CIRCUIT:
        return _unconditionally_in(node.left, call)
    return any(_unconditionally_in(child, call) for child in _children(node))


def _children(node: ast.Node) -> Iterator[ast.Node]:
    for name in ast.field_names(type(node)):
        value = getattr(node, name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, ast.Node):
                yield item


def _fresh(base: str, taken: Callable[[str], bool]) -> str:
    name, n = base, 1
    while taken(name):
        n += 1
        name = f"{base}{n}"
    return name
