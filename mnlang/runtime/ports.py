"""What the interpreter's helpers pass between them, and see of each other.

The helpers (`agents`, `call_state`, `faults`, `pauses`) each take the run through a
narrow `Protocol` of their own that names only what they use; the interpreter satisfies
them all. The shapes more than one of them needs live here, below all of them, so that
no helper imports the interpreter or a helper that imports it back (a test keeps
`runtime/` free of import cycles): the record of a call in progress, how a run ended,
and the parts of the call state and of the pauses that other helpers call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, Protocol

from mnlang.ir.base import RetryIR
from mnlang.ir.model import EffectIR, ToolIR
from mnlang.runtime.fibers import Fiber
from mnlang.runtime.retry import Tally
from mnlang.runtime.values import Value
from mnlang.stores.base import Json, RunStatus

CallKind = Literal["tool", "effect"]


@dataclass(eq=False)
class Call:
    """One call in progress, across its attempts."""

    fiber: Fiber
    kind: CallKind
    decl: ToolIR
    step: str
    args: dict[str, Value]
    retry: RetryIR
    timeout_ms: int | None
    key: str | None = None
    template: str | None = None
    """An effect's key template's value (`key` is its ledger key, which names where an
    agent asked for it)."""
    wire: str | None = None
    """An effect's wire key, stored in its intent (`effects.wire_key`)."""
    hash: str | None = None
    attempt: int = 0
    reserved: Decimal = Decimal(0)
    compensation: int | None = None
    """For a compensation: its index in the run's list."""
    session: Any = None
    """For a call a model made: its agent's `agents.Session`."""
    asked: str | None = None
    """For an effect a model called: where it was asked for (`effects.ledger_key`)."""
    started: float = field(default_factory=time.perf_counter)
    span: int | None = None
    """The current attempt's span id (`telemetry.spans.AttemptSpans`), journaled with it."""
    tally: Tally | None = None
    """What its retries have used, when its policy keeps count (`retry.tallied`)."""

    @property
    def effect(self) -> EffectIR:
        assert isinstance(self.decl, EffectIR)
        return self.decl


@dataclass(frozen=True, slots=True)
class RunEnd:
    """Where `Interpreter.execute` left the run."""

    status: RunStatus
    result: Json = None
    error: Json = None


class CallsPort(Protocol):
    """What an agent's conversation and a repair decision do with calls (`call_state`)."""

    def _intent(self, call: Call) -> None: ...

    def _attempt_or_fail(self, call: Call, delay_s: float = 0.0) -> None: ...

    def _resume_effect(self, call: Call) -> None: ...

    def noted_call(
        self, fiber: Fiber, effect: EffectIR, step: str, retry: RetryIR, noted: Any, **more: Any
    ) -> Call: ...

    def mark_done(self, call: Call, result: Any, by: str) -> None: ...

    def retry_after_repair(self, call: Call) -> None: ...


class PausesPort(Protocol):
    """What a call does with durable retry timers and repair checkpoints (`pauses`)."""

    def retry_later(self, fiber: Fiber, step: str, attempt: int, delay_ms: int) -> None: ...

    def retry_due(self, fiber: Fiber, retry: dict[str, Any]) -> bool: ...

    def repair(self, fiber: Fiber, call: Call) -> None: ...
