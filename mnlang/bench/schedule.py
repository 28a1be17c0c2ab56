"""The bench's fault schedule: which runs to make, and which fault goes into each.

For every repetition, each case runs once without faults (the clean run). Then each
entry of a case's `under_faults` becomes one run with that fault (a `retry_storm`: a
storm of `STORM_RUNS` runs hit at once). An entry without `at` is placed at a call the
clean run made (a checkpoint it opened, for `approval_delay`) that the fault class can
hit, drawn with the seed: each repetition may place it elsewhere. A storm goes to a
tool with a `limit:` when the run calls one, since the limit is what a storm tests.

Last, each case whose `under_faults` says `same` without `at` for some of the
`CHAOS_CLASSES` runs once more in chaos: every call attempt gets one of those faults
with probability `CHAOS_RATE` (`mnc run --chaos`; `mnc bench --chaos`), so a run may
meet several, and a retry may meet another (which can outlast its retry policy).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import msgspec

from mnlang.bench.suite import Case
from mnlang.runtime.faults import (
    APPLIES_TO,
    STORM_ATTEMPTS,
    CrashMode,
    FaultPlan,
    FaultSpec,
    text_reply,
)
from mnlang.stores.base import Event

STORM_RUNS: Final = 8
"""Runs a retry storm hits at once."""
CHAOS_RATE: Final = 0.1
CHAOS_CLASSES: Final = ("network_failure", "tool_timeout", "malformed_output")
"""Faults chaos injects: those that fail an attempt without ending the process."""


@dataclass(frozen=True, slots=True)
class Site:
    step: str
    callee: str
    """Short name of the tool, effect or agent; the checkpoint's name for a checkpoint."""
    kind: str
    """`tool`, `effect`, `agent` or `checkpoint`."""


@dataclass(frozen=True, slots=True)
class Job:
    case: Case
    repeat: int
    run_id: str
    fault: FaultSpec | None = None
    late: str | None = None
    approval_at: str | None = None
    storm: int = 0
    """For a retry storm: the run's number in its storm (from 1)."""
    chaos: FaultPlan | None = None

    @property
    def phase(self) -> str:
        """`clean`, `targeted` (one fault, a storm's included) or `chaos`."""
        if self.chaos is not None:
            return "chaos"
        return "clean" if self.fault is None else "targeted"

    @property
    def fault_class(self) -> str | None:
        if self.chaos is not None:
            return "chaos"
        return self.fault.fault if self.fault is not None else None

    def plan(self, crash: CrashMode = "exit") -> FaultPlan | None:
        """The faults of this run (with `raise`: as the naive chain meets them)."""
        if self.chaos is not None:
            return msgspec.structs.replace(self.chaos, crash=crash)
        if self.fault is None or self.late is not None:
            return None if self.fault is None else FaultPlan((self.fault,))
        return FaultPlan((self.fault,), crash=crash)

    @property
    def expect(self) -> str | None:
        return self.fault.expect if self.fault is not None else None


def sites_of(case: Case, events: Iterable[Event]) -> list[Site]:
    """The calls and checkpoints a run made, each place once, in order."""
    from mnlang.ir.states import CheckpointState

    states = case.program.workflows[case.workflow].states
    seen: set[str] = set()
    out: list[Site] = []
    for event in events:
        data = event.data if isinstance(event.data, dict) else {}
        step = event.state or ""
        site = None
        if event.kind == "tool":
            site = Site(step, str(data.get("tool", "")).rsplit(".", 1)[-1], "tool")
        elif event.kind == "intent" and not step.startswith("compensate:"):
            site = Site(step, str(data.get("effect", "")).rsplit(".", 1)[-1], "effect")
        elif event.kind == "agent_started":
            site = Site(step, str(data.get("agent", "")).rsplit(".", 1)[-1], "agent")
        elif event.kind == "checkpoint" and isinstance(states.get(step), CheckpointState):
            state = states[step]
            assert isinstance(state, CheckpointState)
            site = Site(step, state.name, "checkpoint")
        if site is not None and site.step not in seen:
            seen.add(site.step)
            out.append(site)
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def schedule(
    cases: list[Case],
    sites: dict[str, list[Site]],
    classes: set[str],
    seed: int,
    repeat: int,
    chaos_rate: float = CHAOS_RATE,
) -> tuple[list[Job], list[Job]]:
    """(clean runs, fault runs) of every repetition; storm runs are fault runs with
    `storm` set, the runs of one storm next to each other."""
    clean: list[Job] = []
    faulted: list[Job] = []
    for r in range(1, repeat + 1):
        for case in cases:
            base = f"{_slug(case.file.removesuffix('.mn'))}.{case.name}.r{r}"
            clean.append(Job(case, r, f"{base}.clean"))
            for index, outcome in enumerate(case.under_faults):
                if outcome.fault not in classes:
                    continue
                draw = random.Random(f"{seed}:{case.id}:{r}:{index}")
                site = _place(case, sites.get(case.id, []), outcome.fault, outcome.at, draw)
                if site is None:
                    continue
                run_id = f"{base}.{outcome.fault}{index}"
                times = STORM_ATTEMPTS if outcome.fault == "retry_storm" else 1
                spec = FaultSpec(outcome.fault, site, times, outcome.expect)
                if outcome.fault == "approval_delay":
                    faulted.append(Job(case, r, run_id, spec, outcome.late or "past", site))
                elif outcome.fault == "retry_storm":
                    faulted.extend(
                        Job(case, r, f"{run_id}.s{n}", spec, storm=n)
                        for n in range(1, STORM_RUNS + 1)
                    )
                else:
                    faulted.append(Job(case, r, run_id, spec))
            chaos = [
                o.fault
                for o in case.under_faults
                if o.fault in CHAOS_CLASSES
                and o.fault in classes
                and o.at is None
                and o.expect == "same"
            ]
            if chaos and chaos_rate > 0:
                plan = FaultPlan(chaos=chaos_rate, seed=seed * 1000 + r, classes=tuple(chaos))
                faulted.append(Job(case, r, f"{base}.chaos", chaos=plan))
    return clean, faulted


def _place(
    case: Case, sites: list[Site], fault: str, at: str | None, draw: random.Random
) -> str | None:
    """Where a fault goes: its `at` (a step id, callee or checkpoint name), or a seeded
    pick among the places the clean run went through that the fault can hit."""
    if fault == "approval_delay":
        fitting = [s for s in sites if s.kind == "checkpoint"]
        if at is not None:
            fitting = [s for s in fitting if s.callee == at.rsplit(".", 1)[-1]]
        return draw.choice(fitting).callee if fitting else None
    fitting = [s for s in sites if s.kind in APPLIES_TO[fault]]
    if fault == "malformed_output":
        fitting = [s for s in fitting if not _text_agent(case, s.callee)]
    if at is not None:
        short = at.rsplit(".", 1)[-1]
        fitting = [s for s in fitting if s.callee == short]
    if fault == "retry_storm":
        limited = [s for s in fitting if _limited(case, s.callee)]
        fitting = limited or fitting
    return draw.choice(fitting).step if fitting else None


def _text_agent(case: Case, short: str) -> bool:
    return any(
        text_reply(case.program, name) for name in case.program.agents if name.endswith(short)
    )


def _limited(case: Case, callee: str) -> bool:
    program = case.program
    for decl in (*program.tools.values(), *program.effects.values()):
        if decl.name.rsplit(".", 1)[-1] == callee:
            return decl.limit is not None
    return False
