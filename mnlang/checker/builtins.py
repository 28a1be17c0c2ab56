"""The pure builtin functions: one table of names, arities and typing rules.

A rule receives the argument types (optionals already reported and unwrapped
by the caller unless the builtin accepts them) and returns the result type, or
a `Misuse` naming the argument that does not fit. `unknown` arguments (after
an earlier error) fit every rule so that one mistake is reported once.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from mnlang.checker.types import (
    BOOL,
    FLOAT,
    INT,
    STR,
    TIMESTAMP,
    UNKNOWN,
    Type,
    list_of,
)


class Misuse(msgspec.Struct, frozen=True):
    """Argument `index` does not fit: `expected` says what would."""

    index: int
    expected: str
    code: str = "E201"


Rule = Callable[[list[Type]], Type | Misuse]


class Builtin(msgspec.Struct, frozen=True):
    name: str
    signature: str  # as shown in messages: `len(list | map | str) -> int`
    min_args: int
    max_args: int
    rule: Rule
    accepts_optional: bool = False  # `to_str(x)` prints `null`; others need a narrowed value
    journaled: bool = False  # its result is recorded so that a resumed run sees the same value


def _fits(t: Type, *kinds: str) -> bool:
    return t.kind in kinds or t.kind == "unknown"


def _item(t: Type) -> Type:
    return t.args[0] if t.kind in ("list", "map") else UNKNOWN


def _text_rule(result: Type, count: int) -> Rule:
    def rule(args: list[Type]) -> Type | Misuse:
        for i in range(count):
            if not _fits(args[i], "str"):
                return Misuse(i, "`str`")
        return result

    return rule


def _range(args: list[Type]) -> Type | Misuse:
    for i, t in enumerate(args):
        if not _fits(t, "int"):
            return Misuse(i, "`int`")
    return list_of(INT)


def _len(args: list[Type]) -> Type | Misuse:
    return INT if _fits(args[0], "list", "map", "str", "json") else Misuse(0, "a list, map or str")


def _join(args: list[Type]) -> Type | Misuse:
    items, sep = args
    if not (_fits(items, "json") or (items.kind == "list" and _fits(_item(items), "str"))):
        return Misuse(0, "`list[str]`")
    return STR if _fits(sep, "str") else Misuse(1, "`str`")


def _contains(args: list[Type]) -> Type | Misuse:
    where, what = args
    if where.kind == "unknown" or where.kind == "json":
        return BOOL
    if where.kind == "str":
        return BOOL if _fits(what, "str") else Misuse(1, "`str`")
    if where.kind == "map":
        return BOOL if _fits(what, "str") else Misuse(1, "`str` (a key)")
    if where.kind == "list":
        item = _item(where)
        if (
            what.kind == "unknown"
            or item.kind == "unknown"
            or what == item
            or what == item.unwrap()
        ):
            return BOOL
        if {what.kind, item.kind} <= {"int", "float"}:
            return BOOL
        return Misuse(1, f"`{item}`")
    return Misuse(0, "a list, map or str")


def _keys(args: list[Type]) -> Type | Misuse:
    return list_of(STR) if _fits(args[0], "map", "json") else Misuse(0, "a map")


def _any_to_str(args: list[Type]) -> Type | Misuse:
    return STR


def _abs(args: list[Type]) -> Type | Misuse:
    t = args[0]
    return t if _fits(t, "int", "float", "money", "duration") else Misuse(0, "a number")


_ORDERED = ("int", "float", "money", "duration", "timestamp", "str")


def _ordered_pair(a: Type, b: Type) -> Type | Misuse:
    if a.kind == "unknown":
        return b
    if b.kind == "unknown":
        return a
    if a.kind not in _ORDERED:
        return Misuse(0, "numbers, money, durations, timestamps or strings")
    if {a.kind, b.kind} <= {"int", "float"}:
        return FLOAT if "float" in (a.kind, b.kind) else INT
    if a.kind == b.kind:
        return a
    if "money" in (a.kind, b.kind) and {a.kind, b.kind} & {"int", "float"}:
        return Misuse(1, f"`{a}`", "E209")
    return Misuse(1, f"`{a}`")


def _extreme(args: list[Type]) -> Type | Misuse:
    if len(args) == 2:
        return _ordered_pair(args[0], args[1])
    items = args[0]
    if items.kind == "unknown":
        return UNKNOWN
    if items.kind != "list":
        return Misuse(0, "a list, or two values")
    item = _item(items)
    return item if _fits(item, *_ORDERED) else Misuse(0, "a list of ordered values")


def _round(args: list[Type]) -> Type | Misuse:
    return INT if _fits(args[0], "int", "float") else Misuse(0, "`float`")


def _sum(args: list[Type]) -> Type | Misuse:
    items = args[0]
    if items.kind == "unknown":
        return UNKNOWN
    item = _item(items)
    if items.kind == "list" and _fits(item, "int", "float", "money", "duration"):
        return item
    return Misuse(0, "a list of numbers, money or durations")


def _now(args: list[Type]) -> Type | Misuse:
    return TIMESTAMP


def _uuid(args: list[Type]) -> Type | Misuse:
    return STR


def _callback_token(args: list[Type]) -> Type | Misuse:
    # The event (argument 0) is checked by the caller: it is a name, not a value.
    if len(args) == 2 and not _fits(args[1], "str", "int"):
        return Misuse(1, "a `str` or `int` correlation key", code="E512")
    return STR


CALLBACK_TOKEN = "callback_token"
"""`callback_token(event, key)`: the token that signals the run's `wait event for key`."""

_TABLE = (
    Builtin("len", "len(list | map | str) -> int", 1, 1, _len),
    Builtin("lower", "lower(str) -> str", 1, 1, _text_rule(STR, 1)),
    Builtin("upper", "upper(str) -> str", 1, 1, _text_rule(STR, 1)),
    Builtin("trim", "trim(str) -> str", 1, 1, _text_rule(STR, 1)),
    Builtin("join", "join(list[str], str) -> str", 2, 2, _join),
    Builtin("split", "split(str, str) -> list[str]", 2, 2, _text_rule(list_of(STR), 2)),
    Builtin("startswith", "startswith(str, str) -> bool", 2, 2, _text_rule(BOOL, 2)),
    Builtin("endswith", "endswith(str, str) -> bool", 2, 2, _text_rule(BOOL, 2)),
    Builtin("matches", "matches(str, str) -> bool", 2, 2, _text_rule(BOOL, 2)),
    Builtin("replace", "replace(str, str, str) -> str", 3, 3, _text_rule(STR, 3)),
    Builtin("range", "range(int) or range(int, int) -> list[int]", 1, 2, _range),
    Builtin("contains", "contains(list[T] | map[T] | str, T | str) -> bool", 2, 2, _contains),
    Builtin("keys", "keys(map[T]) -> list[str]", 1, 1, _keys),
    Builtin("now", "now() -> timestamp", 0, 0, _now, journaled=True),
    Builtin("uuid", "uuid() -> str", 0, 0, _uuid, journaled=True),
    Builtin(CALLBACK_TOKEN, "callback_token(event, str | int) -> str", 1, 2, _callback_token),
    Builtin("to_str", "to_str(any) -> str", 1, 1, _any_to_str, accepts_optional=True),
    Builtin("parse_int", "parse_int(str) -> int", 1, 1, _text_rule(INT, 1)),
    Builtin("parse_float", "parse_float(str) -> float", 1, 1, _text_rule(FLOAT, 1)),
    Builtin("abs", "abs(number) -> number", 1, 1, _abs),
    Builtin("min", "min(a, b) or min(list[T]) -> T", 1, 2, _extreme),
    Builtin("max", "max(a, b) or max(list[T]) -> T", 1, 2, _extreme),
    Builtin("round", "round(float) -> int", 1, 1, _round),
    Builtin("sum", "sum(list[int | float | money | duration])", 1, 1, _sum),
)

BUILTINS: dict[str, Builtin] = {b.name: b for b in _TABLE}
