"""Where the crash tests keep their journals: a SQLite file in each test folder, or a schema
of its own per folder on the session's private PostgreSQL server (`tests/pg.py`), so that
the same enumeration runs on both stores.

The test processes find the journal through `MNC_DB` (`url`); the test itself opens it
with `open` and, playing the outside world, moves timers and leases with plain SQL.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mnlang.stores import open_store
from mnlang.stores.base import Store
from tests.pg import STORES as STORES  # re-exported: the crash modules' parameter
from tests.pg import PostgresCluster

_schema_numbers = itertools.count(1)


@dataclass
class Journals:
    """The journals of one test; `cluster` is None for SQLite."""

    cluster: PostgresCluster | None
    _schemas: dict[Path, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "sqlite" if self.cluster is None else "postgres"

    def url(self, folder: Path) -> str:
        """What `MNC_DB` says for the journal of `folder`."""
        if self.cluster is None:
            return str(folder / "journal.db")
        if folder not in self._schemas:
            self._schemas[folder] = f"crash{os.getpid()}_{next(_schema_numbers)}"
        return self.cluster.url(self._schemas[folder])

    def open(self, folder: Path) -> Store:
        return open_store(self.url(folder))

    def drop(self, folder: Path) -> None:
        """Delete a checked journal's schema: the cluster serves the whole session, and
        hundreds of schemas left behind would slow its catalogue down."""
        if self.cluster is not None and folder in self._schemas:
            self._execute(folder, f"DROP SCHEMA {self._schemas[folder]} CASCADE")
            del self._schemas[folder]

    def fall_due(self, folder: Path) -> None:
        """Let every timer fall due now, except checkpoint timeouts (the person decides
        first), and wake the workers that wait for work."""
        if self.cluster is None:
            self._execute(
                folder,
                "UPDATE timers SET due_at = (julianday('now') - 2440587.5) * 86400.0 - 1 "
                "WHERE timer_id NOT LIKE 'checkpoint:%'",
            )
            return
        # A worker waits on LISTEN until the next due time it knew of: tell it.
        self._execute(
            folder,
            "WITH moved AS (UPDATE timers SET due_at = extract(epoch FROM clock_timestamp()) - 1"
            " WHERE timer_id NOT LIKE 'checkpoint:%%'"
            " AND due_at > extract(epoch FROM clock_timestamp()) RETURNING run_id)"
            " SELECT pg_notify(%s, run_id) FROM moved",
            (f"mnc_work_{self._schemas[folder]}",),
        )

    def settle(self, timeout: float = 10) -> None:
        """Wait until the server has finished the transactions of processes that died: a
        COMMIT sent just before a crash may still be in flight, and what the test reads
        right after the crash must be what the next process will find."""
        if self.cluster is None:
            return
        import psycopg

        deadline = time.monotonic() + timeout
        with psycopg.connect(self.cluster.url(), autocommit=True) as conn:
            while True:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
                ).fetchone()
                if row is not None and row[0] == 0:
                    return
                assert time.monotonic() < deadline, "a dead process's transaction never ended"
                time.sleep(0.005)

    def expire_leases(self, folder: Path) -> None:
        """A crashed worker's leases run out at once (the test does not wait for them)."""
        self._execute(
            folder,
            "UPDATE runs SET lease_expires_at = 0 WHERE lease_owner IS NOT NULL "
            "AND status IN ('running', 'waiting')",
        )

    def _execute(self, folder: Path, query: str, params: tuple[Any, ...] = ()) -> None:
        if self.cluster is None:
            with contextlib.closing(sqlite3.connect(folder / "journal.db", timeout=30)) as db:
                db.execute(query, params)
                db.commit()
            return
        # Imported here: the SQLite variant runs where psycopg is not installed.
        import psycopg

        with psycopg.connect(self.cluster.url(), autocommit=True) as conn:
            conn.execute(f"SET search_path = {self._schemas[folder]}")  # type: ignore[arg-type]
            conn.execute(query, params)  # type: ignore[arg-type]


def journals_of(request: pytest.FixtureRequest) -> Iterator[Journals]:
    """The body of a test module's `journals` fixture, parametrized over `tests.pg.STORES`: the
    PostgreSQL variant uses the session's cluster, or is skipped where none can be started
    (`tests/pg.py`), and drops the test's schemas at its end."""
    journals = Journals(
        request.getfixturevalue("pg_cluster") if request.param == "postgres" else None
    )
    yield journals
    for folder in list(journals._schemas):
        journals.drop(folder)
