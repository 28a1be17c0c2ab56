"""A run's journal read as a `RunOverlay`: what happened at each state of its workflow.

The journal names the state of every step event, so a state is `done` once a result,
a decision, a signal or a log line was journaled there, `failed` when its call failed
for good, `waiting` while a checkpoint, timer, event, repair or child run holds it, and
`running` while its call is between attempts. Where the run's cursors stand now
overrides that (a state is `running` again on the next turn of a loop). States that
journal nothing (assignments, branches) are left unmarked.
"""

from __future__ import annotations

from collections.abc import Iterable

from mnlang.graph.overlay import RunOverlay, StateRun, StateStatus
from mnlang.stores.base import Event, RunRecord

_DONE = frozenset(
    {
        "tool",
        "effect",
        "agent",
        "replayed",
        "compensated",
        "child_ended",
        "decided",
        "woke",
        "signal",
        "timed_out",
        "log",
        "repaired",
    }
)
_WAITING = frozenset({"checkpoint", "wait", "repair_opened", "child"})
_RUNNING = frozenset({"intent", "retry", "attempt_failed", "reattempt"})
_FAILED = frozenset({"call_failed", "compensation_failed"})


def _status_of(kind: str) -> StateStatus | None:
    if kind in _DONE:
        return "done"
    if kind in _WAITING:
        return "waiting"
    if kind in _RUNNING:
        return "running"
    if kind in _FAILED:
        return "failed"
    return None


def build_overlay(
    run: RunRecord, events: Iterable[Event], positions: Iterable[str | None]
) -> RunOverlay:
    """The overlay of `run` from its journal and the states its cursors stand at now."""
    states: dict[str, StateRun] = {}
    for event in events:
        data = event.data if isinstance(event.data, dict) else {}
        if event.state is None:
            error = data.get("error") if event.kind in ("failed", "cancelled") else None
            step = error.get("step") if isinstance(error, dict) else None
            if isinstance(step, str) and step:
                states[step] = StateRun(
                    status="cancelled" if event.kind == "cancelled" else "failed",
                    attempts=states[step].attempts if step in states else 0,
                )
            continue
        seen = _status_of(event.kind)
        if seen is None:
            continue
        attempt = data.get("attempt")
        previous = states.get(event.state)
        attempts = attempt if isinstance(attempt, int) else previous.attempts if previous else 0
        states[event.state] = StateRun(status=seen, attempts=attempts)
    if run.status in ("running", "waiting", "cancelled"):
        for state in positions:
            if state is None:
                continue
            found = states.get(state)
            if run.status == "cancelled":
                status: StateStatus = "cancelled"
            elif run.status == "waiting" and found is not None and found.status == "waiting":
                continue
            else:
                status = "waiting" if run.status == "waiting" else "running"
            states[state] = StateRun(status=status, attempts=found.attempts if found else 0)
    return RunOverlay(run_id=run.run_id, workflow=run.workflow, states=states)
