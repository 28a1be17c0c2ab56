"""How deep a program may nest: checked after parsing, without recursion (E015).

Two measures, because a flat `1 + 1 + ... + 1` is a left-leaning tree as deep as it
is long: `MAX_NESTING` counts expressions and statements inside one another, not
counting a binary operator's left operand that is itself a binary operator (one
more link of a chain); `MAX_DEPTH` counts every level, chain links too. Every pass
after the parser is tested to these limits (they run under `mnlang.deep.call_deep`).
"""

from __future__ import annotations

from typing import Any

from mnlang.deep import MAX_DEPTH
from mnlang.diagnostics import Diagnostic
from mnlang.syntax import ast

MAX_NESTING = 1_200

# Fields that hold annotations or positions, never child nodes.
_NOT_CHILDREN = frozenset({"span", "ty", "ref", "comments", "source"})
_child_fields: dict[type, tuple[str, ...]] = {}


def _children_of(node: ast.Node) -> tuple[str, ...]:
    names = _child_fields.get(type(node))
    if names is None:
        names = tuple(n for n in ast.field_names(type(node)) if n not in _NOT_CHILDREN)
        _child_fields[type(node)] = names
    return names


def _nodes_in(value: Any) -> list[ast.Node]:
    if isinstance(value, ast.Node):
        return [value]
    if isinstance(value, list | tuple):
        return [n for item in value for n in _nodes_in(item)]
    if isinstance(value, dict):
        return [n for item in value.values() for n in _nodes_in(item)]
    return []


def too_deep(roots: list[Any]) -> Diagnostic | None:
    """E015 at the first construct (in source order) nested deeper than the limits."""
    # Almost every program is within the limits, and then the order of the walk does not
    # matter: a quick walk in any order says whether the ordered one is needed at all.
    if _within_limits(_nodes_in(roots)):
        return None
    return _first_too_deep(roots)


_COUNTED = (ast.Expr, ast.Stmt)
_LEAVES = frozenset({str, int, float, bool, type(None)})


def _within_limits(roots: list[ast.Node]) -> bool:
    """Whether no node is nested deeper than the limits (`_first_too_deep`'s measures)."""
    node_type = ast.Node
    binary = ast.Binary
    leaves = _LEAVES
    stack: list[tuple[ast.Node, int, int]] = [(n, 0, 0) for n in roots]
    push = stack.append
    pop = stack.pop
    while stack:
        node, nesting, depth = pop()
        if isinstance(node, _COUNTED):
            depth += 1
            nesting += 1
            if nesting > MAX_NESTING or depth > MAX_DEPTH:
                return False
        for name in _children_of(node):
            value = getattr(node, name)
            kind = type(value)
            if kind in leaves:
                continue
            if isinstance(value, node_type):
                chained = name == "left" and kind is binary and type(node) is binary
                push((value, nesting - 1 if chained else nesting, depth))
            elif kind is list:
                for item in value:
                    if isinstance(item, node_type):
                        push((item, nesting, depth))
                    elif type(item) not in leaves:
                        for child in _nodes_in(item):
                            push((child, nesting, depth))
            else:
                for child in _nodes_in(value):
                    push((child, nesting, depth))
    return True


def _first_too_deep(roots: list[Any]) -> Diagnostic | None:
    # (node, nesting, depth), walked with an explicit stack; only expressions and
    # statements count as levels (a block, an entry or an arm is part of its owner).
    stack: list[tuple[ast.Node, int, int]] = [(n, 0, 0) for n in reversed(_nodes_in(roots))]
    while stack:
        node, nesting, depth = stack.pop()
        if isinstance(node, ast.Expr | ast.Stmt):
            depth += 1
            nesting += 1
        if nesting > MAX_NESTING or depth > MAX_DEPTH:
            return _too_deep_at(node, nesting > MAX_NESTING)
        children: list[tuple[ast.Node, int, int]] = []
        for name in _children_of(node):
            value = getattr(node, name)
            chained = (
                name == "left" and isinstance(node, ast.Binary) and isinstance(value, ast.Binary)
            )
            for child in _nodes_in(value):
                # A chain link is one level deeper but no more nested than its owner.
                children.append((child, nesting - 1 if chained else nesting, depth))
        stack.extend(reversed(children))
    return None


def _too_deep_at(node: ast.Node, nested: bool) -> Diagnostic:
    if nested:
        message = f"nested more than {MAX_NESTING:,} levels deep"
        help = "move inner parts into variables, or split the workflow"
    else:
        message = f"more than {MAX_DEPTH:,} levels deep, counting operator chains"
        help = "sum long lists with a loop, or split the chain into variables"
    return Diagnostic("E015", message, node.span, help=help)
