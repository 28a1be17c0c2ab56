"""The `call` state: tools, effects and agents, with retries, budget and the ledger.

- A **tool** is pure: its result is journaled with the next commit (a crash before it
  means the tool runs again), except that a tool with a declared `cost` or a slow one
  is committed at once.
- An **effect** commits its intent (with everything before it) before the call, and
  its result with its ledger row right after; the next keyed effect's intent, when its
  fiber reaches it through pure states only, rides in that result commit
  (`Interpreter._ride`). The intent commit is where the ledger is
  consulted: a key already `done` returns its stored result without a call; a key used
  with other arguments is a `key_conflict`. A keyed effect whose intent survived a crash
  is called again with the same key; a `once` effect in that position has an unknown
  outcome and opens a repair checkpoint instead of calling twice.
- An **agent** is a conversation with its model (`agents.py`); the tools and effects
  the model calls come back here as calls of their own, with `session` set so that their
  outcome goes back to the conversation instead of the fiber.

Every attempt reserves its worst-case cost from the budget first. On an uncaught
failure of the run, the `compensate` calls of its committed effects run here too, in
reverse order, each a keyed effect with its own intent and result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any, Protocol

from mnlang.errors import TIMEOUT, TOOL_ERROR, MnError, is_error_name, kind_of
from mnlang.ir.base import RetryIR
from mnlang.ir.model import EffectIR, ToolIR
from mnlang.ir.states import CallState, State
from mnlang.redact import redact, redact_json
from mnlang.runtime import faults
from mnlang.runtime import retry as retries
from mnlang.runtime.agents import AgentCalls, AgentRun, AgentTurn
from mnlang.runtime.call_threads import CallJob, Completion
from mnlang.runtime.convert import ConversionError, to_tool
from mnlang.runtime.effects import (
    args_hash,
    conflict,
    effect_key,
    ledger_key,
    noted_template_key,
    noted_wire_key,
    wire_key,
)
from mnlang.runtime.evaluate import MapEnv
from mnlang.runtime.failures import (
    FAILURE,
    StepFailure,
    exception_message,
    exception_name,
    trimmed_traceback,
)
from mnlang.runtime.fibers import Fiber, Outcome, outcome_from_json, outcome_to_json
from mnlang.runtime.pauses import DURABLE_DELAY_MS
from mnlang.runtime.ports import Call, CallKind
from mnlang.runtime.timeouts import call_timeout_ms
from mnlang.runtime.tools import (
    AsyncCancel,
    ResolvedTool,
    ToolContext,
    ToolLoadError,
    call_in_process,
    call_in_thread,
    resolve,
)
from mnlang.runtime.values import Value, from_stored, to_plain
from mnlang.secrets import SecretUnavailable
from mnlang.stores.base import CommitResult, LedgerPut, LedgerRow, OpenCheckpoint
from mnlang.telemetry.spans import SPAN_DATA, AttemptSpans

REPAIR_OPTIONS = ["mark_done", "retry", "fail"]


class CallRun(AgentRun, Protocol):
    """What the `call` state uses of the run (its agents' conversations use the rest)."""

    root: Fiber | None
    outcome: Outcome | None
    ride: bool
    wire_nonce: str
    spans: AttemptSpans

    def wake(self, fiber: Fiber) -> None: ...

    def lose_now(self, fiber: Fiber) -> None: ...

    def on_failure(self, root: Fiber, failure: StepFailure) -> bool: ...


@dataclass(eq=False)
class Reconciliation:
    """The question a `reconcile` tool answers for an effect whose outcome is uncertain.

    `failure` is the attempt's failure (a timeout), None after a crash between the
    intent and the result; `failed` is the journal data of that attempt.
    """

    call: Call
    why: str
    failure: StepFailure | None = None
    failed: dict[str, Any] = field(default_factory=dict)
    args: dict[str, Any] = field(default_factory=dict)
    """The reconcile tool's arguments, as it receives them."""
    about: EffectIR | None = None
    """Before a compensation (`call` is the compensation): the effect asked about, whose
    call was abandoned when the run was cancelled; `about_args`, `about_key` its call's."""
    about_args: dict[str, Value] = field(default_factory=dict)
    about_key: str | None = None


class Calls:
    def __init__(self, run: CallRun) -> None:
        self.run = run
        self.program = run.program
        self.resolved: dict[str, ResolvedTool] = {}
        self.agents = AgentCalls(run)

    # --- starting ---------------------------------------------------------------------

    def begin(self, fiber: Fiber, state: CallState) -> None:
        """Execute a `call` state (again, after a resume, when its fiber has notes)."""
        retry = (fiber.pending or {}).get("retry")
        if retry is not None:
            self._retry_when_due(fiber, state, retry)
            return
        if state.callee_kind == "effect":
            effect = self.program.effects[state.callee]
            pending = fiber.pending or {}
            if "repair" in pending:
                self.run.pauses.repair(fiber, self._call(fiber, effect, state, pending))
            elif "effect" in pending:
                self._resume_effect(self._call(fiber, effect, state, pending))
            else:
                args = self._args(fiber, state)
                self._intent(self._new_call(fiber, "effect", effect, state, args))
            return
        if state.callee_kind == "agent":
            self.agents.begin(fiber, state, partial(self._args, fiber, state))
            return
        tool = self.program.tools[state.callee]
        call = self._new_call(fiber, "tool", tool, state, self._args(fiber, state))
        self._attempt(self._counted(call, fiber.pending))

    def _retry_when_due(self, fiber: Fiber, state: CallState, retry: dict[str, Any]) -> None:
        """A retry that waited on a durable timer: attempt again once the timer is due."""
        if not self.run.pauses.retry_due(fiber, retry):
            return
        if state.callee_kind == "agent":
            # The agent's notes hold its attempt and conversation: it sends the next request.
            self.agents.begin(fiber, state, partial(self._args, fiber, state))
            return
        attempt = int(retry["attempt"])
        if state.callee_kind == "effect":
            effect = self.program.effects[state.callee]
            call = self._call(fiber, effect, state, fiber.pending)
            call.attempt = attempt
            self._hold(call)
            # Another run may have committed a global key meanwhile: consult the ledger.
            scope_run = None if effect.scope == "global" else self.run.run_id
            assert call.key is not None
            self._from_ledger(
                call, self.run.store.ledger_get(call.key, run_id=scope_run), fresh=True
            )
            return
        tool = self.program.tools[state.callee]
        call = self._counted(
            self._new_call(fiber, "tool", tool, state, self._args(fiber, state)), fiber.pending
        )
        call.attempt = attempt
        self._attempt_or_fail(call)

    @staticmethod
    def _counted(call: Call, pending: Any) -> Call:
        """The call with the tally of its retries that the fiber's notes keep (after a
        resume), and the attempts made by then."""
        note = (pending or {}).get("tally")
        if note is not None:
            call.tally = retries.Tally.from_json(note)
            call.attempt = max(call.attempt, int(note["attempt"]))
        return call

    def _keep_tally(self, call: Call) -> None:
        """Note the call's tally in its fiber, committed with whatever the run commits next.
        A call that an agent or a compensation makes retries in memory: it keeps none."""
        if call.tally is None or call.session is not None or call.compensation is not None:
            return
        fiber = call.fiber
        note = {"attempt": call.attempt, **call.tally.to_json()}
        fiber.pending = {**(fiber.pending or {}), "tally": note}
        fiber.dirty = True

    def _args(self, fiber: Fiber, state: CallState) -> dict[str, Value]:
        evaluate = self.run.evaluator.eval
        return {name: evaluate(expr, fiber.scope) for name, expr in state.args.items()}

    def _new_call(
        self,
        fiber: Fiber,
        kind: CallKind,
        decl: ToolIR,
        state: CallState,
        args: dict[str, Value],
    ) -> Call:
        timeout_ms = call_timeout_ms(decl, args, self.run.evaluator)
        return Call(fiber, kind, decl, state.id, args, state.retry, timeout_ms)

    def _call(self, fiber: Fiber, effect: EffectIR, state: CallState, pending: Any) -> Call:
        """The call an effect's committed intent describes (after a resume)."""
        call = self.noted_call(fiber, effect, state.id, state.retry, pending["effect"])
        return self._counted(call, pending)

    def noted_call(
        self, fiber: Fiber, effect: EffectIR, step: str, retry: RetryIR, noted: Any, **more: Any
    ) -> Call:
        """The call an effect's intent noted by `_note` describes, for `step` (after a
        resume); `more` are the `Call`'s other fields (its agent session, its compensation).
        Its timeout is computed from its arguments as when the call was first made."""
        args = {name: from_stored(value) for name, value in noted["args"].items()}
        return Call(
            fiber,
            "effect",
            effect,
            step,
            args,
            retry,
            call_timeout_ms(effect, args, self.run.evaluator),
            key=noted["key"],
            template=noted_template_key(noted),
            wire=noted_wire_key(noted),
            hash=noted["hash"],
            attempt=noted["attempt"],
            **more,
        )

    # --- effects: intent, ledger, result ------------------------------------------------

    def _intent(self, call: Call) -> None:
        """Commit the intent before the call; `_after_intent` reads the ledger's answer."""
        run, fiber, effect = self.run, call.fiber, call.effect
        place = f"{call.step}@{run.place(fiber)}"
        call.template = effect_key(effect, call.args, run.evaluator, place)
        call.key = ledger_key(effect, call.template, call.asked)
        call.wire = wire_key(call.key, effect.scope, run.wire_nonce)
        call.hash = args_hash(call.args)
        fiber.pending = {**(fiber.pending or {}), "effect": self._note(call)}
        # Committed with the intent: the first try's time, for `max_elapsed` after a crash.
        call.tally = retries.new_tally(call.retry, run.now_ms)
        self._keep_tally(call)
        index = run.journal.put_ledger(
            LedgerPut(call.key, call.hash, "intent", effect.scope == "global", None, call.step)
        )
        run.journal.event(
            "intent",
            {
                "effect": effect.name,
                "key": call.key,
                "wire_key": call.wire,
                "args": to_plain(call.args),
            },
            call.step,
            fiber.branch,
        )
        self._hold(call)
        run.force_commit = True
        run.after_commit.append(partial(self._after_intent, call, index))

    def _note(self, call: Call) -> dict[str, Any]:
        """What the fiber's notes keep of an effect between its intent and its result."""
        return {
            "args": self.run.stored_args(call.args),
            "key": call.key,
            "template": call.template,
            "wire": call.wire,
            "hash": call.hash,
            "attempt": call.attempt,
        }

    def _hold(self, call: Call) -> None:
        call.fiber.status = "call"
        call.fiber.job = call
        call.fiber.dirty = True

    def _after_intent(self, call: Call, index: int, result: CommitResult) -> None:
        if call.fiber.job is not call:
            return  # the fiber was cancelled meanwhile
        row = result.ledger[index]
        self._from_ledger(call, row, fresh=True)

    def _from_ledger(self, call: Call, row: LedgerRow | None, *, fresh: bool) -> None:
        """Act on the ledger's row for the key: replay, conflict, repair or call."""
        effect = call.effect
        assert call.key is not None
        if row is not None and row.args_hash != call.hash:
            self._failed(call, conflict(effect, call.key, row), commit=False)
        elif row is not None and row.status == "done":
            self._replay(call, row)
        elif effect.reconcile is not None and not fresh:
            self._reconcile(
                Reconciliation(call, "the run stopped between the intent and the result")
            )
        elif effect.once and (not fresh or (row is not None and row.status == "unknown")):
            self.unknown_outcome(call, "the run stopped between the call's intent and its result")
        else:
            if not fresh:
                self.run.journal.event(
                    "reattempt",
                    {"effect": effect.name, "key": call.key, "reason": "resumed after its intent"},
                    call.step,
                    call.fiber.branch,
                )
            self._attempt_or_fail(call)

    def _resume_effect(self, call: Call) -> None:
        effect = call.effect
        assert call.key is not None
        scope_run = None if effect.scope == "global" else self.run.run_id
        self._hold(call)
        self._from_ledger(call, self.run.store.ledger_get(call.key, run_id=scope_run), fresh=False)

    def _replay(self, call: Call, row: LedgerRow) -> None:
        """A key already committed: its stored result, no call."""
        try:
            value = self.run.converter.inbound(
                row.result, call.decl.returns, "result", closed=False
            )
        except ConversionError as e:
            self._failed(call, StepFailure(TOOL_ERROR, f"the ledger's result: {e}"), commit=False)
            return
        self.run.journal.event(
            "replayed",
            {"effect": call.decl.name, "key": call.key, "result": row.result},
            call.step,
            call.fiber.branch,
        )
        self._succeeded(call, value)

    def unknown_outcome(self, call: Call, why: str) -> None:
        """A `once` effect that may or may not have happened: open a repair checkpoint."""
        run, fiber = self.run, call.fiber
        assert call.key is not None and call.hash is not None
        checkpoint_id = f"repair:{call.step}@{run.place(fiber)}"
        request = {
            "kind": "repair",
            "effect": call.decl.name,
            "key": call.key,
            "args": to_plain(call.args),
            "step": call.step,
            "branch": fiber.label,
            "reason": why,
            "options": REPAIR_OPTIONS,
            "result_type": str(call.decl.returns),
        }
        fiber.pending = {
            **(fiber.pending or {}),
            "effect": self._note(call),
            "repair": checkpoint_id,
        }
        fiber.job = None
        fiber.status = "paused"
        fiber.dirty = True
        global_key = call.effect.scope == "global"
        run.journal.put_ledger(
            LedgerPut(call.key, call.hash, "unknown", global_key, None, call.step)
        )
        run.journal.open_checkpoints.append(OpenCheckpoint(checkpoint_id, "repair", request))
        run.journal.event("repair_opened", request, call.step, fiber.branch)
        run.force_commit = True

    def mark_done(self, call: Call, result: Any, by: str) -> None:
        """A person says the effect happened, with this result (a repair decision)."""
        try:
            value = self.run.converter.inbound(result, call.decl.returns, "result", closed=True)
        except ConversionError as e:
            self._failed(call, StepFailure(TOOL_ERROR, f"the repair's result: {e}"), commit=True)
            return
        self._effect_done(call, value, {"by": by})

    def retry_after_repair(self, call: Call) -> None:
        """A person asks to call the effect again."""
        assert call.key is not None and call.hash is not None
        global_key = call.effect.scope == "global"
        self.run.journal.put_ledger(
            LedgerPut(call.key, call.hash, "intent", global_key, None, call.step)
        )
        # Keep the intent, and an agent's conversation when a model called the effect.
        pending = call.fiber.pending or {}
        call.fiber.pending = {k: v for k, v in pending.items() if k in ("effect", "agent")}
        self._attempt_or_fail(call)

    # --- reconciliation ---------------------------------------------------------------

    def _reconcile(self, question: Reconciliation) -> None:
        """Ask the effect's `reconcile` tool, `settle` after the uncertain attempt, whether
        the keyed action happened; `_reconciled` acts on the answer."""
        run, call = self.run, question.call
        about = question.about or call.effect
        reconcile = about.reconcile
        assert reconcile is not None
        tool = self.program.tools[reconcile.tool]
        env = MapEnv(question.about_args if question.about is not None else call.args)
        values = {name: run.evaluator.eval(e, env) for name, e in reconcile.args.items()}
        args = {name: to_tool(value) for name, value in values.items()}
        key = question.about_key if question.about is not None else call.key
        # The lookup asks the receiver about what was sent: the wire key, when it is known.
        wire = call.wire if question.about is None else None
        ctx = ToolContext(
            run.run_id,
            call.step,
            call.attempt,
            key,
            key_scope=about.scope,
            wire_key=wire,
            template_key=call.template if question.about is None else key,
            traceparent=run.spans.run_context().header(),
        )
        question.args = args
        doubles = run.config.doubles
        job_run: Any = doubles.stand_in(tool, args, 1) if doubles is not None else None
        try:
            timeout_ms = call_timeout_ms(tool, values, run.evaluator)
            if job_run is None:
                job_run = partial(call_in_thread, self._resolve(tool), args, ctx)
        except StepFailure as failure:
            self._reconciled(question, "unknown", None, failure.message)
            return
        timeout_s = timeout_ms / 1000 if timeout_ms is not None else None
        job = CallJob(question, tool.name, job_run, timeout_s, tool.limit)
        self._hold(call)
        call.fiber.job = job
        settle_s = (reconcile.settle_ms or 0) / 1000
        run.runner.submit(job, settle_s)

    def _reconcile_done(self, done: Completion) -> None:
        question: Reconciliation = done.job.owner
        call = question.call
        if call.fiber.job is not done.job:
            return  # abandoned
        call.fiber.job = None
        about = question.about or call.effect
        reconcile = about.reconcile
        assert reconcile is not None
        self.run.journal.event(
            "tool",
            {
                "tool": reconcile.tool,
                "args": question.args,
                "result": to_plain(done.value) if done.ok else None,
                "attempt": 1,
                "ms": round(done.elapsed_ms, 3),
            },
            call.step,
            call.fiber.branch,
        )
        if not done.ok:
            error: BaseException = done.value
            self._reconciled(question, "unknown", None, str(error) or type(error).__name__)
        elif done.value is None:
            self._reconciled(question, "not_done", None, "")
        else:
            try:
                value = self.run.converter.inbound(
                    done.value, about.returns, "result", closed=False
                )
            except ConversionError as e:
                why = f"`{reconcile.tool}` answered a value that is not a {about.returns}: {e}"
                self._reconciled(question, "unknown", None, why)
                return
            self._reconciled(question, "done", value, "")

    def _reconciled(self, question: Reconciliation, answer: str, value: Value, why: str) -> None:
        """done: the action happened, with this result; not done: call again or fail as
        the retry policy says; unknown: call again while the key allows it, else repair."""
        call, run = question.call, self.run
        about = question.about
        data: dict[str, Any] = {
            "effect": about.name if about is not None else call.decl.name,
            "key": question.about_key if about is not None else call.key,
            "answer": answer,
            "reason": question.why,
        }
        if answer == "done":
            data["result"] = to_plain(value)
        elif why:
            data["message"] = why
        run.journal.event("reconciled", data, call.step, call.fiber.branch)
        self._hold(call)
        if about is not None:
            # Before undoing a call abandoned by the cancellation: only what may have happened.
            if answer == "not_done":
                self._compensation_ended(call)
            else:
                self._intent(call)
            return
        if answer == "done":
            # The effect happened: journaled as a call of it, with the receiver's result.
            happened = {
                "effect": call.decl.name,
                "args": to_plain(call.args),
                "result": to_plain(value),
                "attempt": call.attempt,
                "key": call.key,
                "reconciled": True,
            }
            kind = "compensated" if call.compensation is not None else "effect"
            run.journal.event(kind, happened, call.step, call.fiber.branch)
            self._effect_done(call, value, {})
            return
        failure = question.failure
        if failure is None:  # after a crash
            if answer == "unknown" and call.effect.once:
                self.unknown_outcome(call, f"{question.why}; reconcile: {why}")
                return
            self._attempt_or_fail(call)
            return
        last = self._verdict(call, failure).delay_ms is None
        if answer == "unknown" and (call.effect.once or last):
            self.unknown_outcome(call, f"{question.why}; reconcile: {why}")
            return
        self._retry_or_fail(call, failure, question.failed)

    # --- attempts ---------------------------------------------------------------------

    def _attempt_or_fail(self, call: Call, delay_s: float = 0.0) -> None:
        try:
            self._attempt(call, delay_s)
        except StepFailure as failure:
            self._failed(call, failure, commit=call.kind == "effect")

    def _attempt(self, call: Call, delay_s: float = 0.0) -> None:
        run = self.run
        call.attempt += 1
        if call.tally is None:
            call.tally = retries.new_tally(call.retry, run.now_ms)
        decl = call.decl
        doubles = run.config.doubles
        stand_in = None
        args: dict[str, Any] = {}
        if doubles is not None:  # a test's stand-in sees a secret's references, not its value
            shown = {name: to_tool(value, reveal=False) for name, value in call.args.items()}
            stand_in = doubles.stand_in(decl, shown, call.attempt)
        if stand_in is None:
            try:
                args = {name: to_tool(value) for name, value in call.args.items()}
            except SecretUnavailable as e:
                raise StepFailure(TOOL_ERROR, str(e)) from None
        call.reserved = run.budget.reserve(decl.cost or Decimal(0), f"`{decl.name}`")
        call.span, traceparent = run.spans.begin()
        ctx = ToolContext(
            run.run_id,
            call.step,
            call.attempt,
            call.template,
            key_scope=call.effect.scope if call.kind == "effect" else None,
            wire_key=call.wire,
            template_key=call.template,
            traceparent=traceparent,
        )
        timeout_s = call.timeout_ms / 1000 if call.timeout_ms is not None else None
        job_timeout = timeout_s
        cancel: AsyncCancel | None = None
        if stand_in is not None:
            job_run: Any = stand_in
        elif decl.isolation == "process":
            job_run = partial(call_in_process, self._resolve(decl), args, ctx, timeout_s)
            job_timeout = None
        else:
            cancel = AsyncCancel()
            job_run = partial(call_in_thread, self._resolve(decl), args, ctx, timeout_s, cancel)
        job = CallJob(call, decl.name, job_run, job_timeout, decl.limit)
        if cancel is not None:
            job.data["cancel"] = cancel
        self._hold(call)
        call.fiber.job = job
        if run.faults is None:  # the common case: no call site to build (`place` walks frames)
            run.runner.submit(job, delay_s)
            return
        site = faults.CallSite(
            call.kind, decl.name, call.step, call.fiber.branch, run.place(call.fiber), call.attempt
        )
        faults.submit(run, call.fiber, job, delay_s, site)

    def _resolve(self, tool: ToolIR) -> ResolvedTool:
        found = self.resolved.get(tool.name)
        if found is None:
            try:
                found = resolve(self.program, tool)
            except ToolLoadError as e:
                raise StepFailure(TOOL_ERROR, str(e)) from None
            self.resolved[tool.name] = found
        return found

    def effect_unsettled(self, fiber: Fiber) -> bool:
        """Whether the fiber has an effect whose intent is committed and whose outcome is
        not yet in the ledger, that it is working on now: a call or its reconcile tool in
        flight, a repair open, or the intent resumed after a crash. A quorum's loser then
        waits for that outcome; a keyed effect waiting to retry after a failed attempt is
        not counted: its fiber is cancelled as a cancelled run's would be."""
        job = fiber.job
        if fiber.status == "call" and isinstance(job, CallJob):
            owner = job.owner
            if isinstance(owner, Reconciliation):
                return owner.about is None and owner.call.kind == "effect"
            return isinstance(owner, Call) and owner.kind == "effect"
        pending = fiber.pending or {}
        return "effect" in pending and "retry" not in pending and fiber.status != "call"

    def abandon(self, fiber: Fiber) -> None:
        """Stop waiting for the fiber's call (it was cancelled)."""
        job = fiber.job
        if isinstance(job, CallJob):
            self.run.runner.abandon(job)
            if isinstance(job.owner, Call | AgentTurn):
                self.run.budget.settle(job.owner.reserved, Decimal(0))
            owner = job.owner
            uncertain = owner.call if isinstance(owner, Reconciliation) else owner
            if isinstance(uncertain, Call):
                self._owe_if_it_happened(uncertain)
        fiber.job = None

    def abandon_intent(self, fiber: Fiber, state: State) -> None:
        """A fiber cancelled with an effect's intent committed and no call running."""
        if isinstance(state, CallState) and state.callee_kind == "effect":
            call = self._call(fiber, self.program.effects[state.callee], state, fiber.pending)
            call.attempt = max(call.attempt, 1)  # the intent is committed: it may have been sent
            self._owe_if_it_happened(call)

    def _owe_if_it_happened(self, call: Call) -> None:
        """An effect call abandoned in flight may have happened: with `reconcile` and
        `compensate`, its undo is owed, to be made if the reconcile tool does not say
        "not done" when the compensations run."""
        run = self.run
        if call.kind != "effect" or call.compensation is not None or call.session is not None:
            return
        effect = call.effect
        if effect.reconcile is None or effect.compensate is None or call.attempt == 0:
            return
        assert run.root is not None
        if FAILURE in run.root.scope.values:
            return  # an effect of `on_failure`: not undone
        ask = {"effect": effect.name, "args": dict(call.args), "key": call.key}
        self._owe_undo(call, ask=ask)
        run.journal.event(
            "abandoned", {"effect": effect.name, "key": call.key}, call.step, call.fiber.branch
        )

    def _owe_undo(self, call: Call, **extra: Any) -> None:
        """Add the call's compensation, its arguments evaluated now, to the run's list."""
        run, compensate = self.run, call.effect.compensate
        assert run.root is not None and compensate is not None
        env = MapEnv(call.args)
        args = {name: run.evaluator.eval(expr, env) for name, expr in compensate.args.items()}
        undo = {"effect": compensate.effect, "args": args, "step": call.step, **extra}
        run.root.scope.append("$list:compensate", undo)

    # --- completions ------------------------------------------------------------------

    def complete(self, done: Completion) -> None:
        if isinstance(done.job.owner, AgentTurn):
            self.agents.complete(done)
            return
        if isinstance(done.job.owner, Reconciliation):
            self._reconcile_done(done)
            return
        call: Call = done.job.owner
        if call.fiber.job is not done.job:
            return  # abandoned
        call.fiber.job = None
        decl = call.decl
        cost = decl.cost or Decimal(0)
        self.run.budget.settle(call.reserved, cost)
        if cost:
            self.run.update_run_data(spent=self.run.budget.spent)
        if done.ok:
            try:
                # A tool that echoes a secret it was given gives the run `[secret]` instead.
                answer = redact_json(done.value)
                value = self.run.converter.inbound(answer, decl.returns, "result", closed=False)
            except ConversionError as e:
                self._attempt_failed(
                    call, done, StepFailure(TOOL_ERROR, self._wrong_value(call, e))
                )
                return
            self._journal_success(call, done, value, cost)
            if call.kind == "effect":
                self._effect_done(call, value, {})
                return
            if cost or done.elapsed_ms >= self.run.config.slow_call_ms:
                self.run.force_commit = True
            self._succeeded(call, value)
            return
        error: BaseException = done.value
        message = exception_message(error)
        kind = kind_of(error)
        if is_error_name(kind) and kind not in (self.program.errors or ()):
            message = f"`{call.decl.name}` raised `{kind}`, which no `error` declares: {message}"
            kind = TOOL_ERROR
        failure = StepFailure(kind, redact(message))
        if not isinstance(error, MnError) or error.kind != TIMEOUT:
            failure.exception = exception_name(error)
            trace = trimmed_traceback(error)
            failure.traceback = redact(trace) if trace is not None else None
        self._attempt_failed(call, done, failure)

    def _wrong_value(self, call: Call, e: ConversionError) -> str:
        return f"`{call.decl.name}` returned a value that is not a {call.decl.returns}: {e}"

    def _journal_success(self, call: Call, done: Completion, value: Value, cost: Decimal) -> None:
        data: dict[str, Any] = {
            call.kind: call.decl.name,
            "args": to_plain(call.args),
            "result": to_plain(value),
            "attempt": call.attempt,
            "ms": round(done.elapsed_ms, 3),
        }
        if call.span is not None:
            data[SPAN_DATA] = f"{call.span:016x}"
        if call.key is not None:
            data["key"] = call.key
        if cost:
            data["cost"] = str(cost)
        kind = "compensated" if call.compensation is not None else call.kind
        self.run.journal.event(kind, data, call.step, call.fiber.branch)

    def _attempt_failed(self, call: Call, done: Completion, failure: StepFailure) -> None:
        run = self.run
        data = {
            "callee": call.decl.name,
            "attempt": call.attempt,
            "kind": failure.kind,
            "message": failure.message,
            "ms": round(done.elapsed_ms, 3),
        }
        if call.span is not None:
            data[SPAN_DATA] = f"{call.span:016x}"
        if failure.exception is not None:
            data["exception"] = failure.exception
        if failure.traceback is not None:
            data["traceback"] = failure.traceback
        effect = call.effect if call.kind == "effect" else None
        # A `once` effect is attempted again only once its receiver says it has not got the
        # failed attempt, whatever the failure: a reset connection may have delivered it.
        ask_first = effect is not None and effect.once and effect.reconcile is not None
        if ask_first and failure.kind != TIMEOUT:
            ask_first = retries.should_retry(call.retry, failure.kind, call.attempt)
        if effect is not None and (ask_first or failure.kind == TIMEOUT):
            if effect.reconcile is not None:
                run.journal.event("attempt_failed", data, call.step, call.fiber.branch)
                why = (
                    f"the call timed out: {failure.message}"
                    if failure.kind == TIMEOUT
                    else f"the call failed ({failure.kind}): {failure.message}"
                )
                self._reconcile(Reconciliation(call, why, failure, data))
                return
            if effect.once:
                run.journal.event("attempt_failed", data, call.step, call.fiber.branch)
                self.unknown_outcome(call, f"the call timed out: {failure.message}")
                return
        self._retry_or_fail(call, failure, data)

    def _verdict(self, call: Call, failure: StepFailure) -> retries.Verdict:
        run = self.run
        seed = f"{run.run_id}:{call.step}:{run.place(call.fiber)}"
        return retries.judge(call.retry, failure.kind, call.attempt, call.tally, run.now_ms(), seed)

    def _retry_or_fail(self, call: Call, failure: StepFailure, data: dict[str, Any]) -> None:
        run = self.run
        verdict = self._verdict(call, failure)
        delay = verdict.delay_ms
        if delay is not None:
            retries.count(call.tally, verdict)
            self._keep_tally(call)
            run.journal.event("retry", {**data, "delay_ms": delay}, call.step, call.fiber.branch)
            # A call an agent made retries in memory: its conversation resumes, not its state.
            if delay > DURABLE_DELAY_MS and call.compensation is None and call.session is None:
                call.fiber.job = None
                run.pauses.retry_later(call.fiber, call.step, call.attempt, delay)
                return
            self._attempt_or_fail(call, delay / 1000)
            return
        if verdict.why:  # it gave up at `max_elapsed`: the failure says so
            failure.message = data["message"] = f"{failure.message} ({verdict.why})"
        # The arguments too: a call that failed for good is part of the run's trajectory.
        failed = {**data, "kind_of_call": call.kind, "args": to_plain(call.args)}
        run.journal.event("call_failed", failed, call.step, call.fiber.branch)
        self._failed(call, failure, commit=call.kind == "effect")

    def _failed(self, call: Call, failure: StepFailure, *, commit: bool) -> None:
        """The call failed for good: unwind its fiber (or go on compensating)."""
        if commit:
            self.run.force_commit = True
        call.fiber.job = None
        if call.fiber.losing is not None and call.compensation is None:
            self.run.lose_now(call.fiber)
            return
        if call.compensation is not None:
            self.run.journal.event(
                "compensation_failed", failure.to_json(), call.step, call.fiber.branch
            )
            self._compensation_ended(call)
            return
        if call.session is not None:
            self.agents.tool_failed(call, failure)
            return
        self.run.fail(call.fiber, failure.at(call.step))

    def _succeeded(self, call: Call, value: Value) -> None:
        call.fiber.job = None
        if call.fiber.losing is not None and call.compensation is None:
            self.run.lose_now(call.fiber)  # a quorum's loser: its result is in the ledger
            return
        if call.compensation is not None:
            self._compensation_ended(call)
            return
        if call.session is not None:
            self.agents.tool_done(call, value)
            return
        self.run.deliver(call.fiber, value)

    def _effect_done(self, call: Call, value: Value, extra: dict[str, Any]) -> None:
        """Commit an effect's result with its ledger row, right away."""
        run, effect = self.run, call.effect
        assert call.key is not None and call.hash is not None
        run.journal.put_ledger(
            LedgerPut(
                call.key,
                call.hash,
                "done",
                effect.scope == "global",
                to_plain(value),
                call.step,
            )
        )
        if extra:
            run.journal.event("repaired", {"key": call.key, **extra}, call.step, call.fiber.branch)
        assert run.root is not None
        # An effect of `on_failure` is not undone: the compensations have run already.
        cleaning_up = FAILURE in run.root.scope.values
        if effect.compensate is not None and call.compensation is None and not cleaning_up:
            self._owe_undo(call)
        run.force_commit = True
        # The commit is due now; the next keyed effect's intent may ride in it.
        run.ride = True
        self._succeeded(call, value)

    # --- compensation -----------------------------------------------------------------

    def start_compensation(self, root: Fiber, failure: StepFailure) -> bool:
        """The run failed: undo its committed effects; False when there is nothing to undo."""
        owed = root.scope.values.get("$list:compensate") or []
        if not owed:
            return False
        root.pending = {"compensate": {"outcome": outcome_to_json(failure), "left": len(owed)}}
        root.dirty = True
        self.run.journal.event("compensating", {"count": len(owed), "error": failure.to_json()})
        self.run.wake(root)
        return True

    def next_compensation(self, root: Fiber) -> None:
        """Start the next compensation, or end the run when none is left."""
        assert root.pending is not None
        state = root.pending["compensate"]
        if "effect" in root.pending:
            self._resume_compensation(root)
            return
        left = state["left"]
        if left == 0:
            root.status = "done"
            root.pending = None
            outcome = outcome_from_json(state["outcome"])
            if isinstance(outcome, StepFailure) and self.run.on_failure(root, outcome):
                return
            self.run.outcome = outcome
            return
        owed = root.scope.values["$list:compensate"][left - 1]
        effect = self.program.effects[owed["effect"]]
        step = f"compensate:{owed['step']}"
        try:
            timeout_ms = call_timeout_ms(effect, owed["args"], self.run.evaluator)
        except StepFailure as failure:
            call = Call(root, "effect", effect, step, owed["args"], effect.retry, None)
            call.compensation = left - 1
            self._failed(call, failure, commit=True)
            return
        call = Call(
            root,
            "effect",
            effect,
            step,
            owed["args"],
            effect.retry,
            timeout_ms,
            compensation=left - 1,
        )
        ask = owed.get("ask")
        if ask is not None:
            about = self.program.effects[ask["effect"]]
            why = "the run was cancelled during the call"
            question = Reconciliation(call, why, about=about, about_key=ask["key"])
            question.about_args = ask["args"]
            self._reconcile(question)
            return
        self._intent(call)

    def _resume_compensation(self, root: Fiber) -> None:
        assert root.pending is not None
        left = root.pending["compensate"]["left"]
        owed = root.scope.values["$list:compensate"][left - 1]
        effect = self.program.effects[owed["effect"]]
        step = f"compensate:{owed['step']}"
        noted = root.pending["effect"]
        call = self.noted_call(root, effect, step, effect.retry, noted, compensation=left - 1)
        self._resume_effect(call)

    def _compensation_ended(self, call: Call) -> None:
        root = call.fiber
        assert root.pending is not None and call.compensation is not None
        state = dict(root.pending["compensate"])
        state["left"] = call.compensation
        root.pending = {"compensate": state}
        root.dirty = True
        root.at = None
        self.run.wake(root)
