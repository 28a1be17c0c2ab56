"""The JSON Schema an agent's model is shown (`mnlang.ir.schema`) and the validator of its
reply (`mnlang.models.validation`) are one path from a type: the validator is built from
the schema. These tests hold them together: every reply that follows the schema is
accepted as it is (but for a `null` in a field with a default: left out), and every kind
of type has both a schema and a validation."""

from __future__ import annotations

import json
import string
from datetime import UTC
from typing import Any, get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnlang.ir.base import SpanIR, TypeIR, TypeKind
from mnlang.ir.expr import Lit
from mnlang.ir.model import EnumTypeIR, FieldIR, RecordTypeIR, TypeDeclIR
from mnlang.ir.schema import output_schema
from mnlang.models.validation import ReplyInvalid, ReplyValidator

SPAN = SpanIR(file="t.mn", line=1, col=1, end_line=1, end_col=1)
PRIMITIVES = ["str", "int", "float", "bool", "money", "duration", "timestamp", "json", "null"]
NAMES = st.text(string.ascii_lowercase, min_size=1, max_size=6)


# ---- random types, with the declarations they use ------------------------------------


@st.composite
def types(draw: st.DrawFn, decls: dict[str, TypeDeclIR], depth: int = 3) -> TypeIR:
    choices = ["primitive", "enum"] + (["list", "map", "optional", "record"] if depth else [])
    choice = draw(st.sampled_from(choices))
    if choice == "primitive":
        return TypeIR(kind=draw(st.sampled_from(PRIMITIVES)))  # type: ignore[arg-type]
    if choice in ("list", "map", "optional"):
        return TypeIR(kind=choice, args=[draw(types(decls, depth - 1))])  # type: ignore[arg-type]
    name = f"m.T{len(decls)}"
    if choice == "enum":
        members = draw(st.lists(NAMES, min_size=1, max_size=4, unique=True))
        decls[name] = EnumTypeIR(name=name, members=members, span=SPAN)
        return TypeIR(kind="enum", name=name)
    decls[name] = RecordTypeIR(name=name, fields=[], span=SPAN)  # its name, before its fields'
    fields = [
        FieldIR(
            name=field,
            type=draw(types(decls, depth - 1)),
            default=Lit(type="null") if draw(st.booleans()) else None,
        )
        for field in draw(st.lists(NAMES, max_size=4, unique=True))
    ]
    decls[name] = RecordTypeIR(name=name, fields=fields, span=SPAN)
    return TypeIR(kind="record", name=name)


# ---- replies that follow a schema, read from the schema alone ------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)


def following(schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[Any]:
    if "$ref" in schema:
        record = defs[schema["$ref"].removeprefix("#/$defs/")]
        properties = {k: following(v, defs) for k, v in record["properties"].items()}
        return st.fixed_dictionaries(
            {k: v for k, v in properties.items() if k in record["required"]},
            optional={k: v for k, v in properties.items() if k not in record["required"]},
        )
    if "anyOf" in schema:
        return st.one_of([following(option, defs) for option in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "array":
        return st.lists(following(schema["items"], defs), max_size=3)
    if kind == "object":
        return st.dictionaries(st.text(max_size=4), following(schema["additionalProperties"], defs))
    if kind == "string" and "pattern" in schema:
        return st.from_regex(schema["pattern"], fullmatch=True)
    if kind == "string" and schema.get("format") == "date-time":
        moments = st.datetimes(timezones=st.just(UTC)).map(lambda d: d.replace(microsecond=0))
        return moments.map(lambda d: d.isoformat().replace("+00:00", "Z"))
    simple: dict[Any, st.SearchStrategy[Any]] = {
        "string": st.text(max_size=8),
        "integer": st.integers(),
        # An int is taken as a float where a number is asked for (as pydantic's strict
        # float did): past 2**53 that float is another number, so "as it is" stops there.
        "number": st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False),
        "boolean": st.booleans(),
        "null": st.none(),
        None: JSON_VALUES,  # `{}`: any value
    }
    return simple[kind]


def left_out(value: Any, schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    """The reply as accepted: a `null` in a field that has a default (it is not required
    and not optional) is taken as the field left out (`mnlang.models.validation`)."""
    if "$ref" in schema and isinstance(value, dict):
        record = defs[schema["$ref"].removeprefix("#/$defs/")]
        return {
            k: left_out(v, record["properties"][k], defs)
            for k, v in value.items()
            if not (
                v is None and k not in record["required"] and "anyOf" not in record["properties"][k]
            )
        }
    if "anyOf" in schema and value is not None:
        return left_out(value, schema["anyOf"][0], defs)
    if schema.get("type") == "array":
        return [left_out(v, schema["items"], defs) for v in value]
    if schema.get("type") == "object":
        return {k: left_out(v, schema["additionalProperties"], defs) for k, v in value.items()}
    return value


@st.composite
def typed_replies(draw: st.DrawFn) -> tuple[TypeIR, dict[str, TypeDeclIR], Any, Any]:
    decls: dict[str, TypeDeclIR] = {}
    t = draw(types(decls))
    schema = output_schema(t, decls)
    defs = schema.get("$defs", {})
    reply = draw(following(schema, defs))
    return t, decls, reply, left_out(reply, schema, defs)


@settings(max_examples=150, deadline=None)
@given(typed_replies())
def test_a_reply_that_follows_the_schema_is_accepted_as_it_is(
    case: tuple[TypeIR, dict[str, TypeDeclIR], Any, Any],
) -> None:
    t, decls, reply, accepted = case
    assert ReplyValidator(t, decls).validate(json.dumps(reply)) == accepted


def test_every_kind_of_type_has_a_schema_and_a_validation() -> None:
    text = TypeIR(kind="str")
    decls: dict[str, TypeDeclIR] = {
        "m.R": RecordTypeIR(name="m.R", fields=[FieldIR(name="a", type=text)], span=SPAN),
        "m.E": EnumTypeIR(name="m.E", members=["x"], span=SPAN),
    }
    for kind in get_args(TypeKind):
        t = TypeIR(
            kind=kind,
            args=[text] if kind in ("list", "map", "optional") else [],
            name={"record": "m.R", "enum": "m.E", "decision": "ok"}.get(kind),
        )
        assert "$schema" in output_schema(t, decls)
        ReplyValidator(t, decls)  # raises when the schema has no validation


def test_what_the_schema_leaves_out_is_refused() -> None:
    decls: dict[str, TypeDeclIR] = {
        "m.R": RecordTypeIR(
            name="m.R",
            fields=[
                FieldIR(name="n", type=TypeIR(kind="int")),
                FieldIR(name="d", type=TypeIR(kind="int"), default=Lit(type="null")),
            ],
            span=SPAN,
        )
    }
    schema = output_schema(TypeIR(kind="record", name="m.R"), decls)
    assert schema["$defs"]["m.R"]["required"] == ["n"]
    assert schema["$defs"]["m.R"]["additionalProperties"] is False
    validator = ReplyValidator(TypeIR(kind="record", name="m.R"), decls)
    assert validator.validate('{"n": 1}') == {"n": 1}
    for refused in ('{"d": 1}', '{"n": 1, "x": 2}', '{"n": "1"}', "[]"):
        with pytest.raises(ReplyInvalid):
            validator.validate(refused)
