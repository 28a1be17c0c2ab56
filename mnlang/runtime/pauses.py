"""States that wait on the world: checkpoints, timers, events, repairs and child runs.

Each commits what it waits for (an open checkpoint, a timer, the event's name) and
pauses its fiber; when no fiber can go on, the run ends `waiting`. Executing the state
again later (`mnc resume`, a worker) finds its notes in the fiber's `pending` and checks
whether the wait is over: a decision was committed (or the timeout decided first), the
timer is due, a signal arrived. A repair checkpoint is how a `once` effect with an
unknown outcome asks a person: mark it done with a result, call it again, or fail.

A child run is created in the parent's commit, then run to where it stops in this
process on a worker thread; its end is the parent step's result (`child_failed` when
it failed). The parent's deadline and what is left of its budget go into the child's
`meta`, so both flow down, and the child's cost is added to the parent's when it ends.
A child that waits (or that another worker is executing) leaves the parent waiting for
the signal the child sends to the parent's mailbox in the commit that ends it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from mnlang.errors import BUDGET_EXCEEDED, CHILD_FAILED, DEADLINE_EXCEEDED, TOOL_ERROR
from mnlang.ir.states import CheckpointState, ChildState, SelectState, WaitState
from mnlang.runtime.call_threads import CallJob, Completion
from mnlang.runtime.convert import ConversionError
from mnlang.runtime.effects import WIRE_NONCE, new_wire_nonce
from mnlang.runtime.failures import StepFailure, value_error
from mnlang.runtime.fibers import Fiber
from mnlang.runtime.serving import run_needs
from mnlang.runtime.timeouts import checked_ms
from mnlang.runtime.tokens import make_token
from mnlang.runtime.values import Timestamp, Value, to_plain, to_text
from mnlang.stores.base import (
    Checkpoint,
    CommitResult,
    Json,
    NewRun,
    OpenCheckpoint,
    SendSignal,
    SetTimer,
    Signal,
    Store,
    signal_address,
)

if TYPE_CHECKING:
    from mnlang.ir.model import IRProgram
    from mnlang.runtime.budget import Budget
    from mnlang.runtime.call_threads import CallRunner
    from mnlang.runtime.convert import Converter
    from mnlang.runtime.evaluate import Evaluator
    from mnlang.runtime.journal import Journal
    from mnlang.runtime.ports import Call, CallsPort, RunEnd
    from mnlang.stores.base import RunRecord, Store

TIMEOUT_BY = "timeout"
"""Who decided a checkpoint that its timeout decided: the decision's `.by`."""
PARENT_DEADLINE = "parent_deadline_at"
PARENT_BUDGET = "parent_budget"
"""Keys of a child run's `meta`: its parent's deadline (store clock) and budget left."""
STARTED_BY = "started_by"
"""Key of a detached child run's `meta`: the run whose `start` created it."""
DURABLE_DELAY_MS = 1000
"""A retry delay longer than this waits on a durable timer (no worker is held), a shorter
one in memory."""
# A child's failure of these kinds is the parent's limit running out, not the child's fault.
_INHERITED_KINDS = frozenset({BUDGET_EXCEEDED, DEADLINE_EXCEEDED})


def checkpoint_timer(checkpoint_id: str) -> str:
    """The id of the timer of a checkpoint's timeout."""
    return f"checkpoint:{checkpoint_id}"


def select_checkpoint(select_id: str, name: str) -> str:
    """The id of the checkpoint `name` that the select `select_id` opens."""
    return f"{select_id}:{name}"


def select_timer(select_id: str) -> str:
    """The id of a select's timer (its `after` arm)."""
    return f"select:{select_id}"


def select_winner(lost_to: dict[str, Any]) -> str:
    """A select's winning arm in words, from a closed checkpoint's `lost_to`."""
    if lost_to.get("arm") == "event":
        key = f" (key `{lost_to['key']}`)" if lost_to.get("key") is not None else ""
        return f"event `{str(lost_to.get('event')).rsplit('.', 1)[-1]}`{key}"
    if lost_to.get("arm") == "checkpoint":
        return f"checkpoint `{lost_to.get('name')}` (decided by `{lost_to.get('by')}`)"
    return "its `after` timer"


def _after_arm(state: SelectState) -> int:
    return next(i for i, arm in enumerate(state.arms) if arm.kind == "after")


def decide_timeout_if_due(store: Store, run_id: str, checkpoint: Checkpoint) -> Checkpoint:
    """Commit the timeout's decision when the checkpoint is open and its timer is due;
    returns the checkpoint as it stands afterwards."""
    on_timeout = (
        checkpoint.request.get("on_timeout") if isinstance(checkpoint.request, dict) else None
    )
    if checkpoint.status != "open" or on_timeout is None:
        return checkpoint
    timer = checkpoint_timer(checkpoint.checkpoint_id)
    now = store.now()
    if not any(t.timer_id == timer and t.due_at <= now for t in store.run_timers(run_id)):
        return checkpoint
    return store.decide_checkpoint(
        run_id, checkpoint.checkpoint_id, {"choice": on_timeout}, by=TIMEOUT_BY
    ).checkpoint


def child_signal(child_run_id: str) -> str:
    """The signal a child run sends its parent when it ends (no event name has a colon)."""
    return f"child:{child_run_id}"


def inherited_budget(own: Decimal | None, meta: dict[str, Json]) -> Decimal | None:
    """The tighter of a run's own budget and what its parent had left when it started it."""
    given = meta.get(PARENT_BUDGET)
    if given is None:
        return own
    parent = Decimal(str(given))
    return parent if own is None else min(own, parent)


ChildRunner = Callable[[str], "RunEnd"]
"""Runs (or resumes) a child run in this process until it stops, and says how it ended."""


@dataclass(eq=False)
class ChildCall:
    fiber: Fiber
    run_id: str
    state: ChildState


class ChildFaults(Protocol):
    """The run's fault plan, as a child run's creation uses it (`faults.FaultInjector`)."""

    def hand_to_child(
        self, program: IRProgram, workflow: str, child_id: str
    ) -> tuple[dict[str, Json], list[tuple[str, dict[str, Any]]]]: ...


class PauseRun(Protocol):
    """What the states that wait use of the run."""

    program: IRProgram
    run_id: str
    record: RunRecord
    store: Store
    journal: Journal
    runner: CallRunner
    budget: Budget
    converter: Converter
    evaluator: Evaluator
    fibers: dict[str, Fiber]
    deadline_at: float | None
    force_commit: bool
    after_commit: list[Callable[[CommitResult], None]]

    @property
    def calls(self) -> CallsPort: ...

    @property
    def faults(self) -> ChildFaults | None: ...

    def update_run_data(self, **changes: Any) -> None: ...

    def place(self, fiber: Fiber) -> str: ...

    def deliver(self, fiber: Fiber, value: Value) -> None: ...

    def fail(self, fiber: Fiber, failure: StepFailure) -> None: ...

    def give_up_failure_point(self, why: str) -> None: ...
    def deliver_to(
        self, fiber: Fiber, var: str | None, value: Value, entry: str | None
    ) -> None: ...


class Pauses:
    def __init__(self, run: PauseRun, child_runner: ChildRunner | None) -> None:
        self.run = run
        self.child_runner = child_runner
        self.taken_signals: set[str] = set()
        self._token_secret: bytes | None = None

    def _where(self, fiber: Fiber, state_id: str) -> str:
        """A pause's id: the state, and where it runs when that is not the main line."""
        place = self.run.place(fiber)
        if place == "[]":
            return state_id
        return f"{state_id}@{hashlib.sha1(place.encode()).hexdigest()[:10]}"

    def _pause(self, fiber: Fiber, note: dict[str, Any]) -> None:
        fiber.pending = note
        fiber.status = "paused"
        fiber.dirty = True
        self.run.force_commit = True

    def _timer_due(self, timer_id: str) -> bool:
        run = self.run
        timers = run.store.run_timers(run.run_id)
        now = run.store.now()
        return any(t.timer_id == timer_id and t.due_at <= now for t in timers)

    # --- checkpoints ------------------------------------------------------------------

    def checkpoint(self, fiber: Fiber, state: CheckpointState) -> None:
        run = self.run
        checkpoint_id = self._where(fiber, state.id)
        if fiber.pending and fiber.pending.get("checkpoint") == checkpoint_id:
            self._check_checkpoint(fiber, state, checkpoint_id)
            return
        scope = fiber.scope
        evaluate = run.evaluator.eval
        timeout_ms = self._timeout_ms(state, fiber, f"checkpoint `{state.name}`")
        request = {
            "kind": "checkpoint",
            "ask": to_text(evaluate(state.ask, scope)) if state.ask is not None else None,
            "show": [to_plain(evaluate(item, scope)) for item in state.show],
            "options": state.options,
            "assignee": (
                to_text(evaluate(state.assignee, scope)) if state.assignee is not None else None
            ),
            "timeout_ms": timeout_ms,
            "on_timeout": state.on_timeout,
            "step": state.id,
            "branch": fiber.label,
        }
        run.journal.open_checkpoints.append(OpenCheckpoint(checkpoint_id, state.name, request))
        if timeout_ms is not None:
            run.journal.set_timers.append(
                SetTimer(
                    checkpoint_timer(checkpoint_id),
                    timeout_ms / 1000,
                    # The choice rides with the timer, so that a worker deciding due
                    # timeouts in a batch reads it without the checkpoint's row.
                    {"checkpoint": checkpoint_id, "on_timeout": state.on_timeout},
                )
            )
        run.journal.event("checkpoint", {"id": checkpoint_id, **request}, state.id, fiber.branch)
        self._pause(fiber, {"checkpoint": checkpoint_id})

    def _timeout_ms(
        self, state: CheckpointState | WaitState, fiber: Fiber, what: str
    ) -> int | None:
        """The step's timeout in milliseconds: the literal, or its expression evaluated now
        (a `value_error` when it is null or negative); None waits without limit."""
        if state.timeout is None:
            return state.timeout_ms
        value = self.run.evaluator.eval(state.timeout, fiber.scope)
        return checked_ms(value, f"the `timeout` of {what}")

    def _check_checkpoint(self, fiber: Fiber, state: CheckpointState, checkpoint_id: str) -> None:
        run = self.run
        found = run.store.get_checkpoint(run.run_id, checkpoint_id)
        timer_id = checkpoint_timer(checkpoint_id)
        if found is not None and found.status == "open":
            if state.on_timeout is None or not self._timer_due(timer_id):
                fiber.status = "paused"
                return
            decided = run.store.decide_checkpoint(
                run.run_id, checkpoint_id, {"choice": state.on_timeout}, by=TIMEOUT_BY
            )
            found = decided.checkpoint
        if found is None:
            raise value_error(f"checkpoint `{checkpoint_id}` is missing from the journal")
        value = self._decision(state.name, state.options, found)
        run.journal.close_checkpoints.append(checkpoint_id)
        run.journal.cancel_timers.append(timer_id)
        run.journal.event("decided", to_plain(value), state.id, fiber.branch)
        # No commit of its own: the decision is committed in its checkpoint row, and a run
        # that stops before its next commit reads the same decision again.
        run.deliver(fiber, value)

    def _decision(self, name: str, options: list[str], checkpoint: Checkpoint) -> dict[str, Any]:
        raw = checkpoint.decision
        choice = raw.get("choice") if isinstance(raw, dict) else raw
        if choice not in options:
            raise value_error(
                f"checkpoint `{name}` was decided `{choice}`, not one of {', '.join(options)}"
            )
        comment = raw.get("comment") if isinstance(raw, dict) else None
        at = checkpoint.decided_at or self.run.store.now()
        return {
            "choice": choice,
            "approved": choice == "approve",
            "by": checkpoint.decided_by or "",
            "comment": comment,
            "at": Timestamp(round(at * 1000)),
        }

    # --- waits ------------------------------------------------------------------------

    def wait(self, fiber: Fiber, state: WaitState) -> None:
        if state.event is None:
            self._wait_timer(fiber, state)
        else:
            self._wait_event(fiber, state, state.event)

    def _wait_timer(self, fiber: Fiber, state: WaitState) -> None:
        run = self.run
        timer_id = f"wait:{self._where(fiber, state.id)}"
        if fiber.pending and fiber.pending.get("timer") == timer_id:
            if self._timer_due(timer_id):
                run.journal.cancel_timers.append(timer_id)
                run.journal.event("woke", {"timer": timer_id}, state.id, fiber.branch)
                run.deliver(fiber, None)
            else:
                fiber.status = "paused"
            return
        assert state.duration is not None
        ms = checked_ms(run.evaluator.eval(state.duration, fiber.scope), "`wait`")
        run.journal.set_timers.append(SetTimer(timer_id, ms / 1000))
        run.journal.event("wait", {"timer": timer_id, "ms": ms}, state.id, fiber.branch)
        self._pause(fiber, {"timer": timer_id})

    def _wait_event(self, fiber: Fiber, state: WaitState, event: str) -> None:
        run = self.run
        timer_id = f"event:{self._where(fiber, state.id)}"
        fresh = not (fiber.pending and fiber.pending.get("event") == event)
        # The key is evaluated once, when the wait starts, and kept in the fiber's note.
        key: str | None
        if not fresh:
            assert fiber.pending is not None
            key = fiber.pending.get("key")
        elif state.key is not None:
            key = to_text(run.evaluator.eval(state.key, fiber.scope))
        else:
            key = None
        keyed = {"key": key} if key is not None else {}
        for signal in run.store.pending_signals(run.run_id, event):
            if signal.signal_id in self.taken_signals or signal.key != key:
                continue
            value = None
            if state.payload is not None:
                try:
                    value = run.converter.inbound(signal.payload, state.payload, "signal")
                except ConversionError as e:
                    raise value_error(f"event `{event}` carried a bad payload: {e}") from None
            self.taken_signals.add(signal.signal_id)
            run.journal.consume_signals.append(signal.signal_id)
            if not fresh:
                run.journal.cancel_timers.append(timer_id)
            sender = {"by": signal.by} if signal.by is not None else {}
            run.journal.event(
                "signal",
                {"event": event, **keyed, "payload": signal.payload, **sender},
                state.id,
                fiber.branch,
            )
            run.force_commit = True
            run.deliver(fiber, value)
            return
        timed = state.timeout_ms is not None or state.timeout is not None
        if not fresh and timed and self._timer_due(timer_id):
            run.journal.cancel_timers.append(timer_id)
            run.journal.event("timed_out", {"event": event, **keyed}, state.id, fiber.branch)
            run.force_commit = True
            run.deliver(fiber, None)
            return
        if not fresh:
            fiber.status = "paused"
            return
        timeout_ms = self._timeout_ms(state, fiber, f"`wait {event}`")
        if timeout_ms is not None:
            run.journal.set_timers.append(SetTimer(timer_id, timeout_ms / 1000))
        run.journal.event(
            "wait",
            {"event": event, **keyed, "timeout_ms": timeout_ms},
            state.id,
            fiber.branch,
        )
        self._pause(fiber, {"event": event, **keyed, "timer": timer_id})

    # --- select -----------------------------------------------------------------------

    def select(self, fiber: Fiber, state: SelectState) -> None:
        """Open the select (its checkpoints, its timer), or see which arm won: a decided
        checkpoint, a signal (which closed the checkpoints when it was sent, or is closed
        with them here), the timer. Closing the checkpoints is the conditional write that
        decides against a person deciding one of them at the same moment."""
        where = self._where(fiber, state.id)
        note = fiber.pending
        if note is None or note.get("select") != where:
            self._open_select(fiber, state, where)
        else:
            self._check_select(fiber, state, note)

    def _open_select(self, fiber: Fiber, state: SelectState, where: str) -> None:
        run = self.run
        evaluate = run.evaluator.eval
        keys: list[str | None] = [
            to_text(evaluate(arm.key, fiber.scope)) if arm.key is not None else None
            for arm in state.arms
        ]
        found = self._select_signal(state, keys)
        if found is not None:  # it was in the mailbox before the select opened: it wins
            self._select_won(fiber, state, {"keys": keys}, found[0], signal=found[1])
            return
        events = [
            signal_address(str(arm.event), keys[i])
            for i, arm in enumerate(state.arms)
            if arm.kind == "event"
        ]
        ids = [
            select_checkpoint(where, str(arm.name))
            for arm in state.arms
            if arm.kind == "checkpoint"
        ]
        timeout_ms: int | None = None
        for arm in state.arms:
            if arm.kind == "after" and arm.timeout is not None:
                value = evaluate(arm.timeout, fiber.scope)
                timeout_ms = checked_ms(value, f"the `after` of select `{state.id}`")
            elif arm.kind == "after":
                timeout_ms = arm.timeout_ms
        for arm in state.arms:
            if arm.kind != "checkpoint":
                continue
            request = {
                "kind": "checkpoint",
                "ask": to_text(evaluate(arm.ask, fiber.scope)) if arm.ask is not None else None,
                "show": [to_plain(evaluate(item, fiber.scope)) for item in arm.show],
                "options": arm.options,
                "assignee": (
                    to_text(evaluate(arm.assignee, fiber.scope))
                    if arm.assignee is not None
                    else None
                ),
                "timeout_ms": None,
                "on_timeout": None,
                "step": state.id,
                "branch": fiber.label,
                # Read by the stores: a decision of one closes the others, a signal for
                # one of `events` closes them all (docs/runtime.md, "Select").
                "select": {"step": where, "checkpoints": ids, "events": events},
            }
            checkpoint_id = select_checkpoint(where, str(arm.name))
            run.journal.open_checkpoints.append(
                OpenCheckpoint(checkpoint_id, str(arm.name), request)
            )
        note: dict[str, Any] = {"select": where, "keys": keys, "events": events}
        if ids:
            note["checkpoints"] = ids
        if timeout_ms is not None:
            note["timer"] = select_timer(where)
            run.journal.set_timers.append(SetTimer(select_timer(where), timeout_ms / 1000))
        run.journal.event(
            "select",
            {"events": events, "checkpoints": ids, "timeout_ms": timeout_ms},
            state.id,
            fiber.branch,
        )
        self._pause(fiber, note)

    def _select_signal(
        self, state: SelectState, keys: list[str | None], signal_id: str | None = None
    ) -> tuple[int, Signal] | None:
        """The oldest unread signal one of the select's event arms takes (the one with
        `signal_id` when given), and that arm's index."""
        run = self.run
        for signal in run.store.pending_signals(run.run_id):
            if signal.signal_id in self.taken_signals:
                continue
            if signal_id is not None and signal.signal_id != signal_id:
                continue
            for index, arm in enumerate(state.arms):
                if arm.kind == "event" and arm.event == signal.name and keys[index] == signal.key:
                    return index, signal
        return None

    def _check_select(
        self, fiber: Fiber, state: SelectState, note: dict[str, Any], *, again: bool = False
    ) -> None:
        """See which arm won; `again` after a close found a checkpoint no longer open,
        which must then name the winner (decided, or closed with `lost_to`)."""
        run = self.run
        keys: list[str | None] = note.get("keys") or [None] * len(state.arms)
        ids: list[str] = note.get("checkpoints") or []
        lost_to: dict[str, Any] | None = None
        for index, arm in enumerate(state.arms):
            if arm.kind != "checkpoint":
                continue
            found = run.store.get_checkpoint(
                run.run_id, select_checkpoint(note["select"], str(arm.name))
            )
            if found is None:
                raise value_error(f"checkpoint `{arm.name}` of select `{state.id}` is missing")
            if found.status == "decided":
                value = self._decision(str(arm.name), arm.options, found)
                self._select_won(fiber, state, note, index, value=value)
                return
            decision = found.decision if isinstance(found.decision, dict) else {}
            if found.status == "closed" and isinstance(decision.get("lost_to"), dict):
                lost_to = decision["lost_to"]
        if lost_to is not None and lost_to.get("arm") == "event":
            taken = self._select_signal(state, keys, str(lost_to.get("signal")))
            if taken is not None:
                self._select_won(fiber, state, note, taken[0], signal=taken[1])
                return
        if lost_to is not None and lost_to.get("arm") == "after":
            self._select_won(fiber, state, note, _after_arm(state))
            return
        found_signal = self._select_signal(state, keys)
        if found_signal is not None:
            index, signal = found_signal
            reason = {"arm": "event", "event": signal.name, "key": signal.key}
            reason["signal"] = signal.signal_id
            if not ids or run.store.close_select(run.run_id, ids, {"lost_to": reason}) is None:
                self._select_won(fiber, state, note, index, signal=signal)
            else:  # a person decided first: the signal stays unread for a later wait
                self._lost_race(fiber, state, note, again)
            return
        timer = note.get("timer")
        if timer is not None and self._timer_due(timer):
            after: dict[str, Any] = {"lost_to": {"arm": "after"}}
            if not ids or run.store.close_select(run.run_id, ids, after) is None:
                self._select_won(fiber, state, note, _after_arm(state))
            else:
                self._lost_race(fiber, state, note, again)
            return
        fiber.status = "paused"

    def _lost_race(
        self, fiber: Fiber, state: SelectState, note: dict[str, Any], again: bool
    ) -> None:
        if again:
            raise value_error(f"select `{state.id}` has a closed checkpoint that names no winner")
        self._check_select(fiber, state, note, again=True)

    def _select_won(
        self,
        fiber: Fiber,
        state: SelectState,
        note: dict[str, Any],
        index: int,
        *,
        value: Value = None,
        signal: Signal | None = None,
    ) -> None:
        """The arm `index` won: close what the select opened, take the signal, and go on
        in the arm's body with its variable bound."""
        run = self.run
        arm = state.arms[index]
        run.journal.close_checkpoints.extend(note.get("checkpoints") or [])
        if note.get("timer"):
            run.journal.cancel_timers.append(note["timer"])
        # Journaled as a wait's or a checkpoint's outcome is (`signal`, `decided`,
        # `timed_out`), with the arm that won, so replays and scenarios read it as theirs.
        data: dict[str, Any] = {"select_arm": index}
        kind = "timed_out"
        if signal is not None:
            value = True
            if arm.payload is not None:
                try:
                    value = run.converter.inbound(signal.payload, arm.payload, "signal")
                except ConversionError as e:
                    raise value_error(f"event `{arm.event}` carried a bad payload: {e}") from None
            self.taken_signals.add(signal.signal_id)
            run.journal.consume_signals.append(signal.signal_id)
            data.update(event=signal.name, key=signal.key, payload=signal.payload)
            kind = "signal"
        elif arm.kind == "checkpoint":
            plain = to_plain(value)
            data.update(plain if isinstance(plain, dict) else {}, checkpoint=arm.name)
            kind = "decided"
        run.journal.event(kind, data, state.id, fiber.branch)
        run.force_commit = True
        run.deliver_to(fiber, arm.var, value, arm.entry)

    def callback_token(self, event: str, key: Value = None) -> str:
        """`callback_token(event, key)`: the token that signals this run's `wait event for
        key`. Derived, not drawn: the same run, event and key give the same token in every
        process, so a call that handed it out and is made again after a crash hands out
        the same one, and nothing has to be committed before the call."""
        if self._token_secret is None:
            self._token_secret = self.run.store.callback_secret()
        text = None if key is None else to_text(key)
        return make_token(self._token_secret, self.run.run_id, event, text)

    # --- retry delays -------------------------------------------------------------------

    def retry_later(self, fiber: Fiber, step: str, attempt: int, delay_ms: int) -> None:
        """Wait for a call's next attempt on a durable timer; the call state runs again
        when it is due (`retry_due`), with the attempts made so far."""
        timer_id = f"retry:{self._where(fiber, step)}"
        journal = self.run.journal
        # The previous retry's timer, cancelled when it woke, has the same id: a store applies
        # cancels after sets, so that cancel must not take the new timer with it.
        if timer_id in journal.cancel_timers:
            journal.cancel_timers.remove(timer_id)
        journal.set_timers.append(SetTimer(timer_id, delay_ms / 1000))
        self._pause(
            fiber, {**(fiber.pending or {}), "retry": {"timer": timer_id, "attempt": attempt}}
        )

    def retry_due(self, fiber: Fiber, retry: dict[str, Any]) -> bool:
        """Whether a call's retry timer is due; if so the call may be attempted again."""
        timer_id = retry["timer"]
        if not self._timer_due(timer_id):
            fiber.status = "paused"
            return False
        run = self.run
        run.journal.cancel_timers.append(timer_id)
        run.journal.event("woke", {"timer": timer_id}, fiber.at, fiber.branch)
        fiber.pending = {k: v for k, v in (fiber.pending or {}).items() if k != "retry"} or None
        fiber.dirty = True
        return True

    # --- repairs ----------------------------------------------------------------------

    def repair(self, fiber: Fiber, call: Call) -> None:
        """A `once` effect with an unknown outcome: act on the repair decision, if any."""
        run = self.run
        assert fiber.pending is not None
        checkpoint_id = fiber.pending["repair"]
        found = run.store.get_checkpoint(run.run_id, checkpoint_id)
        if found is None or found.status == "open":
            fiber.status = "paused"
            return
        raw = found.decision if isinstance(found.decision, dict) else {"choice": found.decision}
        by = found.decided_by or ""
        run.journal.close_checkpoints.append(checkpoint_id)
        run.journal.event(
            "decided", {"repair": checkpoint_id, **raw, "by": by}, call.step, fiber.branch
        )
        run.force_commit = True
        choice = raw.get("choice")
        if choice == "mark_done":
            run.calls.mark_done(call, raw.get("result"), by)
        elif choice == "retry":
            run.calls.retry_after_repair(call)
        else:
            message = f"the outcome of `{call.decl.name}` was unknown; {by or 'a person'} failed it"
            run.fail(fiber, StepFailure(TOOL_ERROR, message))

    # --- child runs -------------------------------------------------------------------

    def child(self, fiber: Fiber, state: ChildState) -> None:
        run = self.run
        if self.child_runner is None:
            raise StepFailure(CHILD_FAILED, "child runs need a child runner")
        child_id = f"{run.run_id}.{self._where(fiber, state.id)}"
        if state.detached:
            self._start_detached(fiber, state, child_id)
            return
        fiber.status = "call"
        fiber.dirty = True
        if fiber.pending and fiber.pending.get("child") == child_id:
            self._start_child(ChildCall(fiber, child_id, state))
            return
        workflow = run.program.workflows[state.workflow]
        args = {name: run.evaluator.eval(expr, fiber.scope) for name, expr in state.args.items()}
        meta = {
            k: v for k, v in run.record.meta.items() if k not in (PARENT_DEADLINE, PARENT_BUDGET)
        }
        meta[WIRE_NONCE] = new_wire_nonce()  # a run of its own: its own keys on the wire
        if run.faults is not None:
            share, handed = run.faults.hand_to_child(run.program, workflow.name, child_id)
            meta.update(share)
            for kind, data in handed:  # in the commit that creates the child
                run.journal.event(kind, data, state.id, fiber.branch)
        if run.deadline_at is not None:
            meta[PARENT_DEADLINE] = run.deadline_at
        budget = run.budget
        if budget.limit is not None:
            meta[PARENT_BUDGET] = str(
                max(budget.limit - budget.spent - budget.reserved, Decimal(0))
            )
        self._create_run(fiber, state, child_id, args, meta, "child", parent=run.run_id)
        fiber.pending = {"child": child_id}
        run.force_commit = True
        run.after_commit.append(partial(self._after_create, ChildCall(fiber, child_id, state)))

    def _start_detached(self, fiber: Fiber, state: ChildState, child_id: str) -> None:
        """`start child(...)`: create the child run in this step's commit, with the
        fiber already past the step, so a crash before the commit creates nothing and
        one after it finds the child made and the handle assigned. The child has no
        parent link (the parent neither waits for it nor cancels it, and its end wakes
        nobody) and inherits neither deadline nor budget: it is a run of its own, which
        `started_by` in its meta traces back. A worker picks it up like any new run."""
        run = self.run
        args = {name: run.evaluator.eval(expr, fiber.scope) for name, expr in state.args.items()}
        self._create_run(fiber, state, child_id, args, {STARTED_BY: run.run_id}, "child_started")
        run.force_commit = True
        # The fiber goes on after this commit (`deliver` queues it again).
        run.deliver(fiber, child_id)

    def _create_run(
        self,
        fiber: Fiber,
        state: ChildState,
        child_id: str,
        args: dict[str, Value],
        meta: dict[str, Json],
        event: str,
        parent: str | None = None,
    ) -> None:
        """Create the child run `state` names in this step's commit, and journal `event`."""
        run = self.run
        workflow = run.program.workflows[state.workflow]
        run.journal.create_runs.append(
            NewRun(
                child_id,
                workflow.name,
                to_plain(args),
                workflow_class=workflow.options.class_ or "",
                ir_hash=run.program.hash,
                parent_run_id=parent,
                meta=meta,
                limit=workflow.options.limit,
                needs=run_needs(run.program, meta),
            )
        )
        run.journal.event(
            event, {"run": child_id, "workflow": workflow.name}, state.id, fiber.branch
        )

    def _after_create(self, child: ChildCall, result: CommitResult) -> None:
        if child.fiber.status == "call" and child.fiber.pending == {"child": child.run_id}:
            self._start_child(child)

    def _start_child(self, child: ChildCall) -> None:
        assert self.child_runner is not None
        job = CallJob(
            child, f"child:{child.state.workflow}", partial(self.child_runner, child.run_id)
        )
        child.fiber.job = job
        self.run.runner.submit(job)

    def child_done(self, done: Completion) -> None:
        child: ChildCall = done.job.owner
        fiber = child.fiber
        if fiber.job is not done.job:
            return
        fiber.job = None
        run = self.run
        run.force_commit = True
        if not done.ok:
            message = f"child run `{child.run_id}` stopped: {done.value}"
            run.fail(fiber, StepFailure(CHILD_FAILED, message))
            return
        end = done.value
        if end.status == "waiting":
            fiber.status = "paused"
            return
        run.journal.consume_signals.append(child_signal(child.run_id))
        self._add_child_cost(child.run_id)
        run.journal.event(
            "child_ended", {"run": child.run_id, "status": end.status}, child.state.id, fiber.branch
        )
        if end.status == "completed":
            workflow = run.program.workflows[child.state.workflow]
            try:
                value = run.converter.inbound(end.result, workflow.returns, "result", closed=False)
            except ConversionError as e:
                run.fail(fiber, StepFailure(CHILD_FAILED, f"child run `{child.run_id}`: {e}"))
                return
            run.deliver(fiber, value)
        else:
            error = end.error or {}
            message = f"child run `{child.run_id}` {end.status}: {error.get('message', '')}"
            kind = error.get("kind")
            inherited = kind if kind in _INHERITED_KINDS else CHILD_FAILED
            # The child's error is the cause: `e.cause.kind` names a declared error it raised.
            run.fail(fiber, StepFailure(inherited, message, cause=error or None))

    def _add_child_cost(self, child_run_id: str) -> None:
        """Count what the child spent against the parent's budget."""
        record = self.run.store.get_run(child_run_id)
        try:
            cost = Decimal(str(record.meta.get("cost") or 0)) if record is not None else Decimal(0)
        except InvalidOperation:
            cost = Decimal(0)
        if cost:
            self.run.budget.spent += cost
            self.run.update_run_data(spent=self.run.budget.spent)

    def tell_parent(self) -> None:
        """A child run is ending: wake its parent (in the commit that ends the child)."""
        parent = self.run.record.parent_run_id
        if parent is None:
            return
        name = child_signal(self.run.run_id)
        # The parent reads how the child ended from the child's record; the signal only wakes it.
        self.run.journal.send_signals.append(SendSignal(parent, name, None, name))

    # --- cancelling and describing ---------------------------------------------------

    def abandon(self, fiber: Fiber) -> None:
        """The paused fiber is being cancelled: withdraw what it was waiting for."""
        note = fiber.pending or {}
        journal = self.run.journal
        for key in ("checkpoint", "repair"):
            if key in note:
                journal.close_checkpoints.append(note[key])
                journal.cancel_timers.append(checkpoint_timer(note[key]))
        journal.close_checkpoints.extend(note.get("checkpoints") or [])
        if "timer" in note:
            journal.cancel_timers.append(note["timer"])
        if "retry" in note:
            journal.cancel_timers.append(note["retry"]["timer"])
        if "child" in note:
            self.run.store.request_cancel(note["child"], by=f"run:{self.run.record.run_id}")
            self.run.give_up_failure_point(f"its unwinding cancelled child run `{note['child']}`")

    def describe(self) -> list[Json]:
        """What each paused fiber waits for, for the journal and `mnc show`."""
        out: list[Json] = []
        for fiber in self.run.fibers.values():
            if fiber.status != "paused" or not fiber.pending:
                continue
            note = {k: v for k, v in fiber.pending.items() if k not in ("effect", "agent")}
            if "select" in note:
                # What the select waits for, in words: its events, checkpoints and timer.
                waits = [f"event {address}" for address in note.get("events") or []]
                waits += [f"checkpoint {c}" for c in note.get("checkpoints") or []]
                waits += [f"timer {note['timer']}"] if note.get("timer") else []
                note = {"select": note["select"], "first of": waits}
            out.append({"branch": fiber.label, "step": fiber.at, **note})
        return out
