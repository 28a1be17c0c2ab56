"""Explicit state ids (`@name`): each may be given to one statement per workflow.

Derived state ids are unique by construction (see `mnlang.ir.ids`); explicit
ones are chosen by people and pin a state across versions, so a repeated one
is an error (E109) rather than a silent renumbering.
"""

from __future__ import annotations

from collections.abc import Iterator

from mnlang.checker.program import Program
from mnlang.diagnostics import Diagnostics, Label
from mnlang.syntax import ast


def _blocks(stmt: ast.Stmt) -> Iterator[ast.Block]:
    """The bodies directly inside a statement."""
    match stmt:
        case ast.Assign(value=ast.For() as loop) | (ast.For() as loop):
            yield loop.body
        case ast.If():
            yield stmt.then
            if isinstance(stmt.orelse, ast.Block):
                yield stmt.orelse
            elif isinstance(stmt.orelse, ast.If):
                yield ast.Block(stmt.orelse.span, [stmt.orelse])
        case ast.Match():
            yield from (arm.body for arm in stmt.arms)
        case ast.Select():
            yield from (arm.body for arm in stmt.arms)
        case ast.While():
            yield stmt.body
        case ast.Parallel():
            yield from stmt.branches
        case ast.Try():
            yield stmt.body
            yield from (c.body for c in stmt.catches)
            if stmt.final is not None:
                yield stmt.final


def _statements(block: ast.Block) -> Iterator[ast.Stmt]:
    for stmt in block.stmts:
        yield stmt
        for inner in _blocks(stmt):
            yield from _statements(inner)


def check_state_ids(program: Program, diags: Diagnostics) -> None:
    for symbol in program.symbols_of("workflow"):
        decl = symbol.decl
        assert isinstance(decl, ast.WorkflowDecl)
        first: dict[str, ast.Ident] = {}
        for stmt in (s for block in decl.blocks() for s in _statements(block)):
            if stmt.label is None:
                continue
            name = stmt.label.name
            if name in first:
                diags.add(
                    "E109",
                    stmt.label,
                    f"state id `@{name}` is given twice in workflow `{decl.name.name}`",
                    labels=[Label(first[name].span, "first given here")],
                    help="give each `@id` its own name",
                )
            else:
                first[name] = stmt.label
