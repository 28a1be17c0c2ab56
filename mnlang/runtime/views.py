"""What `mnc show` and `mnc log` tell about a run, read from the journal store.

`run_details` gathers a run's record, where each branch stands, the work it waits for
(open checkpoints, repairs, timers, events), and from the journal the steps it
completed with their inputs and outputs (the evidence), its retries and failures, and
what it cost; and, for a live run nobody holds, why no live worker can take it up (the
code or keys it needs that none advertised, `mnlang.runtime.serving`).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import msgspec

from mnlang.runtime.serving import unserved
from mnlang.stores.base import (
    TERMINAL_STATUSES,
    Checkpoint,
    Event,
    Json,
    RunNotFound,
    RunRecord,
    Signal,
    Store,
    Timer,
)

STEP_KINDS = frozenset({"tool", "effect", "agent", "replayed", "compensated", "child_ended"})
FAILURE_KINDS = frozenset({"call_failed", "caught", "compensation_failed", "failed"})


class Position(msgspec.Struct):
    branch: str
    state: str | None
    waiting_for: Json = None


class RunDetails(msgspec.Struct):
    run: RunRecord
    positions: list[Position] = msgspec.field(default_factory=list)
    checkpoints: list[Checkpoint] = msgspec.field(default_factory=list)
    timers: list[Timer] = msgspec.field(default_factory=list)
    unread: list[Signal] = msgspec.field(default_factory=list)
    """Signals in the mailbox that no wait has taken yet (child runs' end notes left out)."""
    steps: list[Event] = msgspec.field(default_factory=list)
    retries: list[Event] = msgspec.field(default_factory=list)
    failures: list[Event] = msgspec.field(default_factory=list)
    logs: list[Event] = msgspec.field(default_factory=list)
    cost: Decimal = Decimal(0)
    unserved: str | None = None
    """Why no live worker can take the run up (`waiting for a worker with module m (sha256
    …) / provider p`), for a live run that no lease holds; None when one can."""

    def to_json(self) -> dict[str, Json]:
        return {
            "run": msgspec.to_builtins(self.run),
            "positions": msgspec.to_builtins(self.positions),
            "checkpoints": msgspec.to_builtins(self.checkpoints),
            "timers": msgspec.to_builtins(self.timers),
            "unread_signals": msgspec.to_builtins(self.unread),
            "steps": msgspec.to_builtins(self.steps),
            "retries": msgspec.to_builtins(self.retries),
            "failures": msgspec.to_builtins(self.failures),
            "logs": msgspec.to_builtins(self.logs),
            "cost": str(self.cost),
            "unserved": self.unserved,
        }


def _cost(event: Event) -> Decimal:
    data = event.data if isinstance(event.data, dict) else {}
    try:
        return Decimal(str(data.get("cost") or 0))
    except InvalidOperation:
        return Decimal(0)


def run_details(store: Store, run_id: str) -> RunDetails:
    record = store.get_run(run_id)
    if record is None:
        removed = store.get_tombstone(run_id)
        if removed is not None:
            raise RunNotFound(
                f"run `{run_id}` ended ({removed.status}) and was removed by `mnc gc`",
                help="its rows are in the archive that gc wrote, if any "
                "(`mnc replay --archive FILE`)",
            )
        raise RunNotFound(f"no run `{run_id}`", help="`mnc runs` lists the runs of this journal")
    details = RunDetails(record)
    state = store.load_state(run_id)
    for branch, cursor in sorted(state.cursors.items()):
        if not isinstance(cursor, dict):
            continue
        pending = cursor.get("pending") or {}
        note = {
            k: v for k, v in pending.items() if k not in ("effect", "compensate", "agent")
        } or None
        details.positions.append(Position(branch or "main", cursor.get("at"), note))
    details.checkpoints = store.open_checkpoints(run_id)
    details.timers = store.run_timers(run_id)
    details.unread = [s for s in store.pending_signals(run_id) if ":" not in s.name]
    for event in store.read_journal(run_id):
        if event.kind in STEP_KINDS:
            details.steps.append(event)
        elif event.kind == "retry":
            details.retries.append(event)
        elif event.kind in FAILURE_KINDS:
            details.failures.append(event)
        elif event.kind == "log":
            details.logs.append(event)
        details.cost += _cost(event)
    details.unserved = unserved_reason(store, record)
    return details


def unserved_reason(store: Store, record: RunRecord) -> str | None:
    """Why no live worker can claim a live run that no lease holds, or None. A `running`
    run waits for such a worker; a `waiting` one is told what no live worker has, for
    when what it waits for comes."""
    if record.status in TERMINAL_STATUSES:
        return None
    if record.lease_expires_at is not None and record.lease_expires_at > store.now():
        return None
    needs = store.run_needs(record.run_id)
    if not needs:
        return None
    workers = [w.worker_id for w in store.list_workers()]
    missing = unserved(needs, store.list_offers(), workers)
    if missing is None:
        return None
    return missing.describe(runnable=record.status == "running")


def unserved_runs(store: Store, limit: int = 100) -> list[tuple[str, str]]:
    """Runnable runs (up to `limit` looked at) that no live worker can claim, each with
    why (`mnc workers`)."""
    workers = [w.worker_id for w in store.list_workers()]
    offers = store.list_offers()
    out = []
    for run_id in store.runnable_runs(limit=limit):
        missing = unserved(store.run_needs(run_id), offers, workers)
        if missing is not None:
            out.append((run_id, missing.describe()))
    return out
