"""The IR's shared building blocks: the base model, spans, types and retry policies.

The IR's models are `msgspec.Struct`s, not pydantic models: a run starts by importing
them (and, from an IR file, decoding one), and with pydantic that import cost about
180 ms of `mnc run`'s 460 ms quiet (pydantic itself ~30 ms, then ~65 model classes at
~2.4 ms of class creation each); a Struct class costs ~0.02 ms. Measured side by side
(2026-12-06, byte-compiled, load ~10): importing `mnlang.ir.load` took 225 ms of CPU and
234 modules with pydantic, 47 ms and 125 modules with msgspec; loading the refund IR
5-7 ms either way.
The annotations are not postponed (no `from __future__ import annotations`): msgspec
would otherwise evaluate ~570 annotation strings at the first decode (~15 ms).
msgspec's JSON decoder validates as it decodes (`msgspec.json.decode(text,
type=IRProgram)`), strictly: an unknown or missing field or a wrong type is refused.

What pydantic did on its own is done here explicitly: constructors do not validate or
coerce (the compiler builds values of the declared types); the IR file leaves out fields
that are None (`mnlang.ir.load.dump_ir`); a field with another name in JSON (`class`,
`else`, `finally`) is declared with `msgspec.field(name=...)`; tagged unions carry their
tag (`kind`, `node`) as a class attribute, written first. Every model is `kw_only`, so
fields keep their declaration order (a base class's first), the order of the JSON. No
module here imports the parser or the checker.
"""

import inspect
from typing import Annotated, Any, Literal

import msgspec

IR_VERSION = "1"

TypeKind = Literal[
    "str",
    "int",
    "float",
    "bool",
    "money",
    "duration",
    "timestamp",
    "json",
    "secret",
    "list",
    "map",
    "optional",
    "record",
    "enum",
    "decision",
    "error",
    "null",
    "unknown",
]

# What a `retry.on` or `catch` can name; the rest are enforced and never caught.
CATCHABLE_KINDS = (
    "timeout",
    "transient",
    "tool_error",
    "malformed_output",
    "rejected",
    "value_error",
    "key_conflict",
    "child_failed",
)


HASH_OMITS_NONE = msgspec.Meta(extra_json_schema={"hash_omits_none": True})
"""Marks a field added to the IR later (`Annotated[T | None, HASH_OMITS_NONE] = None`): left
out of the content hash while it is `None`, so a program that does not use it keeps the
hash it had before. The IR's JSON Schema shows it as `"hash_omits_none": true`."""


class IRModel(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Strict models: an IR file with an unknown or missing field is refused, not guessed at.

    Compared by value and unhashable, like the pydantic models they replace. Subclasses
    repeat `kw_only=True` (msgspec does not inherit it) to keep the fields in order."""


_FIELDS: dict[type[IRModel], tuple[tuple[str, str, bool], ...]] = {}


def encoded_fields(cls: type[IRModel]) -> tuple[tuple[str, str, bool], ...]:
    """(attribute, JSON key, left out of the hash while None) of each field of `cls`, in
    the order they are written (the tag, a class attribute, is not among them)."""
    found = _FIELDS.get(cls)
    if found is None:
        # The annotation objects themselves (the models' modules do not postpone them).
        hints: dict[str, Any] = {}
        for base in reversed(cls.__mro__):
            hints.update(inspect.get_annotations(base))
        found = tuple(
            (name, key, HASH_OMITS_NONE in getattr(hints[name], "__metadata__", ()))
            for name, key in zip(cls.__struct_fields__, cls.__struct_encode_fields__, strict=True)
        )
        _FIELDS[cls] = found
    return found


def tag_of(value: IRModel) -> tuple[str, Any] | None:
    """(tag field, tag) of a node of a tagged union (`("kind", "call")`), else None."""
    config = value.__struct_config__
    if config.tag_field is None:
        return None
    return config.tag_field, config.tag


class SpanIR(IRModel, kw_only=True):
    """Where a node came from; `file` is relative to the root source's folder.

    Spans are kept for diagnostics and graph labels but are not part of the
    content hash, so reformatting a file does not change its IR's identity.
    """

    file: str
    line: int
    col: int
    end_line: int
    end_col: int


class TypeIR(IRModel, kw_only=True):
    """A value's type, enough for the runtime to validate a value.

    `kind` is a primitive, or `list`/`map`/`optional` (one element type in
    `args`), `record`/`enum` (`name` is the qualified declaration name in
    `IRProgram.types`), `decision` (a checkpoint's value: `name` is the
    checkpoint, `members` its options), `error` (a caught error), `null`, or
    `unknown` (not determined statically; accepts any value).
    """

    kind: TypeKind
    name: str | None = None
    args: list["TypeIR"] = []
    members: list[str] | None = None

    def __str__(self) -> str:
        if self.kind in ("list", "map"):
            return f"{self.kind}[{self.args[0]}]"
        if self.kind == "optional":
            return f"{self.args[0]}?"
        if self.kind in ("record", "enum"):
            return (self.name or "").rsplit(".", 1)[-1]
        if self.kind == "decision":
            return f"decision of {self.name}"
        return self.kind


UNLIMITED = "unlimited"
"""`attempts: unlimited`: tries until the entry's `max_elapsed` or the run's deadline."""


class RetryIR(IRModel, kw_only=True):
    """A retry policy resolved to numbers: `attempts` counts every try, the first included.

    The delay before try n+1 (n >= 1) is `backoff_ms * factor**(n-1)`, capped at
    `max_delay_ms` when it is set, and multiplied by a uniform random factor in
    [0.5, 1.0] when `jitter`. Only the error kinds in `on` are retried.

    `attempts` may be `"unlimited"`; `max_elapsed_ms` (time since the call's first try)
    ends the retries when the next try would start after it. `more` are further entries
    (`retry: [ {...}, {...} ]`): a failure is retried by the first entry whose `on` has its
    kind, and each entry counts the failures it matched as its own attempts (n above). Both
    are IR 1 additions, absent (and out of the content hash) when not used.
    """

    attempts: int | Literal["unlimited"] = 1
    backoff_ms: int = 0
    factor: float = 2.0
    max_delay_ms: int | None = None
    jitter: bool = False
    on: list[str] = msgspec.field(default_factory=lambda: ["timeout", "transient"])
    max_elapsed_ms: Annotated[int | None, HASH_OMITS_NONE] = None
    more: Annotated[list["RetryIR"] | None, HASH_OMITS_NONE] = None

    @property
    def entries(self) -> "list[RetryIR]":
        """The policy's entries in the order a failure's kind is matched against them."""
        return [self, *(self.more or [])]
