"""Driving one bench run to its end, as the world around a workflow would.

The run is created with its expectation in `meta` (for the metrics), then executed.
Whenever it waits, the harness answers like the people and systems around it: it takes
the scenario's decision at an open checkpoint (a decision that comes late makes the
checkpoint's timeout due, so the timeout decides), settles a repair by looking at what
the receiving system did (performed: mark it done with that result; not: retry), sends
the scenario's events, and otherwise moves the run's next timer (a retry backoff, a
`wait`) to now instead of sleeping. Then it resumes the run.

A fault that ends the process (`worker_crash`, `partial_effect`, `node_failure`) is
injected into a child process forked from a clean server process (multiprocessing's
`forkserver`), which really dies with `os._exit`. The harness then resumes the run here,
as `mnc resume` would (breaking the dead process's lease at once), or, after a
`node_failure`, as another node would: it waits until the dead node's lease has expired
by the store's clock, takes the run over with a new lease and goes on.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

from mnlang.bench import world
from mnlang.bench.models import scenario_model
from mnlang.bench.suite import Case
from mnlang.metrics.expect import EXPECT_META
from mnlang.models.setup import ModelSetup
from mnlang.runtime.clock import SYSTEM_CLOCK, VirtualClock
from mnlang.runtime.config import RuntimeConfig
from mnlang.runtime.decisions import DecisionError, DecisionRefused, decide
from mnlang.runtime.effects import WIRE_NONCE, new_wire_nonce
from mnlang.runtime.faults import (
    CRASH_FAULTS,
    CRASH_STATUS,
    FAULT_EVENT,
    FaultPlan,
    delay_approval,
)
from mnlang.runtime.pauses import checkpoint_timer
from mnlang.runtime.run import RunError, resume_run, run_with_lease, start_run, tool_hashes
from mnlang.stores.base import (
    TERMINAL_STATUSES,
    Batch,
    NewRun,
    RunRecord,
    SetTimer,
    Store,
    StoreError,
    split_address,
)

MAX_STEPS: Final = 60
"""Resumes after which a run that keeps waiting is given up on."""
NODE_LEASE_S: Final = 1.0
"""The lease of a node that will fail: short, so that the takeover does not wait long, and
long enough that a loaded machine renews it in time (at 0.4 s, 5 of 1,776 runs lost their
lease before their fault with eight processes sharing two cores)."""
OPERATOR: Final = "bench-operator"
"""Who decides repairs (a person looking at the receiving system)."""
TAKEOVER: Final = "bench-node-b"
LOST_CHILD: Final = 255
"""multiprocessing's status for a child whose fate the fork server could not report."""
LOST_CHILD_RETRIES: Final = 3


@dataclass(frozen=True)
class RunPlan:
    """One run of a case: its id, the fault to inject, and how approvals come."""

    run_id: str
    case: Case
    faults: FaultPlan | None = None
    late: str | None = None
    """For `approval_delay`: `past` or `near` the timeout."""
    approval_at: str | None = None
    expect: str | None = None
    """The expected outcome under the fault (for the metrics' fault recovery)."""
    real_clock: bool = False
    """Time the run by the system clock, shared with the other runs of this process (a
    retry storm); otherwise by its own virtual clock."""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def kill(self) -> str | None:
        """The fault that ends the process, if the plan has one."""
        for spec in self.faults.faults if self.faults is not None else ():
            if spec.fault in CRASH_FAULTS:
                return spec.fault
        return None


@dataclass
class Responder:
    """Answers a waiting run as the scenario says; one per run (or per naive attempt)."""

    store: Store
    case: Case
    world_path: str | None
    late: str | None = None
    approval_at: str | None = None
    expect: str | None = None
    decisions_used: Counter[str] = field(default_factory=Counter)
    events_sent: Counter[str] = field(default_factory=Counter)
    delayed: set[str] = field(default_factory=set)

    def respond(self, run_id: str) -> bool:
        """Do what the world does for a waiting run; False when nothing can move it."""
        store = self.store
        for checkpoint in store.open_checkpoints(run_id):
            request = checkpoint.request if isinstance(checkpoint.request, dict) else {}
            if request.get("kind") == "repair":
                self._repair(run_id, checkpoint.checkpoint_id, request)
                return True
            if self._approval_delay(run_id, checkpoint.checkpoint_id, checkpoint.name, request):
                return True
            if self._decide(run_id, checkpoint.checkpoint_id, checkpoint.name):
                return True
        record = store.get_run(run_id)
        for address in record.waiting_for if record is not None else []:
            name, key = split_address(address)
            payloads = self.case.events.get(name, [])
            sent = self.events_sent[name]
            if sent < len(payloads):
                self.events_sent[name] += 1
                store.send_signal(
                    run_id, name, payloads[sent], signal_id=f"bench:{name}:{sent}", key=key
                )
                return True
        return self._next_timer(run_id)

    def _repair(self, run_id: str, checkpoint_id: str, request: dict[str, Any]) -> None:
        done = None
        if self.world_path is not None:
            effect = str(request.get("effect", "")).rsplit(".", 1)[-1]
            done = world.performed_result(
                self.world_path, run_id, effect, request.get("args") or {}
            )
        with contextlib.suppress(DecisionRefused):
            if done is not None:
                decide(
                    self.store,
                    run_id,
                    checkpoint_id,
                    approve=True,
                    choice="mark_done",
                    by=OPERATOR,
                    comment="the receiving system has it",
                    result=done["result"],
                )
            else:
                decide(
                    self.store,
                    run_id,
                    checkpoint_id,
                    approve=True,
                    choice="retry",
                    by=OPERATOR,
                    comment="the receiving system does not have it",
                )

    def _approval_delay(
        self, run_id: str, checkpoint_id: str, name: str, request: dict[str, Any]
    ) -> bool:
        if self.late is None or checkpoint_id in self.delayed:
            return False
        if self.approval_at is not None and self.approval_at not in (name, request.get("step")):
            return False
        self.delayed.add(checkpoint_id)
        step = request.get("step")
        delay_approval(
            self.store,
            run_id,
            checkpoint_id,
            past=self.late == "past",
            expect=self.expect,
            step=step if isinstance(step, str) else None,
        )
        if self.late != "past":
            return False  # the decision still comes, just before the timeout
        self._decide(run_id, checkpoint_id, name)  # refused: the timeout decided first
        return True

    def _decide(self, run_id: str, checkpoint_id: str, name: str) -> bool:
        short = name.rsplit(".", 1)[-1]
        listed = self.case.decisions.get(short) or self.case.decisions.get(name) or []
        used = self.decisions_used[short]
        if used >= len(listed):
            return self._make_due(run_id, checkpoint_timer(checkpoint_id))
        decision = listed[min(used, len(listed) - 1)]
        self.decisions_used[short] += 1
        if decision.late:
            return self._make_due(run_id, checkpoint_timer(checkpoint_id))
        try:
            decide(
                self.store,
                run_id,
                checkpoint_id,
                approve=decision.choice == "approve",
                choice=decision.choice,
                by=decision.by,
                comment=decision.comment,
            )
        except DecisionRefused:
            pass  # its timeout decided first
        except DecisionError as e:
            raise RunError(f"scenario decision at `{short}`: {e.message}", help=e.help) from e
        return True

    def _next_timer(self, run_id: str) -> bool:
        timers = [
            t for t in self.store.run_timers(run_id) if not t.timer_id.startswith("checkpoint:")
        ]
        if not timers:
            timers = self.store.run_timers(run_id)
        return bool(timers) and self._make_due(run_id, timers[0].timer_id)

    def _make_due(self, run_id: str, timer_id: str) -> bool:
        """Let the time up to a timer pass at once: it is due now."""
        found = [t for t in self.store.run_timers(run_id) if t.timer_id == timer_id]
        if not found:
            return False
        self.store.commit(Batch(run_id, set_timers=[SetTimer(timer_id, 0.0, found[0].payload)]))
        return True


def bench_config(
    case: Case, plan: RunPlan | None, *, naive_faults: FaultPlan | None = None
) -> RuntimeConfig:
    """The runtime configuration of a bench run: the scenario's model, the fault plan,
    and a clock of its own (real for a storm, whose runs share the tools' limits)."""
    models = ModelSetup(spec=case.live or "bench", override=scenario_model(case))
    faults = naive_faults if plan is None else plan.faults
    real = plan is not None and plan.real_clock
    lease = NODE_LEASE_S if plan is not None and plan.kill == "node_failure" else 60.0
    return RuntimeConfig(
        models=models,
        faults=faults,
        clock=SYSTEM_CLOCK if real else VirtualClock(),
        lease_ttl_s=lease,
        workers=8,
    )


def create_run(store: Store, plan: RunPlan) -> None:
    """Create the run with its expectation, so the metrics can judge it later."""
    case = plan.case
    program = case.program
    store.put_program(program.hash, _ir_text(program))
    meta: dict[str, Any] = {
        "source_dir": program.source.dir,
        "tool_modules": tool_hashes(program),
        WIRE_NONCE: new_wire_nonce(),
        EXPECT_META: case.expectation.to_json(),
        "bench": {"case": case.id, **plan.meta},
    }
    store.create_run(
        NewRun(
            run_id=plan.run_id,
            workflow=case.workflow,
            args=case.args,
            workflow_class=case.workflow_class,
            ir_hash=program.hash,
            meta=meta,
        )
    )


_ir_cache: dict[str, str] = {}
_ir_lock = threading.Lock()


def _ir_text(program: Any) -> str:
    from mnlang.ir.load import dump_ir

    with _ir_lock:
        text = _ir_cache.get(program.hash)
        if text is None:
            text = _ir_cache[program.hash] = dump_ir(program)
        return text


class Harness:
    """Runs plans against one journal (`db`) and one world file, from several threads."""

    def __init__(self, store: Store, db_path: str, world_path: str | None) -> None:
        self.store = store
        self.db_path = db_path
        self.world_path = world_path
        self._start_lock = threading.Lock()
        self._mp = multiprocessing.get_context("forkserver")
        self._mp.set_forkserver_preload(
            [
                "mnlang.bench.harness",
                "mnlang.runtime.run",
                "mnlang.ir.load",
                "mnlang.stores.sqlite",
            ]
        )

    def drive(self, plan: RunPlan) -> RunRecord:
        """Create the run, run it to its end (through the faults), and return its record."""
        store = self.store
        create_run(store, plan)
        config = bench_config(plan.case, plan)
        responder = Responder(
            store, plan.case, self.world_path, plan.late, plan.approval_at, plan.expect
        )
        program = plan.case.program
        for step in range(MAX_STEPS):
            if plan.kill is not None and not self._fault_happened(plan.run_id):
                self._segment_in_child(plan, config, first=step == 0)
            elif step == 0:
                start_run(
                    store,
                    program,
                    plan.case.workflow,
                    plan.case.args,
                    run_id=plan.run_id,
                    config=config,
                )
            else:
                self._resume(plan, config)
            record = store.get_run(plan.run_id)
            assert record is not None
            if record.status in TERMINAL_STATUSES:
                return record
            if record.status == "waiting" and not responder.respond(plan.run_id):
                break
        record = store.get_run(plan.run_id)
        assert record is not None
        return record

    def _fault_happened(self, run_id: str) -> bool:
        return any(e.kind == FAULT_EVENT for e in self.store.read_journal(run_id))

    def _resume(self, plan: RunPlan, config: RuntimeConfig) -> None:
        store = self.store
        record = store.get_run(plan.run_id)
        if record is None or record.status in TERMINAL_STATUSES:
            return
        if plan.kill == "node_failure" and record.lease_owner:
            self._take_over(plan, config, record)
            return
        resume_run(store, plan.run_id, program=plan.case.program, config=config)

    def _take_over(self, plan: RunPlan, config: RuntimeConfig, record: RunRecord) -> None:
        """Another node: wait for the failed node's lease to expire, then run with ours."""
        store = self.store
        deadline = time.monotonic() + 10 * NODE_LEASE_S + 5
        while True:
            lease = store.acquire_lease(plan.run_id, TAKEOVER, config.lease_ttl_s)
            if lease is not None:
                break
            if time.monotonic() > deadline:
                raise RunError(f"run `{plan.run_id}`: the failed node's lease never expired")
            time.sleep(NODE_LEASE_S / 8)
        try:
            current = store.get_run(plan.run_id) or record
            run_with_lease(store, plan.case.program, current, lease, config, None, [])
        finally:
            with contextlib.suppress(StoreError):
                store.release_lease(lease)

    def _segment_in_child(self, plan: RunPlan, config: RuntimeConfig, *, first: bool) -> None:
        for _ in range(LOST_CHILD_RETRIES):
            child = self._mp.Process(
                target=_child_segment,
                args=(self.db_path, self.world_path, plan, first),
            )
            with self._start_lock:  # one fork request at a time through the server
                child.start()
            child.join()
            if child.exitcode != LOST_CHILD:
                break
        if child.exitcode not in (0, CRASH_STATUS):
            raise RunError(f"run `{plan.run_id}`: its process ended with status {child.exitcode}")


def _child_segment(db_path: str, world_path: str | None, plan: RunPlan, first: bool) -> None:
    """In the child process: start or resume the run until it ends, waits or dies."""
    import os

    from mnlang.stores.sqlite import SQLiteStore

    config = bench_config(plan.case, plan)
    if world_path is not None:
        os.environ[world.WORLD_ENV] = world_path
    with SQLiteStore(db_path, durability="fast") as store:
        if first:
            start_run(
                store,
                plan.case.program,
                plan.case.workflow,
                plan.case.args,
                run_id=plan.run_id,
                config=config,
            )
        else:
            resume_run(store, plan.run_id, program=plan.case.program, config=config)
