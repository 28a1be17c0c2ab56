"""The library functions behind the `mnc` commands; programs can call them directly.

Each function takes plain values and returns plain results: no printing, no exit
codes; the CLI turns results into output.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from mnlang.diagnostics import Diagnostic
    from mnlang.ir.model import AgentIR, IRProgram
    from mnlang.models.setup import ModelSetup
    from mnlang.replay.batch import BatchItem
    from mnlang.replay.engine import ReplayReport
    from mnlang.replay.fork import ForkOutcome
    from mnlang.report import Located, Sources
    from mnlang.retention import GcPolicy, GcReport
    from mnlang.runtime.decisions import Decided
    from mnlang.runtime.faults import FaultPlan
    from mnlang.runtime.journal import Observer
    from mnlang.runtime.recovery import BulkRetried, RunFilter
    from mnlang.runtime.run import RunOutcome
    from mnlang.runtime.serving import ChangedCode
    from mnlang.runtime.signals import Delivered
    from mnlang.runtime.upgrade import Verdict
    from mnlang.runtime.views import RunDetails
    from mnlang.runtime.worker import Logger, Worker, WorkerStats
    from mnlang.stores.base import (
        Delivery,
        Durability,
        Event,
        Json,
        Quarantine,
        RunRecord,
        RunStatus,
        ScheduleRecord,
        Store,
    )
    from mnlang.testing.from_run import WrittenScenario


class FileCheck(msgspec.Struct):
    """The outcome of checking one file given on the command line (and what it imports)."""

    path: str  # as given, normalised by `Path`
    diagnostics: list[Diagnostic]


def _empty_sources() -> Sources:
    # Here, not at the top: `mnc runs` and `mnc show` import this module, never a report.
    from mnlang.report import Sources

    return Sources()


class CheckReport(msgspec.Struct):
    files: list[FileCheck]
    strict: bool = False
    # Source texts by the file names the spans use, for rendering excerpts.
    sources: Sources = msgspec.field(default_factory=_empty_sources)

    @property
    def items(self) -> list[Located]:
        """Every diagnostic once, with its file: a module imported by several checked files
        reports its problems once."""
        from mnlang.report import Located

        seen: set[tuple[str, str, object]] = set()
        out: list[Located] = []
        for f in self.files:
            for d in f.diagnostics:
                key = (d.code, d.message, d.span or f.path)
                if key not in seen:
                    seen.add(key)
                    out.append(Located(d, f.path))
        return out

    @property
    def errors(self) -> int:
        return sum(1 for i in self.items if i.diagnostic.severity == "error")

    @property
    def warnings(self) -> int:
        return sum(1 for i in self.items if i.diagnostic.severity == "warning")

    @property
    def ok(self) -> bool:
        """No errors, and no warnings either when `strict`."""
        return not self.errors and not (self.strict and self.warnings)


def check_files(
    paths: Sequence[str | Path],
    strict: bool = False,
    *,
    impls: bool = True,
    allow_import: bool = True,
) -> CheckReport:
    """Check each `.mn` file and what it imports; a file that cannot be read (missing, a
    directory, not UTF-8, too large) is reported as a diagnostic, never raised. With
    `impls`, the Python functions behind tools and effects are checked too
    (`mnlang.checker.impls`; importing a module only when `allow_import`), and the agents'
    providers are looked up (`mnlang.checker.providers`)."""
    from mnlang.checker import check
    from mnlang.checker.impls import check_impls
    from mnlang.checker.providers import check_providers
    from mnlang.sources import read_source
    from mnlang.syntax.parser import gc_paused

    report = CheckReport([], strict)
    for given in paths:
        path = Path(given)
        text, problem = read_source(path)
        if problem is not None:
            report.files.append(FileCheck(str(path), [problem]))
            continue
        assert text is not None
        with gc_paused():
            result = check(path, text=text)
        if impls and result.program is not None:
            result.diagnostics += check_impls(result.program, allow_import=allow_import)
            result.diagnostics += check_providers(result.program)
        report.sources.texts[str(path.resolve())] = text
        if result.program is not None:
            for module in result.program.modules.values():
                report.sources.texts.setdefault(str(module.path), module.tree.source)
        report.files.append(FileCheck(str(path), result.diagnostics))
    return report


# ---- runs ----------------------------------------------------------------------------


class CompileFailed(Exception):
    """The source given to `start_run` has errors; `diagnostics` says which."""

    def __init__(self, path: str, diagnostics: list[Diagnostic]) -> None:
        super().__init__(f"{path} has errors")
        self.path = path
        self.diagnostics = diagnostics


def _open_store(
    db: str | Path | None, durability: Durability = "full", *, create: bool = False
) -> Store:
    """The journal. Only what starts runs (`create`) may create one: everything else reads
    or acts on runs already there, and never leaves an empty journal in the wrong folder."""
    from mnlang.stores import open_store

    return open_store(db, durability, existing=not create)


def load_program(source: str | Path) -> IRProgram:
    """A `.mn` file checked and compiled, or a compiled IR `.json` file loaded.

    Raises `CompileFailed` (with the diagnostics) or `mnlang.ir.load.IRLoadError`.
    """
    from mnlang.ir.load import load_or_compile

    program, diagnostics = load_or_compile(source)
    if program is None:
        raise CompileFailed(str(source), diagnostics)
    return program


def default_workflow(program: IRProgram) -> str:
    """The workflow to run when none is named: the only one the root file declares."""
    from mnlang.runtime.run import RunError

    own = [name for name in program.workflows if "." not in name]
    if len(own) == 1:
        return own[0]
    known = ", ".join(f"`{w}`" for w in program.workflows) or "none"
    raise RunError(
        "the program declares no workflow" if not own else "the program has several workflows",
        help=f"name one with `--workflow` (workflows: {known})",
    )


def start_run(
    source: str | Path | IRProgram,
    given: object = None,
    *,
    workflow: str | None = None,
    run_id: str | None = None,
    db: str | Path | None = None,
    durability: Durability = "full",
    observer: Observer | None = None,
    faults: FaultPlan | None = None,
    detach: bool = False,
    models: str | None = None,
    traceparent: str | None = None,
) -> RunOutcome:
    """Compile (or load) a program and run a workflow until it completes, fails, is
    cancelled or waits. `given` is the JSON object of arguments; `run_id` makes the start
    idempotent: an existing run with that id and the same input (by its canonical hash)
    is returned, not started again; other input raises `RunConflict` with both. With
    `detach` the run is only created, for a worker to execute. `faults` are injected into the run (`mnlang.runtime.faults`; a `FaultError` when one cannot
    hit the workflow); its approval delays make a checkpoint's timeout decide. `models`
    says who answers the agents (`scripted:FILE`, `scripted` or `openai`, see
    `mnlang.models.setup`; None: `MNC_MODELS`, `MNC_REPLIES`, else `openai`), in this run
    and whenever it resumes. A provider that cannot answer (no key for a public API) is a
    `RunError` before any run is created, unless the run is only created (`detach`): the
    worker that executes it has its own environment. `traceparent` (W3C) puts the run's
    spans in the caller's trace (docs/observability.md)."""
    from dataclasses import replace

    from mnlang.runtime import run
    from mnlang.runtime.config import RuntimeConfig

    program = source if not isinstance(source, str | Path) else load_program(source)
    name = workflow or default_workflow(program)
    if faults is not None:
        faults.check(program, name)
    setup = _model_setup(program, models)
    if not detach:
        why = setup.refusal(workflow_agents(program, name))
        if why is not None:
            raise run.RunError(
                f"cannot answer the agents of `{name}`: {why}",
                help="no run was created",
            )
    config = replace(RuntimeConfig.from_env(), models=setup.spec, faults=faults)
    from mnlang.runtime.preflight import preflight

    preflight(program, name, {} if given is None else given, models)
    with _open_store(db, durability, create=True) as store:
        outcome = run.start_run(
            store,
            program,
            name,
            {} if given is None else given,
            run_id=run_id,
            observer=observer,
            config=config,
            detach=detach,
            traceparent=traceparent,
        )
        return outcome


def _model_setup(program: IRProgram, models: str | None) -> ModelSetup:
    from mnlang.models.setup import ModelSetup, ModelSpecError
    from mnlang.runtime.run import RunError

    try:
        return ModelSetup.from_spec(models, program.source.dir)
    except ModelSpecError as e:
        raise RunError(str(e)) from None


def workflow_agents(program: IRProgram, workflow: str) -> list[AgentIR]:
    """The agents a workflow may call, through the workflows it calls too."""
    from mnlang.ir.states import CallState, ChildState

    seen: set[str] = set()
    found: dict[str, AgentIR] = {}
    todo = [workflow]
    while todo:
        name = todo.pop()
        if name in seen or name not in program.workflows:
            continue
        seen.add(name)
        for state in program.workflows[name].states.values():
            if isinstance(state, CallState) and state.callee_kind == "agent":
                found[state.callee] = program.agents[state.callee]
            elif isinstance(state, ChildState):
                todo.append(state.workflow)
    return [found[key] for key in sorted(found)]


def answering_models(
    program: IRProgram, models: str | None = None, *, workflow: str | None = None
) -> str | None:
    """Who answers a workflow's agents, in one line (`mnc run` prints it); None when the
    workflow calls no agent."""
    agents = workflow_agents(program, workflow or default_workflow(program))
    if not agents:
        return None
    return _model_setup(program, models).describe(agents)


def resume_run(
    run_id: str,
    *,
    db: str | Path | None = None,
    durability: Durability = "full",
    observer: Observer | None = None,
) -> RunOutcome:
    """Go on with a run from its last commit (an ended run is only reported)."""
    from mnlang.runtime import run

    with _open_store(db, durability) as store:
        return run.resume_run(store, run_id, observer=observer)


def get_run(run_id: str, *, db: str | Path | None = None) -> RunDetails:
    """A run's status, position, pending work and evidence (what `mnc show` prints).
    A damaged run is refused (`DamagedRow`), saying also whether a worker quarantined it."""
    from mnlang.runtime.views import run_details
    from mnlang.stores.base import DamagedRow

    with _open_store(db) as store:
        try:
            return run_details(store, run_id)
        except DamagedRow as e:
            quarantine = store.quarantined_runs().get(run_id)
            if quarantine is not None:
                from mnlang.run_output import quarantine_help

                e.help = f"{quarantine_help(run_id, quarantine)}; {e.help}"
            raise


class NotPublished(Exception):
    """The run has not published the name (yet, or by the end of the wait)."""

    def __init__(self, message: str, *, help: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.help = help


def get_published(
    run_id: str,
    name: str | None = None,
    *,
    wait_s: float = 0.0,
    poll_s: float = 0.2,
    db: str | Path | None = None,
) -> Json:
    """The value `run_id` published as `name` (`publish name = value`), or all its published
    values as an object when `name` is None. Only committed values are seen. With `wait_s`,
    waits up to that long for the name to appear; `NotPublished` when it does not (or the
    run ended without publishing it), `RunNotFound` for an unknown run."""
    import time

    from mnlang.stores.base import RunNotFound

    deadline = time.monotonic() + max(wait_s, 0.0)
    with _open_store(db) as store:
        while True:
            record = store.get_run(run_id, args=False)
            if record is None:
                raise RunNotFound(
                    f"no run `{run_id}`", help="`mnc runs` lists the runs of this journal"
                )
            published = record.meta.get("published")
            values = dict(published) if isinstance(published, dict) else {}
            if name is None:
                return values
            if name in values:
                return values[name]
            ended = record.status in ("completed", "failed", "cancelled")
            if ended or time.monotonic() >= deadline:
                shown = ", ".join(f"`{n}`" for n in sorted(values)) or "nothing yet"
                state = f"ended ({record.status})" if ended else record.status
                raise NotPublished(
                    f"run `{run_id}` ({state}) has not published `{name}`",
                    help=f"it has published {shown}"
                    + ("" if ended else "; `--wait 30s` waits for it"),
                )
            time.sleep(min(poll_s, max(deadline - time.monotonic(), 0.0)))


def list_runs(
    *,
    status: RunStatus | None = None,
    workflow: str | None = None,
    limit: int = 100,
    db: str | Path | None = None,
) -> list[RunRecord]:
    """Runs, newest first."""
    with _open_store(db) as store:
        return store.list_runs(status=status, workflow=workflow, limit=limit)


class JournalCheck(msgspec.Struct):
    """What `mnc db check` found: how many runs it read, each damaged row's message, and
    the runs workers quarantined (by run id)."""

    runs: int
    damaged: list[str]
    quarantined: dict[str, Quarantine]


def check_journal(*, db: str | Path | None = None) -> JournalCheck:
    """Read every run's rows (run, state, journal, signals, timers, checkpoints) through
    the store and report each that does not decode, and the quarantined runs; nothing is
    written."""
    damaged: list[str] = []
    with _open_store(db) as store:
        runs = store.list_runs(limit=2**62)
        for run in runs:
            damaged += _damaged_rows(store, run.run_id, run.damaged)
        return JournalCheck(len(runs), damaged, store.quarantined_runs())


def _damaged_rows(store: Store, run_id: str, own_row: str | None) -> list[str]:
    """The message of each of a run's rows that does not decode; `own_row` is why its
    `runs` row does not, if it does not (the others are then left unread)."""
    from mnlang.stores.base import DamagedRow

    if own_row:
        return [own_row]
    readers: list[Callable[[str], object]] = [
        store.load_state,
        store.read_journal,
        store.pending_signals,
        store.run_timers,
        store.open_checkpoints,
    ]
    found = []
    for read in readers:
        try:
            read(run_id)
        except DamagedRow as e:
            found.append(e.message)
    return found


class NotReleased(Exception):
    """`release_run` refused: the run is not quarantined, or its rows are still damaged."""

    def __init__(self, message: str, *, help: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.help = help


def release_run(run_id: str, *, db: str | Path | None = None) -> Quarantine:
    """Let workers claim a quarantined run again, once its damage is repaired; the
    quarantine it had. Refused, changing nothing, for an unknown run (`RunNotFound`), a
    run that is not quarantined, or one whose rows `mnc db check` still finds damaged."""
    from mnlang.stores.base import DamagedRow
    from mnlang.stores.common import run_not_found

    with _open_store(db) as store:
        own_row = None
        try:
            found = store.get_run(run_id) is not None
        except DamagedRow as e:
            found, own_row = True, e.message
        if not found:
            raise run_not_found(run_id)
        if run_id not in store.quarantined_runs():
            raise NotReleased(
                f"run `{run_id}` is not quarantined",
                help="`mnc db check` lists the quarantined runs",
            )
        damaged = _damaged_rows(store, run_id, own_row)
        if damaged:
            raise NotReleased(
                f"run `{run_id}` is still damaged: {'; '.join(damaged)}",
                help="repair or restore its rows first (a worker would quarantine it again); "
                "nothing was released",
            )
        released = store.release_quarantine(run_id)
        if released is None:
            raise NotReleased(
                f"run `{run_id}` was released by someone else meanwhile",
                help="`mnc runs` shows where it stands",
            )
        return released


def run_journal(run_id: str, *, db: str | Path | None = None) -> list[Event]:
    """A run's journal, oldest event first."""
    from mnlang.stores.base import RunNotFound

    with _open_store(db) as store:
        if store.get_run(run_id) is None:
            raise RunNotFound(
                f"no run `{run_id}`", help="`mnc runs` lists the runs of this journal"
            )
        return store.read_journal(run_id)


def checkpoint_names(
    run_id: str, events: Sequence[Event], *, db: str | Path | None = None
) -> dict[str, str]:
    """The names of the checkpoints these journal events of a run opened, by their ids
    (state ids such as `if#2/then/decision`), so that a reader sees `review`."""
    ids = {str(e.data["id"]) for e in events if e.kind == "checkpoint" and isinstance(e.data, dict)}
    names: dict[str, str] = {}
    with _open_store(db) as store:
        for checkpoint_id in sorted(ids):
            found = store.get_checkpoint(run_id, checkpoint_id)
            if found is not None:
                names[checkpoint_id] = found.name
    return names


def cancel_run(run_id: str, *, by: str | None = None, db: str | Path | None = None) -> RunOutcome:
    """Cancel a run. A run nobody is executing is taken up at once so that its `finally`
    bodies and compensations run; a run another process executes stops at its next step.
    `by` (default: the operating system's user) is kept as who asked
    (`RunRecord.cancel_requested_by`) and journaled in the run's `cancelled` event."""
    from mnlang.runtime import run
    from mnlang.runtime.decisions import default_decider
    from mnlang.stores.base import RunNotFound

    with _open_store(db) as store:
        record = store.get_run(run_id)
        if record is None:
            raise RunNotFound(
                f"no run `{run_id}`", help="`mnc runs` lists the runs of this journal"
            )
        if not store.request_cancel(run_id, by=by or default_decider()):
            return run.RunOutcome(
                record.run_id, record.workflow, record.status, record.result, record.error
            )
        try:
            outcome = run.resume_run(store, run_id)
        except run.RunBusy:
            current = store.get_run(run_id) or record
            return run.RunOutcome(
                current.run_id,
                current.workflow,
                current.status,
                warnings=["the run is executing elsewhere; it stops at its next step"],
            )
        _cancel_children(store, run_id)
        return outcome


def retry_run(
    run_id: str,
    *,
    by: str,
    execute: bool = True,
    db: str | Path | None = None,
    observer: Observer | None = None,
) -> RunOutcome:
    """Retry failed run `run_id` in place, from the state it kept at its failed step
    (`mnlang.runtime.recovery`); a run whose unwinding did work outside it (an effect in
    a `finally`, a compensation, `on_failure`'s effects) is refused (`RetryRefused`).
    With `execute`, it goes on here until it ends or waits; else a worker takes it."""
    from mnlang.runtime import run
    from mnlang.runtime.recovery import retry

    with _open_store(db) as store:
        retry(store, run_id, by=by)
        if not execute:
            record = store.get_run(run_id)
            assert record is not None
            return run.RunOutcome(record.run_id, record.workflow, record.status)
        try:
            return run.resume_run(store, run_id, observer=observer)
        except run.RunBusy:
            current = store.get_run(run_id)
            assert current is not None
            return run.RunOutcome(
                current.run_id,
                current.workflow,
                current.status,
                warnings=["a worker took the run first; it goes on there"],
            )


def retry_runs(
    query: RunFilter,
    *,
    by: str,
    limit: int = 1000,
    execute: bool = True,
    db: str | Path | None = None,
) -> BulkRetried:
    """Retry every failed run matching `query` (at most `limit`, newest first); each
    one refused is listed with the reason. With `execute`, each goes on here in turn."""
    from mnlang.runtime import run
    from mnlang.runtime.recovery import BulkRetried, retry

    bulk = BulkRetried()
    with _open_store(db) as store:
        records, bulk.more = store.search_runs(
            status="failed",
            workflow=query.workflow,
            workflow_class=query.workflow_class,
            since=query.since,
            until=query.until,
            text=query.q,
            limit=limit,
        )
        for record in records:
            try:
                retry(store, record.run_id, by=by)
            except run.RunError as e:
                bulk.refused.append((record.run_id, e.message))
                continue
            try:
                outcome = run.resume_run(store, record.run_id) if execute else None
            except run.RunBusy:
                outcome = None
            current = store.get_run(record.run_id, args=False)
            assert current is not None
            bulk.retried.append(
                outcome or run.RunOutcome(current.run_id, current.workflow, current.status)
            )
    return bulk


def _cancel_children(store: Store, run_id: str) -> None:
    """Take up the child runs a cancelled run asked to cancel, so that they end too (a
    child another process executes stops there at its next step)."""
    from mnlang.runtime import run
    from mnlang.stores.base import TERMINAL_STATUSES

    for child in store.list_runs(parent_run_id=run_id, limit=100_000):
        if child.status in TERMINAL_STATUSES or not child.cancel_requested:
            continue
        with contextlib.suppress(run.RunBusy):
            run.resume_run(store, child.run_id)
        _cancel_children(store, child.run_id)


# ---- people and events: approve, reject, signal ---------------------------------------------


class DecisionOutcome(msgspec.Struct):
    decided: Decided
    runs: list[RunOutcome]
    """The run's outcome after going on here, then each parent that went on with it; empty
    when the caller left the run to a worker."""


def decide(
    run_id: str,
    checkpoint: str,
    *,
    approve: bool,
    choice: str | None = None,
    by: str | None = None,
    comment: str | None = None,
    result: object = None,
    resume: bool = True,
    db: str | Path | None = None,
) -> DecisionOutcome:
    """Decide checkpoint `checkpoint` (its name or id) of a run; `approve` picks `approve`,
    otherwise `reject` (for a repair: `fail`), unless `choice` names another option.
    `result` is the effect's result when a repair is marked done. With `resume`, the run
    goes on in this process (unless another process executes it).

    Raises `DecisionRefused` when a decision (or the timeout) came first, `DecisionError`
    when this one does not fit the checkpoint."""
    from mnlang.runtime import decisions, run

    with _open_store(db) as store:
        decided = decisions.decide(
            store,
            run_id,
            checkpoint,
            approve=approve,
            choice=choice,
            by=by,
            comment=comment,
            result=result,
        )
        runs = run.continue_run(store, run_id) if resume else []
    return DecisionOutcome(decided, runs)


def approve(
    run_id: str,
    checkpoint: str,
    *,
    choice: str | None = None,
    by: str | None = None,
    comment: str | None = None,
    result: object = None,
    resume: bool = True,
    db: str | Path | None = None,
) -> DecisionOutcome:
    """`decide` with `approve=True`: the `approve` option, or `choice`."""
    return decide(
        run_id,
        checkpoint,
        approve=True,
        choice=choice,
        by=by,
        comment=comment,
        result=result,
        resume=resume,
        db=db,
    )


def reject(
    run_id: str,
    checkpoint: str,
    *,
    by: str | None = None,
    comment: str | None = None,
    resume: bool = True,
    db: str | Path | None = None,
) -> DecisionOutcome:
    """`decide` with `approve=False`: the `reject` option (`fail` for a repair)."""
    return decide(run_id, checkpoint, approve=False, by=by, comment=comment, resume=resume, db=db)


class SignalOutcome(msgspec.Struct):
    delivered: Delivered
    runs: list[RunOutcome]
    """As in `DecisionOutcome`: empty unless the run waited for the event and went on here."""


def signal(
    run_id: str | None,
    event: str | None,
    payload: object = None,
    *,
    signal_id: str | None = None,
    key: str | None = None,
    token: str | None = None,
    resume: bool = True,
    by: str | None = None,
    db: str | Path | None = None,
) -> SignalOutcome:
    """Send `event` (with its JSON `payload` and correlation `key`) to a run's mailbox, or
    answer a callback `token` (then `run_id` and `event` are `None`: the token names
    them); a run that is not waiting for it yet finds it when it does, and a repeated
    `signal_id` is ignored. With `resume`, a run that waits for this signal goes on in
    this process. `by` (default: the operating system's user) is journaled with the
    signal when the run takes it."""
    from mnlang.runtime import run, signals
    from mnlang.runtime.decisions import default_decider

    who = by or default_decider()
    with _open_store(db) as store:
        if token is not None:
            if run_id is not None or event is not None or key is not None:
                raise ValueError("a token names the run, the event and the key: give none")
            delivered = signals.send_token(store, token, payload, signal_id=signal_id, by=who)
        else:
            if run_id is None or event is None:
                raise ValueError("give the run and the event, or a token")
            delivered = signals.send(
                store, run_id, event, payload, signal_id=signal_id, key=key, by=who
            )
        go_on = resume and delivered.accepted and delivered.waiting
        runs = run.continue_run(store, delivered.run_id) if go_on else []
    return SignalOutcome(delivered, runs)


# ---- the outbox: webhook deliveries ---------------------------------------------------------


def list_deliveries(
    *,
    run_id: str | None = None,
    status: str | None = None,
    limit: int = 100,
    db: str | Path | None = None,
) -> list[Delivery]:
    """The outbox's webhook deliveries (`mnlang.outbox`) with their attempts, newest first."""
    with _open_store(db) as store:
        return store.list_deliveries(run_id=run_id, status=status, limit=limit)


def redeliver(event_id: str, webhook: str, *, db: str | Path | None = None) -> bool:
    """Make a delivery pending and due now (a failed one is sent again, with its id);
    `False` when there is no such delivery. `mnc serve`'s delivery loop sends it."""
    with _open_store(db) as store:
        return store.redeliver(event_id, webhook)


# ---- the worker and schedules ---------------------------------------------------------------


def register_schedules(
    sources: Sequence[str | Path | IRProgram], *, db: str | Path | None = None
) -> list[ScheduleRecord]:
    """Record the `schedule`s of these programs in the journal, so that every worker on
    it starts their runs; schedules a source no longer declares are dropped."""
    from mnlang.runtime.schedules import register

    records: dict[str, ScheduleRecord] = {}
    with _open_store(db, create=True) as store:
        for source in sources:
            program = source if not isinstance(source, str | Path) else load_program(source)
            # Files importing one module register its schedules once: one record each.
            records |= {record.name: record for record in register(store, program)}
    return list(records.values())


def list_schedules(*, db: str | Path | None = None) -> list[ScheduleRecord]:
    """The schedules registered in the journal, by name (`jobs.nightly`), with their next
    time, last start, declaring module and whether they are paused."""
    with _open_store(db) as store:
        return store.list_schedules()


def pause_schedule(name: str, *, db: str | Path | None = None) -> ScheduleRecord:
    """Stop the schedule `name` from firing until `resume_schedule`; registering it again
    keeps it paused. Raises `ScheduleNotFound` for a name the journal does not hold."""
    from mnlang.runtime.schedules import pause

    with _open_store(db) as store:
        return pause(store, name)


def resume_schedule(name: str, *, db: str | Path | None = None) -> ScheduleRecord:
    """Let a paused schedule fire again from its first time after now; the times it
    missed while paused are not started."""
    from mnlang.runtime.schedules import resume

    with _open_store(db) as store:
        return resume(store, name)


def drop_schedule(name: str, *, db: str | Path | None = None) -> ScheduleRecord:
    """Forget the schedule `name` (its runs stay); it comes back only when a worker is
    started with a program that declares it. Returns what was registered."""
    from mnlang.runtime.schedules import drop

    with _open_store(db) as store:
        return drop(store, name)


def run_worker(
    *,
    db: str | Path | None = None,
    durability: Durability = "full",
    concurrency: int = 4,
    lease_ttl: float = 30.0,
    log: Logger | None = None,
    until_idle: bool = False,
    on_start: Callable[[Worker], None] | None = None,
    gc: GcPolicy | None = None,
    changed_code: ChangedCode = "allow",
    group_commit: bool = True,
) -> WorkerStats:
    """Run a worker on the journal until it is stopped (`on_start` receives it, to stop it
    from a signal handler) or, with `until_idle`, until no run is left to move. With a
    `gc` policy it also removes ended runs on that schedule (`mnlang.retention`).
    `changed_code` is its policy for runs whose tool code changed since they started
    (`mnlang.runtime.serving`): `pin` claims them only with the code they started with.
    `group_commit=False` commits each run's batches alone (`mnlang.stores.group_commit`)."""
    from mnlang.retention import GcSchedule
    from mnlang.runtime.worker import Worker

    with _open_store(db, durability, create=True) as store:
        worker = Worker(
            store,
            concurrency=concurrency,
            lease_ttl=lease_ttl,
            log=log,
            changed_code=changed_code,
            group_commit=group_commit,
        )
        if on_start is not None:
            on_start(worker)
        schedule = None
        if gc is not None:
            schedule = GcSchedule(store, gc, log or _no_log)
            schedule.start()
        try:
            return worker.run(until_idle=until_idle)
        finally:
            if schedule is not None:
                schedule.stop()


def collect_garbage(
    *,
    older_than: float,
    statuses: Sequence[str] = ("cancelled", "completed", "failed"),
    archive: str | Path | None = None,
    ledger_older_than: float | None = None,
    dry_run: bool = False,
    db: str | Path | None = None,
) -> GcReport:
    """Remove the runs that ended more than `older_than` seconds ago (with one of
    `statuses`) and all their rows, keeping a tombstone per run and, first, appending
    them to `archive` (`mnlang.retention`); `ledger_older_than` seconds also removes the
    global ledger keys last written before then. `dry_run` only counts."""
    from mnlang.retention import collect_garbage as collect

    with _open_store(db) as store:
        return collect(
            store,
            older_than=older_than,
            statuses=statuses,
            archive=archive,
            ledger_older_than=ledger_older_than,
            dry_run=dry_run,
        )


def _no_log(line: str, problem: bool) -> None:
    """A worker's log when the caller wants none."""


# ---- upgrades -------------------------------------------------------------------------------


class UpgradeOutcome(msgspec.Struct):
    verdict: Verdict
    runs: list[RunOutcome]


def upgrade_run(
    run_id: str,
    *,
    source: str | Path | IRProgram | None = None,
    resume: bool = True,
    db: str | Path | None = None,
) -> UpgradeOutcome:
    """Move a waiting run to the current version of its program (`source`, by default
    the file the run's program was compiled from) when `mnc diff`'s compatibility rule
    allows it, then, with `resume`, go on with it here. Raises `UpgradeRefused` with the
    reasons otherwise."""
    from mnlang.runtime import run, upgrade
    from mnlang.stores.base import RunNotFound

    with _open_store(db) as store:
        record = store.get_run(run_id)
        if record is None:
            raise RunNotFound(
                f"no run `{run_id}`", help="`mnc runs` lists the runs of this journal"
            )
        if source is None:
            old = run.load_program(store, record)
            source = Path(old.source.dir) / old.source.file
        program = source if not isinstance(source, str | Path) else load_program(source)
        verdict = upgrade.upgrade(store, run_id, program)
        runs = run.continue_run(store, run_id) if resume else []
    return UpgradeOutcome(verdict, runs)


def check_upgrades(
    source: str | Path | IRProgram, *, apply: bool = False, db: str | Path | None = None
) -> list[Verdict]:
    """A verdict for every waiting run of a workflow of `source`: can it move to this
    version? With `apply`, the runs that can are moved (not resumed)."""
    from mnlang.runtime import upgrade

    program = source if not isinstance(source, str | Path) else load_program(source)
    with _open_store(db) as store:
        verdicts = upgrade.waiting_verdicts(store, program)
        if apply:
            for verdict in verdicts:
                if verdict.ok and not verdict.current:
                    upgrade.upgrade(store, verdict.run_id, program)
    return verdicts


def replay_run(
    run_id: str,
    *,
    program: IRProgram | None = None,
    archives: Sequence[str | Path] = (),
    db: str | Path | None = None,
) -> ReplayReport:
    """Re-execute run `run_id` offline against `program` (default: its own) and report
    "same" or its first divergence (see `mnlang.replay`); from archive files when given."""
    from mnlang.replay.archive import read_archive
    from mnlang.replay.engine import ReplayError, replay_recording
    from mnlang.replay.engine import replay_run as replay

    if archives:
        for path in archives:
            for recording in read_archive(path):
                if recording.root.record.run_id == run_id:
                    return replay_recording(recording, program)
        raise ReplayError(f"no run `{run_id}` in the archive files given")
    with _open_store(db) as store:
        return replay(store, run_id, program)


def scenario_from_run(
    run_id: str,
    output: str | Path,
    *,
    program: IRProgram | None = None,
    omit: Sequence[str] = (),
    name: str | None = None,
    archives: Sequence[str | Path] = (),
    db: str | Path | None = None,
) -> WrittenScenario:
    """Write run `run_id` as a scenario into `output` (see `mnlang.testing.from_run`), typed
    by `program` (default: the program the run executed, which must still be at its source
    path); `omit` names parameters whose arguments are left out."""
    from mnlang.replay.archive import read_archive
    from mnlang.replay.engine import ReplayError, recorded_program
    from mnlang.replay.recording import recording_from_store
    from mnlang.testing.from_run import FromRunError, write_scenario

    if archives:
        found = [r for path in archives for r in read_archive(path)]
        recording = next((r for r in found if r.root.record.run_id == run_id), None)
        if recording is None:
            raise ReplayError(f"no run `{run_id}` in the archive files given")
    else:
        with _open_store(db) as store:
            recording = recording_from_store(store, run_id)
    if recording.root.record.parent_run_id:
        raise FromRunError(
            f"run `{run_id}` is a child run of `{recording.root.record.parent_run_id}`",
            help="write its top-level run: a scenario starts a workflow with its input",
        )
    if program is None:
        program = recorded_program(recording, recording.root.record.ir_hash)
        source = Path(program.source.dir) / program.source.file
        if not source.is_file():
            raise FromRunError(
                f"the run's program was compiled from {source}, which is not there any more",
                help="give the workflow's source with --program",
            )
    return write_scenario(recording, program, Path(output), omit=omit, name=name)


def replay_runs(
    *,
    program: IRProgram | None = None,
    workflow: str | None = None,
    status: str | None = None,
    since_s: float | None = None,
    archives: Sequence[str | Path] = (),
    db: str | Path | None = None,
) -> list[BatchItem]:
    """Replay every top-level run selected, from the journal or from archive files."""
    from typing import cast

    from mnlang.replay.batch import (
        Selection,
        archive_recordings,
        journal_recordings,
        replay_all,
    )

    selection = Selection(workflow, cast("RunStatus | None", status), since_s)
    if archives:
        return replay_all(archive_recordings(archives, selection), program)
    with _open_store(db) as store:
        return replay_all(journal_recordings(store, selection), program)


def fork_run(
    run_id: str,
    live_from: str,
    *,
    into: str | Path,
    program: IRProgram | None = None,
    models: str | None = None,
    live_effects: bool = False,
    new_run_id: str | None = None,
    archives: Sequence[str | Path] = (),
    db: str | Path | None = None,
) -> ForkOutcome:
    """Replay run `run_id` up to `live_from` (a state id or a line), then run on live as a
    new run in the journal `into` (see `mnlang.replay.fork`)."""
    from mnlang.replay.archive import read_archive
    from mnlang.replay.engine import ReplayError
    from mnlang.replay.fork import fork_run as fork
    from mnlang.replay.recording import Recording, recording_from_store

    recording: Recording | None = None
    for path in archives:
        recording = next(
            (r for r in read_archive(path) if r.root.record.run_id == run_id), recording
        )
    if archives and recording is None:
        raise ReplayError(f"no run `{run_id}` in the archive files given")
    if recording is None:
        with _open_store(db) as store:
            recording = recording_from_store(store, run_id)
    with _open_store(into, create=True) as target:
        return fork(
            recording,
            live_from,
            target,
            program=program,
            models=models,
            live_effects=live_effects,
            run_id=new_run_id,
        )
