"""Types for the IR: from source type references and from the checker's annotations."""

from __future__ import annotations

from typing import cast

from mnlang.checker.program import ModuleInfo
from mnlang.checker.types import PRIMITIVES, Type
from mnlang.ir.base import TypeIR, TypeKind
from mnlang.syntax import ast

UNKNOWN = TypeIR(kind="unknown")
NULL = TypeIR(kind="null")
ERROR = TypeIR(kind="error")
STR = TypeIR(kind="str")


def _kind(name: str) -> TypeKind:
    """A kind name known to be valid (a primitive or a structural kind)."""
    return cast(TypeKind, name)


def optional(t: TypeIR) -> TypeIR:
    if t.kind in ("optional", "null", "unknown"):
        return t
    return TypeIR(kind="optional", args=[t])


def list_of(t: TypeIR) -> TypeIR:
    return TypeIR(kind="list", args=[t])


def type_from_ref(ref: ast.TypeRef, module: ModuleInfo) -> TypeIR:
    """The IR type named by a source type reference."""
    if ref.name in ("list", "map") and ref.args:
        base = TypeIR(kind=_kind(ref.name), args=[type_from_ref(ref.args[0], module)])
    elif ref.name in PRIMITIVES:
        base = TypeIR(kind=_kind(ref.name))
    else:
        symbol = module.scope.get(ref.name)
        if symbol is not None and symbol.kind in ("type", "enum"):
            base = TypeIR(kind="record" if symbol.kind == "type" else "enum", name=symbol.name)
        else:
            base = UNKNOWN
    return optional(base) if ref.optional else base


def type_from_checker(t: Type) -> TypeIR:
    """The IR form of a type the checker computed."""
    if t.kind in ("list", "map", "optional"):
        return TypeIR(kind=_kind(t.kind), args=[type_from_checker(a) for a in t.args])
    if t.kind in ("record", "enum", "decision"):
        return TypeIR(kind=_kind(t.kind), name=t.name)
    if t.kind in (*PRIMITIVES, "error", "null", "unknown"):
        return TypeIR(kind=_kind(t.kind))
    return UNKNOWN


def element_type(t: TypeIR) -> TypeIR:
    """The item type of a list (what a `for` variable holds)."""
    return t.args[0] if t.kind == "list" and t.args else UNKNOWN


def expr_type(expr: ast.Expr) -> TypeIR:
    """The type the checker's type pass gave an expression (`unknown` if it gave none)."""
    return type_from_checker(expr.ty) if isinstance(expr.ty, Type) else UNKNOWN
