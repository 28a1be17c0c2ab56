"""Starting and resuming runs: the runtime's entry points.

`start_run` checks the input against the workflow's parameters, keeps the compiled
program in the store (so the run can resume without its source), creates the run (an
existing id returns that run instead of starting a duplicate) and executes it.
`resume_run` executes a run from its last commit. Either holds the run's lease while it
executes; a lease left behind by a process of this machine that no longer exists is
broken, so a run can be resumed right after its process was killed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import threading
import uuid
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from mnlang.deep import RUN_RECURSION_LIMIT, deeper
from mnlang.ir.load import IRLoadError, dump_ir, parse_ir
from mnlang.ir.model import IRProgram, WorkflowIR
from mnlang.models.setup import MODELS_META
from mnlang.runtime.agents import stored_setup
from mnlang.runtime.config import RuntimeConfig
from mnlang.runtime.convert import ConversionError, Converter
from mnlang.runtime.effects import WIRE_NONCE, args_hash, new_wire_nonce
from mnlang.runtime.evaluate import Evaluator, MapEnv
from mnlang.runtime.faults import FAULTS_META, FaultPlan, delay_open_approvals
from mnlang.runtime.interpreter import Interpreter, RunAborted
from mnlang.runtime.journal import Observer
from mnlang.runtime.ports import RunEnd
from mnlang.runtime.run_error import RunError as RunError  # re-exported: its old home
from mnlang.runtime.serving import run_needs
from mnlang.runtime.values import Value, to_plain
from mnlang.stores.base import (
    TERMINAL_STATUSES,
    Json,
    Lease,
    NewRun,
    RunLimitReached,
    RunNotFound,
    RunRecord,
    RunRemoved,
    RunState,
    RunStatus,
    Store,
    StoreError,
    Tombstone,
)


class InputError(RunError):
    """The input does not fit the workflow's parameters."""


class RunBusy(RunError):
    """Another live process holds the run."""


class RunConflict(RunError):
    """A start named an existing run but gave other input: both inputs are kept here,
    as the JSON the run stores (`existing`) and as given (`given`)."""

    def __init__(self, run_id: str, existing: Json, given: Json) -> None:
        def shown(value: Json) -> str:
            return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)

        super().__init__(
            f"run `{run_id}` already exists with other input",
            help=f"it was started with {shown(existing)}, this start gives {shown(given)}: "
            "pick another `--id`, or start it with the input it has",
        )
        self.run_id = run_id
        self.existing = existing
        self.given = given


def input_hash(program: IRProgram, workflow: WorkflowIR, given: Any) -> str:
    """The canonical hash of a workflow's input, as the effect ledger hashes arguments:
    `240.0` and `240.00` are one money amount, and an omitted parameter is its default."""
    return args_hash(prepare_args(program, workflow, given))


@dataclass
class RunOutcome:
    """Where a run stands after `start_run` or `resume_run` returned."""

    run_id: str
    workflow: str
    status: RunStatus
    result: Json = None
    error: Json = None
    created: bool = False
    """A new run was started (False: the id named an existing run)."""
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Json]:
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "status": self.status,
            "result": self.result,
            "error": self.error,
            "created": self.created,
            "warnings": self.warnings,
        }


def prepare_args(program: IRProgram, workflow: WorkflowIR, given: Any) -> dict[str, Value]:
    """The workflow's arguments from a JSON object; `InputError` names what does not fit."""
    names = ", ".join(f"`{p.name}: {p.type}`" for p in workflow.params) or "none"
    if not isinstance(given, dict):
        raise InputError(
            "the input must be a JSON object of the workflow's arguments",
            help=f"`{workflow.name}` takes {names}",
        )
    known = {p.name for p in workflow.params}
    unknown = sorted(k for k in given if k not in known)
    if unknown:
        raise InputError(
            f"`{workflow.name}` has no parameter `{unknown[0]}`", help=f"its parameters: {names}"
        )
    evaluator = Evaluator()
    converter = Converter(program.types, evaluator)
    args: dict[str, Value] = {}
    for param in workflow.params:
        if param.name in given:
            try:
                args[param.name] = converter.inbound(
                    given[param.name], param.type, f"input.{param.name}"
                )
            except ConversionError as e:
                raise InputError(
                    f"input `{e.path}`: {e.message}", help=f"`{workflow.name}` takes {names}"
                ) from None
        elif param.default is not None:
            args[param.name] = evaluator.eval(param.default, MapEnv(args))
        elif param.type.kind == "optional":
            args[param.name] = None
        else:
            raise InputError(
                f"the input has no `{param.name}` (a {param.type})",
                help=f"`{workflow.name}` takes {names}",
            )
    return args


def tool_hashes(program: IRProgram) -> dict[str, str | None]:
    """The sha256 of each tool module file as it is now, by its path in the program."""
    out: dict[str, str | None] = {}
    for module in program.source.tool_modules:
        path = Path(program.source.dir) / module.path
        try:
            out[module.path] = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            out[module.path] = None
    return out


def changed_tools(record: RunRecord, program: IRProgram) -> list[str]:
    """Warnings for the tool modules whose file changed since the run started."""
    recorded = record.meta.get("tool_modules") or {}
    now = tool_hashes(program)
    return [
        f"tool module `{path}` changed since the run started"
        for path, digest in sorted(recorded.items())
        if now.get(path) != digest
    ]


def start_run(
    store: Store,
    program: IRProgram,
    workflow: str,
    given: Any,
    *,
    run_id: str | None = None,
    config: RuntimeConfig | None = None,
    observer: Observer | None = None,
    detach: bool = False,
    started_by: str | None = None,
    traceparent: str | None = None,
) -> RunOutcome:
    """Start a workflow and execute it until it ends or waits; with `detach`, only create
    the run, for a worker (`mnc worker`) to execute. `started_by` (the API's user) is kept
    in the run's `meta`; a W3C `traceparent` makes the run's trace (`mnlang.telemetry`) a
    part of the caller's."""
    start = prepare_start(
        program,
        workflow,
        given,
        run_id=run_id,
        config=config,
        started_by=started_by,
        traceparent=traceparent,
    )
    store.put_program(program.hash, dump_ir(program))
    try:
        record, created = store.create_run(start.run)
    except RunRemoved as e:
        return start.removed(e.tombstone)
    outcome = start.answer(record, created, detach=detach)
    if outcome is not None:
        return outcome
    return _execute(store, program, record, config, observer, created=created)


@dataclass
class PreparedStart:
    """A start whose input was checked: the run to create, and what judges the answer
    once the store created it or found one with its id (`create_run`, `create_runs`)."""

    program: IRProgram
    workflow: WorkflowIR
    args: dict[str, Value]
    given: Any
    run: NewRun

    def answer(self, record: RunRecord, created: bool, *, detach: bool) -> RunOutcome | None:
        """The start's outcome; `None` when the run is to be executed here (not `detach`).
        `RunConflict` when the id names a run with other input, `RunError` when it names
        a run of another program or workflow."""
        if not created:
            if record.ir_hash != self.program.hash or record.workflow != self.workflow.name:
                raise RunError(
                    f"run `{record.run_id}` already exists for another program or workflow",
                    help="pick another `--id`, or `mnc resume` the existing run",
                )
            if record.args is not None and input_hash(
                self.program, self.workflow, record.args
            ) != args_hash(self.args):
                raise RunConflict(record.run_id, record.args, self.given)
            if record.status != "running":
                return _outcome(record)
        elif record.status == "waiting":
            # Created beyond the workflow's `limit`: queued until a slot frees.
            outcome = _outcome(record, [_queued_note(self.workflow)])
            outcome.created = True
            return outcome
        if detach:
            outcome = _outcome(record)
            outcome.created = created
            return outcome
        return None

    def removed(self, tombstone: Tombstone) -> RunOutcome:
        """The outcome when `mnc gc` removed a run with this id (`RunRemoved`)."""
        return _removed_outcome(tombstone, self.program, self.workflow, self.args, self.given)


def prepare_start(
    program: IRProgram,
    workflow: str,
    given: Any,
    *,
    run_id: str | None = None,
    config: RuntimeConfig | None = None,
    started_by: str | None = None,
    traceparent: str | None = None,
) -> PreparedStart:
    """Check a start's input (`InputError`, `RunError`) and make the run it creates; the
    program must be in the store (`put_program`) before the run is created."""
    if workflow not in program.workflows:
        known = ", ".join(f"`{w}`" for w in program.workflows) or "none"
        raise RunError(f"no workflow `{workflow}` in the program", help=f"workflows: {known}")
    wf = program.workflows[workflow]
    args = prepare_args(program, wf, given)
    meta = (
        start_meta(program, config)
        | ({"started_by": started_by} if started_by is not None else {})
        | ({TRACEPARENT_META: traceparent} if traceparent else {})
    )
    run_id = run_id or f"{wf.name.rsplit('.', 1)[-1]}-{uuid.uuid4().hex[:12]}"
    return PreparedStart(program, wf, args, given, new_run(program, wf, args, run_id, meta))


def new_run(
    program: IRProgram,
    workflow: WorkflowIR,
    args: dict[str, Value],
    run_id: str,
    meta: dict[str, Json],
) -> NewRun:
    """The run to create for `workflow` with its checked `args` (`prepare_args`) and its
    `meta` (`start_meta` and more): a start's (`prepare_start`) or a schedule's fire."""
    return NewRun(
        run_id=run_id,
        workflow=workflow.name,
        args=to_plain(args),
        workflow_class=workflow.options.class_ or "",
        ir_hash=program.hash,
        meta=meta,
        limit=workflow.options.limit,
        needs=run_needs(program, meta),
    )


def _removed_outcome(
    t: Tombstone,
    program: IRProgram,
    workflow: WorkflowIR,
    args: dict[str, Value],
    given: Any,
) -> RunOutcome:
    """A start naming a run that `mnc gc` removed answers from its tombstone as it did
    before: the ended run for the same program, workflow and input, else the refusal."""
    if t.ir_hash != program.hash or t.workflow != workflow.name:
        raise RunError(
            f"run `{t.run_id}` already exists for another program or workflow "
            "(it ended and `mnc gc` removed it)",
            help="pick another `--id`",
        )
    if t.input_hash != args_hash(args):
        raise RunConflict(t.run_id, {"removed_by_gc": True, "input_hash": t.input_hash}, given)
    outcome = RunOutcome(t.run_id, t.workflow, t.status)
    outcome.warnings.append(
        f"run `{t.run_id}` ended ({t.status}) and was removed by `mnc gc`: "
        "its result is in the archive, if one was written"
    )
    return outcome


def _queued_note(workflow: WorkflowIR) -> str:
    return (
        f"queued: `{workflow.name}` has {workflow.options.limit} runs running, its `limit`; "
        "a worker (`mnc worker`) starts this one when a slot frees, or `mnc resume` it then"
    )


TRACEPARENT_META = "traceparent"
"""The run's `meta` key of the W3C `traceparent` it was started with."""


def start_meta(program: IRProgram, config: RuntimeConfig | None) -> dict[str, Json]:
    """A new run's `meta`: where its program and tools came from, and the model setup it
    was started with (so a resume or a worker answers its agents the same way)."""
    meta: dict[str, Json] = {
        "source_dir": program.source.dir,
        "tool_modules": tool_hashes(program),
        WIRE_NONCE: new_wire_nonce(),
    }
    models = stored_setup(config.models) if config is not None else None
    if models is not None:
        meta[MODELS_META] = models
    if config is not None and config.faults is not None and config.faults.active:
        meta[FAULTS_META] = config.faults.to_json()
    return meta


def resume_run(
    store: Store,
    run_id: str,
    *,
    program: IRProgram | None = None,
    config: RuntimeConfig | None = None,
    observer: Observer | None = None,
) -> RunOutcome:
    """Go on with a run from its last commit; a run that has ended is only reported."""
    record = store.get_run(run_id, args=False)
    if record is None:
        raise RunNotFound(f"no run `{run_id}`", help="`mnc runs` lists the runs of this journal")
    if record.status in TERMINAL_STATUSES:
        return _outcome(record)
    return _execute(store, program or load_program(store, record), record, config, observer)


def continue_run(
    store: Store,
    run_id: str,
    *,
    config: RuntimeConfig | None = None,
    observer: Observer | None = None,
) -> list[RunOutcome]:
    """Go on with a run here once what it waited for arrived (a decision, a signal).

    Returns its outcome, then the outcome of each parent that went on because the run
    ended (a child's end wakes the parent). A run that another process executes is left
    to it, and the outcome says so.
    """
    outcomes = [_continue_one(store, run_id, config, observer)]
    record = store.get_run(run_id)
    parent = record.parent_run_id if record is not None else None
    while parent is not None and outcomes[-1].status in TERMINAL_STATUSES:
        above = store.get_run(parent)
        if above is None or above.status != "waiting":
            break
        outcomes.append(_continue_one(store, parent, config, None))
        parent = above.parent_run_id
    return outcomes


def _continue_one(
    store: Store, run_id: str, config: RuntimeConfig | None, observer: Observer | None
) -> RunOutcome:
    try:
        return resume_run(store, run_id, config=config, observer=observer)
    except RunBusy:
        current = store.get_run(run_id)
        if current is None:
            raise
        outcome = _outcome(current)
        outcome.warnings.append("another process is executing the run; it goes on there")
        return outcome


def load_program(store: Store, record: RunRecord) -> IRProgram:
    text = store.get_program(record.ir_hash)
    if text is None:
        raise RunError(
            f"the program of run `{record.run_id}` is not in the journal",
            help="the journal was written by a tool that did not keep programs",
        )
    try:
        return parse_ir(text, f"program {record.ir_hash[:12]}")
    except IRLoadError as e:
        raise RunError(f"the program of run `{record.run_id}`: {e.message}", help=e.help) from None


def _outcome(record: RunRecord, warnings: list[str] | None = None) -> RunOutcome:
    return RunOutcome(
        record.run_id,
        record.workflow,
        record.status,
        record.result,
        record.error,
        warnings=warnings or [],
    )


def _execute(
    store: Store,
    program: IRProgram,
    record: RunRecord,
    config: RuntimeConfig | None,
    observer: Observer | None,
    *,
    created: bool = False,
) -> RunOutcome:
    config = config or RuntimeConfig.from_env()
    warnings = [] if created else changed_tools(record, program)
    try:
        lease = _take_lease(store, record, config)
    except RunLimitReached:
        current = store.get_run(record.run_id) or record
        return _outcome(current, [*warnings, _queued_note(program.workflows[record.workflow])])
    try:
        end = run_with_lease(store, program, record, lease, config, observer, warnings)
    finally:
        with contextlib.suppress(StoreError):  # an expired or taken-over lease needs none
            store.release_lease(lease)
    if end.status == "waiting" and _late_approvals(store, record):
        # The run's fault plan makes a person's decision come after the timeout: the
        # timeout decides now, in whichever process left the run waiting.
        return _execute(store, program, record, config, observer, created=created)
    outcome = RunOutcome(
        record.run_id,
        record.workflow,
        end.status,
        end.result,
        end.error,
        created=created,
        warnings=warnings,
    )
    return outcome


def _late_approvals(store: Store, record: RunRecord) -> bool:
    """Apply the `approval_delay` faults of the run's journaled plan to its open
    checkpoints; True when one was applied (a child run's share of a plan has none)."""
    plan = FaultPlan.from_json(record.meta.get(FAULTS_META))
    if plan is None or plan.targets is not None:
        return False
    if not any(spec.fault == "approval_delay" for spec in plan.faults):
        return False
    return delay_open_approvals(store, record.run_id, plan)


def run_with_lease(
    store: Store,
    program: IRProgram,
    record: RunRecord,
    lease: Lease | None,
    config: RuntimeConfig,
    observer: Observer | None,
    warnings: list[str],
    stop: threading.Event | None = None,
    state: RunState | None = None,
) -> RunEnd:
    """Execute a run whose lease the caller holds, until it ends, waits or `stop` is set.
    `state` is the run's state if the caller loaded it after taking the lease."""
    # The record as of the lease: what happened meanwhile (a cancel request) counts.
    if state is None:
        state = store.load_state(record.run_id)
    record = state.run
    interpreter = Interpreter(
        store,
        program,
        record,
        lease=lease,
        config=config,
        observer=observer,
        child_runner=partial(_run_child, store, program, config, stop),
        stop=stop,
    )
    for warning in warnings:
        interpreter.journal.event("warning", {"message": warning})
    if state.cursors:
        interpreter.restore(state)
    else:
        # A run that has not started: its arguments, which the state leaves out.
        given = store.get_run(record.run_id)
        if given is None:
            raise RunNotFound(f"no run `{record.run_id}`")
        workflow = program.workflows[record.workflow]
        interpreter.start(prepare_args(program, workflow, given.args))
    try:
        with deeper(RUN_RECURSION_LIMIT):
            return interpreter.execute(state.clock_offset)
    except RunAborted as e:
        raise RunError(str(e), help="another worker took the run over") from None


def _run_child(
    store: Store,
    program: IRProgram,
    config: RuntimeConfig,
    stop: threading.Event | None,
    run_id: str,
) -> RunEnd:
    record = store.get_run(run_id, args=False)
    if record is None:
        raise RunNotFound(f"no child run `{run_id}`")
    if record.status in TERMINAL_STATUSES:
        return RunEnd(record.status, record.result, record.error)
    try:
        lease = _take_lease(store, record, config)
    except (RunBusy, RunLimitReached):
        # Another worker executes the child, or will once its workflow has a free slot;
        # the child's last commit wakes the parent.
        return RunEnd("waiting")
    try:
        end = run_with_lease(store, program, record, lease, config, None, [], stop)
        # A child stopped by a shutting-down worker goes on elsewhere, like a waiting one.
        return RunEnd("waiting") if end.status == "running" else end
    finally:
        with contextlib.suppress(StoreError):
            store.release_lease(lease)


# --- leases -------------------------------------------------------------------------------

_HOST = socket.gethostname()


def _owner() -> str:
    return f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _take_lease(store: Store, record: RunRecord, config: RuntimeConfig) -> Lease:
    lease = store.acquire_lease(record.run_id, _owner(), config.lease_ttl_s)
    if lease is not None:
        return lease
    current = store.get_run(record.run_id, args=False)
    if current is not None and current.lease_owner and _owner_is_dead(current.lease_owner):
        store.release_lease(
            Lease(
                current.run_id,
                current.lease_owner,
                current.lease_epoch,
                current.lease_expires_at or 0.0,
            )
        )
        lease = store.acquire_lease(record.run_id, _owner(), config.lease_ttl_s)
        if lease is not None:
            return lease
    holder = current.lease_owner if current is not None else "another worker"
    raise RunBusy(
        f"run `{record.run_id}` is being executed by `{holder}`",
        help="wait for it to finish, or for its lease to expire if that process died",
    )


def _owner_is_dead(owner: str) -> bool:
    """Whether a lease owner (`host:pid:nonce`) is a process of this host that has ended."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != _HOST or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] == "Z"
