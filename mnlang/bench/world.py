"""The outside world of benchmark tools: what effects did, and when tools were called.

Tool authors use two functions (the golden suite's tools do):

- `perform(effect, args, ctx, make)`: carry out a side effect the way the receiving
  system would. With `idempotent=True` (a payment API that takes an idempotency key) the
  first call with a key performs it and keeps its result, and a later call with the same
  key gets that result back without performing it again; a system without keys
  (`idempotent=False`: a chat message, a pager) performs every call. Every performance
  is recorded, so the bench can count side effects that happened twice.
- `calling(tool, ctx)`: a context manager around a tool's work that records its start
  and end, so the bench can measure the call rate and concurrency a tool saw.

Effects are received by the key as sent (`ctx.wire_key`, what `std.http` sends as the
`Idempotency-Key`), as a real system receives them: one key space for every run, so a
run whose key collided with another run's would find that run's result here, not a
performance. The naive agent chain (`mnlang.bench.naive`) sends no keys at all: its
runs are recognised by `NAIVE_PREFIX`. Records go to the SQLite file named by `MNC_BENCH_WORLD`; without it
(`mnc run`, `mnc test`) effects keep their results in memory and nothing is recorded.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, TypeVar

WORLD_ENV: Final = "MNC_BENCH_WORLD"
NAIVE_PREFIX: Final = "naive~"
"""Run ids of the naive chain start so (`naive~CHAIN~ATTEMPT`)."""

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS performed (
  id INTEGER PRIMARY KEY,
  world_key TEXT,
  effect TEXT NOT NULL,
  run TEXT NOT NULL,
  chain TEXT NOT NULL,
  args TEXT NOT NULL,
  result TEXT NOT NULL,
  at REAL NOT NULL,
  reference TEXT
);
CREATE INDEX IF NOT EXISTS performed_reference ON performed(effect, reference)
  WHERE reference IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS performed_key ON performed(world_key)
  WHERE world_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS performed_chain ON performed(chain, effect);
CREATE TABLE IF NOT EXISTS redelivered (
  world_key TEXT NOT NULL, run TEXT NOT NULL, at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS calls (
  tool TEXT NOT NULL, run TEXT NOT NULL, started REAL NOT NULL, ended REAL NOT NULL
);
"""


def create(path: str) -> None:
    """Create the world file's tables, so a suite whose tools record nothing reads empty."""
    conn = sqlite3.connect(path, timeout=30)
    try:
        conn.executescript(_SCHEMA)
    finally:
        conn.close()


def chain_of(run_id: str) -> str:
    """The run a performance counts for: the run, or the naive chain across its attempts."""
    if run_id.startswith(NAIVE_PREFIX):
        return run_id.rsplit("~", 1)[0]
    return run_id


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, sort_keys=True))


class World:
    """One process's handle on the world file (or its memory, without a file)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._memory: dict[str, Any] = {}
        self._referenced: dict[tuple[str, str], Any] = {}
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            assert self.path is not None
            conn = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = OFF")
            conn.executescript(_SCHEMA)
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def perform(
        self,
        effect: str,
        args: dict[str, Any],
        run_id: str,
        key: str | None,
        make: Callable[[], T],
        reference: str | None = None,
    ) -> T | Any:
        world_key = None if key is None or run_id.startswith(NAIVE_PREFIX) else key
        with self._lock:
            if self.path is None:
                if world_key is not None and world_key in self._memory:
                    return self._memory[world_key]
                result = make()
                if world_key is not None:
                    self._memory[world_key] = result
                if reference is not None:
                    self._referenced[(effect, reference)] = result
                return result
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                if world_key is not None:
                    row = db.execute(
                        "SELECT result FROM performed WHERE world_key = ?", (world_key,)
                    ).fetchone()
                    if row is not None:
                        db.execute(
                            "INSERT INTO redelivered VALUES (?, ?, ?)",
                            (world_key, run_id, time.time()),
                        )
                        db.execute("COMMIT")
                        return json.loads(row[0])
                result = make()
                db.execute(
                    "INSERT INTO performed "
                    "(world_key, effect, run, chain, args, result, at, reference) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        world_key,
                        effect,
                        run_id,
                        chain_of(run_id),
                        json.dumps(_plain(args), sort_keys=True),
                        json.dumps(_plain(result)),
                        time.time(),
                        reference,
                    ),
                )
                db.execute("COMMIT")
                return result
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def find(self, effect: str, reference: str) -> Any:
        """The result of the latest performance of `effect` under the client's `reference`,
        or None when there is none."""
        with self._lock:
            if self.path is None:
                return self._referenced.get((effect, reference))
            row = (
                self._db()
                .execute(
                    "SELECT result FROM performed WHERE effect = ? AND reference = ? "
                    "ORDER BY id DESC LIMIT 1",
                    (effect, reference),
                )
                .fetchone()
            )
        return None if row is None else json.loads(row[0])

    def record_call(self, tool: str, run_id: str, started: float, ended: float) -> None:
        if self.path is None:
            return
        with self._lock:
            self._db().execute(
                "INSERT INTO calls VALUES (?, ?, ?, ?)", (tool, run_id, started, ended)
            )


_world: World | None = None
_world_lock = threading.Lock()


def world() -> World:
    """The world of this process, as `MNC_BENCH_WORLD` names it now."""
    global _world
    path = os.environ.get(WORLD_ENV) or None
    with _world_lock:
        if _world is None or _world.path != path:
            _world = World(path)
        return _world


def _run_and_key(ctx: Any) -> tuple[str, str | None]:
    """The run that calls, and the key it sends the receiving system."""
    return str(getattr(ctx, "run_id", "") or ""), getattr(ctx, "wire_key", None)


def perform(
    effect: str,
    args: dict[str, Any],
    ctx: Any,
    make: Callable[[], T],
    *,
    idempotent: bool = True,
    referenced: bool = False,
) -> T | Any:
    """Carry out a side effect once per idempotency key (`ctx.wire_key`), or every time when
    the receiving system takes no key (`idempotent=False`); returns its result. With
    `referenced=True` the receiver keeps the key as the client's reference (a carrier's
    shipment reference, a chat message's metadata, a migration's version) without
    deduplicating by it, so `find` can look the action up."""
    run_id, key = _run_and_key(ctx)
    reference = key if referenced and not run_id.startswith(NAIVE_PREFIX) else None
    return world().perform(effect, args, run_id, key if idempotent else None, make, reference)


def find(effect: str, ctx: Any) -> Any:
    """The receiving system's search by the client's reference (`ctx.wire_key`, as a
    `reconcile:` tool receives it): the result of what it performed under that reference,
    or None when it performed nothing. Only effects performed with `referenced=True` (or
    with an idempotency key) can be found."""
    _, key = _run_and_key(ctx)
    if key is None:
        raise ValueError(f"cannot look up `{effect}`: the call carries no reference")
    return world().find(effect, key)


@contextmanager
def calling(tool: str, ctx: Any) -> Iterator[None]:
    """Record a tool call's start and end (monotonic seconds of this machine)."""
    started = time.monotonic()
    try:
        yield
    finally:
        world().record_call(tool, _run_and_key(ctx)[0], started, time.monotonic())


# --- what the bench reads back ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Performance:
    effect: str
    run: str
    chain: str
    args: str
    result: Any


def performances(path: str) -> list[Performance]:
    conn = sqlite3.connect(path, timeout=30)
    try:
        rows = conn.execute(
            "SELECT effect, run, chain, args, result FROM performed ORDER BY id"
        ).fetchall()
    finally:
        conn.close()
    return [Performance(e, r, c, a, json.loads(res)) for e, r, c, a, res in rows]


def performed_result(path: str, run_id: str, effect: str, args: dict[str, Any]) -> Any:
    """What the world did for this call of an effect in this run (None: nothing): how a
    person settles a repair checkpoint, by looking at the receiving system."""
    conn = sqlite3.connect(path, timeout=30)
    try:
        row = conn.execute(
            "SELECT result FROM performed WHERE run = ? AND effect = ? AND args = ? "
            "ORDER BY id DESC LIMIT 1",
            (run_id, effect, json.dumps(_plain(args), sort_keys=True)),
        ).fetchone()
    finally:
        conn.close()
    return None if row is None else {"result": json.loads(row[0])}


def redeliveries(path: str) -> int:
    conn = sqlite3.connect(path, timeout=30)
    try:
        return int(conn.execute("SELECT count(*) FROM redelivered").fetchone()[0])
    finally:
        conn.close()


def calls_of(path: str, tool: str, runs: set[str] | None = None) -> list[tuple[float, float]]:
    """(start, end) of each recorded call of `tool`, of the given runs (or all)."""
    conn = sqlite3.connect(path, timeout=30)
    try:
        rows = conn.execute(
            "SELECT run, started, ended FROM calls WHERE tool = ? ORDER BY started", (tool,)
        ).fetchall()
    finally:
        conn.close()
    return [(s, e) for run, s, e in rows if runs is None or run in runs]
