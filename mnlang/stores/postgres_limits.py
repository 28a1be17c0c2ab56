"""Tools' `limit:` held across every worker on one PostgreSQL journal.

A `concurrent` slot is a session advisory lock (the tool's name hashed with the schema's,
and the slot's number) on a connection of the process's own: the server gives it back when
the process dies or its session ends (a cut link, once keepalives or the server notice),
so a crashed worker cannot keep a slot, which is what a lease's expiry would do. Session
advisory locks are re-entrant within one session, so the process notes which slots it
holds and tries only the others. `per_second` is a row per tool holding its next start by
the database's clock, moved on by one `1 / per_second` per call.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg

from mnlang.stores.base import StoreError


class PostgresToolSlots:
    """The `ToolSlots` of one process on one journal; safe to share between threads."""

    def __init__(self, conninfo: str, schema: str) -> None:
        self._conninfo = conninfo
        self._schema = schema
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._held: dict[str, set[int]] = {}

    def _connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._conn is None or self._conn.closed:
            # A new session holds none of the old one's locks.
            self._held.clear()
            self._conn = psycopg.connect(self._conninfo, autocommit=True)
        return self._conn

    def _key(self, tool: str) -> str:
        return f"mnlang tool {self._schema} {tool}"

    def try_acquire(self, tool: str, concurrent: int) -> int | None:
        with self._lock:
            try:
                conn = self._connection()
                held = self._held.setdefault(tool, set())
                for slot in range(concurrent):
                    if slot in held:
                        continue
                    row = conn.execute(
                        "SELECT pg_try_advisory_lock(hashtext(%s), %s)", (self._key(tool), slot)
                    ).fetchone()
                    if row is not None and row[0]:
                        held.add(slot)
                        return slot
                return None
            except psycopg.Error as e:
                self._drop()
                raise StoreError(f"cannot take a slot of tool `{tool}`: {e}") from e

    def release(self, tool: str, slot: int) -> None:
        with self._lock:
            held = self._held.get(tool, set())
            if slot not in held or self._conn is None or self._conn.closed:
                return  # the session that held it is gone, and the slot with it
            held.discard(slot)
            try:
                self._conn.execute(
                    "SELECT pg_advisory_unlock(hashtext(%s), %s)", (self._key(tool), slot)
                )
            except psycopg.Error:
                self._drop()

    def reserve_start(self, tool: str, per_second: float) -> float:
        gap = 1.0 / per_second
        with self._lock:
            try:
                row = (
                    self._connection()
                    .execute(
                        "WITH clock AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS now)"
                        " INSERT INTO tool_rates AS t (tool, next_start)"
                        " SELECT %(tool)s, clock.now + %(gap)s FROM clock"
                        " ON CONFLICT (tool) DO UPDATE SET next_start ="
                        " greatest(t.next_start, (SELECT now FROM clock)) + %(gap)s"
                        " RETURNING t.next_start - %(gap)s - (SELECT now FROM clock)",
                        {"tool": tool, "gap": gap},
                    )
                    .fetchone()
                )
            except psycopg.Error as e:
                self._drop()
                raise StoreError(f"cannot book a start of tool `{tool}`: {e}") from e
        assert row is not None
        return max(0.0, float(row[0]))

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self._held.clear()

    def close(self) -> None:
        with self._lock:
            self._drop()
