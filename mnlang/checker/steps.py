"""The shape of workflow bodies, shared by the durability, approval, checkpoint and cost passes.

A step is a call of a tool, effect, agent or workflow standing as a statement
(`f(x)` or `y = f(x)`); these helpers find the steps, the blocks nested in a
statement, the variables an expression reads and the declaration a call reaches.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mnlang.checker.program import ModuleInfo, Program, Symbol, lookup
from mnlang.span import Span
from mnlang.syntax import ast

DEFAULT_CHOICES = ("approve", "reject")
# Checkpoint and wait option values that are words, not variables.
_WORD_OPTIONS = frozenset({"options", "on_timeout", "timeout"})


def workflows(program: Program) -> list[Symbol]:
    """Every workflow of the program, in declaration order per module."""
    return program.symbols_of("workflow")


def options_of(program: Program, sym: Symbol) -> dict[str, Any]:
    """A declaration's resolved options (filled by the options pass)."""
    return program.options.get(sym.name, {})


def written_option(sym: Symbol, key: str) -> ast.Entry | ast.OptionStmt | None:
    """The option entry as written in the source, when present."""
    decl = sym.decl
    if isinstance(decl, ast.WorkflowDecl):
        return next((o for o in decl.options if o.key.name == key), None)
    if isinstance(decl, ast.CallableDecl):
        return decl.options.get(key)
    return None


def step_call(stmt: ast.Stmt) -> ast.Call | None:
    """The call a statement makes as a step (`f(x)` or `y = f(x)`), if any."""
    if isinstance(stmt, ast.ExprStmt) and isinstance(stmt.expr, ast.Call):
        return stmt.expr
    if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call):
        return stmt.value
    return None


def called_symbol(module: ModuleInfo, call: ast.Call) -> Symbol | None:
    """The tool, effect, agent or workflow a call reaches; None for builtins and unknowns."""
    if isinstance(call.target, Symbol):
        return call.target
    if isinstance(call.target, str):
        return None
    sym = lookup(module, call.callee)
    if sym is None or sym.kind not in ("tool", "effect", "agent", "workflow"):
        return None
    return sym


def nested_statement(stmt: ast.Stmt) -> ast.Checkpoint | ast.Wait | ast.For | None:
    """The checkpoint, wait or loop on the right of `x = ...`, or the statement itself."""
    value = stmt.value if isinstance(stmt, ast.Assign) else stmt
    if isinstance(value, ast.Checkpoint | ast.Wait | ast.For):
        return value
    return None


def checkpoint_choices(checkpoint: ast.Checkpoint) -> list[str]:
    """A checkpoint's options (default `[approve, reject]`)."""
    entry = checkpoint.options.get("options")
    if entry is None or not isinstance(entry.value, ast.ListLit):
        return list(DEFAULT_CHOICES)
    return [item.name for item in entry.value.items if isinstance(item, ast.Name)]


# Statements that never hold a block, by exact type: most statements are these or `x = ...`,
# and every pass walks every statement (`walk`), so they skip the chain of tests below.
_WITHOUT_BLOCKS = frozenset(
    {
        *(ast.ExprStmt, ast.Log, ast.Return, ast.Fail, ast.Yield, ast.Publish),
        *(ast.OptionStmt, ast.Checkpoint, ast.Wait),
    }
)


def child_blocks(stmt: ast.Stmt) -> list[ast.Block]:
    """The blocks directly inside a statement, in source order."""
    kind = type(stmt)
    if kind in _WITHOUT_BLOCKS:
        return []
    if kind is ast.Assign:
        value = stmt.value  # type: ignore[attr-defined]
        return [value.body] if isinstance(value, ast.For) else []
    inner = nested_statement(stmt)
    if isinstance(inner, ast.For):
        return [inner.body]
    if isinstance(stmt, ast.If):
        if stmt.orelse is None:
            return [stmt.then]
        if isinstance(stmt.orelse, ast.If):
            return [stmt.then, as_block(stmt.orelse)]
        return [stmt.then, stmt.orelse]
    if isinstance(stmt, ast.Match):
        return [arm.body for arm in stmt.arms]
    if isinstance(stmt, ast.Select):
        return [arm.body for arm in stmt.arms]
    if isinstance(stmt, ast.While):
        return [stmt.body]
    if isinstance(stmt, ast.Parallel):
        return list(stmt.branches)
    if isinstance(stmt, ast.Try):
        blocks = [stmt.body, *(c.body for c in stmt.catches)]
        return [*blocks, stmt.final] if stmt.final is not None else blocks
    return []


def as_block(stmt: ast.If) -> ast.Block:
    """An `else if` seen as an `else { if ... }` block."""
    return ast.Block(stmt.span, [stmt])


def walk(block: ast.Block) -> Iterator[ast.Stmt]:
    """Every statement in a block, at any depth, in source order."""
    for stmt in block.stmts:
        yield stmt
        for child in child_blocks(stmt):
            yield from walk(child)


def assigned_names(block: ast.Block) -> dict[str, ast.Ident]:
    """The variables a block assigns (first assignment wins); loop and catch variables are
    local to their loop or handler and not included."""
    names: dict[str, ast.Ident] = {}
    for stmt in walk(block):
        if isinstance(stmt, ast.Assign):
            names.setdefault(stmt.target.name, stmt.target)
    return names


def expr_reads(expr: ast.Expr | ast.ObjectLit) -> Iterator[ast.Name]:
    """The names an expression reads as values (callees and enum members excluded)."""
    if isinstance(expr, ast.Name):
        yield expr
    elif isinstance(expr, ast.StrLit):
        for part in expr.parts:
            if not isinstance(part, str):
                yield from expr_reads(part)
    elif isinstance(expr, ast.ListLit):
        for item in expr.items:
            yield from expr_reads(item)
    elif isinstance(expr, ast.ObjectLit | ast.RecordLit):
        for entry in expr.entries:
            yield from expr_reads(entry.value)
    elif isinstance(expr, ast.Field):
        yield from expr_reads(expr.obj)
    elif isinstance(expr, ast.Index):
        yield from expr_reads(expr.obj)
        yield from expr_reads(expr.index)
    elif isinstance(expr, ast.Call):
        for arg in expr.args:
            yield from expr_reads(arg)
    elif isinstance(expr, ast.Unary):
        yield from expr_reads(expr.operand)
    elif isinstance(expr, ast.Binary):
        yield from expr_reads(expr.left)
        yield from expr_reads(expr.right)
    elif isinstance(expr, ast.Paren):
        yield from expr_reads(expr.inner)


def stmt_reads(stmt: ast.Stmt) -> Iterator[ast.Name]:
    """The names a statement reads itself, not counting the blocks nested in it."""
    for expr in _own_exprs(stmt):
        yield from expr_reads(expr)


def _own_exprs(stmt: ast.Stmt) -> list[ast.Expr | ast.ObjectLit]:
    inner = nested_statement(stmt)
    if isinstance(inner, ast.Checkpoint):
        return [e.value for e in inner.options.entries if e.key.name not in _WORD_OPTIONS]
    if isinstance(inner, ast.Wait):
        return [e for e in (inner.duration, inner.key) if e is not None]
    if isinstance(inner, ast.For):
        return [inner.iterable] + [e for e in (inner.limit, inner.first) if e is not None]
    if isinstance(stmt, ast.Assign | ast.OptionStmt):
        return [stmt.value] if isinstance(stmt.value, ast.Expr) else []
    if isinstance(stmt, ast.ExprStmt):
        return [stmt.expr]
    if isinstance(stmt, ast.If | ast.While):
        return [stmt.cond]
    if isinstance(stmt, ast.Match):
        return [stmt.subject]
    if isinstance(stmt, ast.Select):
        return [e for arm in stmt.arms for e in select_arm_exprs(arm)]
    if isinstance(stmt, ast.Return):
        return [stmt.value] if stmt.value is not None else []
    if isinstance(stmt, ast.Fail | ast.Log):
        return [stmt.message]
    if isinstance(stmt, ast.Yield | ast.Publish):
        return [stmt.value]
    return []


def select_waits(select: ast.Select) -> list[ast.Wait]:
    """The event waits of a `select`'s arms."""
    return [arm.wait for arm in select.arms if arm.wait is not None]


def select_arm_exprs(arm: ast.SelectArm) -> list[ast.Expr | ast.ObjectLit]:
    """What a `select` arm evaluates when the select starts: a key, a checkpoint's
    options, the timer's duration (not `never`)."""
    if arm.wait is not None:
        return [arm.wait.key] if arm.wait.key is not None else []
    if arm.checkpoint is not None:
        options = arm.checkpoint.options.entries
        return [e.value for e in options if e.key.name not in _WORD_OPTIONS]
    after = arm.after
    if after is None or (isinstance(after, ast.Name) and after.name == "never"):
        return []
    return [after]


def loop_header(loop: ast.For | ast.While) -> Span:
    """The span of a loop's first line (`for x in xs limit 4`, `while c, max: 5`)."""
    if isinstance(loop, ast.While):
        return loop.span.to(loop.max.span)
    end = loop.first or loop.limit or loop.iterable
    return loop.span.to(end.span)
