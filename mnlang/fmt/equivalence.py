"""What a module means, for comparing two parses: the AST without positions and comments."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any

from mnlang.syntax import ast

# Positions, checker annotations and the comments and text of a module are not meaning.
_IGNORED = frozenset({"span", "ty", "ref", "target", "comments", "source", "path"})


def shape(value: Any) -> Any:
    """A comparable value of `value`: nested tuples of node names and field values."""
    if isinstance(value, ast.Node):
        assert is_dataclass(value)
        return (
            type(value).__name__,
            *(shape(getattr(value, f.name)) for f in fields(value) if f.name not in _IGNORED),
        )
    if isinstance(value, list):
        return tuple(shape(v) for v in value)
    return value


def same_meaning(a: ast.Module, b: ast.Module) -> bool:
    return bool(shape(a) == shape(b))
