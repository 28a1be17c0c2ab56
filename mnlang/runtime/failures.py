"""A step's failure as the interpreter carries it: an error kind, a message, the state.

Failures of the catchable kinds (`mnlang.errors.CATCHABLE_KINDS`) can be caught by a
`try`; the enforced kinds (`cancelled`, `budget_exceeded`, `deadline_exceeded`) and a
`fail` statement cannot, but both still run `finally` bodies on their way out.
"""

from __future__ import annotations

from typing import Final

from mnlang.errors import CATCHABLE_KINDS, VALUE_ERROR, is_error_name
from mnlang.stores.base import Json

FAIL: Final = "fail"
"""The kind of a run ended by a `fail` statement."""
FAILURE: Final = "$failure"
"""Set in the root scope while `on_failure` runs: the failure the run ends with."""


class StepFailure(Exception):
    """A failure of `kind` at state `step` (empty while it is not yet placed).

    `kind` is a built-in kind (lower case) or a declared error name (capitalised, as
    `PaymentDeclined`); `cause` is the caught failure a `fail Name { cause: e }` wraps.
    """

    def __init__(self, kind: str, message: str, step: str = "", cause: Json = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.step = step
        self.cause = cause
        self.exception: str | None = None
        """The class of the exception a tool raised (`httpx2.ConnectError`), for the journal."""
        self.traceback: str | None = None
        """Where the tool raised it: `trimmed_traceback`."""

    def __str__(self) -> str:
        return self.message

    @property
    def catchable(self) -> bool:
        return self.kind in CATCHABLE_KINDS or is_error_name(self.kind)

    def at(self, step: str) -> StepFailure:
        """The failure placed at a state, unless it already names one."""
        if not self.step:
            self.step = step
        return self

    def to_json(self) -> Json:
        """What a `catch ... as e` binds, and what a failed run records as its error."""
        data: dict[str, Json] = {"kind": self.kind, "message": self.message, "step": self.step}
        if self.cause is not None:
            data["cause"] = self.cause
        return data

    def as_value(self) -> dict[str, Json]:
        """What `catch ... as e` and `on_failure as e` bind: `e.cause` is null when unset."""
        return {"kind": self.kind, "message": self.message, "step": self.step, "cause": self.cause}

    @classmethod
    def from_json(cls, data: Json) -> StepFailure:
        return cls(
            str(data["kind"]),
            str(data["message"]),
            str(data.get("step") or ""),
            data.get("cause"),
        )


def value_error(message: str) -> StepFailure:
    return StepFailure(VALUE_ERROR, message)


TRACEBACK_FRAMES: Final = 6
TRACEBACK_CHARS: Final = 2000


def exception_name(exc: BaseException) -> str:
    """The exception's class as a tool author knows it: `httpx2.ConnectError`, `KeyError`."""
    cls = type(exc)
    module = cls.__module__
    if module == "builtins":
        return cls.__qualname__
    root = module.split(".", 1)[0]
    if root.startswith("_mnc_tools_"):  # a tool module loaded under its private name
        return cls.__qualname__
    return f"{root}.{cls.__qualname__}"


def exception_message(exc: BaseException) -> str:
    """What went wrong in words. A `KeyError` says which key was missing (its `str` is
    only the key's repr); an exception with no text says its class."""
    text = getattr(exc, "message", None) or str(exc)
    if isinstance(exc, KeyError) and exc.args:
        return f"KeyError: key {exc.args[0]!r} not found"
    return text or exception_name(exc)


def trimmed_traceback(exc: BaseException) -> str | None:
    """The last frames of where a tool's exception was raised, the runtime's own frames
    left out; None when there is none (an exception from a child process)."""
    import traceback

    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if "/mnlang/runtime/" not in frame.filename.replace("\\", "/")
    ][-TRACEBACK_FRAMES:]
    if not frames:
        return None
    from mnlang.deep import steady_recursion_limit

    # Python 3.11 places a frame's carets by parsing its source line with `ast`, which
    # fails when another thread moves the recursion limit meanwhile (see `deep`).
    with steady_recursion_limit():
        lines = traceback.format_list(frames)
    lines += traceback.format_exception_only(type(exc), exc)
    text = "".join(lines).rstrip()
    return text if len(text) <= TRACEBACK_CHARS else "…" + text[-TRACEBACK_CHARS:]
