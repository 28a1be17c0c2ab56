"""Agent calls: model requests, reply validation and repair, tool use, and model cost.

A call of an agent is a conversation held on its fiber. Each model request goes to the
agent's provider (`mnlang.models.setup`) on a worker thread; a reply is either the
answer, validated with pydantic against the declared return type, or a turn of tool
calls, which run one after the other as steps of their own before the next request.

Durability: the conversation lives in the fiber's `pending["agent"]` notes, which are
committed right after every reply (a reply cost money), so a resumed run goes on from
the last reply without asking the model again. Before a request is sent, its number
(the agent's n-th request in the run, which the `scripted` provider answers by) is noted
in the same commit as the run's count, so a request repeated after a crash keeps it.

Attempts: a failed request (`timeout`, `transient`, ...) or a reply that does not
validate (`malformed_output`) is retried per the agent's `retry`, continuing the same
conversation; a malformed reply is followed by a message that says what was wrong with
it, so the next attempt can repair it. A retry delay over a second waits on a durable
timer, as a tool's does (`Pauses.retry_later`): the notes, with the replies so far, are
committed with it, so a run resumed after a crash neither asks for them again nor waits
longer than the delay. Each attempt has `max_turns` requests (1 without
`tools:`); the last is sent with tool calls turned off.

Tools: the model sees the agent's `tools:` by their short names. Each call is journaled
as a `tool_decision` (for tool selection and parameter accuracy); a call of anything
else is refused, journaled as `unsafe_tool_call` and answered with an error; arguments
that do not fit the parameters are answered with the problem. A tool or effect call runs
through `Calls` with the same rules as a workflow step (retries, budget, an effect's
intent and ledger), except that an effect's `scope: run` ledger key names where it was
asked for (this call's place, the reply, the call's index in it: `effects.ledger_key`),
so each request of the model is its own action. An effect with `requires: approval`
first opens a checkpoint named after the effect and waits for a person, at most its
`approval:` timeout (the effect's, else the agent's, else `DEFAULT_APPROVAL`); a
rejection, or the timeout's, is told to the model. A tool call
that fails for good is told to the model too, except for the kinds the runtime enforces
(`budget_exceeded`, `cancelled`, `deadline_exceeded`), which fail the agent's step.

Cost: every request reserves its worst case from the budget first (the exact prompt's
tokens and `max_tokens` at the model's price, `mnlang.models.estimate`) and settles what
the reported usage cost; a provider that reports no usage is charged the worst case.
`scripted` replies cost nothing.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mnlang.errors import MALFORMED_OUTPUT, TIMEOUT, TOOL_ERROR, TRANSIENT, kind_of
from mnlang.impl_source import FunctionDoc, function_doc
from mnlang.ir.model import DEFAULT_APPROVAL, AgentIR, EffectIR, ParamIR, ToolIR
from mnlang.ir.schema import output_schema
from mnlang.ir.states import CallState
from mnlang.models.base import Message, ModelReply, ModelRequest, ToolSpec
from mnlang.models.estimate import DEFAULT_MAX_TOKENS, conversation_worst_case, text_tokens
from mnlang.models.prices import ModelPrice, PriceTable, PriceTableError, load_prices
from mnlang.models.setup import MODELS_META, ModelSetup, ModelSpecError
from mnlang.models.validation import ReplyInvalid, ReplyValidator
from mnlang.runtime import faults
from mnlang.runtime import retry as retries
from mnlang.runtime.call_threads import CallJob, Completion
from mnlang.runtime.convert import ConversionError
from mnlang.runtime.evaluate import MapEnv
from mnlang.runtime.failures import StepFailure, value_error
from mnlang.runtime.fibers import Fiber
from mnlang.runtime.pauses import DURABLE_DELAY_MS, checkpoint_timer, decide_timeout_if_due
from mnlang.runtime.ports import Call
from mnlang.runtime.reply_cache import kept_reply, reply_json, request_digest
from mnlang.runtime.timeouts import call_timeout_ms
from mnlang.runtime.tools import module_ref
from mnlang.runtime.values import Value, from_stored, to_plain
from mnlang.stores.base import OpenCheckpoint, SetTimer

if TYPE_CHECKING:
    from mnlang.ir.model import IRProgram
    from mnlang.runtime.budget import Budget
    from mnlang.runtime.config import RuntimeConfig
    from mnlang.runtime.convert import Converter
    from mnlang.runtime.evaluate import Evaluator
    from mnlang.runtime.ports import CallsPort, PausesPort
    from mnlang.stores.base import Json, RunRecord, Store

APPROVE_OPTIONS = ["approve", "reject"]

_SYSTEM = (
    "You are `{name}`, one step of an automated workflow. Answer with a JSON value only, "
    "no other text, matching this JSON Schema:\n{schema}"
)
_SYSTEM_TOOLS = (
    "\nBefore you answer you may call the tools you are given; you have {turns} turns "
    "(requests) in all, and the last one must be the answer."
)
# A request that fails so is sent to the agent's next model (`model: [a, b]`), in the
# same attempt. A refusal (`rejected`) is not: another model is not a way around it.
FALLBACK_KINDS = (TRANSIENT, TIMEOUT, TOOL_ERROR, MALFORMED_OUTPUT)

_REPAIR = (
    "Your reply could not be used: {problem}. Reply again with only a JSON value that "
    "matches the schema."
)


@dataclass(frozen=True, slots=True)
class AgentTools:
    """The tools an agent may call: their specs for the model, and who each name means."""

    specs: list[ToolSpec]
    by_name: dict[str, str]
    """Model-facing name -> qualified tool or effect name."""


@dataclass(eq=False)
class Session:
    """One call of an agent in progress; `notes` is its durable part."""

    fiber: Fiber
    agent: AgentIR
    step: str
    args: dict[str, Value]
    notes: dict[str, Any]
    tools: AgentTools
    started: float = field(default_factory=time.perf_counter)
    to_keep: tuple[str, str] | None = None
    """(digest, reply) of the text answer to keep in the reply cache once it validates."""

    @property
    def short(self) -> str:
        return self.agent.name.rsplit(".", 1)[-1]

    @property
    def max_turns(self) -> int:
        return self.agent.max_turns or 1

    @property
    def model(self) -> str:
        """The model this attempt asks now: the first, or a fallback after failures."""
        index: int = self.notes.get("model", 0)
        return self.agent.models[index]


@dataclass(eq=False)
class AgentTurn:
    """A model request in flight: the owner of its `CallJob`."""

    session: Session
    request: ModelRequest
    reserved: Decimal
    price: ModelPrice | None
    provider: str
    digest: str | None = None
    """The request's key in the reply cache, for an agent with `cache:`."""
    cached: bool = False
    """The reply is a kept one: no request is sent, nothing is paid."""


def _new_notes() -> dict[str, Any]:
    return {
        "attempt": 1,
        "turn": 0,
        "requests": 0,
        "history": [],
        "queue": [],
        "tools_called": 0,
        "cost": "0",
        "usage": [0, 0],
    }


class AgentRun(faults.FaultRun, Protocol):
    """What an agent's conversation uses of the run."""

    program: IRProgram
    run_id: str
    record: RunRecord
    store: Store
    config: RuntimeConfig
    budget: Budget
    converter: Converter
    evaluator: Evaluator

    @property
    def calls(self) -> CallsPort: ...

    @property
    def pauses(self) -> PausesPort: ...

    @property
    def run_data(self) -> dict[str, Any]: ...

    def update_run_data(self, **changes: Any) -> None: ...

    def stored_args(self, args: dict[str, Value]) -> Json: ...

    def place(self, fiber: Fiber) -> str: ...

    def now_ms(self) -> int: ...

    def deliver(self, fiber: Fiber, value: Value) -> None: ...

    def fail(self, fiber: Fiber, failure: StepFailure) -> None: ...


class AgentCalls:
    def __init__(self, run: AgentRun) -> None:
        self.run = run
        self.program = run.program
        self._setup: ModelSetup | None = None
        self._prices: PriceTable | None = None
        self._validators: dict[str, ReplyValidator] = {}
        self._tools: dict[str, AgentTools] = {}

    # --- configuration ----------------------------------------------------------------

    @property
    def setup(self) -> ModelSetup:
        """The run's providers: the config's, else the ones the run started with."""
        if self._setup is None:
            given = self.run.config.models
            if isinstance(given, ModelSetup):
                self._setup = given
            else:
                spec = given if given is not None else self.run.record.meta.get(MODELS_META)
                try:
                    self._setup = ModelSetup.from_spec(spec, self.program.source.dir)
                except ModelSpecError as e:
                    raise StepFailure(TOOL_ERROR, str(e)) from None
        return self._setup

    def _price(self, agent: AgentIR, model: str) -> ModelPrice | None:
        if self._prices is None:
            try:
                self._prices = load_prices()
            except PriceTableError as e:
                raise StepFailure(TOOL_ERROR, f"bad price table: {e}") from None
        return self._prices.model(self.setup.price_entry(agent, self._prices, model))

    def _validator(self, agent: AgentIR) -> ReplyValidator:
        found = self._validators.get(agent.name)
        if found is None:
            found = ReplyValidator(agent.returns, self.program.types)
            self._validators[agent.name] = found
        return found

    def _agent_tools(self, agent: AgentIR) -> AgentTools:
        found = self._tools.get(agent.name)
        if found is not None:
            return found
        decls = [self._tool_decl(name) for name in agent.tools]
        shorts = [d.name.rsplit(".", 1)[-1] for d in decls]
        specs: list[ToolSpec] = []
        by_name: dict[str, str] = {}
        for decl, short in zip(decls, shorts, strict=True):
            name = short if shorts.count(short) == 1 else decl.name.replace(".", "__")
            by_name[name] = decl.name
            # The model sees the parameters the workflow does not bind, and only those.
            bound = (agent.bound or {}).get(decl.name, {})
            params = [p for p in decl.params if p.name not in bound]
            doc = self._impl_doc(decl)
            text = decl.description if decl.description is not None else doc.text
            described = _describe(decl, short, params, text or None)
            specs.append(ToolSpec(name, described, self._parameters(params, doc.params)))
        found = AgentTools(specs, by_name)
        self._tools[agent.name] = found
        return found

    def _impl_doc(self, decl: ToolIR) -> FunctionDoc:
        """The docstring of the impl function in its source file: the tool's description
        when it has no `description:`, a parameter's when the parameter has none."""
        module, _, function = decl.impl.partition(":")
        path = module_ref(self.program, decl.impl_dir, module).path if module else None
        found = function_doc(Path(path), function) if path else None
        return found if found is not None else FunctionDoc("")

    def _tool_decl(self, name: str) -> ToolIR:
        return self.program.effects.get(name) or self.program.tools[name]

    def _parameters(self, params: list[ParamIR], documented: dict[str, str]) -> dict[str, Any]:
        defs: dict[str, Any] = {}
        properties: dict[str, Any] = {}
        for param in params:
            schema = output_schema(param.type, self.program.types)
            schema.pop("$schema", None)
            defs.update(schema.pop("$defs", {}))
            described = param.description or documented.get(param.name)
            if described:
                schema["description"] = described
            properties[param.name] = schema
        out: dict[str, Any] = {
            "type": "object",
            "properties": properties,
            "required": [p.name for p in params if p.default is None],
            "additionalProperties": False,
        }
        if defs:
            out["$defs"] = defs
        return out

    # --- starting and resuming --------------------------------------------------------

    def begin(
        self, fiber: Fiber, state: CallState, evaluate: Callable[[], dict[str, Value]]
    ) -> None:
        """Execute an agent's `call` state: a new conversation, or the one its notes hold.

        The arguments are evaluated once, when the call starts, and kept in its notes: a
        call resumed after a wait or a crash goes on with them, so an argument that reads
        `now()` or `uuid()` does not change the conversation half-way."""
        agent = self.program.agents[state.callee]
        pending = fiber.pending or {}
        noted = pending.get("agent")
        fresh = noted is None
        notes: dict[str, Any] = _new_notes() if noted is None else noted
        if fresh or "args" not in notes:  # (notes written before arguments were kept)
            args = evaluate()
            notes["args"] = self.run.stored_args(args)
        else:
            args = {name: from_stored(value) for name, value in notes["args"].items()}
        if fresh:
            tally = retries.new_tally(agent.retry, self.run.now_ms)
            if tally is not None:  # the first request's time, for `max_elapsed`
                notes["tally"] = tally.to_json()
            fiber.pending = {"agent": notes}
            fiber.dirty = True
        session = Session(fiber, agent, state.id, args, notes, self._agent_tools(agent))
        fiber.status = "call"
        if fresh:
            self.run.journal.event(
                "agent_started",
                {
                    "agent": agent.name,
                    "args": to_plain(args),
                    "prompt": self._prompt(session),
                    "provider": self.setup.provider_name(agent),
                },
                state.id,
                fiber.branch,
            )
            self._request(session)
        elif "effect" in pending:
            self._resume_effect(session, pending)
        elif "approval" in notes:
            self._check_approval(session)
        elif notes["queue"]:
            self._next_tool(session)
        else:
            self._request(session)

    def _prompt(self, session: Session) -> str:
        return self.run.evaluator.text(session.agent.prompt, MapEnv(session.args))

    def _messages(self, session: Session) -> list[Message]:
        agent = session.agent
        schema = json.dumps(agent.output_schema, ensure_ascii=False)
        system = _SYSTEM.format(name=session.short, schema=schema)
        if agent.system is not None:
            # The author's system prompt first; the workflow's own instructions follow it.
            own = self.run.evaluator.text(agent.system, MapEnv(session.args))
            system = f"{own}\n\n{system}"
        if agent.tools:
            system += _SYSTEM_TOOLS.format(turns=session.max_turns)
        return [
            {"role": "system", "content": system},
            *self._conversation(session),
            {"role": "user", "content": self._prompt(session)},
            *session.notes["history"],
        ]

    def _conversation(self, session: Session) -> list[Message]:
        """The turns of the agent's `conversation:` parameter, as messages."""
        if session.agent.conversation is None:
            return []
        turns = to_plain(session.args[session.agent.conversation]) or []
        return [{"role": str(t["role"]), "content": str(t["content"])} for t in turns]

    # --- model requests ---------------------------------------------------------------

    def _request(self, session: Session, delay_s: float = 0.0) -> None:
        try:
            self._send(session, delay_s)
        except StepFailure as failure:
            self._fail(session, failure)

    def _send(self, session: Session, delay_s: float) -> None:
        run, agent, notes, fiber = self.run, session.agent, session.notes, session.fiber
        last_turn = notes["turn"] + 1 >= session.max_turns
        messages = self._messages(session)
        specs = session.tools.specs
        request = ModelRequest(
            agent=agent.name,
            model=session.model,
            messages=messages,
            output_schema=agent.output_schema,
            tools=specs,
            tool_choice="none" if last_turn else "auto",
            max_tokens=agent.max_tokens,
            temperature=agent.temperature,
            timeout_s=agent.timeout_ms / 1000 if agent.timeout_ms is not None else None,
            call_number=self._call_number(session),
            request_number=notes["requests"],
            fallback=session.model != agent.model,
            conversation=len(self._conversation(session)),
        )
        provider = self.setup.provider_for(agent)
        price = self._price(agent, session.model)
        chars = sum(len(json.dumps(m, ensure_ascii=False)) for m in messages)
        chars += sum(len(json.dumps(s.parameters)) + len(s.description) for s in specs)
        worst = conversation_worst_case(
            price, text_tokens(chars), agent.max_tokens or DEFAULT_MAX_TOKENS
        )
        reserved = run.budget.reserve(worst, f"a request of `{session.short}`")
        turn = AgentTurn(session, request, reserved, price, provider.name)
        answer: Callable[[], ModelReply] = partial(provider.complete, request)
        if agent.cache_ms is not None:
            turn.digest = request_digest(provider.name, request)
            kept = run.store.cached_reply(turn.digest)
            if kept is not None:
                turn.cached = True
                answer = partial(kept_reply, kept)
        job = CallJob(turn, f"agent:{agent.name}", answer)
        job.timeout_s = request.timeout_s
        fiber.status = "call"
        fiber.job = job
        fiber.dirty = True
        site = faults.CallSite(
            "agent",
            agent.name,
            session.step,
            fiber.branch,
            run.place(fiber),
            notes["attempt"],
            notes["requests"],
        )
        faults.submit(run, fiber, job, delay_s, site)

    def _call_number(self, session: Session) -> int:
        """The agent's request number in the run for this request: noted before it is sent
        (with the run's count, in one commit), so that a request repeated after a crash
        keeps its number and the others keep theirs."""
        notes = session.notes
        noted = notes.get("request")
        if noted is not None and noted["number"] == notes["requests"]:
            return int(noted["call"])
        run = self.run
        counts = dict(run.run_data["replies"])
        # A fallback model's requests are numbered on their own (`agent@model` in a
        # replies file), so a script answers each model in its own order.
        counted = session.agent.name
        if session.model != session.agent.model:
            counted = f"{counted}@{session.model}"
        call = counts.get(counted, 0)
        counts[counted] = call + 1
        run.update_run_data(replies=counts)
        notes["request"] = {"number": notes["requests"], "call": call}
        session.fiber.dirty = True
        return int(call)

    def complete(self, done: Completion) -> None:
        """A model request ended: settle its cost, then act on the reply."""
        turn: AgentTurn = done.job.owner
        session = turn.session
        fiber, notes, run = session.fiber, session.notes, self.run
        if fiber.job is not done.job:
            return  # abandoned
        fiber.job = None
        if done.ok or faults.reached_callee(done.value):
            notes["requests"] += 1
            notes.pop("request", None)
        # else the request never left (an injected fault): the retry is the same request,
        # with the same number, so it takes the reply this one would have taken.
        fiber.dirty = True
        reply: ModelReply | None = done.value if done.ok else None
        transport = reply.retries if reply is not None else getattr(done.value, "retries", [])
        for retry in transport:
            run.journal.event(
                "transport_retry",
                {"agent": session.agent.name, **retry.to_json()},
                session.step,
                fiber.branch,
            )
        cost = self._cost(turn, reply)
        run.budget.settle(turn.reserved, cost)
        if cost:
            run.update_run_data(spent=run.budget.spent)
            notes["cost"] = str(Decimal(notes["cost"]) + cost)
        self._journal_reply(turn, done, reply, cost)
        run.force_commit = True  # the reply cost money: keep it
        if reply is not None and turn.digest is not None and not turn.cached:
            if reply.tool_calls:
                self._keep(turn.digest, reply_json(reply), session)
            else:
                session.to_keep = (turn.digest, reply_json(reply))
        if reply is None:
            error: BaseException = done.value
            message = getattr(error, "message", None) or str(error) or type(error).__name__
            kind = kind_of(error)
            feedback = None
            if kind == MALFORMED_OUTPUT:
                feedback = [{"role": "user", "content": _REPAIR.format(problem=message)}]
            self._failed_request(session, StepFailure(kind, message), feedback)
            return
        if reply.tool_calls:
            self._tool_turn(session, reply)
            return
        self._answer(session, reply.text or "")

    def _keep(self, digest: str, reply: str, session: Session) -> None:
        ttl_ms = session.agent.cache_ms
        assert ttl_ms is not None
        self.run.store.keep_reply(digest, reply, ttl_ms / 1000)

    def _cost(self, turn: AgentTurn, reply: ModelReply | None) -> Decimal:
        if turn.cached:
            return Decimal(0)
        if reply is None or turn.price is None:
            return Decimal(0)
        usage = reply.usage
        if usage is None:
            return turn.reserved
        return turn.price.cost(
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_read_tokens,
            usage.cache_write_tokens,
        )

    def _journal_reply(
        self, turn: AgentTurn, done: Completion, reply: ModelReply | None, cost: Decimal
    ) -> None:
        session, notes = turn.session, turn.session.notes
        data: dict[str, Any] = {
            "agent": session.agent.name,
            "provider": turn.provider,
            "attempt": notes["attempt"],
            "turn": notes["turn"] + 1,
            "call": turn.request.call_number,
            "ms": round(done.elapsed_ms, 3),
            "cost": str(cost),
        }
        if turn.cached:
            data["cached"] = True
        if reply is None:
            error = done.value
            data["error"] = {
                "kind": kind_of(error),
                "message": getattr(error, "message", str(error)),
            }
        else:
            data["model"] = reply.model
            if reply.usage is not None:
                data["usage"] = {
                    "input_tokens": reply.usage.input_tokens,
                    "output_tokens": reply.usage.output_tokens,
                }
                if reply.usage.cache_read_tokens or reply.usage.cache_write_tokens:
                    data["usage"]["cache_read_tokens"] = reply.usage.cache_read_tokens
                    data["usage"]["cache_write_tokens"] = reply.usage.cache_write_tokens
                used = notes["usage"]
                notes["usage"] = [
                    used[0] + reply.usage.input_tokens,
                    used[1] + reply.usage.output_tokens,
                ]
            if reply.tool_calls:
                data["tool_calls"] = [
                    {"id": c.id, "name": c.name, "arguments": c.arguments} for c in reply.tool_calls
                ]
            else:
                data["text"] = reply.text
        self.run.journal.event("model_reply", data, session.step, session.fiber.branch)

    def _answer(self, session: Session, text: str) -> None:
        """The model answered: validate, convert, deliver (or retry with the problem)."""
        agent, run = session.agent, self.run
        try:
            data = self._validator(agent).validate(text)
            value = run.converter.inbound(data, agent.returns, "result", closed=True)
        except (ReplyInvalid, ConversionError) as e:
            problem = str(e)
            feedback = [
                {"role": "assistant", "content": text},
                {"role": "user", "content": _REPAIR.format(problem=problem)},
            ]
            message = (
                f"`{session.short}` replied with a value that is not a {agent.returns}: {problem}"
            )
            self._failed_request(session, StepFailure(MALFORMED_OUTPUT, message), feedback)
            return
        if session.to_keep is not None:
            self._keep(*session.to_keep, session)
        notes = session.notes
        run.journal.event(
            "agent",
            {
                "agent": agent.name,
                "args": to_plain(session.args),
                "result": to_plain(value),
                "attempt": notes["attempt"],
                "requests": notes["requests"],
                "model": session.model,
                "model_cost": notes["cost"],
                "usage": {"input_tokens": notes["usage"][0], "output_tokens": notes["usage"][1]},
                "ms": round((time.perf_counter() - session.started) * 1000, 3),
                "prompt": self._prompt(session),
            },
            session.step,
            session.fiber.branch,
        )
        run.deliver(session.fiber, value)

    def _failed_request(
        self, session: Session, failure: StepFailure, feedback: list[Message] | None
    ) -> None:
        """A request failed or its reply did not validate: the agent's next model is asked
        the same (in the same attempt, the repair's feedback included), else the attempt
        fails."""
        notes = session.notes
        index = notes.get("model", 0)
        models = session.agent.models
        if failure.kind not in FALLBACK_KINDS or index + 1 >= len(models):
            self._attempt_failed(session, failure, feedback)
            return
        self.run.journal.event(
            "model_fallback",
            {
                "agent": session.agent.name,
                "attempt": notes["attempt"],
                "from": models[index],
                "to": models[index + 1],
                "kind": failure.kind,
                "message": failure.message,
            },
            session.step,
            session.fiber.branch,
        )
        notes["model"] = index + 1
        notes["history"] = [*notes["history"], *(feedback or [])]
        session.fiber.dirty = True
        self._request(session)

    def _attempt_failed(
        self, session: Session, failure: StepFailure, feedback: list[Message] | None
    ) -> None:
        run, agent, notes = self.run, session.agent, session.notes
        data = {
            "callee": agent.name,
            "attempt": notes["attempt"],
            "kind": failure.kind,
            "message": failure.message,
        }
        seed = f"{run.run_id}:{session.step}:{run.place(session.fiber)}"
        noted = notes.get("tally")
        tally = retries.Tally.from_json(noted) if noted is not None else None
        verdict = retries.judge(
            agent.retry, failure.kind, notes["attempt"], tally, run.now_ms(), seed
        )
        delay = verdict.delay_ms
        if delay is None:
            if verdict.why:  # it gave up at `max_elapsed`: the failure says so
                failure.message = data["message"] = f"{failure.message} ({verdict.why})"
            run.journal.event("call_failed", data, session.step, session.fiber.branch)
            self._fail(session, failure)
            return
        run.journal.event("retry", {**data, "delay_ms": delay}, session.step, session.fiber.branch)
        if tally is not None:
            retries.count(tally, verdict)
            notes["tally"] = tally.to_json()
        notes["attempt"] += 1
        notes.pop("model", None)  # each attempt starts with the first model again
        notes["turn"] = 0
        notes["queue"] = []
        notes["history"] = [*notes["history"], *(feedback or [])]
        session.fiber.dirty = True
        if delay > DURABLE_DELAY_MS:
            # As a tool's: the run waits on a durable timer, holding no worker; when it is
            # due, the call state goes on with the conversation its notes hold.
            session.fiber.job = None
            run.pauses.retry_later(session.fiber, session.step, notes["attempt"], delay)
            return
        self._request(session, delay / 1000)

    def _fail(self, session: Session, failure: StepFailure) -> None:
        session.fiber.job = None
        self.run.fail(session.fiber, failure.at(session.step))

    # --- tool calls -------------------------------------------------------------------

    def _tool_turn(self, session: Session, reply: ModelReply) -> None:
        notes = session.notes
        notes["turn"] += 1
        # Each call keeps which reply asked for it and where in it: an effect's ledger key.
        reply_number = notes["requests"] - 1
        calls = [
            {
                "id": c.id,
                "name": c.name,
                "arguments": c.arguments,
                "reply": reply_number,
                "index": index,
            }
            for index, c in enumerate(reply.tool_calls)
        ]
        notes["history"] = [
            *notes["history"],
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {"name": c["name"], "arguments": c["arguments"]},
                    }
                    for c in calls
                ],
            },
        ]
        if notes["turn"] >= session.max_turns:
            names = ", ".join(f"`{c['name']}`" for c in calls)
            message = (
                f"`{session.short}` called {names} on its last turn "
                f"(`max_turns: {session.max_turns}`) instead of answering"
            )
            feedback = [
                *({"role": "tool", "tool_call_id": c["id"], "content": "not run"} for c in calls),
                {"role": "user", "content": "You have no turns left for tools: answer now."},
            ]
            self._attempt_failed(session, StepFailure(MALFORMED_OUTPUT, message), feedback)
            return
        notes["queue"] = calls
        session.fiber.dirty = True
        self._next_tool(session)

    def _next_tool(self, session: Session) -> None:
        """Start the next tool call of the last turn, or ask the model again."""
        notes = session.notes
        while notes["queue"]:
            if self._start_tool(session, notes["queue"][0]):
                return
        self._request(session)

    def _start_tool(self, session: Session, item: dict[str, Any]) -> bool:
        """Start one tool call; False when it was answered at once (refused or invalid)."""
        run, notes, fiber = self.run, session.notes, session.fiber
        qualified = session.tools.by_name.get(item["name"])
        try:
            parsed: Any = json.loads(item["arguments"] or "{}")
        except ValueError:
            parsed = item["arguments"]
        decision = {
            "agent": session.agent.name,
            "tool": item["name"],
            "arguments": parsed,
            "attempt": notes["attempt"],
            "turn": notes["turn"],
            "allowed": qualified is not None,
        }
        bound = (session.agent.bound or {}).get(qualified or "")
        if bound:
            decision["bound"] = sorted(bound)  # set by the workflow, not chosen by the model
        run.journal.event("tool_decision", decision, session.step, fiber.branch)
        if qualified is None:
            allowed = ", ".join(f"`{n}`" for n in session.tools.by_name) or "none"
            reason = f"`{item['name']}` is not one of your tools (yours: {allowed})"
            run.journal.event(
                "unsafe_tool_call",
                {"agent": session.agent.name, "tool": item["name"], "arguments": parsed},
                session.step,
                fiber.branch,
            )
            self._tool_answer(session, {"error": f"refused: {reason}"})
            return False
        decl = self._tool_decl(qualified)
        try:
            args = self._tool_args(session, decl, parsed)
        except ConversionError as e:
            problem = f"invalid arguments for `{item['name']}`: {e}"
            run.journal.event(
                "tool_call_invalid",
                {"agent": session.agent.name, "tool": item["name"], "problem": problem},
                session.step,
                fiber.branch,
            )
            self._tool_answer(session, {"error": problem})
            return False
        notes["tools_called"] += 1
        sub_step = f"{session.step}>{item['name']}:{notes['tools_called']}"
        asked = self._asked(session, item)
        notes["current"] = {
            "tool": qualified,
            "step": sub_step,
            "args": run.stored_args(args),
            "asked": asked,
        }
        fiber.dirty = True
        if isinstance(decl, EffectIR) and "approval" in decl.requires:
            self._ask_approval(session, decl, args, sub_step)
        else:
            self._run_tool(session, decl, args, sub_step, asked)
        return True

    def _asked(self, session: Session, item: dict[str, Any]) -> str | None:
        """Where a tool call was asked for: the agent call's place, the committed reply
        and the call's index in it (None for a call queued by a release before this)."""
        if "reply" not in item:
            return None
        place = self.run.place(session.fiber)
        return f"{session.step}@{place} reply {item['reply']} call {item['index']}"

    def _tool_args(self, session: Session, decl: ToolIR, given: Any) -> dict[str, Value]:
        """The model's arguments, checked, with the parameters the workflow binds.

        A model that sends a bound parameter is told it may not (`tool_call_invalid`)
        rather than silently overridden: the call it meant is not the call that would run."""
        if not isinstance(given, dict):
            raise ConversionError("arguments", "expected a JSON object of the parameters")
        converter, evaluator = self.run.converter, self.run.evaluator
        bound = (session.agent.bound or {}).get(decl.name, {})
        short = decl.name.rsplit(".", 1)[-1]
        fixed = sorted(k for k in given if k in bound)
        if fixed:
            raise ConversionError(fixed[0], f"is set by the workflow for `{short}`; leave it out")
        names = {p.name for p in decl.params}
        extra = sorted(k for k in given if k not in names)
        if extra:
            raise ConversionError(extra[0], f"`{short}` has no such parameter")
        args: dict[str, Value] = {}
        env = MapEnv(session.args)
        for param in decl.params:
            if param.name in bound:
                args[param.name] = evaluator.eval(bound[param.name], env)
            elif param.name in given:
                args[param.name] = converter.inbound(given[param.name], param.type, param.name)
            elif param.default is not None:
                args[param.name] = evaluator.eval(param.default, MapEnv(args))
            elif param.type.kind == "optional":
                args[param.name] = None
            else:
                raise ConversionError(param.name, f"missing argument of type {param.type}")
        return args

    def _run_tool(
        self,
        session: Session,
        decl: ToolIR,
        args: dict[str, Value],
        step: str,
        asked: str | None,
    ) -> None:
        calls, fiber = self.run.calls, session.fiber
        timeout_ms = call_timeout_ms(decl, args, self.run.evaluator)
        if isinstance(decl, EffectIR):
            effect = Call(fiber, "effect", decl, step, args, decl.retry, timeout_ms)
            effect.session = session
            effect.asked = asked
            calls._intent(effect)
        else:
            tool = Call(fiber, "tool", decl, step, args, decl.retry, timeout_ms)
            tool.session = session
            calls._attempt_or_fail(tool)

    def _resume_effect(self, session: Session, pending: dict[str, Any]) -> None:
        """An effect the model called was between its intent and its result."""
        current = session.notes["current"]
        effect = self.program.effects[current["tool"]]
        call = self.run.calls.noted_call(
            session.fiber, effect, current["step"], effect.retry, pending["effect"], session=session
        )
        if "repair" in pending:
            self.run.pauses.repair(session.fiber, call)
        else:
            self.run.calls._resume_effect(call)

    def tool_done(self, call: Call, value: Value) -> None:
        """A tool or effect the model called returned: tell the model, go on."""
        session: Session = call.session
        self.run.journal.event(
            "agent_tool",
            {
                "agent": session.agent.name,
                "tool": call.decl.name,
                "args": to_plain(call.args),
                "result": to_plain(value),
            },
            call.step,
            session.fiber.branch,
        )
        self._tool_answer(session, to_plain(value))
        self._next_tool(session)

    def tool_failed(self, call: Call, failure: StepFailure) -> None:
        """A tool or effect the model called failed for good: tell the model, unless the
        runtime enforces the kind (then the agent's step fails)."""
        session: Session = call.session
        if not failure.catchable:
            self._fail(session, failure)
            return
        self.run.journal.event(
            "agent_tool",
            {
                "agent": session.agent.name,
                "tool": call.decl.name,
                "args": to_plain(call.args),
                "error": failure.to_json(),
            },
            call.step,
            session.fiber.branch,
        )
        self._tool_answer(session, {"error": f"{failure.kind}: {failure.message}"})
        self._next_tool(session)

    def _tool_answer(self, session: Session, content: Any) -> None:
        """Answer the first queued tool call with `content` (in the conversation)."""
        notes, fiber = session.notes, session.fiber
        item = notes["queue"][0]
        notes["queue"] = notes["queue"][1:]
        notes.pop("current", None)
        notes["history"] = [
            *notes["history"],
            {
                "role": "tool",
                "tool_call_id": item["id"],
                "content": json.dumps(content, ensure_ascii=False),
            },
        ]
        fiber.pending = {"agent": notes}
        fiber.status = "call"
        fiber.dirty = True

    # --- approval of effects the model calls -------------------------------------------

    def _approval_id(self, fiber: Fiber, step: str) -> str:
        place = self.run.place(fiber)
        suffix = "" if place == "[]" else "@" + hashlib.sha1(place.encode()).hexdigest()[:10]
        return f"approve:{step}{suffix}"

    def _ask_approval(
        self, session: Session, effect: EffectIR, args: dict[str, Value], step: str
    ) -> None:
        run, fiber = self.run, session.fiber
        checkpoint_id = self._approval_id(fiber, step)
        short = effect.name.rsplit(".", 1)[-1]
        shown = ", ".join(
            f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in to_plain(args).items()
        )
        policy = effect.approval or session.agent.approval or DEFAULT_APPROVAL
        request = {
            "kind": "approval",
            "ask": f"Agent `{session.short}` wants to call `{short}({shown})`. Approve?",
            "show": [to_plain(args)],
            "options": APPROVE_OPTIONS,
            "assignee": None,
            "timeout_ms": policy.timeout_ms,
            "on_timeout": policy.on_timeout,
            "step": step,
            "branch": fiber.label,
            "agent": session.agent.name,
            "effect": effect.name,
        }
        run.journal.open_checkpoints.append(OpenCheckpoint(checkpoint_id, short, request))
        if policy.timeout_ms is not None:
            run.journal.set_timers.append(
                SetTimer(
                    checkpoint_timer(checkpoint_id),
                    policy.timeout_ms / 1000,
                    {"checkpoint": checkpoint_id, "on_timeout": policy.on_timeout},
                )
            )
        run.journal.event("checkpoint", {"id": checkpoint_id, **request}, step, fiber.branch)
        session.notes["approval"] = checkpoint_id
        fiber.pending = {"agent": session.notes, "checkpoint": checkpoint_id}
        fiber.status = "paused"
        fiber.job = None
        fiber.dirty = True
        run.force_commit = True

    def _check_approval(self, session: Session) -> None:
        run, fiber, notes = self.run, session.fiber, session.notes
        checkpoint_id = notes["approval"]
        found = run.store.get_checkpoint(run.run_id, checkpoint_id)
        if found is None:
            self._fail(session, value_error(f"checkpoint `{checkpoint_id}` is missing"))
            return
        found = decide_timeout_if_due(run.store, run.run_id, found)
        if found.status == "open":
            fiber.status = "paused"
            return
        raw = found.decision if isinstance(found.decision, dict) else {"choice": found.decision}
        by = found.decided_by or ""
        current = notes["current"]
        approved = raw.get("choice") == "approve"
        run.journal.close_checkpoints.append(checkpoint_id)
        run.journal.cancel_timers.append(checkpoint_timer(checkpoint_id))
        run.journal.event(
            "decided",
            {
                "approval": checkpoint_id,
                "effect": current["tool"],
                "agent": session.agent.name,
                **raw,
                "approved": approved,
                "by": by,
            },
            current["step"],
            fiber.branch,
        )
        del notes["approval"]
        fiber.pending = {"agent": notes}
        fiber.dirty = True
        run.force_commit = True
        if approved:
            effect = self.program.effects[current["tool"]]
            args = {name: from_stored(value) for name, value in current["args"].items()}
            self._run_tool(session, effect, args, current["step"], current.get("asked"))
            return
        comment = raw.get("comment")
        why = f"rejected by {by or 'a person'}" + (f": {comment}" if comment else "")
        self._tool_answer(session, {"error": f"rejected: {why}"})
        self._next_tool(session)


def _describe(decl: ToolIR, short: str, params: list[ParamIR], description: str | None) -> str:
    shown = ", ".join(f"{p.name}: {p.type}" for p in params)
    what = "Effect (changes the world)" if isinstance(decl, EffectIR) else "Tool"
    text = f"{what} `{short}({shown}) -> {decl.returns}`."
    if isinstance(decl, EffectIR) and "approval" in decl.requires:
        text += " A person must approve each call first."
    if description:
        text += f"\n{description}"
    return text


def stored_setup(setup: ModelSetup | str | None) -> str | None:
    """What a run's `meta` keeps of the model setup it starts with."""
    if isinstance(setup, ModelSetup):
        return setup.spec
    return setup
