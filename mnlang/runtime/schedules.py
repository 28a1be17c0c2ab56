"""`schedule` declarations: registering them in the journal and starting their runs.

`register` records a program's schedules in the store (with the program, so that any
worker on the journal can start them without the source). A schedule is registered once
by its declaring module, whichever programs import that module: its name in the journal
is the module's name and its own (`jobs.nightly`), whether `jobs.mn` itself or a file
importing `jobs` was registered, so it fires once per time. `start_due` starts the runs
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
from pathlib import PurePosixPath

from mnlang.cron import CronError, next_time
from mnlang.ir.load import dump_ir
from mnlang.ir.model import IRProgram, ScheduleIR
from mnlang.runtime.evaluate import Evaluator, MapEnv
from mnlang.runtime.run import RunError, new_run, prepare_args, start_meta
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


def root_module(program: IRProgram) -> str:
    """The module name of the file a program was compiled from (`jobs` for `jobs.mn`),
    as an importing file names it: `import jobs`."""
    return PurePosixPath(program.source.file).stem


def declared_name(program: IRProgram, key: str) -> tuple[str, str]:
    """The journal name of the schedule `key` of `program` (its qualified name in the
    program: plain in the root file, `module.name` imported) and its declaring module."""
    if "." in key:
        return key, key.rpartition(".")[0]
    module = root_module(program)
    return f"{module}.{key}", module


def program_modules(program: IRProgram) -> set[str]:
    """The modules a program holds: its root file's and each module it imports that
    declares something."""
    declared = [
        *program.types,
        *program.tools,
        *program.effects,
        *program.agents,
        *program.events,
        *program.schedules,
        *program.workflows,
        *(program.errors or []),
    ]
    return {root_module(program)} | {declared_name(program, n)[1] for n in declared if "." in n}


def run_id_for(name: str, at: float) -> str:
    """The id of the run a schedule starts for its time `at`."""
    stamp = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{name}@{stamp}"


def register(store: Store, program: IRProgram) -> list[ScheduleRecord]:
    """Record (or update) the schedules of `program` under their declaring modules'
    names, and forget schedules of its modules that they no longer declare."""
    source = program.source.file
    now = store.now()
    specs: dict[str, tuple[ScheduleIR, str, float]] = {}
    for key, schedule in program.schedules.items():
        name, module = declared_name(program, key)
        try:
            first = _next(spec_of(schedule), now)
        except CronError as e:
            raise ScheduleError(f"schedule `{name}`: {e}") from None
        if first is None:
            raise ScheduleError(f"schedule `{name}` never fires", help="check its `cron` fields")
        specs[name] = (schedule, module, first)
    if specs:
        store.put_program(program.hash, dump_ir(program))
    modules = program_modules(program)
    for old in store.list_schedules():
        if old.module in modules and old.name not in specs:
            store.delete_schedule(old.name)
    return [
        store.put_schedule(
            NewSchedule(
                name,
                declared_name(program, s.workflow)[0],
                program.hash,
                source,
                spec_of(s),
                first,
                module,
            )
        )
        for name, (s, module, first) in specs.items()
    ]


def schedule_of(program: IRProgram, name: str) -> ScheduleIR | None:
    """The schedule a journal `name` stands for in `program` (registered from it)."""
    for key, schedule in program.schedules.items():
        if declared_name(program, key)[0] == name:
            return schedule
    return None


def next_after(record: ScheduleRecord, after: float) -> float | None:
    """The first time of a registered schedule after `after`."""
    return _next(record.spec, after)


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
        if record.paused_at is not None or record.next_at > now:
            continue
        due, skipped = _latest_due(record, now)
        following = _next(record.spec, max(due, now))
        if following is None:
            continue
        program = load(record.ir_hash)
        schedule = schedule_of(program, record.name)
        if schedule is None:
            continue
        run = _new_run(program, record.name, schedule, due, skipped)
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


def _new_run(
    program: IRProgram, name: str, schedule: ScheduleIR, due: float, skipped: int
) -> NewRun:
    workflow = program.workflows[schedule.workflow]
    evaluator = Evaluator()
    given = {name: to_plain(evaluator.eval(e, MapEnv({}))) for name, e in schedule.args.items()}
    args = prepare_args(program, workflow, given)
    # No config: a scheduled run keeps no model setup or fault plan (the worker's serve it).
    meta = start_meta(program, None) | {"schedule": name, "scheduled_at": due}
    if skipped:
        meta["skipped_times"] = skipped
    return new_run(program, workflow, args, run_id_for(name, due), meta)


class ScheduleNotFound(ScheduleError):
    """`mnc schedules pause|resume|drop` with a name the journal does not hold."""


def find(store: Store, name: str) -> ScheduleRecord:
    """The registered schedule `name`, or `ScheduleNotFound` naming the near ones."""
    records = store.list_schedules()
    for record in records:
        if record.name == name:
            return record
    near = [r.name for r in records if r.name.rpartition(".")[2] == name.rpartition(".")[2]]
    if near:
        hint = "did you mean " + " or ".join(f"`{n}`" for n in near) + "? a schedule is "
        hint += "named by its declaring module"
    elif records:
        hint = "`mnc schedules` lists the registered schedules"
    else:
        hint = "no schedule is registered: `mnc worker FILE` registers the schedules of FILE"
    raise ScheduleNotFound(f"no schedule `{name}` in this journal", help=hint)


def pause(store: Store, name: str) -> ScheduleRecord:
    find(store, name)
    if not store.pause_schedule(name):
        raise ScheduleNotFound(f"schedule `{name}` was dropped meanwhile")
    return find(store, name)


def resume(store: Store, name: str) -> ScheduleRecord:
    """Let a paused schedule fire again from its first time after now: the times that
    passed while it was paused are not started (no catch-up)."""
    record = find(store, name)
    following = _next(record.spec, store.now())
    if following is None:
        raise ScheduleError(f"schedule `{name}` never fires again", help="check its `cron`")
    if not store.resume_schedule(name, following):
        raise ScheduleNotFound(f"schedule `{name}` was dropped meanwhile")
    return find(store, name)


def drop(store: Store, name: str) -> ScheduleRecord:
    """Forget a schedule: it fires no more, until a worker is started with a program that
    declares it (which registers it anew)."""
    record = find(store, name)
    store.delete_schedule(name)
    return record
