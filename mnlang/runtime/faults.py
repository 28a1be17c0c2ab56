"""Fault injection: the eight fault classes, injected by name at a step or at random.

A `FaultPlan` says what to inject: targeted faults (`mnc run --inject
tool_timeout@fetch_order`: this fault at the first call of that step or callee) and chaos
(`--chaos 0.2 --seed 7`: each call attempt gets a fault with that probability, its class
drawn from the ones that fit the call, all decided by a hash of the seed and the call's
place, so the same seed injects the same faults). The runtime consults the plan at one
point, `submit`, through which every tool, effect and model call attempt is started; the
injected fault is journaled as a `fault_injected` event at the call's step.

What each class does at the call:

- `network_failure`: the attempt fails with `transient` (connection reset) without
  reaching the tool or model;
- `tool_timeout`: the attempt fails with `timeout` without an answer;
- `malformed_output` (model calls only): the reply comes back corrupted (cut in half);
- `worker_crash`: the process dies (`os._exit`) with the call in flight; whoever runs
  the process resumes the run (`mnc resume`, a worker, the bench harness);
- `node_failure`: the same death, of a node that holds the run's lease: another worker
  takes the run over once the lease expires (the bench waits for the expiry; `mnc
  resume` on the same machine breaks a dead process's lease at once);
- `partial_effect` (effects only): the effect performs its side effect, then the
  process dies before the result is reported;
- `retry_storm`: the attempt and the next ones fail with `transient` (an overloaded
  service answering 503: a tool's failing attempt reaches it, an effect's is refused
  before it is performed); many runs hit at once show that the tool's `limit:` holds
  and that retries back off instead of piling on;
- `approval_delay` is not a call fault: a person's decision arrives late. The harness
  that answers checkpoints injects it with `delay_approval` (past the timeout, the
  timeout decides).

A fault that killed the process is committed before the process dies, and a resumed run
reads the faults already injected from its journal, so it does not inject them again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

import msgspec

from mnlang.errors import CANCELLED, MnError, Timeout, Transient

if TYPE_CHECKING:
    from mnlang.ir.model import IRProgram
    from mnlang.runtime.call_threads import CallJob, CallRunner
    from mnlang.runtime.fibers import Fiber
    from mnlang.runtime.journal import Journal
    from mnlang.stores.base import CommitResult, Store

FAULT_EVENT: Final = "fault_injected"
HANDED_EVENT: Final = "fault_handed"
"""A parent's journal: a targeted fault handed to the child run created in the same
commit (`data.run`), which injects it; the parent does not."""
FAULTS_META: Final = "faults"
"""The key of a run's `meta` that keeps its fault plan, for every process that goes on
with the run (resume, approve, signal, a worker)."""
FAULT_CLASSES: Final = (
    "worker_crash",
    "network_failure",
    "tool_timeout",
    "malformed_output",
    "approval_delay",
    "node_failure",
    "retry_storm",
    "partial_effect",
)
CRASH_FAULTS: Final = frozenset({"worker_crash", "node_failure", "partial_effect"})
"""Faults that end the process (in the naive baseline: the attempt)."""
CALL_KINDS: Final = ("tool", "effect", "agent")
APPLIES_TO: Final[dict[str, frozenset[str]]] = {
    "worker_crash": frozenset(CALL_KINDS),
    "network_failure": frozenset(CALL_KINDS),
    "tool_timeout": frozenset(CALL_KINDS),
    "malformed_output": frozenset({"agent"}),
    "approval_delay": frozenset(),
    "node_failure": frozenset(CALL_KINDS),
    "retry_storm": frozenset(CALL_KINDS),
    "partial_effect": frozenset({"effect"}),
}
"""The call kinds each fault class can hit (`approval_delay` hits checkpoints)."""
EXPECTATIONS: Final = ("same", "repair", "failed")
"""What a fault should lead to: the output of a run without it, that output after a
repair checkpoint, or a failure."""
CRASH_STATUS: Final = 137
"""The exit status of an injected crash (what a SIGKILL gives)."""
STORM_ATTEMPTS: Final = 2
"""Attempts a `retry_storm` fails by default."""

CrashMode = Literal["exit", "raise"]


class FaultError(ValueError):
    """A fault plan that names an unknown class, a step that does not exist, or a fault
    that cannot hit the step; `help` says what would."""

    def __init__(self, message: str, *, help: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.help = help


class FaultSpec(msgspec.Struct, frozen=True):
    """One targeted fault: `fault` at the first call of step or callee `at`."""

    fault: str
    at: str | None = None
    """A state id or a callee's (short) name; None: the first call it fits."""
    times: int = 1
    """For `retry_storm`: how many attempts in a row fail."""
    expect: str | None = None
    """The expected outcome (one of `EXPECTATIONS`), journaled with the fault for metrics."""

    def __post_init__(self) -> None:
        if self.fault not in FAULT_CLASSES:
            raise FaultError(
                f"unknown fault `{self.fault}`", help=f"fault classes: {', '.join(FAULT_CLASSES)}"
            )
        if self.expect is not None and self.expect not in EXPECTATIONS:
            raise FaultError(
                f"unknown expected outcome `{self.expect}` for fault `{self.fault}`",
                help=f"use one of: {', '.join(EXPECTATIONS)}",
            )


def parse_inject(text: str) -> FaultSpec:
    """`CLASS@STEP` (or `CLASS`), with `*N` after a `retry_storm` for N failed attempts."""
    fault, _, at = text.strip().partition("@")
    times = STORM_ATTEMPTS if fault == "retry_storm" else 1
    if "*" in at:
        at, _, count = at.partition("*")
        if not count.isdigit() or int(count) < 1:
            raise FaultError(
                f"`{text}`: `*` takes a number of attempts from 1", help="e.g. retry_storm@fetch*3"
            )
        times = int(count)
    return FaultSpec(fault, at or None, times)


class FaultPlan(msgspec.Struct, frozen=True):
    faults: tuple[FaultSpec, ...] = ()
    chaos: float = 0.0
    """Probability that a call attempt gets a random fault."""
    seed: int = 0
    classes: tuple[str, ...] = tuple(c for c in FAULT_CLASSES if c != "approval_delay")
    """The classes chaos draws from."""
    crash: CrashMode = "exit"
    """`exit` kills the process; `raise` fails the call with `cancelled` instead (the
    naive baseline, where a crash just ends the attempt)."""
    storm_attempts: int = STORM_ATTEMPTS
    targets: tuple[str, ...] | None = None
    """For a child run: the ids of the targeted faults its parent handed it (the others
    are the parent's or another child's); None: all of them."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.chaos <= 1.0:
            raise FaultError(f"--chaos takes a probability from 0 to 1, not {self.chaos:g}")
        for name in self.classes:
            FaultSpec(name)

    @property
    def active(self) -> bool:
        return bool(self.faults) or self.chaos > 0

    def to_json(self) -> dict[str, Any]:
        """The plan as a run's `meta` keeps it (`FAULTS_META`)."""
        return {
            "faults": [
                {"fault": s.fault, "at": s.at, "times": s.times, "expect": s.expect}
                for s in self.faults
            ],
            "chaos": self.chaos,
            "seed": self.seed,
            "classes": list(self.classes),
            "crash": self.crash,
            "storm_attempts": self.storm_attempts,
            "targets": None if self.targets is None else list(self.targets),
        }

    @classmethod
    def from_json(cls, data: Any) -> FaultPlan | None:
        """The plan a run's `meta` keeps; None when it keeps none."""
        if not isinstance(data, dict):
            return None
        return cls(
            faults=tuple(FaultSpec(**spec) for spec in data["faults"]),
            chaos=float(data["chaos"]),
            seed=int(data["seed"]),
            classes=tuple(data["classes"]),
            crash=data["crash"],
            storm_attempts=int(data["storm_attempts"]),
            targets=None if data.get("targets") is None else tuple(data["targets"]),
        )

    def check(self, program: IRProgram, workflow: str) -> None:
        """Refuse targeted faults that can hit no call of the workflow or of the child
        runs it starts."""
        sites = call_sites(program, workflow, children=True)
        for spec in self.faults:
            if spec.fault == "approval_delay":
                checkpoints = checkpoint_names(program, workflow)
                if spec.at is not None and spec.at not in checkpoints:
                    raise FaultError(
                        f"`approval_delay@{spec.at}`: `{spec.at}` is not a checkpoint of "
                        f"`{workflow}`",
                        help=f"checkpoints: {', '.join(sorted(checkpoints)) or 'none'}",
                    )
                continue
            fits = APPLIES_TO[spec.fault]
            matching = [s for s in sites if spec.at is None or spec.at in (s[0], s[1], s[2])]
            if spec.at is not None and not matching:
                names = sorted({s[2] for s in sites} | {s[0] for s in sites})
                raise FaultError(
                    f"`{spec.fault}@{spec.at}`: no step or call named `{spec.at}` in `{workflow}` "
                    "or the workflows it starts",
                    help=f"steps and calls: {', '.join(names) or 'none'}",
                )
            if not any(kind in fits for _, _, _, kind in matching):
                where = f"`{spec.at}`" if spec.at is not None else f"any call of `{workflow}`"
                raise FaultError(
                    f"`{spec.fault}` cannot hit {where}",
                    help=f"`{spec.fault}` hits calls of kind: {', '.join(sorted(fits))}",
                )
            if spec.fault == "malformed_output" and not any(
                kind == "agent" and not text_reply(program, callee)
                for _, callee, _, kind in matching
            ):
                raise FaultError(
                    f"`malformed_output` cannot be told from an answer at `{spec.at}`",
                    help="an agent that returns `str` takes any text as its answer; "
                    "inject it into an agent with a structured return type",
                )

    def injector(self, store: Store, run_id: str) -> FaultInjector:
        """The plan as applied to one run, minus the faults its journal already holds
        (injected here, or handed to a child run)."""
        done = {
            str(e.data.get("id"))
            for e in store.read_journal(run_id)
            if e.kind in (FAULT_EVENT, HANDED_EVENT) and isinstance(e.data, dict)
        }
        return FaultInjector(self, run_id, done)


def call_sites(
    program: IRProgram, workflow: str, *, children: bool = False
) -> list[tuple[str, str, str, str]]:
    """(state id, qualified callee, short callee, call kind) of every call of a workflow,
    the tools its agents may call included; with `children`, those of the workflows it
    starts as child runs too, and theirs."""
    from mnlang.ir.states import CallState, ChildState

    out: list[tuple[str, str, str, str]] = []
    seen = {workflow}
    for state in program.workflows[workflow].states.values():
        if children and isinstance(state, ChildState) and state.workflow not in seen:
            seen.add(state.workflow)
            out += call_sites(program, state.workflow, children=True)
        if not isinstance(state, CallState):
            continue
        out.append((state.id, state.callee, state.callee.rsplit(".", 1)[-1], state.callee_kind))
        if state.callee_kind == "agent":
            for name in program.agents[state.callee].tools:
                kind = "effect" if name in program.effects else "tool"
                out.append((state.id, name, name.rsplit(".", 1)[-1], kind))
    return out


def text_reply(program: IRProgram, agent: str) -> bool:
    """Whether an agent returns `str`: any reply is then an answer, a cut one included."""
    found = program.agents.get(agent)
    return found is not None and found.returns.kind == "str"


def checkpoint_names(program: IRProgram, workflow: str) -> set[str]:
    from mnlang.ir.states import CheckpointState

    states = program.workflows[workflow].states.values()
    return {s.name for s in states if isinstance(s, CheckpointState)} | {
        s.id for s in states if isinstance(s, CheckpointState)
    }


class CallSite(msgspec.Struct, frozen=True):
    """One attempt of one call, as the fault plan sees it."""

    kind: str
    """`tool`, `effect` or `agent`."""
    callee: str
    step: str
    branch: str
    place: str
    """Which execution of the step (loop positions, branches): `Interpreter.place`."""
    attempt: int
    request: int = 0
    """For a model call: the request's number in its conversation."""

    @property
    def short(self) -> str:
        return self.callee.rsplit(".", 1)[-1]


class Injection(msgspec.Struct, frozen=True):
    fault: str
    id: str
    """Identifies the fault in the run's journal (so a resumed run skips it)."""
    mode: Literal["targeted", "chaos"]
    crash: CrashMode
    expect: str | None = None
    times: int = 1
    journal: bool = True
    """False for the later attempts of a storm (journaled once, at its first)."""
    reaches: bool = False
    """A storm's failing attempt reaches the service (a tool, which has no side effect)."""

    @property
    def kills(self) -> bool:
        return self.fault in CRASH_FAULTS and self.crash == "exit"

    def wrap(self, call: Callable[[], Any]) -> Callable[[], Any]:
        """The call's work with the fault in it."""
        return partial_call(self, call)

    def event(self, site: CallSite) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "fault": self.fault,
            "mode": self.mode,
            "kind": site.kind,
            "callee": site.callee,
            "attempt": site.attempt,
        }
        if self.expect is not None:
            data["expect"] = self.expect
        if self.fault == "retry_storm":
            data["times"] = self.times
        return data


def partial_call(injection: Injection, call: Callable[[], Any]) -> Callable[[], Any]:
    fault = injection.fault

    def crash() -> None:
        if injection.crash == "exit":
            os._exit(CRASH_STATUS)
        raise MnError(CANCELLED, f"injected {fault}: the process died")

    def run() -> Any:
        reached = fault == "retry_storm" and injection.reaches
        if reached:
            call()
        if fault in ("network_failure", "retry_storm"):
            what = "connection reset by peer" if fault == "network_failure" else "503 overloaded"
            raise _unreached(Transient(f"injected {fault}: {what}"), reached)
        if fault == "tool_timeout":
            raise _unreached(Timeout(f"injected {fault}: no answer in time"))
        if fault in ("worker_crash", "node_failure"):
            crash()
        value = call()
        if fault == "partial_effect":
            crash()
        if fault == "malformed_output":
            return corrupt(value)
        return value

    return run


def _unreached(error: MnError, reached: bool = False) -> MnError:
    """Mark a failure injected before the call reached its tool or model."""
    if not reached:
        error.add_note(_UNREACHED)
    return error


_UNREACHED: Final = "mnlang: injected before the call reached its tool or model"


def reached_callee(error: BaseException) -> bool:
    """Whether a failed attempt reached its tool or model (False for an injected
    `network_failure`, `tool_timeout` or a storm's refused attempt): a model request
    that did not reach the model took no reply (a scripted one is still due)."""
    return _UNREACHED not in getattr(error, "__notes__", ())


def corrupt(reply: Any) -> Any:
    """A model reply cut in half: its text, or else its first tool call's arguments."""
    text = getattr(reply, "text", None)
    if isinstance(text, str):
        return _replace(reply, text=text[: len(text) // 2])
    calls = getattr(reply, "tool_calls", None)
    if calls:
        first = calls[0]
        cut = _replace(first, arguments=first.arguments[: len(first.arguments) // 2])
        return _replace(reply, tool_calls=[cut, *calls[1:]])
    return json.dumps(reply, default=str)[:8]


def _replace(record: Any, **changes: Any) -> Any:
    """`record` with `changes`: a `ModelReply` or `ToolCall` (msgspec Structs), or a
    dataclass of the same shape."""
    if isinstance(record, msgspec.Struct):
        return msgspec.structs.replace(record, **changes)
    return dataclasses.replace(record, **changes)


@dataclass
class FaultInjector:
    """A plan applied to one run; `done` holds the ids of faults already injected."""

    plan: FaultPlan
    run_id: str
    done: set[str]
    _storms: dict[str, tuple[int, Injection]] = field(default_factory=dict)

    def at_call(self, site: CallSite) -> Injection | None:
        where = f"{site.step}@{site.place}#{site.request}"
        storm = self._storms.get(where)
        if storm is not None and site.attempt <= storm[0]:
            return msgspec.structs.replace(storm[1], journal=False)
        injection = self._targeted(site) or self._chaos(site, where)
        if injection is None:
            return None
        if site.kind == "tool":
            injection = msgspec.structs.replace(injection, reaches=True)
        self.done.add(injection.id)
        if injection.fault == "retry_storm":
            self._storms[where] = (site.attempt + injection.times - 1, injection)
        return injection

    def _targeted(self, site: CallSite) -> Injection | None:
        for index, spec in enumerate(self.plan.faults):
            if spec.fault == "approval_delay" or site.kind not in APPLIES_TO[spec.fault]:
                continue
            if spec.at is not None and spec.at not in (site.step, site.callee, site.short):
                continue
            fault_id = f"t{index}:{spec.fault}"
            if fault_id in self.done or (
                self.plan.targets is not None and fault_id not in self.plan.targets
            ):
                continue
            return Injection(
                spec.fault, fault_id, "targeted", self.plan.crash, spec.expect, spec.times
            )
        return None

    def hand_to_child(
        self, program: IRProgram, workflow: str, child_id: str
    ) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
        """The share of the plan of child run `child_id` (of `workflow`), about to be
        created: the targeted faults not injected yet that can hit a call of it (or of its
        children) are its, and no longer this run's. Returns the child's `meta` entries
        and the events to journal with its creation."""
        sites = call_sites(program, workflow, children=True)
        handed: list[Any] = []
        for index, spec in enumerate(self.plan.faults):
            fault_id = f"t{index}:{spec.fault}"
            if spec.fault == "approval_delay" or fault_id in self.done:
                continue
            if self.plan.targets is not None and fault_id not in self.plan.targets:
                continue
            fits = APPLIES_TO[spec.fault]
            if any(
                kind in fits and (spec.at is None or spec.at in (step, callee, short))
                for step, callee, short, kind in sites
            ):
                handed.append({"id": fault_id, "fault": spec.fault, "at": spec.at})
        ids = tuple(h["id"] for h in handed)
        self.done.update(ids)
        share = msgspec.structs.replace(self.plan, targets=ids)
        events = [(HANDED_EVENT, {**h, "run": child_id}) for h in handed]
        return {FAULTS_META: share.to_json()}, events

    def _chaos(self, site: CallSite, where: str) -> Injection | None:
        plan = self.plan
        if plan.chaos <= 0:
            return None
        fault_id = f"c:{where}#{site.attempt}"
        if fault_id in self.done:
            return None
        draw = _unit(plan.seed, self.run_id, fault_id)
        if draw >= plan.chaos:
            return None
        fitting = [c for c in plan.classes if site.kind in APPLIES_TO[c]]
        if not fitting:
            return None
        fault = fitting[int(_unit(plan.seed, self.run_id, fault_id, "class") * len(fitting))]
        return Injection(fault, fault_id, "chaos", plan.crash, None, plan.storm_attempts)


def _unit(*parts: object) -> float:
    """A number in [0, 1) decided by `parts` alone (the same on every machine and run)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class FaultRun(Protocol):
    """What `submit` uses of the run."""

    faults: FaultInjector | None
    runner: CallRunner
    journal: Journal
    force_commit: bool
    after_commit: list[Callable[[CommitResult], None]]


def submit(run: FaultRun, fiber: Fiber, job: CallJob, delay_s: float, site: CallSite) -> None:
    """Start a call attempt, with the fault the run's plan puts there, if any.

    A fault that kills the process is committed first, and the attempt starts after that
    commit, so the resumed run knows the fault happened."""
    injector = run.faults
    injection = injector.at_call(site) if injector is not None else None
    if injection is None:
        run.runner.submit(job, delay_s)
        return
    job.run = injection.wrap(job.run)
    if injection.journal:
        run.journal.event(FAULT_EVENT, injection.event(site), site.step, site.branch)
    if not injection.kills:
        run.runner.submit(job, delay_s)
        return

    def start(_: object) -> None:
        if fiber.job is job:
            run.runner.submit(job, delay_s)

    run.force_commit = True
    run.after_commit.append(start)


def delay_approval(
    store: Store,
    run_id: str,
    checkpoint_id: str,
    *,
    past: bool,
    expect: str | None = None,
    step: str | None = None,
) -> None:
    """Journal an `approval_delay` at a waiting run's open checkpoint. `past`: the decision
    comes after the checkpoint's timeout, so the timeout is made due now (as if all of it
    had passed) and decides first; otherwise the decision comes just before it."""
    from mnlang.runtime.pauses import checkpoint_timer
    from mnlang.stores.base import Batch, NewEvent, SetTimer

    data: dict[str, Any] = {
        "id": f"approval:{checkpoint_id}",
        "fault": "approval_delay",
        "mode": "targeted",
        "kind": "checkpoint",
        "checkpoint": checkpoint_id,
        "late": "past_timeout" if past else "near_timeout",
    }
    if expect is not None:
        data["expect"] = expect
    timer = checkpoint_timer(checkpoint_id)
    timers = [t for t in store.run_timers(run_id) if t.timer_id == timer]
    set_timers = [SetTimer(timer, 0.0, timers[0].payload)] if past and timers else []
    store.commit(Batch(run_id, events=[NewEvent(FAULT_EVENT, data, step)], set_timers=set_timers))


def injected(events: Iterable[Any]) -> list[dict[str, Any]]:
    """The `fault_injected` events' data of a journal, in order."""
    return [e.data for e in events if e.kind == FAULT_EVENT and isinstance(e.data, dict)]


def delay_open_approvals(store: Store, run_id: str, plan: FaultPlan) -> bool:
    """Apply the plan's `approval_delay` faults to a waiting run: at each open checkpoint
    they name (or at any, for one without `@`), the decision comes after the timeout.
    True when one was applied: the run should then be resumed."""
    specs = [s for s in plan.faults if s.fault == "approval_delay"]
    applied = False
    for checkpoint in store.open_checkpoints(run_id):
        request = checkpoint.request if isinstance(checkpoint.request, dict) else {}
        step = request.get("step")
        names = {checkpoint.name, checkpoint.checkpoint_id, step}
        for spec in specs:
            fault_id = f"approval:{checkpoint.checkpoint_id}"
            seen = any(e.get("id") == fault_id for e in injected(store.read_journal(run_id)))
            if seen or (spec.at is not None and spec.at not in names):
                continue
            delay_approval(
                store,
                run_id,
                checkpoint.checkpoint_id,
                past=True,
                expect=spec.expect,
                step=step if isinstance(step, str) else None,
            )
            applied = True
            break
    return applied
