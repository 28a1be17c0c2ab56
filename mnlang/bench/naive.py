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
  attempt).

It is run on the runtime itself with the program changed to match (every retry policy to
one attempt, no compensations), each attempt a fresh run in a throwaway in-memory
journal that is read once for its cost and then dropped. A crash fault fails the
attempt instead of killing the process (`FaultPlan.crash = "raise"`). The fault hits
the first attempt (a retry storm: as many attempts in a row as it lasts).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from mnlang.bench.harness import MAX_STEPS, Responder, bench_config
from mnlang.bench.suite import Case
from mnlang.bench.world import NAIVE_PREFIX
from mnlang.ir.hashing import program_hash
from mnlang.ir.model import IRProgram
from mnlang.ir.states import CallState
from mnlang.metrics.compute import program_facts
from mnlang.metrics.facts import Cost, Rates, run_facts
from mnlang.runtime.faults import FaultPlan
from mnlang.runtime.run import resume_run, start_run
from mnlang.stores.base import TERMINAL_STATUSES
from mnlang.stores.sqlite import SQLiteStore


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
    return _naive(program.hash, program.model_dump_json(by_alias=True))


@cache
def _naive(_hash: str, text: str) -> IRProgram:
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
    for effect in data.get("effects", {}).values():
        if effect.get("once"):
            # Keyed by its arguments within one attempt: the chain knows of no unknown
            # outcome to repair, a failed call just fails the attempt.
            parts: list[Any] = ["naive"]
            for param in effect["params"]:
                parts += ["|", {"node": "var", "name": param["name"]}]
            effect["once"] = False
            effect["key"] = {"node": "template", "parts": parts}
    changed = IRProgram.model_validate(data)
    return changed.model_copy(update={"hash": program_hash(changed)})


def chain_attempts(program: IRProgram, workflow: str) -> int:
    """The attempts the runtime may spend on one step of the workflow: the chain's budget."""
    most = 1
    for state in program.workflows[workflow].states.values():
        if isinstance(state, CallState):
            most = max(most, state.retry.attempts)
            if state.callee_kind == "agent":
                most = max(most, program.agents[state.callee].retry.attempts)
    return most


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
                plan = dataclasses.replace(faults, faults=(dataclasses.replace(storm, times=1),))
                storm_left -= 1
            elif faults is not None and storm is None and attempt == 1:
                plan = faults
            responder = Responder(
                store,
                naive_case,
                world_path,
                late if attempt == 1 else None,
                approval_at,
            )
            config = bench_config(naive_case, None, naive_faults=plan)
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
            result.model_calls += sum(1 for e in events if e.kind == "model_reply")
            result.status = record.status
            result.successful = case.expectation.met_by(record.status, record.result, record.error)
            if record.status == "completed":
                break  # any other end restarts the chain, an expected failure too
    return result
