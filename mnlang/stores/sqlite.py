"""The embedded journal: one SQLite file in WAL mode.

Writes run in `BEGIN IMMEDIATE` transactions, so a writer takes the file's write lock
before reading what it will change, and two workers cannot interleave a read-then-write.
Readers never block in WAL mode. `synchronous=FULL` (durability `"full"`, the default)
syncs the WAL on every commit: a commit that returned survives power loss. Durability
`"fast"` uses `synchronous=NORMAL`: the WAL is synced only at checkpoints, so the last
transactions before a power loss or OS crash may roll back; the file is never corrupted,
and a crash of the process alone loses nothing.

The commit path uses the `sqlite3` connection directly (it is the hot path); schema work
and the occasional queries (listing runs, reading the journal) go through sqlite-utils.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self, cast

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
    LedgerPut,
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
from mnlang.stores.group_commit import GroupCommitter
from mnlang.stores.outbox_rows import (
    DELIVERY_COLUMNS,
    OUTBOX_COLUMNS,
    ROUTED_PAGE_SQL,
    delivery_record,
    outbox_event,
    outbox_removable,
)
from mnlang.stores.schema import SCHEMA_VERSION, migrate, read_only_version

POLL_INTERVAL = 0.05
"""Seconds between looks for work in `wait_for_work`: the wake-up delay of a worker."""

# julianday has millisecond resolution; `unixepoch('subsec')` needs SQLite 3.42.
_NOW_SQL = "SELECT (julianday('now') - 2440587.5) * 86400.0"
_CLOCK_SQL = "(julianday('now') - 2440587.5) * 86400.0"
"""The store's clock, in seconds: the same value wherever a statement uses it."""
_COMMIT_RUN_RETURNING = (
    " WHERE run_id = ? "
    "RETURNING updated_at, last_seq, cancel_requested, lease_owner, lease_epoch, lease_expires_at"
)
_FORGET_WORKER_AFTER = 3600.0
"""Seconds after its last heartbeat expired that a worker's row is deleted."""

_RUN_COLUMNS = (
    "run_id, workflow, workflow_class, status, args, result, error, parent_run_id, ir_hash, "
    "meta, waiting_for, cancel_requested, last_seq, lease_owner, lease_epoch, "
    f"lease_expires_at, created_at, updated_at, finished_at, {QUARANTINE_COLUMNS}, "
    "cancel_requested_by"
)
_RUNS_WITH_ARGS = "runs JOIN run_args USING (run_id)"
"""Where `_RUN_COLUMNS` come from: a run's arguments live in their own table, so that the
updates of its `runs` row do not write them again."""
_RUN_COLUMNS_NO_ARGS = _RUN_COLUMNS.replace(" args,", " NULL,")
"""The run's columns with its arguments left out (`get_run(args=False)`, `load_state`),
from `runs` alone."""
_SCALARS = frozenset({int, float, str, bool, type(None)})
"""The JSON values that read back as themselves."""
_LEDGER_COLUMNS = "key, scope, args_hash, status, result, run_id, state, created_at, updated_at"
_CHECKPOINT_COLUMNS = (
    "run_id, checkpoint_id, name, request, status, decision, decided_by, opened_at, decided_at"
)
_SIGNAL_COLUMNS = "run_id, signal_id, name, payload, sent_at, consumed_at, correlation, sent_by"
_TIMER_COLUMNS = "run_id, timer_id, due_at, payload"
_SCHEDULE_COLUMNS = (
    "name, workflow, ir_hash, source, spec, next_at, last_at, last_run_id, updated_at, "
    "module, paused_at"
)

# A run is worth a worker's attention when nobody holds it and it can make progress: it is
# running, someone asked to cancel it, a timer of it is due, a checkpoint of it was
# decided, a signal it waits for is unread, or it is queued for a slot of its workflow's
# `limit`. The candidates come from the indexes of those, so the cost of a look does not
# grow with the number of runs that wait for something that has not happened yet. A
# waiting run of a workflow whose `limit` is full is left out (see `_SLOT_SQL`), and so
# is a quarantined run. A damaged `waiting_for` (JSON that does not decode) with an unread
# signal makes its run a candidate rather than failing the query for every run: the
# worker that claims it finds the damage and quarantines the run. For a worker
# (`:served_by`), a run one of whose needs it did not advertise is left out too: a module
# (with the run's digest, when the worker pins changed code) or a provider's key. Runs
# of one program started from one release share their needs' text, so each distinct
# text is judged once (`served`), not once per run.
_RUNNABLE_SQL = """
WITH candidates (run_id) AS (
  SELECT run_id FROM runs WHERE status = 'running'
  UNION SELECT run_id FROM runs WHERE cancel_requested = 1
  UNION SELECT run_id FROM runs WHERE queued = 1
  UNION SELECT run_id FROM timers WHERE due_at <= :now
  UNION SELECT run_id FROM checkpoints WHERE status = 'decided'
  UNION SELECT s.run_id FROM signals AS s INDEXED BY signals_unread
        JOIN runs AS w ON w.run_id = s.run_id
        WHERE s.consumed_at IS NULL
          AND CASE WHEN json_valid(w.waiting_for)
              THEN coalesce(s.name || '#' || s.correlation, s.name)
                   IN (SELECT value FROM json_each(w.waiting_for))
              ELSE 1 END
),
served (needs) AS (
  SELECT d.needs FROM (
    SELECT DISTINCT r.needs FROM candidates JOIN runs AS r ON r.run_id = candidates.run_id
    WHERE :served_by IS NOT NULL AND r.needs IS NOT NULL
  ) AS d
  WHERE NOT EXISTS (
    SELECT 1 FROM json_each(d.needs) AS n WHERE NOT EXISTS (
      SELECT 1 FROM worker_offers AS offer
      WHERE offer.worker_id = :served_by
        AND offer.kind = json_extract(n.value, '$.kind')
        AND offer.scope = json_extract(n.value, '$.scope')
        AND offer.name = json_extract(n.value, '$.name')
        AND (offer.pinned = 0 OR json_extract(n.value, '$.digest') IS NULL
             OR offer.digest = json_extract(n.value, '$.digest'))))
)
SELECT r.run_id FROM candidates JOIN runs AS r ON r.run_id = candidates.run_id
WHERE r.status IN ('running', 'waiting')
  AND (r.lease_expires_at IS NULL OR r.lease_expires_at <= :now)
  AND r.quarantined_at IS NULL
  AND (r.run_limit IS NULL OR r.status = 'running' OR (r.queued = 1 AND r.cancel_requested = 1)
       OR (SELECT count(*) FROM runs AS o WHERE o.workflow = r.workflow AND o.status = 'running')
          < r.run_limit)
  AND (:served_by IS NULL OR r.needs IS NULL OR r.needs IN (SELECT needs FROM served))
ORDER BY r.updated_at
LIMIT :limit
"""

_CLAIMABLE_SQL = _RUNNABLE_SQL.replace(
    "SELECT r.run_id FROM candidates",
    "SELECT r.run_id, r.run_limit IS NOT NULL OR r.queued = 1 FROM candidates",
)
"""The runnable runs for a claim, each with whether it may need a slot of its workflow's
`limit` (`_take_slot`); a run that cannot is leased without a further read."""
assert _CLAIMABLE_SQL != _RUNNABLE_SQL

# The runnable runs (all of them: `LIMIT -1`), the waiting ones and those under a live lease.
_QUEUE_DEPTH_SQL = f"""
SELECT (SELECT count(*) FROM ({_RUNNABLE_SQL})),
       (SELECT count(*) FROM runs WHERE status = 'waiting'),
       (SELECT count(*) FROM runs
        WHERE status IN ('running', 'waiting') AND lease_expires_at > :now)
"""

# Whether taking a run needs a slot of its workflow's `limit` (a waiting run of a workflow
# with one; a queued run that is only to be cancelled needs none), and how many runs of
# the workflow are `running`. A slot is a run in `running`, so a run that waits (for a
# person, a timer, an event, a child) holds none.
_SLOT_SQL = """
SELECT r.workflow, r.run_limit, r.queued,
       r.run_limit IS NOT NULL AND r.status = 'waiting'
       AND NOT (r.queued = 1 AND r.cancel_requested = 1),
       CASE WHEN r.run_limit IS NULL THEN 0 ELSE
         (SELECT count(*) FROM runs AS o WHERE o.workflow = r.workflow AND o.status = 'running')
       END
FROM runs AS r WHERE r.run_id = ?
"""


_LIST_ITEMS_SQL = """
SELECT group_concat(value, ',') FROM list_items WHERE run_id = ? AND branch = ? AND name = ?
"""
"""One list variable's items, comma-separated, in index order. The aggregate sees the rows
in the order of the primary key (run_id, branch, name, idx), the table's only index, whose
first three columns the query fixes; a plain table scan would give the same order, as
every write inserts a list's items by increasing index. (An ordered subquery costs a
third more on 100k items; `group_concat(... ORDER BY idx)` needs SQLite 3.44.)"""


def _nested_range(branch: str) -> tuple[str, str]:
    """Bounds of the branch ids nested in `branch`: `'/'` sorts just before `'0'`."""
    return branch + "/", branch + "0"


_memory_template: sqlite3.Connection | None = None
_template_lock = threading.Lock()


def _fresh_memory(conn: sqlite3.Connection) -> int:
    """Fill a new in-memory journal from one migrated template per process: migrating
    from nothing costs about 30 ms, and scenarios and replays make thousands of them."""
    global _memory_template
    with _template_lock:
        if _memory_template is None:
            template = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            migrate(template, ":memory:")
            _memory_template = template
        _memory_template.backup(conn)
    return 0


class SQLiteStore:
    """A `Store` on one SQLite file; safe to share between the threads of one process."""

    def __init__(
        self,
        path: str | Path,
        *,
        durability: Durability = "full",
        busy_timeout: float = 5.0,
    ) -> None:
        self.location = str(path)
        self.busy_timeout = busy_timeout
        self._lock = threading.RLock()
        if self.location != ":memory:":
            directory = Path(self.location).parent
            try:
                # Private: the journal holds every input, prompt and reply. A folder or
                # file that exists keeps its mode (the owner's choice); SQLite gives the
                # -wal and -shm files the journal's.
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as e:
                raise StoreError(
                    f"cannot create directory `{directory}` for journal `{self.location}`: "
                    f"{e.strerror or e}",
                    help="pass `--db` with a path in a writable directory",
                ) from e
            with contextlib.suppress(OSError):  # SQLite says why, if it cannot open it either
                os.close(os.open(self.location, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self.read_only = False
        try:
            conn = self._connect(durability)
        except StoreError:
            if not self._unwritable():
                raise
            # A backup on a read-only mount: open it to be read; writes fail, translated.
            self.read_only = True
            conn = self._connect(durability)
        self._conn = conn
        self.schema_version = SCHEMA_VERSION
        self.committer: GroupCommitter | None = None
        """Set by `use_group_commit`: `commit` goes through it."""

    def _unwritable(self) -> bool:
        path = Path(self.location)
        return path.is_file() and not os.access(path, os.W_OK)

    def _connect(self, durability: Durability) -> sqlite3.Connection:
        with self._translated():
            if self.read_only:
                # immutable: no lock or -shm file to create; the file cannot change under us.
                uri = Path(self.location).resolve().as_uri() + "?mode=ro&immutable=1"
                conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            else:
                conn = sqlite3.connect(
                    self.location,
                    timeout=self.busy_timeout,
                    isolation_level=None,
                    check_same_thread=False,
                )
            try:
                if not self.read_only:
                    conn.execute("PRAGMA journal_mode = WAL")
                    conn.execute(
                        f"PRAGMA synchronous = {'FULL' if durability == 'full' else 'NORMAL'}"
                    )
                self.migrated_from = (
                    read_only_version(conn, self.location)
                    if self.read_only
                    else _fresh_memory(conn)
                    if self.location == ":memory:"
                    else migrate(conn, self.location)
                )
            except BaseException:
                conn.close()
                raise
        return conn

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def now(self) -> float:
        with self._lock, self._translated():
            return float(self._conn.execute(_NOW_SQL).fetchone()[0])

    # --- transactions and errors ------------------------------------------------------

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Turn SQLite's errors into `StoreError`s that name the file and say what to do."""
        try:
            yield
        except sqlite3.Error as e:
            raise self._store_error(e) from e

    def _store_error(self, e: sqlite3.Error) -> StoreError:
        name = getattr(e, "sqlite_errorname", "") or ""
        where = f"`{self.location}`"
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return StoreLocked(
                f"journal {where} is locked by another process "
                f"(waited {self.busy_timeout:g}s for its write lock)",
                help="wait for the other process to finish, or stop it",
            )
        if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")):
            return StoreCorrupt(
                f"{where} is not a usable journal database ({e})",
                help="restore the file from a backup, or pass `--db` with a new file",
            )
        if name.startswith("SQLITE_CANTOPEN"):
            return StoreError(
                f"cannot open journal {where}",
                help="check that the path names a file in a writable directory",
            )
        if name.startswith("SQLITE_READONLY"):
            return StoreError(
                f"journal {where} is read-only",
                help="check the permissions of the file and of its directory",
            )
        if name.startswith("SQLITE_FULL"):
            return StoreError(f"the disk holding journal {where} is full")
        return StoreError(f"journal {where}: {e}")

    @contextmanager
    def _write(self) -> Iterator[float]:
        """One write transaction; yields the store's clock as of its start."""
        with self._lock, self._translated():
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                now = float(conn.execute(_NOW_SQL).fetchone()[0])
                yield now
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction, so several queries see one consistent state."""
        with self._lock, self._translated():
            conn = self._conn
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")

    def _query(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
    ) -> list[tuple[Any, ...]]:
        with self._lock, self._translated():
            return self._conn.execute(sql, params).fetchall()

    # --- runs -------------------------------------------------------------------------------

    def create_run(self, run: NewRun) -> tuple[RunRecord, bool]:
        (one,) = self.create_runs([run])
        if one.removed is not None:
            raise RunRemoved(one.removed)
        assert one.record is not None
        return one.record, one.created

    def create_runs(self, runs: Sequence[NewRun]) -> list[RunCreated]:
        out: list[RunCreated] = []
        with self._write() as now:
            for run in runs:
                removed = self._tombstone(run.run_id)
                if removed is not None:
                    out.append(RunCreated(None, removed=removed))
                    continue
                created = self._insert_run(run, now)
                out.append(RunCreated(self._run_or_none(run.run_id), created))
        return out

    def _insert_run(self, run: NewRun, now: float) -> bool:
        status, queued = run.status, False
        if run.limit is not None and status == "running":
            # Beyond the workflow's `limit`, the new run waits for a slot.
            (running,) = self._conn.execute(
                "SELECT count(*) FROM runs WHERE workflow = ? AND status = 'running'",
                (run.workflow,),
            ).fetchone()
            if running >= run.limit:
                status, queued = "waiting", True
        cursor = self._conn.execute(
            "INSERT INTO runs (run_id, workflow, workflow_class, status, parent_run_id, "
            "ir_hash, meta, run_limit, queued, needs, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO NOTHING",
            (
                run.run_id,
                run.workflow,
                run.workflow_class,
                status,
                run.parent_run_id,
                run.ir_hash,
                dump(run.meta),
                run.limit,
                int(queued),
                None if not run.needs else dump(needs_json(run.needs)),
                now,
                now,
            ),
        )
        if cursor.rowcount != 1:
            return False
        self._conn.execute(
            "INSERT INTO run_args (run_id, args) VALUES (?, ?)", (run.run_id, dump(run.args))
        )
        return True

    def _take_slot(self, run_id: str) -> RunLimitReached | None:
        """Inside a write transaction: make a waiting run of a workflow with a `limit`
        `running` if a slot is free, and take it out of the queue; the refusal when none
        is. The file's write lock keeps another process from taking the slot meanwhile."""
        row = self._conn.execute(_SLOT_SQL, (run_id,)).fetchone()
        if row is None:
            raise run_not_found(run_id)
        workflow, run_limit, queued, needs_slot, running = row
        if needs_slot and running >= run_limit:
            return RunLimitReached.of(workflow, run_limit)
        if needs_slot or queued:
            self._conn.execute(
                "UPDATE runs SET status = CASE WHEN ? THEN 'running' ELSE status END, "
                "queued = 0 WHERE run_id = ?",
                (needs_slot, run_id),
            )
        return None

    def get_run(self, run_id: str, *, args: bool = True) -> RunRecord | None:
        with self._lock, self._translated():
            return self._run_or_none(run_id, args=args)

    def _run_or_none(self, run_id: str, *, args: bool = True) -> RunRecord | None:
        sql = (
            f"SELECT {_RUN_COLUMNS} FROM {_RUNS_WITH_ARGS} WHERE run_id = ?"
            if args
            else f"SELECT {_RUN_COLUMNS_NO_ARGS} FROM runs WHERE run_id = ?"
        )
        row = self._conn.execute(sql, (run_id,)).fetchone()
        return None if row is None else _run_record(row)

    def _run(self, run_id: str) -> RunRecord:
        record = self._run_or_none(run_id)
        if record is None:
            raise run_not_found(run_id)
        return record

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
        where: list[str] = []
        params: dict[str, Any] = {"limit": limit}
        for column, value in (
            ("status", status),
            ("workflow", workflow),
            ("workflow_class", workflow_class),
            ("parent_run_id", parent_run_id),
        ):
            if value is not None:
                where.append(f"{column} = :{column}")
                params[column] = value
        if id_prefix is not None:
            where.append("substr(run_id, 1, length(:prefix)) = :prefix")
            params["prefix"] = id_prefix
        sql = f"SELECT {_RUN_COLUMNS} FROM {_RUNS_WITH_ARGS}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, run_id LIMIT :limit"
        with self._lock, self._translated():
            rows = self._conn.execute(sql, params).fetchall()
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
        where: list[str] = []
        params: dict[str, Any] = {"limit": limit + 1}
        for column, value in (
            ("status", status),
            ("workflow", workflow),
            ("workflow_class", workflow_class),
        ):
            if value is not None:
                where.append(f"{column} = :{column}")
                params[column] = value
        if since is not None:
            where.append("created_at >= :since")
            params["since"] = since
        if until is not None:
            where.append("created_at < :until")
            params["until"] = until
        if text:
            where.append(
                "(instr(lower(run_id), lower(:text)) > 0 OR instr(lower(args), lower(:text)) > 0)"
            )
            params["text"] = text
        if after is not None:
            where.append("(created_at < :at OR (created_at = :at AND run_id > :after_id))")
            params["at"], params["after_id"] = after
        sql = f"SELECT {_RUN_COLUMNS} FROM {_RUNS_WITH_ARGS}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, run_id LIMIT :limit"
        with self._lock, self._translated():
            rows = self._conn.execute(sql, params).fetchall()
        return [listed(row, _run_record) for row in rows[:limit]], len(rows) > limit

    def run_counts(self) -> list[RunCount]:
        rows = self._query(
            "SELECT workflow, workflow_class, status, count(*) FROM runs "
            "GROUP BY workflow, workflow_class, status ORDER BY workflow, workflow_class, status"
        )
        return [RunCount(r[0], r[1], r[2], r[3]) for r in rows]

    def request_cancel(self, run_id: str, *, by: str | None = None) -> bool:
        crash = CrashPlan.from_env(next_commit_number())
        crash.point("before")
        with self._write() as now:
            record = self._run(run_id)
            if record.status in TERMINAL_STATUSES:
                return False
            self._conn.execute(
                "UPDATE runs SET cancel_requested = 1, updated_at = ?, cancel_requested_by = "
                "CASE WHEN cancel_requested = 1 THEN cancel_requested_by ELSE ? END "
                "WHERE run_id = ?",
                (now, by, run_id),
            )
            crash.point("written")
            crash.point("during")
        crash.point("after")
        return True

    def queue_depth(self) -> QueueDepth:
        with self._lock, self._translated():
            now = float(self._conn.execute(_NOW_SQL).fetchone()[0])
            row = self._conn.execute(
                _QUEUE_DEPTH_SQL, {"now": now, "limit": -1, "served_by": None}
            ).fetchone()
        return QueueDepth(int(row[0]), int(row[1]), int(row[2]))

    def runnable_runs(self, limit: int = 100, *, served_by: str | None = None) -> list[str]:
        with self._lock, self._translated():
            now = float(self._conn.execute(_NOW_SQL).fetchone()[0])
            rows = self._conn.execute(
                _RUNNABLE_SQL, {"now": now, "limit": limit, "served_by": served_by}
            ).fetchall()
        return [row[0] for row in rows]

    def claim_runs(self, owner: str, ttl: float, limit: int = 1) -> list[Lease]:
        check_ttl(ttl)
        # The write lock is the whole file's, so no other process claims meanwhile.
        with self._write() as now:
            rows = self._conn.execute(
                _CLAIMABLE_SQL, {"now": now, "limit": limit, "served_by": owner}
            ).fetchall()
            # The slots were taken by runs claimed before it in this batch: left out.
            chosen = [r for r, slotted in rows if not slotted or self._take_slot(r) is None]
            if not chosen:
                return []
            # One statement leases the whole batch (a claim is on every worker's path).
            epochs = dict(
                self._conn.execute(
                    "UPDATE runs SET lease_owner = ?, lease_epoch = lease_epoch + 1, "
                    "lease_expires_at = ? WHERE run_id IN (SELECT value FROM json_each(?)) "
                    "RETURNING run_id, lease_epoch",
                    (owner, now + ttl, dump(chosen)),
                ).fetchall()
            )
            return [Lease(run_id, owner, epochs[run_id], now + ttl) for run_id in chosen]

    def quarantine_run(self, run_id: str, *, by: str, reason: str) -> bool:
        crash = CrashPlan.from_env(next_commit_number())
        crash.point("before")
        with self._write() as now:
            if not self._conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
                raise run_not_found(run_id)
            quarantined = self._conn.execute(
                "UPDATE runs SET quarantined_at = ?, quarantined_by = ?, "
                "quarantine_reason = ? WHERE run_id = ? AND quarantined_at IS NULL",
                (now, by, reason, run_id),
            ).rowcount
            crash.point("written")
            crash.point("during")
        crash.point("after")
        return quarantined == 1

    def reopen_failed(self, run_id: str, event: NewEvent, meta: dict[str, Json]) -> bool:
        data, new_meta = dump(event.data), dump(meta)
        crash = CrashPlan.from_env(next_commit_number())
        crash.point("before")
        with self._write() as now:
            row = self._conn.execute(
                "SELECT status, last_seq, workflow, run_limit FROM runs WHERE run_id = ?",
                (run_id,),
            ).fetchone()
            if row is None:
                raise run_not_found(run_id)
            if row[0] != "failed":
                return False
            seq = row[1] + 1
            # Beyond its workflow's `limit`, the reopened run waits for a slot, as a new
            # run would (the file's write lock keeps the count true until COMMIT).
            queued = row[3] is not None and (
                self._conn.execute(
                    "SELECT count(*) FROM runs WHERE workflow = ? AND status = 'running'",
                    (row[2],),
                ).fetchone()[0]
                >= row[3]
            )
            self._conn.execute(
                "INSERT INTO events (run_id, seq, at, kind, state, branch, data) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, seq, now, event.kind, event.state, event.branch, data),
            )
            self._conn.execute(
                "UPDATE runs SET status = ?, queued = ?, error = NULL, result = NULL, "
                "finished_at = NULL, waiting_for = '[]', cancel_requested = 0, "
                "cancel_requested_by = NULL, meta = ?, "
                "last_seq = ?, updated_at = ? WHERE run_id = ?",
                ("waiting" if queued else "running", int(queued), new_meta, seq, now, run_id),
            )
            crash.point("written")
            crash.point("during")
        crash.point("after")
        return True

    def release_quarantine(self, run_id: str) -> Quarantine | None:
        with self._write():
            row = self._conn.execute(
                f"SELECT {QUARANTINE_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is None:
                raise run_not_found(run_id)
            if row[0] is None:
                return None
            self._conn.execute(
                "UPDATE runs SET quarantined_at = NULL, quarantined_by = NULL, "
                "quarantine_reason = NULL WHERE run_id = ?",
                (run_id,),
            )
            return Quarantine(row[0], row[1], row[2])

    def quarantined_runs(self) -> dict[str, Quarantine]:
        rows = self._query(
            f"SELECT run_id, {QUARANTINE_COLUMNS} FROM runs INDEXED BY runs_quarantined "
            "WHERE quarantined_at IS NOT NULL ORDER BY quarantined_at, run_id"
        )
        return {r[0]: Quarantine(r[1], r[2], r[3]) for r in rows}

    def wait_for_work(self, timeout: float, *, served_by: str | None = None) -> bool:
        # SQLite cannot signal another process: poll, cheaply, until work or the timeout.
        deadline = time.monotonic() + max(0.0, timeout)
        while not self.runnable_runs(limit=1, served_by=served_by):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, POLL_INTERVAL))
        return True

    # --- commits and state --------------------------------------------------------------

    def commit(self, batch: Batch) -> CommitResult:
        committer = self.committer
        if committer is not None:
            return committer.commit(batch)
        return self._commit_one(batch)

    def use_group_commit(self, on: bool) -> GroupCommitter | None:
        """Send `commit` through a group committer (`mnlang.stores.group_commit`), or not;
        returns the committer now in use."""
        if not on:
            self.committer = None
        elif self.committer is None:
            self.committer = GroupCommitter(self._commit_one, self.commit_group)
        return self.committer

    def _commit_one(self, batch: Batch) -> CommitResult:
        # Serialising the events before the transaction keeps the write lock short; a value
        # that is not JSON anywhere in the batch rolls the whole transaction back.
        events = _encoded_events(batch)
        crash = CrashPlan.from_env(next_commit_number())
        crash.point("before")
        # `_write`'s transaction, spelled out: a commit is the per-step hot path, so the
        # store's clock is read in the same statement as the run's row (`_apply`).
        with self._lock, self._translated():
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = self._apply(batch, events)
                # SQLite's COMMIT cannot be stopped half-way: `during` is the moment of
                # `written`.
                crash.point("written")
                crash.point("during")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        crash.point("after")
        return result

    def commit_group(self, batches: Sequence[Batch]) -> list[CommitResult | Exception]:
        """Commit the batches in one transaction, each inside a savepoint of its own: a
        batch refused (a stale lease, no such run, a value that is not JSON) is rolled back
        alone and its error is its outcome; the others commit."""
        encoded: list[list[_EncodedEvent] | Exception] = []
        for batch in batches:
            try:
                encoded.append(_encoded_events(batch))
            except (TypeError, ValueError) as e:
                encoded.append(e)
        crash = CrashPlan.from_env(next_commit_number())
        crash.point("before")
        outcomes: list[CommitResult | Exception] = []
        with self._write():
            for member, (batch, events) in enumerate(zip(batches, encoded, strict=True), 1):
                if isinstance(events, Exception):
                    outcomes.append(events)
                else:
                    outcomes.append(self._apply_member(batch, events))
                crash.written(member, len(batches))
            crash.point("during")
        crash.point("after")
        return outcomes

    def _apply_member(self, batch: Batch, events: list[_EncodedEvent]) -> CommitResult | Exception:
        conn = self._conn
        conn.execute("SAVEPOINT member")
        try:
            result = self._apply(batch, events)
        except (sqlite3.Error, StoreError, TypeError, ValueError) as e:
            if not conn.in_transaction:
                raise  # SQLite rolled the whole transaction back (a full disk, I/O)
            conn.execute("ROLLBACK TO member")
            conn.execute("RELEASE member")
            return self._store_error(e) if isinstance(e, sqlite3.Error) else e
        conn.execute("RELEASE member")
        return result

    def _apply(self, batch: Batch, events: list[_EncodedEvent]) -> CommitResult:
        """Write one batch inside the open transaction, at the store's clock as of it."""
        conn = self._conn
        run_id = batch.run_id
        changes_before = conn.total_changes
        # The run's row is updated first, in the statement that reads its lease and the
        # store's clock: a lease that no longer holds raises here, and the caller rolls
        # the batch back with everything else it wrote.
        row = conn.execute(*_run_update(batch, len(events))).fetchone()
        if row is None:
            raise run_not_found(run_id)
        now, last_seq, cancel_requested, lease_owner, lease_epoch, lease_expires_at = row
        check_lease(batch, lease_owner, lease_epoch, lease_expires_at, now)
        if events:
            first = last_seq - len(events)
            conn.executemany(
                "INSERT INTO events (run_id, seq, at, kind, state, branch, data) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (run_id, first + i, now, kind, state, branch, data)
                    for i, (kind, state, branch, data) in enumerate(events, start=1)
                ],
            )
        self._apply_state_ops(run_id, batch.state)
        ledger = [self._put_ledger(run_id, put, now) for put in batch.ledger]
        self._apply_pending_work(batch, now)
        return CommitResult(
            last_seq=last_seq,
            committed_at=now,
            cancel_requested=bool(cancel_requested),
            ledger=ledger,
            rows_written=conn.total_changes - changes_before,
        )

    def _apply_state_ops(self, run_id: str, ops: Sequence[StateOp]) -> None:
        """Apply `ops` in order; each run of consecutive `SetVar`s as one `_set_vars`."""
        set_vars: list[SetVar] = []
        for op in ops:
            if isinstance(op, SetVar):
                set_vars.append(op)
                continue
            if set_vars:
                self._set_vars(run_id, set_vars)
                set_vars = []
            self._apply_state_op(run_id, op)
        if set_vars:
            self._set_vars(run_id, set_vars)

    def _set_vars(self, run_id: str, ops: Sequence[SetVar]) -> None:
        """Set variables that are, in the common case, already stored and not lists (a
        loop's variables at each step): one UPDATE each, with no list items to delete
        (items exist only under a variable with `is_list = 1`). When any of them is new
        or was a list, all of them take the full path, which is idempotent."""
        values = [(dump(op.value), run_id, op.branch, op.name) for op in ops]
        updated = self._conn.executemany(
            "UPDATE variables SET value = ?, is_list = 0, length = 0 "
            "WHERE run_id = ? AND branch = ? AND name = ? AND is_list = 0",
            values,
        ).rowcount
        if updated != len(values):
            for value, _, branch, name in values:
                self._set_var(run_id, branch, name, value)

    def _set_var(self, run_id: str, branch: str, name: str, value: str) -> None:
        self._conn.execute(
            "INSERT INTO variables (run_id, branch, name, value, is_list, length) "
            "VALUES (?, ?, ?, ?, 0, 0) ON CONFLICT (run_id, branch, name) DO UPDATE "
            "SET value = excluded.value, is_list = 0, length = 0",
            (run_id, branch, name, value),
        )
        self._delete_items(run_id, branch, name)

    def _apply_state_op(self, run_id: str, op: StateOp) -> None:
        conn = self._conn
        match op:
            case SetList(branch, name, items):
                conn.execute(
                    "INSERT INTO variables (run_id, branch, name, value, is_list, length) "
                    "VALUES (?, ?, ?, NULL, 1, ?) ON CONFLICT (run_id, branch, name) DO UPDATE "
                    "SET value = NULL, is_list = 1, length = excluded.length",
                    (run_id, branch, name, len(items)),
                )
                self._delete_items(run_id, branch, name)
                self._insert_items(run_id, branch, name, 0, items)
            case AppendList(branch, name, items):
                row = conn.execute(
                    "UPDATE variables SET length = length + ? "
                    "WHERE run_id = ? AND branch = ? AND name = ? AND is_list = 1 "
                    "RETURNING length",
                    (len(items), run_id, branch, name),
                ).fetchone()
                if row is None:
                    raise ValueError(f"`{name}` in branch `{branch}` is not a list variable")
                self._insert_items(run_id, branch, name, row[0] - len(items), items)
            case SetListItem(branch, name, index, value):
                cursor = conn.execute(
                    "UPDATE list_items SET value = ? "
                    "WHERE run_id = ? AND branch = ? AND name = ? AND idx = ?",
                    (dump(value), run_id, branch, name, index),
                )
                if cursor.rowcount != 1:
                    raise ValueError(f"`{name}[{index}]` in branch `{branch}` does not exist")
            case DeleteVar(branch, name):
                conn.execute(
                    "DELETE FROM variables WHERE run_id = ? AND branch = ? AND name = ?",
                    (run_id, branch, name),
                )
                self._delete_items(run_id, branch, name)
            case SetCursor(branch, cursor_value):
                conn.execute(
                    "INSERT INTO cursors (run_id, branch, cursor) VALUES (?, ?, ?) "
                    "ON CONFLICT (run_id, branch) DO UPDATE SET cursor = excluded.cursor",
                    (run_id, branch, dump(cursor_value)),
                )
            case DropBranch(branch):
                low, high = _nested_range(branch)
                for table in ("cursors", "variables", "list_items"):
                    if branch:
                        conn.execute(
                            f"DELETE FROM {table} WHERE run_id = ? "
                            "AND (branch = ? OR (branch >= ? AND branch < ?))",
                            (run_id, branch, low, high),
                        )
                    else:
                        conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))

    def _insert_items(
        self, run_id: str, branch: str, name: str, start: int, items: list[Json]
    ) -> None:
        self._conn.executemany(
            "INSERT INTO list_items (run_id, branch, name, idx, value) VALUES (?, ?, ?, ?, ?)",
            [(run_id, branch, name, i, dump(item)) for i, item in enumerate(items, start)],
        )

    def _delete_items(self, run_id: str, branch: str, name: str) -> None:
        self._conn.execute(
            "DELETE FROM list_items WHERE run_id = ? AND branch = ? AND name = ?",
            (run_id, branch, name),
        )

    def _put_ledger(self, run_id: str, put: LedgerPut, now: float) -> LedgerRow:
        scope = "" if put.global_scope else run_id
        result = dump(put.result)
        # A done row is final and a different args hash is a conflict: both keep the row.
        # A row written holds what was put (its `created_at` excepted, when it was there
        # before): only that column comes back, and the result is not decoded again.
        written = self._conn.execute(
            "INSERT INTO ledger (scope, key, args_hash, status, result, run_id, state, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (scope, key) DO UPDATE SET status = excluded.status, "
            "result = excluded.result, run_id = excluded.run_id, state = excluded.state, "
            "updated_at = excluded.updated_at "
            "WHERE ledger.status != 'done' AND ledger.args_hash = excluded.args_hash "
            "RETURNING created_at",
            (scope, put.key, put.args_hash, put.status, result, run_id, put.state, now, now),
        ).fetchone()
        if written is not None:
            return LedgerRow(
                key=put.key,
                scope_run_id=scope or None,
                args_hash=put.args_hash,
                status=put.status,
                result=put.result if type(put.result) in _SCALARS else load(result),
                run_id=run_id,
                state=put.state,
                created_at=written[0],
                updated_at=now,
            )
        # The row was kept (done, or another args hash): the caller judges the row as is.
        row = self._ledger_row(scope, put.key)
        assert row is not None
        return row

    def _apply_pending_work(self, batch: Batch, now: float) -> None:
        conn = self._conn
        run_id = batch.run_id
        if batch.set_timers:
            conn.executemany(
                "INSERT INTO timers (run_id, timer_id, due_at, payload) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (run_id, timer_id) DO UPDATE "
                "SET due_at = excluded.due_at, payload = excluded.payload",
                [(run_id, t.timer_id, now + t.delay, dump(t.payload)) for t in batch.set_timers],
            )
        if batch.cancel_timers:
            conn.executemany(
                "DELETE FROM timers WHERE run_id = ? AND timer_id = ?",
                [(run_id, timer_id) for timer_id in batch.cancel_timers],
            )
        if batch.open_checkpoints:
            conn.executemany(
                "INSERT INTO checkpoints (run_id, checkpoint_id, name, request, status, "
                "decision, opened_at) VALUES (?, ?, ?, ?, 'open', 'null', ?) "
                "ON CONFLICT (run_id, checkpoint_id) DO NOTHING",
                [
                    (run_id, c.checkpoint_id, c.name, dump(c.request), now)
                    for c in batch.open_checkpoints
                ],
            )
        if batch.close_checkpoints:
            conn.executemany(
                "UPDATE checkpoints SET status = 'closed' WHERE run_id = ? AND checkpoint_id = ?",
                [(run_id, checkpoint_id) for checkpoint_id in batch.close_checkpoints],
            )
        if batch.consume_signals:
            conn.executemany(
                "UPDATE signals SET consumed_at = ? "
                "WHERE run_id = ? AND signal_id = ? AND consumed_at IS NULL",
                [(now, run_id, signal_id) for signal_id in batch.consume_signals],
            )
        for signal in batch.send_signals:
            self._insert_signal(
                signal.run_id, signal.name, signal.payload, signal.signal_id, now, signal.key
            )
        for child in batch.create_runs:
            self._insert_run(child, now)
        if batch.outbox:
            conn.executemany(
                "INSERT INTO outbox (event_id, type, run_id, workflow, data, created_at) "
                "SELECT ?, ?, run_id, workflow, ?, ? FROM runs WHERE run_id = ? "
                "ON CONFLICT (event_id) DO NOTHING",
                [(m.event_id, m.type, dump(m.data), now, run_id) for m in batch.outbox],
            )

    def load_state(self, run_id: str) -> RunState:
        with self._snapshot() as conn:
            # The store's clock rides on the run's row (no statement of its own).
            row = conn.execute(
                f"SELECT {_RUN_COLUMNS_NO_ARGS}, {_CLOCK_SQL} FROM runs WHERE run_id = ?",
                (run_id,),
            ).fetchone()
            if row is None:
                raise run_not_found(run_id)
            clock_offset = float(row[-1]) - time.time()
            record = _run_record(row)
            cursors = {
                branch: load(cursor, run_id, "cursor")
                for branch, cursor in conn.execute(
                    "SELECT branch, cursor FROM cursors WHERE run_id = ?", (run_id,)
                )
            }
            variables: dict[str, dict[str, Json]] = {}
            lists: list[tuple[str, str]] = []
            for branch, name, value, is_list, length in conn.execute(
                "SELECT branch, name, value, is_list, length FROM variables WHERE run_id = ?",
                (run_id,),
            ):
                variables.setdefault(branch, {})[name] = (
                    [] if is_list else load(value, run_id, f"variable {name}")
                )
                if is_list and length:
                    lists.append((branch, name))
            # A list's stored items come back as one JSON array text, joined by SQLite in
            # index order, so that Python decodes one text instead of one per item.
            for branch, name in lists:
                (joined,) = conn.execute(_LIST_ITEMS_SQL, (run_id, branch, name)).fetchone()
                variables[branch][name] = load(f"[{joined or ''}]", run_id, f"list {name}")
        return RunState(run=record, cursors=cursors, variables=variables, clock_offset=clock_offset)

    def read_journal(
        self, run_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]:
        rows = self._query(
            "SELECT run_id, seq, at, kind, state, branch, data FROM events "
            "WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (run_id, after_seq, -1 if limit is None else limit),
        )
        return [event_record(r) for r in rows]

    # --- effect ledger --------------------------------------------------------------------

    def ledger_get(self, key: str, *, run_id: str | None) -> LedgerRow | None:
        with self._lock, self._translated():
            return self._ledger_row("" if run_id is None else run_id, key)

    def _ledger_row(self, scope: str, key: str) -> LedgerRow | None:
        row = self._conn.execute(
            f"SELECT {_LEDGER_COLUMNS} FROM ledger WHERE scope = ? AND key = ?", (scope, key)
        ).fetchone()
        return None if row is None else ledger_record(row)

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
        with self._write() as now:
            self._run(run_id)
            blocker = self._close_select(run_id, closes, reason)
            if blocker is not None:
                raise SelectDecided(blocker)
            return self._insert_signal(
                run_id, name, payload, signal_id or uuid.uuid4().hex, now, key, by
            )

    def _insert_signal(
        self,
        run_id: str,
        name: str,
        payload: Json,
        signal_id: str,
        now: float,
        key: str | None = None,
        by: str | None = None,
    ) -> bool:
        cursor = self._conn.execute(
            "INSERT INTO signals (run_id, signal_id, name, payload, sent_at, correlation, "
            "sent_by) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (run_id, signal_id, name, dump(payload), now, key, by),
        )
        return cursor.rowcount == 1

    def pending_signals(self, run_id: str, name: str | None = None) -> list[Signal]:
        sql = f"SELECT {_SIGNAL_COLUMNS} FROM signals WHERE run_id = ? AND consumed_at IS NULL"
        params: list[Any] = [run_id]
        if name is not None:
            sql += " AND name = ?"
            params.append(name)
        rows = self._query(sql + " ORDER BY arrival", params)
        return [signal_record(r) for r in rows]

    def taken_signal(self, run_id: str, name: str, key: str) -> Signal | None:
        rows = self._query(
            f"SELECT {_SIGNAL_COLUMNS} FROM signals WHERE run_id = ? AND name = ? "
            "AND correlation = ? AND consumed_at IS NOT NULL ORDER BY arrival LIMIT 1",
            [run_id, name, key],
        )
        return signal_record(rows[0]) if rows else None

    def callback_secret(self) -> bytes:
        rows = self._query("SELECT value FROM secrets WHERE name = 'callback_tokens'", [])
        if not rows:
            raise StoreCorrupt(f"journal `{self.location}` has no callback token secret")
        return bytes.fromhex(rows[0][0])

    # --- checkpoints --------------------------------------------------------------------

    def get_checkpoint(self, run_id: str, checkpoint_id: str) -> Checkpoint | None:
        with self._lock, self._translated():
            return self._checkpoint(run_id, checkpoint_id)

    def _checkpoint(self, run_id: str, checkpoint_id: str) -> Checkpoint | None:
        row = self._conn.execute(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints WHERE run_id = ? AND checkpoint_id = ?",
            (run_id, checkpoint_id),
        ).fetchone()
        return None if row is None else checkpoint_record(row)

    def open_checkpoints(self, run_id: str | None = None) -> list[Checkpoint]:
        sql = f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints WHERE status = 'open'"
        params: list[Any] = []
        if run_id is not None:
            sql += " AND run_id = ?"
            params.append(run_id)
        rows = self._query(sql + " ORDER BY opened_at, run_id, checkpoint_id", params)
        return [checkpoint_record(row) for row in rows]

    def decide_checkpoint(
        self, run_id: str, checkpoint_id: str, decision: Json, *, by: str
    ) -> Decision:
        with self._write() as now:
            cursor = self._conn.execute(
                "UPDATE checkpoints SET status = 'decided', decision = ?, decided_by = ?, "
                "decided_at = ? WHERE run_id = ? AND checkpoint_id = ? AND status = 'open'",
                (dump(decision), by, now, run_id, checkpoint_id),
            )
            checkpoint = self._checkpoint(run_id, checkpoint_id)
            if cursor.rowcount == 1 and checkpoint is not None:
                lost_to = {"arm": "checkpoint", "name": checkpoint.name, "by": by}
                self._conn.executemany(
                    "UPDATE checkpoints SET status = 'closed', decision = ? "
                    "WHERE run_id = ? AND checkpoint_id = ? AND status = 'open'",
                    [
                        (dump({"lost_to": lost_to}), run_id, rival)
                        for rival in select_rivals(checkpoint)
                    ],
                )
        if checkpoint is None:
            raise CheckpointNotFound(
                f"run `{run_id}` has no checkpoint `{checkpoint_id}`",
                help="`mnc show RUN` lists a run's checkpoints",
            )
        return Decision(accepted=cursor.rowcount == 1, checkpoint=checkpoint)

    def close_select(
        self, run_id: str, checkpoint_ids: Sequence[str], reason: Json
    ) -> Checkpoint | None:
        with self._write():
            return self._close_select(run_id, checkpoint_ids, reason)

    def _close_select(
        self, run_id: str, checkpoint_ids: Sequence[str], reason: Json
    ) -> Checkpoint | None:
        """Inside a write: close the checkpoints if all are open, else the first that is not."""
        for checkpoint_id in sorted(checkpoint_ids):
            found = self._checkpoint(run_id, checkpoint_id)
            if found is not None and found.status != "open":
                return found
        self._conn.executemany(
            "UPDATE checkpoints SET status = 'closed', decision = ? "
            "WHERE run_id = ? AND checkpoint_id = ?",
            [(dump(reason), run_id, checkpoint_id) for checkpoint_id in checkpoint_ids],
        )
        return None

    # --- timers ---------------------------------------------------------------------------

    def due_timers(
        self, *, limit: int = 100, now: float | None = None, prefix: str = ""
    ) -> list[Timer]:
        with self._lock, self._translated():
            at = float(self._conn.execute(_NOW_SQL).fetchone()[0]) if now is None else now
            rows = self._conn.execute(
                f"SELECT {_TIMER_COLUMNS} FROM timers WHERE due_at <= ? "
                "AND substr(timer_id, 1, ?) = ? ORDER BY due_at, run_id, timer_id LIMIT ?",
                (at, len(prefix), prefix, limit),
            ).fetchall()
        return [timer_record(r) for r in rows]

    def decide_timeouts(self, decisions: Sequence[TimedDecision], *, by: str) -> int:
        crash = CrashPlan.from_env(next_commit_number())
        crash.point("before")
        with self._write() as now:
            decided = 0
            for d in decisions:
                cursor = self._conn.execute(
                    "UPDATE checkpoints SET status = 'decided', decision = :decision, "
                    "decided_by = :by, decided_at = :now "
                    "WHERE run_id = :run AND checkpoint_id = :checkpoint AND status = 'open' "
                    "AND EXISTS (SELECT 1 FROM timers "
                    "WHERE run_id = :run AND timer_id = :timer AND due_at <= :now) "
                    "AND EXISTS (SELECT 1 FROM runs "
                    "WHERE run_id = :run AND status IN ('running', 'waiting'))",
                    {
                        "decision": dump(d.decision),
                        "by": by,
                        "now": now,
                        "run": d.run_id,
                        "checkpoint": d.checkpoint_id,
                        "timer": d.timer_id,
                    },
                )
                if cursor.rowcount == 1:
                    self._conn.execute(
                        "DELETE FROM timers WHERE run_id = ? AND timer_id = ?",
                        (d.run_id, d.timer_id),
                    )
                    decided += 1
            crash.point("written")
            crash.point("during")
        crash.point("after")
        return decided

    def next_due(self) -> float | None:
        value = self._query("SELECT min(due_at) FROM timers")[0][0]
        return None if value is None else float(value)

    def run_timers(self, run_id: str) -> list[Timer]:
        rows = self._query(
            f"SELECT {_TIMER_COLUMNS} FROM timers WHERE run_id = ? ORDER BY due_at, timer_id",
            (run_id,),
        )
        return [timer_record(r) for r in rows]

    # --- leases ---------------------------------------------------------------------------

    def _lease_columns(self, run_id: str) -> tuple[str | None, int, float | None]:
        """A run's lease owner, epoch and expiry (not its whole record: its arguments may
        be large)."""
        row = self._conn.execute(
            "SELECT lease_owner, lease_epoch, lease_expires_at FROM runs WHERE run_id = ?",
            (run_id,),
        ).fetchone()
        if row is None:
            raise run_not_found(run_id)
        return row[0], row[1], row[2]

    def acquire_lease(self, run_id: str, owner: str, ttl: float) -> Lease | None:
        check_ttl(ttl)
        with self._write() as now:
            holder, epoch, expires = self._lease_columns(run_id)
            held = holder is not None and expires is not None and expires > now
            if held and holder != owner:
                return None
            refused = self._take_slot(run_id)
            if refused is not None:
                raise refused
            lease = Lease(run_id, owner, epoch + 1, now + ttl)
            self._conn.execute(
                "UPDATE runs SET lease_owner = ?, lease_epoch = ?, lease_expires_at = ? "
                "WHERE run_id = ?",
                (owner, lease.epoch, lease.expires_at, run_id),
            )
            return lease

    def renew_lease(self, lease: Lease, ttl: float) -> Lease:
        check_ttl(ttl)
        with self._write() as now:
            holder, epoch, expires = self._lease_columns(lease.run_id)
            check_lease(Batch(run_id=lease.run_id, lease=lease), holder, epoch, expires, now)
            renewed = Lease(lease.run_id, lease.owner, lease.epoch, now + ttl)
            self._conn.execute(
                "UPDATE runs SET lease_expires_at = ? WHERE run_id = ?",
                (renewed.expires_at, lease.run_id),
            )
            return renewed

    def release_lease(self, lease: Lease) -> None:
        with self._write():
            self._conn.execute(
                "UPDATE runs SET lease_owner = NULL, lease_expires_at = NULL "
                "WHERE run_id = ? AND lease_owner = ? AND lease_epoch = ?",
                (lease.run_id, lease.owner, lease.epoch),
            )

    # --- workers --------------------------------------------------------------------------

    def worker_heartbeat(
        self, worker_id: str, *, host: str, pid: int, concurrency: int, ttl: float
    ) -> None:
        check_ttl(ttl)
        with self._write() as now:
            self._conn.execute(
                "INSERT INTO workers (worker_id, host, pid, concurrency, started_at, "
                "heartbeat_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (worker_id) DO UPDATE SET concurrency = excluded.concurrency, "
                "heartbeat_at = excluded.heartbeat_at, expires_at = excluded.expires_at",
                (worker_id, host, pid, concurrency, now, now, now + ttl),
            )
            self._conn.execute(
                "DELETE FROM workers WHERE expires_at < ?", (now - _FORGET_WORKER_AFTER,)
            )
            self._conn.execute(
                "DELETE FROM worker_offers WHERE worker_id NOT IN (SELECT worker_id FROM workers)"
            )

    def worker_stopped(self, worker_id: str) -> None:
        with self._write():
            self._conn.execute("DELETE FROM workers WHERE worker_id = ?", (worker_id,))
            self._conn.execute("DELETE FROM worker_offers WHERE worker_id = ?", (worker_id,))

    def advertise(self, worker_id: str, needs: Sequence[Need], *, pinned: bool) -> None:
        with self._write():
            self._conn.execute("DELETE FROM worker_offers WHERE worker_id = ?", (worker_id,))
            self._conn.executemany(
                "INSERT INTO worker_offers (worker_id, kind, scope, name, digest, pinned) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [(worker_id, n.kind, n.scope, n.name, n.digest, int(pinned)) for n in needs],
            )

    def list_offers(self) -> list[Offer]:
        with self._snapshot() as conn:
            now = float(conn.execute(_NOW_SQL).fetchone()[0])
            rows = conn.execute(
                "SELECT o.worker_id, o.kind, o.scope, o.name, o.digest, o.pinned "
                "FROM worker_offers AS o JOIN workers AS w USING (worker_id) "
                "WHERE w.expires_at > ? ORDER BY o.worker_id, o.kind, o.scope, o.name",
                (now,),
            ).fetchall()
        return [Offer(r[0], Need(r[1], r[2], r[3], r[4]), bool(r[5])) for r in rows]

    def set_run_needs(self, run_id: str, needs: Sequence[Need]) -> None:
        with self._write():
            self._conn.execute(
                "UPDATE runs SET needs = ? WHERE run_id = ?",
                (None if not needs else dump(needs_json(needs)), run_id),
            )

    def run_needs(self, run_id: str) -> list[Need]:
        rows = self._query("SELECT needs FROM runs WHERE run_id = ?", (run_id,))
        if not rows:
            raise run_not_found(run_id)
        return needs_of(load(rows[0][0], run_id, "needs"), run_id)

    def cached_reply(self, digest: str) -> str | None:
        rows = self._query(
            f"SELECT reply FROM reply_cache WHERE digest = ? AND expires_at > ({_NOW_SQL})",
            (digest,),
        )
        return str(rows[0][0]) if rows else None

    def keep_reply(self, digest: str, reply: str, ttl_s: float) -> None:
        with self._write() as now:
            self._conn.execute("DELETE FROM reply_cache WHERE expires_at <= ?", (now,))
            self._conn.execute(
                "INSERT INTO reply_cache (digest, reply, created_at, expires_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (digest) DO UPDATE SET reply = excluded.reply, "
                "created_at = excluded.created_at, expires_at = excluded.expires_at",
                (digest, reply, now, now + ttl_s),
            )

    def export_cursor(self, exporter: str) -> dict[str, int]:
        rows = self._query("SELECT run_id, seq FROM export_cursors WHERE exporter = ?", (exporter,))
        return {str(run_id): int(seq) for run_id, seq in rows}

    def move_export_cursor(self, exporter: str, moved: Mapping[str, int]) -> None:
        with self._write():
            self._conn.executemany(
                "INSERT INTO export_cursors (exporter, run_id, seq) VALUES (?, ?, ?) "
                "ON CONFLICT (exporter, run_id) DO UPDATE SET seq = excluded.seq",
                [(exporter, run_id, seq) for run_id, seq in moved.items()],
            )

    def signal_holders(self, signal_id: str) -> list[str]:
        rows = self._query(
            "SELECT run_id FROM signals WHERE signal_id = ? ORDER BY run_id", (signal_id,)
        )
        return [str(row[0]) for row in rows]

    def waiting_for_key(self, key: str) -> list[tuple[str, str]]:
        rows = self._query(WAITING_FOR_KEY_SQL.replace("%s", "?"), (key,))
        return [(str(row[0]), str(row[1])) for row in rows]

    # --- the outbox -----------------------------------------------------------------------

    def unrouted_outbox(self, limit: int = 100) -> list[OutboxEvent]:
        rows = self._query(
            f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE routed_at IS NULL "
            "ORDER BY created_at, event_id LIMIT ?",
            (limit,),
        )
        return [outbox_event(row) for row in rows]

    def route_outbox(self, routes: Mapping[str, Sequence[str]]) -> None:
        with self._write() as now:
            self._conn.executemany(
                "INSERT INTO deliveries (event_id, sink, status, attempts, next_at, updated_at) "
                "VALUES (?, ?, 'pending', 0, ?, ?) ON CONFLICT (event_id, sink) DO NOTHING",
                [(e, sink, now, now) for e, sinks in routes.items() for sink in sinks],
            )
            self._conn.executemany(
                "UPDATE outbox SET routed_at = ? WHERE event_id = ? AND routed_at IS NULL",
                [(now, e) for e in routes],
            )

    def claim_deliveries(self, owner: str, ttl: float, limit: int = 10) -> list[Delivery]:
        check_ttl(ttl)
        with self._write() as now:
            rows = self._conn.execute(
                "UPDATE deliveries SET lease_owner = ?, lease_expires_at = ? "
                "WHERE (event_id, sink) IN (SELECT event_id, sink FROM deliveries "
                "WHERE status = 'pending' AND next_at <= ? "
                "AND (lease_expires_at IS NULL OR lease_expires_at <= ?) "
                "ORDER BY next_at LIMIT ?) RETURNING event_id, sink",
                (owner, now + ttl, now, now, limit),
            ).fetchall()
            return [self._delivery(conn_row[0], conn_row[1]) for conn_row in rows]

    def _delivery(self, event_id: str, sink: str, *, attempts: bool = False) -> Delivery:
        conn = self._conn
        row = conn.execute(
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries AS d JOIN outbox AS o "
            "USING (event_id) WHERE d.event_id = ? AND d.sink = ?",
            (event_id, sink),
        ).fetchone()
        log = (
            conn.execute(
                "SELECT attempt, at, status_code, error FROM delivery_attempts "
                "WHERE event_id = ? AND sink = ? ORDER BY attempt",
                (event_id, sink),
            ).fetchall()
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
        with self._write() as now:
            row = self._conn.execute(
                "UPDATE deliveries SET status = ?, attempts = attempts + 1, next_at = ?, "
                "updated_at = ?, lease_owner = NULL, lease_expires_at = NULL "
                "WHERE event_id = ? AND sink = ? AND lease_owner = ? RETURNING attempts",
                (outcome, now + retry_in, now, event_id, sink, owner),
            ).fetchone()
            if row is None:
                return False
            self._conn.execute(
                "INSERT INTO delivery_attempts (event_id, sink, attempt, at, status_code, error) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (event_id, sink, row[0], now, status_code, error),
            )
            return True

    def list_deliveries(
        self,
        *,
        run_id: str | None = None,
        status: str | None = None,
        event_id: str | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        with self._snapshot() as conn:
            keys = conn.execute(
                "SELECT d.event_id, d.sink FROM deliveries AS d JOIN outbox AS o "
                "USING (event_id) WHERE (? IS NULL OR o.run_id = ?) "
                "AND (? IS NULL OR d.status = ?) AND (? IS NULL OR d.event_id = ?) "
                "ORDER BY o.created_at DESC, d.event_id, d.sink LIMIT ?",
                (run_id, run_id, status, status, event_id, event_id, limit),
            ).fetchall()
            return [self._delivery(e, sink, attempts=True) for e, sink in keys]

    def redeliver(self, event_id: str, sink: str) -> bool:
        with self._write() as now:
            cursor = self._conn.execute(
                "UPDATE deliveries SET status = 'pending', next_at = ?, updated_at = ? "
                "WHERE event_id = ? AND sink = ?",
                (now, now, event_id, sink),
            )
            return cursor.rowcount > 0

    def remove_settled_outbox(
        self, created_before: float, *, after: str = "", limit: int = 1000
    ) -> tuple[int, str | None]:
        crash = CrashPlan.from_env(next_commit_number())
        crash.point("before")
        with self._write():
            page = self._conn.execute(
                ROUTED_PAGE_SQL.replace("%(", ":").replace(")s", ""),
                {"cutoff": created_before, "after": after, "limit": limit},
            ).fetchall()
            removable = []
            for event_id, old, run_gone in page:
                statuses = [
                    s
                    for (s,) in self._conn.execute(
                        "SELECT status FROM deliveries WHERE event_id = ?", (event_id,)
                    )
                ]
                if outbox_removable(statuses, bool(old), bool(run_gone)):
                    removable.append((event_id,))
            for table in ("delivery_attempts", "deliveries", "outbox"):
                self._conn.executemany(f"DELETE FROM {table} WHERE event_id = ?", removable)
            crash.point("written")
            crash.point("during")
        crash.point("after")
        return len(removable), (str(page[-1][0]) if len(page) == limit else None)

    def list_workers(self) -> list[WorkerRecord]:
        with self._snapshot() as conn:
            now = float(conn.execute(_NOW_SQL).fetchone()[0])
            workers = conn.execute(
                "SELECT worker_id, host, pid, concurrency, started_at, heartbeat_at, expires_at "
                "FROM workers WHERE expires_at > ? ORDER BY worker_id",
                (now,),
            ).fetchall()
            claimed: dict[str, list[str]] = {}
            for owner, run_id in conn.execute(
                "SELECT lease_owner, run_id FROM runs WHERE status IN ('running', 'waiting') "
                "AND lease_owner IS NOT NULL AND lease_expires_at > ? ORDER BY run_id",
                (now,),
            ):
                claimed.setdefault(owner, []).append(run_id)
        return [_worker_record(row, claimed.get(row[0], [])) for row in workers]

    def tool_slots(self) -> None:
        return None

    # --- compiled programs ----------------------------------------------------------------

    def put_program(self, ir_hash: str, ir_json: str) -> None:
        with self._write() as now:
            self._conn.execute(
                "INSERT INTO programs (ir_hash, ir, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (ir_hash) DO NOTHING",
                (ir_hash, ir_json, now),
            )

    def get_program(self, ir_hash: str) -> str | None:
        rows = self._query("SELECT ir FROM programs WHERE ir_hash = ?", (ir_hash,))
        return cast(str, rows[0][0]) if rows else None

    def program_hashes(self) -> list[tuple[str, float]]:
        rows = self._query("SELECT ir_hash, created_at FROM programs ORDER BY created_at DESC")
        return [(str(r[0]), float(r[1])) for r in rows]

    # --- schedules ------------------------------------------------------------------------

    def put_schedule(self, schedule: NewSchedule) -> ScheduleRecord:
        spec = dump(schedule.spec)
        with self._write() as now:
            # A changed spec starts over from the given time; an unchanged one keeps its
            # place. A paused schedule stays paused.
            self._conn.execute(
                "INSERT INTO schedules (name, workflow, ir_hash, source, spec, next_at, "
                "updated_at, module) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO "
                "UPDATE SET workflow = excluded.workflow, ir_hash = excluded.ir_hash, "
                "source = excluded.source, updated_at = excluded.updated_at, "
                "module = excluded.module, "
                "next_at = CASE WHEN schedules.spec = excluded.spec THEN schedules.next_at "
                "ELSE excluded.next_at END, spec = excluded.spec",
                (
                    schedule.name,
                    schedule.workflow,
                    schedule.ir_hash,
                    schedule.source,
                    spec,
                    schedule.next_at,
                    now,
                    schedule.module,
                ),
            )
            row = self._conn.execute(
                f"SELECT {_SCHEDULE_COLUMNS} FROM schedules WHERE name = ?", (schedule.name,)
            ).fetchone()
        return schedule_record(row)

    def list_schedules(self) -> list[ScheduleRecord]:
        rows = self._query(f"SELECT {_SCHEDULE_COLUMNS} FROM schedules ORDER BY name")
        return [schedule_record(row) for row in rows]

    def delete_schedule(self, name: str) -> bool:
        with self._write():
            return self._conn.execute("DELETE FROM schedules WHERE name = ?", (name,)).rowcount == 1

    def pause_schedule(self, name: str) -> bool:
        with self._write() as now:
            return (
                self._conn.execute(
                    "UPDATE schedules SET paused_at = coalesce(paused_at, ?), updated_at = ? "
                    "WHERE name = ?",
                    (now, now, name),
                ).rowcount
                == 1
            )

    def resume_schedule(self, name: str, next_at: float) -> bool:
        with self._write() as now:
            return (
                self._conn.execute(
                    "UPDATE schedules SET next_at = CASE WHEN paused_at IS NULL THEN next_at "
                    "ELSE ? END, paused_at = NULL, updated_at = ? WHERE name = ?",
                    (next_at, now, name),
                ).rowcount
                == 1
            )

    def fire_schedule(
        self, name: str, run: NewRun, *, expected: float, scheduled_at: float, next_at: float
    ) -> bool:
        crash = CrashPlan.from_env(next_commit_number())
        crash.point("before")
        with self._write() as now:
            moved = self._conn.execute(
                "UPDATE schedules SET next_at = ?, last_at = ?, last_run_id = ?, updated_at = ? "
                "WHERE name = ? AND next_at = ? AND paused_at IS NULL",
                (next_at, scheduled_at, run.run_id, now, name, expected),
            )
            if moved.rowcount != 1:
                return False
            self._insert_run(run, now)
            crash.point("written")
            crash.point("during")
        crash.point("after")
        return True

    # --- retention -----------------------------------------------------------------------

    def ended_roots(
        self,
        *,
        ended_before: float,
        statuses: Sequence[str],
        after: tuple[float, str] | None = None,
        limit: int = 100,
    ) -> list[tuple[float, str]]:
        wanted = [s for s in statuses if s in TERMINAL_STATUSES]
        marks = ", ".join("?" * len(wanted))
        last_at, last_id = after if after is not None else (float("-inf"), "")
        rows = self._query(
            # Without statistics the planner would take every top-level run and sort them
            # for each page; this index walks them in page order.
            "SELECT finished_at, run_id FROM runs INDEXED BY runs_ended_roots "
            "WHERE parent_run_id IS NULL AND finished_at IS NOT NULL AND finished_at < ? "
            f"AND status IN ({marks}) AND (finished_at, run_id) > (?, ?) "
            "ORDER BY finished_at, run_id LIMIT ?",
            (ended_before, *wanted, last_at, last_id, limit),
        )
        return [(float(r[0]), str(r[1])) for r in rows]

    def remove_runs(self, trees: Sequence[Sequence[Tombstone]]) -> list[str]:
        crash = CrashPlan.from_env(next_commit_number())
        crash.point("before")
        removed: list[str] = []
        with self._write() as now:
            conn = self._conn
            starters = {
                r[0]
                for r in conn.execute(
                    "SELECT json_extract(meta, '$.started_by') FROM runs "
                    "WHERE status IN ('running', 'waiting') "
                    "AND json_extract(meta, '$.started_by') IS NOT NULL"
                )
            }
            for tree in trees:
                ids = [t.run_id for t in tree]
                marks = ", ".join("?" * len(ids))
                statuses = conn.execute(
                    f"SELECT status FROM runs WHERE run_id IN ({marks})", ids
                ).fetchall()
                (outside,) = conn.execute(
                    f"SELECT count(*) FROM runs WHERE parent_run_id IN ({marks}) "
                    f"AND run_id NOT IN ({marks})",
                    ids + ids,
                ).fetchone()
                if (
                    len(statuses) != len(ids)
                    or any(s not in TERMINAL_STATUSES for (s,) in statuses)
                    or outside
                    or starters.intersection(ids)
                ):
                    continue
                for table in (*RUN_ROW_TABLES, "run_args"):
                    conn.execute(f"DELETE FROM {table} WHERE run_id IN ({marks})", ids)
                conn.execute(f"DELETE FROM ledger WHERE scope IN ({marks})", ids)
                conn.execute(f"DELETE FROM runs WHERE run_id IN ({marks})", ids)
                conn.executemany(
                    f"INSERT INTO removed_runs ({TOMBSTONE_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO NOTHING",
                    [tombstone_params(t, now) for t in tree],
                )
                removed.append(ids[0])
            crash.point("written")
            crash.point("during")
        crash.point("after")
        return removed

    def remove_global_keys(self, updated_before: float, limit: int = 1000) -> int:
        with self._write():
            cursor = self._conn.execute(
                "DELETE FROM ledger WHERE rowid IN (SELECT l.rowid FROM ledger AS l "
                "WHERE l.scope = '' AND l.updated_at < ? AND NOT EXISTS (SELECT 1 FROM runs "
                "WHERE runs.run_id = l.run_id AND runs.status IN ('running', 'waiting')) "
                "LIMIT ?)",
                (updated_before, limit),
            )
            return cursor.rowcount

    def get_tombstone(self, run_id: str) -> Tombstone | None:
        with self._lock, self._translated():
            return self._tombstone(run_id)

    def _tombstone(self, run_id: str) -> Tombstone | None:
        row = self._conn.execute(
            f"SELECT {TOMBSTONE_COLUMNS} FROM removed_runs WHERE run_id = ?", (run_id,)
        ).fetchone()
        return None if row is None else tombstone_record(row)

    def tombstone_count(self) -> int:
        return int(self._query("SELECT count(*) FROM removed_runs")[0][0])


_EncodedEvent = tuple[str, str | None, str, str]
"""An event ready for its row: kind, state, branch and its data's JSON."""


def _run_update(batch: Batch, events: int) -> tuple[str, list[Any]]:
    """The `UPDATE` of a commit's run row (its `last_seq` moved on by `events`, its clock
    and what `batch.run` changes), returning the row's clock, `last_seq` and lease."""
    sets = [f"last_seq = last_seq + ?, updated_at = {_CLOCK_SQL}"]
    params: list[Any] = [events]
    update = batch.run
    if update is not None:
        if update.status is not None:
            sets.append("status = ?")
            params.append(update.status)
            if update.status in TERMINAL_STATUSES:
                sets.append(f"finished_at = coalesce(finished_at, {_CLOCK_SQL})")
        if update.result is not UNSET:
            sets.append("result = ?")
            params.append(dump(update.result))
        if update.error is not UNSET:
            sets.append("error = ?")
            params.append(dump(update.error))
        if update.waiting_for is not None:
            sets.append("waiting_for = ?")
            params.append(dump(update.waiting_for))
        if update.ir_hash is not None:
            sets.append("ir_hash = ?")
            params.append(update.ir_hash)
        if update.meta is not None:
            sets.append("meta = ?")
            params.append(dump(update.meta))
    params.append(batch.run_id)
    return f"UPDATE runs SET {', '.join(sets)}{_COMMIT_RUN_RETURNING}", params


def _encoded_events(batch: Batch) -> list[_EncodedEvent]:
    return [(e.kind, e.state, e.branch, dump(e.data)) for e in batch.events]


def _run_record(row: Sequence[Any]) -> RunRecord:
    return run_record(row, load(row[10], row[0], "waiting_for"))


def _worker_record(row: Sequence[Any], claimed: Sequence[str]) -> WorkerRecord:
    worker_id, host, pid, concurrency, started_at, heartbeat_at, expires_at = row
    return WorkerRecord(
        worker_id, host, pid, concurrency, started_at, heartbeat_at, expires_at, tuple(claimed)
    )
