"""What the next commit of a run will carry, gathered as the run goes.

The interpreter adds journal events, ledger writes, pending work (timers, checkpoints,
consumed signals, child runs, signals to other runs) and structural state ops (dropping a
finished branch) as they happen; `commit` adds the changed variables and cursors it is
given, sends one `Batch` to the store, and starts over. An observer (the CLI's live step
lines) sees each event when it is added.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from mnlang import redact
from mnlang.outbox import messages_of
from mnlang.stores.base import (
    Batch,
    CommitResult,
    Json,
    Lease,
    LedgerPut,
    NewEvent,
    NewRun,
    OpenCheckpoint,
    RunUpdate,
    SendSignal,
    SetTimer,
    StateOp,
    Store,
)

Observer = Callable[[NewEvent], None]


def redacted(batch: Batch) -> Batch:
    """The batch with every secret value this process has revealed replaced by `[secret]`
    (`mnlang.redact`): the last line of defence, so an error message, a traceback or a
    result that carries a secret never reaches the journal. Free when no secret was used."""
    if not redact.active():
        return batch
    for i, event in enumerate(batch.events):
        batch.events[i] = msgspec.structs.replace(event, data=redact.redact_json(event.data))
    batch.state = [_redacted_op(op) for op in batch.state]
    if batch.run is not None:
        batch.run = msgspec.structs.replace(
            batch.run,
            result=redact.redact_json(batch.run.result),
            error=redact.redact_json(batch.run.error),
            meta=redact.redact_json(batch.run.meta),
        )
    batch.ledger = [
        msgspec.structs.replace(p, result=redact.redact_json(p.result)) for p in batch.ledger
    ]
    batch.set_timers = [
        msgspec.structs.replace(t, payload=redact.redact_json(t.payload)) for t in batch.set_timers
    ]
    batch.open_checkpoints = [
        msgspec.structs.replace(c, request=redact.redact_json(c.request))
        for c in batch.open_checkpoints
    ]
    batch.send_signals = [
        msgspec.structs.replace(s, payload=redact.redact_json(s.payload))
        for s in batch.send_signals
    ]
    batch.create_runs = [_redacted_run(r) for r in batch.create_runs]
    batch.outbox = [
        msgspec.structs.replace(m, data=redact.redact_json(m.data)) for m in batch.outbox
    ]
    return batch


def _redacted_op(op: StateOp) -> StateOp:
    fields = [f for f in op.__struct_fields__ if f in ("value", "items", "cursor")]
    if not fields:
        return op
    return msgspec.structs.replace(op, **{f: redact.redact_json(getattr(op, f)) for f in fields})


def _redacted_run(run: NewRun) -> NewRun:
    fields = [f for f in run.__struct_fields__ if f in ("args", "meta")]
    return msgspec.structs.replace(run, **{f: redact.redact_json(getattr(run, f)) for f in fields})


class Journal:
    def __init__(
        self, store: Store, run_id: str, lease: Lease | None, observer: Observer | None = None
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.lease = lease
        self.observer = observer
        self.events: list[NewEvent] = []
        self.ledger: list[LedgerPut] = []
        self.ops: list[StateOp] = []
        self.set_timers: list[SetTimer] = []
        self.cancel_timers: list[str] = []
        self.open_checkpoints: list[OpenCheckpoint] = []
        self.close_checkpoints: list[str] = []
        self.consume_signals: list[str] = []
        self.create_runs: list[NewRun] = []
        self.send_signals: list[SendSignal] = []
        self.commits = 0

    def event(
        self, kind: str, data: Json = None, state: str | None = None, branch: str = ""
    ) -> None:
        event = NewEvent(kind, data, state, branch)
        self.events.append(event)
        if self.observer is not None:
            self.observer(event)

    def put_ledger(self, put: LedgerPut) -> int:
        """Queue a ledger write; its row after the commit is `CommitResult.ledger[index]`."""
        self.ledger.append(put)
        return len(self.ledger) - 1

    @property
    def has_work(self) -> bool:
        """Something beyond variables and cursors is waiting to be committed."""
        return bool(
            self.events
            or self.ledger
            or self.ops
            or self.set_timers
            or self.cancel_timers
            or self.open_checkpoints
            or self.close_checkpoints
            or self.consume_signals
            or self.create_runs
            or self.send_signals
        )

    def commit(self, state: list[StateOp], run: RunUpdate | None = None) -> CommitResult:
        batch = Batch(
            run_id=self.run_id,
            lease=self.lease,
            events=self.events,
            state=self.ops + state,
            run=run,
            ledger=self.ledger,
            set_timers=self.set_timers,
            cancel_timers=self.cancel_timers,
            open_checkpoints=self.open_checkpoints,
            close_checkpoints=self.close_checkpoints,
            consume_signals=self.consume_signals,
            create_runs=self.create_runs,
            send_signals=self.send_signals,
        )
        # The notifications of this commit go into the outbox in its transaction.
        batch.outbox = messages_of(batch)
        result = self.store.commit(redacted(batch))
        self.commits += 1
        self.events = []
        self.ledger = []
        self.ops = []
        self.set_timers = []
        self.cancel_timers = []
        self.open_checkpoints = []
        self.close_checkpoints = []
        self.consume_signals = []
        self.create_runs = []
        self.send_signals = []
        return result
