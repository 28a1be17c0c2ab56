"""What the next commit of a run will carry, gathered as the run goes.

The interpreter adds journal events, ledger writes, pending work (timers, checkpoints,
consumed signals, child runs, signals to other runs) and structural state ops (dropping a
finished branch) as they happen; `commit` adds the changed variables and cursors it is
given, sends one `Batch` to the store, and starts over. An observer (the CLI's live step
lines) sees each event when it is added.
"""

from __future__ import annotations

from collections.abc import Callable

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
        result = self.store.commit(batch)
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
