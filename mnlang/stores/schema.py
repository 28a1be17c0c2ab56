"""The SQLite journal's schema, its version, and the migrations that bring a file up to it.

The version lives in `PRAGMA user_version` and the file is marked as an mnlang journal by
`PRAGMA application_id`, so another program's database is refused instead of altered.
Migration `n` takes a file from version `n` to `n + 1`; version 0 is an empty file.
Opening migrates inside one `BEGIN IMMEDIATE` transaction, so two processes opening a new
file at once cannot both migrate it, and a crash mid-migration leaves the old version.

JSON payloads are TEXT columns; times are REAL seconds since the Unix epoch by the
store's clock; booleans are INTEGER 0/1. In `ledger.scope`, `''` marks a global key and
any other value is the run id that scopes the key, so one primary key covers both scopes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from mnlang.stores.base import StoreCorrupt, StoreVersionError

if TYPE_CHECKING:
    # Imported when a file is created or migrated, not on every open (it costs more to
    # import than most journal commands take).
    import sqlite_utils

SCHEMA_VERSION = 17
APPLICATION_ID = 0x6D6E6331  # "mnc1"

TEXT, INTEGER, REAL = str, int, float


def _table(
    db: sqlite_utils.Database,
    name: str,
    columns: dict[str, type],
    pk: str | tuple[str, ...],
    not_null: set[str],
    defaults: dict[str, object] | None = None,
) -> sqlite_utils.db.Table:
    keys = {pk} if isinstance(pk, str) else set(pk)
    return db.table(name).create(
        columns,
        pk=pk,
        not_null=not_null | keys,
        defaults=defaults or {},
        strict=db.supports_strict,
    )


def _create_v1(db: sqlite_utils.Database) -> None:
    def table(
        name: str,
        columns: dict[str, type],
        pk: str | tuple[str, ...],
        not_null: set[str],
        defaults: dict[str, object] | None = None,
    ) -> sqlite_utils.db.Table:
        return _table(db, name, columns, pk, not_null, defaults)

    runs = table(
        "runs",
        {
            "run_id": TEXT,
            "workflow": TEXT,
            "workflow_class": TEXT,
            "status": TEXT,
            "args": TEXT,
            "result": TEXT,
            "error": TEXT,
            "parent_run_id": TEXT,
            "ir_hash": TEXT,
            "meta": TEXT,
            "waiting_for": TEXT,
            "cancel_requested": INTEGER,
            "last_seq": INTEGER,
            "lease_owner": TEXT,
            "lease_epoch": INTEGER,
            "lease_expires_at": REAL,
            "created_at": REAL,
            "updated_at": REAL,
            "finished_at": REAL,
        },
        pk="run_id",
        not_null={
            "workflow",
            "workflow_class",
            "status",
            "args",
            "ir_hash",
            "meta",
            "waiting_for",
            "cancel_requested",
            "last_seq",
            "lease_epoch",
            "created_at",
            "updated_at",
        },
        defaults={
            "workflow_class": "",
            "ir_hash": "",
            "meta": "{}",
            "waiting_for": "[]",
            "cancel_requested": 0,
            "last_seq": 0,
            "lease_epoch": 0,
        },
    )
    for column in ("status", "workflow", "workflow_class", "parent_run_id", "created_at"):
        runs.create_index([column], index_name=f"runs_by_{column}")

    table(
        "events",
        {
            "run_id": TEXT,
            "seq": INTEGER,
            "at": REAL,
            "kind": TEXT,
            "state": TEXT,
            "branch": TEXT,
            "data": TEXT,
        },
        pk=("run_id", "seq"),
        not_null={"at", "kind", "branch", "data"},
    )

    table(
        "cursors",
        {"run_id": TEXT, "branch": TEXT, "cursor": TEXT},
        pk=("run_id", "branch"),
        not_null={"cursor"},
    )
    # A list variable keeps `value` NULL and its items in `list_items`, so appending to
    # it writes one row per item and never rewrites the list.
    table(
        "variables",
        {
            "run_id": TEXT,
            "branch": TEXT,
            "name": TEXT,
            "value": TEXT,
            "is_list": INTEGER,
            "length": INTEGER,
        },
        pk=("run_id", "branch", "name"),
        not_null={"is_list", "length"},
        defaults={"is_list": 0, "length": 0},
    )
    table(
        "list_items",
        {"run_id": TEXT, "branch": TEXT, "name": TEXT, "idx": INTEGER, "value": TEXT},
        pk=("run_id", "branch", "name", "idx"),
        not_null={"value"},
    )

    ledger = table(
        "ledger",
        {
            "scope": TEXT,
            "key": TEXT,
            "args_hash": TEXT,
            "status": TEXT,
            "result": TEXT,
            "run_id": TEXT,
            "state": TEXT,
            "created_at": REAL,
            "updated_at": REAL,
        },
        pk=("scope", "key"),
        not_null={"args_hash", "status", "result", "run_id", "created_at", "updated_at"},
    )
    ledger.create_index(["run_id"], index_name="ledger_by_run")

    # `arrival` (the rowid) orders a mailbox; the unique index drops a repeated signal id.
    signals = table(
        "signals",
        {
            "arrival": INTEGER,
            "run_id": TEXT,
            "signal_id": TEXT,
            "name": TEXT,
            "payload": TEXT,
            "sent_at": REAL,
            "consumed_at": REAL,
        },
        pk="arrival",
        not_null={"run_id", "signal_id", "name", "payload", "sent_at"},
    )
    signals.create_index(["run_id", "signal_id"], index_name="signals_by_id", unique=True)
    signals.create_index(["run_id", "consumed_at"], index_name="signals_pending")

    checkpoints = table(
        "checkpoints",
        {
            "run_id": TEXT,
            "checkpoint_id": TEXT,
            "name": TEXT,
            "request": TEXT,
            "status": TEXT,
            "decision": TEXT,
            "decided_by": TEXT,
            "opened_at": REAL,
            "decided_at": REAL,
        },
        pk=("run_id", "checkpoint_id"),
        not_null={"name", "request", "status", "decision", "opened_at"},
    )
    checkpoints.create_index(["status", "opened_at"], index_name="checkpoints_by_status")

    timers = table(
        "timers",
        {"run_id": TEXT, "timer_id": TEXT, "due_at": REAL, "payload": TEXT},
        pk=("run_id", "timer_id"),
        not_null={"due_at", "payload"},
    )
    timers.create_index(["due_at"], index_name="timers_by_due")

    table(
        "programs",
        {"ir_hash": TEXT, "ir": TEXT, "created_at": REAL},
        pk="ir_hash",
        not_null={"ir", "created_at"},
    )


def _add_schedules_v2(db: sqlite_utils.Database) -> None:
    """Registered `schedule`s and the next time each starts a run (`spec` is JSON)."""
    schedules = _table(
        db,
        "schedules",
        {
            "name": TEXT,
            "workflow": TEXT,
            "ir_hash": TEXT,
            "source": TEXT,
            "spec": TEXT,
            "next_at": REAL,
            "last_at": REAL,
            "last_run_id": TEXT,
            "updated_at": REAL,
        },
        pk="name",
        not_null={"workflow", "ir_hash", "source", "spec", "next_at", "updated_at"},
    )
    schedules.create_index(["next_at"], index_name="schedules_by_next_at")


def _add_runnable_indexes_v3(db: sqlite_utils.Database) -> None:
    """Partial indexes of what makes a waiting run runnable (a cancel request, an unread
    signal), so finding runnable runs does not scan every waiting run or every signal."""
    db.execute("CREATE INDEX runs_cancel_requested ON runs (run_id) WHERE cancel_requested = 1")
    db.execute("CREATE INDEX signals_unread ON signals (run_id) WHERE consumed_at IS NULL")


def _add_workers_v4(db: sqlite_utils.Database) -> None:
    """Workers and their heartbeats, for `mnc workers`."""
    db.execute(
        "CREATE TABLE workers (worker_id TEXT PRIMARY KEY, host TEXT NOT NULL, "
        "pid INTEGER NOT NULL, concurrency INTEGER NOT NULL, started_at REAL NOT NULL, "
        "heartbeat_at REAL NOT NULL, expires_at REAL NOT NULL)"
    )


def _add_run_limits_v5(db: sqlite_utils.Database) -> None:
    """A workflow's `limit:` on each of its runs (`run_limit`, NULL without one) and the
    runs queued for a slot (`queued`), with indexes for counting the runs `running` per
    workflow and for finding queued runs."""
    db.execute("ALTER TABLE runs ADD COLUMN run_limit INTEGER")
    db.execute("ALTER TABLE runs ADD COLUMN queued INTEGER NOT NULL DEFAULT 0")
    db.execute("CREATE INDEX runs_by_workflow_status ON runs (workflow, status)")
    db.execute("CREATE INDEX runs_queued ON runs (run_id) WHERE queued = 1")


def _move_run_args_v6(db: sqlite_utils.Database) -> None:
    """A run's arguments in a table of their own (`run_args`), out of its `runs` row:
    leases, commits and status changes update that row, and SQLite writes a row whose size
    changes again whole, large arguments (in overflow pages) included."""
    db.execute(
        "CREATE TABLE run_args (run_id TEXT PRIMARY KEY REFERENCES runs (run_id), "
        "args TEXT NOT NULL)"
    )
    db.execute("INSERT INTO run_args (run_id, args) SELECT run_id, args FROM runs")
    db.execute("ALTER TABLE runs DROP COLUMN args")


def _add_signal_correlation_v7(db: sqlite_utils.Database) -> None:
    """A signal's correlation key (`correlation`, NULL without one), so a `wait E for K`
    takes only its own signal (one unread signal per key: a second could never be taken),
    and the journal's secret for callback tokens (`secrets`),
    kept out of every run's rows. A run waiting for a keyed signal lists `name#key` in
    `waiting_for`; the runnable query matches that address."""
    db.execute("ALTER TABLE signals ADD COLUMN correlation TEXT")
    db.execute(
        "CREATE UNIQUE INDEX signals_one_unread_per_key ON signals (run_id, name, correlation) "
        "WHERE consumed_at IS NULL AND correlation IS NOT NULL"
    )
    import secrets  # here: only a migration needs it, not every journal command

    db.execute("CREATE TABLE secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute(
        "INSERT INTO secrets (name, value) VALUES ('callback_tokens', ?)",
        (secrets.token_hex(32),),
    )


def _add_export_cursors_v8(db: sqlite_utils.Database) -> None:
    """The delivery cursors of `mnc export traces`: per exporter and run, the journal
    sequence number up to which the run's spans were accepted by the receiver, moved in
    one transaction after each accepted pass."""
    db.execute(
        "CREATE TABLE export_cursors (exporter TEXT NOT NULL, run_id TEXT NOT NULL, "
        "seq INTEGER NOT NULL, PRIMARY KEY (exporter, run_id))"
    )


def _add_tombstones_v9(db: sqlite_utils.Database) -> None:
    """Tombstones of the runs retention (`mnc gc`) removed (`removed_runs`), so a start
    with a removed run's id still answers as before, and an index of ended top-level
    runs by end time, so finding what to remove does not scan every run."""
    db.execute(
        "CREATE TABLE removed_runs (run_id TEXT PRIMARY KEY, workflow TEXT NOT NULL, "
        "ir_hash TEXT NOT NULL, input_hash TEXT NOT NULL, status TEXT NOT NULL, "
        "created_at REAL NOT NULL, finished_at REAL, removed_at REAL NOT NULL)"
    )
    db.execute(
        "CREATE INDEX runs_ended_roots ON runs (finished_at, run_id) "
        "WHERE parent_run_id IS NULL AND finished_at IS NOT NULL"
    )


def _add_quarantine_v10(db: sqlite_utils.Database) -> None:
    """A run set aside by a worker that found it cannot be executed as stored (a journal
    row that does not decode, a program that does not load): when (`quarantined_at`,
    NULL for a run that is not), by which worker and why. Claims skip such a run until a
    person releases it; the partial index finds the few quarantined runs among all."""
    db.execute("ALTER TABLE runs ADD COLUMN quarantined_at REAL")
    db.execute("ALTER TABLE runs ADD COLUMN quarantined_by TEXT")
    db.execute("ALTER TABLE runs ADD COLUMN quarantine_reason TEXT")
    db.execute("CREATE INDEX runs_quarantined ON runs (run_id) WHERE quarantined_at IS NOT NULL")


def _add_worker_offers_v11(db: sqlite_utils.Database) -> None:
    """What a run needs of the worker that executes it (`runs.needs`: a JSON list of
    `{kind, scope, name, digest}`, NULL for nothing) and what each worker advertises it
    can serve (`worker_offers`), so that a worker claims only the runs it can execute."""
    db.execute("ALTER TABLE runs ADD COLUMN needs TEXT")
    db.execute(
        "CREATE TABLE worker_offers (worker_id TEXT NOT NULL, kind TEXT NOT NULL, "
        "scope TEXT NOT NULL, name TEXT NOT NULL, digest TEXT, pinned INTEGER NOT NULL, "
        "PRIMARY KEY (worker_id, kind, scope, name))"
    )


def _add_reply_cache_v12(db: sqlite_utils.Database) -> None:
    """Agents' replies kept across runs for agents with `cache:` (`reply_cache`: the
    request's digest, the reply's JSON, when it expires). Not a part of any run's history:
    a run journals the reply it used. `IF NOT EXISTS`, so that a journal rebuilt at an
    older step with the table left in place migrates again."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS reply_cache (digest TEXT PRIMARY KEY, reply TEXT NOT NULL, "
        "created_at REAL NOT NULL, expires_at REAL NOT NULL)"
    )
    db.execute("CREATE INDEX IF NOT EXISTS reply_cache_expiry ON reply_cache (expires_at)")


def _schedules_by_declaring_module_v13(db: sqlite_utils.Database) -> None:
    """One registration per schedule of a module, whichever programs import it: a
    schedule is named by its declaring module (`jobs.nightly`), which it records
    (`module`), and can be paused (`paused_at`, NULL while it fires). Before, the file
    that declares a schedule registered it under its plain name (`nightly`) and each file
    importing that file under the qualified one (`jobs.nightly`): both fired. Such rows
    become one, holding the latest fired time and the latest next time of them, so no
    time that either fired fires again."""
    _table(
        db,
        "schedules_merged",
        {
            "name": TEXT,
            "workflow": TEXT,
            "ir_hash": TEXT,
            "source": TEXT,
            "spec": TEXT,
            "next_at": REAL,
            "last_at": REAL,
            "last_run_id": TEXT,
            "updated_at": REAL,
            "module": TEXT,
            "paused_at": REAL,
        },
        pk="name",
        not_null={"workflow", "ir_hash", "source", "spec", "next_at", "updated_at", "module"},
    )
    db.execute(MERGE_SCHEDULES_SQL)
    db.execute("DROP TABLE schedules")
    db.execute("ALTER TABLE schedules_merged RENAME TO schedules")
    db.execute("CREATE INDEX schedules_by_next_at ON schedules (next_at)")


# Shared with the PostgreSQL migration. A row registered by its declaring file has a plain
# name and that file (`jobs.mn`) as `source`: its module is the file's name without
# `.mn`. A qualified name's module is all before its last dot (`rtrim` drops the trailing
# characters that are not dots). Of the rows of one schedule, the one fired last is kept.
MERGE_SCHEDULES_SQL: Final = """
INSERT INTO schedules_merged (name, workflow, ir_hash, source, spec, next_at, last_at, last_run_id,
                   updated_at, module, paused_at)
SELECT module || '.' || plain, workflow, ir_hash, source, spec, latest_next_at,
       latest_last_at, last_run_id, updated_at, module, NULL
FROM (
    SELECT named.*,
           row_number() OVER (PARTITION BY module, plain
                              ORDER BY coalesce(last_at, -1) DESC, updated_at DESC) AS rank,
           max(next_at) OVER (PARTITION BY module, plain) AS latest_next_at,
           max(last_at) OVER (PARTITION BY module, plain) AS latest_last_at
    FROM (
        SELECT name, workflow, ir_hash, source, spec, next_at, last_at, last_run_id,
               updated_at,
               CASE WHEN name LIKE '%.%'
                    THEN substr(rtrim(name, replace(name, '.', '')), 1,
                                length(rtrim(name, replace(name, '.', ''))) - 1)
                    WHEN source LIKE '%.mn' THEN substr(source, 1, length(source) - 3)
                    ELSE source END AS module,
               CASE WHEN name LIKE '%.%'
                    THEN substr(name, length(rtrim(name, replace(name, '.', ''))) + 1)
                    ELSE name END AS plain
        FROM schedules
    ) AS named
) AS ranked
WHERE rank = 1
"""


def _add_outbox_v14(db: sqlite_utils.Database) -> None:
    """The journal outbox (`mnlang.outbox`): notifications written in the commit of the
    state change that causes them (`outbox`, `routed_at` NULL until the delivery loop has
    made one `deliveries` row per sink that wants it), each delivery's lease, status and
    next try, and every attempt (`delivery_attempts`). Signals by id alone, so an inbound
    webhook's delivery id (part of its signal id) is found as seen whatever run took it;
    who sent each signal (`sent_by`: a token's name, `inbound:NAME`, NULL when unknown)."""
    db.execute("CREATE INDEX signals_by_signal_id ON signals (signal_id)")
    db.execute("ALTER TABLE signals ADD COLUMN sent_by TEXT")
    db.execute(
        "CREATE TABLE outbox (event_id TEXT PRIMARY KEY, type TEXT NOT NULL, "
        "run_id TEXT NOT NULL, workflow TEXT NOT NULL, data TEXT NOT NULL, "
        "created_at REAL NOT NULL, routed_at REAL)"
    )
    db.execute("CREATE INDEX outbox_unrouted ON outbox (created_at) WHERE routed_at IS NULL")
    db.execute("CREATE INDEX outbox_by_run ON outbox (run_id)")
    db.execute(
        "CREATE TABLE deliveries (event_id TEXT NOT NULL REFERENCES outbox (event_id), "
        "sink TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL, "
        "next_at REAL NOT NULL, lease_owner TEXT, lease_expires_at REAL, "
        "updated_at REAL NOT NULL, PRIMARY KEY (event_id, sink))"
    )
    db.execute("CREATE INDEX deliveries_due ON deliveries (next_at) WHERE status = 'pending'")
    db.execute(
        "CREATE TABLE delivery_attempts (event_id TEXT NOT NULL, sink TEXT NOT NULL, "
        "attempt INTEGER NOT NULL, at REAL NOT NULL, status_code INTEGER, error TEXT, "
        "PRIMARY KEY (event_id, sink, attempt))"
    )


def _add_cancel_requested_by_v15(db: sqlite_utils.Database) -> None:
    """Who asked to cancel a run (`cancel_requested_by`: a token's user, the operating
    system's user, `mcp:CLIENT`, `run:PARENT` for a child its parent cancels; NULL before
    a cancel request or when unknown). The first request is kept: it is the one that
    stopped the run."""
    db.execute("ALTER TABLE runs ADD COLUMN cancel_requested_by TEXT")


# The keyed events a run waits for, one row per `name#key` entry of its `waiting_for`
# (`waiting_keys`), kept in step with that column by triggers on `runs` whatever writes
# it, so that an inbound webhook that names a key but no run finds the runs waiting for
# it through `waiting_keys_by_key` instead of reading every waiting run. A damaged
# `waiting_for` (JSON that does not decode) gives no rows rather than failing the write.
# `{run}` is the row: `NEW` in the triggers, `runs` in the migration's fill.
_WAITING_KEYS_ROWS = """
INSERT OR IGNORE INTO waiting_keys (run_id, event, key)
SELECT {run}.run_id, substr(a.value, 1, instr(a.value, '#') - 1),
       substr(a.value, instr(a.value, '#') + 1)
FROM {source} json_each(CASE WHEN json_valid({run}.waiting_for)
                             THEN {run}.waiting_for ELSE '[]' END) AS a
WHERE a.type = 'text' AND instr(a.value, '#') > 0
"""


def _add_waiting_keys_v16(db: sqlite_utils.Database) -> None:
    """The index of the keyed events runs wait for (`waiting_keys`, see
    `_WAITING_KEYS_ROWS`), filled from the runs that exist."""
    rows = _WAITING_KEYS_ROWS.format(run="NEW", source="")
    db.execute(
        "CREATE TABLE waiting_keys (run_id TEXT NOT NULL, event TEXT NOT NULL, "
        "key TEXT NOT NULL, PRIMARY KEY (run_id, event, key))"
    )
    db.execute("CREATE INDEX waiting_keys_by_key ON waiting_keys (key)")
    db.execute(f"CREATE TRIGGER runs_waiting_keys_insert AFTER INSERT ON runs BEGIN {rows}; END")
    db.execute(
        "CREATE TRIGGER runs_waiting_keys_update AFTER UPDATE OF waiting_for ON runs "
        "WHEN OLD.waiting_for IS NOT NEW.waiting_for BEGIN "
        f"DELETE FROM waiting_keys WHERE run_id = OLD.run_id; {rows}; END"
    )
    db.execute(
        "CREATE TRIGGER runs_waiting_keys_delete AFTER DELETE ON runs BEGIN "
        "DELETE FROM waiting_keys WHERE run_id = OLD.run_id; END"
    )
    db.execute(_WAITING_KEYS_ROWS.format(run="runs", source="runs,"))


def _drop_ledger_by_run_v17(db: sqlite_utils.Database) -> None:
    """The ledger's index by the run that last wrote a row (`ledger_by_run`) goes: no
    query reads it (a run's keys are found by `scope`, the primary key's first column),
    and every effect paid for it twice, at its intent and at its result: one more page
    of the commit's write-ahead log, of about nine."""
    db.execute("DROP INDEX IF EXISTS ledger_by_run")


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _create_v1,
    _add_schedules_v2,
    _add_runnable_indexes_v3,
    _add_workers_v4,
    _add_run_limits_v5,
    _move_run_args_v6,
    _add_signal_correlation_v7,
    _add_export_cursors_v8,
    _add_tombstones_v9,
    _add_quarantine_v10,
    _add_worker_offers_v11,
    _add_reply_cache_v12,
    _schedules_by_declaring_module_v13,
    _add_outbox_v14,
    _add_cancel_requested_by_v15,
    _add_waiting_keys_v16,
    _drop_ledger_by_run_v17,
]
assert len(MIGRATIONS) == SCHEMA_VERSION


def migrate(conn: sqlite3.Connection, location: str) -> int:
    """Bring the database up to `SCHEMA_VERSION`, or refuse a file that is not ours;
    returns the version the file had before."""
    version = _pragma(conn, "user_version")
    if version == SCHEMA_VERSION and _pragma(conn, "application_id") == APPLICATION_ID:
        return version
    _refuse_foreign(conn, version, location)
    import sqlite_utils

    db = sqlite_utils.Database(conn, execute_plugins=False, recursive_triggers=False)
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Another process may have migrated the file since the check above.
        version = _pragma(conn, "user_version")
        _refuse_foreign(conn, version, location)
        for step in MIGRATIONS[version:]:
            step(db)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return version


def read_only_version(conn: sqlite3.Connection, location: str) -> int:
    """The schema version of a journal opened read-only, which cannot be migrated: it
    must be this mnlang's."""
    version = _pragma(conn, "user_version")
    _refuse_foreign(conn, version, location)
    if version != SCHEMA_VERSION:
        raise StoreVersionError(
            f"journal `{location}` is read-only and has schema version {version}; this "
            f"mnlang reads {SCHEMA_VERSION} and cannot migrate it there",
            help="copy it somewhere writable first (opening the copy migrates it)",
        )
    return version


def _refuse_foreign(conn: sqlite3.Connection, version: int, location: str) -> None:
    if version > SCHEMA_VERSION:
        raise StoreVersionError(
            f"journal `{location}` has schema version {version}, newer than this mnlang's "
            f"{SCHEMA_VERSION}",
            help="upgrade mnlang, or pass `--db` with another journal file",
        )
    app_id = _pragma(conn, "application_id")
    has_tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
    if app_id not in (0, APPLICATION_ID) or (app_id == 0 and has_tables):
        raise StoreCorrupt(
            f"`{location}` is an SQLite database but not an mnlang journal",
            help="pass `--db` with a new or existing journal file",
        )


def _pragma(conn: sqlite3.Connection, name: str) -> int:
    value = conn.execute(f"PRAGMA {name}").fetchone()[0]
    assert isinstance(value, int)
    return value
