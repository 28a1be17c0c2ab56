"""Validating a model's reply against the agent's declared return type.

`ReplyValidator` reads the type's JSON Schema (`mnlang.ir.schema`, the one the model is
shown; no second path from a type to what a reply may be) and builds one check per part
of it: records are closed (an unknown field is an error) and nothing is coerced, so `"3"`
is not an `int` (an `int` is taken as a `float`, as JSON has one kind of number).
`validate` parses the reply text as JSON (a reply wrapped in a Markdown code fence is
unwrapped; a `str` agent may also answer in plain text) and returns plain JSON data in
which fields left out stay left out, for the runtime's converter to fill in their
declared defaults. A reply that does not fit raises `ReplyInvalid` whose message lists
what is wrong, path by path (`` `category`: input should be 'damaged' or 'late' ``):
the runtime feeds it back into the next attempt's prompt.

The checks are written here over the small schema language `mnlang.ir.schema` emits,
with pydantic's wording (which they replaced: pydantic's import and the model classes
it built per record were most of what an agent added to `mnc run`'s start).

A field with a default that arrives as `null` is taken as left out: a strict structured
output schema must list every field, so a model marks the ones it skips with `null`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from mnlang.ir.base import TypeIR
from mnlang.ir.model import RecordTypeIR, TypeDeclIR
from mnlang.ir.schema import PRIMITIVE_SCHEMAS, output_schema
from mnlang.secrets import is_reference

_MAX_LISTED = 8
_FENCE = re.compile(r"^\s*```[A-Za-z]*\s*\n(.*?)\n?```\s*$", re.S)

Path = tuple[int | str, ...]
Problems = list[tuple[Path, str]]
Check = Callable[[Any, Path, Problems], Any]
"""Checks a value at a path: returns it (an `int` as a `float` where a number is asked
for) or appends what is wrong to the problems."""


class ReplyInvalid(Exception):
    """A reply that is not a value of the declared type; the message says why, for people
    and for the model."""


def _money(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            if Decimal(value.strip().removeprefix("$")).is_finite():
                return None
        except InvalidOperation:
            pass
    return 'money must be a decimal string such as "12.50"'


def _timestamp(value: Any) -> str | None:
    if not isinstance(value, str):
        return "Input should be a valid string"
    try:
        datetime.fromisoformat(value.strip().replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return "expected an RFC 3339 timestamp such as 2025-01-31T09:30:00Z"
    return None


def _secret_reference(value: Any) -> str | None:
    """A secret arrives as a reference (the checker keeps secrets out of replies anyway)."""
    if not isinstance(value, str):
        return "Input should be a valid string"
    if not is_reference(value):
        return "expected a secret reference such as `env:NAME`"
    return None


def _of_type(kind: type, words: str) -> Callable[[Any], str | None]:
    def problem(value: Any) -> str | None:
        if isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool):
            return None
        return f"Input should be {words}"

    return problem


def _number(value: Any) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return None
    return "Input should be a valid number"


def _anything(value: Any) -> str | None:
    return None


def _null(value: Any) -> str | None:
    return None if value is None else "Input should be None"


_PRIMITIVES: dict[str, Callable[[Any], str | None]] = {
    "str": _of_type(str, "a valid string"),
    "int": _of_type(int, "a valid integer"),
    "float": _number,
    "bool": _of_type(bool, "a valid boolean"),
    "money": _money,
    "duration": _of_type(int, "a valid integer"),
    "timestamp": _timestamp,
    "json": _anything,
    "secret": _secret_reference,
    "unknown": _anything,
    "decision": _anything,
    "error": _anything,
    "null": _null,
}


def _schema_key(schema: dict[str, Any]) -> str:
    return json.dumps(schema, sort_keys=True)


_BY_SCHEMA: dict[str, Callable[[Any], str | None]] = {
    _schema_key(schema): _PRIMITIVES[kind] for kind, schema in PRIMITIVE_SCHEMAS.items()
}
"""A primitive's schema -> its check (`json` and `unknown` share `{}`)."""


def _primitive(problem_of: Callable[[Any], str | None]) -> Check:
    as_float = problem_of is _number

    def check(value: Any, path: Path, problems: Problems) -> Any:
        problem = problem_of(value)
        if problem is not None:
            problems.append((path, problem))
        return float(value) if as_float and isinstance(value, int) else value

    return check


def _one_of(members: tuple[Any, ...]) -> Check:
    shown = [repr(m) for m in members]
    words = shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"

    def check(value: Any, path: Path, problems: Problems) -> Any:
        if not isinstance(value, str) or value not in members:
            problems.append((path, f"Input should be {words}"))
        return value

    return check


def _optional(inner: Check) -> Check:
    def check(value: Any, path: Path, problems: Problems) -> Any:
        return None if value is None else inner(value, path, problems)

    return check


def _list_of(item: Check) -> Check:
    def check(value: Any, path: Path, problems: Problems) -> Any:
        if not isinstance(value, list):
            problems.append((path, "Input should be a valid list"))
            return value
        return [item(v, (*path, i), problems) for i, v in enumerate(value)]

    return check


def _map_of(item: Check) -> Check:
    def check(value: Any, path: Path, problems: Problems) -> Any:
        if not isinstance(value, dict):
            problems.append((path, "Input should be a valid dictionary"))
            return value
        return {k: item(v, (*path, k), problems) for k, v in value.items()}

    return check


class ReplyValidator:
    """Validates replies of one declared type (built once per agent) against its JSON
    Schema (`mnlang.ir.schema`): the one the model is shown."""

    def __init__(self, returns: TypeIR, types: dict[str, TypeDeclIR]) -> None:
        self.returns = returns
        self.types = types
        schema = output_schema(returns, types)
        self._defs: dict[str, dict[str, Any]] = schema.pop("$defs", {})
        del schema["$schema"]
        self._records: dict[str, Check] = {}
        self._check = self._checker(schema)

    def _checker(self, schema: dict[str, Any]) -> Check:
        if "$ref" in schema:
            return self._record(schema["$ref"].removeprefix("#/$defs/"))
        if "anyOf" in schema:  # an optional type: the type, or null
            inner, _ = schema["anyOf"]
            return _optional(self._checker(inner))
        if "enum" in schema:
            return _one_of(tuple(schema["enum"]))
        if schema.get("type") == "array":
            return _list_of(self._checker(schema["items"]))
        if schema.get("type") == "object":  # a map (records are all `$ref`s)
            return _map_of(self._checker(schema["additionalProperties"]))
        found = _BY_SCHEMA.get(_schema_key(schema))
        if found is None:
            raise ValueError(f"no reply validation for the JSON Schema {schema}")
        return _primitive(found)

    def _record(self, record: str) -> Check:
        if record in self._records:
            return self._records[record]
        fields: dict[str, Check] = {}
        self._records[record] = lambda value, path, problems: check(value, path, problems)
        decl = self._defs[record]
        required = [name for name in decl["properties"] if name in decl["required"]]
        for name, field_schema in decl["properties"].items():
            inner = self._checker(field_schema)
            fields[name] = inner if name in required else _optional(inner)

        def check(value: Any, path: Path, problems: Problems) -> Any:
            if not isinstance(value, dict):
                problems.append((path, "Input should be a valid dictionary"))
                return value
            out: dict[str, Any] = {}
            for name, field_check in fields.items():
                if name in value:
                    out[name] = field_check(value[name], (*path, name), problems)
                elif name in required:
                    problems.append(((*path, name), "missing (this field is required)"))
            problems.extend(
                ((*path, k), "not a field of this type") for k in value if k not in fields
            )
            return out

        self._records[record] = check
        return check

    # --- validating -------------------------------------------------------------------

    def parse(self, text: str) -> Any:
        """The reply's JSON value; `ReplyInvalid` when it is not JSON (a `str` agent's plain
        text is its value)."""
        fenced = _FENCE.match(text)
        body = fenced.group(1) if fenced else text
        try:
            return json.loads(body)
        except ValueError as e:
            if self.returns.kind == "str":
                return text
            raise ReplyInvalid(
                f"the reply is not JSON ({e}); it must be only a JSON value"
            ) from None

    def validate(self, text: str) -> Any:
        """The reply as plain JSON data of the declared type, or `ReplyInvalid`."""
        return self.validate_data(self.parse(text))

    def validate_data(self, data: Any) -> Any:
        data = self._without_null_defaults(data, self.returns)
        problems: Problems = []
        value = self._check(data, (), problems)
        if problems:
            raise ReplyInvalid(describe(problems))
        return value

    def _without_null_defaults(self, data: Any, t: TypeIR) -> Any:
        if t.kind == "optional":
            return None if data is None else self._without_null_defaults(data, t.args[0])
        if t.kind == "list" and isinstance(data, list):
            return [self._without_null_defaults(v, t.args[0]) for v in data]
        if t.kind == "map" and isinstance(data, dict):
            return {k: self._without_null_defaults(v, t.args[0]) for k, v in data.items()}
        decl = self.types.get(t.name or "") if t.kind == "record" else None
        if not isinstance(decl, RecordTypeIR) or not isinstance(data, dict):
            return data
        fields = {f.name: f for f in decl.fields}
        out: dict[str, Any] = {}
        for key, value in data.items():
            f = fields.get(key)
            if f is None:
                out[key] = value
            elif value is None and f.default is not None and f.type.kind != "optional":
                continue
            else:
                out[key] = self._without_null_defaults(value, f.type)
        return out


def describe(problems: Problems) -> str:
    """Problems as `path: problem`, at most `_MAX_LISTED` of them."""
    lines = []
    for path, message in problems[:_MAX_LISTED]:
        where = _path(path)
        lines.append(f"`{where}`: {message[0].lower()}{message[1:]}" if where else message)
    more = len(problems) - _MAX_LISTED
    if more > 0:
        lines.append(f"and {more} more problem{'s' if more > 1 else ''}")
    return "; ".join(lines)


def _path(loc: Path) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
