"""The journaled interpreter of one run: fibers over the workflow's state machine.

One scheduler thread (the caller of `execute`) owns the run: it runs every fiber's pure
states inline, hands calls to `Calls` (which runs them on a thread pool), pauses at
checkpoints and waits through `Pauses`, and is the only writer of the run's journal.
The semantics of each state are those of docs/ir.md ("The state machine").

State is a snapshot, not a replay: a commit stores the cursor of every fiber that moved
and every variable that changed since the last commit, so resuming loads the last
commit and goes on from there. Commit points (DESIGN.md, "The runtime"): before an
effect's call (its intent) and right after it; after a model reply; after a tool with a
declared cost or a slow one; at a checkpoint, a wait or a child run; at the end; and at
least every `commit_every` states and every `commit_ms` milliseconds.

An effect's result commit is not deferred, but it may carry more: before it is written,
the ready fibers run their pure states (`RIDING_STATES`), and a keyed effect's intent
reached that way is written in the same commit (`_ride`). A chain of keyed effects with
pure states between pays one commit per effect.
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec

from mnlang.errors import BUDGET_EXCEEDED, CANCELLED, DEADLINE_EXCEEDED
from mnlang.ir.expr import Expr, Var
from mnlang.ir.model import IRProgram, WorkflowIR
from mnlang.ir.states import (
    AssignState,
    BranchState,
    CallState,
    CheckpointState,
    ChildState,
    FailState,
    LogState,
    LoopState,
    MapState,
    MatchState,
    ParallelState,
    PublishState,
    ReturnState,
    SelectState,
    State,
    TryState,
    WaitState,
    YieldState,
)
from mnlang.runtime.budget import Budget
from mnlang.runtime.call_state import Calls
from mnlang.runtime.call_threads import CallRunner
from mnlang.runtime.config import RuntimeConfig
from mnlang.runtime.convert import Converter
from mnlang.runtime.effects import run_wire_nonce
from mnlang.runtime.evaluate import Evaluator
from mnlang.runtime.failure_point import FAILURE_POINT_META, NOT_RETRYABLE_META, FailurePoint
from mnlang.runtime.failures import FAIL, FAILURE, StepFailure, value_error
from mnlang.runtime.faults import FAULTS_META, FaultPlan
from mnlang.runtime.fibers import (
    Fiber,
    Outcome,
    Return,
    child_branch,
    outcome_from_json,
    outcome_to_json,
)
from mnlang.runtime.journal import Journal, Observer
from mnlang.runtime.pauses import (
    PARENT_DEADLINE,
    ChildCall,
    ChildRunner,
    Pauses,
    checkpoint_timer,
    child_signal,
    inherited_budget,
)
from mnlang.runtime.ports import RunEnd
from mnlang.runtime.scope import Scope
from mnlang.runtime.timeouts import checked_ms
from mnlang.runtime.values import (
    Timestamp,
    Value,
    from_stored,
    list_from_stored,
    same_as,
    to_plain,
    to_stored,
    to_text,
)
from mnlang.stores.base import (
    CommitResult,
    DropBranch,
    Json,
    Lease,
    RunRecord,
    RunState,
    RunStatus,
    RunUpdate,
    SetCursor,
    SetTimer,
    StaleLease,
    StateOp,
    Store,
    signal_address,
)
from mnlang.telemetry.spans import AttemptSpans

RUN_DATA = "$run"
"""The root scope's variable for run-wide data: money spent, agents' reply counts."""
COMPENSATIONS = "$list:compensate"
"""The root scope's list of compensation calls owed by committed effects."""


PUBLISHED = "published"
"""The run's `meta` key holding its published values (`publish name = value`)."""

DEADLINE_TIMER = "deadline"
"""The timer that wakes a waiting run at its deadline."""

RIDING_STATES: frozenset[type] = frozenset(
    {AssignState, BranchState, MatchState, LogState, YieldState, LoopState, TryState}
)
"""States a fiber may run while an effect's result waits for its commit (`_ride`): they
only compute and touch nothing outside the run."""


_ABSENT = object()


def items_var(state_id: str) -> str:
    return f"$items:{state_id}"


def collect_var(state_id: str) -> str:
    return f"$list:collect:{state_id}"


def parts_var(state_id: str) -> str:
    return f"$list:parts:{state_id}"


class RunAborted(Exception):
    """The run cannot go on in this process (its lease was taken over)."""


class Interpreter:
    def __init__(
        self,
        store: Store,
        program: IRProgram,
        record: RunRecord,
        *,
        lease: Lease | None,
        config: RuntimeConfig,
        observer: Observer | None = None,
        child_runner: ChildRunner | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.store = store
        self.program = program
        self.record = record
        published = record.meta.get(PUBLISHED)
        self.published: dict[str, Json] = dict(published) if isinstance(published, dict) else {}
        """The run's published values; written to the run's `meta` by the next commit."""
        self.published_dirty = False
        self.run_id = record.run_id
        self.wire_nonce = run_wire_nonce(record)
        self.spans = AttemptSpans(store, record)
        self.workflow: WorkflowIR = program.workflows[record.workflow]
        self.states: dict[str, State] = self.workflow.states
        self.config = config
        self.lease = lease
        self.journal = Journal(store, record.run_id, lease, observer)
        self.evaluator = Evaluator(self._external, self._callback_token)
        self.converter = Converter(program.types, self.evaluator)
        self.runner = CallRunner(config.workers, config.clock)
        # The plan the run started with (or a child's share of its parent's) is in its
        # meta: any process that goes on with the run honours it. A run without one (the
        # bench's) takes the plan the process was given.
        kept = FaultPlan.from_json(record.meta.get(FAULTS_META))
        plan = kept if kept is not None else config.faults
        self.faults = plan.injector(store, self.run_id) if plan and plan.active else None
        self.calls = Calls(self)
        self.pauses = Pauses(self, child_runner)
        self.fibers: dict[str, Fiber] = {}
        self.scopes: dict[str, Scope] = {}
        self.ready: deque[Fiber] = deque()
        self.root: Fiber | None = None
        self.budget = Budget(inherited_budget(self.workflow.options.budget, record.meta))
        self.stop = stop
        """Set by a worker that is shutting down: the run stops at its next commit point."""
        self.outcome: Outcome | None = None
        self.aborting = False
        self.failing: FailurePoint | None = None
        """The failure being unwound and the state at it (`mnlang.runtime.failure_point`)."""
        self.force_commit = False
        self.ride = False
        """An effect's result is due: `_ride` runs first, then the commit."""
        self.joined = False
        """A branch or item ended since the last commit: nothing rides in the next one."""
        self.after_commit: list[Callable[[CommitResult], None]] = []
        self.steps = 0
        self.last_commit = time.monotonic()
        self.last_store_contact = self.last_commit
        self.deadline_at: float | None = None
        self.clock_offset = 0.0
        self._current: tuple[Fiber, str] | None = None
        # A waiting run that is picked up again is `running` from its next commit on.
        self._status_on_commit: RunStatus | None = "running" if record.status != "running" else None
        self._handlers: dict[type, Callable[[Fiber, Any], None]] = {
            AssignState: self._assign,
            BranchState: self._branch,
            MatchState: self._match,
            LogState: self._log,
            PublishState: self._publish,
            YieldState: self._yield,
            ReturnState: self._return,
            FailState: self._fail,
            LoopState: self._loop,
            MapState: self._map,
            ParallelState: self._parallel,
            TryState: self._try,
            CallState: self.calls.begin,
            ChildState: self.pauses.child,
            CheckpointState: self.pauses.checkpoint,
            WaitState: self.pauses.wait,
            SelectState: self.pauses.select,
        }

    # --- building the run -----------------------------------------------------------

    @property
    def run_data(self) -> dict[str, Any]:
        assert self.root is not None
        data: dict[str, Any] = self.root.scope.values[RUN_DATA]
        return data

    def update_run_data(self, **changes: Any) -> None:
        assert self.root is not None
        self.root.scope.set(RUN_DATA, {**self.run_data, **changes})

    def _add_fiber(self, fiber: Fiber) -> Fiber:
        self.fibers[fiber.branch] = fiber
        if fiber.scope.branch == fiber.branch:
            self.scopes[fiber.branch] = fiber.scope
        return fiber

    def start(self, args: dict[str, Value]) -> None:
        """Set up a new run: the arguments as variables, the cursor at the first state."""
        scope = Scope("")
        for name in args:
            scope.set(name, args[name])
        scope.set(RUN_DATA, {"spent": Decimal(0), "replies": {}})
        if any(e.compensate is not None for e in self.program.effects.values()):
            scope.start_list(COMPENSATIONS)
        self.root = self._add_fiber(Fiber("", scope, self.workflow.start))
        self.journal.event("started", {"workflow": self.workflow.name, "args": to_plain(args)})
        self.ready.append(self.root)
        self._enter(self.root, self.workflow.start, None)

    def restore(self, state: RunState) -> None:
        """Rebuild the fibers and scopes of the last commit."""
        variables = state.variables
        for branch in sorted(state.cursors, key=lambda b: (b.count("/"), b)):
            cursor = state.cursors[branch]
            parent = self.fibers[branch.rpartition("/")[0]] if branch else None
            scope_branch = cursor.get("scope", branch)
            if scope_branch == branch:
                scope = Scope(branch, parent.scope if parent is not None else None)
                references: list[tuple[str, str]] = []
                for name, value in variables.get(branch, {}).items():
                    source = same_as(value)
                    if source is not None:
                        references.append((name, source))
                    elif name.startswith("$list:"):
                        scope.restore_list(name, list_from_stored(value))
                    else:
                        scope.values[name] = from_stored(value)
                for name, source in references:
                    scope.restore_same(name, source)
            else:
                scope = self.scopes[scope_branch]
            fiber = self._add_fiber(Fiber.restore(branch, cursor, scope, parent))
            if parent is None:
                self.root = fiber
            else:
                parent.children[fiber.index] = fiber
        assert self.root is not None
        self.budget.spent = self.run_data["spent"]
        for fiber in self.fibers.values():
            joining = fiber.at is not None and fiber.at in fiber.frames
            if joining and isinstance(self.states[fiber.at], MapState | ParallelState):  # type: ignore[index]
                fiber.status = "join"
            else:
                self.ready.append(fiber)
        self.journal.event("resumed", {"branches": len(self.fibers)})
        for fiber in list(self.fibers.values()):
            # A quorum decided before the crash: its losers stop again, each after the
            # outcome of an effect it had started.
            data = fiber.frames.get(fiber.at) if fiber.status == "join" else None  # type: ignore[arg-type]
            if data is not None and "first" in data and (_decided(data) or data["outcome"]):
                why = "was reached" if _decided(data) else "can no longer be reached"
                reason = StepFailure(CANCELLED, f"cancelled: the quorum {why}")
                for child in list(fiber.children.values()):
                    self._lose(child, reason)
        for fiber in list(self.fibers.values()):
            if fiber.status == "join" and not fiber.children:
                state_ = self.states[fiber.at]  # type: ignore[index]
                assert isinstance(state_, MapState | ParallelState)
                self._join_progress(fiber, state_)

    # --- the scheduler loop -----------------------------------------------------------

    def execute(self, clock_offset: float | None = None) -> RunEnd:
        """Run until the run completes, fails, is cancelled or waits for something.
        `clock_offset` is the store's clock minus `time.time()` if the caller read it with
        the run's state (`RunState.clock_offset`); else it is read here."""
        if clock_offset is None:
            now = self.store.now()
            self.clock_offset = now - time.time()
        else:
            self.clock_offset = clock_offset
            now = time.time() + clock_offset
        deadline_ms = self._deadline_ms()
        if deadline_ms is not None:
            self.deadline_at = self.record.created_at + deadline_ms / 1000
        parent_deadline = self.record.meta.get(PARENT_DEADLINE)
        if parent_deadline is not None:
            self.deadline_at = min(self.deadline_at or parent_deadline, parent_deadline)
        if self.record.cancel_requested:
            self.abort(StepFailure(CANCELLED, "the run was cancelled"))
        self._check_deadline(now)  # a run resumed past its deadline starts nothing more
        try:
            while True:
                self._drain_ready()
                if self.outcome is not None:
                    return self._finish(self.outcome)
                if self.force_commit or self._commit_due():
                    self._commit()
                if self.ready and not self._stopping():
                    continue
                if not self.runner.busy:
                    if self.ready and self._stopping():
                        return self._stopped()
                    if self.after_commit:
                        self._commit()
                        continue
                    if self._short_wait():
                        continue
                    self._pause()
                    if not self.ready:
                        return RunEnd("waiting")
                    continue
                for completion in self.runner.wait(self._wait_timeout()):
                    if isinstance(completion.job.owner, ChildCall):
                        self.pauses.child_done(completion)
                    else:
                        self.calls.complete(completion)
                if self.force_commit:
                    if self.ride and not self.joined:
                        self._ride()
                    if self.outcome is None:  # else `_finish` commits it, at the top
                        self._commit()
                self._check_clock()
        finally:
            self.runner.close()

    def _drain_ready(self) -> None:
        ready = self.ready
        while ready and self.outcome is None and not self._stopping():
            fiber = ready.popleft()
            if fiber.status == "ready":
                self._run_fiber(fiber)
            if self.force_commit:
                return

    def _run_fiber(self, fiber: Fiber) -> None:
        states = self.states
        every = self.config.commit_every
        while fiber.status == "ready":
            if fiber.at is None:
                self.calls.next_compensation(fiber)
                return
            self._execute(fiber, states[fiber.at])
            if self.force_commit:
                return
            if self.steps >= every and self.outcome is None:
                self._commit()

    def _execute(self, fiber: Fiber, state: State) -> None:
        self._current = (fiber, state.id)
        self.steps += 1
        # Executing a state changes the fiber even when its cursor stays (a join starts,
        # a loop begins): the next commit must store it.
        fiber.dirty = True
        try:
            self._handlers[type(state)](fiber, state)
        except StepFailure as failure:
            self.unwind(fiber, failure.at(state.id), state.frame)

    def _ride(self) -> None:
        """Before an effect's result is committed, let the fibers that are ready now run
        their pure states; one that reaches a keyed effect records its intent, which then
        rides in the same commit (DESIGN.md: an intent is committed before the call, with
        everything before it). Nothing is called and nothing waits meanwhile, so the result
        is committed at the moment it would have been without riders.

        A `once` effect's intent never rides: the run is not yet committed to calling it.
        A fiber that reaches any other state (a call, a pause, `return`, `fail`) stops
        there until after the commit, and so do the fibers this woke or started; a branch
        or item that ends (a join) ends riding altogether."""
        held: dict[Fiber, None] = {}
        for _ in range(len(self.ready)):
            if self.joined or self.outcome is not None or self._stopping():
                break
            fiber = self.ready.popleft()
            if fiber.status == "ready" and not self._run_pure(fiber):
                held[fiber] = None
        self.ready.extendleft(reversed(held))

    def _run_pure(self, fiber: Fiber) -> bool:
        """Run `fiber` while it may ride; False when it stopped at a state that must wait
        for the commit (it is still ready)."""
        states = self.states
        every = self.config.commit_every
        while fiber.status == "ready":
            if fiber.at is None or self.steps >= every or self.joined:
                return False
            state = states[fiber.at]
            if type(state) not in RIDING_STATES and not self._intent_may_ride(fiber, state):
                return False
            self._execute(fiber, state)
        return True

    def _intent_may_ride(self, fiber: Fiber, state: State) -> bool:
        """A keyed effect about to be called afresh (not resumed, retried or repaired)."""
        return (
            isinstance(state, CallState)
            and state.callee_kind == "effect"
            and not fiber.pending
            and not self.program.effects[state.callee].once
        )

    def _commit_due(self) -> bool:
        if not self.steps and not self.journal.has_work:
            return False
        if self.steps >= self.config.commit_every:
            return True
        ms = self.config.commit_ms
        return bool(ms) and (time.monotonic() - self.last_commit) * 1000 >= ms

    def _wait_timeout(self) -> float | None:
        now = time.monotonic()
        waits = [self.last_store_contact + self.config.cancel_poll_s - now]
        if self.config.commit_ms and (self.steps or self.journal.has_work):
            waits.append(self.last_commit + self.config.commit_ms / 1000 - now)
        if self.deadline_at is not None:
            waits.append(self.deadline_at - (time.time() + self.clock_offset))
        if self.lease is not None:
            waits.append(self._lease_renew_at() - (time.time() + self.clock_offset))
        return max(0.0, min(waits))

    def _lease_renew_at(self) -> float:
        assert self.lease is not None
        return self.lease.expires_at - self.config.lease_ttl_s * 2 / 3

    def now_ms(self) -> int:
        """The run's clock in milliseconds: the store's, plus the waits a virtual clock
        skipped (`RuntimeConfig.clock`), which count as time that passed."""
        return round((time.time() + self.clock_offset + self.config.clock.skipped) * 1000)

    def _check_clock(self) -> None:
        store_now = time.time() + self.clock_offset
        self._check_deadline(store_now)
        if self.lease is not None and store_now >= self._lease_renew_at():
            self._renew_lease()
        if time.monotonic() - self.last_store_contact >= self.config.cancel_poll_s:
            record = self.store.get_run(self.run_id, args=False)
            self.last_store_contact = time.monotonic()
            if record is not None and record.cancel_requested and not self.aborting:
                self.abort(StepFailure(CANCELLED, "the run was cancelled"))

    def _deadline_ms(self) -> int | None:
        """The run's own deadline: the literal, or the one computed from the arguments when
        the run started, kept in the run data (committed with the first commit) so a resumed
        run does not compute it again from variables that may have changed."""
        options = self.workflow.options
        if options.deadline is None or self.root is None:
            return options.deadline_ms
        known = self.run_data.get("deadline_ms")
        if isinstance(known, int):
            return known
        try:
            value = self.evaluator.eval(options.deadline, self.root.scope)
            computed = checked_ms(value, f"the `deadline` of `{self.workflow.name}`")
        except StepFailure as failure:
            self.abort(failure)
            return None
        self.update_run_data(deadline_ms=computed)
        return computed

    def _check_deadline(self, store_now: float) -> None:
        if self.deadline_at is not None and store_now >= self.deadline_at and not self.aborting:
            limit = self.workflow.options.deadline_ms or self.run_data.get("deadline_ms")
            whose = f"its deadline of {limit} ms" if limit is not None else "its parent's deadline"
            self.abort(StepFailure(DEADLINE_EXCEEDED, f"the run passed {whose}"))

    def _renew_lease(self) -> None:
        assert self.lease is not None
        try:
            self.lease = self.store.renew_lease(self.lease, self.config.lease_ttl_s)
        except StaleLease as e:
            raise RunAborted(str(e)) from e
        self.journal.lease = self.lease

    def _commit(self, run: RunUpdate | None = None, final: bool = False) -> CommitResult:
        ops: list[StateOp] = []
        point = self.failing
        if point is not None and point.given_up is None:
            work = point.outside_work(self.journal, ignore_timers=frozenset({DEADLINE_TIMER}))
            if work:
                point.given_up = f"its unwinding did work outside the run: {'; '.join(work)}"
        held: list[StateOp] | None = None
        if point is not None and point.given_up is None:
            # The stored state stays the failure point: only events and outside work
            # from before the failure go out; the unwinding's state is held back.
            if not point.written:
                ops += point.ops
                point.written = True
            held, self.journal.ops = self.journal.ops, []
        elif final:
            ops.append(DropBranch(""))
        else:
            if point is not None and not point.written:
                ops += point.ops
                point.written = True
            for scope in self.scopes.values():
                scope.flush(ops)
            for fiber in self.fibers.values():
                if fiber.dirty:
                    ops.append(SetCursor(fiber.branch, fiber.cursor()))
                    fiber.dirty = False
        if run is None and self._status_on_commit is not None:
            run = RunUpdate(status=self._status_on_commit)
        self._status_on_commit = None
        if self.published_dirty:
            # Published values become visible with this commit, never before it.
            run = msgspec.structs.replace(
                run or RunUpdate(), meta=run.meta if run and run.meta else self._meta()
            )
        try:
            result = self.journal.commit(ops, run)
        except StaleLease as e:
            raise RunAborted(str(e)) from e
        if held is not None and not final:
            self.journal.ops = held
        if point is not None:
            point.committed()
        self.published_dirty = False
        self.steps = 0
        self.last_commit = self.last_store_contact = time.monotonic()
        self.force_commit = False
        self.ride = self.joined = False
        actions, self.after_commit = self.after_commit, []
        for action in actions:
            action(result)
        if result.cancel_requested and not self.aborting and not final:
            self.abort(StepFailure(CANCELLED, "the run was cancelled"))
        return result

    def _finish(self, outcome: Outcome) -> RunEnd:
        meta = {**self._meta(), "cost": str(self.budget.spent)}
        if isinstance(outcome, StepFailure) and outcome.kind != CANCELLED:
            self._settle_failure_point(outcome, meta)
        else:
            self.failing = None  # the run ends otherwise: its state goes
        self.pauses.tell_parent()
        if self.deadline_at is not None:
            self.journal.cancel_timers.append(DEADLINE_TIMER)
        if isinstance(outcome, Return):
            result = to_plain(outcome.value)
            self.journal.event("completed", {"result": result})
            self._commit(RunUpdate(status="completed", result=result, meta=meta), final=True)
            return RunEnd("completed", result=result)
        error = outcome.to_json()
        status: RunStatus = "cancelled" if outcome.kind == CANCELLED else "failed"
        self.journal.event(status, {"error": error, **self._cancelled_by(status)})
        self._commit(RunUpdate(status=status, error=error, meta=meta), final=True)
        return RunEnd(status, error=error)

    def _cancelled_by(self, status: RunStatus) -> dict[str, Json]:
        """`{"by": WHO}` for the `cancelled` event of a run someone asked to cancel
        (`Store.request_cancel`'s `by`, read now: the request may have come after this
        process took the run), else nothing."""
        if status != "cancelled":
            return {}
        record = self.store.get_run(self.run_id, args=False)
        if record is None or not record.cancel_requested or record.cancel_requested_by is None:
            return {}
        return {"by": record.cancel_requested_by}

    def _settle_failure_point(self, failure: StepFailure, meta: dict[str, Json]) -> None:
        """Keep the failure point of a failed run (`meta` says where), or say why not."""
        point = self.failing
        why: str | None
        if point is None:
            why = "it kept no failure point (it was unwinding when its process stopped)"
        elif point.given_up is not None:
            why = point.given_up
        else:
            work = point.outside_work(self.journal, ignore_timers=frozenset({DEADLINE_TIMER}))
            why = f"its unwinding did work outside the run: {'; '.join(work)}" if work else None
        if why is None and self.record.parent_run_id is not None:
            why = "it is a child run: its parent was told it failed (retry the parent)"
        if why is None and failure.kind in (BUDGET_EXCEEDED, DEADLINE_EXCEEDED):
            why = f"it failed with `{failure.kind}`: a retry would stop at once"
        if why is None and self.aborting:
            why = "it was stopped while running"
        if why is None:
            meta[FAILURE_POINT_META] = {"step": failure.step, "kind": failure.kind}
        else:
            if point is not None:
                point.given_up = why
            meta[NOT_RETRYABLE_META] = why

    def _hold_failure_point(self, fiber: Fiber, failure: StepFailure) -> None:
        """A failure starts to unwind: take the state as it stands here, unwritten."""
        ops, self.journal.ops = self.journal.ops, []
        for scope in self.scopes.values():
            scope.flush(ops)
        for each in self.fibers.values():
            if each.dirty or each is fiber:
                # A copy: unwinding changes the fiber's frames in place.
                ops.append(SetCursor(each.branch, copy.deepcopy(each.cursor())))
                each.dirty = False
        self.failing = FailurePoint.begin(failure, ops, self.journal)

    def _failure_caught(self) -> None:
        """The failure was caught: the run goes on, and the state at the failure goes out
        with the next commit, before what came after it."""
        point, self.failing = self.failing, None
        if point is not None and not point.written:
            self.journal.ops[:0] = point.ops

    def give_up_failure_point(self, why: str) -> None:
        """The unwinding did something outside the run (or must write its state): a
        retry could not undo it, so the state is written as it goes from here on."""
        if self.failing is not None and self.failing.given_up is None:
            self.failing.given_up = why

    def _pause(self) -> None:
        """Commit the run as waiting (a cancel request found by this commit wakes it)."""
        self.give_up_failure_point("it paused while unwinding")
        waiting = sorted(
            {
                signal_address(f.pending["event"], f.pending.get("key"))
                for f in self.fibers.values()
                if f.pending and "event" in f.pending
            }
            | {
                address
                for f in self.fibers.values()
                if f.pending
                for address in f.pending.get("events", [])
            }
            | {
                child_signal(f.pending["child"])
                for f in self.fibers.values()
                if f.pending and "child" in f.pending
            }
        )
        self.journal.event("waiting", {"for": self.pauses.describe()})
        if self.deadline_at is not None:
            # A worker wakes the run at its deadline, which then ends it.
            left = self.deadline_at - (time.time() + self.clock_offset)
            self.journal.set_timers.append(SetTimer(DEADLINE_TIMER, max(left, 0.0)))
        self._commit(RunUpdate(status="waiting", waiting_for=waiting))

    def _short_wait(self) -> bool:
        """Wait here for a timer due within `short_wait_s` rather than leave the run
        waiting for a worker; False when none is that close (the run pauses).

        The run stays `running` (holding its lease, renewed, and its `limit` slot) and
        commits where it stands first, so a crash while it sleeps leaves exactly what a
        pause would, plus a lease whose dead owner `mnc resume` breaks. Meanwhile it
        checks for a cancel every `cancel_poll_s`; a decision or a signal that arrives is
        taken when the timer is due. Then every paused fiber looks again at what it waits
        for, as after a resume: those whose timer is due go on, the others pause again."""
        window = self.config.short_wait_s
        if window <= 0 or self.aborting or self._stopping():
            return False
        due = self._next_due()
        if due is None:
            return False
        left = due - (time.time() + self.clock_offset)
        if left > window:
            return False
        self.give_up_failure_point("it waited for a timer while unwinding")
        self.journal.event("sleeping", {"ms": max(0, round(left * 1000))})
        self._commit()
        ticks = self.stop or threading.Event()
        while not self.ready and not self._stopping():
            left = due - (time.time() + self.clock_offset)
            if left <= 0:
                # Due by the store's own clock too, which the timers go by: no branch
                # wakes early and brings the run back here at once.
                left = due - self.store.now()
                if left <= 0:
                    break
            # Woken to renew the lease, look for a cancel, or at the deadline.
            poll = self._wait_timeout()
            ticks.wait(left if poll is None else min(left, poll))
            self._check_clock()
        for fiber in self.fibers.values():
            if fiber.status == "paused":
                self.wake(fiber)
        return True

    def _next_due(self) -> float | None:
        """When the earliest timer a paused branch waits for (or the run's deadline) is
        due, by the store's clock, counting the timers set and cancelled since the last
        commit (a store applies the sets, then the cancels)."""
        waited: set[str] = set()
        for fiber in self.fibers.values():
            note = fiber.pending if fiber.status == "paused" else None
            if not note:
                continue
            if "timer" in note:
                waited.add(note["timer"])
            if "retry" in note:
                waited.add(note["retry"]["timer"])
            if "checkpoint" in note:
                waited.add(checkpoint_timer(note["checkpoint"]))
        due = {t.timer_id: t.due_at for t in self.store.run_timers(self.run_id)}
        if self.journal.set_timers:
            now = self.store.now()
            due.update((t.timer_id, now + t.delay) for t in self.journal.set_timers)
        for timer_id in self.journal.cancel_timers:
            due.pop(timer_id, None)
        times = [at for timer_id, at in due.items() if timer_id in waited]
        if self.deadline_at is not None:
            times.append(self.deadline_at)
        return min(times) if times else None

    def _stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def _stopped(self) -> RunEnd:
        """Leave the run for another worker: commit where it stands, with no call in flight."""
        self.journal.event("stopped", {"reason": "the worker is shutting down"})
        self.give_up_failure_point("its worker stopped while it was unwinding")
        self._commit()
        return RunEnd("running")

    # --- moving cursors ---------------------------------------------------------------

    def wake(self, fiber: Fiber) -> None:
        fiber.status = "ready"
        self.ready.append(fiber)

    def deliver(self, fiber: Fiber, value: Value) -> None:
        """A call, child run or pause of `fiber` ended with `value`: assign it and go on."""
        state = self.states[fiber.at]  # type: ignore[index]
        target = getattr(state, "target", None)
        if target is not None:
            fiber.scope.set(target, value)
        fiber.pending = None
        self.wake(fiber)
        self._enter(fiber, getattr(state, "next", None), state.frame)

    def deliver_to(self, fiber: Fiber, var: str | None, value: Value, entry: str | None) -> None:
        """A select of `fiber` was won: bind the arm's variable and go to its body."""
        state = self.states[fiber.at]  # type: ignore[index]
        if var is not None:
            fiber.scope.set(var, value)
        fiber.pending = None
        self.wake(fiber)
        self._enter(fiber, entry, state.frame)

    def fail(self, fiber: Fiber, failure: StepFailure) -> None:
        """A call or pause of `fiber` failed: unwind from its state."""
        if fiber.losing is not None:
            self.lose_now(fiber)  # a quorum's loser: stopped, not caught
            return
        state = self.states[fiber.at]  # type: ignore[index]
        fiber.pending = None
        self.wake(fiber)
        self.unwind(fiber, failure.at(state.id), state.frame)

    def _enter(self, fiber: Fiber, target: str | None, frame: str | None) -> None:
        """Go to `target` (None: the end of `frame`'s body), containing failures on the way."""
        try:
            self.advance(fiber, target, frame)
        except StepFailure as failure:
            self.unwind(fiber, failure.at(frame or ""), frame)

    def advance(self, fiber: Fiber, target: str | None, frame: str | None) -> None:
        fiber.dirty = True
        if target is not None:
            fiber.at = target
            return
        while True:
            if frame is None:
                self._root_end(fiber, Return(None))
                return
            if frame == fiber.spawn:
                self._child_done(fiber, None)
                return
            state = self.states[frame]
            if isinstance(state, LoopState):
                self._loop_next(fiber, state)
                return
            if not isinstance(state, TryState):
                raise AssertionError(f"a body ended in `{frame}`, which is not a frame")
            data = fiber.frames[frame]
            if data["phase"] != "finally" and state.finally_ is not None:
                data["phase"] = "finally"
                data["pending"] = None
                fiber.at = state.finally_
                return
            pending = data.get("pending")
            del fiber.frames[frame]
            if pending is not None:
                self.unwind(fiber, outcome_from_json(pending), state.frame)
                return
            if state.next is not None:
                fiber.at = state.next
                return
            frame = state.frame

    def unwind(self, fiber: Fiber, outcome: Outcome, frame: str | None) -> None:
        """Propagate a failure or a `return` outward from `frame`: into the first `catch`
        that takes it, through every `finally`, out of loops; at the fiber's start it
        goes to the parent's join, at the workflow's top it ends the run."""
        if self.failing is None and isinstance(outcome, StepFailure) and not self.aborting:
            self._hold_failure_point(fiber, outcome)
        fiber.dirty = True
        fiber.pending = None
        while True:
            if frame is None:
                self._root_end(fiber, outcome)
                return
            if frame == fiber.spawn:
                self._child_done(fiber, outcome)
                return
            state = self.states[frame]
            data = fiber.frames.get(frame)
            if data is not None:
                if isinstance(state, TryState):
                    if self._catch(fiber, state, data, outcome):
                        return
                    if state.finally_ is not None and data["phase"] != "finally":
                        data["phase"] = "finally"
                        data["pending"] = outcome_to_json(outcome)
                        fiber.at = state.finally_
                        self.wake(fiber)
                        return
                elif isinstance(state, LoopState):
                    self._drop_loop_vars(fiber, state)
                del fiber.frames[frame]
            frame = state.frame

    def _catch(self, fiber: Fiber, state: TryState, data: dict[str, Any], outcome: Outcome) -> bool:
        if not isinstance(outcome, StepFailure) or not outcome.catchable:
            return False
        if data["phase"] != "body":
            return False
        for clause in state.catches:
            if "any" in clause.kinds or outcome.kind in clause.kinds:
                data["phase"] = "catch"
                if clause.var is not None:
                    fiber.scope.set(clause.var, outcome.as_value())
                self.journal.event("caught", outcome.to_json(), state.id, fiber.branch)
                self._failure_caught()
                self.wake(fiber)
                self._enter(fiber, clause.entry, state.id)
                return True
        return False

    def _root_end(self, fiber: Fiber, outcome: Outcome) -> None:
        fiber.status = "done"
        fiber.at = None
        failed = fiber.scope.values.get(FAILURE)
        if failed is not None:
            # The end of `on_failure`: the run fails as it did, or as the cleanup `fail`ed.
            final = outcome if isinstance(outcome, StepFailure) else outcome_from_json(failed)
            assert isinstance(final, StepFailure)
            self.journal.event("cleaned_up", {"error": final.to_json()})
            self.outcome = final
            return
        if isinstance(outcome, StepFailure) and self.calls.start_compensation(fiber, outcome):
            return
        if isinstance(outcome, StepFailure) and self.on_failure(fiber, outcome):
            return
        self.outcome = outcome

    def on_failure(self, root: Fiber, failure: StepFailure) -> bool:
        """After the compensations of a failed run, run its `on_failure` body, if any."""
        cleanup = self.workflow.on_failure
        if cleanup is None:
            return False
        root.scope.set(FAILURE, outcome_to_json(failure))
        if cleanup.var is not None:
            root.scope.set(cleanup.var, failure.as_value())
        self.journal.event("cleaning_up", {"error": failure.to_json()})
        root.pending = None
        root.dirty = True
        self.wake(root)
        self.advance(root, cleanup.entry, None)
        return True

    # --- pure states ------------------------------------------------------------------

    def _assign(self, fiber: Fiber, state: AssignState) -> None:
        value = self.evaluator.eval(state.value, fiber.scope)
        if state.target is not None:
            fiber.scope.set(state.target, value)
        self.advance(fiber, state.next, state.frame)

    def _branch(self, fiber: Fiber, state: BranchState) -> None:
        taken = state.then if self.evaluator.eval(state.cond, fiber.scope) else state.else_
        self.advance(fiber, taken, state.frame)

    def _match(self, fiber: Fiber, state: MatchState) -> None:
        subject = self.evaluator.eval(state.subject, fiber.scope)
        for arm in state.arms:
            if subject in arm.members or "_" in arm.members:
                self.advance(fiber, arm.target, state.frame)
                return
        raise value_error(f"no `match` arm takes `{to_text(subject)}`")

    def _meta(self) -> dict[str, Json]:
        """The run's meta as the next commit writes it: as loaded, with the published values."""
        if not self.published:
            return dict(self.record.meta)
        return {**self.record.meta, PUBLISHED: dict(self.published)}

    def _publish(self, fiber: Fiber, state: PublishState) -> None:
        value = to_plain(self.evaluator.eval(state.value, fiber.scope))
        self.published[state.name] = value
        # Visible with the next commit (within `commit_ms`, or when the run waits or ends).
        self.published_dirty = True
        self.journal.event("publish", {"name": state.name, "value": value}, state.id, fiber.branch)
        self.advance(fiber, state.next, state.frame)

    def _log(self, fiber: Fiber, state: LogState) -> None:
        message = to_text(self.evaluator.eval(state.message, fiber.scope))
        self.journal.event("log", {"message": message}, state.id, fiber.branch)
        self.advance(fiber, state.next, state.frame)

    def _yield(self, fiber: Fiber, state: YieldState) -> None:
        value = self.evaluator.eval(state.value, fiber.scope)
        name = collect_var(state.into)
        holder = fiber.scope.holder(name)
        if holder is None:
            raise AssertionError(f"`yield` into `{state.into}`, which is not collecting")
        holder.append(name, value)
        self.advance(fiber, state.next, state.frame)

    def _return(self, fiber: Fiber, state: ReturnState) -> None:
        value = self.evaluator.eval(state.value, fiber.scope) if state.value else None
        self.unwind(fiber, Return(value), state.frame)

    def _fail(self, fiber: Fiber, state: FailState) -> None:
        value = self.evaluator.eval(state.message, fiber.scope)
        if state.error is not None:
            cause = self.evaluator.eval(state.cause, fiber.scope) if state.cause else None
            failure = StepFailure(state.error, to_text(value), state.id, to_plain(cause))
        elif isinstance(value, dict):
            # `fail e`: the caught failure again, with its kind, message, step and cause.
            failure = StepFailure.from_json(value)
        else:
            failure = StepFailure(FAIL, to_text(value), state.id)
        self.unwind(fiber, failure, state.frame)

    def _callback_token(self, event: str, key: Value = None) -> str:
        return self.pauses.callback_token(event, key)

    def _external(self, name: str) -> Value:
        """`now()` and `uuid()`: external values, journaled where they were taken; `run`:
        the run's own record, from its row (committed when the run was created)."""
        if name == "run":
            return self._run_info()
        fiber, state = self._current or (self.root, None)
        branch = fiber.branch if fiber is not None else ""
        externals = self.config.externals
        recorded = (
            externals.external(self.record.workflow, name, branch)
            if externals is not None
            else None
        )
        value: Value
        if name == "now":
            ms = recorded if isinstance(recorded, int) else None
            value = Timestamp(
                ms if ms is not None else round((time.time() + self.clock_offset) * 1000)
            )
        else:
            value = str(recorded) if isinstance(recorded, str) else str(uuid.uuid4())
        self.journal.event(name, {"value": to_plain(value)}, state, branch)
        return value

    def _run_info(self) -> dict[str, Value]:
        record = self.record
        scheduled = record.meta.get("scheduled_at")
        return {
            "id": record.run_id,
            "workflow": record.workflow,
            "parent": record.parent_run_id,
            "started_at": Timestamp(round(record.created_at * 1000)),
            "scheduled_at": (
                Timestamp(round(float(scheduled) * 1000))
                if isinstance(scheduled, int | float)
                else None
            ),
        }

    # --- frames -----------------------------------------------------------------------

    def _try(self, fiber: Fiber, state: TryState) -> None:
        fiber.frames[state.id] = {"phase": "body", "pending": None}
        self.advance(fiber, state.body, state.id)

    def _loop(self, fiber: Fiber, state: LoopState) -> None:
        scope = fiber.scope
        if state.mode == "for":
            assert state.iterable is not None
            items = self.evaluator.eval(state.iterable, scope)
            self._keep_items(scope, state.id, state.iterable, items)
            fiber.frames[state.id] = {"i": 0}
        else:
            assert state.max is not None
            fiber.frames[state.id] = {"n": 0, "max": self.evaluator.eval(state.max, scope)}
        if state.target is not None:
            scope.start_list(collect_var(state.id))
        self._loop_next(fiber, state)

    @staticmethod
    def _keep_items(scope: Scope, state_id: str, iterable: Expr, items: Value) -> None:
        """Keep what a loop iterates for its later rounds (and a resume): as a reference
        when it is a variable of the loop's own scope, so a large list is not stored and
        loaded a second time; the scope stores a full copy once that variable changes."""
        if isinstance(iterable, Var) and scope.values.get(iterable.name, _ABSENT) is items:
            scope.set_same(items_var(state_id), iterable.name)
        else:
            scope.set(items_var(state_id), items)

    def _loop_next(self, fiber: Fiber, state: LoopState) -> None:
        data = fiber.frames[state.id]
        scope = fiber.scope
        if state.body is not None:
            if state.mode == "for":
                items = scope.get(items_var(state.id))
                i = data["i"]
                if i < len(items):
                    assert state.var is not None
                    scope.set(state.var, items[i])
                    data["i"] = i + 1
                    fiber.at = state.body
                    return
            elif data["n"] < data["max"]:
                assert state.cond is not None
                try:
                    go_on = self.evaluator.eval(state.cond, scope)
                except StepFailure as failure:
                    raise failure.at(state.id) from None
                if go_on:
                    data["n"] += 1
                    fiber.at = state.body
                    return
        del fiber.frames[state.id]
        if state.target is not None:
            collected = scope.get(collect_var(state.id))
            scope.set(state.target, list(collected))
        self._drop_loop_vars(fiber, state)
        self.advance(fiber, state.next, state.frame)

    def _drop_loop_vars(self, fiber: Fiber, state: LoopState) -> None:
        fiber.scope.delete(items_var(state.id))
        if state.target is not None:
            fiber.scope.delete(collect_var(state.id))

    def _parallel(self, fiber: Fiber, state: ParallelState) -> None:
        if not state.branches:
            self.advance(fiber, state.next, state.frame)
            return
        fiber.frames[state.id] = {"outcome": None}
        fiber.status = "join"
        for index, entry in enumerate(state.branches):
            branch = child_branch(fiber.branch, state.id, index)
            child = Fiber(branch, fiber.scope, entry, parent=fiber, spawn=state.id, index=index)
            fiber.children[index] = self._add_fiber(child)
            self.ready.append(child)

    def _map(self, fiber: Fiber, state: MapState) -> None:
        scope = fiber.scope
        items = self.evaluator.eval(state.iterable, scope)
        limit = self.evaluator.eval(state.limit, scope) if state.limit is not None else None
        if limit is not None and limit < 1:
            raise value_error(f"`parallel for` limit must be at least 1, got {limit}")
        first = self.evaluator.eval(state.first, scope) if state.first is not None else None
        if first is not None and not 1 <= first <= len(items):
            raise value_error(
                f"`parallel for ... first {first}` over {len(items)} items can never be reached"
                if first >= 1
                else f"`parallel for` quorum must be at least 1, got {first}"
            )
        if first is not None and state.body is None:
            items = items[:first]  # an empty body ends at once: the first items win
        if state.body is None or not items:
            if state.target is not None:
                scope.set(state.target, [])
            self.advance(fiber, state.next, state.frame)
            return
        self._keep_items(scope, state.id, state.iterable, items)
        if state.target is not None:
            scope.start_list(parts_var(state.id), [None] * len(items))
        fiber.frames[state.id] = {"next": 0, "limit": limit, "outcome": None}
        if first is not None:
            # The quorum's winners, in the order they ended: committed with each end, so a
            # resumed run has decided exactly what the journal says.
            fiber.frames[state.id].update(first=first, won=[])
        fiber.status = "join"
        self._map_fill(fiber, state)

    def _map_fill(self, fiber: Fiber, state: MapState) -> None:
        """Start items while the limit allows; join when every item has ended."""
        data = fiber.frames[state.id]
        items = fiber.scope.get(items_var(state.id))
        limit = data["limit"]
        while (
            data["outcome"] is None
            and not _decided(data)
            and data["next"] < len(items)
            and (limit is None or len(fiber.children) < limit)
        ):
            index = data["next"]
            data["next"] = index + 1
            branch = child_branch(fiber.branch, state.id, index)
            scope = Scope(branch, parent=fiber.scope)
            scope.set(state.var, items[index])
            if state.target is not None:
                scope.start_list(collect_var(state.id))
            child = Fiber(branch, scope, state.body, parent=fiber, spawn=state.id, index=index)
            fiber.children[index] = self._add_fiber(child)
            self.ready.append(child)
        fiber.dirty = True
        ended = data["outcome"] is not None or _decided(data) or data["next"] >= len(items)
        if not fiber.children and ended:
            self._join_done(fiber, state)

    def _child_done(self, child: Fiber, outcome: Outcome | None) -> None:
        """A branch or item fiber ended, normally (`outcome` None) or with an uncaught one."""
        parent = child.parent
        assert parent is not None and child.spawn is not None
        self.joined = True  # no intent rides across a join (see `_ride`)
        state = self.states[child.spawn]
        assert isinstance(state, MapState | ParallelState)
        data = parent.frames[state.id]
        self._retire(child)
        del parent.children[child.index]
        if "first" in data:
            assert isinstance(state, MapState)
            self._quorum_item_done(parent, child, state, data, outcome)
        elif outcome is None:
            if isinstance(state, MapState) and state.target is not None:
                part = child.scope.values.get(collect_var(state.id), [])
                parent.scope.set_item(parts_var(state.id), child.index, list(part))
        elif data["outcome"] is None:
            data["outcome"] = outcome_to_json(outcome)
            reason = StepFailure(CANCELLED, f"cancelled: branch `{child.label}` failed")
            for sibling in list(parent.children.values()):
                self.cancel(sibling, reason)
        # A sibling cancelled above may have been the last to end, and joined already.
        if state.id in parent.frames:
            self._join_progress(parent, state)

    def _quorum_item_done(
        self,
        parent: Fiber,
        child: Fiber,
        state: MapState,
        data: dict[str, Any],
        outcome: Outcome | None,
    ) -> None:
        """An item of a `parallel for ... first N` ended. Until N have won, one that ends
        normally wins and one that fails is tolerated while N can still win; at N the
        others lose, and when N can no longer win the block fails with this failure."""
        if data["outcome"] is not None or _decided(data):
            return  # a loser, or an item cancelled with the block: it only had to stop
        first: int = data["first"]
        if outcome is None:
            data["won"].append(child.index)
            if state.target is not None:
                part = child.scope.values.get(collect_var(state.id), [])
                parent.scope.set_item(parts_var(state.id), child.index, list(part))
            if _decided(data):
                self.journal.event(
                    "quorum", {"first": first, "won": data["won"]}, state.id, parent.branch
                )
                reason = StepFailure(CANCELLED, f"cancelled: {first} other items ended first")
                for sibling in list(parent.children.values()):
                    self._lose(sibling, reason)
            return
        items = len(parent.scope.get(items_var(state.id)))
        still = len(data["won"]) + len(parent.children) + items - data["next"]
        if still >= first or not isinstance(outcome, StepFailure):
            return
        failure = StepFailure(
            outcome.kind,
            f"the quorum of {first} can no longer be reached: {outcome.message}",
            outcome.step,
        )
        data["outcome"] = outcome_to_json(failure)
        reason = StepFailure(CANCELLED, f"cancelled: branch `{child.label}` failed")
        for sibling in list(parent.children.values()):
            self._lose(sibling, reason)

    def _lose(self, fiber: Fiber, reason: StepFailure) -> None:
        """Stop a quorum's loser as `cancel` does, except that an effect whose intent is
        committed is not abandoned: the loser waits for its outcome (the call's result or
        failure, its reconcile tool's answer, a repair's decision), which goes to the
        ledger as any effect's does, and stops then (`Calls` calls `lose_now`)."""
        if fiber.status == "done":
            return
        if fiber.status == "join":
            assert fiber.at is not None
            data = fiber.frames[fiber.at]
            if data["outcome"] is None:
                data["outcome"] = outcome_to_json(reason)
            for child in list(fiber.children.values()):
                self._lose(child, reason)
            return
        if self.calls.effect_unsettled(fiber):
            fiber.losing = reason
            self.journal.event("losing", {"reason": reason.message}, fiber.at, fiber.branch)
            return
        self.cancel(fiber, reason)

    def lose_now(self, fiber: Fiber) -> None:
        """A loser's effect has its outcome in the ledger: stop the loser there."""
        reason = fiber.losing
        assert reason is not None and fiber.at is not None
        fiber.losing = None
        fiber.job = None
        fiber.pending = None
        self.wake(fiber)
        state = self.states[fiber.at]
        self.unwind(fiber, StepFailure(reason.kind, reason.message, state.id), state.frame)

    def _join_progress(self, parent: Fiber, state: MapState | ParallelState) -> None:
        if isinstance(state, MapState):
            self._map_fill(parent, state)
        elif not parent.children:
            self._join_done(parent, state)

    def _join_done(self, parent: Fiber, state: MapState | ParallelState) -> None:
        data = parent.frames.pop(state.id)
        scope = parent.scope
        if isinstance(state, MapState):
            scope.delete(items_var(state.id))
            if state.target is not None:
                parts = scope.get(parts_var(state.id))
                scope.delete(parts_var(state.id))
                if data["outcome"] is None:
                    # A quorum's list: its winners' yields in the order they won.
                    order = data["won"] if "won" in data else range(len(parts))
                    scope.set(state.target, [item for i in order for item in parts[i]])
        self.wake(parent)
        if data["outcome"] is not None:
            self.unwind(parent, outcome_from_json(data["outcome"]), state.frame)
        else:
            self._enter(parent, state.next, state.frame)

    def _retire(self, fiber: Fiber) -> None:
        fiber.status = "done"
        del self.fibers[fiber.branch]
        if self.scopes.get(fiber.branch) is fiber.scope:
            del self.scopes[fiber.branch]
            fiber.scope.forget_changes()
        self.journal.ops.append(DropBranch(fiber.branch))

    # --- stopping ---------------------------------------------------------------------

    def abort(self, failure: StepFailure) -> None:
        """Stop the whole run (cancelled, past its deadline): every fiber unwinds."""
        if self.aborting or self.root is None:
            return
        self.aborting = True
        self.journal.event("aborting", failure.to_json())
        self.cancel(self.root, failure)

    def cancel(self, fiber: Fiber, failure: StepFailure) -> None:
        """Unwind one fiber with an uncatchable failure (its `finally` bodies still run)."""
        if fiber.status == "done":
            return
        if fiber.status == "join":
            assert fiber.at is not None
            data = fiber.frames[fiber.at]
            if data["outcome"] is None:
                data["outcome"] = outcome_to_json(failure)
            reason = StepFailure(CANCELLED, failure.message)
            for child in list(fiber.children.values()):
                self.cancel(child, reason)
            return
        if fiber.at is None or FAILURE in fiber.scope.values:
            return  # compensating or cleaning up after a failure: it runs to its end
        if fiber.status == "call":
            self.calls.abandon(fiber)
        elif fiber.pending and "effect" in fiber.pending:
            # An effect's intent is committed, its result is not (resumed, retrying, or
            # waiting on a repair): it may have happened.
            self.calls.abandon_intent(fiber, self.states[fiber.at])
        if fiber.pending:
            self.pauses.abandon(fiber)
        state = self.states[fiber.at]
        self.wake(fiber)
        self.unwind(fiber, StepFailure(failure.kind, failure.message, state.id), state.frame)

    def place(self, fiber: Fiber) -> str:
        """Which execution of a statement this is: branches and loop positions, outermost
        first, so a statement inside loops gets a different place in every iteration."""
        parts: list[str] = []
        current: Fiber | None = fiber
        while current is not None:
            loops = ",".join(
                f"{sid}={data['i'] if 'i' in data else data['n']}"
                for sid, data in current.frames.items()
                if "i" in data or "n" in data
            )
            parts.append(f"{current.branch}[{loops}]")
            current = current.parent
        return ";".join(reversed(parts))

    def stored_args(self, args: dict[str, Value]) -> Json:
        return {name: to_stored(value) for name, value in args.items()}


def _decided(join: dict[str, Any]) -> bool:
    """Whether a `parallel for ... first N` has its N winners."""
    return "first" in join and len(join["won"]) >= join["first"]
