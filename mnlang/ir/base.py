"""The IR's shared building blocks: the base model, spans, types and retry policies.

Everything under `mnlang.ir` that the runtime imports is plain pydantic; no
module here imports the parser or the checker.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

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


HASH_OMITS_NONE: JsonDict = {"hash_omits_none": True}
"""`json_schema_extra` of a field added to the IR later: left out of the content hash while
it is `None`, so a program that does not use it keeps the hash it had before."""


class IRModel(BaseModel):
    """Strict models: an IR file with an unknown or missing field is refused, not guessed at."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SpanIR(IRModel):
    """Where a node came from; `file` is relative to the root source's folder.

    Spans are kept for diagnostics and graph labels but are not part of the
    content hash, so reformatting a file does not change its IR's identity.
    """

    file: str
    line: int
    col: int
    end_line: int
    end_col: int


class TypeIR(IRModel):
    """A value's type, enough for the runtime to validate a value.

    `kind` is a primitive, or `list`/`map`/`optional` (one element type in
    `args`), `record`/`enum` (`name` is the qualified declaration name in
    `IRProgram.types`), `decision` (a checkpoint's value: `name` is the
    checkpoint, `members` its options), `error` (a caught error), `null`, or
    `unknown` (not determined statically; accepts any value).
    """

    kind: TypeKind
    name: str | None = None
    args: list[TypeIR] = []
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


class RetryIR(IRModel):
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
    on: list[str] = ["timeout", "transient"]
    max_elapsed_ms: int | None = Field(default=None, json_schema_extra=HASH_OMITS_NONE)
    more: list[RetryIR] | None = Field(default=None, json_schema_extra=HASH_OMITS_NONE)

    @property
    def entries(self) -> list[RetryIR]:
        """The policy's entries in the order a failure's kind is matched against them."""
        return [self, *(self.more or [])]
