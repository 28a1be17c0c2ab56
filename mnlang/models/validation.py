"""Validating a model's reply against the agent's declared return type, with pydantic.

`ReplyValidator` reads the type's JSON Schema (`mnlang.ir.schema`, the one the model is
shown; no second path from a type to what a reply may be) and builds one pydantic model
per record type (closed: an unknown field is
an error) and a type adapter for the return type, in strict mode, so `"3"` is not an
`int`. `validate` parses the reply text as JSON (a reply wrapped in a Markdown code fence
is unwrapped; a `str` agent may also answer in plain text) and returns plain JSON data
in which fields left out stay left out, for the runtime's converter to fill in their
declared defaults. A reply that does not fit raises `ReplyInvalid` whose message lists
what is wrong, path by path: the runtime feeds it back into the next attempt's prompt.

A field with a default that arrives as `null` is taken as left out: a strict structured
output schema must list every field, so a model marks the ones it skips with `null`.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Strict, TypeAdapter, ValidationError
from pydantic import create_model as pydantic_model

from mnlang.ir.base import TypeIR
from mnlang.ir.model import RecordTypeIR, TypeDeclIR
from mnlang.ir.schema import PRIMITIVE_SCHEMAS, output_schema
from mnlang.secrets import is_reference

_MAX_LISTED = 8
_NO_VALIDATOR = object()
_FENCE = re.compile(r"^\s*```[A-Za-z]*\s*\n(.*?)\n?```\s*$", re.S)


class ReplyInvalid(Exception):
    """A reply that is not a value of the declared type; the message says why, for people
    and for the model."""


def _money(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            if Decimal(value.strip().removeprefix("$")).is_finite():
                return value
        except InvalidOperation:
            pass
    raise ValueError('money must be a decimal string such as "12.50"')


def _timestamp(value: str) -> str:
    try:
        datetime.fromisoformat(value.strip().replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("expected an RFC 3339 timestamp such as 2025-01-31T09:30:00Z") from None
    return value


def _secret_reference(text: str) -> str:
    """A secret arrives as a reference (the checker keeps secrets out of replies anyway)."""
    if not is_reference(text):
        raise ValueError("expected a secret reference such as `env:NAME`")
    return text


_PRIMITIVES: dict[str, Any] = {
    "str": Annotated[str, Strict()],
    "int": Annotated[int, Strict()],
    "float": Annotated[float, Strict()],
    "bool": Annotated[bool, Strict()],
    "money": Annotated[Any, AfterValidator(_money)],
    "duration": Annotated[int, Strict()],
    "timestamp": Annotated[str, Strict(), AfterValidator(_timestamp)],
    "json": Any,
    "secret": Annotated[str, Strict(), AfterValidator(_secret_reference)],
    "unknown": Any,
    "decision": Any,
    "error": Any,
    "null": None,
}


def _schema_key(schema: dict[str, Any]) -> str:
    return json.dumps(schema, sort_keys=True)


_BY_SCHEMA: dict[str, Any] = {
    _schema_key(schema): _PRIMITIVES[kind] for kind, schema in PRIMITIVE_SCHEMAS.items()
}
"""A primitive's schema -> its validating annotation (`json` and `unknown` share `{}`)."""


class ReplyValidator:
    """Validates replies of one declared type (built once per agent) against its JSON
    Schema (`mnlang.ir.schema`): the one the model is shown."""

    def __init__(self, returns: TypeIR, types: dict[str, TypeDeclIR]) -> None:
        self.returns = returns
        self.types = types
        schema = output_schema(returns, types)
        self._defs: dict[str, dict[str, Any]] = schema.pop("$defs", {})
        del schema["$schema"]
        self._models: dict[str, type[BaseModel]] = {}
        self._building: set[str] = set()
        annotation = self._annotation(schema)
        namespace = {model.__name__: model for model in self._models.values()}
        for model in self._models.values():
            model.model_rebuild(_types_namespace=namespace)
        self._adapter: TypeAdapter[Any] = TypeAdapter(annotation)

    def _model_name(self, record: str) -> str:
        return "R_" + re.sub(r"\W", "_", record)

    def _annotation(self, schema: dict[str, Any]) -> Any:
        if "$ref" in schema:
            return self._record(schema["$ref"].removeprefix("#/$defs/"))
        if "anyOf" in schema:  # an optional type: the type, or null
            inner, _ = schema["anyOf"]
            return Optional[self._annotation(inner)]  # noqa: UP045 (may be a forward reference)
        if "enum" in schema:
            return Literal[tuple(schema["enum"])]
        if schema.get("type") == "array":
            return list[self._annotation(schema["items"])]  # type: ignore[misc]
        if schema.get("type") == "object":  # a map (records are all `$ref`s)
            return dict[str, self._annotation(schema["additionalProperties"])]  # type: ignore[misc]
        found = _BY_SCHEMA.get(_schema_key(schema), _NO_VALIDATOR)
        if found is _NO_VALIDATOR:
            raise ValueError(f"no reply validation for the JSON Schema {schema}")
        return found

    def _record(self, record: str) -> Any:
        name = self._model_name(record)
        if record in self._models:
            return self._models[record]
        if record in self._building:
            return name  # a recursive reference, resolved by `model_rebuild`
        self._building.add(record)
        decl = self._defs[record]
        fields: dict[str, Any] = {}
        for field_name, field_schema in decl["properties"].items():
            annotation = self._annotation(field_schema)
            required = field_name in decl["required"]
            fields[field_name] = (annotation, ...) if required else (Optional[annotation], None)  # noqa: UP045
        self._building.discard(record)
        model = pydantic_model(
            name,
            __config__=ConfigDict(extra="forbid", strict=True),
            **fields,
        )
        self._models[record] = model
        return model

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
        try:
            value = self._adapter.validate_python(data)
        except ValidationError as e:
            raise ReplyInvalid(describe(e)) from None
        return self._adapter.dump_python(value, exclude_unset=True)

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


def describe(error: ValidationError) -> str:
    """A validation error as lines of `path: problem`, at most `_MAX_LISTED` of them."""
    problems = error.errors()
    lines = []
    for problem in problems[:_MAX_LISTED]:
        path = _path(problem["loc"])
        message = str(problem["msg"])
        if message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        if problem["type"] == "missing":
            message = "missing (this field is required)"
        elif problem["type"] == "extra_forbidden":
            message = "not a field of this type"
        lines.append(f"`{path}`: {message[0].lower()}{message[1:]}" if path else message)
    more = len(problems) - _MAX_LISTED
    if more > 0:
        lines.append(f"and {more} more problem{'s' if more > 1 else ''}")
    return "; ".join(lines)


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-after", "literal[")):
            continue  # pydantic's names for validators, not places in the value
        else:
            out += f".{part}" if out else str(part)
    return out
