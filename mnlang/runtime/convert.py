"""Values crossing into a run: checked against their declared types and converted.

A workflow's input (JSON), a tool's result (Python values), an agent's reply (JSON) and
a ledger row's stored result all pass through `Converter.inbound`, which validates the
value against the declared `TypeIR` and builds runtime values (see `values.py`): money
from `Decimal`, `int` or a decimal string (never a float), durations from milliseconds,
a `timedelta`, text as in the language (`"2s"`, `"1h30m"`) or ISO 8601 (`"PT2S"`), timestamps from RFC 3339 text or an aware `datetime`, records from
dicts (also pydantic models and dataclasses), enum members from their names. A record
field left out takes its declared default, or null when it is optional.

`to_tool` goes the other way for a tool's arguments: records and maps as dicts, money
as `Decimal`, durations in milliseconds, timestamps as RFC 3339 text.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from mnlang.ir.base import TypeIR
from mnlang.ir.model import EnumTypeIR, RecordTypeIR, TypeDeclIR
from mnlang.runtime.evaluate import Evaluator, MapEnv
from mnlang.runtime.values import Duration, Timestamp, Value, format_timestamp, parse_timestamp
from mnlang.secrets import Secret, from_shown, is_reference
from mnlang.secrets import reveal as reveal_secret

_EMPTY_ENV = MapEnv({})


# The bounds of money that comes in (arguments, payloads, tool results): an amount under
# 10^18 with at most 12 decimal places, however written ("1e3" is $1000, "1e9999" is
# refused). A negative duration is refused where it is used (a wait, a timeout).
MONEY_INTEGER_DIGITS = 18
MONEY_PLACES = 12


class ConversionError(Exception):
    """A value that does not fit its declared type; `path` names the offending part."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"`{path}`: {message}")
        self.path = path
        self.message = message


_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_TEXT_DURATION = re.compile(r"(?:[0-9]+(?:ms|s|m|h|d))+")
_TEXT_PART = re.compile(r"([0-9]+)(ms|s|m|h|d)")
_ISO_DURATION = re.compile(
    r"P(?:(?P<w>[0-9]+)W)?(?:(?P<d>[0-9]+)D)?"
    r"(?:T(?:(?P<h>[0-9]+)H)?(?:(?P<m>[0-9]+)M)?(?:(?P<s>[0-9]+(?:[.,][0-9]{1,3})?)S)?)?"
)
_DURATION_FORMS = (
    'milliseconds (1500), text such as "2s", "1500ms" or "1h30m", or ISO 8601 such as "PT2S"'
)


def parse_duration_text(text: str) -> int:
    """Milliseconds of a duration written as text (`"30s"`, `"PT30S"`), for commands."""
    return _duration(int(text) if text.isdigit() else text, "duration").ms


def _duration(value: Any, path: str) -> Duration:
    """A duration from milliseconds, a `timedelta`, `"1h30m"` or ISO 8601 `"PT1H30M"`."""
    if isinstance(value, Duration):
        return value
    if isinstance(value, timedelta):
        return Duration(round(value.total_seconds() * 1000))
    if isinstance(value, int) and not isinstance(value, bool):
        return Duration(value)
    if isinstance(value, str):
        text = value.strip()
        if _TEXT_DURATION.fullmatch(text):
            return Duration(sum(int(n) * _UNIT_MS[u] for n, u in _TEXT_PART.findall(text)))
        iso = _ISO_DURATION.fullmatch(text.upper())
        if iso and any(iso.groups()) and not text.upper().endswith("T"):
            parts = {k: v for k, v in iso.groupdict().items() if v}
            seconds = Decimal(parts.get("s", "0").replace(",", "."))
            ms = (
                int(parts.get("w", 0)) * 7 * 86_400_000
                + int(parts.get("d", 0)) * 86_400_000
                + int(parts.get("h", 0)) * 3_600_000
                + int(parts.get("m", 0)) * 60_000
                + int(seconds * 1000)
            )
            return Duration(ms)
        date_part = text.upper().split("T")[0]
        calendar = date_part.startswith("P") and re.search(r"[0-9]+[YM]", date_part)
        hint = " (years and months have no fixed length)" if calendar else ""
        raise ConversionError(path, f"expected a duration: {_DURATION_FORMS}; got {value!r}{hint}")
    raise ConversionError(path, f"expected a duration: {_DURATION_FORMS}; got {_described(value)}")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _described(value: Any) -> str:
    if value is None:
        return "null"
    return f"{type(value).__name__} {_shown(value)}"


class Converter:
    """Checks and converts values against the types of one program."""

    def __init__(self, types: dict[str, TypeDeclIR], evaluator: Evaluator | None = None) -> None:
        self.types = types
        self.evaluator = evaluator or Evaluator()

    def inbound(self, value: Any, t: TypeIR, path: str, *, closed: bool = True) -> Value:
        """`value` as a runtime value of type `t`; `ConversionError` when it does not fit.

        `closed` refuses record fields the type does not declare (inputs, model replies);
        tools may return more fields than declared, and the extra ones are dropped.
        """
        kind = t.kind
        if kind == "str":
            if isinstance(value, str):
                return str(value)
            if isinstance(value, enum.Enum) and isinstance(value.value, str):
                return value.value
        elif kind == "bool":
            if isinstance(value, bool):
                return value
        elif kind == "int":
            if isinstance(value, int) and not isinstance(value, bool):
                return int(value)
        elif kind == "float":
            if isinstance(value, int | float) and not isinstance(value, bool):
                if math.isfinite(value):
                    return float(value)
                raise ConversionError(path, f"expected a finite float, got {value}")
        elif kind == "money":
            return self._money(value, path)
        elif kind == "duration":
            return _duration(value, path)
        elif kind == "timestamp":
            return self._timestamp(value, path)
        elif kind == "json":
            return self._json(value, path)
        elif kind == "secret":
            return _secret(value, path)
        elif kind == "optional":
            return None if value is None else self.inbound(value, t.args[0], path, closed=closed)
        elif kind == "null":
            if value is None:
                return None
        elif kind == "list":
            if isinstance(value, list | tuple):
                item = t.args[0]
                return [
                    self.inbound(v, item, f"{path}[{i}]", closed=closed)
                    for i, v in enumerate(value)
                ]
        elif kind == "map":
            mapping = _as_mapping(value)
            if mapping is not None:
                item = t.args[0]
                out: dict[str, Value] = {}
                for k, v in mapping.items():
                    if not isinstance(k, str):
                        raise ConversionError(path, f"map keys must be str, got {_described(k)}")
                    out[k] = self.inbound(v, item, f"{path}[{k!r}]", closed=closed)
                return out
        elif kind == "record":
            return self._record(value, t, path, closed)
        elif kind == "enum":
            return self._enum(value, t, path)
        elif kind in ("decision", "error", "unknown"):
            return value
        return self._mismatch(value, t, path)

    def _mismatch(self, value: Any, t: TypeIR, path: str) -> Value:
        if value is None:
            raise ConversionError(path, f"expected {t}, got null")
        raise ConversionError(path, f"expected {t}, got {_described(value)}")

    def _money(self, value: Any, path: str) -> Decimal:
        if isinstance(value, Decimal):
            amount = value
        elif isinstance(value, int) and not isinstance(value, bool):
            amount = Decimal(value)
        elif isinstance(value, str):
            try:
                amount = Decimal(value.strip().removeprefix("$"))
            except InvalidOperation:
                raise ConversionError(
                    path, f"expected money, got {_shown(value)}, which is not a decimal"
                ) from None
        elif isinstance(value, float):
            raise ConversionError(
                path,
                f"expected money, got the float {value!r}: money is exact, so pass a "
                f'`Decimal` or a decimal string such as "{value}"',
            )
        else:
            raise ConversionError(path, f"expected money, got {_described(value)}")
        if not amount.is_finite():
            raise ConversionError(path, f"expected a finite amount of money, got {value}")
        if amount and amount.adjusted() >= MONEY_INTEGER_DIGITS:
            raise ConversionError(
                path,
                f"expected money under 10^{MONEY_INTEGER_DIGITS}, got {_shown(value)[:40]}",
            )
        _, digits, exponent = amount.as_tuple()
        assert isinstance(exponent, int)  # the amount is finite
        trailing = len(digits) - len("".join(map(str, digits)).rstrip("0")) if amount else 0
        if -(exponent + trailing) > MONEY_PLACES:
            raise ConversionError(
                path,
                f"expected money with at most {MONEY_PLACES} decimal places, "
                f"got {_shown(value)[:40]}",
            )
        # "1e3" is $1000, not $1E+3; "1.50" keeps its places.
        return amount.quantize(Decimal(1)) if exponent > 0 else amount

    def _timestamp(self, value: Any, path: str) -> Timestamp:
        if isinstance(value, Timestamp):
            return value
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ConversionError(path, "expected an aware datetime (with a time zone)")
            return Timestamp(round(value.timestamp() * 1000))
        if isinstance(value, str):
            try:
                return parse_timestamp(value)
            except ValueError:
                raise ConversionError(
                    path,
                    f"expected an RFC 3339 timestamp with its offset, such as "
                    f'"2024-01-01T09:30:00Z", got {_shown(value)}',
                ) from None
        raise ConversionError(path, f"expected timestamp, got {_described(value)}")

    def _json(self, value: Any, path: str) -> Value:
        if value is None or isinstance(value, str | bool | int):
            return value
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ConversionError(path, f"JSON has no {value}")
            return value
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, Duration):
            return value.ms
        if isinstance(value, Timestamp):
            return format_timestamp(value.ms)
        if isinstance(value, list | tuple):
            return [self._json(v, f"{path}[{i}]") for i, v in enumerate(value)]
        mapping = _as_mapping(value)
        if mapping is not None:
            out: dict[str, Value] = {}
            for k, v in mapping.items():
                if not isinstance(k, str):
                    raise ConversionError(path, f"JSON object keys must be str, got {k!r}")
                out[k] = self._json(v, f"{path}[{k!r}]")
            return out
        raise ConversionError(path, f"expected JSON, got {_described(value)}")

    def _record(self, value: Any, t: TypeIR, path: str, closed: bool) -> dict[str, Value]:
        decl = self.types.get(t.name or "")
        if not isinstance(decl, RecordTypeIR):
            raise ConversionError(path, f"unknown record type `{t.name}`")
        mapping = _as_mapping(value)
        if mapping is None:
            return self._mismatch(value, t, path)  # type: ignore[no-any-return]
        out: dict[str, Value] = {}
        for f in decl.fields:
            where = f"{path}.{f.name}"
            if f.name in mapping:
                out[f.name] = self.inbound(mapping[f.name], f.type, where, closed=closed)
            elif f.default is not None:
                out[f.name] = self.evaluator.eval(f.default, _EMPTY_ENV)
            elif f.type.kind == "optional":
                out[f.name] = None
            else:
                raise ConversionError(where, f"missing field of type {f.type}")
        extra = sorted(str(k) for k in mapping if k not in out) if closed else []
        if extra:
            raise ConversionError(
                f"{path}.{extra[0]}", f"`{decl.name.rsplit('.', 1)[-1]}` has no such field"
            )
        return out

    def _enum(self, value: Any, t: TypeIR, path: str) -> str:
        decl = self.types.get(t.name or "")
        if not isinstance(decl, EnumTypeIR):
            raise ConversionError(path, f"unknown enum type `{t.name}`")
        if isinstance(value, enum.Enum):
            value = value.value if isinstance(value.value, str) else value.name
        if isinstance(value, str) and value in decl.members:
            return str(value)
        members = ", ".join(decl.members)
        raise ConversionError(path, f"expected one of {members}, got {_described(value)}")


def _as_mapping(value: Any) -> dict[Any, Any] | None:
    """A dict, or the fields of a pydantic model or a dataclass instance."""
    if isinstance(value, dict):
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        dumped = dump()
        return dumped if isinstance(dumped, dict) else None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return None


def _secret(value: Any, path: str) -> Secret:
    """A secret comes in as a reference; its value never does (it would be journaled)."""
    if isinstance(value, Secret):
        return value
    if isinstance(value, str) and is_reference(value):
        return Secret.of(value)
    if isinstance(value, dict) and isinstance(value.get("$secret"), str) and len(value) == 1:
        return from_shown(value["$secret"])  # the plain form a run's arguments are kept in
    # The value is not shown: it may be the very secret given by mistake.
    raise ConversionError(
        path,
        "expected a secret reference such as `env:API_TOKEN` or `file:api_token`; "
        "a secret's value is never given as input",
    )


def to_tool(value: Value, *, reveal: bool = True) -> Any:
    """A runtime value as a tool receives it (see the module docstring); a secret is
    revealed here, at call time, and only here (`SecretUnavailable` when it cannot be).
    `reveal=False` gives a secret's references instead (for a test's stand-in)."""
    kind = type(value)
    if kind is Secret:
        return reveal_secret(value) if reveal else value.shown()
    if kind is dict:
        return {k: to_tool(v, reveal=reveal) for k, v in value.items()}
    if kind is list:
        return [to_tool(v, reveal=reveal) for v in value]
    if kind is Duration:
        return value.ms
    if kind is Timestamp:
        return format_timestamp(value.ms)
    return value
