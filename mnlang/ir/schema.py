"""JSON Schema of a declared type: what an agent's reply must be.

The one path from a type to its schema: the schema is shown to the model (and sent as
its structured output format), and the reply validator (`mnlang.models.validation`) is
built from this same schema, so what the model is asked for and what is accepted cannot
drift apart.

Records become closed objects whose required properties are the fields
without a default that are not optional; enums become string enums. Records
are emitted under `$defs` and referenced, so recursive types terminate.
"""

from __future__ import annotations

from typing import Any

from mnlang.ir.base import TypeIR
from mnlang.ir.model import EnumTypeIR, ParamIR, RecordTypeIR, TypeDeclIR

PRIMITIVE_SCHEMAS: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "money": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"},
    "duration": {"type": "integer", "description": "milliseconds"},
    "timestamp": {"type": "string", "format": "date-time"},
    "json": {},
    "secret": {"type": "string", "pattern": "^(env|file):", "description": "a reference"},
    "unknown": {},
    "null": {"type": "null"},
}
"""The schema of each primitive kind (`decision`, `error`: any value, `{}`)."""


def output_schema(t: TypeIR, types: dict[str, TypeDeclIR]) -> dict[str, Any]:
    """A JSON Schema document for values of type `t`."""
    defs: dict[str, Any] = {}
    root = _schema(t, types, defs)
    if defs:
        root = {**root, "$defs": defs}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **root}


def input_schema(params: list[ParamIR], types: dict[str, TypeDeclIR]) -> dict[str, Any]:
    """A JSON Schema document for a workflow's input: an object of its parameters, where
    those without a default that are not optional are required."""
    defs: dict[str, Any] = {}
    properties = {p.name: _schema(p.type, types, defs) for p in params}
    required = [p.name for p in params if p.default is None and p.type.kind != "optional"]
    root: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    if defs:
        root["$defs"] = defs
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **root}


def _schema(t: TypeIR, types: dict[str, TypeDeclIR], defs: dict[str, Any]) -> dict[str, Any]:
    if t.kind in PRIMITIVE_SCHEMAS:
        return dict(PRIMITIVE_SCHEMAS[t.kind])
    if t.kind == "list":
        return {"type": "array", "items": _schema(t.args[0], types, defs)}
    if t.kind == "map":
        return {"type": "object", "additionalProperties": _schema(t.args[0], types, defs)}
    if t.kind == "optional":
        return {"anyOf": [_schema(t.args[0], types, defs), {"type": "null"}]}
    decl = types.get(t.name or "")
    if isinstance(decl, EnumTypeIR):
        return {"type": "string", "enum": list(decl.members)}
    if isinstance(decl, RecordTypeIR):
        key = decl.name
        if key not in defs:
            defs[key] = {}  # placeholder first, so a recursive reference finds it
            properties = {f.name: _schema(f.type, types, defs) for f in decl.fields}
            required = [
                f.name for f in decl.fields if f.default is None and f.type.kind != "optional"
            ]
            defs[key] = {
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": False,
            }
        return {"$ref": f"#/$defs/{key}"}
    return {}
