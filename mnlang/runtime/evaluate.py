"""Evaluating IR expressions: a tree walk over the safe expression nodes, never `eval`.

The checker has proved the types, so operators dispatch on the Python types of their
operands (docs/language.md, "Arithmetic"). Runtime errors (an index out of range, a
division by zero, a failed conversion) raise `StepFailure` of kind `value_error`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from mnlang.ir.expr import (
    Binary,
    Builtin,
    EnumValue,
    Expr,
    FieldOf,
    IndexOf,
    ListOf,
    Lit,
    ObjectOf,
    RecordOf,
    Template,
    Unary,
    Var,
)
from mnlang.runtime.builtins import CALLBACK_TOKEN, EXTERNAL, PURE
from mnlang.runtime.failures import StepFailure, value_error
from mnlang.runtime.values import Duration, Timestamp, Value, to_text
from mnlang.secrets import Secret, concat


class Env(Protocol):
    def get(self, name: str) -> Value:
        """The value of a variable; `KeyError` when it has none."""


class MapEnv:
    """An environment over one dict: a declaration's parameters bound to a call's args."""

    __slots__ = ("values",)

    def __init__(self, values: dict[str, Value]) -> None:
        self.values = values

    def get(self, name: str) -> Value:
        return self.values[name]


External = Callable[[str], Value]
"""Answers a journaled builtin (`now`, `uuid`) by name."""
Tokens = Callable[..., str]
"""Answers `callback_token(event, key)`: needs the run and its journal's secret."""


def _no_external(name: str) -> Value:
    raise value_error(f"`{name}()` is not available here")


def _no_tokens(*args: Value) -> str:
    raise value_error("`callback_token()` is available only in a run")


def literal(lit: Lit) -> Value:
    if lit.type == "money":
        return Decimal(str(lit.value))
    if lit.type == "duration":
        assert isinstance(lit.value, int)
        return Duration(lit.value)
    return lit.value


def _as_decimal(x: int | float) -> Decimal:
    return Decimal(x) if type(x) is int else Decimal(repr(x))


def _add(a: Value, b: Value) -> Value:
    ta, tb = type(a), type(b)
    if ta is Duration:
        if tb is Timestamp:
            return Timestamp(b.ms + a.ms)
        return Duration(a.ms + b.ms)
    if ta is Timestamp:
        return Timestamp(a.ms + b.ms)
    return a + b


def _sub(a: Value, b: Value) -> Value:
    ta, tb = type(a), type(b)
    if ta is Timestamp:
        return Duration(a.ms - b.ms) if tb is Timestamp else Timestamp(a.ms - b.ms)
    if ta is Duration:
        return Duration(a.ms - b.ms)
    return a - b


def _mul(a: Value, b: Value) -> Value:
    ta, tb = type(a), type(b)
    if ta is Decimal and tb is not Decimal:
        return a * _as_decimal(b)
    if tb is Decimal and ta is not Decimal:
        return _as_decimal(a) * b
    if ta is Duration:
        return Duration(round(a.ms * b))
    if tb is Duration:
        return Duration(round(a * b.ms))
    return a * b


def _div(a: Value, b: Value) -> Value:
    ta, tb = type(a), type(b)
    if tb is Duration:
        if b.ms == 0:
            raise value_error("division by a zero duration")
        return a.ms / b.ms
    if b == 0:
        raise value_error("division by zero")
    if ta is Duration:
        return Duration(round(a.ms / b))
    if ta is Decimal:
        if tb is Decimal:
            return float(a / b)
        return a / _as_decimal(b)
    result = a / b
    if not math.isfinite(result):
        raise value_error(f"{to_text(a)} / {to_text(b)} is not a finite number")
    return result


def _mod(a: Value, b: Value) -> Value:
    if b == 0:
        raise value_error("remainder of a division by zero")
    if type(a) is Decimal or type(b) is Decimal:
        da = a if type(a) is Decimal else _as_decimal(a)
        return da % (b if type(b) is Decimal else _as_decimal(b))
    return a % b


def _neg(x: Value) -> Value:
    return Duration(-x.ms) if type(x) is Duration else -x


_ARITHMETIC: dict[str, Callable[[Value, Value], Value]] = {
    "+": _add,
    "-": _sub,
    "*": _mul,
    "/": _div,
    "%": _mod,
}

_COMPARISONS: dict[str, Callable[[Value, Value], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
}


class Evaluator:
    """Evaluates expressions in an environment; `external` answers `now()` and `uuid()`."""

    __slots__ = ("_dispatch", "external", "tokens")

    def __init__(self, external: External = _no_external, tokens: Tokens = _no_tokens) -> None:
        self.external = external
        self.tokens = tokens
        self._dispatch: dict[type, Callable[[Any, Env], Value]] = {
            Lit: self._lit,
            Var: self._var,
            FieldOf: self._field,
            IndexOf: self._index,
            Builtin: self._call,
            Unary: self._unary,
            Binary: self._binary,
            Template: self._template,
            ListOf: self._list,
            RecordOf: self._record,
            ObjectOf: self._record,
            EnumValue: self._enum,
        }

    def eval(self, expr: Expr, env: Env) -> Value:
        return self._dispatch[type(expr)](expr, env)

    def text(self, template: Template, env: Env) -> str:
        """A template's text; a secret in it shows as its references, never its value (the
        checker keeps secrets out of keys and prompts, this keeps it so at run time)."""
        value = self._template(template, env)
        return value.shown() if isinstance(value, Secret) else value

    def _lit(self, e: Lit, env: Env) -> Value:
        return literal(e)

    def _enum(self, e: EnumValue, env: Env) -> Value:
        return e.member

    def _var(self, e: Var, env: Env) -> Value:
        try:
            return env.get(e.name)
        except KeyError:
            raise StepFailure("value_error", f"`{e.name}` has no value here") from None

    def _field(self, e: FieldOf, env: Env) -> Value:
        obj = self.eval(e.obj, env)
        if isinstance(obj, dict):
            try:
                return obj[e.name]
            except KeyError:
                raise value_error(f"the value has no field `{e.name}`") from None
        if obj is None:
            raise value_error(f"`.{e.name}` of null")
        raise value_error(f"`.{e.name}` of {to_text(obj)}, which has no fields")

    def _index(self, e: IndexOf, env: Env) -> Value:
        obj = self.eval(e.obj, env)
        index = self.eval(e.index, env)
        if isinstance(obj, list):
            if type(index) is not int or not 0 <= index < len(obj):
                raise value_error(f"index {to_text(index)} is out of range (length {len(obj)})")
            return obj[index]
        if isinstance(obj, dict):
            return obj.get(index) if isinstance(index, str) else None
        if obj is None:
            raise value_error("indexing null")
        raise value_error(f"{to_text(obj)} cannot be indexed")

    def _call(self, e: Builtin, env: Env) -> Value:
        if e.fn in EXTERNAL:
            return self.external(e.fn)
        args = [self.eval(a, env) for a in e.args]
        if e.fn == CALLBACK_TOKEN:
            return self.tokens(*args)
        try:
            return PURE[e.fn](*args)
        except StepFailure:
            raise
        except (TypeError, ValueError, ArithmeticError, InvalidOperation) as exc:
            raise value_error(f"`{e.fn}`: {exc}") from None

    def _unary(self, e: Unary, env: Env) -> Value:
        value = self.eval(e.operand, env)
        return (not value) if e.op == "not" else _neg(value)

    def _binary(self, e: Binary, env: Env) -> Value:
        # `a + b + ... + z` is a left-leaning tree as deep as the chain is long: walk down
        # its left spine with a loop, then apply the operators from the innermost out.
        spine = [e]
        while isinstance(spine[-1].left, Binary):
            spine.append(spine[-1].left)
        value = self.eval(spine[-1].left, env)
        for node in reversed(spine):
            value = self._apply(node, value, env)
        return value

    def _apply(self, e: Binary, left: Value, env: Env) -> Value:
        """`e` with its left operand's value given; the right one evaluated when needed."""
        op = e.op
        if op == "and":
            return bool(left) and bool(self.eval(e.right, env))
        if op == "or":
            return bool(left) or bool(self.eval(e.right, env))
        if op == "??":
            return left if left is not None else self.eval(e.right, env)
        right = self.eval(e.right, env)
        compare = _COMPARISONS.get(op)
        try:
            if compare is not None:
                return compare(left, right)
            return _ARITHMETIC[op](left, right)
        except StepFailure:
            raise
        except (TypeError, ArithmeticError, InvalidOperation) as exc:
            raise value_error(
                f"cannot compute {to_text(left)} {op} {to_text(right)}: {exc}"
            ) from None

    def _template(self, e: Template, env: Env) -> str | Secret:
        pieces: list[str | Secret] = []
        for p in e.parts:
            value = p if isinstance(p, str) else self.eval(p, env)
            pieces.append(value if isinstance(value, Secret) else to_text(value))
        return concat(pieces)

    def _list(self, e: ListOf, env: Env) -> list[Value]:
        return [self.eval(item, env) for item in e.items]

    def _record(self, e: RecordOf | ObjectOf, env: Env) -> dict[str, Value]:
        return {name: self.eval(value, env) for name, value in e.fields.items()}
