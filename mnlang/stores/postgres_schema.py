"""The PostgreSQL journal's schema, its version, and the migrations that bring it up to date.

A journal lives in one PostgreSQL schema (`mnc` unless the URL says `?schema=NAME`), so
it can share a database with an application's own tables. Its `mnc_meta` row marks the
schema as an mnlang journal and holds the version; a schema that has tables but no such
row is refused instead of altered. Migration `n` takes a journal from version `n` to
`n + 1`; version 0 is an empty or missing schema.

Migrating runs in one transaction under an advisory lock on the schema's name: DDL is
transactional in PostgreSQL, so two processes opening a new journal at once cannot both
migrate it, and a failure mid-migration leaves the old version.

Times are `float8` seconds since the Unix epoch by the database's clock; JSON payloads
are `text` holding the JSON exactly as written (`jsonb` would reorder object keys); the
names a run waits for are a `text[]`. In `ledger.scope`, `''` marks a global key and any
other value is the run that scopes the key: the ledger's primary key is the unique
constraint that lets an idempotency key be committed once.
"""

from __future__ import annotations

from typing import Final, LiteralString

import psycopg
from psycopg import sql

from mnlang.stores.base import StoreCorrupt, StoreVersionError
from mnlang.stores.schema import MERGE_SCHEDULES_SQL

SCHEMA_VERSION: Final = 17
APPLICATION: Final = "mnlang journal"

BAD_BATCH_SQLSTATE: Final = "MN001"
"""Raised by `mnc_commit` for a batch that cannot apply (a `ValueError` in Python)."""

# The heart of a commit, run by the server in one call: lock the run's row, read the
# clock, judge the lease, then update the run, append the events and apply the state
# ops in their order. A refused lease writes nothing and says why in what it returns.
# One call instead of a statement per part: each statement costs a client round trip
# and the server's per-statement work, which dominate a small commit.
#
# State ops arrive as parallel arrays: `ops` names the kind of each (`set`, `list`,
# `append`, `item`, `delete`, `cursor`, `drop`); `values` holds its JSON text (for
# `list` and `append`, a JSON array of the items, split here with `json_array_elements`,
# which keeps each item's text); `indexes` the item index of `item` ops.
# Tables are named without a schema: the store's connections put the journal's schema
# first on their `search_path`.
MNC_COMMIT: Final[LiteralString] = """
CREATE FUNCTION mnc_commit(
    p_run_id text, p_lease_owner text, p_lease_epoch bigint,
    p_status text, p_set_result boolean, p_result text, p_set_error boolean, p_error text,
    p_waiting_for text[], p_ir_hash text, p_meta text,
    p_event_kinds text[], p_event_states text[], p_event_branches text[], p_event_data text[],
    p_ops text[], p_op_branches text[], p_op_names text[], p_op_values text[],
    p_op_indexes integer[],
    OUT accepted boolean, OUT last_seq bigint, OUT cancel_requested boolean,
    OUT lease_owner text, OUT lease_epoch bigint, OUT lease_expires_at float8,
    OUT now float8, OUT rows_written bigint
) LANGUAGE plpgsql AS $$
DECLARE
    v_live boolean;
    v_events integer := coalesce(cardinality(p_event_kinds), 0);
    v_count bigint;
    v_start integer;
    v_branch text;
    v_name text;
    v_value text;
BEGIN
    SELECT r.last_seq, r.cancel_requested, r.lease_owner, r.lease_epoch, r.lease_expires_at
      INTO last_seq, cancel_requested, lease_owner, lease_epoch, lease_expires_at
      FROM runs AS r WHERE r.run_id = p_run_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    now := extract(epoch FROM clock_timestamp());
    v_live := lease_owner IS NOT NULL AND lease_expires_at > now;
    IF p_lease_owner IS NULL THEN
        accepted := NOT v_live;
    ELSE
        accepted := v_live AND lease_owner = p_lease_owner AND lease_epoch = p_lease_epoch;
    END IF;
    rows_written := 0;
    IF NOT accepted THEN
        RETURN;
    END IF;

    IF v_events > 0 THEN
        INSERT INTO events (run_id, seq, at, kind, state, branch, data)
        SELECT p_run_id, last_seq + e.ord, now, e.kind, e.state, e.branch, e.data
          FROM unnest(p_event_kinds, p_event_states, p_event_branches, p_event_data)
               WITH ORDINALITY AS e(kind, state, branch, data, ord);
    END IF;
    last_seq := last_seq + v_events;
    UPDATE runs SET
        last_seq = mnc_commit.last_seq,
        updated_at = now,
        status = coalesce(p_status, status),
        finished_at = CASE WHEN p_status IN ('completed', 'failed', 'cancelled')
                           THEN coalesce(finished_at, now) ELSE finished_at END,
        result = CASE WHEN p_set_result THEN p_result ELSE result END,
        error = CASE WHEN p_set_error THEN p_error ELSE error END,
        waiting_for = coalesce(p_waiting_for, waiting_for),
        ir_hash = coalesce(p_ir_hash, ir_hash),
        meta = coalesce(p_meta, meta)
      WHERE run_id = p_run_id;
    rows_written := 1 + v_events;

    FOR i IN 1 .. coalesce(cardinality(p_ops), 0) LOOP
        v_branch := p_op_branches[i];
        v_name := p_op_names[i];
        v_value := p_op_values[i];
        CASE p_ops[i]
        WHEN 'set' THEN
            INSERT INTO variables (run_id, branch, name, value, is_list, length)
                VALUES (p_run_id, v_branch, v_name, v_value, false, 0)
                ON CONFLICT (run_id, branch, name)
                DO UPDATE SET value = excluded.value, is_list = false, length = 0;
            DELETE FROM list_items
                WHERE run_id = p_run_id AND branch = v_branch AND name = v_name;
            GET DIAGNOSTICS v_count = ROW_COUNT;
            rows_written := rows_written + 1 + v_count;
        WHEN 'list' THEN
            INSERT INTO variables (run_id, branch, name, value, is_list, length)
                VALUES (p_run_id, v_branch, v_name, NULL, true, json_array_length(v_value::json))
                ON CONFLICT (run_id, branch, name)
                DO UPDATE SET value = NULL, is_list = true, length = excluded.length;
            DELETE FROM list_items
                WHERE run_id = p_run_id AND branch = v_branch AND name = v_name;
            GET DIAGNOSTICS v_count = ROW_COUNT;
            rows_written := rows_written + 1 + v_count;
            INSERT INTO list_items (run_id, branch, name, idx, value)
                SELECT p_run_id, v_branch, v_name, item.ord - 1, item.value::text
                  FROM json_array_elements(v_value::json) WITH ORDINALITY AS item(value, ord);
            GET DIAGNOSTICS v_count = ROW_COUNT;
            rows_written := rows_written + v_count;
        WHEN 'append' THEN
            UPDATE variables SET length = length + json_array_length(v_value::json)
                WHERE run_id = p_run_id AND branch = v_branch AND name = v_name AND is_list
                RETURNING length - json_array_length(v_value::json) INTO v_start;
            IF NOT FOUND THEN
                RAISE EXCEPTION USING ERRCODE = 'MN001',
                    MESSAGE = format('`%s` in branch `%s` is not a list variable',
                                     v_name, v_branch);
            END IF;
            INSERT INTO list_items (run_id, branch, name, idx, value)
                SELECT p_run_id, v_branch, v_name, v_start + item.ord - 1, item.value::text
                  FROM json_array_elements(v_value::json) WITH ORDINALITY AS item(value, ord);
            GET DIAGNOSTICS v_count = ROW_COUNT;
            rows_written := rows_written + 1 + v_count;
        WHEN 'item' THEN
            UPDATE list_items SET value = v_value
                WHERE run_id = p_run_id AND branch = v_branch AND name = v_name
                  AND idx = p_op_indexes[i];
            IF NOT FOUND THEN
                RAISE EXCEPTION USING ERRCODE = 'MN001',
                    MESSAGE = format('`%s[%s]` in branch `%s` does not exist',
                                     v_name, p_op_indexes[i], v_branch);
            END IF;
            rows_written := rows_written + 1;
        WHEN 'delete' THEN
            DELETE FROM variables
                WHERE run_id = p_run_id AND branch = v_branch AND name = v_name;
            GET DIAGNOSTICS v_count = ROW_COUNT;
            rows_written := rows_written + v_count;
            DELETE FROM list_items
                WHERE run_id = p_run_id AND branch = v_branch AND name = v_name;
            GET DIAGNOSTICS v_count = ROW_COUNT;
            rows_written := rows_written + v_count;
        WHEN 'cursor' THEN
            INSERT INTO cursors (run_id, branch, cursor) VALUES (p_run_id, v_branch, v_value)
                ON CONFLICT (run_id, branch) DO UPDATE SET cursor = excluded.cursor;
            rows_written := rows_written + 1;
        WHEN 'drop' THEN
            -- A branch and every branch nested in it (`p1` drops `p1/0`, not `p10`).
            DELETE FROM cursors WHERE run_id = p_run_id
                AND (v_branch = '' OR branch = v_branch OR starts_with(branch, v_branch || '/'));
            GET DIAGNOSTICS v_count = ROW_COUNT;
            rows_written := rows_written + v_count;
            DELETE FROM variables WHERE run_id = p_run_id
                AND (v_branch = '' OR branch = v_branch OR starts_with(branch, v_branch || '/'));
            GET DIAGNOSTICS v_count = ROW_COUNT;
            rows_written := rows_written + v_count;
            DELETE FROM list_items WHERE run_id = p_run_id
                AND (v_branch = '' OR branch = v_branch OR starts_with(branch, v_branch || '/'));
            GET DIAGNOSTICS v_count = ROW_COUNT;
            rows_written := rows_written + v_count;
        END CASE;
    END LOOP;
END
$$
"""

_V1: Final[tuple[LiteralString, ...]] = (
    """
    CREATE TABLE mnc_meta (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        application text NOT NULL,
        schema_version integer NOT NULL
    )
    """,
    """
    CREATE TABLE runs (
        run_id text PRIMARY KEY,
        workflow text NOT NULL,
        workflow_class text NOT NULL DEFAULT '',
        status text NOT NULL
            CHECK (status IN ('running', 'waiting', 'completed', 'failed', 'cancelled')),
        args text NOT NULL,
        result text,
        error text,
        parent_run_id text,
        ir_hash text NOT NULL DEFAULT '',
        meta text NOT NULL DEFAULT '{}',
        waiting_for text[] NOT NULL DEFAULT '{}',
        cancel_requested boolean NOT NULL DEFAULT false,
        last_seq bigint NOT NULL DEFAULT 0,
        lease_owner text,
        lease_epoch bigint NOT NULL DEFAULT 0,
        lease_expires_at float8,
        created_at float8 NOT NULL,
        updated_at float8 NOT NULL,
        finished_at float8
    )
    """,
    "CREATE INDEX runs_by_status ON runs (status)",
    "CREATE INDEX runs_by_workflow ON runs (workflow)",
    "CREATE INDEX runs_by_workflow_class ON runs (workflow_class)",
    "CREATE INDEX runs_by_parent_run_id ON runs (parent_run_id)",
    "CREATE INDEX runs_by_created_at ON runs (created_at)",
    # Claiming scans live runs oldest first; finished runs, the bulk of a journal, are
    # left out of these indexes.
    """
    CREATE INDEX runs_live_by_updated_at ON runs (updated_at)
        WHERE status IN ('running', 'waiting')
    """,
    """
    CREATE INDEX runs_live_by_lease_expiry ON runs (lease_expires_at)
        WHERE status IN ('running', 'waiting')
    """,
    """
    CREATE TABLE events (
        run_id text NOT NULL,
        seq bigint NOT NULL,
        at float8 NOT NULL,
        kind text NOT NULL,
        state text,
        branch text NOT NULL,
        data text NOT NULL,
        PRIMARY KEY (run_id, seq)
    )
    """,
    """
    CREATE TABLE cursors (
        run_id text NOT NULL,
        branch text NOT NULL,
        cursor text NOT NULL,
        PRIMARY KEY (run_id, branch)
    )
    """,
    # A list variable keeps `value` NULL and its items in `list_items`, so appending to
    # it writes one row per item and never rewrites the list.
    """
    CREATE TABLE variables (
        run_id text NOT NULL,
        branch text NOT NULL,
        name text NOT NULL,
        value text,
        is_list boolean NOT NULL DEFAULT false,
        length integer NOT NULL DEFAULT 0,
        PRIMARY KEY (run_id, branch, name)
    )
    """,
    """
    CREATE TABLE list_items (
        run_id text NOT NULL,
        branch text NOT NULL,
        name text NOT NULL,
        idx integer NOT NULL,
        value text NOT NULL,
        PRIMARY KEY (run_id, branch, name, idx)
    )
    """,
    """
    CREATE TABLE ledger (
        scope text NOT NULL,
        key text NOT NULL,
        args_hash text NOT NULL,
        status text NOT NULL CHECK (status IN ('intent', 'done', 'unknown')),
        result text NOT NULL,
        run_id text NOT NULL,
        state text,
        created_at float8 NOT NULL,
        updated_at float8 NOT NULL,
        CONSTRAINT ledger_key_once PRIMARY KEY (scope, key)
    )
    """,
    "CREATE INDEX ledger_by_run ON ledger (run_id)",
    # `arrival` orders a mailbox; the unique constraint drops a repeated signal id.
    """
    CREATE TABLE signals (
        arrival bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        run_id text NOT NULL,
        signal_id text NOT NULL,
        name text NOT NULL,
        payload text NOT NULL,
        sent_at float8 NOT NULL,
        consumed_at float8,
        CONSTRAINT signals_once UNIQUE (run_id, signal_id)
    )
    """,
    "CREATE INDEX signals_pending ON signals (run_id) WHERE consumed_at IS NULL",
    """
    CREATE TABLE checkpoints (
        run_id text NOT NULL,
        checkpoint_id text NOT NULL,
        name text NOT NULL,
        request text NOT NULL,
        status text NOT NULL CHECK (status IN ('open', 'decided', 'closed')),
        decision text NOT NULL,
        decided_by text,
        opened_at float8 NOT NULL,
        decided_at float8,
        PRIMARY KEY (run_id, checkpoint_id)
    )
    """,
    "CREATE INDEX checkpoints_by_status ON checkpoints (status, opened_at)",
    """
    CREATE TABLE timers (
        run_id text NOT NULL,
        timer_id text NOT NULL,
        due_at float8 NOT NULL,
        payload text NOT NULL,
        PRIMARY KEY (run_id, timer_id)
    )
    """,
    "CREATE INDEX timers_by_due ON timers (due_at)",
    """
    CREATE TABLE programs (
        ir_hash text PRIMARY KEY,
        ir text NOT NULL,
        created_at float8 NOT NULL
    )
    """,
    MNC_COMMIT,
)

# Registered `schedule`s and the next time each starts a run (`spec` is JSON text).
_V2: Final[tuple[LiteralString, ...]] = (
    """
    CREATE TABLE schedules (
        name text PRIMARY KEY,
        workflow text NOT NULL,
        ir_hash text NOT NULL,
        source text NOT NULL,
        spec text NOT NULL,
        next_at float8 NOT NULL,
        last_at float8,
        last_run_id text,
        updated_at float8 NOT NULL
    )
    """,
    "CREATE INDEX schedules_by_next_at ON schedules (next_at)",
)

# Partial indexes of what makes a waiting run runnable and is rare (a cancel request, a
# run in `running`), so finding runnable runs reads only those and never every waiting run.
_V3: Final[tuple[LiteralString, ...]] = (
    "CREATE INDEX runs_cancel_requested ON runs (run_id) WHERE cancel_requested",
    "CREATE INDEX runs_running ON runs (run_id) WHERE status = 'running'",
)

# Workers and their heartbeats, for `mnc workers`.
_V4: Final[tuple[LiteralString, ...]] = (
    """
    CREATE TABLE workers (
        worker_id text PRIMARY KEY,
        host text NOT NULL,
        pid integer NOT NULL,
        concurrency integer NOT NULL,
        started_at float8 NOT NULL,
        heartbeat_at float8 NOT NULL,
        expires_at float8 NOT NULL
    )
    """,
    "CREATE INDEX runs_by_lease_owner ON runs (lease_owner) WHERE lease_owner IS NOT NULL",
)

# The next start of each tool with `per_second`, shared by every worker (the tools'
# `concurrent` slots are advisory locks, which need no table).
_V5: Final[tuple[LiteralString, ...]] = (
    "CREATE TABLE tool_rates (tool text PRIMARY KEY, next_start float8 NOT NULL)",
)

# A workflow's `limit:` on each of its runs (`run_limit`, NULL without one) and the runs
# queued for a slot (`queued`), with partial indexes for counting a workflow's runs in
# `running` and for finding queued runs.
_V6: Final[tuple[LiteralString, ...]] = (
    "ALTER TABLE runs ADD COLUMN run_limit integer",
    "ALTER TABLE runs ADD COLUMN queued boolean NOT NULL DEFAULT false",
    "CREATE INDEX runs_running_by_workflow ON runs (workflow) WHERE status = 'running'",
    "CREATE INDEX runs_queued ON runs (run_id) WHERE queued",
)

# A signal's correlation key (`correlation`, NULL without one), so a `wait E for K` takes
# only its own signal (a run waiting for one lists `name#key` in `waiting_for`; one unread
# signal per key, as a second could never be taken), and the
# journal's secret for callback tokens, kept out of every run's rows. `gen_random_uuid`
# draws from the server's strong random source: two of them give 244 random bits.
_V7: Final[tuple[LiteralString, ...]] = (
    "ALTER TABLE signals ADD COLUMN correlation text",
    "CREATE UNIQUE INDEX signals_one_unread_per_key ON signals (run_id, name, correlation) "
    "WHERE consumed_at IS NULL AND correlation IS NOT NULL",
    "CREATE TABLE secrets (name text PRIMARY KEY, value text NOT NULL)",
    "INSERT INTO secrets (name, value) VALUES ('callback_tokens', "
    "replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''))",
)

# The delivery cursors of `mnc export traces`: per exporter and run, the journal sequence
# number up to which the run's spans were accepted by the receiver.
_V8: Final[tuple[LiteralString, ...]] = (
    "CREATE TABLE export_cursors (exporter text NOT NULL, run_id text NOT NULL, "
    "seq bigint NOT NULL, PRIMARY KEY (exporter, run_id))",
)

# Tombstones of the runs retention (`mnc gc`) removed (`removed_runs`), so a start with a
# removed run's id still answers as before, and an index of ended top-level runs by end
# time, so finding what to remove does not scan every run.
_V9: Final[tuple[LiteralString, ...]] = (
    """
    CREATE TABLE removed_runs (
        run_id text PRIMARY KEY,
        workflow text NOT NULL,
        ir_hash text NOT NULL,
        input_hash text NOT NULL,
        status text NOT NULL,
        created_at float8 NOT NULL,
        finished_at float8,
        removed_at float8 NOT NULL
    )
    """,
    'CREATE INDEX runs_ended_roots ON runs (finished_at, run_id COLLATE "C") '
    "WHERE parent_run_id IS NULL AND finished_at IS NOT NULL",
)

# A run set aside by a worker that found it cannot be executed as stored (a journal row
# that does not decode, a program that does not load): when (`quarantined_at`, NULL for a
# run that is not), by which worker and why. Claims skip such a run until a person
# releases it; the partial index finds the few quarantined runs among all.
_ADD_QUARANTINE_V10: Final[tuple[LiteralString, ...]] = (
    "ALTER TABLE runs ADD COLUMN quarantined_at float8",
    "ALTER TABLE runs ADD COLUMN quarantined_by text",
    "ALTER TABLE runs ADD COLUMN quarantine_reason text",
    "CREATE INDEX runs_quarantined ON runs (run_id) WHERE quarantined_at IS NOT NULL",
)

# What a run needs of the worker that executes it (`runs.needs`: a list of `{kind, scope,
# name, digest}`, NULL for nothing) and what each worker advertises it can serve
# (`worker_offers`), so that a worker claims only the runs it can execute.
_V11: Final[tuple[LiteralString, ...]] = (
    "ALTER TABLE runs ADD COLUMN needs jsonb",
    """
    CREATE TABLE worker_offers (
        worker_id text NOT NULL,
        kind text NOT NULL,
        scope text NOT NULL,
        name text NOT NULL,
        digest text,
        pinned boolean NOT NULL,
        PRIMARY KEY (worker_id, kind, scope, name)
    )
    """,
)

# Agents' replies kept across runs for agents with `cache:` (`reply_cache`: the request's
# digest, the reply's JSON, when it expires): not a part of any run's history.
_ADD_REPLY_CACHE_V12: Final[tuple[LiteralString, ...]] = (
    """
    CREATE TABLE IF NOT EXISTS reply_cache (
        digest text PRIMARY KEY,
        reply text NOT NULL,
        created_at float8 NOT NULL,
        expires_at float8 NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS reply_cache_expiry ON reply_cache (expires_at)",
)

# One registration per schedule of a module, whichever programs import it: a schedule is
# named by its declaring module (`jobs.nightly`), which it records (`module`), and can be
# paused (`paused_at`, NULL while it fires). Rows of one schedule registered under its
# plain name by its own file and under its qualified name by importing files become one,
# holding the latest fired and next times, so no time that either fired fires again
# (`MERGE_SCHEDULES_SQL`, shared with SQLite, says how).
_SCHEDULES_BY_DECLARING_MODULE_V13: Final[tuple[LiteralString, ...]] = (
    """
    CREATE TABLE schedules_merged (
        name text PRIMARY KEY,
        workflow text NOT NULL,
        ir_hash text NOT NULL,
        source text NOT NULL,
        spec text NOT NULL,
        next_at float8 NOT NULL,
        last_at float8,
        last_run_id text,
        updated_at float8 NOT NULL,
        module text NOT NULL,
        paused_at float8
    )
    """,
    MERGE_SCHEDULES_SQL,
    "DROP TABLE schedules",
    "ALTER TABLE schedules_merged RENAME TO schedules",
    "ALTER INDEX schedules_merged_pkey RENAME TO schedules_pkey",
    "CREATE INDEX schedules_by_next_at ON schedules (next_at)",
)

# The journal outbox (`mnlang.outbox`): notifications written in the commit of the state
# change that causes them (`outbox`, `routed_at` NULL until the delivery loop has made
# one `deliveries` row per sink that wants it), each delivery's lease, status and next
# try, and every attempt (`delivery_attempts`). Signals by id alone, so an inbound
# webhook's delivery id (part of its signal id) is found as seen whatever run took it;
# who sent each signal (`sent_by`: a token's name, `inbound:NAME`, NULL when unknown).
_ADD_OUTBOX_V14: Final[tuple[LiteralString, ...]] = (
    "CREATE INDEX signals_by_signal_id ON signals (signal_id)",
    "ALTER TABLE signals ADD COLUMN sent_by text",
    """
    CREATE TABLE outbox (
        event_id text PRIMARY KEY,
        type text NOT NULL,
        run_id text NOT NULL,
        workflow text NOT NULL,
        data text NOT NULL,
        created_at float8 NOT NULL,
        routed_at float8
    )
    """,
    "CREATE INDEX outbox_unrouted ON outbox (created_at) WHERE routed_at IS NULL",
    "CREATE INDEX outbox_by_run ON outbox (run_id)",
    """
    CREATE TABLE deliveries (
        event_id text NOT NULL REFERENCES outbox (event_id),
        sink text NOT NULL,
        status text NOT NULL,
        attempts integer NOT NULL,
        next_at float8 NOT NULL,
        lease_owner text,
        lease_expires_at float8,
        updated_at float8 NOT NULL,
        PRIMARY KEY (event_id, sink)
    )
    """,
    "CREATE INDEX deliveries_due ON deliveries (next_at) WHERE status = 'pending'",
    """
    CREATE TABLE delivery_attempts (
        event_id text NOT NULL,
        sink text NOT NULL,
        attempt integer NOT NULL,
        at float8 NOT NULL,
        status_code integer,
        error text,
        PRIMARY KEY (event_id, sink, attempt)
    )
    """,
)

# Who asked to cancel a run (`cancel_requested_by`: a token's user, the operating
# system's user, `mcp:CLIENT`, `run:PARENT` for a child its parent cancels; NULL before a
# cancel request or when unknown). The first request is kept: it stopped the run.
_ADD_CANCEL_REQUESTED_BY_V15: Final[tuple[LiteralString, ...]] = (
    "ALTER TABLE runs ADD COLUMN cancel_requested_by text",
)

# The keyed events a run waits for, one row per `name#key` entry of its `waiting_for`
# (`waiting_keys`), kept in step with that column by triggers on `runs` whatever writes
# it (`mnc_commit` included), so that an inbound webhook that names a key but no run
# finds the runs waiting for it through `waiting_keys_by_key` instead of reading every
# waiting run. The update trigger fires only when the list changed.
_ADD_WAITING_KEYS_V16: Final[tuple[LiteralString, ...]] = (
    """
    CREATE TABLE waiting_keys (
        run_id text NOT NULL,
        event text NOT NULL,
        key text NOT NULL,
        PRIMARY KEY (run_id, event, key)
    )
    """,
    "CREATE INDEX waiting_keys_by_key ON waiting_keys (key)",
    """
    CREATE FUNCTION mnc_waiting_keys() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP <> 'INSERT' THEN
            DELETE FROM waiting_keys WHERE run_id = OLD.run_id;
        END IF;
        IF TG_OP <> 'DELETE' THEN
            INSERT INTO waiting_keys (run_id, event, key)
            SELECT DISTINCT NEW.run_id, split_part(a, '#', 1), substr(a, strpos(a, '#') + 1)
            FROM unnest(NEW.waiting_for) AS a WHERE strpos(a, '#') > 0;
        END IF;
        RETURN NULL;
    END
    $$
    """,
    "CREATE TRIGGER runs_waiting_keys_insert AFTER INSERT ON runs "
    "FOR EACH ROW EXECUTE FUNCTION mnc_waiting_keys()",
    "CREATE TRIGGER runs_waiting_keys_update AFTER UPDATE OF waiting_for ON runs "
    "FOR EACH ROW WHEN (OLD.waiting_for IS DISTINCT FROM NEW.waiting_for) "
    "EXECUTE FUNCTION mnc_waiting_keys()",
    "CREATE TRIGGER runs_waiting_keys_delete AFTER DELETE ON runs "
    "FOR EACH ROW EXECUTE FUNCTION mnc_waiting_keys()",
    """
    INSERT INTO waiting_keys (run_id, event, key)
    SELECT DISTINCT r.run_id, split_part(a, '#', 1), substr(a, strpos(a, '#') + 1)
    FROM runs AS r, unnest(r.waiting_for) AS a WHERE strpos(a, '#') > 0
    """,
)

# The ledger's index by the run that last wrote a row: no query reads it (a run's keys
# are found by `scope`, the primary key's first column), and every effect's intent and
# result paid for it (SQLite's `_drop_ledger_by_run_v17`).
_DROP_LEDGER_BY_RUN_V17: Final[tuple[LiteralString, ...]] = ("DROP INDEX IF EXISTS ledger_by_run",)

MIGRATIONS: Final[tuple[tuple[LiteralString, ...], ...]] = (
    _V1,
    _V2,
    _V3,
    _V4,
    _V5,
    _V6,
    _V7,
    _V8,
    _V9,
    _ADD_QUARANTINE_V10,
    _V11,
    _ADD_REPLY_CACHE_V12,
    _SCHEDULES_BY_DECLARING_MODULE_V13,
    _ADD_OUTBOX_V14,
    _ADD_CANCEL_REQUESTED_BY_V15,
    _ADD_WAITING_KEYS_V16,
    _DROP_LEDGER_BY_RUN_V17,
)
assert len(MIGRATIONS) == SCHEMA_VERSION


def schema_version(conn: psycopg.Connection[tuple[object, ...]], schema: str) -> int | None:
    """The journal's version, 0 for a schema without tables, `None` for a foreign schema."""
    row = conn.execute(
        "SELECT to_regclass(format('%%I.mnc_meta', %(s)s::text)) IS NOT NULL, "
        "(SELECT count(*) FROM pg_catalog.pg_class AS c "
        " JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace "
        " WHERE n.nspname = %(s)s AND c.relkind IN ('r', 'p', 'v', 'm'))",
        {"s": schema},
    ).fetchone()
    assert row is not None
    has_meta, relations = row
    if not has_meta:
        return 0 if relations == 0 else None
    meta = conn.execute(
        sql.SQL("SELECT application, schema_version FROM {}.mnc_meta").format(
            sql.Identifier(schema)
        )
    ).fetchone()
    if meta is None or meta[0] != APPLICATION:
        return None
    version = meta[1]
    assert isinstance(version, int)
    return version


def migrate(conn: psycopg.Connection[tuple[object, ...]], schema: str, location: str) -> int:
    """Bring the journal up to `SCHEMA_VERSION`; returns the version it had before.

    `conn` must be in autocommit mode and have `schema` first on its `search_path`.
    """
    version = schema_version(conn, schema)
    if version == SCHEMA_VERSION:
        return version
    _refuse_foreign(version, schema, location)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"mnlang migrate {schema}",))
        # Another process may have migrated the journal since the check above.
        version = schema_version(conn, schema)
        _refuse_foreign(version, schema, location)
        assert version is not None
        exists = conn.execute(
            "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s", (schema,)
        ).fetchone()
        if exists is None:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        for step in MIGRATIONS[version:]:
            for statement in step:
                conn.execute(statement)
        conn.execute(
            "INSERT INTO mnc_meta (application, schema_version) VALUES (%s, %s) "
            "ON CONFLICT (singleton) DO UPDATE SET schema_version = excluded.schema_version",
            (APPLICATION, SCHEMA_VERSION),
        )
    return version


def _refuse_foreign(version: int | None, schema: str, location: str) -> None:
    if version is None:
        raise StoreCorrupt(
            f"schema `{schema}` of `{location}` holds tables but is not an mnlang journal",
            help="add `?schema=NAME` to the URL to keep the journal in a schema of its own",
        )
    if version > SCHEMA_VERSION:
        raise StoreVersionError(
            f"journal `{location}` has schema version {version}, newer than this mnlang's "
            f"{SCHEMA_VERSION}",
            help="upgrade mnlang on this machine to the version the other workers run",
        )
