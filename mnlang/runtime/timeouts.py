"""Durations computed at run time: timeouts written as expressions (`timeout: sla * 2`).

A computed duration is checked where it is used: null and negative durations say
nothing about how long to wait, so they fail the step with a `value_error` naming it.
"""

from __future__ import annotations

from mnlang.ir.model import ToolIR
from mnlang.runtime.evaluate import Evaluator, MapEnv
from mnlang.runtime.failures import value_error
from mnlang.runtime.values import Duration, Value, to_text


def checked_ms(value: object, what: str) -> int:
    """`value` in milliseconds when it is a duration of zero or more."""
    if not isinstance(value, Duration):
        raise value_error(f"{what} must be a duration, got {to_text(value)}")
    if value.ms < 0:
        raise value_error(f"{what} must be 0 or more, got {value.ms}ms")
    return value.ms


def call_timeout_ms(decl: ToolIR, args: dict[str, Value], evaluator: Evaluator) -> int | None:
    """A tool's or effect's per-attempt timeout for a call with `args`."""
    if decl.timeout is None:
        return decl.timeout_ms
    value = evaluator.eval(decl.timeout, MapEnv(args))
    return checked_ms(value, f"the `timeout` of `{decl.name}`")
