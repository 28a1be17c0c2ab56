"""The store interface: what the interpreter needs from a journal, and nothing more.

A store keeps runs, their append-only journal, their last committed state, the effect
ledger, signal mailboxes, pending checkpoints, timers, leases and compiled programs.
Everything the interpreter changes for a run goes through one `commit(Batch)`, which is
atomic: after a crash either the whole batch is there or none of it is.

Payloads (event data, variable values, run arguments and results, ledger results,
checkpoint requests and decisions, signal payloads) are JSON-compatible Python values:
`None`, `bool`, `int`, `float` (finite), `str`, `list` and `dict` with string keys. The
interpreter converts its own values first (money as decimal strings, timestamps as
numbers), so a store only has to store JSON. Times are seconds since the Unix epoch
measured by the store's clock (`Store.now()`), never a worker's.

Branch ids name the cursor of a parallel branch or loop item; `""` is the workflow's main
line, and nested branches are written with `/` (`"p1/0"`, `"p1/0/p2/3"`), so dropping a
branch can drop everything nested in it.

The records are `msgspec.Struct`s (frozen where a record is a value), not dataclasses,
because every journal command imports this module and the interpreter builds records on
every step: with its 39 records as frozen slotted dataclasses the import took 30 ms of
`mnc runs`'s start-up (about 0.7 ms to create each class), as Structs 2 ms (`python -X
importtime`, 2026-12-06, 2 cores under load ~5); building a `RunRecord` takes 0.2 µs
instead of 3.2 µs, a `NewEvent` 0.2 µs instead of 0.9 µs. Structs do not validate on
construction either; copy with `msgspec.structs.replace`, and turn a record into JSON
data with `msgspec.to_builtins` (nested records included, as `dataclasses.asdict` did).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self, TypeAlias

import msgspec

if TYPE_CHECKING:
    from mnlang.stores.group_commit import GroupCommitter

Json: TypeAlias = Any
"""A JSON-compatible Python value (see the module docstring)."""

RunStatus = Literal["running", "waiting", "completed", "failed", "cancelled"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
LedgerStatus = Literal["intent", "done", "unknown"]
CheckpointStatus = Literal["open", "decided", "closed"]
Durability = Literal["full", "fast"]


class Unset(enum.Enum):
    """Marks a field of `RunUpdate` that the commit leaves as it is."""

    UNSET = "unset"


UNSET = Unset.UNSET


# --- errors ---------------------------------------------------------------------------


class StoreError(Exception):
    """A store failure the user can act on; `help` says how."""

    def __init__(self, message: str, *, help: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.help = help

    def __str__(self) -> str:
        return self.message


class DamagedRow(StoreError):
    """A row of the journal whose JSON does not decode (a flipped byte, a bad restore):
    commands on that run stop here; listings mark it (`RunRecord.damaged`)."""

    def __init__(self, run_id: str | None, column: str, detail: str) -> None:
        whose = f"run {run_id}'s" if run_id else "a"
        super().__init__(
            f"{whose} journal row is damaged (`{column}`: {detail})",
            help="restore the journal from a backup, or cancel or delete the run; "
            "`mnc db check` lists every damaged row",
        )
        self.run_id = run_id
        self.column = column


class StoreLocked(StoreError):
    """Another process held the write lock for longer than the busy timeout."""


class StoreCorrupt(StoreError):
    """The file is not a journal database, or its contents are damaged."""


class StoreVersionError(StoreError):
    """The journal was written by a newer mnlang than this one."""


class RunNotFound(StoreError):
    """No run has this id."""


class CheckpointNotFound(StoreError):
    """The run has no checkpoint with this id."""


class SelectDecided(StoreError):
    """A signal or a timer came to a `select` whose winner was already decided: one of
    its checkpoints (`checkpoint`) is no longer open."""

    def __init__(self, checkpoint: Checkpoint) -> None:
        super().__init__(f"checkpoint `{checkpoint.checkpoint_id}` is {checkpoint.status}")
        self.checkpoint = checkpoint


def select_rivals(checkpoint: Checkpoint) -> list[str]:
    """The other checkpoints of the `select` that opened this one (none for a lone
    checkpoint): the request's `select.checkpoints`, written when the select opened."""
    request = checkpoint.request if isinstance(checkpoint.request, dict) else {}
    select = request.get("select")
    ids = select.get("checkpoints") if isinstance(select, dict) else None
    if not isinstance(ids, list):
        return []
    return sorted(str(i) for i in ids if i != checkpoint.checkpoint_id)


class StaleLease(StoreError):
    """The lease this worker holds is expired or was taken over: it may not commit."""


class RunLimitReached(StoreError):
    """The run's workflow has as many runs `running` as its `limit:` allows: the run stays
    `waiting` until one of them ends or waits, and a worker then picks it up."""

    @classmethod
    def of(cls, workflow: str, limit: int) -> RunLimitReached:
        return cls(
            f"workflow `{workflow}` already has {limit} runs running, its `limit`",
            help="the run stays queued: a worker (`mnc worker`) starts it when a slot frees, "
            "or `mnc resume` it then",
        )


class RunRemoved(StoreError):
    """A start named a run that retention (`mnc gc`) removed: its tombstone says what it was."""

    def __init__(self, tombstone: Tombstone) -> None:
        super().__init__(
            f"run `{tombstone.run_id}` ended ({tombstone.status}) and was removed from the "
            "journal by `mnc gc`",
            help="its id stays taken: pick another `--id`",
        )
        self.tombstone = tombstone


class StoreUnavailable(StoreError):
    """The database cannot be reached now, or the link broke during a commit (whose
    outcome is then unknown: reload the run before going on). Worth retrying later."""


# --- records the store returns ----------------------------------------------------------


class Lease(msgspec.Struct, frozen=True):
    """A worker's exclusive right to commit for a run until `expires_at`."""

    run_id: str
    owner: str
    epoch: int
    expires_at: float


class ToolSlots(Protocol):
    """Tools' `limit:` held in the journal, for every worker on it: slots of `concurrent`
    calls that a dead process gives back by itself, and the next start time of a tool
    with `per_second`."""

    def try_acquire(self, tool: str, concurrent: int) -> int | None:
        """Take one of the tool's `concurrent` slots; its number, or `None` if all are held."""

    def release(self, tool: str, slot: int) -> None:
        """Give a slot back."""

    def reserve_start(self, tool: str, per_second: float) -> float:
        """Book the tool's next start by `per_second`; the seconds until it (0: now)."""


class WorkerRecord(msgspec.Struct, frozen=True):
    """A live worker as its last heartbeat left it, with the runs it holds a lease on."""

    worker_id: str
    """The worker's lease owner name."""
    host: str
    pid: int
    concurrency: int
    started_at: float
    heartbeat_at: float
    expires_at: float
    """When the worker counts as gone unless it beats again."""
    claimed: tuple[str, ...]
    """Live runs under an unexpired lease of this worker, by run id."""


class RunRecord(msgspec.Struct, frozen=True):
    run_id: str
    workflow: str
    workflow_class: str
    status: RunStatus
    args: Json
    result: Json
    error: Json
    parent_run_id: str | None
    ir_hash: str
    meta: dict[str, Json]
    waiting_for: list[str]
    """Event names the run waits for: a signal with one of these names wakes it."""
    cancel_requested: bool
    last_seq: int
    """Sequence number of the run's last journal event (0 before the first)."""
    lease_owner: str | None
    lease_epoch: int
    lease_expires_at: float | None
    created_at: float
    updated_at: float
    finished_at: float | None
    damaged: str | None = None
    """Set in listings when the run's row does not decode: why (its JSON fields are empty)."""
    quarantine: Quarantine | None = None
    """Set when a worker set the run aside (`Store.quarantine_run`): no worker claims it
    until a person releases it (`Store.release_quarantine`, `mnc db release`)."""
    cancel_requested_by: str | None = None
    """Who asked to cancel the run (`Store.request_cancel`'s `by`; the first asker), or
    `None` when nobody did or it is not known."""


class Quarantine(msgspec.Struct, frozen=True):
    """Why a run is set aside: a worker found it cannot be executed as stored (a journal
    row that does not decode, a program that does not load), and no worker will gain by
    trying it again until a person repairs it."""

    at: float
    """When, by the store's clock."""
    by: str
    """The worker that set it aside (its lease owner name, `host:pid:nonce`)."""
    reason: str
    """The error the worker met, as it reported it."""


class Tombstone(msgspec.Struct, frozen=True):
    """What the journal keeps of a run that retention (`mnc gc`) removed: enough for a
    start with its id to answer as it did before (the run exists and ended, or the input
    conflicts), and for metrics to say what they no longer see."""

    run_id: str
    workflow: str
    ir_hash: str
    input_hash: str
    """The canonical hash of its input (`mnlang.runtime.run.input_hash`); `""` if the
    program was not in the journal to compute it."""
    status: RunStatus
    created_at: float
    finished_at: float | None
    removed_at: float = 0.0
    """Set by the store when it removes the run."""

    def record(self) -> RunRecord:
        """The run as a start with its id reports it: status and times, no input or result
        (`meta.removed_by_gc` holds when it was removed)."""
        ended = self.finished_at if self.finished_at is not None else self.created_at
        return RunRecord(
            self.run_id,
            self.workflow,
            "",
            self.status,
            None,
            None,
            None,
            None,
            self.ir_hash,
            {"removed_by_gc": self.removed_at},
            [],
            False,
            0,
            None,
            0,
            None,
            self.created_at,
            ended,
            self.finished_at,
        )


class RunCount(msgspec.Struct, frozen=True):
    """How many runs of one workflow (and class) have one status."""

    workflow: str
    workflow_class: str
    status: RunStatus
    count: int


class QueueDepth(msgspec.Struct, frozen=True):
    """The work queue at one moment: runs a worker could take now (`runnable_runs`), runs
    waiting, and runs a worker holds a live lease on."""

    runnable: int
    waiting: int
    leased: int


class Event(msgspec.Struct, frozen=True):
    """One journal entry; `seq` counts from 1 within its run."""

    run_id: str
    seq: int
    at: float
    kind: str
    state: str | None
    branch: str
    data: Json


class RunState(msgspec.Struct, frozen=True):
    """What resuming a run needs: its record, a cursor per branch and the live variables."""

    run: RunRecord
    """The run's record with `args` left `None` (as `get_run(args=False)` gives it): a
    started run keeps its arguments in its variables, and they can be large."""
    cursors: dict[str, Json]
    variables: dict[str, dict[str, Json]]
    """Branch id to variable name to value; list variables come back reassembled."""
    clock_offset: float | None = None
    """The store's clock minus this process's `time.time()`, as read with the state (in
    the same statement as the run's row), or None where the store does not read it so:
    a run resumed at once then needs no statement of its own for the store's clock."""


class LedgerRow(msgspec.Struct, frozen=True):
    """The effect ledger's row for one idempotency key."""

    key: str
    scope_run_id: str | None
    """The run that scopes the key, or `None` for a `scope: global` key."""
    args_hash: str
    status: LedgerStatus
    result: Json
    run_id: str
    """The run that last wrote the row."""
    state: str | None
    created_at: float
    updated_at: float


class Signal(msgspec.Struct, frozen=True):
    run_id: str
    signal_id: str
    name: str
    payload: Json
    sent_at: float
    consumed_at: float | None
    key: str | None = None
    """The correlation key it was sent with: only `wait name for key` takes it."""
    by: str | None = None
    """Who sent it (a user or token's name, `inbound:NAME`), journaled when it is taken."""

    @property
    def address(self) -> str:
        """What a run waiting for this signal lists in `waiting_for`."""
        return signal_address(self.name, self.key)


def signal_address(name: str, key: str | None) -> str:
    """`name`, or `name#key` for a keyed signal (no event name has a `#`)."""
    return name if key is None else f"{name}#{key}"


def split_address(address: str) -> tuple[str, str | None]:
    """A `waiting_for` entry's event name and correlation key (`signal_address` undone)."""
    name, sep, key = address.partition("#")
    return name, key if sep else None


class Checkpoint(msgspec.Struct, frozen=True):
    run_id: str
    checkpoint_id: str
    name: str
    request: Json
    """What the person is asked: question, what to show, options, assignee."""
    status: CheckpointStatus
    decision: Json
    decided_by: str | None
    opened_at: float
    decided_at: float | None


class Decision(msgspec.Struct, frozen=True):
    """The outcome of `decide_checkpoint`: whether this decision won, and the one that did."""

    accepted: bool
    checkpoint: Checkpoint


class Timer(msgspec.Struct, frozen=True):
    run_id: str
    timer_id: str
    due_at: float
    payload: Json


class TimedDecision(msgspec.Struct, frozen=True):
    """A checkpoint's decision to record once its timer is due, for `decide_timeouts`."""

    run_id: str
    checkpoint_id: str
    timer_id: str
    decision: Json


class ScheduleRecord(msgspec.Struct, frozen=True):
    """A `schedule` declaration registered in the journal, and where it stands."""

    name: str
    """The schedule's name in its declaring module (`jobs.nightly`): one registration per
    name, whichever programs import that module."""
    workflow: str
    """The workflow it starts, named by its module as the schedule is (`jobs.report`)."""
    ir_hash: str
    """The program that declares it (kept with `put_program`)."""
    source: str
    """The source file that registered it last."""
    spec: Json
    """When it fires: `{"every_ms": ..., "cron": ..., "timezone": ...}`."""
    next_at: float
    """The next scheduled time that has not started a run yet."""
    last_at: float | None
    last_run_id: str | None
    updated_at: float
    module: str
    """The module that declares it (`jobs`; `ops.jobs` for `ops/jobs.mn`)."""
    paused_at: float | None
    """When `mnc schedules pause` paused it; `None` while it fires."""


class NewSchedule(msgspec.Struct, frozen=True):
    """A schedule to register; `next_at` counts only when the schedule is new or its
    `spec` changed (a worker restarting keeps the schedule's place)."""

    name: str
    workflow: str
    ir_hash: str
    source: str
    spec: Json
    next_at: float
    module: str


class CommitResult(msgspec.Struct, frozen=True):
    last_seq: int
    """Sequence number of the run's last event after this commit."""
    committed_at: float
    cancel_requested: bool
    """Someone asked to cancel the run; the interpreter should stop at its next step."""
    ledger: list[LedgerRow]
    """The stored row for each `Batch.ledger` entry, in order, as it stands after commit."""
    rows_written: int
    """Rows inserted, updated or deleted: constant for a constant-size batch."""


# --- what a commit carries ------------------------------------------------------------------


class Need(msgspec.Struct, frozen=True):
    """What a worker must have to execute a run, as the run records it and a worker
    advertises it (`mnlang.runtime.serving`): kind `module` (`scope`: the program's hash
    and the impl's folder, `name`: the Python module, `digest`: the sha256 of the file the
    run started with, None when none was found) or `provider` (`name`: a model provider
    whose key the worker holds; `scope` empty, no digest)."""

    kind: Literal["module", "provider"]
    scope: str
    name: str
    digest: str | None = None


class Offer(msgspec.Struct, frozen=True):
    """What one live worker advertises it can serve (`Store.advertise`)."""

    worker_id: str
    need: Need
    pinned: bool
    """The worker's policy for changed code: it serves a module need only with the
    run's digest (`pin`), or with any file of the module (`allow`)."""


class NewRun(msgspec.Struct, frozen=True):
    """A run to create; the id is the caller's (`mnc run --id`) or derived for a child."""

    run_id: str
    workflow: str
    args: Json
    workflow_class: str = ""
    ir_hash: str = ""
    parent_run_id: str | None = None
    meta: dict[str, Json] = msgspec.field(default_factory=dict)
    status: RunStatus = "running"
    limit: int | None = None
    """The workflow's `limit:` (runs `running` at once). A new `running` run beyond it is
    created `waiting`, queued for a slot; a waiting run of the workflow takes a slot (and
    becomes `running`) when a worker claims it or a process takes its lease."""
    needs: tuple[Need, ...] = ()
    """The code and keys a worker needs to execute the run: a worker claims it only when
    it advertised each (`claim_runs`); none, any worker may."""


class RunCreated(msgspec.Struct, frozen=True):
    """One run of `create_runs`: the run with its id as the transaction left it and
    whether this start created it; or, for an id `mnc gc` removed, its tombstone."""

    record: RunRecord | None
    created: bool = False
    removed: Tombstone | None = None


class NewEvent(msgspec.Struct, frozen=True):
    kind: str
    data: Json = None
    state: str | None = None
    branch: str = ""


class SetVar(msgspec.Struct, frozen=True):
    """Set a variable to a value stored whole (any JSON value, lists included)."""

    branch: str
    name: str
    value: Json


class SetList(msgspec.Struct, frozen=True):
    """Set a variable to a list stored one row per item, so appends stay cheap."""

    branch: str
    name: str
    items: list[Json]


class AppendList(msgspec.Struct, frozen=True):
    """Append items to a variable last set with `SetList`."""

    branch: str
    name: str
    items: list[Json]


class SetListItem(msgspec.Struct, frozen=True):
    """Replace one item (`0 <= index < len`) of a variable last set with `SetList`."""

    branch: str
    name: str
    index: int
    value: Json


class DeleteVar(msgspec.Struct, frozen=True):
    branch: str
    name: str


class SetCursor(msgspec.Struct, frozen=True):
    branch: str
    cursor: Json


class DropBranch(msgspec.Struct, frozen=True):
    """Forget a finished branch: its cursor and variables, and those of branches nested in it."""

    branch: str


StateOp = SetVar | SetList | AppendList | SetListItem | DeleteVar | SetCursor | DropBranch


class RunUpdate(msgspec.Struct, frozen=True):
    """Run fields to change; `None`/`UNSET` leaves a field as it is."""

    status: RunStatus | None = None
    result: Json | Unset = UNSET
    error: Json | Unset = UNSET
    waiting_for: list[str] | None = None
    ir_hash: str | None = None
    meta: dict[str, Json] | None = None


class LedgerPut(msgspec.Struct, frozen=True):
    """Write the ledger row of an effect key.

    The store applies one rule, inside the commit, so two runs racing on a global key
    cannot both win: a `done` row is final, and a row with another `args_hash` is left
    alone (a key conflict); otherwise the row is inserted or updated. The caller reads
    the outcome from `CommitResult.ledger`.
    """

    key: str
    args_hash: str
    status: LedgerStatus
    global_scope: bool = False
    result: Json = None
    state: str | None = None


class SetTimer(msgspec.Struct, frozen=True):
    """Set (or reset) a timer due `delay` seconds after the commit, by the store's clock."""

    timer_id: str
    delay: float
    payload: Json = None


class OpenCheckpoint(msgspec.Struct, frozen=True):
    checkpoint_id: str
    name: str
    request: Json


class SendSignal(msgspec.Struct, frozen=True):
    """A signal to another run in the same commit (a child telling its parent it ended)."""

    run_id: str
    name: str
    payload: Json
    signal_id: str
    key: str | None = None


class OutboxMessage(msgspec.Struct, frozen=True):
    """A notification to deliver once the commit that carries it is durable (`mnlang.
    outbox`): written in that commit, so a crash never loses one nor invents one. The
    `event_id` is derived from what caused it, so writing it again is a no-op."""

    event_id: str
    type: str
    data: Json


DeliveryStatus = Literal["pending", "delivered", "failed"]


class OutboxEvent(msgspec.Struct, frozen=True):
    """An outbox message as stored, with the run it is about."""

    event_id: str
    type: str
    run_id: str
    workflow: str
    data: Json
    created_at: float


class DeliveryAttempt(msgspec.Struct, frozen=True):
    """One try at handing an outbox event to a sink: the HTTP status it answered (None
    when no answer came) and the error, None for a success."""

    attempt: int
    at: float
    status_code: int | None
    error: str | None


class Delivery(msgspec.Struct, frozen=True):
    """An outbox event on its way to one sink (a `[webhooks.NAME]`)."""

    event: OutboxEvent
    sink: str
    status: DeliveryStatus
    attempts: int
    next_at: float
    updated_at: float
    lease_owner: str | None = None
    attempt_log: tuple[DeliveryAttempt, ...] = ()


class Batch(msgspec.Struct):
    """Everything one commit changes for one run, applied atomically and in this order:
    lease check, events, state ops (in list order), run update, ledger, timers,
    checkpoints, signals, child runs, outbox messages."""

    run_id: str
    lease: Lease | None = None
    """The committing worker's lease; without one, the commit is refused while another
    worker holds an unexpired lease on the run."""
    events: list[NewEvent] = msgspec.field(default_factory=list)
    state: list[StateOp] = msgspec.field(default_factory=list)
    run: RunUpdate | None = None
    ledger: list[LedgerPut] = msgspec.field(default_factory=list)
    set_timers: list[SetTimer] = msgspec.field(default_factory=list)
    cancel_timers: list[str] = msgspec.field(default_factory=list)
    open_checkpoints: list[OpenCheckpoint] = msgspec.field(default_factory=list)
    close_checkpoints: list[str] = msgspec.field(default_factory=list)
    consume_signals: list[str] = msgspec.field(default_factory=list)
    send_signals: list[SendSignal] = msgspec.field(default_factory=list)
    create_runs: list[NewRun] = msgspec.field(default_factory=list)
    """Child runs, created if absent, in the parent's transaction."""
    outbox: list[OutboxMessage] = msgspec.field(default_factory=list)
    """Notifications of this commit (a run ended, a checkpoint opened), stored with it."""


# --- the interface ----------------------------------------------------------------------


class Store(Protocol):
    """A journal store. Every method is one transaction; none of them holds a lock after
    it returns. A failure to reach or read the database raises a `StoreError`."""

    location: str
    """The database's path or URL, for messages."""

    schema_version: int
    """The journal's schema version, as this mnlang writes it."""

    migrated_from: int
    """The schema version the journal had when opened (0: it was created then)."""

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...

    def close(self) -> None:
        """Release the connection."""

    def now(self) -> float:
        """The store's clock, in seconds since the Unix epoch."""

    # runs

    def create_run(self, run: NewRun) -> tuple[RunRecord, bool]:
        """Create a run, or return the existing run with this id; the flag says created.
        `RunRemoved` when retention removed a run with this id (its tombstone)."""

    def create_runs(self, runs: Sequence[NewRun]) -> list[RunCreated]:
        """`create_run` for each of `runs`, in order, in one transaction (one commit: the
        API's group commit of starts). A removed id gives its tombstone, not `RunRemoved`,
        so that the others are still created; two starts with one id create it once."""

    def get_run(self, run_id: str, *, args: bool = True) -> RunRecord | None:
        """The run with this id, or `None`. With `args=False` the record's `args` are left
        `None`: they can be large, and a look at a run's status does not need them."""

    def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        workflow: str | None = None,
        workflow_class: str | None = None,
        parent_run_id: str | None = None,
        id_prefix: str | None = None,
        limit: int = 100,
    ) -> list[RunRecord]:
        """Runs matching every given filter, newest first."""

    def search_runs(
        self,
        *,
        status: RunStatus | None = None,
        workflow: str | None = None,
        workflow_class: str | None = None,
        since: float | None = None,
        until: float | None = None,
        text: str | None = None,
        after: tuple[float, str] | None = None,
        limit: int = 100,
    ) -> tuple[list[RunRecord], bool]:
        """Up to `limit` runs matching every given filter (created in `[since, until)`,
        `text` found in the run id or the stored input, letters of any case as the
        database's `lower` folds them: ASCII at least), newest first then by run id, after
        the run `after` names (its `created_at` and id: a cursor); and whether more match.
        Filtered in the database, a page at a time."""
        ...

    def run_counts(self) -> list[RunCount]:
        """The number of runs per workflow, class and status, sorted by those three."""

    def request_cancel(self, run_id: str, *, by: str | None = None) -> bool:
        """Ask a live run to stop; `False` when it had already ended. `by` (who asks) is
        kept as `RunRecord.cancel_requested_by` unless someone asked before. Counts as a
        commit for the crash hook (`MNC_CRASH_AT_COMMIT`)."""

    def queue_depth(self) -> QueueDepth:
        """How many runs are runnable, waiting and leased: one aggregate query, cheap
        enough for every Prometheus scrape."""

    def runnable_runs(self, limit: int = 100, *, served_by: str | None = None) -> list[str]:
        """Runs a worker should pick up, oldest first: running without a live lease, or
        waiting with a due timer, a decided checkpoint, a signal it waits for, or a
        cancel request, or queued for a slot of its workflow's `limit`; a waiting run of a
        workflow whose `limit` is full is left out until a slot frees, and a quarantined
        run until it is released. With `served_by`, only the runs whose every need that
        worker advertised (`advertise`)."""

    def claim_runs(self, owner: str, ttl: float, limit: int = 1) -> list[Lease]:
        """Lease up to `limit` runnable runs (as `runnable_runs(served_by=owner)` picks
        them: only runs whose needs `owner` advertised) to `owner` for `ttl` seconds, each
        with a new epoch; runs another worker is claiming at the same moment are skipped,
        never waited for or claimed twice. A waiting run of a workflow with a `limit` is
        claimed only into a free slot, and becomes `running` in the same transaction, so
        two workers cannot both take the last slot."""

    def reopen_failed(self, run_id: str, event: NewEvent, meta: dict[str, Json]) -> bool:
        """Set a `failed` run `running` again (its error and end cleared, its `meta`
        replaced), journaling `event`, in one transaction; False when it is not `failed`
        (the state is the run's own: a retry resumes from what its last commit kept). A
        run of a workflow whose `limit` is full is set `waiting`, queued for a slot, as a
        new run is: a worker claims it once a slot frees.
        Counts as a commit for the crash hook (`MNC_CRASH_AT_COMMIT`)."""
        ...

    def quarantine_run(self, run_id: str, *, by: str, reason: str) -> bool:
        """Set a run aside (`RunRecord.quarantine`): `runnable_runs` and `claim_runs` skip
        it until `release_quarantine`. Its lease is left as it is. `False` when it was
        quarantined already (the first quarantine is kept); `RunNotFound` without the run.
        It is a commit for the crash hook (`MNC_CRASH_AT_COMMIT`)."""

    def release_quarantine(self, run_id: str) -> Quarantine | None:
        """Let workers claim a quarantined run again; the quarantine it had, or `None`
        when it had none (nothing changes then). `RunNotFound` without the run."""

    def quarantined_runs(self) -> dict[str, Quarantine]:
        """Every quarantined run's quarantine, by run id."""

    def wait_for_work(self, timeout: float, *, served_by: str | None = None) -> bool:
        """Block until a run may be runnable (`True`; with `served_by`, one that worker
        can serve) or `timeout` seconds pass with no sign of one (`False`). Wakes promptly
        when another process makes a run runnable, and when a timer or a lease falls due.
        Use from one thread at a time."""

    def run_needs(self, run_id: str) -> list[Need]:
        """What the run needs of a worker (`NewRun.needs`), in the order it was given."""

    def set_run_needs(self, run_id: str, needs: Sequence[Need]) -> None:
        """Replace what the run needs (`mnc upgrade` moved it to another program)."""

    # commits and state

    def commit(self, batch: Batch) -> CommitResult:
        """Apply a batch atomically; `StaleLease` if the batch's lease no longer holds."""

    def commit_group(self, batches: Sequence[Batch]) -> list[CommitResult | Exception]:
        """Apply the batches in one transaction, each atomically (a savepoint of its own):
        a batch refused (`StaleLease`, a run that is gone, a value that is not JSON) has its
        error as its outcome and writes nothing; the others commit. The transaction's own
        failure raises (`mnlang.stores.group_commit`)."""

    def use_group_commit(self, on: bool) -> GroupCommitter | None:
        """Send `commit` through a group committer, so that commits of several threads
        arriving together share a transaction (or stop); returns the committer in use."""

    def load_state(self, run_id: str) -> RunState:
        """The last committed cursors and variables; costs the same for any journal length."""

    def read_journal(
        self, run_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]:
        """Events of a run with `seq > after_seq`, in order."""

    # effect ledger

    def ledger_get(self, key: str, *, run_id: str | None) -> LedgerRow | None:
        """The row of a key scoped to `run_id`, or of a global key when `run_id` is `None`."""

    # signals

    def send_signal(
        self,
        run_id: str,
        name: str,
        payload: Json,
        *,
        signal_id: str | None = None,
        key: str | None = None,
        by: str | None = None,
        closes: Sequence[str] = (),
        reason: Json = None,
    ) -> bool:
        """Put a signal, with its correlation key if any, in a run's mailbox; `False` when
        this signal id was already sent, or when an unread signal with this name and key
        is there (a mailbox holds one per key). Without an id every send is new. `by`: who
        sent it, journaled when the run takes it.

        `closes` are the checkpoints of a `select` the signal wins: in the same
        transaction they are closed with `reason` as their decision, or, when one of them
        is no longer open (it was decided, or another arm closed it), nothing is written
        and `SelectDecided` is raised with it."""

    def pending_signals(self, run_id: str, name: str | None = None) -> list[Signal]:
        """Signals not yet consumed, of any key, oldest first."""

    def taken_signal(self, run_id: str, name: str, key: str) -> Signal | None:
        """The consumed signal of this name and correlation key, if a wait took one."""

    def signal_holders(self, signal_id: str) -> list[str]:
        """The runs holding a signal with this id, read or not (an inbound webhook's
        delivery seen before), by run id."""

    def waiting_for_key(self, key: str) -> list[tuple[str, str]]:
        """`(run_id, event)` of each `waiting` run that waits for an event with
        correlation key `key`, by run id then event: found through the `waiting_keys`
        index (an inbound webhook that names a key but no run), not by reading every
        waiting run."""

    def callback_secret(self) -> bytes:
        """The journal's secret for callback tokens: created with the journal, never in a
        run's rows, so a token cannot be derived from what `mnc show` or an export shows."""

    # checkpoints

    def get_checkpoint(self, run_id: str, checkpoint_id: str) -> Checkpoint | None:
        """One checkpoint of a run, in any status."""

    def open_checkpoints(self, run_id: str | None = None) -> list[Checkpoint]:
        """Checkpoints awaiting a decision, of one run or of all, oldest first."""

    def decide_checkpoint(
        self, run_id: str, checkpoint_id: str, decision: Json, *, by: str
    ) -> Decision:
        """Record a decision unless one was committed first; the result says which won.
        A checkpoint of a `select` that wins closes its open rivals (`select_rivals`) in
        the same transaction, each with `{"lost_to": {...}}` as its decision."""

    def close_select(
        self, run_id: str, checkpoint_ids: Sequence[str], reason: Json
    ) -> Checkpoint | None:
        """A `select`'s timer or a signal already in the mailbox wins: close these open
        checkpoints with `reason` as their decision, all or none; returns the first that
        is no longer open (its arm, or the arm named by its `lost_to`, won) instead."""

    # timers

    def due_timers(
        self, *, limit: int = 100, now: float | None = None, prefix: str = ""
    ) -> list[Timer]:
        """Timers due at `now` (default: the store's clock) whose id starts with `prefix`,
        earliest first."""

    def decide_timeouts(self, decisions: Sequence[TimedDecision], *, by: str) -> int:
        """In one transaction, record each decision (`by`, at the store's clock) whose
        checkpoint is still open, whose timer is due and whose run is live (running or
        waiting), and drop that timer; returns how many were recorded. It is a commit for the crash hook (`MNC_CRASH_AT_COMMIT`)."""

    def next_due(self) -> float | None:
        """When the earliest timer is due, or `None` without timers."""

    def run_timers(self, run_id: str) -> list[Timer]:
        """The timers set for one run, earliest first."""

    # leases

    def acquire_lease(self, run_id: str, owner: str, ttl: float) -> Lease | None:
        """Take the run for `ttl` seconds with a new epoch, unless another owner holds an
        unexpired lease (then `None`). A waiting run of a workflow with a `limit` takes a
        slot and becomes `running`; `RunLimitReached` when none is free."""

    def renew_lease(self, lease: Lease, ttl: float) -> Lease:
        """Extend a lease that still holds; `StaleLease` if it expired or was taken over."""

    def release_lease(self, lease: Lease) -> None:
        """Give the run up; does nothing if the lease is no longer current."""

    # workers

    def worker_heartbeat(
        self, worker_id: str, *, host: str, pid: int, concurrency: int, ttl: float
    ) -> None:
        """Record that a worker is alive for `ttl` more seconds (the first beat registers
        it); rows of workers gone for an hour are deleted on the way."""

    def worker_stopped(self, worker_id: str) -> None:
        """Forget a worker that stopped, and what it advertised."""

    def advertise(self, worker_id: str, needs: Sequence[Need], *, pinned: bool) -> None:
        """Replace what a worker says it can serve (its code, with digests, and the
        providers whose keys it holds); `claim_runs` gives it only runs whose needs are
        all among them."""

    def list_offers(self) -> list[Offer]:
        """What the live workers (as `list_workers` has them) advertised."""

    # agents' replies kept across runs

    def cached_reply(self, digest: str) -> str | None:
        """The reply JSON kept under a request's digest, unless it has expired."""

    def keep_reply(self, digest: str, reply: str, ttl_s: float) -> None:
        """Keep a reply for `ttl_s` seconds of the store's clock (replacing an older one),
        and drop replies that have expired."""

    # export cursors

    def export_cursor(self, exporter: str) -> dict[str, int]:
        """An exporter's delivery cursor: for each run, the journal sequence number up to
        which what it exported was accepted (`mnc export traces`)."""

    def move_export_cursor(self, exporter: str, moved: Mapping[str, int]) -> None:
        """Set the cursor's sequence number of each run in `moved`, in one transaction."""

    def list_workers(self) -> list[WorkerRecord]:
        """Workers whose last heartbeat has not expired, by id."""

    def tool_slots(self) -> ToolSlots | None:
        """Tools' limits shared by every process on the journal, or `None` where each
        process holds them for itself (SQLite: one machine)."""

    # the outbox (`mnlang.outbox`)

    def unrouted_outbox(self, limit: int = 100) -> list[OutboxEvent]:
        """Outbox events not yet routed to their sinks, oldest first."""

    def route_outbox(self, routes: Mapping[str, Sequence[str]]) -> None:
        """In one transaction, for each event id a pending delivery to each of its sinks
        (kept if one exists), and the event marked routed."""

    def claim_deliveries(self, owner: str, ttl: float, limit: int = 10) -> list[Delivery]:
        """Lease up to `limit` pending deliveries that are due and not leased to another
        live owner, for `ttl` seconds; an expired lease (its owner died mid-delivery) is
        taken over, so the event is sent again with its id."""

    def finish_attempt(
        self,
        event_id: str,
        sink: str,
        owner: str,
        *,
        status_code: int | None,
        error: str | None,
        outcome: DeliveryStatus,
        retry_in: float = 0.0,
    ) -> bool:
        """Record one attempt and set the delivery's status (`pending`: due again in
        `retry_in` seconds), releasing the lease; `False` (and nothing written) when
        `owner` no longer holds it."""

    def list_deliveries(
        self,
        *,
        run_id: str | None = None,
        status: str | None = None,
        event_id: str | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        """Deliveries with their attempts, newest event first."""

    def redeliver(self, event_id: str, sink: str) -> bool:
        """Make a delivery pending and due now (a failed one is tried again); `False` when
        there is no such delivery."""

    def remove_settled_outbox(
        self, created_before: float, *, after: str = "", limit: int = 1000
    ) -> tuple[int, str | None]:
        """Look at up to `limit` routed outbox events with an id after `after` (in id
        order) and remove, with their deliveries and attempts, each one that is settled
        (`outbox_removable`): none of its deliveries pending, and either created before
        `created_before`, or each delivered and its run removed (by `mnc gc`). Returns
        how many were removed and the `after` of the next page, `None` after the last.
        One transaction; a commit for the crash hook (`MNC_CRASH_AT_COMMIT`)."""

    # compiled programs

    def put_program(self, ir_hash: str, ir_json: str) -> None:
        """Keep a compiled program so its runs can resume without the source."""

    def get_program(self, ir_hash: str) -> str | None:
        """The IR JSON stored under this hash, or `None`."""

    def program_hashes(self) -> list[tuple[str, float]]:
        """The hash and storing time of every stored program, newest first."""

    # schedules

    def put_schedule(self, schedule: NewSchedule) -> ScheduleRecord:
        """Register a schedule, or update its registration (program, workflow, source);
        its `next_at` is kept unless the schedule is new or its `spec` changed."""

    def list_schedules(self) -> list[ScheduleRecord]:
        """Every registered schedule, by name."""

    def delete_schedule(self, name: str) -> bool:
        """Forget a schedule; `False` when none had this name."""

    def pause_schedule(self, name: str) -> bool:
        """Stop a schedule from firing (it stays registered, and registering it again keeps
        it paused); `False` when none has this name."""

    def resume_schedule(self, name: str, next_at: float) -> bool:
        """Let a paused schedule fire again from `next_at` (the times it missed while paused
        are not started); a schedule that is not paused keeps its place. `False` when none
        has this name."""

    def fire_schedule(
        self, name: str, run: NewRun, *, expected: float, scheduled_at: float, next_at: float
    ) -> bool:
        """Start the run of a schedule's time `scheduled_at`, in one transaction: if the
        schedule is not paused and its `next_at` is still `expected`, create `run` (unless a
        run has its id), note it as the last start and move `next_at` on; `False` when
        another worker did it first, or it was paused or dropped meanwhile."""

    # retention

    def ended_roots(
        self,
        *,
        ended_before: float,
        statuses: Sequence[str],
        after: tuple[float, str] | None = None,
        limit: int = 100,
    ) -> list[tuple[float, str]]:
        """Top-level runs (no parent) in one of `statuses` (all terminal) that ended before
        `ended_before`: (end time, run id) pairs in that order, those after `after` (the
        last pair of the previous page: an end time never changes, so pages never skip)."""

    def remove_runs(self, trees: Sequence[Sequence[Tombstone]]) -> list[str]:
        """In one transaction, remove each tree (a top-level run first, then its
        descendants) with every row of its runs (run, arguments, journal, state, ledger rows
        of run scope, signals, checkpoints, timers), keeping a tombstone per run. A tree is
        left whole when, inside the transaction, one of its runs is gone or not ended, a
        run outside it has a parent in it, or a live run (running or waiting) was
        `start`ed by one of its runs. Returns the ids of the roots removed. It is a commit
        for the crash hook (`MNC_CRASH_AT_COMMIT`)."""

    def remove_global_keys(self, updated_before: float, limit: int = 1000) -> int:
        """Delete up to `limit` `scope: global` ledger rows last written before
        `updated_before` whose writing run is not live; how many. Their keys no longer
        deduplicate."""

    def get_tombstone(self, run_id: str) -> Tombstone | None:
        """The tombstone of a run retention removed, or `None`."""

    def tombstone_count(self) -> int:
        """How many runs retention removed."""
