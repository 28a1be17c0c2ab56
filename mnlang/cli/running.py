"""Commands that move runs: run, resume, worker, workers, upgrade, db check and migrate,
and gc (retention)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from mnlang.cli.shared import (
    db_option,
    finish_run,
    json_option,
    program_or_exit,
    remote,
    report_to_stderr,
    run_error,
    server_option,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from prometheus_client import CollectorRegistry

    from mnlang.client import Client, Run
    from mnlang.ir.model import IRProgram
    from mnlang.runtime.journal import Observer
    from mnlang.stores.base import Offer, ScheduleRecord

_durability_option = click.option(
    "--durability",
    type=click.Choice(("full", "fast")),
    default="full",
    show_default=True,
    help="fast: the last commits may roll back on power loss (never on a crash).",
)


class _Span(click.ParamType[float]):
    """An age such as `30d`, `12h`, `90m`, `1h30m` or ISO 8601 `P30D`: seconds."""

    name = "SPAN"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        from mnlang.runtime.convert import ConversionError, parse_duration_text

        text = str(value).strip()
        if text.isdigit():
            self.fail(f"`{text}` has no unit: write 30d, 12h, 90m or 45s", param, ctx)
        try:
            return parse_duration_text(text) / 1000
        except ConversionError:
            self.fail(f"`{text}` is not a span: write 30d, 12h, 90m, 1h30m or P30D", param, ctx)


SPAN = _Span()


def _observer(as_json: bool) -> Observer | None:
    if as_json or not sys.stderr.isatty():
        return None
    from mnlang.run_output import step_printer

    return step_printer(sys.stderr)


@click.command("run")
@click.argument("file", type=click.Path(path_type=str))
@click.option("-w", "--workflow", help="The workflow to run (default: the file's only one).")
@click.option("--input", "input_text", metavar="JSON", help="The arguments, a JSON object.")
@click.option(
    "--input-file",
    type=click.Path(dir_okay=False, path_type=str),
    help="Read the arguments from this JSON file.",
)
@click.option(
    "--id",
    "run_id",
    help="The run's id; starting the same id again with the same input returns that run, with other input is refused.",
)
@db_option
@_durability_option
@click.option(
    "--inject",
    "inject",
    multiple=True,
    metavar="FAULT@STEP",
    help="Inject a fault at the first call of a step or callee (repeatable), e.g. "
    "tool_timeout@fetch_order; approval_delay@CHECKPOINT lets the timeout decide.",
)
@click.option(
    "--chaos",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Give each call attempt a random fault with this probability.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for --chaos.")
@click.option(
    "--detach", is_flag=True, help="Only create the run; a worker (`mnc worker`) executes it."
)
@click.option(
    "--models",
    metavar="SPEC",
    help="Who answers the agents: scripted:FILE (replies from FILE), scripted (replies.json "
    "beside FILE) or openai (each agent's provider: option, else the OpenAI-compatible API "
    "of MNC_OPENAI_BASE_URL). Default: $MNC_MODELS, else scripted:$MNC_REPLIES, else openai; "
    "a replies.json beside FILE is used only when asked for.",
)
@click.option(
    "--traceparent",
    metavar="HEADER",
    help="A W3C traceparent: the run's spans join that trace (docs/observability.md).",
)
@json_option
@server_option
def run_command(
    file: str,
    workflow: str | None,
    input_text: str | None,
    input_file: str | None,
    run_id: str | None,
    db: str | None,
    durability: str,
    inject: tuple[str, ...],
    chaos: float,
    seed: int,
    detach: bool,
    models: str | None,
    traceparent: str | None,
    as_json: bool,
    server: str | None,
    server_token: str | None,
) -> None:
    """Run a workflow of FILE (`.mn`, or IR `.json` from `mnc compile`) until it completes,
    fails or waits. Exits 0 completed, 1 failed, 3 waiting, 4 cancelled, 2 when it could
    not run (usage, compile errors, bad input, journal problems). With --detach the run is
    only created (exit 0), for `mnc worker`.

    Faults (docs/metrics.md): worker_crash, node_failure and partial_effect end this
    process with status 137; `mnc resume` goes on with the run."""
    from pathlib import Path

    from mnlang import api
    from mnlang.ir.load import IRLoadError
    from mnlang.jsonin import JSONInputError, decode_json, read_json_file
    from mnlang.runtime.faults import FaultError, FaultPlan, parse_inject
    from mnlang.runtime.run import RunError
    from mnlang.stores.base import StoreError
    from mnlang.telemetry.spans import TraceParent

    if input_text is not None and input_file is not None:
        raise click.UsageError("give --input or --input-file, not both")
    if traceparent is not None and TraceParent.parse(traceparent) is None:
        raise click.BadParameter(
            "not a W3C traceparent: 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>",
            param_hint="--traceparent",
        )
    if models is not None:
        from mnlang.models.setup import ModelSetup, ModelSpecError

        try:
            models = ModelSetup.from_spec(models, Path(file).parent).spec
        except ModelSpecError as e:
            raise click.UsageError(str(e)) from None
    faults = None
    if inject or chaos:
        try:
            faults = FaultPlan(tuple(parse_inject(spec) for spec in inject), chaos, seed)
        except FaultError as e:
            raise click.UsageError(f"{e.message}; {e.help}" if e.help else e.message) from None
    try:
        if input_file is not None:
            given = read_json_file(input_file)
        else:
            given = decode_json(input_text, "--input") if input_text is not None else {}
    except OSError as e:
        run_error(RunError(f"cannot read `{input_file}`: {e.strerror or e}"))
    except JSONInputError as e:
        run_error(e)
    try:
        program = api.load_program(file)
    except api.CompileFailed as e:
        report_to_stderr(file, e.diagnostics)
        sys.exit(2)
    except IRLoadError as e:
        run_error(e)
    if server is not None:
        remote(server, server_token, lambda c: _start_remote(c, program, workflow, given, run_id))
    try:
        if not detach and not as_json:
            answering = api.answering_models(program, models, workflow=workflow)
            if answering is not None:
                click.echo(f"models: {answering}", err=True)
        outcome = api.start_run(
            program,
            given,
            workflow=workflow,
            run_id=run_id,
            db=db,
            durability="fast" if durability == "fast" else "full",
            observer=_observer(as_json),
            faults=faults,
            detach=detach,
            models=models,
            traceparent=traceparent,
        )
    except (RunError, StoreError, FaultError) as e:
        run_error(e)
    finish_run(outcome, as_json)


def _start_remote(
    client: Client, program: IRProgram, workflow: str | None, given: object, run_id: str | None
) -> Run:
    """Register the compiled program with the server (tool code stays where the server's
    workers have it installed), then start the run there."""
    import json

    from mnlang import api
    from mnlang.ir.load import dump_ir

    client.register_program(ir=json.loads(dump_ir(program)))
    name = workflow or api.default_workflow(program)
    return client.start_run(name, given if isinstance(given, dict) else {}, run_id=run_id)


@click.command()
@click.argument("run_id")
@click.option(
    "--upgrade",
    is_flag=True,
    help="First move the waiting run to the current version of its program, when "
    "`mnc diff`'s compatibility rule allows it.",
)
@click.option(
    "--source",
    type=click.Path(dir_okay=False, path_type=str),
    help="With --upgrade: the new version (default: the file the run's program came from).",
)
@db_option
@json_option
def resume(run_id: str, upgrade: bool, source: str | None, db: str | None, as_json: bool) -> None:
    """Go on with run RUN_ID from its last commit (a run that ended only prints its outcome)."""
    from mnlang import api
    from mnlang.runtime.run import RunError
    from mnlang.stores.base import StoreError

    if source is not None and not upgrade:
        raise click.UsageError("--source goes with --upgrade")
    if upgrade:
        program = program_or_exit(source) if source is not None else None
        try:
            upgraded = api.upgrade_run(run_id, source=program, resume=False, db=db)
        except (RunError, StoreError) as e:
            run_error(e)
        if not as_json:
            verdict = upgraded.verdict
            if verdict.current:
                click.echo(f"run {run_id} already runs on program {verdict.to_hash[:12]}")
            else:
                click.echo(
                    f"upgraded: run {run_id} from program {verdict.from_hash[:12]} "
                    f"to {verdict.to_hash[:12]}"
                )
    try:
        outcome = api.resume_run(run_id, db=db, observer=_observer(as_json))
    except (RunError, StoreError) as e:
        run_error(e)
    finish_run(outcome, as_json)


@click.command()
@click.argument("files", nargs=-1, type=click.Path(path_type=str))
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Runs executed at once.",
)
@click.option(
    "--lease-ttl",
    type=click.FloatRange(min=0.5),
    default=30.0,
    show_default=True,
    help="Seconds a run stays held without a heartbeat before another worker may take it.",
)
@click.option(
    "--until-idle",
    is_flag=True,
    help="Stop once no run it can serve is left to move and no timer is due within "
    "MNC_SHORT_WAIT_S.",
)
@click.option("-q", "--quiet", is_flag=True, help="Log only problems.")
@click.option(
    "--health",
    metavar="HOST:PORT",
    help="Serve /healthz and /readyz on HOST:PORT (port 0: any free port, logged).",
)
@click.option(
    "--log-format",
    type=click.Choice(("text", "json")),
    default="text",
    show_default=True,
    help="text: local time with its UTC offset; json: one object a line, UTC time, run, "
    "worker and trace ids (docs/observability.md).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=0, max=65535),
    help="Serve Prometheus /metrics on this port (0: any free one, logged).",
)
@click.option(
    "--metrics-host", default="127.0.0.1", show_default=True, help="The /metrics address."
)
@click.option(
    "--gc-older-than",
    type=SPAN,
    help="Also remove runs that ended longer ago than this, as `mnc gc` does (30d).",
)
@click.option(
    "--gc-every",
    type=SPAN,
    default="1h",
    show_default=True,
    help="How often to remove them (with --gc-older-than).",
)
@click.option(
    "--gc-archive",
    type=click.Path(dir_okay=False, path_type=str),
    help="Append the runs removed to this file first (with --gc-older-than).",
)
@click.option(
    "--changed-code",
    type=click.Choice(("allow", "pin")),
    help="Runs whose tool code changed since they started: allow (claim them, logging "
    "a warning) or pin (claim only runs whose modules have the same sha256 here). "
    "Default: $MNC_CHANGED_CODE, else the project's [workers] changed_code, else allow.",
)
@click.option(
    "--group-commit/--no-group-commit",
    default=True,
    show_default=True,
    help="Let the commits of runs executing at once share a transaction and its fsync "
    '(docs/runtime.md, "Group commit").',
)
@_durability_option
@db_option
def worker(
    files: tuple[str, ...],
    concurrency: int,
    lease_ttl: float,
    until_idle: bool,
    quiet: bool,
    health: str | None,
    log_format: str,
    metrics_port: int | None,
    metrics_host: str,
    gc_older_than: float | None,
    gc_every: float,
    gc_archive: str | None,
    changed_code: str | None,
    group_commit: bool,
    durability: str,
    db: str | None,
) -> None:
    """Move runs forward: resume runs whose process died (once their lease expired), fire
    due timers and checkpoint timeouts, deliver signals, continue decided runs and start
    scheduled runs. FILES (`.mn` or IR `.json`) register their `schedule`s in the journal
    first, for every worker on it.

    Claims only runs it can serve: their tool modules import here and their agents'
    providers have keys here (`mnc workers` and `mnc show` say why a run waits).

    Stops on SIGTERM or Ctrl-C: runs in progress stop at their next commit point and are
    released to other workers (a second signal exits at once). Several workers may share
    one journal; they never execute the same run at once.

    With --gc-older-than the worker also removes ended runs (`mnc gc`), at start and
    then every --gc-every; several workers doing it on one journal is safe.
    """
    import os
    import signal

    from mnlang import api
    from mnlang.retention import GcPolicy
    from mnlang.runtime.run import RunError
    from mnlang.runtime.serving import changed_code_policy
    from mnlang.runtime.worker import Worker
    from mnlang.stores.base import StoreError
    from mnlang.telemetry.logs import human_line, json_line
    from mnlang.telemetry.spans import trace_id_of

    started: list[Worker] = []

    def trace_of(run_id: str) -> int | None:
        return trace_id_of(started[0].store, run_id) if started else None

    def log(line: str, problem: bool = False) -> None:
        if problem or not quiet:
            if log_format == "json":
                owner = started[0].owner if started else None
                text = json_line(line, problem, worker_id=owner, trace_of=trace_of)
            else:
                text = human_line(line)
            click.echo(text, err=True)

    if gc_older_than is None and gc_archive is not None:
        raise click.UsageError("--gc-archive needs --gc-older-than")
    if gc_every <= 0:
        raise click.BadParameter("must be longer than 0s", param_hint="--gc-every")
    gc_policy = (
        GcPolicy(gc_older_than, gc_every, archive=gc_archive) if gc_older_than is not None else None
    )
    try:
        policy = changed_code_policy(changed_code)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    programs = [program_or_exit(file) for file in files]
    try:
        for record in api.register_schedules(programs, db=db):
            log(f"schedule {record.name}: registered, next run at {_when(record.next_at)}")
    except (RunError, StoreError) as e:
        run_error(e)

    stops: list[Callable[[], None]] = []

    def on_start(running: Worker) -> None:
        started.append(running)
        if metrics_port is not None:
            from mnlang.telemetry.metrics import WorkerMetrics, serve_worker_metrics

            def register(registry: CollectorRegistry) -> None:
                running.observer = WorkerMetrics(registry, lambda: running.stats).observe

            served_on, stop_metrics = serve_worker_metrics(register, metrics_port, metrics_host)
            stops.append(stop_metrics)
            log(f"metrics at http://{metrics_host}:{served_on}/metrics")
        if health is not None:
            from mnlang.health import HealthServer

            host, _, port = health.rpartition(":")
            try:
                server = HealthServer(host or "127.0.0.1", int(port), lambda: running.ready)
            except (ValueError, OSError) as e:
                raise click.BadParameter(f"{health}: {e}", param_hint="--health") from None
            server.start()
            log(f"health on http://{host or '127.0.0.1'}:{server.port}/healthz and /readyz")

        def stop(signum: int, _frame: object) -> None:
            if running.stopping:
                os._exit(128 + signum)
            log("stopping: runs in progress stop at their next commit (signal again: exit now)")
            running.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    try:
        stats = api.run_worker(
            db=db,
            durability="fast" if durability == "fast" else "full",
            concurrency=concurrency,
            lease_ttl=lease_ttl,
            log=log,
            until_idle=until_idle,
            on_start=on_start,
            gc=gc_policy,
            changed_code=policy,
            group_commit=group_commit,
        )
    except (RunError, StoreError) as e:  # RunError: an `MNC_*` setting that does not parse
        run_error(e)
    finally:
        for stop_metrics in stops:
            stop_metrics()
    ended = ", ".join(f"{n} {status}" for status, n in sorted(stats.ended.items())) or "none"
    quarantined = f"; quarantined {len(stats.quarantined)}" if stats.quarantined else ""
    log(
        f"runs claimed {stats.claimed}; left {ended}; lost {stats.lost}; "
        f"scheduled {stats.scheduled}{quarantined}"
    )


@click.command()
@db_option
@json_option
def workers(db: str | None, as_json: bool) -> None:
    """List the live workers of the journal: host, process, concurrency, last heartbeat and
    the runs each holds a lease on. A worker that stopped beating for its lease time is not
    listed (its runs go to other workers)."""
    import json

    import msgspec

    from mnlang.runtime.views import unserved_runs
    from mnlang.stores import open_store
    from mnlang.stores.base import StoreError

    try:
        with open_store(db, existing=True) as store:
            records, now = store.list_workers(), store.now()
            offers = store.list_offers()
            waiting = unserved_runs(store)
    except StoreError as e:
        run_error(e)
    by_worker: dict[str, list[Offer]] = {}
    for offer in offers:
        by_worker.setdefault(offer.worker_id, []).append(offer)
    if as_json:
        listed = [
            msgspec.to_builtins(w)
            | {"serves": msgspec.to_builtins([o.need for o in by_worker.get(w.worker_id, [])])}
            for w in records
        ]
        click.echo(json.dumps(listed, ensure_ascii=False, indent=2))
        return
    if not records:
        click.echo("no live workers")
    for w in records:
        runs = ", ".join(w.claimed) if w.claimed else "none"
        click.echo(
            f"{w.worker_id}  host {w.host}  pid {w.pid}  concurrency {w.concurrency}  "
            f"heartbeat {now - w.heartbeat_at:.1f}s ago  since {_when(w.started_at)}"
        )
        click.echo(f"  runs ({len(w.claimed)}): {runs}")
        click.echo(f"  serves: {_serves(by_worker.get(w.worker_id, []))}")
    if waiting:
        click.echo(f"runs no live worker can serve ({len(waiting)}):")
        for run_id, why in waiting:
            click.echo(f"  {run_id}: {why}")


def _serves(offers: list[Offer]) -> str:
    """One line of what a worker advertised: its modules (of how many programs), its
    providers, and its policy for changed code."""
    modules = sorted({o.need.name for o in offers if o.need.kind == "module"})
    programs = len({o.need.scope.partition(":")[0] for o in offers if o.need.kind == "module"})
    providers = sorted(o.need.name for o in offers if o.need.kind == "provider")
    pinned = any(o.pinned for o in offers)
    parts = [
        f"modules {', '.join(modules)} ({programs} programs)" if modules else "no tool modules",
        f"providers {', '.join(providers)}" if providers else "no provider keys",
    ]
    if offers:
        parts.append("changed code: " + ("pin" if pinned else "allow"))
    return "; ".join(parts)


@click.group("schedules", invoke_without_command=True)
@db_option
@json_option
@click.pass_context
def schedules_group(ctx: click.Context, db: str | None, as_json: bool) -> None:
    """List the schedules registered in the journal: name (its declaring module's and its
    own, `jobs.nightly`), workflow, next time, last start and whether it is paused.

    `mnc worker FILE` registers the schedules of FILE and of the modules it imports, once
    per schedule whichever files import it."""
    if ctx.invoked_subcommand is not None:
        return
    import json

    from mnlang import api
    from mnlang.stores.base import StoreError

    try:
        records = api.list_schedules(db=db)
    except StoreError as e:
        run_error(e)
    if as_json:
        click.echo(json.dumps([_schedule_json(r) for r in records], ensure_ascii=False, indent=2))
        return
    if not records:
        click.echo("no schedules (`mnc worker FILE` registers the schedules of FILE)")
    for r in records:
        click.echo(_schedule_line(r))


def _schedule_json(record: ScheduleRecord) -> dict[str, object]:
    return {
        "name": record.name,
        "module": record.module,
        "workflow": record.workflow,
        "spec": record.spec,
        "next_at": None if record.paused_at is not None else record.next_at,
        "last_at": record.last_at,
        "last_run_id": record.last_run_id,
        "paused": record.paused_at is not None,
        "paused_at": record.paused_at,
        "source": record.source,
        "ir_hash": record.ir_hash,
    }


def _schedule_line(record: ScheduleRecord) -> str:
    spec = record.spec if isinstance(record.spec, dict) else {}
    if spec.get("cron"):
        when = f"cron {spec['cron']!r}" + (
            f" in {spec['timezone']}" if spec.get("timezone") else ""
        )
    else:
        when = f"every {spec.get('every_ms', 0) / 1000:g}s"
    next_at = "paused" if record.paused_at is not None else f"next {_when(record.next_at)}"
    last = (
        f"last {_when(record.last_at)} ({record.last_run_id})"
        if record.last_at is not None
        else "never started"
    )
    return (
        f"{record.name}  {next_at}  {last}\n"
        f"  module {record.module}  workflow {record.workflow}  {when}"
    )


def _schedule_command(action: str, name: str, db: str | None, as_json: bool) -> None:
    import json

    from mnlang import api
    from mnlang.runtime.schedules import ScheduleError
    from mnlang.stores.base import StoreError

    act = {
        "pause": api.pause_schedule,
        "resume": api.resume_schedule,
        "drop": api.drop_schedule,
    }[action]
    try:
        record = act(name, db=db)
    except (ScheduleError, StoreError) as e:
        run_error(e)
    if as_json:
        click.echo(json.dumps(_schedule_json(record), ensure_ascii=False, indent=2))
        return
    done = {"pause": "paused", "resume": "resumed", "drop": "dropped"}[action]
    after = {
        "pause": "it starts no run until `mnc schedules resume`",
        "resume": f"next run at {_when(record.next_at)}; times missed while paused are skipped",
        "drop": "a worker started with a file that declares it registers it again",
    }[action]
    click.echo(f"{done}: schedule {record.name} ({after})")


@schedules_group.command("pause")
@click.argument("name")
@db_option
@json_option
def schedules_pause(name: str, db: str | None, as_json: bool) -> None:
    """Stop schedule NAME from starting runs; it stays registered (and paused when a
    worker registers it again). Exits 2 for a name the journal does not hold."""
    _schedule_command("pause", name, db, as_json)


@schedules_group.command("resume")
@click.argument("name")
@db_option
@json_option
def schedules_resume(name: str, db: str | None, as_json: bool) -> None:
    """Let paused schedule NAME start runs again, from its first time after now: the
    times it missed while paused are not started."""
    _schedule_command("resume", name, db, as_json)


@schedules_group.command("drop")
@click.argument("name")
@db_option
@json_option
def schedules_drop(name: str, db: str | None, as_json: bool) -> None:
    """Forget schedule NAME (the runs it started stay). It comes back only when a worker
    is started with a file that declares it."""
    _schedule_command("drop", name, db, as_json)


def _when(at: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@click.command()
@click.argument("file", type=click.Path(path_type=str))
@click.option("--check", is_flag=True, help="Only list the verdicts; move no run.")
@db_option
@json_option
def upgrade(file: str, check: bool, db: str | None, as_json: bool) -> None:
    """Move the waiting runs of FILE's workflows to this version of FILE when `mnc diff`'s
    compatibility rule allows it (`--check`: only say, per run, whether it can and why
    not). A moved run goes on with the next `mnc resume` or worker. Exits 1 when a run
    cannot move."""
    import json

    from mnlang import api
    from mnlang.runtime.run import RunError
    from mnlang.stores.base import StoreError

    program = program_or_exit(file)
    try:
        verdicts = api.check_upgrades(program, apply=not check, db=db)
    except (RunError, StoreError) as e:
        run_error(e)
    if as_json:
        click.echo(json.dumps([v.to_json() for v in verdicts], ensure_ascii=False, indent=2))
    elif not verdicts:
        click.echo(f"no waiting run of {file}'s workflows")
    for verdict in verdicts if not as_json else []:
        if verdict.current:
            click.echo(f"{verdict.run_id}  current (already on {verdict.to_hash[:12]})")
        elif verdict.ok:
            done = "can move" if check else "moved"
            click.echo(f"{verdict.run_id}  {done} from {verdict.from_hash[:12]}")
        else:
            click.echo(f"{verdict.run_id}  cannot move:")
            click.echo("\n".join(f"  - {reason}" for reason in verdict.reasons()))
    sys.exit(0 if all(v.ok for v in verdicts) else 1)


@click.group("db")
def db_group() -> None:
    """The journal database."""


@db_group.command("check")
@db_option
@json_option
def db_check(db: str | None, as_json: bool) -> None:
    """Read every run's rows and report those that are damaged (JSON that does not
    decode), and the runs workers quarantined. Exits 0 when there are none of either, 1
    when there are, 2 when the journal cannot be read."""
    import json

    import msgspec

    from mnlang import api
    from mnlang.run_output import RELEASE_HINT, quarantine_line
    from mnlang.stores.base import StoreError

    try:
        found = api.check_journal(db=db)
    except StoreError as e:
        run_error(e)
    if as_json:
        quarantined = msgspec.to_builtins(found.quarantined)
        out = {"runs": found.runs, "damaged": found.damaged, "quarantined": quarantined}
        click.echo(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        lines = [*found.damaged]
        lines += [quarantine_line(run_id, q) for run_id, q in found.quarantined.items()]
        if found.quarantined:
            lines.append(RELEASE_HINT)
        if lines:
            click.echo("\n".join(lines))
        click.echo(
            f"{found.runs} runs read, {len(found.damaged)} damaged rows, "
            f"{len(found.quarantined)} quarantined runs"
        )
    sys.exit(1 if found.damaged or found.quarantined else 0)


@db_group.command("release")
@click.argument("run_id")
@db_option
@json_option
def db_release(run_id: str, db: str | None, as_json: bool) -> None:
    """Let workers take up again a run they quarantined, once it is repaired.

    A worker quarantines a run it cannot execute as stored (a journal row that does not
    decode, a program that does not load): no worker claims it until this command. It is
    refused (exit 2, nothing changed) for an unknown run, a run that is not quarantined,
    and one whose rows `mnc db check` still finds damaged."""
    import json

    import msgspec

    from mnlang import api
    from mnlang.run_output import quarantine_line
    from mnlang.stores.base import StoreError

    try:
        released = api.release_run(run_id, db=db)
    except (StoreError, api.NotReleased) as e:
        run_error(e)
    if as_json:
        click.echo(
            json.dumps({"released": run_id, **msgspec.to_builtins(released)}, ensure_ascii=False)
        )
    else:
        click.echo(f"released: {quarantine_line(run_id, released)}")


@db_group.command("migrate")
@db_option
@json_option
def db_migrate(db: str | None, as_json: bool) -> None:
    """Create the journal, or bring its schema up to date.

    Creates the SQLite file or the PostgreSQL schema, or migrates it to this mnlang's
    schema version. Opening a journal migrates it anyway; run this once when deploying
    a new version, so that a missing permission shows here rather than in every worker.
    """
    import json

    from mnlang.stores import open_store
    from mnlang.stores.base import StoreError

    try:
        with open_store(db) as store:
            location, before, after = store.location, store.migrated_from, store.schema_version
    except StoreError as e:
        run_error(e)
    if as_json:
        click.echo(json.dumps({"journal": location, "from_version": before, "version": after}))
    elif before == 0:
        click.echo(f"created journal `{location}` at schema version {after}")
    elif before < after:
        click.echo(f"migrated journal `{location}` from schema version {before} to {after}")
    else:
        click.echo(f"journal `{location}` is up to date (schema version {after})")


def _statuses(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    from mnlang.retention import RetentionError, parse_statuses

    try:
        return parse_statuses(value)
    except RetentionError as e:
        raise click.BadParameter(f"{e.message} ({e.help})") from None


@click.command("gc")
@click.option(
    "--older-than",
    type=SPAN,
    required=True,
    help="Remove runs that ended longer ago than this (30d, 12h, 1h30m).",
)
@click.option(
    "--status",
    "statuses",
    default="completed,failed,cancelled",
    show_default=True,
    callback=_statuses,
    help="Only top-level runs that ended so (comma-separated).",
)
@click.option(
    "--archive",
    type=click.Path(dir_okay=False, path_type=str),
    help="Append the removed runs to this file first (`mnc replay --all --archive FILE`).",
)
@click.option(
    "--ledger-older-than",
    type=SPAN,
    help="Also remove `scope: global` effect keys last written longer ago than this: "
    "those keys no longer deduplicate.",
)
@click.option("--dry-run", is_flag=True, help="Only count what would be removed.")
@db_option
@json_option
def gc(
    older_than: float,
    statuses: list[str],
    archive: str | None,
    ledger_older_than: float | None,
    dry_run: bool,
    db: str | None,
    as_json: bool,
) -> None:
    """Remove ended runs and all their rows (journal, state, signals, checkpoints,
    timers, run-scoped effect keys) from the journal, in batches of one transaction each.

    A child run goes with its top-level run, never alone; a tree with a live run, or
    whose runs `start`ed a run still live, is kept. Each removed run leaves a tombstone,
    so starting its id again answers as before (same input: the ended run; other input:
    refused). `scope: global` effect keys are kept unless --ledger-older-than says.
    docs/deploy.md#retention.
    """
    import json

    from mnlang import api
    from mnlang.stores.base import StoreError

    try:
        report = api.collect_garbage(
            older_than=older_than,
            statuses=statuses,
            archive=archive,
            ledger_older_than=ledger_older_than,
            dry_run=dry_run,
            db=db,
        )
    except StoreError as e:
        run_error(e)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
        return
    verb = "would remove" if dry_run else "removed"
    click.echo(
        f"{verb} {report.runs} runs ({report.trees} top-level) that ended before "
        f"{_when(report.cutoff)}"
        + (f", archived to {report.archive}" if report.archive and not dry_run else "")
    )
    if report.kept_live:
        click.echo(f"kept {len(report.kept_live)} whose child runs are still live")
    if report.kept_detached:
        click.echo(f"kept {len(report.kept_detached)} that started a run still live")
    if report.kept_damaged:
        click.echo(
            f"kept {len(report.kept_damaged)} with damaged rows (`mnc db check`): "
            + ", ".join(report.kept_damaged)
        )
    if report.outbox_events:
        click.echo(f"removed {report.outbox_events} settled webhook notifications (the outbox)")
    if report.global_keys is not None:
        click.echo(f"removed {report.global_keys} global effect keys (they no longer deduplicate)")
