"""The type rules: which values fit where, how types join, and what arithmetic gives.

Pure functions of types, shared by the expression and flow checkers.
"""

from __future__ import annotations

from mnlang.checker import types as T
from mnlang.syntax import ast

NUMBERS = ("int", "float")
ORDERED = ("int", "float", "money", "duration", "timestamp", "str")


def assignable(src: T.Type, dst: T.Type) -> bool:
    """Whether a value of type `src` may stand where `dst` is expected."""
    if src == dst:
        return True
    k, d = src.kind, dst.kind
    if k == "unknown" or d == "unknown":
        return True
    if d == "json":
        return not T.holds_secret(src)  # json is shown and sent anywhere; a secret is not
    if d == "optional":
        return k == "null" or assignable(src.unwrap(), dst.args[0])
    if k == "int" and d == "float":
        return True
    if k == d and k in ("list", "map"):
        return assignable(src.args[0], dst.args[0])
    return False


def passes_to_code(src: T.Type, dst: T.Type) -> bool:
    """Whether an argument of type `src` may be given to a tool's or effect's parameter of
    type `dst`: as `assignable`, and a secret where text is expected (the code receives
    the secret's value, revealed at call time; nothing else does)."""
    return assignable(_revealed(src), dst) or assignable(src, dst)


def _revealed(t: T.Type) -> T.Type:
    if t.kind == "secret":
        return T.STR
    if not t.args:
        return t
    return T.Type(t.kind, t.name, tuple(_revealed(a) for a in t.args))


def join(a: T.Type, b: T.Type) -> T.Type | None:
    """The type that holds both `a` and `b` (list items, yields), or None when none does."""
    if assignable(b, a) and a.kind != "null":
        return a
    if assignable(a, b) and b.kind != "null":
        return b
    if a.kind == "null":
        return T.optional(b)
    if b.kind == "null":
        return T.optional(a)
    return None


def has_unknown(t: T.Type) -> bool:
    return t.kind == "unknown" or any(has_unknown(a) for a in t.args)


def expr_path(e: ast.Expr) -> str | None:
    """`x`, `x.a.b` for names and field chains (what narrowing can speak about), else None."""
    if isinstance(e, ast.Name):
        return e.name
    if isinstance(e, ast.Field):
        base = expr_path(e.obj)
        return f"{base}.{e.name.name}" if base is not None else None
    if isinstance(e, ast.Paren):
        return expr_path(e.inner)
    return None


def money_mix(a: T.Type, b: T.Type) -> bool:
    kinds = {a.kind, b.kind}
    return "money" in kinds and bool(kinds & {"int", "float"})


def arithmetic(op: str, a: T.Type, b: T.Type) -> T.Type | None:
    """The result of `a op b` for `+ - * / %`, or None when the operator is not defined."""
    ka, kb = a.kind, b.kind
    if ka in NUMBERS and kb in NUMBERS:
        if op == "/" or "float" in (ka, kb):
            return T.FLOAT
        return T.INT
    if ka == kb == "str" and op == "+":
        return T.STR
    if ka == kb == "list" and op == "+":
        return join(a, b)
    if ka == kb == "money":
        return T.MONEY if op in "+-" else T.FLOAT if op == "/" else None
    if ka == kb == "duration":
        return T.DURATION if op in "+-" else T.FLOAT if op == "/" else None
    if ka in ("money", "duration") and kb in NUMBERS and op in "*/":
        return a
    if kb in ("money", "duration") and ka in NUMBERS and op == "*":
        return b
    if ka == "timestamp" and kb == "duration" and op in "+-":
        return T.TIMESTAMP
    if ka == "duration" and kb == "timestamp" and op == "+":
        return T.TIMESTAMP
    if ka == kb == "timestamp" and op == "-":
        return T.DURATION
    return None
