"""The shared journal: one PostgreSQL database that any number of workers on any number of
machines use at once (psycopg 3, with a psycopg-pool connection pool).

URL: `postgresql://user:password@host:port/database?schema=NAME`, plus any libpq
parameter (`sslmode=require`, ...). The journal's tables live in the schema `NAME`
(default `mnc`), created and migrated on open (see `postgres_schema`).

Transactions. Every method is one transaction at READ COMMITTED. A commit is one call of
the server-side function `mnc_commit` (see `postgres_schema`): it locks the run's row,
reads the database clock, judges the batch's lease against the row, and only then
updates the run, appends the events and applies the state ops, in the batch's order. So
two commits for one run serialise on its row, and a commit whose lease epoch was bumped
by a takeover is refused inside its own transaction, having written nothing. The rest
of the batch (ledger, timers, checkpoints, signals, child runs) goes with the COMMIT in
one pipeline: a commit costs two round trips and a handful of statements whatever its
size. A transaction that hit a deadlock, or whose connection broke before COMMIT was
sent, is tried again; a connection lost during COMMIT leaves the outcome unknown and
says so (`StoreUnavailable`).

Work distribution. `claim_runs` takes runnable runs with `FOR NO KEY UPDATE SKIP LOCKED`,
so concurrent workers never wait for or double-claim a run; each claim is a lease with
the next epoch, expiring by the database clock. Transactions that make a run runnable for
someone else (a new or resumed run, a signal, a decision, a cancel request, a released
lease) send a `NOTIFY`; `wait_for_work` listens on a connection of its own and wakes on a
notification, or when the next timer or lease falls due.

A worker paused or cut off inside a transaction holds its run's row lock: the server ends
such a session after `idle_in_transaction_timeout` seconds, which rolls its transaction
back and frees the row for a takeover. A worker cut off in the middle of sending a
pipeline is not idle to the server; server-side TCP keepalives and `tcp_user_timeout`
end its session within about the same time.

Durability `"full"` waits for the server to flush each commit; `"fast"` sets
`synchronous_commit=off`, so a crash of the database server (not of a worker) may lose
the last few commits, never corrupting the journal.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, LiteralString, Self, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import psycopg.errors
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout

from mnlang.stores import postgres_schema
from mnlang.stores.base import (
    TERMINAL_STATUSES,
    UNSET,
    AppendList,
    Batch,
    Checkpoint,
    CheckpointNotFound,
    CommitResult,
    Decision,
    DeleteVar,
    Delivery,
    DeliveryStatus,
    DropBranch,
    Durability,
    Event,
    Json,
    Lease,
    LedgerRow,
    Need,
    NewEvent,
    NewRun,
    NewSchedule,
    Offer,
    OutboxEvent,
    Quarantine,
    QueueDepth,
    RunCount,
    RunCreated,
    RunLimitReached,
    RunRecord,
    RunRemoved,
    RunState,
    RunStatus,
    ScheduleRecord,
    SelectDecided,
    SetCursor,
    SetList,
    SetListItem,
    SetVar,
    Signal,
    StateOp,
    StoreCorrupt,
    StoreError,
    StoreLocked,
    StoreUnavailable,
    TimedDecision,
    Timer,
    Tombstone,
    WorkerRecord,
    select_rivals,
)
from mnlang.stores.common import (
    QUARANTINE_COLUMNS,
    RUN_ROW_TABLES,
    TOMBSTONE_COLUMNS,
    WAITING_FOR_KEY_SQL,
    check_lease,
    check_ttl,
    checkpoint_record,
    dump,
    event_record,
    ledger_record,
    listed,
    load,
    needs_json,
    needs_of,
    run_not_found,
    run_record,
    schedule_record,
    signal_record,
    timer_record,
    tombstone_params,
    tombstone_record,
)
from mnlang.stores.crashpoints import CrashPlan, next_commit_number
from mnlang.stores.outbox_rows import (
    DELIVERY_COLUMNS,
    OUTBOX_COLUMNS,
    ROUTED_PAGE_SQL,
    delivery_record,
    outbox_event,
    outbox_removable,
)
from mnlang.stores.postgres_limits import PostgresToolSlots

DEFAULT_SCHEMA = "mnc"
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,39}")
_ATTEMPTS = 3
"""Tries of a transaction that failed without committing (deadlock, broken connection)."""

# Client-side TCP keepalives, unless the URL sets its own: a worker whose link to the
# database died notices within about half a minute instead of hanging.
_KEEPALIVES = {
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
}


def _dead_client_settings(timeout: float) -> dict[str, str]:
    """Server-side TCP settings that end the session of a client the network lost within
    about `timeout` seconds. The idle-in-transaction timeout alone does not cover it: a
    worker cut off while sending a commit's pipeline leaves its session waiting for the
    rest of the pipeline, which the server counts as active, not idle, so it would hold
    the run's row lock until the operating system's keepalive gave up (hours)."""
    return {
        "tcp_keepalives_idle": str(max(1, round(timeout / 2))),
        "tcp_keepalives_interval": str(max(1, round(timeout / 6))),
        "tcp_keepalives_count": "3",
        "tcp_user_timeout": f"{max(1, round(timeout * 1000))}ms",
    }


_NOW: LiteralString = "extract(epoch FROM clock_timestamp())::float8"
_CLOCK: LiteralString = f"WITH clock AS MATERIALIZED (SELECT {_NOW} AS now) "
_FORGET_WORKER_AFTER = 3600.0
"""Seconds after its last heartbeat expired that a worker's row is deleted."""

_RUN_COLUMNS: LiteralString = (
    "run_id, workflow, workflow_class, status, args, result, error, parent_run_id, ir_hash, "
    "meta, waiting_for, cancel_requested, last_seq, lease_owner, lease_epoch, "
    "lease_expires_at, created_at, updated_at, finished_at, "
    + QUARANTINE_COLUMNS
    + ", cancel_requested_by"
)
_RUN_COLUMNS_NO_ARGS: LiteralString = _RUN_COLUMNS.replace(" args,", " NULL,")
"""The run's columns with its arguments left out (`get_run(args=False)`, `load_state`)."""
_LEDGER_COLUMNS: LiteralString = (
    "key, scope, args_hash, status, result, run_id, state, created_at, updated_at"
)
_CHECKPOINT_COLUMNS: LiteralString = (
    "run_id, checkpoint_id, name, request, status, decision, decided_by, opened_at, decided_at"
)
_SIGNAL_COLUMNS: LiteralString = (
    "run_id, signal_id, name, payload, sent_at, consumed_at, correlation, sent_by"
)
_TIMER_COLUMNS: LiteralString = "run_id, timer_id, due_at, payload"
_SCHEDULE_COLUMNS: LiteralString = (
    "name, workflow, ir_hash, source, spec, next_at, last_at, last_run_id, updated_at, "
    "module, paused_at"
)

# A run is worth a worker's attention when nobody holds it and it can make progress: it is
# running, someone asked to cancel it, a timer of it is due, a checkpoint of it was
# decided, a signal it waits for is unread, or it is queued for a slot of its workflow's
# `limit`. The candidates come from indexes of those (partial ones where the condition
# is rare), so the cost of a look does not grow with the number of runs that wait for
# something that has not happened yet. A quarantined run is left out. Used below a
# `clock` CTE.
_CANDIDATES: LiteralString = """
, candidates AS (
    SELECT run_id FROM runs WHERE status = 'running'
    UNION SELECT run_id FROM runs WHERE cancel_requested
    UNION SELECT run_id FROM runs WHERE queued
    UNION SELECT t.run_id FROM timers AS t, clock WHERE t.due_at <= clock.now
    UNION SELECT run_id FROM checkpoints WHERE status = 'decided'
    UNION SELECT s.run_id FROM signals AS s JOIN runs AS w ON w.run_id = s.run_id
          WHERE s.consumed_at IS NULL
            AND coalesce(s.name || '#' || s.correlation, s.name) = ANY (w.waiting_for)
)
"""

# Whether taking a run needs a slot of its workflow's `limit`: a waiting run of a workflow
# with one, unless it is a queued run that is only to be cancelled. A slot is a run in
# `running`, so a run that waits (for a person, a timer, an event, a child) holds none.
_NEEDS_SLOT: LiteralString = (
    "(r.run_limit IS NOT NULL AND r.status = 'waiting' AND NOT (r.queued AND r.cancel_requested))"
)
_RUNNING_OF: LiteralString = (
    "(SELECT count(*) FROM runs AS o WHERE o.workflow = r.workflow AND o.status = 'running')"
)

# For a worker (`%(served_by)s`, NULL for any), a run one of whose needs it did not
# advertise is left out: a module (with the run's digest, when the worker pins changed
# code) or a provider's key. Judged per run, with an index probe per need: judging each
# distinct `needs` once (as the SQLite store does) would join the candidates to `runs`
# a second time and hash every run's `jsonb`, which measured slower here.
_SERVED: LiteralString = (
    "(%(served_by)s::text IS NULL OR r.needs IS NULL OR NOT EXISTS ("
    " SELECT 1 FROM jsonb_to_recordset(r.needs) AS n(kind text, scope text, name text,"
    " digest text) WHERE NOT EXISTS (SELECT 1 FROM worker_offers AS offer"
    " WHERE offer.worker_id = %(served_by)s::text AND offer.kind = n.kind"
    " AND offer.scope = n.scope AND offer.name = n.name"
    " AND (NOT offer.pinned OR n.digest IS NULL OR offer.digest = n.digest))))"
)

_RUNNABLE_FROM: LiteralString = (
    " FROM candidates JOIN runs AS r ON r.run_id = candidates.run_id, clock"
    " WHERE r.status IN ('running', 'waiting')"
    " AND (r.lease_expires_at IS NULL OR r.lease_expires_at <= clock.now)"
    " AND r.quarantined_at IS NULL"
    f" AND (NOT {_NEEDS_SLOT} OR {_RUNNING_OF} < r.run_limit) AND {_SERVED} "
)

_RUNNABLE_SQL: LiteralString = (
    _CLOCK
    + _CANDIDATES
    + "SELECT r.run_id"
    + _RUNNABLE_FROM
    + "ORDER BY r.updated_at, r.run_id LIMIT %(limit)s"
)

# The runnable runs (as `_RUNNABLE_SQL`, uncounted by a limit), the waiting ones and those
# under a live lease, in one statement.
_QUEUE_DEPTH_SQL: LiteralString = (
    _CLOCK
    + _CANDIDATES
    + "SELECT (SELECT count(*)"
    + _RUNNABLE_FROM
    + "), (SELECT count(*) FROM runs WHERE status = 'waiting'),"
    " (SELECT count(*) FROM runs, clock WHERE status IN ('running', 'waiting')"
    " AND lease_expires_at > clock.now)"
)

# Claims runs that need no slot of a workflow's `limit`; `_CLAIM_SLOTS_SQL` takes those
# that do, workflow by workflow, under the workflow's lock.
_CLAIM_SQL: LiteralString = (
    _CLOCK + _CANDIDATES + ", picked AS MATERIALIZED ("
    " SELECT r.run_id, r.updated_at" + _RUNNABLE_FROM + f" AND NOT {_NEEDS_SLOT}"
    # Runs a dead worker held (an expired lease) first: they were in progress, and new
    # runs queued behind would otherwise delay their takeover past the lease time.
    " ORDER BY r.lease_expires_at IS NULL, r.updated_at, r.run_id LIMIT %(limit)s"
    " FOR NO KEY UPDATE OF r SKIP LOCKED)"
    " UPDATE runs SET lease_owner = %(owner)s, lease_epoch = runs.lease_epoch + 1,"
    " lease_expires_at = clock.now + %(ttl)s"
    " FROM picked, clock WHERE runs.run_id = picked.run_id"
    " RETURNING runs.run_id, runs.lease_epoch, runs.lease_expires_at, picked.updated_at"
)

# The workflows with runnable runs that need a slot and (as this snapshot sees it) have one.
_SLOTTED_WORKFLOWS_SQL: LiteralString = (
    _CLOCK + _CANDIDATES + "SELECT DISTINCT r.workflow" + _RUNNABLE_FROM + f"AND {_NEEDS_SLOT}"
    " ORDER BY r.workflow"
)

# A workflow's slot lock: a transaction advisory lock on the journal's schema and the
# workflow's name, so that taking a slot is serialised per workflow across workers. The
# count of its runs in `running` is read by a later statement, whose snapshot then sees
# every slot taken by a transaction that held the lock before.
_LOCK_SLOTS_SQL: LiteralString = (
    "SELECT pg_advisory_xact_lock(hashtext('mnlang limit ' || current_schema() || ' ' || %s))"
)

# Claims up to the free slots of one workflow (its lock held), oldest first; each run
# claimed becomes `running`, which is its slot.
_CLAIM_SLOTS_SQL: LiteralString = (
    _CLOCK + _CANDIDATES + ", picked AS MATERIALIZED ("
    " SELECT r.run_id, r.updated_at, r.run_limit"
    + _RUNNABLE_FROM
    + f" AND {_NEEDS_SLOT} AND r.workflow = %(workflow)s"
    " ORDER BY r.updated_at, r.run_id LIMIT %(limit)s"
    " FOR NO KEY UPDATE OF r SKIP LOCKED),"
    " ranked AS (SELECT picked.*, row_number() OVER (ORDER BY updated_at, run_id) AS n"
    " FROM picked)"
    " UPDATE runs SET lease_owner = %(owner)s, lease_epoch = runs.lease_epoch + 1,"
    " lease_expires_at = clock.now + %(ttl)s, status = 'running', queued = false"
    " FROM ranked, clock WHERE runs.run_id = ranked.run_id AND ranked.n <= ranked.run_limit"
    " - (SELECT count(*) FROM runs AS o WHERE o.workflow = %(workflow)s AND o.status = 'running')"
    " RETURNING runs.run_id, runs.lease_epoch, runs.lease_expires_at, ranked.updated_at"
)

# Whether a run is runnable now, and in how many seconds one may become so without a
# notification: when a timer falls due or a lease (perhaps a dead worker's) expires.
_WAKE_SQL: LiteralString = (
    _CLOCK + _CANDIDATES + "SELECT EXISTS (SELECT 1" + _RUNNABLE_FROM + "), least("
    " (SELECT min(due_at) FROM timers WHERE due_at > clock.now),"
    " (SELECT min(lease_expires_at) FROM runs"
    "  WHERE status IN ('running', 'waiting') AND lease_expires_at > clock.now)"
    ") - clock.now FROM clock"
)

# A new `running` run beyond its workflow's `limit` is created `waiting`, queued for a
# slot (the workflow's slot lock is taken by an earlier statement of the transaction).
_INSERT_RUN_SQL: LiteralString = (
    "INSERT INTO runs (run_id, workflow, workflow_class, status, args, parent_run_id, "
    "ir_hash, meta, run_limit, queued, needs, created_at, updated_at) "
    "SELECT %(run_id)s, %(workflow)s, %(class)s, "
    "CASE WHEN q.queued THEN 'waiting' ELSE %(status)s END, %(args)s, %(parent)s, "
    "%(ir_hash)s, %(meta)s, %(limit)s::integer, q.queued, %(needs)s::jsonb, %(now)s, %(now)s "
    "FROM (SELECT "
    "coalesce(%(status)s = 'running' AND (SELECT count(*) FROM runs "
    "WHERE workflow = %(workflow)s AND status = 'running') >= %(limit)s::integer, false) "
    "AS queued) AS q "
    "ON CONFLICT (run_id) DO NOTHING"
)

_COMMIT_SQL: LiteralString = (
    "SELECT accepted, last_seq, cancel_requested, lease_owner, lease_epoch, "
    "lease_expires_at, now, rows_written FROM mnc_commit(" + ", ".join(["%s"] * 20) + ")"
)

# A done row is final and a different args hash is a conflict: both keep the row.
_PUT_LEDGER_SQL: LiteralString = (
    "INSERT INTO ledger (scope, key, args_hash, status, result, run_id, state, "
    "created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (scope, key) DO UPDATE SET status = excluded.status, "
    "result = excluded.result, run_id = excluded.run_id, state = excluded.state, "
    "updated_at = excluded.updated_at "
    "WHERE ledger.status <> 'done' AND ledger.args_hash = excluded.args_hash"
)

_Row = tuple[Any, ...]
_Conn = psycopg.Connection[_Row]
_Cursor = psycopg.Cursor[_Row]
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Target:
    """Where a journal URL points, split into what libpq takes and what the store takes."""

    conninfo: str
    schema: str
    location: str
    """The URL without its password, for messages."""


def parse_url(url: str) -> Target:
    """Split `postgresql://...?schema=NAME` into a libpq conninfo and the schema name."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for name, value in query if name == "schema"]
    schema = schemas[-1] if schemas else DEFAULT_SCHEMA
    if not _SCHEMA_NAME.fullmatch(schema):
        raise StoreError(
            f"bad schema name `{schema}` in the journal URL",
            help="use up to 40 lower-case letters, digits and `_`, not starting with a digit",
        )
    conninfo = urlunsplit(
        parts._replace(query=urlencode([(n, v) for n, v in query if n != "schema"]))
    )
    user, at, host = parts.netloc.rpartition("@")
    location = urlunsplit(parts._replace(netloc=f"{user.partition(':')[0]}{at}{host}"))
    try:
        conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as e:
        raise StoreError(
            f"bad PostgreSQL URL `{location}`: {e}",
            help="write it as `postgresql://user:password@host:port/database?schema=NAME`",
        ) from e
    return Target(conninfo, schema, location)


# --- a commit's statements ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Write:
    """A statement of a commit beside `mnc_commit`; `read` ones return rows, not counts."""

    query: LiteralString
    params: Sequence[Any] | dict[str, Any]
    many: bool = False
    read: bool = False

    def send(self, conn: _Conn) -> _Cursor:
        cursor = conn.cursor()
        if self.many:
            cursor.executemany(self.query, self.params)  # type: ignore[arg-type]
        else:
            cursor.execute(self.query, self.params)
        return cursor

    def rows_written(self, cursor: _Cursor) -> int:
        """Rows the statement changed, once the pipeline has synced."""
        return 0 if self.read else max(cursor.rowcount, 0)


_OP_KINDS = {
    SetVar: "set",
    SetList: "list",
    AppendList: "append",
    SetListItem: "item",
    DeleteVar: "delete",
    SetCursor: "cursor",
    DropBranch: "drop",
}


def _op_value(op: StateOp) -> str | None:
    match op:
        case SetVar(value=value) | SetListItem(value=value):
            return dump(value)
        case SetList(items=items) | AppendList(items=items):
            return dump(items)
        case SetCursor(cursor=cursor):
            return dump(cursor)
    return None


def _commit_params(batch: Batch) -> list[Any]:
    """The arguments of `mnc_commit` for a batch (see `postgres_schema.MNC_COMMIT`)."""
    lease, update, events, ops = batch.lease, batch.run, batch.events, batch.state
    status = result = error = waiting_for = ir_hash = meta = None
    set_result = set_error = False
    if update is not None:
        status, waiting_for, ir_hash = update.status, update.waiting_for, update.ir_hash
        set_result, set_error = update.result is not UNSET, update.error is not UNSET
        result = None if update.result is UNSET else dump(update.result)
        error = None if update.error is UNSET else dump(update.error)
        meta = None if update.meta is None else dump(update.meta)
    return [
        batch.run_id,
        None if lease is None else lease.owner,
        None if lease is None else lease.epoch,
        status,
        set_result,
        result,
        set_error,
        error,
        waiting_for,
        ir_hash,
        meta,
        [e.kind for e in events],
        [e.state for e in events],
        [e.branch for e in events],
        [dump(e.data) for e in events],
        [_OP_KINDS[type(op)] for op in ops],
        [op.branch for op in ops],
        [getattr(op, "name", "") for op in ops],
        [_op_value(op) for op in ops],
        [op.index if isinstance(op, SetListItem) else 0 for op in ops],
    ]


@dataclass(slots=True)
class _Plan:
    """A batch encoded before its transaction, so that the row lock is held briefly and a
    value that is not JSON fails before anything is sent."""

    batch: Batch
    commit: list[Any]
    """The arguments of `mnc_commit`: the lease, the run update, events and state ops."""
    ledger: list[tuple[int, tuple[Any, ...]]]
    """Original position and row of each put, in key order so that two commits putting
    the same keys lock them in one order and cannot deadlock."""
    timers: list[tuple[str, float, str]]
    checkpoints: list[tuple[str, str, str]]
    signals: list[tuple[str, str, str, str, str | None]]
    children: list[dict[str, Any]]

    @classmethod
    def of(cls, batch: Batch) -> _Plan:
        lease = batch.lease
        if lease is not None and lease.run_id != batch.run_id:
            raise ValueError(f"lease of run `{lease.run_id}` used for run `{batch.run_id}`")
        run_id = batch.run_id
        puts = sorted(
            enumerate(batch.ledger), key=lambda p: (not p[1].global_scope, p[1].key, p[0])
        )
        return cls(
            batch=batch,
            commit=_commit_params(batch),
            ledger=[
                (
                    i,
                    (
                        "" if put.global_scope else run_id,
                        put.key,
                        put.args_hash,
                        put.status,
                        dump(put.result),
                        run_id,
                        put.state,
                    ),
                )
                for i, put in puts
            ],
            timers=[(t.timer_id, t.delay, dump(t.payload)) for t in batch.set_timers],
            checkpoints=[
                (c.checkpoint_id, c.name, dump(c.request)) for c in batch.open_checkpoints
            ],
            signals=[
                (s.run_id, s.signal_id, s.name, dump(s.payload), s.key) for s in batch.send_signals
            ],
            children=[_run_params(child) for child in batch.create_runs],
        )

    @property
    def has_pending_work(self) -> bool:
        """Whether the batch writes more than `mnc_commit` does, needing `now` to do so."""
        batch = self.batch
        return bool(
            batch.ledger
            or batch.set_timers
            or batch.cancel_timers
            or batch.open_checkpoints
            or batch.close_checkpoints
            or batch.consume_signals
            or batch.send_signals
            or batch.create_runs
            or batch.outbox
        )

    def writes(self, now: float) -> tuple[list[_Write], list[int]]:
        """The statements after `mnc_commit`, in the batch's order, and which of them read
        back ledger rows (one per put, in the order of `Batch.ledger`)."""
        batch, run_id = self.batch, self.batch.run_id
        writes: list[_Write] = []
        ledger_reads = [0] * len(self.ledger)
        for position, (scope, key, *rest) in self.ledger:
            writes.append(_Write(_PUT_LEDGER_SQL, (scope, key, *rest, now, now)))
            ledger_reads[position] = len(writes)
            writes.append(
                _Write(
                    f"SELECT {_LEDGER_COLUMNS} FROM ledger WHERE scope = %s AND key = %s",
                    (scope, key),
                    read=True,
                )
            )
        if self.timers:
            writes.append(
                _Write(
                    "INSERT INTO timers (run_id, timer_id, due_at, payload) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT (run_id, timer_id) DO UPDATE "
                    "SET due_at = excluded.due_at, payload = excluded.payload",
                    [(run_id, tid, now + delay, payload) for tid, delay, payload in self.timers],
                    many=True,
                )
            )
        if batch.cancel_timers:
            writes.append(
                _Write(
                    "DELETE FROM timers WHERE run_id = %s AND timer_id = ANY (%s::text[])",
                    (run_id, batch.cancel_timers),
                )
            )
        if self.checkpoints:
            writes.append(
                _Write(
                    "INSERT INTO checkpoints (run_id, checkpoint_id, name, request, status, "
                    "decision, opened_at) VALUES (%s, %s, %s, %s, 'open', 'null', %s) "
                    "ON CONFLICT (run_id, checkpoint_id) DO NOTHING",
                    [(run_id, *checkpoint, now) for checkpoint in self.checkpoints],
                    many=True,
                )
            )
        if batch.close_checkpoints:
            writes.append(
                _Write(
                    "UPDATE checkpoints SET status = 'closed' "
                    "WHERE run_id = %s AND checkpoint_id = ANY (%s::text[])",
                    (run_id, batch.close_checkpoints),
                )
            )
        if batch.consume_signals:
            writes.append(
                _Write(
                    "UPDATE signals SET consumed_at = %s WHERE run_id = %s "
                    "AND signal_id = ANY (%s::text[]) AND consumed_at IS NULL",
                    (now, run_id, batch.consume_signals),
                )
            )
        if self.signals:
            writes.append(
                _Write(
                    "INSERT INTO signals (run_id, signal_id, name, payload, correlation, "
                    "sent_at) VALUES (%s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT DO NOTHING",
                    [(*signal, now) for signal in self.signals],
                    many=True,
                )
            )
        if self.children:
            limited = sorted({c["workflow"] for c in self.children if c["limit"] is not None})
            if limited:
                writes.append(_Write(_LOCK_SLOTS_SQL, [(w,) for w in limited], many=True))
            writes.append(
                _Write(
                    _INSERT_RUN_SQL,
                    [{**child, "now": now} for child in self.children],
                    many=True,
                )
            )
        if batch.outbox:
            writes.append(
                _Write(
                    "INSERT INTO outbox (event_id, type, run_id, workflow, data, created_at) "
                    "SELECT %s, %s, run_id, workflow, %s, %s FROM runs WHERE run_id = %s "
                    "ON CONFLICT (event_id) DO NOTHING",
                    [(m.event_id, m.type, dump(m.data), now, run_id) for m in batch.outbox],
                    many=True,
                )
            )
        return writes, ledger_reads


def _run_params(run: NewRun) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "workflow": run.workflow,
        "class": run.workflow_class,
        "status": run.status,
        "args": dump(run.args),
        "parent": run.parent_run_id,
        "ir_hash": run.ir_hash,
        "meta": dump(run.meta),
        "limit": run.limit,
        "needs": None if not run.needs else dump(needs_json(run.needs)),
    }


# --- the store ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Tx:
    """A connection inside a transaction, in pipeline mode."""

    conn: _Conn
    pipeline: psycopg.Pipeline

    # Every wait for the server inside a transaction ends the pipeline with a Sync, never
    # a mere flush: only after a Sync does the server count the session as idle in its
    # transaction, so that it can end the session of a worker paused while holding locks.

    def sync(self) -> None:
        self.pipeline.sync()

    def one(self, query: LiteralString, params: Sequence[Any] | dict[str, Any] = ()) -> _Row | None:
        cursor = self.conn.execute(query, params)
        self.pipeline.sync()
        return cursor.fetchone()

    def all(self, query: LiteralString, params: Sequence[Any] | dict[str, Any] = ()) -> list[_Row]:
        cursor = self.conn.execute(query, params)
        self.pipeline.sync()
        return cursor.fetchall()

    def clock(self) -> float:
        row = self.one(f"SELECT {_NOW}")
        assert row is not None
        return float(row[0])


class PostgresStore:
    """A `Store` on a PostgreSQL database; safe to share between the threads of a process."""

    def __init__(
        self,
        url: str,
        *,
        durability: Durability = "full",
        busy_timeout: float = 5.0,
        pool_size: int = 4,
        connect_timeout: float = 10.0,
        idle_in_transaction_timeout: float = 10.0,
    ) -> None:
        target = parse_url(url)
        self.location = target.location
        self.schema = target.schema
        self.busy_timeout = busy_timeout
        self._channel = f"mnc_work_{target.schema}"
        params: dict[str, Any] = {**_KEEPALIVES, **conninfo_to_dict(target.conninfo)}
        settings = {
            "search_path": target.schema,
            "lock_timeout": f"{max(1, round(busy_timeout * 1000))}ms",
            "idle_in_transaction_session_timeout": (
                f"{max(1, round(idle_in_transaction_timeout * 1000))}ms"
            ),
            **_dead_client_settings(idle_in_transaction_timeout),
            "synchronous_commit": "on" if durability == "full" else "off",
        }
        options = " ".join(f"-c {name}={value}" for name, value in settings.items())
        params["options"] = f"{params.get('options') or ''} {options}".strip()
        params.setdefault("application_name", "mnc")
        params.setdefault("connect_timeout", str(max(1, round(connect_timeout))))
        self._conninfo = make_conninfo(**params)
        self._listen_lock = threading.Lock()
        self._listener: _Conn | None = None
        self._tool_slots: PostgresToolSlots | None = None
        with self._connect() as conn:
            try:
                self.migrated_from = postgres_schema.migrate(conn, self.schema, self.location)
            except psycopg.Error as e:
                raise self._store_error(e) from e
        self.schema_version = postgres_schema.SCHEMA_VERSION
        self._pool: ConnectionPool[_Conn] = ConnectionPool(
            self._conninfo,
            kwargs={"autocommit": True},
            min_size=1,
            max_size=max(1, pool_size),
            timeout=busy_timeout + connect_timeout,
            name=f"mnc {self.location}",
            open=False,
        )
        self._pool.open(wait=False)

    def _connect(self) -> _Conn:
        """A connection of its own: unlike the pool's, its failure says why (refused, bad
        password, no such database)."""
        try:
            return psycopg.connect(self._conninfo, autocommit=True)
        except psycopg.Error as e:
            raise self._store_error(e) from e

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._listen_lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
        if self._tool_slots is not None:
            self._tool_slots.close()
        self._pool.close()

    def now(self) -> float:
        return float(self._autocommit(f"SELECT {_NOW}")[0][0])

    # --- transactions and errors ------------------------------------------------------

    def _store_error(self, e: psycopg.Error) -> StoreError:
        """A driver error as a `StoreError` that names the journal and says what to do."""
        where = f"`{self.location}`"
        if isinstance(e, psycopg.errors.LockNotAvailable):
            return StoreLocked(
                f"journal {where}: a row this needs stayed locked by another session "
                f"for {self.busy_timeout:g}s",
                help="a worker may be paused inside a transaction; the server ends such "
                "a session after its idle-in-transaction timeout",
            )
        if isinstance(e, psycopg.errors.InsufficientPrivilege):
            return StoreError(
                f"journal {where}: permission denied ({e.diag.message_primary})",
                help=f"grant the user USAGE and CREATE on schema `{self.schema}` and "
                "read/write on its tables, or let the schema's owner run `mnc db migrate`",
            )
        if isinstance(e, psycopg.errors.UndefinedTable | psycopg.errors.UndefinedColumn):
            return StoreCorrupt(
                f"journal {where} is damaged: {e.diag.message_primary}",
                help="restore the schema from a backup, or point `--db` at another schema",
            )
        if isinstance(e, psycopg.OperationalError):
            text = str(e).strip()
            reason = text.splitlines()[0] if text else type(e).__name__
            return StoreUnavailable(
                f"cannot use journal {where}: {reason}",
                help="check that the database server is running and that the URL's host, "
                "port, database, user and password are right",
            )
        return StoreError(f"journal {where}: {e}")

    def _unavailable(self, e: PoolTimeout) -> StoreUnavailable:
        return StoreUnavailable(
            f"no connection to journal `{self.location}` could be had in time ({e})",
            help="check that the database server is running, or give the store a larger pool",
        )

    def _transaction(
        self, body: Callable[[_Tx], _T], commit_sent: Callable[[], None] | None = None
    ) -> _T:
        """Run `body` in one pipelined transaction, trying again while a try certainly did
        not commit: after a deadlock, or a connection that broke before COMMIT was sent.
        `commit_sent` is called once COMMIT is on its way to the server, before its reply
        is read (the crash hook's `during`)."""
        for attempt in range(1, _ATTEMPTS + 1):
            committing = False
            try:
                with self._pool.connection() as conn:
                    # BEGIN and COMMIT by hand: psycopg's `transaction()` costs extra round
                    # trips in pipeline mode.
                    try:
                        with conn.pipeline() as pipeline:
                            conn.execute("BEGIN")
                            result = body(_Tx(conn, pipeline))
                            committing = True
                            conn.execute("COMMIT")
                            if commit_sent is not None:
                                commit_sent()
                    except BaseException:
                        _roll_back(conn)
                        raise
                return result
            except PoolTimeout as e:
                raise self._unavailable(e) from e
            except psycopg.errors.DeadlockDetected as e:
                if attempt == _ATTEMPTS:
                    raise self._store_error(e) from e
            except psycopg.OperationalError as e:
                if committing:
                    raise StoreUnavailable(
                        f"lost the connection to journal `{self.location}` while committing: "
                        "the transaction may or may not have been applied",
                        help="reload the run's state before going on",
                    ) from e
                if attempt == _ATTEMPTS:
                    raise self._store_error(e) from e
            except psycopg.Error as e:
                if e.sqlstate == postgres_schema.BAD_BATCH_SQLSTATE:
                    raise ValueError(e.diag.message_primary) from None
                raise self._store_error(e) from e
        raise AssertionError("unreachable")

    def _autocommit(
        self, query: LiteralString, params: Sequence[Any] | dict[str, Any] = ()
    ) -> list[_Row]:
        """One statement in a transaction of its own, tried again if the connection turned
        out to be broken: only for reads and writes that are safe to repeat."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with self._pool.connection() as conn:
                    return conn.execute(query, params).fetchall()
            except PoolTimeout as e:
                raise self._unavailable(e) from e
            except psycopg.OperationalError as e:
                if attempt == _ATTEMPTS:
                    raise self._store_error(e) from e
            except psycopg.Error as e:
                raise self._store_error(e) from e
        raise AssertionError("unreachable")

    def _notify(self, tx: _Tx, run_id: str) -> None:
        """Wake waiting workers once this transaction commits (NOTIFY is transactional)."""
        tx.conn.execute("SELECT pg_notify(%s, %s)", (self._channel, run_id))

    # --- runs -------------------------------------------------------------------------------

    def create_run(self, run: NewRun) -> tuple[RunRecord, bool]:
        (one,) = self.create_runs([run])
        if one.removed is not None:
            raise RunRemoved(one.removed)
        assert one.record is not None
        return one.record, one.created

    def create_runs(self, runs: Sequence[NewRun]) -> list[RunCreated]:
        ids = [run.run_id for run in runs]

        def body(tx: _Tx) -> list[RunCreated]:
            # Slot locks in one order, so that two groups cannot wait for each other.
            for workflow in sorted({run.workflow for run in runs if run.limit is not None}):
                tx.conn.execute(_LOCK_SLOTS_SQL, (workflow,))
            tombstones = tx.conn.execute(
                f"SELECT {TOMBSTONE_COLUMNS} FROM removed_runs WHERE run_id = ANY(%s)", (ids,)
            )
            now = tx.clock()  # one round trip for both
            removed = {t.run_id: t for t in map(tombstone_record, tombstones.fetchall())}
            inserted = [
                tx.conn.execute(
                    _INSERT_RUN_SQL + " RETURNING run_id", {**_run_params(run), "now": now}
                )
                for run in runs
                if run.run_id not in removed
            ]
            rows = tx.all(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ANY(%s)", (ids,))
            records = {record.run_id: record for record in map(_run_record, rows)}
            created = {row[0] for row in (cursor.fetchone() for cursor in inserted) if row}
            out: list[RunCreated] = []
            for run in runs:
                if run.run_id in removed:
                    out.append(RunCreated(None, removed=removed[run.run_id]))
                    continue
                # Two starts of one id in the group: the first creates it.
                first = run.run_id in created
                created.discard(run.run_id)
                if first and run.status == "running":
                    self._notify(tx, run.run_id)
                out.append(RunCreated(records[run.run_id], first))
            return out

        return self._transaction(body)

    def get_run(self, run_id: str, *, args: bool = True) -> RunRecord | None:
        columns = _RUN_COLUMNS if args else _RUN_COLUMNS_NO_ARGS
        rows = self._autocommit(f"SELECT {columns} FROM runs WHERE run_id = %s", (run_id,))
        return _run_record(rows[0]) if rows else None

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
        rows = self._autocommit(
            f"SELECT {_RUN_COLUMNS} FROM runs "
            "WHERE (%(status)s::text IS NULL OR status = %(status)s) "
            "AND (%(workflow)s::text IS NULL OR workflow = %(workflow)s) "
            "AND (%(class)s::text IS NULL OR workflow_class = %(class)s) "
            "AND (%(parent)s::text IS NULL OR parent_run_id = %(parent)s) "
            "AND (%(prefix)s::text IS NULL OR starts_with(run_id, %(prefix)s)) "
            "ORDER BY created_at DESC, run_id LIMIT %(limit)s",
            {
                "status": status,
                "workflow": workflow,
                "class": workflow_class,
                "parent": parent_run_id,
                "prefix": id_prefix,
                "limit": limit,
            },
        )
        return [listed(row, _run_record) for row in rows]

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
        at, after_id = after if after is not None else (None, None)
        rows = self._autocommit(
            f"SELECT {_RUN_COLUMNS} FROM runs "
            "WHERE (%(status)s::text IS NULL OR status = %(status)s) "
            "AND (%(workflow)s::text IS NULL OR workflow = %(workflow)s) "
            "AND (%(class)s::text IS NULL OR workflow_class = %(class)s) "
            "AND (%(since)s::float8 IS NULL OR created_at >= %(since)s) "
            "AND (%(until)s::float8 IS NULL OR created_at < %(until)s) "
            "AND (%(text)s::text IS NULL OR strpos(lower(run_id), lower(%(text)s)) > 0 "
            "     OR strpos(lower(args), lower(%(text)s)) > 0) "
            "AND (%(at)s::float8 IS NULL OR created_at < %(at)s "
            "     OR (created_at = %(at)s AND run_id > %(after_id)s)) "
            "ORDER BY created_at DESC, run_id LIMIT %(limit)s",
            {
                "status": status,
                "workflow": workflow,
                "class": workflow_class,
                "since": since,
                "until": until,
                "text": text or None,
                "at": at,
                "after_id": after_id,
                "limit": limit + 1,
            },
        )
        return [listed(row, _run_record) for row in rows[:limit]], len(rows) > limit

    def run_counts(self) -> list[RunCount]:
        rows = self._autocommit(
            "SELECT workflow, workflow_class, status, count(*) FROM runs "
            "GROUP BY workflow, workflow_class, status ORDER BY workflow, workflow_class, status"
        )
        return [RunCount(r[0], r[1], r[2], r[3]) for r in rows]

    def request_cancel(self, run_id: str, *, by: str | None = None) -> bool:
        crash = CrashPlan.from_env(next_commit_number())
        crash.point("before")

        def body(tx: _Tx) -> bool:
            row = tx.one("SELECT status FROM runs WHERE run_id = %s FOR NO KEY UPDATE", (run_id,))
            if row is None:
                raise run_not_found(run_id)
            if row[0] not in ("running", "waiting"):
                return False
            tx.conn.execute(
                f"UPDATE runs SET cancel_requested = true, updated_at = {_NOW}, "
                "cancel_requested_by = CASE WHEN cancel_requested THEN cancel_requested_by "
                "ELSE %s END WHERE run_id = %s",
                (by, run_id),
            )
            self._notify(tx, run_id)
            if crash.moment == "written":
                tx.pipeline.sync()
            crash.point("written")
            return True

        requested = self._transaction(body, lambda: crash.point("during"))
        if requested:
            crash.point("after")
        return requested

    def queue_depth(self) -> QueueDepth:
        runnable, waiting, leased = self._autocommit(_QUEUE_DEPTH_SQL, {"served_by": None})[0]
        return QueueDepth(int(runnable), int(waiting), int(leased))

    def runnable_runs(self, limit: int = 100, *, served_by: str | None = None) -> list[str]:
        params = {"limit": limit, "served_by": served_by}
        return [row[0] for row in self._autocommit(_RUNNABLE_SQL, params)]

    def claim_runs(self, owner: str, ttl: float, limit: int = 1) -> list[Lease]:
        check_ttl(ttl)

        def body(tx: _Tx) -> list[Lease]:
            rows = tx.all(
                _CLAIM_SQL, {"limit": limit, "owner": owner, "ttl": ttl, "served_by": owner}
            )
            for (workflow,) in tx.all(_SLOTTED_WORKFLOWS_SQL, {"served_by": owner}):
                if len(rows) >= limit:
                    break
                tx.conn.execute(_LOCK_SLOTS_SQL, (workflow,))
                rows += tx.all(
                    _CLAIM_SLOTS_SQL,
                    {
                        "limit": limit - len(rows),
                        "owner": owner,
                        "ttl": ttl,
                        "workflow": workflow,
                        "served_by": owner,
                    },
                )
            rows.sort(key=lambda row: (row[3], row[0]))
            return [Lease(run_id, owner, epoch, expires) for run_id, epoch, expires, _ in rows]

        return self._transaction(body)

    def quarantine_run(self, run_id: str, *, by: str, reason: str) -> bool:
        crash = CrashPlan.from_env(next_commit_number())
        crash.point("before")

        def body(tx: _Tx) -> bool:
            row = tx.one(
                "SELECT quarantined_at IS NULL FROM runs WHERE run_id = %s FOR NO KEY UPDATE",
                (run_id,),
            )
            if row is None:
                raise run_not_found(run_id)
            if row[0]:
                tx.conn.execute(
                    f"UPDATE runs SET quarantined_at = {_NOW}, quarantined_by = %s, "
                    "quarantine_reason = %s WHERE run_id = %s",
                    (by, reason, run_id),
                )
            if crash.moment == "written":
                tx.pipeline.sync()
            crash.point("written")
            return bool(row[0])

        quarantined = self._transaction(body, lambda: crash.point("during"))
        crash.point("after")
        return quarantined

    def reopen_failed(self, run_id: str, event: NewEvent, meta: dict[str, Json]) -> bool:
        data, new_meta = dump(event.data), dump(meta)
        crash = CrashPlan.from_env(next_commit_number())
        crash.point("before")

        def body(tx: _Tx) -> bool:
            row = tx.one(
                "SELECT status, last_seq, workflow, run_limit FROM runs "
                "WHERE run_id = %s FOR NO KEY UPDATE",
                (run_id,),
            )
            if row is None:
                raise run_not_found(run_id)
            if row[0] != "failed":
                return False
            seq = row[1] + 1
            # Beyond its workflow's `limit`, the reopened run waits for a slot, as a new
            # run would; the count is read under the workflow's slot lock.
            queued = False
            if row[3] is not None:
                tx.conn.execute(_LOCK_SLOTS_SQL, (row[2],))
                counted = tx.one(
                    "SELECT count(*) FROM runs WHERE workflow = %s AND status = 'running'",
                    (row[2],),
                )
                assert counted is not None
                queued = counted[0] >= row[3]
            tx.conn.execute(
                "INSERT INTO events (run_id, seq, at, kind, state, branch, data) "
                f"VALUES (%s, %s, {_NOW}, %s, %s, %s, %s)",
                (run_id, seq, event.kind, event.state, event.branch, data),
            )
            tx.conn.execute(
                "UPDATE runs SET status = %s, queued = %s, error = NULL, result = NULL, "
                "finished_at = NULL, waiting_for = '{}', cancel_requested = false, "
                f"cancel_requested_by = NULL, meta = %s, last_seq = %s, updated_at = {_NOW} "
                "WHERE run_id = %s",
                ("waiting" if queued else "running", queued, new_meta, seq, run_id),
            )
            self._notify(tx, run_id)
            if crash.moment == "written":
                tx.pipeline.sync()
            crash.point("written")
            return True

        reopened = self._transaction(body, lambda: crash.point("during"))
        crash.point("after")
        return reopened

    def release_quarantine(self, run_id: str) -> Quarantine | None:
        def body(tx: _Tx) -> Quarantine | None:
            row = tx.one(
                f"SELECT {QUARANTINE_COLUMNS} FROM runs WHERE run_id = %s FOR NO KEY UPDATE",
                (run_id,),
            )
            if row is None:
                raise run_not_found(run_id)
            if row[0] is None:
                return None
            tx.conn.execute(
                "UPDATE runs SET quarantined_at = NULL, quarantined_by = NULL, "
                "quarantine_reason = NULL WHERE run_id = %s",
                (run_id,),
            )
            self._notify(tx, run_id)
            return Quarantine(row[0], row[1], row[2])

        return self._transaction(body)

    def quarantined_runs(self) -> dict[str, Quarantine]:
        rows = self._autocommit(
            f"SELECT run_id, {QUARANTINE_COLUMNS} FROM runs "
            "WHERE quarantined_at IS NOT NULL ORDER BY quarantined_at, run_id"
        )
        return {r[0]: Quarantine(r[1], r[2], r[3]) for r in rows}

    def wait_for_work(self, timeout: float, *, served_by: str | None = None) -> bool:
        deadline = time.monotonic() + max(0.0, timeout)
        with self._listen_lock:
            listener = self._listening()
            try:
                # A notification since the last call may mean work: report it, the
                # caller will look.
                if any(True for _ in listener.notifies(timeout=0)):
                    return True
                while True:
                    runnable, due_in = self._autocommit(_WAKE_SQL, {"served_by": served_by})[0]
                    if runnable:
                        return True
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    wait = left if due_in is None else min(left, due_in + 0.001)
                    if any(True for _ in listener.notifies(timeout=wait, stop_after=1)):
                        return True
            except psycopg.Error as e:
                listener.close()
                self._listener = None
                raise self._store_error(e) from e

    def _listening(self) -> _Conn:
        """The connection that listens for wake-ups, opened on first use."""
        if self._listener is None or self._listener.closed:
            conn = self._connect()
            try:
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
            except psycopg.Error as e:
                conn.close()
                raise self._store_error(e) from e
            self._listener = conn
        return self._listener

    # --- commits and state --------------------------------------------------------------

    def commit(self, batch: Batch) -> CommitResult:
        plan = _Plan.of(batch)
        crash = CrashPlan.from_env(next_commit_number())
        crash.point("before")

        def body(tx: _Tx) -> Callable[[], CommitResult]:
            row = tx.one(_COMMIT_SQL, plan.commit)
            assert row is not None
            accepted, last_seq, cancel_requested, owner, epoch, expires_at, now, rows = row
            if accepted is None:
                raise run_not_found(batch.run_id)
            if not accepted:
                check_lease(batch, owner, epoch, expires_at, now)
                raise AssertionError("mnc_commit refused a lease that check_lease accepts")
            # The rest of the batch goes with the COMMIT; its results are read after.
            writes, ledger_reads = plan.writes(now)
            cursors = [write.send(tx.conn) for write in writes]
            # A run set running by someone without its lease is one a worker must pick up.
            resumed = (
                batch.lease is None and batch.run is not None and batch.run.status == "running"
            )
            if batch.create_runs or batch.send_signals or resumed:
                self._notify(tx, batch.run_id)
            if batch.run is not None and batch.run.status not in (None, "running"):
                # A run of a workflow with a `limit` that stops running frees a slot.
                tx.conn.execute(
                    "SELECT pg_notify(%s, run_id) FROM runs "
                    "WHERE run_id = %s AND run_limit IS NOT NULL",
                    (self._channel, batch.run_id),
                )
            if crash.moment == "written":
                tx.pipeline.sync()  # so the crash finds the whole batch sent, uncommitted
            crash.point("written")

            def result() -> CommitResult:
                return CommitResult(
                    last_seq=last_seq,
                    committed_at=now,
                    cancel_requested=bool(cancel_requested),
                    ledger=[ledger_record(_fetched(cursors[i])) for i in ledger_reads],
                    rows_written=rows
                    + sum(w.rows_written(c) for w, c in zip(writes, cursors, strict=True)),
                )

            return result

        committed = self._transaction(body, lambda: crash.point("during"))()
        crash.point("after")
        return committed

    def load_state(self, run_id: str) -> RunState:
        def body(tx: _Tx) -> RunState:
            conn = tx.conn
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            run = conn.execute(
                f"SELECT {_RUN_COLUMNS_NO_ARGS} FROM runs WHERE run_id = %s", (run_id,)
            )
            cursors = conn.execute(
                "SELECT branch, cursor FROM cursors WHERE run_id = %s", (run_id,)
            )
            variables = conn.execute(
                "SELECT branch, name, value, is_list FROM variables WHERE run_id = %s", (run_id,)
            )
            # A list's stored items come back as one JSON array text, joined by the server
            # in index order, so that Python decodes one text instead of one per item.
            lists = conn.execute(
                "SELECT branch, name, string_agg(value, ',' ORDER BY idx) FROM list_items "
                "WHERE run_id = %s GROUP BY branch, name",
                (run_id,),
            )
            tx.sync()
            record = run.fetchone()
            if record is None:
                raise run_not_found(run_id)
            values: dict[str, dict[str, Json]] = {}
            for branch, name, value, is_list in variables.fetchall():
                values.setdefault(branch, {})[name] = (
                    [] if is_list else load(value, run_id, f"variable {name}")
                )
            for branch, name, joined in lists.fetchall():
                values[branch][name] = load(f"[{joined}]", run_id, f"list {name}")
            return RunState(
                run=_run_record(record),
                cursors={
                    branch: load(cursor, run_id, "cursor") for branch, cursor in cursors.fetchall()
                },
                variables=values,
            )

        return self._transaction(body)

    def read_journal(
        self, run_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]:
        rows = self._autocommit(
            "SELECT run_id, seq, at, kind, state, branch, data FROM events "
            "WHERE run_id = %s AND seq > %s ORDER BY seq LIMIT %s",
            (run_id, after_seq, limit),
        )
        return [event_record(r) for r in rows]

    # --- effect ledger --------------------------------------------------------------------

    def ledger_get(self, key: str, *, run_id: str | None) -> LedgerRow | None:
        rows = self._autocommit(
            f"SELECT {_LEDGER_COLUMNS} FROM ledger WHERE scope = %s AND key = %s",
            ("" if run_id is None else run_id, key),
        )
        return ledger_record(rows[0]) if rows else None

    # --- signals --------------------------------------------------------------------------

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
        encoded = dump(payload)

        def body(tx: _Tx) -> bool:
            exists = tx.conn.execute("SELECT 1 FROM runs WHERE run_id = %s", (run_id,))
            now = tx.clock()
            if exists.fetchone() is None:
                raise run_not_found(run_id)
            blocker = self._close_select(tx, run_id, closes, reason)
            if blocker is not None:
                raise SelectDecided(blocker)
            inserted = tx.conn.execute(
                "INSERT INTO signals (run_id, signal_id, name, payload, sent_at, correlation, "
                "sent_by) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (run_id, signal_id or uuid.uuid4().hex, name, encoded, now, key, by),
            )
            self._notify(tx, run_id)
            tx.pipeline.sync()
            return inserted.rowcount == 1

        return self._transaction(body)

    def pending_signals(self, run_id: str, name: str | None = None) -> list[Signal]:
        rows = self._autocommit(
            f"SELECT {_SIGNAL_COLUMNS} FROM signals WHERE run_id = %(run)s "
            "AND consumed_at IS NULL AND (%(name)s::text IS NULL OR name = %(name)s) "
            "ORDER BY arrival",
            {"run": run_id, "name": name},
        )
        return [signal_record(r) for r in rows]

    def taken_signal(self, run_id: str, name: str, key: str) -> Signal | None:
        rows = self._autocommit(
            f"SELECT {_SIGNAL_COLUMNS} FROM signals WHERE run_id = %s AND name = %s "
            "AND correlation = %s AND consumed_at IS NOT NULL ORDER BY arrival LIMIT 1",
            (run_id, name, key),
        )
        return signal_record(rows[0]) if rows else None

    def callback_secret(self) -> bytes:
        rows = self._autocommit("SELECT value FROM secrets WHERE name = 'callback_tokens'", ())
        if not rows:
            raise StoreCorrupt(f"journal `{self.location}` has no callback token secret")
        return bytes.fromhex(str(rows[0][0]))

    # --- checkpoints --------------------------------------------------------------------

    def get_checkpoint(self, run_id: str, checkpoint_id: str) -> Checkpoint | None:
        rows = self._autocommit(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints "
            "WHERE run_id = %s AND checkpoint_id = %s",
            (run_id, checkpoint_id),
        )
        return checkpoint_record(rows[0]) if rows else None

    def open_checkpoints(self, run_id: str | None = None) -> list[Checkpoint]:
        rows = self._autocommit(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints WHERE status = 'open' "
            "AND (%(run)s::text IS NULL OR run_id = %(run)s) "
            "ORDER BY opened_at, run_id, checkpoint_id",
            {"run": run_id},
        )
        return [checkpoint_record(row) for row in rows]

    def decide_checkpoint(
        self, run_id: str, checkpoint_id: str, decision: Json, *, by: str
    ) -> Decision:
        encoded = dump(decision)

        def body(tx: _Tx) -> Decision:
            now = tx.clock()
            first = tx.one(
                f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints "
                "WHERE run_id = %s AND checkpoint_id = %s",
                (run_id, checkpoint_id),
            )
            rivals = select_rivals(checkpoint_record(first)) if first is not None else []
            if rivals:
                # Lock the select's checkpoints in one order, so that two people deciding
                # two of them at once queue instead of deadlocking.
                self._lock_checkpoints(tx, run_id, [checkpoint_id, *rivals])
            decided = tx.one(
                "UPDATE checkpoints SET status = 'decided', decision = %s, decided_by = %s, "
                "decided_at = %s WHERE run_id = %s AND checkpoint_id = %s AND status = 'open' "
                f"RETURNING {_CHECKPOINT_COLUMNS}",
                (encoded, by, now, run_id, checkpoint_id),
            )
            if decided is not None:
                won = checkpoint_record(decided)
                lost_to = {"arm": "checkpoint", "name": won.name, "by": by}
                if rivals:
                    tx.all(
                        "UPDATE checkpoints SET status = 'closed', decision = %s "
                        "WHERE run_id = %s AND checkpoint_id = ANY(%s) AND status = 'open' "
                        "RETURNING checkpoint_id",
                        (dump({"lost_to": lost_to}), run_id, rivals),
                    )
                self._notify(tx, run_id)
                return Decision(accepted=True, checkpoint=won)
            current = tx.one(
                f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints "
                "WHERE run_id = %s AND checkpoint_id = %s",
                (run_id, checkpoint_id),
            )
            if current is None:
                raise CheckpointNotFound(
                    f"run `{run_id}` has no checkpoint `{checkpoint_id}`",
                    help="`mnc show RUN` lists a run's checkpoints",
                )
            return Decision(accepted=False, checkpoint=checkpoint_record(current))

        return self._transaction(body)

    def close_select(
        self, run_id: str, checkpoint_ids: Sequence[str], reason: Json
    ) -> Checkpoint | None:
        def body(tx: _Tx) -> Checkpoint | None:
            return self._close_select(tx, run_id, checkpoint_ids, reason)

        return self._transaction(body)

    def _lock_checkpoints(self, tx: _Tx, run_id: str, checkpoint_ids: Sequence[str]) -> list[_Row]:
        return tx.all(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints "
            "WHERE run_id = %s AND checkpoint_id = ANY(%s) ORDER BY checkpoint_id FOR UPDATE",
            (run_id, sorted(checkpoint_ids)),
        )

    def _close_select(
        self, tx: _Tx, run_id: str, checkpoint_ids: Sequence[str], reason: Json
    ) -> Checkpoint | None:
        """Inside a transaction: close the checkpoints if all are open, else the first that
        is not."""
        if not checkpoint_ids:
            return None
        for row in self._lock_checkpoints(tx, run_id, checkpoint_ids):
            found = checkpoint_record(row)
            if found.status != "open":
                return found
        tx.all(
            "UPDATE checkpoints SET status = 'closed', decision = %s "
            "WHERE run_id = %s AND checkpoint_id = ANY(%s) RETURNING checkpoint_id",
            (dump(reason), run_id, list(checkpoint_ids)),
        )
        return None

    # --- timers ---------------------------------------------------------------------------

    def due_timers(
        self, *, limit: int = 100, now: float | None = None, prefix: str = ""
    ) -> list[Timer]:
        rows = self._autocommit(
            f"SELECT {_TIMER_COLUMNS} FROM timers WHERE due_at <= coalesce(%s::float8, {_NOW}) "
            "AND starts_with(timer_id, %s) ORDER BY due_at, run_id, timer_id LIMIT %s",
            (now, prefix, limit),
        )
        return [timer_record(r) for r in rows]

    def decide_timeouts(self, decisions: Sequence[TimedDecision], *, by: str) -> int:
        crash = CrashPlan.from_env(next_commit_number())
        crash.point("before")
        columns: list[list[str]] = [[], [], [], []]
        for d in decisions:
            for column, value in zip(
                columns, (d.run_id, d.checkpoint_id, d.timer_id, dump(d.decision)), strict=True
            ):
                column.append(value)

        def body(tx: _Tx) -> int:
            row = tx.one(
                _CLOCK + ", wanted (run_id, checkpoint_id, timer_id, decision) AS ("
                "  SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[])), "
                "decided AS ("
                "  UPDATE checkpoints AS c SET status = 'decided', decision = w.decision, "
                "    decided_by = %s, decided_at = clock.now "
                "  FROM wanted AS w, clock "
                "  WHERE c.run_id = w.run_id AND c.checkpoint_id = w.checkpoint_id "
                "    AND c.status = 'open' AND EXISTS (SELECT 1 FROM timers AS t "
                "      WHERE t.run_id = w.run_id AND t.timer_id = w.timer_id "
                "        AND t.due_at <= clock.now) "
                "    AND EXISTS (SELECT 1 FROM runs AS r "
                "      WHERE r.run_id = w.run_id AND r.status IN ('running', 'waiting')) "
                "  RETURNING w.run_id, w.timer_id), "
                "dropped AS (DELETE FROM timers AS t USING decided AS d "
                "  WHERE t.run_id = d.run_id AND t.timer_id = d.timer_id) "
                "SELECT count(*), count(pg_notify(%s, run_id)) FROM decided",
                (*columns, by, self._channel),
            )
            assert row is not None
            if crash.moment == "written":
                tx.pipeline.sync()
            crash.point("written")
            return int(row[0])

        decided = self._transaction(body, lambda: crash.point("during"))
        crash.point("after")
        return decided

    def next_due(self) -> float | None:
        value = self._autocommit("SELECT min(due_at) FROM timers")[0][0]
        return None if value is None else float(value)

    def run_timers(self, run_id: str) -> list[Timer]:
        rows = self._autocommit(
            f"SELECT {_TIMER_COLUMNS} FROM timers WHERE run_id = %s ORDER BY due_at, timer_id",
            (run_id,),
        )
        return [timer_record(r) for r in rows]

    # --- leases ---------------------------------------------------------------------------

    def _locked_lease(self, tx: _Tx, run_id: str) -> tuple[str | None, int, float | None, float]:
        """The run's lease columns, its row locked for the transaction, and the clock
        read after the lock was granted."""
        locked = tx.conn.execute(
            "SELECT lease_owner, lease_epoch, lease_expires_at FROM runs "
            "WHERE run_id = %s FOR NO KEY UPDATE",
            (run_id,),
        )
        now = tx.clock()
        row = locked.fetchone()
        if row is None:
            raise run_not_found(run_id)
        owner, epoch, expires_at = row
        return owner, epoch, expires_at, now

    def acquire_lease(self, run_id: str, owner: str, ttl: float) -> Lease | None:
        check_ttl(ttl)

        def body(tx: _Tx) -> Lease | None:
            holder, epoch, expires_at, now = self._locked_lease(tx, run_id)
            held = holder is not None and expires_at is not None and expires_at > now
            if held and holder != owner:
                return None
            self._take_slot(tx, run_id)
            lease = Lease(run_id, owner, epoch + 1, now + ttl)
            tx.conn.execute(
                "UPDATE runs SET lease_owner = %s, lease_epoch = %s, lease_expires_at = %s "
                "WHERE run_id = %s",
                (owner, lease.epoch, lease.expires_at, run_id),
            )
            return lease

        return self._transaction(body)

    def _take_slot(self, tx: _Tx, run_id: str) -> None:
        """Make a waiting run of a workflow with a `limit` (its row locked) `running` if a
        slot is free, under the workflow's slot lock, and take it out of the queue;
        `RunLimitReached` when none is."""
        row = tx.one(
            f"SELECT r.workflow, r.run_limit, {_NEEDS_SLOT}, r.queued FROM runs AS r "
            "WHERE r.run_id = %s",
            (run_id,),
        )
        assert row is not None  # the caller holds the row's lock
        workflow, run_limit, needs_slot, queued = row
        if needs_slot:
            tx.conn.execute(_LOCK_SLOTS_SQL, (workflow,))
            counted = tx.one(
                "SELECT count(*) FROM runs WHERE workflow = %s AND status = 'running'",
                (workflow,),
            )
            assert counted is not None
            if counted[0] >= run_limit:
                raise RunLimitReached.of(workflow, run_limit)
        if needs_slot or queued:
            tx.conn.execute(
                "UPDATE runs SET status = CASE WHEN %s THEN 'running' ELSE status END, "
                "queued = false WHERE run_id = %s",
                (needs_slot, run_id),
            )

    def renew_lease(self, lease: Lease, ttl: float) -> Lease:
        check_ttl(ttl)

        def body(tx: _Tx) -> Lease:
            holder, epoch, expires_at, now = self._locked_lease(tx, lease.run_id)
            check_lease(Batch(run_id=lease.run_id, lease=lease), holder, epoch, expires_at, now)
            renewed = Lease(lease.run_id, lease.owner, lease.epoch, now + ttl)
            tx.conn.execute(
                "UPDATE runs SET lease_expires_at = %s WHERE run_id = %s",
                (renewed.expires_at, lease.run_id),
            )
            return renewed

        return self._transaction(body)

    def release_lease(self, lease: Lease) -> None:
        def body(tx: _Tx) -> None:
            released = tx.one(
                "UPDATE runs SET lease_owner = NULL, lease_expires_at = NULL "
                "WHERE run_id = %s AND lease_owner = %s AND lease_epoch = %s "
                "RETURNING status",
                (lease.run_id, lease.owner, lease.epoch),
            )
            if released is not None and released[0] in ("running", "waiting"):
                self._notify(tx, lease.run_id)

        self._transaction(body)

    # --- workers --------------------------------------------------------------------------

    def worker_heartbeat(
        self, worker_id: str, *, host: str, pid: int, concurrency: int, ttl: float
    ) -> None:
        check_ttl(ttl)

        def body(tx: _Tx) -> None:
            tx.one(
                f"INSERT INTO workers (worker_id, host, pid, concurrency, started_at, "
                f"heartbeat_at, expires_at) VALUES (%(id)s, %(host)s, %(pid)s, %(conc)s, "
                f"{_NOW}, {_NOW}, {_NOW} + %(ttl)s) ON CONFLICT (worker_id) DO UPDATE SET "
                "concurrency = excluded.concurrency, heartbeat_at = excluded.heartbeat_at, "
                "expires_at = excluded.expires_at RETURNING 1",
                {"id": worker_id, "host": host, "pid": pid, "conc": concurrency, "ttl": ttl},
            )
            tx.all(
                f"DELETE FROM workers WHERE expires_at < {_NOW} - %s RETURNING 1",
                (_FORGET_WORKER_AFTER,),
            )
            tx.all(
                "DELETE FROM worker_offers AS o WHERE NOT EXISTS "
                "(SELECT 1 FROM workers AS w WHERE w.worker_id = o.worker_id) RETURNING 1"
            )

        self._transaction(body)

    def worker_stopped(self, worker_id: str) -> None:
        def body(tx: _Tx) -> None:
            tx.all("DELETE FROM workers WHERE worker_id = %s RETURNING 1", (worker_id,))
            tx.all("DELETE FROM worker_offers WHERE worker_id = %s RETURNING 1", (worker_id,))

        self._transaction(body)

    def advertise(self, worker_id: str, needs: Sequence[Need], *, pinned: bool) -> None:
        def body(tx: _Tx) -> None:
            tx.all("DELETE FROM worker_offers WHERE worker_id = %s RETURNING 1", (worker_id,))
            if needs:
                tx.all(
                    "INSERT INTO worker_offers (worker_id, kind, scope, name, digest, pinned) "
                    "SELECT %s, n.kind, n.scope, n.name, n.digest, %s FROM "
                    "jsonb_to_recordset(%s::jsonb) AS n(kind text, scope text, name text, "
                    "digest text) ON CONFLICT DO NOTHING RETURNING 1",
                    (worker_id, pinned, dump(needs_json(needs))),
                )

        self._transaction(body)

    def list_offers(self) -> list[Offer]:
        rows = self._autocommit(
            _CLOCK + "SELECT o.worker_id, o.kind, o.scope, o.name, o.digest, o.pinned "
            "FROM worker_offers AS o JOIN workers AS w USING (worker_id), clock "
            "WHERE w.expires_at > clock.now ORDER BY o.worker_id, o.kind, o.scope, o.name"
        )
        return [Offer(r[0], Need(r[1], r[2], r[3], r[4]), bool(r[5])) for r in rows]

    def set_run_needs(self, run_id: str, needs: Sequence[Need]) -> None:
        self._autocommit(
            "UPDATE runs SET needs = %s::jsonb WHERE run_id = %s RETURNING 1",
            (None if not needs else dump(needs_json(needs)), run_id),
        )

    def run_needs(self, run_id: str) -> list[Need]:
        rows = self._autocommit("SELECT needs FROM runs WHERE run_id = %s", (run_id,))
        if not rows:
            raise run_not_found(run_id)
        return needs_of(rows[0][0], run_id)

    def cached_reply(self, digest: str) -> str | None:
        rows = self._autocommit(
            _CLOCK + "SELECT reply FROM reply_cache, clock "
            "WHERE digest = %s AND expires_at > clock.now",
            (digest,),
        )
        return str(rows[0][0]) if rows else None

    def keep_reply(self, digest: str, reply: str, ttl_s: float) -> None:
        def body(tx: _Tx) -> None:
            tx.conn.execute(
                _CLOCK + "DELETE FROM reply_cache USING clock WHERE expires_at <= clock.now"
            )
            tx.conn.execute(
                _CLOCK + "INSERT INTO reply_cache (digest, reply, created_at, expires_at) "
                "SELECT %s, %s, clock.now, clock.now + %s FROM clock "
                "ON CONFLICT (digest) DO UPDATE SET reply = excluded.reply, "
                "created_at = excluded.created_at, expires_at = excluded.expires_at",
                (digest, reply, ttl_s),
            )

        self._transaction(body)

    def export_cursor(self, exporter: str) -> dict[str, int]:
        rows = self._autocommit(
            "SELECT run_id, seq FROM export_cursors WHERE exporter = %s", (exporter,)
        )
        return {str(run_id): int(seq) for run_id, seq in rows}  # type: ignore[call-overload]

    def move_export_cursor(self, exporter: str, moved: Mapping[str, int]) -> None:
        def body(tx: _Tx) -> None:
            with tx.conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO export_cursors (exporter, run_id, seq) VALUES (%s, %s, %s) "
                    "ON CONFLICT (exporter, run_id) DO UPDATE SET seq = excluded.seq",
                    [(exporter, run_id, seq) for run_id, seq in moved.items()],
                )

        self._transaction(body)

    def signal_holders(self, signal_id: str) -> list[str]:
        rows = self._autocommit(
            "SELECT run_id FROM signals WHERE signal_id = %s ORDER BY run_id", (signal_id,)
        )
        return [str(row[0]) for row in rows]  # type: ignore[call-overload]

    def waiting_for_key(self, key: str) -> list[tuple[str, str]]:
        rows = self._autocommit(WAITING_FOR_KEY_SQL, (key,))
        return [(str(row[0]), str(row[1])) for row in rows]  # type: ignore[call-overload]

    # --- the outbox -----------------------------------------------------------------------

    def unrouted_outbox(self, limit: int = 100) -> list[OutboxEvent]:
        rows = self._autocommit(
            f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE routed_at IS NULL "
            "ORDER BY created_at, event_id LIMIT %s",
            (limit,),
        )
        return [outbox_event(row) for row in rows]

    def route_outbox(self, routes: Mapping[str, Sequence[str]]) -> None:
        def body(tx: _Tx) -> None:
            with tx.conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO deliveries (event_id, sink, status, attempts, next_at, "
                    f"updated_at) VALUES (%s, %s, 'pending', 0, {_NOW}, {_NOW}) "
                    "ON CONFLICT (event_id, sink) DO NOTHING",
                    [(e, sink) for e, sinks in routes.items() for sink in sinks],
                )
                cursor.execute(
                    f"UPDATE outbox SET routed_at = {_NOW} "
                    "WHERE event_id = ANY (%s::text[]) AND routed_at IS NULL",
                    (list(routes),),
                )

        self._transaction(body)

    def claim_deliveries(self, owner: str, ttl: float, limit: int = 10) -> list[Delivery]:
        check_ttl(ttl)

        def body(tx: _Tx) -> list[Delivery]:
            claimed = tx.all(
                f"UPDATE deliveries SET lease_owner = %s, lease_expires_at = {_NOW} + %s "
                "WHERE (event_id, sink) IN (SELECT event_id, sink FROM deliveries "
                f"WHERE status = 'pending' AND next_at <= {_NOW} "
                f"AND (lease_expires_at IS NULL OR lease_expires_at <= {_NOW}) "
                "ORDER BY next_at LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING event_id, sink",
                (owner, ttl, limit),
            )
            return [self._delivery(tx, e, sink) for e, sink in claimed]  # type: ignore[misc]

        return self._transaction(body)

    def _delivery(self, tx: _Tx, event_id: str, sink: str, *, attempts: bool = False) -> Delivery:
        row = tx.one(
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries AS d JOIN outbox AS o "
            "USING (event_id) WHERE d.event_id = %s AND d.sink = %s",
            (event_id, sink),
        )
        assert row is not None
        log = (
            tx.all(
                "SELECT attempt, at, status_code, error FROM delivery_attempts "
                "WHERE event_id = %s AND sink = %s ORDER BY attempt",
                (event_id, sink),
            )
            if attempts
            else []
        )
        return delivery_record(row, log)

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
        def body(tx: _Tx) -> bool:
            row = tx.one(
                f"UPDATE deliveries SET status = %s, attempts = attempts + 1, "
                f"next_at = {_NOW} + %s, updated_at = {_NOW}, lease_owner = NULL, "
                "lease_expires_at = NULL WHERE event_id = %s AND sink = %s "
                "AND lease_owner = %s RETURNING attempts",
                (outcome, retry_in, event_id, sink, owner),
            )
            if row is None:
                return False
            tx.conn.execute(
                "INSERT INTO delivery_attempts (event_id, sink, attempt, at, status_code, "
                f"error) VALUES (%s, %s, %s, {_NOW}, %s, %s)",
                (event_id, sink, row[0], status_code, error),
            )
            return True

        return self._transaction(body)

    def list_deliveries(
        self,
        *,
        run_id: str | None = None,
        status: str | None = None,
        event_id: str | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        def body(tx: _Tx) -> list[Delivery]:
            tx.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            keys = tx.all(
                "SELECT d.event_id, d.sink FROM deliveries AS d JOIN outbox AS o "
                "USING (event_id) WHERE (%(run)s::text IS NULL OR o.run_id = %(run)s) "
                "AND (%(status)s::text IS NULL OR d.status = %(status)s) "
                "AND (%(event)s::text IS NULL OR d.event_id = %(event)s) "
                "ORDER BY o.created_at DESC, d.event_id, d.sink LIMIT %(limit)s",
                {"run": run_id, "status": status, "event": event_id, "limit": limit},
            )
            return [self._delivery(tx, e, sink, attempts=True) for e, sink in keys]  # type: ignore[misc]

        return self._transaction(body)

    def redeliver(self, event_id: str, sink: str) -> bool:
        rows = self._autocommit(
            f"UPDATE deliveries SET status = 'pending', next_at = {_NOW}, updated_at = {_NOW} "
            "WHERE event_id = %s AND sink = %s RETURNING 1",
            (event_id, sink),
        )
        return bool(rows)

    def remove_settled_outbox(
        self, created_before: float, *, after: str = "", limit: int = 1000
    ) -> tuple[int, str | None]:
        crash = CrashPlan.from_env(next_commit_number())
        crash.point("before")

        def body(tx: _Tx) -> tuple[int, str | None]:
            page = tx.all(
                ROUTED_PAGE_SQL,
                {"cutoff": created_before, "after": after, "limit": limit},
            )
            ids = [row[0] for row in page]
            # Locked, so a redelivery committed meanwhile is seen (its row's new status)
            # and one after waits for this transaction: a pending delivery never goes.
            statuses: dict[str, list[str]] = {str(i): [] for i in ids}
            for event_id, status in tx.all(
                "SELECT event_id, status FROM deliveries WHERE event_id = ANY (%s) "
                "ORDER BY event_id, sink FOR UPDATE",
                (ids,),
            ):
                statuses[str(event_id)].append(str(status))
            removable = [
                str(event_id)
                for event_id, old, run_gone in page
                if outbox_removable(statuses[str(event_id)], bool(old), bool(run_gone))
            ]
            for table in ("delivery_attempts", "deliveries", "outbox"):
                tx.conn.execute(
                    sql.SQL("DELETE FROM {} WHERE event_id = ANY (%s)").format(
                        sql.Identifier(table)
                    ),
                    (removable,),
                )
            if crash.moment == "written":
                tx.pipeline.sync()
            crash.point("written")
            return len(removable), (str(page[-1][0]) if len(page) == limit else None)

        removed = self._transaction(body, lambda: crash.point("during"))
        crash.point("after")
        return removed

    def list_workers(self) -> list[WorkerRecord]:
        rows = self._autocommit(
            _CLOCK + "SELECT w.worker_id, w.host, w.pid, w.concurrency, w.started_at, "
            "w.heartbeat_at, w.expires_at, coalesce((SELECT array_agg(r.run_id ORDER BY r.run_id)"
            " FROM runs AS r WHERE r.lease_owner = w.worker_id"
            " AND r.status IN ('running', 'waiting') AND r.lease_expires_at > clock.now), '{}')"
            " FROM workers AS w, clock WHERE w.expires_at > clock.now ORDER BY w.worker_id"
        )
        return [_worker_record(row) for row in rows]

    def tool_slots(self) -> PostgresToolSlots:
        if self._tool_slots is None:
            self._tool_slots = PostgresToolSlots(self._conninfo, self.schema)
        return self._tool_slots

    # --- compiled programs ----------------------------------------------------------------

    def put_program(self, ir_hash: str, ir_json: str) -> None:
        self._autocommit(
            f"INSERT INTO programs (ir_hash, ir, created_at) VALUES (%s, %s, {_NOW}) "
            "ON CONFLICT (ir_hash) DO NOTHING RETURNING 1",
            (ir_hash, ir_json),
        )

    def get_program(self, ir_hash: str) -> str | None:
        rows = self._autocommit("SELECT ir FROM programs WHERE ir_hash = %s", (ir_hash,))
        return str(rows[0][0]) if rows else None

    def program_hashes(self) -> list[tuple[str, float]]:
        rows = self._autocommit("SELECT ir_hash, created_at FROM programs ORDER BY created_at DESC")
        return [(str(r[0]), float(r[1])) for r in rows]

    # --- schedules ------------------------------------------------------------------------

    def put_schedule(self, schedule: NewSchedule) -> ScheduleRecord:
        # A changed spec starts over from the given time; an unchanged one keeps its place.
        # A paused schedule stays paused.
        rows = self._autocommit(
            "INSERT INTO schedules (name, workflow, ir_hash, source, spec, next_at, updated_at, "
            f"module) VALUES (%(name)s, %(workflow)s, %(ir_hash)s, %(source)s, %(spec)s, "
            f"%(next_at)s, {_NOW}, %(module)s) ON CONFLICT (name) DO UPDATE SET "
            "workflow = excluded.workflow, ir_hash = excluded.ir_hash, "
            "source = excluded.source, module = excluded.module, "
            "updated_at = excluded.updated_at, next_at = CASE WHEN schedules.spec = "
            "excluded.spec THEN schedules.next_at ELSE excluded.next_at END, "
            f"spec = excluded.spec RETURNING {_SCHEDULE_COLUMNS}",
            {
                "name": schedule.name,
                "workflow": schedule.workflow,
                "ir_hash": schedule.ir_hash,
                "source": schedule.source,
                "spec": dump(schedule.spec),
                "next_at": schedule.next_at,
                "module": schedule.module,
            },
        )
        return schedule_record(rows[0])

    def list_schedules(self) -> list[ScheduleRecord]:
        rows = self._autocommit(f"SELECT {_SCHEDULE_COLUMNS} FROM schedules ORDER BY name")
        return [schedule_record(row) for row in rows]

    def delete_schedule(self, name: str) -> bool:
        return bool(self._autocommit("DELETE FROM schedules WHERE name = %s RETURNING 1", (name,)))

    def pause_schedule(self, name: str) -> bool:
        return bool(
            self._autocommit(
                f"UPDATE schedules SET paused_at = coalesce(paused_at, {_NOW}), "
                f"updated_at = {_NOW} WHERE name = %s RETURNING 1",
                (name,),
            )
        )

    def resume_schedule(self, name: str, next_at: float) -> bool:
        return bool(
            self._autocommit(
                "UPDATE schedules SET next_at = CASE WHEN paused_at IS NULL THEN next_at "
                f"ELSE %s END, paused_at = NULL, updated_at = {_NOW} WHERE name = %s "
                "RETURNING 1",
                (next_at, name),
            )
        )

    def fire_schedule(
        self, name: str, run: NewRun, *, expected: float, scheduled_at: float, next_at: float
    ) -> bool:
        crash = CrashPlan.from_env(next_commit_number())
        crash.point("before")

        def body(tx: _Tx) -> bool:
            now = tx.clock()
            moved = tx.one(
                "UPDATE schedules SET next_at = %s, last_at = %s, last_run_id = %s, "
                "updated_at = %s WHERE name = %s AND next_at = %s AND paused_at IS NULL "
                "RETURNING 1",
                (next_at, scheduled_at, run.run_id, now, name, expected),
            )
            if moved is None:
                return False
            if run.limit is not None:
                tx.conn.execute(_LOCK_SLOTS_SQL, (run.workflow,))
            created = tx.conn.execute(_INSERT_RUN_SQL, {**_run_params(run), "now": now})
            if created.rowcount == 1 and run.status == "running":
                self._notify(tx, run.run_id)
            if crash.moment == "written":
                tx.pipeline.sync()
            crash.point("written")
            return True

        fired = self._transaction(body, lambda: crash.point("during"))
        crash.point("after")
        return fired

    # --- retention -----------------------------------------------------------------------

    def ended_roots(
        self,
        *,
        ended_before: float,
        statuses: Sequence[str],
        after: tuple[float, str] | None = None,
        limit: int = 100,
    ) -> list[tuple[float, str]]:
        last_at, last_id = after if after is not None else (float("-inf"), "")
        rows = self._autocommit(
            "SELECT finished_at, run_id FROM runs "
            "WHERE parent_run_id IS NULL AND finished_at IS NOT NULL AND finished_at < %s "
            "AND status = ANY(%s) "
            'AND (finished_at, run_id COLLATE "C") > (%s, %s COLLATE "C") '
            'ORDER BY finished_at, run_id COLLATE "C" LIMIT %s',
            (
                ended_before,
                [s for s in statuses if s in TERMINAL_STATUSES],
                last_at,
                last_id,
                limit,
            ),
        )
        return [(float(r[0]), str(r[1])) for r in rows]  # type: ignore[arg-type]

    def remove_runs(self, trees: Sequence[Sequence[Tombstone]]) -> list[str]:
        crash = CrashPlan.from_env(next_commit_number())
        crash.point("before")

        def body(tx: _Tx) -> list[str]:
            removed: list[str] = []
            now = tx.clock()
            starters = {
                r[0]
                for r in tx.all(
                    "SELECT meta::jsonb ->> 'started_by' FROM runs "
                    "WHERE status IN ('running', 'waiting') "
                    "AND meta::jsonb ? 'started_by'"
                )
            }
            for tree in trees:
                ids = [t.run_id for t in tree]
                statuses = tx.all(
                    "SELECT status FROM runs WHERE run_id = ANY(%s) FOR UPDATE", (ids,)
                )
                outside = tx.one(
                    "SELECT count(*) FROM runs WHERE parent_run_id = ANY(%s) "
                    "AND NOT run_id = ANY(%s)",
                    (ids, ids),
                )
                assert outside is not None
                if (
                    len(statuses) != len(ids)
                    or any(s not in TERMINAL_STATUSES for (s,) in statuses)
                    or outside[0]
                    or starters.intersection(ids)
                ):
                    continue
                for table in RUN_ROW_TABLES:
                    tx.conn.execute(f"DELETE FROM {table} WHERE run_id = ANY(%s)", (ids,))
                tx.conn.execute("DELETE FROM ledger WHERE scope = ANY(%s)", (ids,))
                tx.conn.execute("DELETE FROM runs WHERE run_id = ANY(%s)", (ids,))
                tx.conn.cursor().executemany(
                    f"INSERT INTO removed_runs ({TOMBSTONE_COLUMNS}) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (run_id) DO NOTHING",
                    [tombstone_params(t, now) for t in tree],
                )
                removed.append(ids[0])
            if crash.moment == "written":
                tx.pipeline.sync()
            crash.point("written")
            return removed

        removed = self._transaction(body, lambda: crash.point("during"))
        crash.point("after")
        return removed

    def remove_global_keys(self, updated_before: float, limit: int = 1000) -> int:
        def body(tx: _Tx) -> int:
            rows = tx.all(
                "DELETE FROM ledger WHERE (scope, key) IN (SELECT l.scope, l.key FROM ledger AS l "
                "WHERE l.scope = '' AND l.updated_at < %s AND NOT EXISTS (SELECT 1 FROM runs "
                "WHERE runs.run_id = l.run_id AND runs.status IN ('running', 'waiting')) "
                "LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING 1",
                (updated_before, limit),
            )
            return len(rows)

        return self._transaction(body)

    def get_tombstone(self, run_id: str) -> Tombstone | None:
        rows = self._autocommit(
            f"SELECT {TOMBSTONE_COLUMNS} FROM removed_runs WHERE run_id = %s", (run_id,)
        )
        return tombstone_record(rows[0]) if rows else None

    def tombstone_count(self) -> int:
        return int(self._autocommit("SELECT count(*) FROM removed_runs")[0][0])  # type: ignore[call-overload]


def _roll_back(conn: _Conn) -> None:
    """End a transaction that failed, so the connection goes back to the pool clean; a
    broken connection is left for the pool to discard."""
    status = conn.info.transaction_status
    if not conn.closed and status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
        with contextlib.suppress(psycopg.Error):
            conn.execute("ROLLBACK")


def _fetched(cursor: _Cursor) -> _Row:
    row = cursor.fetchone()
    assert row is not None
    return row


def _run_record(row: Sequence[Any]) -> RunRecord:
    return run_record(row, list(row[10]))


def _worker_record(row: Sequence[Any]) -> WorkerRecord:
    worker_id, host, pid, concurrency, started_at, heartbeat_at, expires_at, claimed = row
    return WorkerRecord(
        worker_id, host, pid, concurrency, started_at, heartbeat_at, expires_at, tuple(claimed)
    )
