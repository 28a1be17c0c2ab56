"""Runtime values and their three outside forms: text, plain JSON and stored state.

Inside the interpreter a value is a Python object: `None`, `bool`, `int`, `float`, `str`
(also an enum member), `Decimal` (money), `Duration`, `Timestamp`, `list` (a list) and
`dict` (a record, a map, a decision, a caught error or a `json` object), and `Secret`
(a `secret`: references such as `env:TOKEN` around literal text, never its value).

- `to_text` is how interpolation and `to_str` show a value (docs/ir.md, "Expressions").
- `to_plain` is the JSON of docs/ir.md (money a decimal string, durations milliseconds,
  timestamps RFC 3339, a secret `{"$secret": "Bearer {env:TOKEN}"}`): what the journal's
  evidence and run results hold; tools see `convert.to_tool`'s form (a secret revealed).
- `to_stored` / `from_stored` keep a value in the run's state so that it comes back
  with the same Python types without knowing its declared type: money, durations and
  timestamps are tagged there. A value without any of them is stored as is, so loading
  it costs one type check. `stored_same` / `same_as` keep a variable that holds the very
  value of another variable of its scope as that variable's name (a loop's own list of
  what it iterates, a large list of the run's arguments, is then stored and decoded once).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from mnlang.secrets import Secret
from mnlang.stores.base import Json

Value = Any
"""A runtime value (see the module docstring)."""


@dataclass(frozen=True, slots=True, order=True)
class Duration:
    """A span of time, exact to the millisecond."""

    ms: int

    def __str__(self) -> str:
        return str(self.ms)


@dataclass(frozen=True, slots=True, order=True)
class Timestamp:
    """A point in time: milliseconds since the Unix epoch, UTC."""

    ms: int

    def __str__(self) -> str:
        return format_timestamp(self.ms)


def format_timestamp(ms: int) -> str:
    """RFC 3339 in UTC with milliseconds: `2024-05-02T09:30:00.000Z`."""
    at = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_timestamp(text: str) -> Timestamp:
    """An RFC 3339 time: a date, a time and an offset (`Z` or `+02:00`). A time without
    an offset, or a date alone, is a `ValueError`: which day it is depends on the zone."""
    at = datetime.fromisoformat(text.strip().replace("z", "Z").replace("Z", "+00:00"))
    if at.tzinfo is None:
        raise ValueError(f"`{text}` has no time zone offset")
    return Timestamp(round(at.timestamp() * 1000))


def money_text(amount: Decimal) -> str:
    return f"-${-amount}" if amount < 0 else f"${amount}"


def to_text(value: Value) -> str:
    """A value as interpolation shows it."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return money_text(value)
    if isinstance(value, int | float | Duration | Timestamp):
        return str(value)
    if isinstance(value, Secret):
        return value.shown()
    return json.dumps(to_plain(value), ensure_ascii=False)


def to_plain(value: Value) -> Json:
    """A value as the JSON of docs/ir.md."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is dict:
        return {k: to_plain(v) for k, v in value.items()}
    if kind is list:
        return [to_plain(v) for v in value]
    if kind is Decimal:
        return str(value)
    if kind is Duration:
        return value.ms
    if kind is Timestamp:
        return format_timestamp(value.ms)
    if kind is Secret:
        return {"$secret": value.shown()}
    if isinstance(value, str):  # a str subclass, such as a tool's own enum type
        return str(value)
    raise TypeError(f"not a runtime value: {value!r}")


# --- stored form --------------------------------------------------------------------------

_WRAP: Final = "$v"
_MONEY: Final = "$m"
_DURATION: Final = "$d"
_TIMESTAMP: Final = "$t"
_SECRET: Final = "$k"
_SCALAR_TAGS: Final = frozenset({_MONEY, _DURATION, _TIMESTAMP, _SECRET})
_SAME: Final = "$same"


class _Tagger:
    """One pass over a value: the tagged copy, and whether anything needed a tag."""

    __slots__ = ("tagged",)

    def __init__(self) -> None:
        self.tagged = False

    def walk(self, value: Value) -> Json:
        kind = type(value)
        if kind is str or kind is int or kind is bool or kind is float or value is None:
            return value
        if kind is dict:
            out: dict[str, Json] = {}
            for k, v in value.items():
                if k.startswith("$"):
                    self.tagged = True
                    k = "$" + k
                out[k] = self.walk(v)
            return out
        if kind is list:
            return [self.walk(v) for v in value]
        self.tagged = True
        if kind is Decimal:
            return {_MONEY: str(value)}
        if kind is Duration:
            return {_DURATION: value.ms}
        if kind is Timestamp:
            return {_TIMESTAMP: value.ms}
        if kind is Secret:
            return {_SECRET: list(value.parts)}
        return self.walk(to_plain(value))


def to_stored(value: Value) -> Json:
    """A value as kept in the run's state (see the module docstring)."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or kind is float or value is None:
        return value
    tagger = _Tagger()
    walked = tagger.walk(value)
    return {_WRAP: walked} if tagger.tagged else walked


def from_stored(stored: Json) -> Value:
    """The runtime value `to_stored` kept."""
    if type(stored) is dict and len(stored) == 1 and _WRAP in stored:
        return _untag(stored[_WRAP])
    return stored


def stored_same(source: str) -> Json:
    """The stored form of "the value of variable `source`". `to_stored` never gives it: a
    dict with a key that starts with `$` is escaped and wrapped."""
    return {_SAME: source}


def same_as(stored: Json) -> str | None:
    """The variable whose value `stored` stands for, if it is `stored_same`'s form."""
    if type(stored) is dict and len(stored) == 1 and _SAME in stored:
        source = stored[_SAME]
        return source if isinstance(source, str) else None
    return None


def list_from_stored(items: list[Json]) -> list[Value]:
    """A list variable's items as `from_stored` gives them; only a dict can carry a tag,
    so a list without dicts (a long collected list of numbers or text) is kept as is."""
    if dict not in map(type, items):
        return items
    return [from_stored(item) for item in items]


def _untag(value: Json) -> Value:
    kind = type(value)
    if kind is list:
        return [_untag(v) for v in value]
    if kind is not dict:
        return value
    if len(value) == 1:
        (tag, inner), *_ = value.items()
        if tag in _SCALAR_TAGS:
            if tag == _MONEY:
                return Decimal(inner)
            if tag == _SECRET:
                return Secret(tuple(inner))
            return Duration(inner) if tag == _DURATION else Timestamp(inner)
    return {(k[1:] if k.startswith("$") else k): _untag(v) for k, v in value.items()}
