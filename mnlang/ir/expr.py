"""Expressions in the IR: a small tree the runtime evaluates directly, never with `eval`.

Every node has a `node` tag. Values in JSON: money is a decimal string
(`"0.50"`), durations are integer milliseconds, timestamps are RFC 3339
strings, enum values are their member name, records and maps are objects.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from mnlang.ir.base import IRModel

LitType = Literal["int", "float", "money", "duration", "str", "bool", "null"]
UnaryOpName = Literal["not", "-"]
BinaryOpName = Literal["+", "-", "*", "/", "%", "==", "!=", "<", ">", "<=", ">=", "and", "or", "??"]


class Lit(IRModel):
    """A constant. `value` is JSON: money a decimal string, a duration its milliseconds."""

    node: Literal["lit"] = "lit"
    type: LitType
    value: int | float | str | bool | None = None


class Var(IRModel):
    """A variable, a workflow parameter, a loop variable or a caught error."""

    node: Literal["var"] = "var"
    name: str


class FieldOf(IRModel):
    """`obj.name`: a record field, or a property of a decision or an error."""

    node: Literal["field"] = "field"
    obj: Expr
    name: str


class IndexOf(IRModel):
    """`obj[index]`: a list by int (out of range is a `value_error`) or a map by str."""

    node: Literal["index"] = "index"
    obj: Expr
    index: Expr


class Builtin(IRModel):
    """A call of a pure builtin (`len`, `lower`, ...); `now()` is journaled by the runtime."""

    node: Literal["call"] = "call"
    fn: str
    args: list[Expr]


class Unary(IRModel):
    node: Literal["unary"] = "unary"
    op: UnaryOpName
    operand: Expr


class Binary(IRModel):
    """A binary operator; `and`, `or` and `??` evaluate `right` only when needed."""

    node: Literal["binary"] = "binary"
    op: BinaryOpName
    left: Expr
    right: Expr


class Template(IRModel):
    """An interpolated string: literal text and expressions, concatenated as text."""

    node: Literal["template"] = "template"
    parts: list[str | Expr]


class ListOf(IRModel):
    node: Literal["list"] = "list"
    items: list[Expr]


class RecordOf(IRModel):
    """A record literal with every field present (the compiler fills in declared defaults)."""

    node: Literal["record"] = "record"
    type: str
    fields: dict[str, Expr]


class ObjectOf(IRModel):
    """A `{ key: value }` block used as a value (scenario data, schedule inputs): a map."""

    node: Literal["object"] = "object"
    fields: dict[str, Expr]


class EnumValue(IRModel):
    """`Category.damaged`: `type` is the enum's qualified name."""

    node: Literal["enum"] = "enum"
    type: str
    member: str


Expr = Annotated[
    Lit
    | Var
    | FieldOf
    | IndexOf
    | Builtin
    | Unary
    | Binary
    | Template
    | ListOf
    | RecordOf
    | ObjectOf
    | EnumValue,
    Field(discriminator="node"),
]

for _model in (FieldOf, IndexOf, Builtin, Unary, Binary, Template, ListOf, RecordOf, ObjectOf):
    _model.model_rebuild()


def free_vars(expr: Expr) -> set[str]:
    """The variable names an expression reads."""
    found: set[str] = set()
    stack: list[Expr] = [expr]
    while stack:
        e = stack.pop()
        if isinstance(e, Var):
            found.add(e.name)
        elif isinstance(e, FieldOf):
            stack.append(e.obj)
        elif isinstance(e, IndexOf):
            stack.extend((e.obj, e.index))
        elif isinstance(e, Builtin | ListOf):
            stack.extend(e.args if isinstance(e, Builtin) else e.items)
        elif isinstance(e, Unary):
            stack.append(e.operand)
        elif isinstance(e, Binary):
            stack.extend((e.left, e.right))
        elif isinstance(e, Template):
            stack.extend(p for p in e.parts if not isinstance(p, str))
        elif isinstance(e, RecordOf | ObjectOf):
            stack.extend(e.fields.values())
    return found
