"""Group commit of the API's starts (`POST /api/v1/runs`).

Once its program is known, a start is one small transaction, and the commit (an fsync
of SQLite's WAL at durability `full`, a WAL flush on PostgreSQL) is most of what it
costs the store; each start in its own transaction also holds the store's write lock
once per start. So starts are committed in groups: one thread commits, and the starts
that arrive while a commit is in flight wait and go together into the next transaction
(`Store.create_runs`). A request is answered only once its group's commit returned, so
a 201 is as durable as before.

A start refused for its body (an unknown workflow or program, input that does not fit)
is refused before the transaction and never enters it. A start whose id names a run
with other input inserts nothing (the id is taken) and is answered 409 after it, and a
repeated id in one group creates one run that every start of it is answered with. If a
group's transaction fails for another reason than the store itself (locked, unreachable,
damaged), its starts are committed one by one, so that one start cannot fail the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from mnlang.ir.model import IRProgram
from mnlang.runtime.run import InputError, PreparedStart, RunConflict, RunError, RunOutcome
from mnlang.server import models as m
from mnlang.server.app import ApiError, Programs
from mnlang.stores.base import (
    RunCreated,
    RunRecord,
    Store,
    StoreCorrupt,
    StoreLocked,
    StoreUnavailable,
)

MAX_GROUP = 256
"""Starts in one transaction at most; more wait for the next one."""

IDLE_SECONDS = 1.0
"""How long the committing thread waits for a start before it ends (the next start
begins another)."""

_STORE_DOWN = (StoreLocked, StoreUnavailable, StoreCorrupt)
"""Failures of the store itself: committing the group's starts one by one would fail
each the same way."""


@dataclass(frozen=True)
class Started:
    """A start's answer: its outcome, and the run as its transaction left it (or the
    tombstone's record of a run `mnc gc` removed)."""

    outcome: RunOutcome
    record: RunRecord


@dataclass
class _Start:
    body: m.StartRun
    by: str
    traceparent: str | None
    loop: asyncio.AbstractEventLoop
    answer: asyncio.Future[Started]

    def settle(self, result: Started | BaseException) -> None:
        """Answer the request on its event loop (unless it went away meanwhile)."""

        def settle() -> None:
            if self.answer.done():
                return
            if isinstance(result, BaseException):
                self.answer.set_exception(result)
            else:
                self.answer.set_result(result)

        # Its event loop closed (the server stopped): nobody waits for the answer.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(settle)


class StartQueue:
    """Starts waiting for their group's commit, and the thread that commits them."""

    def __init__(self, store: Store, programs: Programs) -> None:
        self.store = store
        self.programs = programs
        self._ready = threading.Condition()
        self._waiting: list[_Start] = []
        self._committing = False
        self.groups = 0
        """Transactions committed (figures for the tests)."""
        self.largest_group = 0
        """The most starts taken from the queue together."""

    def waiting(self) -> int:
        """Starts waiting for a transaction (not those of the one in flight)."""
        with self._ready:
            return len(self._waiting)

    async def start(self, body: m.StartRun, by: str, traceparent: str | None) -> Started:
        """Start a run once its group committed; `ApiError` when refused, `StoreError`
        when the store failed (nothing of this start was written)."""
        loop = asyncio.get_running_loop()
        start = _Start(body, by, traceparent, loop, loop.create_future())
        with self._ready:
            self._waiting.append(start)
            if self._committing:
                self._ready.notify()
            else:
                self._committing = True
                threading.Thread(target=self._commit_loop, name="mnc-starts", daemon=True).start()
        return await start.answer

    def _commit_loop(self) -> None:
        while True:
            with self._ready:
                if not self._waiting:
                    self._ready.wait(IDLE_SECONDS)
                if not self._waiting:
                    self._committing = False
                    return
                group = self._waiting[:MAX_GROUP]
                del self._waiting[:MAX_GROUP]
            self.largest_group = max(self.largest_group, len(group))
            try:
                self._commit(group)
            except BaseException as e:  # never leave a request unanswered
                for start in group:
                    start.settle(e)

    def _commit(self, group: list[_Start]) -> None:
        latest = self.programs.listed()  # once per group: the newest program first
        prepared: list[tuple[_Start, PreparedStart]] = []
        for start in group:
            try:
                prepared.append((start, _prepare(start, self.programs, latest)))
            except ApiError as e:
                start.settle(e)
        self._create(prepared)

    def _create(self, prepared: Sequence[tuple[_Start, PreparedStart]]) -> None:
        if not prepared:
            return
        try:
            created = self.store.create_runs([p.run for _, p in prepared])
        except _STORE_DOWN as e:
            for start, _ in prepared:
                start.settle(e)
            return
        except Exception as e:
            if len(prepared) == 1:
                prepared[0][0].settle(e)
                return
            for one in prepared:
                self._create([one])
            return
        self.groups += 1
        for (start, p), row in zip(prepared, created, strict=True):
            try:
                start.settle(_answer(p, row))
            except ApiError as e:
                start.settle(e)


def _prepare(
    start: _Start, programs: Programs, latest: list[tuple[IRProgram, float]]
) -> PreparedStart:
    from mnlang.runtime.run import prepare_start

    body = start.body
    if body.ir_hash is not None:
        program = programs.get(body.ir_hash)
        if program is None:
            raise ApiError("not_found", "program_not_found", f"no program `{body.ir_hash}`")
    else:
        found = next((p for p, _ in latest if body.workflow in p.workflows), None)
        if found is None:
            raise ApiError(
                "not_found",
                "workflow_not_found",
                f"no registered program declares workflow `{body.workflow}`",
                help="register it with POST /api/v1/programs",
            )
        program = found
    try:
        return prepare_start(
            program,
            body.workflow,
            body.input,
            run_id=body.run_id,
            started_by=start.by,
            traceparent=start.traceparent,
        )
    except RunError as e:
        raise _refusal(e) from None


def _answer(prepared: PreparedStart, row: RunCreated) -> Started:
    try:
        if row.removed is not None:
            return Started(prepared.removed(row.removed), row.removed.record())
        assert row.record is not None
        outcome = prepared.answer(row.record, row.created, detach=True)
    except RunError as e:
        raise _refusal(e) from None
    assert outcome is not None
    return Started(outcome, row.record)


def _refusal(e: RunError) -> ApiError:
    if isinstance(e, RunConflict):
        return ApiError(
            "conflict",
            "run_conflict",
            e.message,
            help="pick another run id, or start it with the input it has",
            details={"run_id": e.run_id, "existing_input": e.existing, "given_input": e.given},
        )
    if isinstance(e, InputError):
        return ApiError("invalid_request", "invalid_input", e.message, help=e.help)
    return ApiError("invalid_request", "cannot_start", e.message, help=e.help)
