"""The naive agent chain: the baseline `mnc bench` compares the runtime with.

Definition (docs/metrics.md, "The naive chain"): the same workflow, with the same tools,
model replies, decisions and fault, run as a plain chain of calls with no journal:

- the steps run in sequence as the workflow orders them, without retries: any failure
  (an error, a timeout, a malformed reply, a crash) ends the attempt, and the chain
  starts again from the first step, up to the same total attempt count: the largest
  `retry.attempts` among the workflow's calls (what the runtime may spend on a step);
- nothing is remembered between attempts: every model call is made, and paid, again,
  every person is asked again, and every effect is performed again; effects carry no
  idempotency key, so the receiving systems perform them again too, and the duplicates
  this causes are counted;
- a malformed model reply fails the attempt (no repair prompt, no retry); compensations
  and repair checkpoints do not exist (an effect whose outcome is unknown just fails the
  attempt);
- inside an agent's conversation too: a tool call that fails with a kind its retry policy
  would retry (a timeout, a transient error), or a tool call whose arguments came back
  malformed, ends the attempt at the next model request (`ChainModel`). The runtime tells
  such a failure to the model, and a scripted model would answer as if the tool had
  answered: a chain without retries has no answer to go on with.

It is run on the runtime itself with the program changed to match (every retry policy to
one attempt, no compensations), each attempt a fresh run in a throwaway in-memory
journal that is read once for its cost and then dropped. A crash fault fails the
attempt instead of killing the process (`FaultPlan.crash = "raise"`). The fault hits
the first attempt (a retry storm: as many attempts in a row as it lasts); a late
approval (`approval_delay`) is late on every attempt, so the checkpoint's timeout, the
same as the runtime's, decides on both sides.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Final

import msgspec

from mnlang.bench.harness import MAX_STEPS, Responder, bench_config
from mnlang.bench.models import scenario_model
from mnlang.bench.suite import Case
from mnlang.bench.world import NAIVE_PREFIX
from mnlang.ir.base import RetryIR
from mnlang.ir.hashing import program_hash
from mnlang.ir.model import EffectIR, IRProgram, ToolIR
from mnlang.ir.states import CallState
from mnlang.metrics.compute import program_facts
from mnlang.metrics.facts import Cost, Rates, run_facts
from mnlang.models.base import ModelCallError, ModelReply, ModelRequest, Provider
from mnlang.models.setup import ModelSetup
from mnlang.runtime.faults import FaultPlan
from mnlang.runtime.retry import should_retry, tries_at_most
from mnlang.runtime.run import resume_run, start_run
from mnlang.stores.base import TERMINAL_STATUSES
from mnlang.stores.sqlite import SQLiteStore

CHAIN_STOPPED: Final = "the naive chain stops here"
"""The message of the failure that ends a naive attempt inside an agent's conversation."""


@dataclass
class NaiveResult:
    chain: str
    case: Case
    attempts: int = 0
    status: str = ""
    successful: bool = False
    cost: Cost = field(default_factory=Cost)
    model_calls: int = 0


def naive_program(program: IRProgram) -> IRProgram:
    """The program as the naive chain runs it: one attempt per call, no compensations."""
    return _naive(program.hash, msgspec.json.encode(program))


@cache
def _naive(_hash: str, text: bytes) -> IRProgram:
    data = json.loads(text)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "retry" and isinstance(value, dict) and "attempts" in value:
                    value["attempts"] = 1
                elif key == "compensate":
                    node[key] = None
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(data)
    for agent in data.get("agents", {}).values():
        # Nothing kept between runs and no second model: the chain calls the model it names.
        agent.pop("cache_ms", None)
        agent.pop("fallback", None)
    for effect in data.get("effects", {}).values():
        if effect.get("once"):
            # Keyed by its arguments within one attempt: the chain knows of no unknown
            # outcome to repair, a failed call just fails the attempt.
            parts: list[Any] = ["naive"]
            for param in effect["params"]:
                parts += ["|", {"node": "var", "name": param["name"]}]
            effect["once"] = False
            effect["key"] = {"node": "template", "parts": parts}
    changed = msgspec.json.decode(msgspec.json.encode(data), type=IRProgram)
    return msgspec.structs.replace(changed, hash=program_hash(changed))


def chain_attempts(program: IRProgram, workflow: str) -> int:
    """The attempts the runtime may spend on one call of the workflow (its steps, and the
    tools its agents call): the chain's budget."""
    policies: list[RetryIR] = []
    for state in program.workflows[workflow].states.values():
        if isinstance(state, CallState):
            policies.append(state.retry)
            if state.callee_kind == "agent":
                agent = program.agents[state.callee]
                policies.append(agent.retry)
                for name in agent.tools:
                    decl = _tool_decl(program, name)
                    if decl is not None:
                        policies.append(decl.retry)
    # Unlimited attempts stop at a time: the naive chain gets as many as the others' most.
    return max([1, *(n for p in policies if (n := tries_at_most(p)) is not None)])


def _tool_decl(program: IRProgram, name: str) -> ToolIR | EffectIR | None:
    return program.tools.get(name) or program.effects.get(name)


class ChainModel:
    """The scenario's model as the naive chain meets it. Before each request it reads the
    conversation: a tool call that failed with a kind its retry policy (in the original
    program) would retry, or a tool call whose arguments are not JSON (a malformed reply),
    ends the attempt there, with that kind, before the request is made or paid. Failures
    the runtime does not retry either (a tool's own error, a refused call) are told to
    the model as the runtime tells them."""

    def __init__(self, model: Provider, program: IRProgram) -> None:
        self.model = model
        self.program = program
        self.name = model.name

    def complete(self, request: ModelRequest) -> ModelReply:
        stop = self._failure(request.messages)
        if stop is not None:
            kind, why = stop
            raise ModelCallError(kind, f"{CHAIN_STOPPED}: {why}")
        return self.model.complete(request)

    def _failure(self, messages: list[dict[str, Any]]) -> tuple[str, str] | None:
        called: dict[str, str] = {}
        for message in messages:
            if message.get("role") == "assistant":
                for call in message.get("tool_calls") or []:
                    function = call.get("function") or {}
                    name = str(function.get("name"))
                    called[str(call.get("id"))] = name
                    try:
                        json.loads(function.get("arguments") or "{}")
                    except ValueError:
                        return "malformed_output", f"the arguments of `{name}` are not JSON"
            elif message.get("role") == "tool":
                name = called.get(str(message.get("tool_call_id")), "")
                kind = _failure_kind(message.get("content"))
                decl = self._decl(name)
                if kind is not None and decl is not None and should_retry(decl.retry, kind, 1):
                    return kind, f"`{name}` failed ({kind})"
        return None

    def _decl(self, short: str) -> ToolIR | EffectIR | None:
        for decl in (*self.program.tools.values(), *self.program.effects.values()):
            if decl.name.rsplit(".", 1)[-1] == short:
                return decl
        return None


def _failure_kind(content: Any) -> str | None:
    """The failure kind a tool answer reports (`{"error": "KIND: message"}`), if any."""
    try:
        answer = json.loads(content) if isinstance(content, str) else None
    except ValueError:
        return None
    error = answer.get("error") if isinstance(answer, dict) else None
    if not isinstance(error, str) or ": " not in error:
        return None
    return error.split(": ", 1)[0]


def run_chain(
    case: Case,
    chain: str,
    rates: Rates,
    world_path: str | None,
    faults: FaultPlan | None = None,
    late: str | None = None,
    approval_at: str | None = None,
) -> NaiveResult:
    """Run the naive chain of one case to success or to its last attempt. `faults` (with
    `crash="raise"`) are the run's: chaos hits every attempt alike, a storm as many
    attempts in a row as it lasts, any other fault the first attempt."""
    program = naive_program(case.program)
    facts_of = program_facts(program)
    limit = chain_attempts(case.program, case.workflow)
    result = NaiveResult(f"{NAIVE_PREFIX}{chain}", case)
    if faults is not None and late is not None:
        # The responder makes the person late (`near` or `past`) on every attempt; the
        # runtime must not apply the plan's delay itself (it would always be `past`).
        calls = tuple(f for f in faults.faults if f.fault != "approval_delay")
        faults = msgspec.structs.replace(faults, faults=calls) if calls else None
    storm = next((f for f in faults.faults if f.fault == "retry_storm"), None) if faults else None
    storm_left = storm.times if storm is not None else 0
    naive_case = dataclasses.replace(case, program=program)
    with SQLiteStore(":memory:") as store:
        for attempt in range(1, limit + 1):
            run_id = f"{result.chain}~{attempt}"
            plan = None
            if faults is not None and faults.chaos > 0:
                plan = faults
            elif faults is not None and storm is not None and storm_left > 0:
                plan = msgspec.structs.replace(
                    faults, faults=(msgspec.structs.replace(storm, times=1),)
                )
                storm_left -= 1
            elif faults is not None and storm is None and attempt == 1:
                plan = faults
            # A late person is late on every attempt: restarting the chain does not make
            # them answer sooner, and the checkpoint's timeout decides on both sides.
            responder = Responder(store, naive_case, world_path, late, approval_at)
            config = bench_config(naive_case, None, naive_faults=plan)
            model = ChainModel(scenario_model(case), case.program)
            config = dataclasses.replace(config, models=ModelSetup(spec="bench", override=model))
            start_run(store, program, case.workflow, case.args, run_id=run_id, config=config)
            for _ in range(MAX_STEPS):
                record = store.get_run(run_id)
                assert record is not None
                if record.status in TERMINAL_STATUSES:
                    break
                if record.status == "waiting" and not responder.respond(run_id):
                    break
                resume_run(store, run_id, program=program, config=config)
            record = store.get_run(run_id)
            assert record is not None
            events = store.read_journal(run_id)
            facts = run_facts(record, events, facts_of, rates)
            result.attempts = attempt
            result.cost.add(facts.cost)
            result.model_calls += sum(1 for e in events if _model_called(e.kind, e.data))
            result.status = record.status
            result.successful = case.expectation.met_by(record.status, record.result, record.error)
            if record.status == "completed":
                break  # any other end restarts the chain, an expected failure too
    return result


def _model_called(kind: str, data: Any) -> bool:
    """A model request was made (not one the chain stopped before)."""
    if kind != "model_reply":
        return False
    error = data.get("error") if isinstance(data, dict) else None
    return not (isinstance(error, dict) and str(error.get("message", "")).startswith(CHAIN_STOPPED))
