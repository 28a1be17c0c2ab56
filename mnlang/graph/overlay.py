"""A run drawn over its workflow graph: per state id, what happened there.

`build_overlay` reads a run's journal into a `RunOverlay`; the console's run page and
`mnc graph --run` both use it, and the renderer takes the overlay as an optional input
and never reads a journal itself. The store types are imported for type checking only,
so drawing a graph does not load a store.

The journal names the state of every step event, so a state is `done` once a result,
a decision, a signal or a log line was journaled there, `failed` when its call failed
for good, `waiting` while a checkpoint, timer, event, repair or child run holds it, and
`running` while its call is between attempts. Where the run's cursors stand now
overrides that (a state is `running` again on the next turn of a loop). States that
journal nothing (assignments, branches) are left unmarked.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

if TYPE_CHECKING:
    from mnlang.stores.base import Event, RunRecord, Store

StateStatus = Literal["done", "failed", "waiting", "running", "cancelled"]


class StateRun(BaseModel):
    status: StateStatus
    attempts: int = 0


class RunOverlay(BaseModel):
    run_id: str
    workflow: str
    states: dict[str, StateRun] = {}


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
_WAITING = frozenset({"checkpoint", "wait", "select", "repair_opened", "child"})
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


def cursor_states(store: Store, run_id: str) -> list[str | None]:
    """The states a run's cursors (its main line and each open branch) stand at now."""
    cursors = store.load_state(run_id).cursors
    return [c.get("at") for _, c in sorted(cursors.items()) if isinstance(c, dict)]


def run_overlay(store: Store, run: RunRecord) -> RunOverlay:
    """The overlay of a run as its journal and its cursors have it now."""
    return build_overlay(run, store.read_journal(run.run_id), cursor_states(store, run.run_id))
