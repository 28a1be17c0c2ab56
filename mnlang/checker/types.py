"""The checker's types: one small immutable value per type, printable as in source."""

from __future__ import annotations

import msgspec

PRIMITIVES = (
    "str",
    "int",
    "float",
    "bool",
    "money",
    "duration",
    "timestamp",
    "json",
    "secret",
)


class Type(msgspec.Struct, frozen=True):
    """`kind` is a primitive name, or one of: list map optional record enum decision error
    null (the type of `null`), unknown (after an error, compatible with everything)."""

    kind: str
    name: str = ""  # qualified name of a record or enum; the checkpoint of a decision
    args: tuple[Type, ...] = ()

    def __str__(self) -> str:
        if self.kind in ("list", "map"):
            return f"{self.kind}[{self.args[0]}]"
        if self.kind == "optional":
            return f"{self.args[0]}?"
        if self.kind in ("record", "enum"):
            return self.name.rsplit(".", 1)[-1]
        if self.kind == "decision":
            return f"decision of `{self.name}`"
        return self.kind

    @property
    def is_optional(self) -> bool:
        return self.kind in ("optional", "null")

    def unwrap(self) -> Type:
        """The inner type of an optional; itself otherwise."""
        return self.args[0] if self.kind == "optional" else self


STR = Type("str")
INT = Type("int")
FLOAT = Type("float")
BOOL = Type("bool")
MONEY = Type("money")
DURATION = Type("duration")
TIMESTAMP = Type("timestamp")
JSON = Type("json")
SECRET = Type("secret")
NULL = Type("null")
UNKNOWN = Type("unknown")
ERROR = Type("error")  # the value bound by `catch ... as e`


def list_of(t: Type) -> Type:
    return Type("list", args=(t,))


def map_of(t: Type) -> Type:
    return Type("map", args=(t,))


def optional(t: Type) -> Type:
    if t.kind in ("optional", "null", "unknown"):
        return t
    return Type("optional", args=(t,))


def record(name: str) -> Type:
    return Type("record", name)


def enum(name: str) -> Type:
    return Type("enum", name)


def decision(checkpoint: str) -> Type:
    return Type("decision", checkpoint)


def holds_secret(t: Type) -> bool:
    """Whether a value of `t` is or contains a `secret` (a list of them, an optional one)."""
    return t.kind == "secret" or any(holds_secret(a) for a in t.args)
