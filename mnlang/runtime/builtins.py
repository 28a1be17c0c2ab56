"""The pure builtin functions at run time (their typing rules are in `mnlang.checker.builtins`).

`now` and `uuid` are not here: their values are external, so the evaluator asks the
interpreter for them and the interpreter journals what it answered.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from mnlang.runtime.failures import value_error
from mnlang.runtime.values import Duration, Value, to_text


def _len(x: Value) -> int:
    if isinstance(x, str | list | dict):
        return len(x)
    raise value_error(f"`len` takes a list, map or str, not {to_text(x)}")


def _join(items: Value, sep: str) -> str:
    if not isinstance(items, list):
        raise value_error("`join` takes a list of str")
    return sep.join(to_text(item) for item in items)


def _split(text: str, sep: str) -> list[str]:
    if sep == "":
        raise value_error("`split` needs a non-empty separator")
    return text.split(sep)


def _replace(text: str, old: str, new: str) -> str:
    if old == "":
        raise value_error("`replace` needs a non-empty text to replace")
    return text.replace(old, new)


def _matches(text: str, pattern: str) -> bool:
    """Whether the whole of `text` matches the regular expression `pattern`."""
    try:
        compiled = re.compile(pattern)
    except re.error as e:
        raise value_error(f"`matches`: {pattern!r} is not a regular expression: {e}") from None
    return compiled.fullmatch(text) is not None


# A `range` becomes a list held in the run's state (and journaled when a loop keeps its items).
RANGE_LIMIT = 100_000


def _range(first: int, second: int | None = None) -> list[int]:
    start, stop = (0, first) if second is None else (first, second)
    if stop - start > RANGE_LIMIT:
        raise value_error(f"`range` of {stop - start} numbers is over the limit of {RANGE_LIMIT}")
    return list(range(start, stop))


def _contains(where: Value, what: Value) -> bool:
    if isinstance(where, str):
        return isinstance(what, str) and what in where
    if isinstance(where, dict):
        return what in where
    if isinstance(where, list):
        return what in where
    raise value_error(f"`contains` takes a list, map or str, not {to_text(where)}")


def _keys(m: Value) -> list[str]:
    if not isinstance(m, dict):
        raise value_error("`keys` takes a map")
    return list(m)


def _parse_int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise value_error(f"`parse_int`: `{text}` is not an integer") from None


def _parse_float(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise value_error(f"`parse_float`: `{text}` is not a number") from None
    if not math.isfinite(value):
        raise value_error(f"`parse_float`: `{text}` is not a finite number")
    return value


def _abs(x: Value) -> Value:
    return Duration(abs(x.ms)) if isinstance(x, Duration) else abs(x)


def _extreme(pick: Callable[..., Value], name: str) -> Callable[..., Value]:
    def run(*args: Value) -> Value:
        items = args if len(args) == 2 else args[0]
        if not isinstance(items, list | tuple):
            raise value_error(f"`{name}` takes a list or two values")
        if not items:
            raise value_error(f"`{name}` of an empty list")
        return pick(items)

    return run


def _round(x: float) -> int:
    """To the nearest integer, halves away from zero (2.5 -> 3, -2.5 -> -3)."""
    if not math.isfinite(x):
        raise value_error(f"cannot round {x}")
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def _sum(items: Value) -> Value:
    if not isinstance(items, list):
        raise value_error("`sum` takes a list")
    if not items:
        return 0
    if isinstance(items[0], Duration):
        return Duration(sum(d.ms for d in items))
    if isinstance(items[0], Decimal):
        return sum(items, Decimal(0))
    return sum(items)


PURE: dict[str, Callable[..., Any]] = {
    "len": _len,
    "lower": str.lower,
    "upper": str.upper,
    "trim": str.strip,
    "join": _join,
    "split": _split,
    "startswith": str.startswith,
    "endswith": str.endswith,
    "matches": _matches,
    "replace": _replace,
    "range": _range,
    "contains": _contains,
    "keys": _keys,
    "to_str": to_text,
    "parse_int": _parse_int,
    "parse_float": _parse_float,
    "abs": _abs,
    "min": _extreme(min, "min"),
    "max": _extreme(max, "max"),
    "round": _round,
    "sum": _sum,
}

JOURNALED = frozenset({"now", "uuid"})
# Answered by the interpreter too: `run`, the run's own record (`run.id`, ...), read from its
# row, which was committed when the run was created.
EXTERNAL = JOURNALED | {"run"}
CALLBACK_TOKEN = "callback_token"
"""Not pure either: a token is derived from the run and its journal's secret
(`Pauses.callback_token`), the same in every process, so it is not journaled."""
