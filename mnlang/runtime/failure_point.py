"""The state of a run at the moment a step failed, kept so the run can be retried in place.

When a failure starts to unwind, the interpreter takes the run's state as it stands at
the failing step (every changed variable and cursor, the failing fiber's cursor at the
failed state) without writing it. While the failure unwinds through `finally` bodies,
compensations and `on_failure`, commits carry events only: the stored state stays the
failure point (the first of them writes it). If the unwinding does nothing outside the
run, a run that fails keeps that state, and `mnc retry` resumes from it: the failed step
runs again. If the unwinding touches anything outside (an effect's intent, a
compensation, a checkpoint, a timer, a signal, a child run), the point is given up: the
state is written as it goes, as before, and a retry is refused with what was done.

A failure that is caught ends the failure point: its state is written with the next
commit, before what came after it, as if it had been committed then.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from mnlang.runtime.failures import StepFailure
from mnlang.runtime.journal import Journal
from mnlang.stores.base import StateOp

FAILURE_POINT_META: Final = "failure_point"
"""The run's `meta` key set when a failed run kept its failure point: `{step, kind}`."""
NOT_RETRYABLE_META: Final = "not_retryable"
"""The run's `meta` key set when a failed run gave its failure point up: why."""

_LISTS: Final = (
    "ledger",
    "set_timers",
    "cancel_timers",
    "open_checkpoints",
    "close_checkpoints",
    "consume_signals",
    "create_runs",
    "send_signals",
)


@dataclass
class FailurePoint:
    failure: StepFailure
    ops: list[StateOp]
    """The run's state at the failure, not yet written."""
    marks: dict[str, int]
    """How long the journal's lists of outside work were when the failure began: what is
    beyond is the unwinding's."""
    written: bool = False
    given_up: str | None = None
    """What the unwinding did outside the run (then nothing is held back)."""
    notes: list[str] = field(default_factory=list)
    """Outside work done directly, not through the journal (a child run's cancel)."""

    @classmethod
    def begin(cls, failure: StepFailure, ops: list[StateOp], journal: Journal) -> FailurePoint:
        return cls(failure, ops, {name: len(getattr(journal, name)) for name in _LISTS})

    def outside_work(self, journal: Journal, *, ignore_timers: frozenset[str]) -> list[str]:
        """What the journal carries of the unwinding's work outside the run."""
        seen: list[str] = list(self.notes)
        fresh = {name: getattr(journal, name)[self.marks[name] :] for name in _LISTS}
        seen += [f"an effect's intent (key `{put.key}`)" for put in fresh["ledger"]]
        seen += [f"opened checkpoint `{c.name}`" for c in fresh["open_checkpoints"]]
        seen += [f"withdrew checkpoint `{c}`" for c in fresh["close_checkpoints"]]
        seen += [f"set timer `{t.timer_id}`" for t in fresh["set_timers"]]
        seen += [f"cancelled timer `{t}`" for t in fresh["cancel_timers"] if t not in ignore_timers]
        seen += [f"took a signal (`{s}`)" for s in fresh["consume_signals"]]
        seen += [f"started child run `{r.run_id}`" for r in fresh["create_runs"]]
        seen += [f"signalled run `{s.run_id}`" for s in fresh["send_signals"]]
        return seen

    def committed(self) -> None:
        """A commit went out: the journal's lists start empty again."""
        self.marks = dict.fromkeys(_LISTS, 0)
        self.notes = []
