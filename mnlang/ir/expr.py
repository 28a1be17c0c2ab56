"""Expressions in the IR: a small tree the runtime evaluates directly, never with `eval`.

Every node has a `node` tag (a class attribute; the first key of its JSON object). Values in JSON: money is a decimal string
(`"0.50"`), durations are integer milliseconds, timestamps are RFC 3339
strings, enum values are their member name, records and maps are objects.
"""

from typing import ClassVar, Literal

from mnlang.ir.base import IRModel

LitType = Literal["int", "float", "money", "duration", "str", "bool", "null"]
UnaryOpName = Literal["not", "-"]
BinaryOpName = Literal["+", "-", "*", "/", "%", "==", "!=", "<", ">", "<=", ">=", "and", "or", "??"]


class Lit(IRModel, kw_only=True, tag_field="node", tag="lit"):
    """A constant. `value` is JSON: money a decimal string, a duration its milliseconds."""

    node: ClassVar[Literal["lit"]] = "lit"
    type: LitType
    value: int | float | str | bool | None = None


class Var(IRModel, kw_only=True, tag_field="node", tag="var"):
    """A variable, a workflow parameter, a loop variable or a caught error."""

    node: ClassVar[Literal["var"]] = "var"
    name: str


class FieldOf(IRModel, kw_only=True, tag_field="node", tag="field"):
    """`obj.name`: a record field, or a property of a decision or an error."""

    node: ClassVar[Literal["field"]] = "field"
    obj: "Expr"
    name: str


class IndexOf(IRModel, kw_only=True, tag_field="node", tag="index"):
    """`obj[index]`: a list by int (out of range is a `value_error`) or a map by str."""

    node: ClassVar[Literal["index"]] = "index"
    obj: "Expr"
    index: "Expr"


class Builtin(IRModel, kw_only=True, tag_field="node", tag="call"):
    """A call of a pure builtin (`len`, `lower`, ...); `now()` is journaled by the runtime."""

    node: ClassVar[Literal["call"]] = "call"
    fn: str
    args: list["Expr"]


class Unary(IRModel, kw_only=True, tag_field="node", tag="unary"):
    node: ClassVar[Literal["unary"]] = "unary"
    op: UnaryOpName
    operand: "Expr"


class Binary(IRModel, kw_only=True, tag_field="node", tag="binary"):
    """A binary operator; `and`, `or` and `??` evaluate `right` only when needed."""

    node: ClassVar[Literal["binary"]] = "binary"
    op: BinaryOpName
    left: "Expr"
    right: "Expr"


class Template(IRModel, kw_only=True, tag_field="node", tag="template"):
    """An interpolated string: literal text and expressions, concatenated as text."""

    node: ClassVar[Literal["template"]] = "template"
    parts: "list[str | Expr]"


class ListOf(IRModel, kw_only=True, tag_field="node", tag="list"):
    node: ClassVar[Literal["list"]] = "list"
    items: list["Expr"]


class RecordOf(IRModel, kw_only=True, tag_field="node", tag="record"):
    """A record literal with every field present (the compiler fills in declared defaults)."""

    node: ClassVar[Literal["record"]] = "record"
    type: str
    fields: dict[str, "Expr"]


class ObjectOf(IRModel, kw_only=True, tag_field="node", tag="object"):
    """A `{ key: value }` block used as a value (scenario data, schedule inputs): a map."""

    node: ClassVar[Literal["object"]] = "object"
    fields: dict[str, "Expr"]


class EnumValue(IRModel, kw_only=True, tag_field="node", tag="enum"):
    """`Category.damaged`: `type` is the enum's qualified name."""

    node: ClassVar[Literal["enum"]] = "enum"
    type: str
    member: str


Expr = (
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
    | EnumValue
)
"""An expression node, told apart by its `node` tag (written first in JSON)."""


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
