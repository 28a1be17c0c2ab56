"""`schedule` declarations: registering them in the journal and starting their runs.

`register` records a program's schedules in the store (with the program, so that any
worker on the journal can start them without the source). `start_due` starts the runs
whose time has come. Each start is idempotent by its scheduled time: the run's id is
the schedule's name and the scheduled time (`nightly@2024-05-02T01:00:00Z`), and the
run is created in the same transaction that moves the schedule to its next time, under
the condition that no other worker moved it first. A worker restarting, or two workers
looking at once, cannot start a scheduled time twice.

A worker that was down when times fell due starts the latest of them once, not one run
per missed time, and records how many it skipped in the run's `meta`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from mnlang.cron import CronError, next_time
from mnlang.ir.load import dump_ir
from mnlang.ir.model import IRProgram, ScheduleIR
from mnlang.runtime.effects import WIRE_NONCE, new_wire_nonce
from mnlang.runtime.evaluate import Evaluator, MapEnv
from mnlang.runtime.run import RunError, prepare_args, tool_hashes
from mnlang.runtime.serving import run_needs
from mnlang.runtime.values import to_plain
from mnlang.stores.base import Json, NewRun, NewSchedule, ScheduleRecord, Store

_MAX_SKIPPED = 100_000
"""Missed times counted at most when a worker catches up (`every: 1m` down for months)."""


class ScheduleError(RunError):
    """A schedule that cannot be registered or started."""


def spec_of(schedule: ScheduleIR) -> dict[str, Json]:
    return {"every_ms": schedule.every_ms, "cron": schedule.cron, "timezone": schedule.timezone}


def _next(spec: Json, after: float) -> float | None:
    return next_time(
        every_ms=spec.get("every_ms"),
        cron=spec.get("cron"),
        timezone=spec.get("timezone"),
        after=after,
    )


def run_id_for(name: str, at: float) -> str:
    """The id of the run a schedule starts for its time `at`."""
    stamp = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{name}@{stamp}"


def register(store: Store, program: IRProgram) -> list[ScheduleRecord]:
    """Record (or update) the schedules of `program`, and forget schedules that its source
    file registered before but no longer declares."""
    source = program.source.file
    now = store.now()
    specs: dict[str, tuple[ScheduleIR, float]] = {}
    for name, schedule in program.schedules.items():
        try:
            first = _next(spec_of(schedule), now)
        except CronError as e:
            raise ScheduleError(f"schedule `{name}`: {e}") from None
        if first is None:
            raise ScheduleError(f"schedule `{name}` never fires", help="check its `cron` fields")
        specs[name] = (schedule, first)
    if specs:
        store.put_program(program.hash, dump_ir(program))
    for old in store.list_schedules():
        if old.source == source and old.name not in specs:
            store.delete_schedule(old.name)
    return [
        store.put_schedule(NewSchedule(name, s.workflow, program.hash, source, spec_of(s), first))
        for name, (s, first) in specs.items()
    ]


@dataclass(frozen=True, slots=True)
class Started:
    schedule: str
    run_id: str
    scheduled_at: float
    skipped: int
    """Earlier scheduled times that passed while no worker looked."""


ProgramLoader = Callable[[str], IRProgram]
"""The program stored under an IR hash."""


def start_due(store: Store, load: ProgramLoader, now: float | None = None) -> list[Started]:
    """Start a run for every schedule whose next time has come; returns the runs this call
    started (a time another worker started first is left out)."""
    now = store.now() if now is None else now
    started: list[Started] = []
    for record in store.list_schedules():
        if record.next_at > now:
            continue
        due, skipped = _latest_due(record, now)
        following = _next(record.spec, max(due, now))
        if following is None:
            continue
        program = load(record.ir_hash)
        schedule = program.schedules.get(record.name)
        if schedule is None:
            continue
        run = _new_run(program, schedule, due, skipped)
        # Conditional on the time read above: a worker that moved the schedule first wins.
        if store.fire_schedule(
            record.name, run, expected=record.next_at, scheduled_at=due, next_at=following
        ):
            started.append(Started(record.name, run.run_id, due, skipped))
    return started


def _latest_due(record: ScheduleRecord, now: float) -> tuple[float, int]:
    """The latest scheduled time not after `now`, and how many earlier ones it passes."""
    due, skipped = record.next_at, 0
    while skipped < _MAX_SKIPPED:
        following = _next(record.spec, due)
        if following is None or following > now:
            break
        due, skipped = following, skipped + 1
    return due, skipped


def _new_run(program: IRProgram, schedule: ScheduleIR, due: float, skipped: int) -> NewRun:
    workflow = program.workflows[schedule.workflow]
    evaluator = Evaluator()
    given = {name: to_plain(evaluator.eval(e, MapEnv({}))) for name, e in schedule.args.items()}
    args = prepare_args(program, workflow, given)
    meta: dict[str, Json] = {
        "source_dir": program.source.dir,
        "tool_modules": tool_hashes(program),
        WIRE_NONCE: new_wire_nonce(),
        "schedule": schedule.name,
        "scheduled_at": due,
    }
    if skipped:
        meta["skipped_times"] = skipped
    return NewRun(
        run_id=run_id_for(schedule.name, due),
        workflow=workflow.name,
        args=to_plain(args),
        workflow_class=workflow.options.class_ or "",
        ir_hash=program.hash,
        meta=meta,
        limit=workflow.options.limit,
        needs=run_needs(program, meta),
    )
