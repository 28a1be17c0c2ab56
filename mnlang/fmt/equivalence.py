"""What a module means, for comparing two parses: the AST without positions and comments."""

from __future__ import annotations

from typing import Any

from mnlang.syntax import ast

# Positions, checker annotations and the comments and text of a module are not meaning.
_IGNORED = frozenset({"span", "ty", "ref", "target", "comments", "source", "path"})
_FIELDS: dict[type, tuple[str, ...]] = {}


def _meaningful_fields(cls: type[ast.Node]) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(n for n in ast.field_names(cls) if n not in _IGNORED)
    return names


def shape(value: Any) -> Any:
    """A comparable value of `value`: nested tuples of node names and field values."""
    if isinstance(value, ast.Node):
        cls = type(value)
        return (cls.__name__, *(shape(getattr(value, n)) for n in _meaningful_fields(cls)))
    if isinstance(value, list):
        return tuple(shape(v) for v in value)
    return value


def same_meaning(a: ast.Module, b: ast.Module) -> bool:
    return bool(shape(a) == shape(b))
