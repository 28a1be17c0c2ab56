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

SCHEMA_VERSION: Final = 1
APPLICATION: Final = "mnlang journal"

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
)

MIGRATIONS: Final[tuple[tuple[LiteralString, ...], ...]] = (_V1,)
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
