"""`mnc`, the command line: one small function per command over `mnlang.api`.

To add a command, add a function decorated with `@main.command()`; import what it
needs (the checker, the IR, rich, pydantic, graphviz) inside the function, so that
`mnc --help` and the other commands stay fast. Exit codes: 0 success, 1 the input
has errors, 2 a usage error (click's own).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, NoReturn

import click

from mnlang import __version__

if TYPE_CHECKING:
    from mnlang.diagnostics import Diagnostic
    from mnlang.ir.model import IRProgram
    from mnlang.runtime.journal import Observer
    from mnlang.runtime.run import RunOutcome

_FORMATS = ("full", "concise", "json")
_COLOURS = ("auto", "always", "never")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mnc")
def main() -> None:
    """mnc: check, compile and run mnlang workflows."""


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(_FORMATS),
    default="full",
    show_default=True,
    help="full: with source excerpts; concise: one line each; json: for machines.",
)
@click.option("--strict", is_flag=True, help="Fail (exit 1) on warnings too.")
@click.option(
    "--color",
    type=click.Choice(_COLOURS),
    default="auto",
    show_default=True,
    help="Colour the output; auto: only on a terminal, unless NO_COLOR is set.",
)
def check(files: tuple[str, ...], fmt: str, strict: bool, color: str) -> None:
    """Check FILES (`.mn` files, not folders: use a glob such as `flows/*.mn`).

    Every problem is reported with its code, place and a hint. Exits 0 when there
    are no errors (warnings allowed unless --strict), 1 otherwise.
    """
    from mnlang import api, report

    result = api.check_files(files, strict=strict)
    items = result.items
    if fmt == "json":
        click.echo(report.to_json(items, checked=len(files)))
    else:
        lines = report.render(
            items,
            result.sources,
            "concise" if fmt == "concise" else "full",
            strict=strict,
        )
        report.write(lines, sys.stdout, report.wants_colour(sys.stdout, color))
    sys.exit(0 if result.ok else 1)


# ---- compile, graph, diff: the IR ------------------------------------------------------


def _report_to_stderr(file: str, diagnostics: list[Diagnostic]) -> None:
    """Diagnostics of a command whose standard output carries a result (IR, DOT, a diff)."""
    from mnlang import report

    if not diagnostics:
        return
    items = [report.Located(d, file) for d in diagnostics]
    lines = report.render(items, report.Sources(), "full")
    report.write(lines, sys.stderr, report.wants_colour(sys.stderr))


def _program_or_exit(file: str) -> IRProgram:
    """A `.mn` file checked and compiled, or a compiled `.json` loaded; exit 1 on errors."""
    from mnlang.diagnostics import Diagnostic
    from mnlang.ir.compile import load_or_compile
    from mnlang.ir.load import IRLoadError

    try:
        program, diagnostics = load_or_compile(file)
    except IRLoadError as e:
        program, diagnostics = None, [Diagnostic("E095", e.message, None, help=e.help)]
    _report_to_stderr(file, diagnostics)
    if program is None:
        sys.exit(1)
    return program


def _known_workflow(program: IRProgram, workflow: str | None) -> None:
    if workflow is not None and workflow not in program.workflows:
        known = ", ".join(f"`{w}`" for w in program.workflows) or "none"
        raise click.UsageError(f"no workflow `{workflow}` (workflows: {known})")


@main.command("compile")
@click.argument("file", required=False, type=click.Path(path_type=str))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=str),
    help="Write the IR to this file instead of standard output.",
)
@click.option("-w", "--workflow", help="Keep only this workflow and the workflows it calls.")
@click.option("--schema", is_flag=True, help="Print the JSON Schema of the IR instead.")
def compile_command(
    file: str | None, output: str | None, workflow: str | None, schema: bool
) -> None:
    """Compile FILE to its IR: the JSON that the runtime runs (see docs/ir.md).

    FILE is checked first; when it has errors they are printed, nothing is
    written, and the exit code is 1.
    """
    import json
    from pathlib import Path

    from mnlang.ir.compile import select_workflow
    from mnlang.ir.load import dump_ir
    from mnlang.ir.model import IRProgram

    if schema:
        click.echo(json.dumps(IRProgram.model_json_schema(by_alias=True), indent=2))
        return
    if file is None:
        raise click.UsageError("give a FILE to compile, or --schema")
    program = _program_or_exit(file)
    _known_workflow(program, workflow)
    if workflow is not None:
        program = select_workflow(program, workflow)
    text = dump_ir(program)
    if output is None:
        click.echo(text, nl=False)
    else:
        Path(output).write_text(text, "utf-8")


@main.command()
@click.argument("file", required=False, type=click.Path(path_type=str))
@click.option("-w", "--workflow", help="The workflow to draw (needed when FILE has several).")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=str),
    help="Write `.svg`, `.png` or `.dot`, by the suffix; default: DOT on standard output.",
)
@click.option(
    "--run",
    "run_id",
    metavar="RUN_ID",
    help="Draw this run over its workflow: each state done, running, waiting or failed, "
    "with its attempts.",
)
@click.option(
    "--db", metavar="PATH", help="The journal of --run (default: $MNC_DB, else ./.mnc/journal.db)."
)
def graph(
    file: str | None, workflow: str | None, output: str | None, run_id: str | None, db: str | None
) -> None:
    """Draw a workflow's state machine (FILE: `.mn`, or IR `.json` from `mnc compile`).

    With --run, the run's state is drawn over it; FILE may then be left out, and the
    program the run executed is read from the journal. SVG and PNG need Graphviz's
    `dot` program; DOT output does not.
    """
    from pathlib import Path

    from mnlang.graph.overlay import RunOverlay
    from mnlang.graph.render import GraphError, format_of, pick_workflow, render

    if db is not None and run_id is None:
        raise click.UsageError("--db names the journal of --run: give --run RUN_ID")
    try:
        fmt = format_of(Path(output)) if output is not None else "dot"
    except GraphError as e:
        raise click.UsageError(f"{e.message}; {e.help}") from None
    overlay: RunOverlay | None = None
    if run_id is None:
        if file is None:
            raise click.UsageError("give a FILE to draw, or --run RUN_ID")
        program = _program_or_exit(file)
        try:
            name = pick_workflow(program, workflow)
        except GraphError as e:
            raise click.UsageError(f"{e.message}; {e.help}") from None
    else:
        from mnlang.graph.runs import run_graph
        from mnlang.stores import open_store
        from mnlang.stores.base import StoreError

        given = _program_or_exit(file) if file is not None else None
        try:
            with open_store(db) as store:
                drawn = run_graph(store, run_id, given, workflow)
        except (GraphError, StoreError) as e:
            _run_error(e)
        for warning in drawn.warnings:
            click.echo(f"warning: {warning}", err=True)
        program, name, overlay = drawn.program, drawn.workflow, drawn.overlay
    try:
        data = render(program, name, fmt, overlay)
    except GraphError as e:
        click.echo(f"error: {e.message}\n  help: {e.help}", err=True)
        sys.exit(1)
    if output is None:
        click.echo(data.decode("utf-8"), nl=False)
    else:
        Path(output).write_bytes(data)


@main.command()
@click.argument("old", type=click.Path(path_type=str))
@click.argument("new", type=click.Path(path_type=str))
@click.option("-w", "--workflow", help="Compare only this workflow.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def diff(old: str, new: str, workflow: str | None, as_json: bool) -> None:
    """Compare two versions of a program (`.mn` files or IR `.json` files).

    Lists the states added, removed and changed per workflow, and for each state
    of OLD whether a run paused there can continue on NEW (docs/ir.md, "Version
    compatibility"). Exits 0 once compared, whatever changed; 1 when a file has
    errors.
    """
    from mnlang.ir.diff import diff_programs
    from mnlang.ir.diff_report import diff_lines

    before = _program_or_exit(old)
    after = _program_or_exit(new)
    if workflow is not None and workflow not in after.workflows:
        _known_workflow(before, workflow)
    result = diff_programs(before, after, workflow)
    if as_json:
        click.echo(result.model_dump_json(indent=2))
    else:
        click.echo("\n".join(diff_lines(result)))


# ---- editor support: fmt, lsp ------------------------------------------------------------


@main.command("fmt")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if a file would change.")
@click.option("--diff", "show_diff", is_flag=True, help="Write nothing; print what would change.")
def fmt_command(paths: tuple[str, ...], check: bool, show_diff: bool) -> None:
    """Format PATHS in the canonical layout (`.mn` files; folders recursively; `-` reads
    standard input and writes the result to standard output).

    Exits 1 when a file cannot be parsed or, with --check, when a file would change.
    """
    from mnlang.fmt.command import run_fmt

    code = run_fmt(
        paths,
        check=check,
        diff=show_diff,
        stdin=sys.stdin,
        stdout=sys.stdout,
        stderr=sys.stderr,
    )
    sys.exit(code)


@main.command("lsp")
def lsp_command() -> None:
    """Run the language server on standard input and output (for editors)."""
    from mnlang.lsp.server import serve

    serve()


# ---- runs: run, resume, runs, show, log, cancel -------------------------------------------

# Exit codes of the run commands: the run's status, or 2 when it could not be run at all.
_RUN_EXIT = {"completed": 0, "failed": 1, "waiting": 3, "cancelled": 4, "running": 0}
_db_option = click.option(
    "--db", metavar="PATH", help="The journal (default: $MNC_DB, else ./.mnc/journal.db)."
)
_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")


def _run_error(e: Exception) -> NoReturn:
    """Print an error that kept a run command from doing its work, and exit 2."""
    message = getattr(e, "message", None) or str(e)
    code = getattr(e, "code", None)
    click.echo(f"error[{code}]: {message}" if code else f"error: {message}", err=True)
    help_text = getattr(e, "help", None)
    if help_text:
        click.echo(f"help: {help_text}", err=True)
    sys.exit(2)


def _finish_run(outcome: RunOutcome, as_json: bool) -> NoReturn:
    import json

    from mnlang.run_output import outcome_lines

    if as_json:
        click.echo(json.dumps(outcome.to_json(), ensure_ascii=False, indent=2))
    else:
        click.echo("\n".join(outcome_lines(outcome)))
    sys.exit(_RUN_EXIT[outcome.status])


def _observer(as_json: bool) -> Observer | None:
    if as_json or not sys.stderr.isatty():
        return None
    from mnlang.run_output import step_printer

    return step_printer(sys.stderr)


@main.command("run")
@click.argument("file", type=click.Path(path_type=str))
@click.option("-w", "--workflow", help="The workflow to run (default: the file's only one).")
@click.option("--input", "input_text", metavar="JSON", help="The arguments, a JSON object.")
@click.option(
    "--input-file",
    type=click.Path(dir_okay=False, path_type=str),
    help="Read the arguments from this JSON file.",
)
@click.option("--id", "run_id", help="The run's id; starting the same id again returns that run.")
@_db_option
@click.option(
    "--durability",
    type=click.Choice(("full", "fast")),
    default="full",
    show_default=True,
    help="fast: the last commits may roll back on power loss (never on a crash).",
)
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
    "of MNC_OPENAI_BASE_URL). Default: $MNC_MODELS, else replies.json when present, else openai.",
)
@_json_option
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
    as_json: bool,
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

    if input_text is not None and input_file is not None:
        raise click.UsageError("give --input or --input-file, not both")
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
        _run_error(RunError(f"cannot read `{input_file}`: {e.strerror or e}"))
    except JSONInputError as e:
        _run_error(e)
    try:
        program = api.load_program(file)
    except api.CompileFailed as e:
        _report_to_stderr(file, e.diagnostics)
        sys.exit(2)
    except IRLoadError as e:
        _run_error(e)
    try:
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
        )
    except (RunError, StoreError, FaultError) as e:
        _run_error(e)
    _finish_run(outcome, as_json)


@main.command()
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
@_db_option
@_json_option
def resume(run_id: str, upgrade: bool, source: str | None, db: str | None, as_json: bool) -> None:
    """Go on with run RUN_ID from its last commit (a run that ended only prints its outcome)."""
    from mnlang import api
    from mnlang.runtime.run import RunError
    from mnlang.stores.base import StoreError

    if source is not None and not upgrade:
        raise click.UsageError("--source goes with --upgrade")
    if upgrade:
        program = _program_or_exit(source) if source is not None else None
        try:
            upgraded = api.upgrade_run(run_id, source=program, resume=False, db=db)
        except (RunError, StoreError) as e:
            _run_error(e)
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
        _run_error(e)
    _finish_run(outcome, as_json)


@main.command()
@click.option(
    "--status",
    type=click.Choice(("running", "waiting", "completed", "failed", "cancelled")),
    help="Only runs with this status.",
)
@click.option("-w", "--workflow", help="Only runs of this workflow.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@_db_option
@_json_option
def runs(
    status: str | None, workflow: str | None, limit: int, db: str | None, as_json: bool
) -> None:
    """List the runs of the journal, newest first."""
    import json
    from dataclasses import asdict
    from typing import cast

    from mnlang import api
    from mnlang.run_output import runs_lines
    from mnlang.stores.base import RunStatus, StoreError

    try:
        records = api.list_runs(
            status=cast(RunStatus | None, status), workflow=workflow, limit=limit, db=db
        )
    except StoreError as e:
        _run_error(e)
    if as_json:
        click.echo(json.dumps([asdict(r) for r in records], ensure_ascii=False, indent=2))
    else:
        click.echo("\n".join(runs_lines(records)))


@main.command()
@click.argument("run_id")
@_db_option
@_json_option
def show(run_id: str, db: str | None, as_json: bool) -> None:
    """Show a run: status, position, pending work, steps with their inputs and outputs,
    retries, failures and cost."""
    import json

    from mnlang import api
    from mnlang.run_output import show_lines
    from mnlang.stores.base import StoreError

    try:
        details = api.get_run(run_id, db=db)
    except StoreError as e:
        _run_error(e)
    if as_json:
        click.echo(json.dumps(details.to_json(), ensure_ascii=False, indent=2))
    else:
        click.echo("\n".join(show_lines(details)))


@main.command()
@click.argument("run_id")
@_db_option
@_json_option
def log(run_id: str, db: str | None, as_json: bool) -> None:
    """Print a run's journal: every event, oldest first."""
    import json
    from dataclasses import asdict

    from mnlang import api
    from mnlang.run_output import log_lines
    from mnlang.stores.base import StoreError

    try:
        events = api.run_journal(run_id, db=db)
    except StoreError as e:
        _run_error(e)
    if as_json:
        click.echo(json.dumps([asdict(e) for e in events], ensure_ascii=False, indent=2))
    else:
        click.echo("\n".join(log_lines(events)))


@main.command()
@click.argument("run_id")
@_db_option
@_json_option
def cancel(run_id: str, db: str | None, as_json: bool) -> None:
    """Cancel a run; its `finally` bodies and compensations run. Exits 4 once cancelled."""
    from mnlang import api
    from mnlang.runtime.run import RunError
    from mnlang.stores.base import StoreError

    try:
        outcome = api.cancel_run(run_id, db=db)
    except (RunError, StoreError) as e:
        _run_error(e)
    _finish_run(outcome, as_json)


# ---- people and events: approve, reject, signal -------------------------------------------

_detach_option = click.option(
    "--detach",
    is_flag=True,
    help="Only record it; a worker (`mnc worker`) or `mnc resume` moves the run on.",
)


def _finish_runs(head: dict[str, object], runs: list[RunOutcome], as_json: bool) -> NoReturn:
    """Print what a decision or signal did and the runs that went on; exit with the run's
    status (0 when it was left to a worker)."""
    import json

    from mnlang.run_output import outcome_lines

    if as_json:
        click.echo(
            json.dumps({**head, "runs": [r.to_json() for r in runs]}, ensure_ascii=False, indent=2)
        )
    else:
        for index, outcome in enumerate(runs):
            if index:
                click.echo("its parent went on:")
            click.echo("\n".join(outcome_lines(outcome)))
    sys.exit(_RUN_EXIT[runs[0].status] if runs else 0)


def _decide(
    run_id: str,
    checkpoint: str,
    approve: bool,
    choice: str | None,
    by: str | None,
    comment: str | None,
    result_text: str | None,
    detach: bool,
    db: str | None,
    as_json: bool,
) -> NoReturn:
    from mnlang import api
    from mnlang.jsonin import JSONInputError, decode_json
    from mnlang.runtime.run import RunError
    from mnlang.stores.base import StoreError

    result = None
    if result_text is not None:
        try:
            result = decode_json(result_text, "--result")
        except JSONInputError as e:
            _run_error(e)
    try:
        outcome = api.decide(
            run_id,
            checkpoint,
            approve=approve,
            choice=choice,
            by=by,
            comment=comment,
            result=result,
            resume=not detach,
            db=db,
        )
    except (RunError, StoreError) as e:
        _run_error(e)
    decided = outcome.decided
    if not as_json:
        note = f": {decided.comment}" if decided.comment else ""
        click.echo(
            f"decided: checkpoint {decided.name} of run {decided.run_id}: "
            f"{decided.choice} by {decided.by}{note}"
        )
    _finish_runs({"decision": decided.to_json()}, outcome.runs, as_json)


@main.command()
@click.argument("run_id")
@click.argument("checkpoint")
@click.option("--choice", help="Pick this option instead of `approve` (e.g. `load`, `retry`).")
@click.option("--by", help="Who decides (default: your user name).")
@click.option("--comment", help="Why; the workflow reads it as `decision.comment`.")
@click.option(
    "--result",
    "result_text",
    metavar="JSON",
    help="With `--choice mark_done` on a repair: the effect's result, as JSON.",
)
@_detach_option
@_db_option
@_json_option
def approve(
    run_id: str,
    checkpoint: str,
    choice: str | None,
    by: str | None,
    comment: str | None,
    result_text: str | None,
    detach: bool,
    db: str | None,
    as_json: bool,
) -> None:
    """Approve CHECKPOINT (its name or id) of run RUN_ID, or decide it with --choice; the
    run then goes on here unless --detach. The first decision committed wins: a decision
    after another one, or after the checkpoint's timeout fell due, is refused (exit 2).
    Exits like `mnc run` with the run's status."""
    _decide(run_id, checkpoint, True, choice, by, comment, result_text, detach, db, as_json)


@main.command()
@click.argument("run_id")
@click.argument("checkpoint")
@click.option("--by", help="Who decides (default: your user name).")
@click.option("--comment", help="Why; the workflow reads it as `decision.comment`.")
@_detach_option
@_db_option
@_json_option
def reject(
    run_id: str,
    checkpoint: str,
    by: str | None,
    comment: str | None,
    detach: bool,
    db: str | None,
    as_json: bool,
) -> None:
    """Reject CHECKPOINT (its name or id) of run RUN_ID (a repair checkpoint: fail the
    step); the run then goes on here unless --detach. Exits like `mnc approve`."""
    _decide(run_id, checkpoint, False, None, by, comment, None, detach, db, as_json)


@main.command("signal")
@click.argument("run_id")
@click.argument("event")
@click.argument("payload", required=False, metavar="[JSON]")
@click.option(
    "--id", "signal_id", help="The signal's id: a signal with an id already sent is ignored."
)
@_detach_option
@_db_option
@_json_option
def signal_command(
    run_id: str,
    event: str,
    payload: str | None,
    signal_id: str | None,
    detach: bool,
    db: str | None,
    as_json: bool,
) -> None:
    """Send EVENT, with its JSON payload, to run RUN_ID. A run not waiting for it yet
    finds it in its mailbox when it does. A run waiting for it goes on here unless
    --detach; exits like `mnc run` then, else 0."""
    from mnlang import api
    from mnlang.jsonin import JSONInputError, decode_json
    from mnlang.runtime.run import RunError
    from mnlang.stores.base import StoreError

    value = None
    if payload is not None:
        try:
            value = decode_json(payload, "the payload")
        except JSONInputError as e:
            _run_error(e)
    try:
        outcome = api.signal(run_id, event, value, signal_id=signal_id, resume=not detach, db=db)
    except (RunError, StoreError) as e:
        _run_error(e)
    delivered = outcome.delivered
    if not as_json:
        if not delivered.accepted:
            click.echo(f"ignored: signal `{signal_id}` was delivered to run {run_id} before")
        else:
            click.echo(f"delivered: {delivered.event} to run {run_id}")
            if not delivered.waiting:
                click.echo("the run does not wait for it now; it finds it when it does")
    _finish_runs({"signal": delivered.to_json()}, outcome.runs, as_json)


# ---- the worker and upgrades -----------------------------------------------------------------


@main.command()
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
@click.option("--until-idle", is_flag=True, help="Stop once no run is left to move.")
@click.option("-q", "--quiet", is_flag=True, help="Log only problems.")
@click.option(
    "--durability",
    type=click.Choice(("full", "fast")),
    default="full",
    show_default=True,
    help="fast: the last commits may roll back on power loss (never on a crash).",
)
@_db_option
def worker(
    files: tuple[str, ...],
    concurrency: int,
    lease_ttl: float,
    until_idle: bool,
    quiet: bool,
    durability: str,
    db: str | None,
) -> None:
    """Move runs forward: resume runs whose process died (once their lease expired), fire
    due timers and checkpoint timeouts, deliver signals, continue decided runs and start
    scheduled runs. FILES (`.mn` or IR `.json`) register their `schedule`s in the journal
    first, for every worker on it.

    Stops on SIGTERM or Ctrl-C: runs in progress stop at their next commit point and are
    released to other workers (a second signal exits at once). Several workers may share
    one journal; they never execute the same run at once.
    """
    import os
    import signal
    import time

    from mnlang import api
    from mnlang.runtime.run import RunError
    from mnlang.runtime.worker import Worker
    from mnlang.stores.base import StoreError

    def log(line: str, problem: bool = False) -> None:
        if problem or not quiet:
            click.echo(f"{time.strftime('%H:%M:%S')} {line}", err=True)

    programs = [_program_or_exit(file) for file in files]
    try:
        for record in api.register_schedules(programs, db=db):
            log(f"schedule {record.name}: registered, next run at {_when(record.next_at)}")
    except (RunError, StoreError) as e:
        _run_error(e)

    def on_start(running: Worker) -> None:
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
        )
    except StoreError as e:
        _run_error(e)
    ended = ", ".join(f"{n} {status}" for status, n in sorted(stats.ended.items())) or "none"
    log(
        f"runs claimed {stats.claimed}; left {ended}; lost {stats.lost}; scheduled {stats.scheduled}"
    )


@main.command()
@_db_option
@_json_option
def workers(db: str | None, as_json: bool) -> None:
    """List the live workers of the journal: host, process, concurrency, last heartbeat and
    the runs each holds a lease on. A worker that stopped beating for its lease time is not
    listed (its runs go to other workers)."""
    import json
    from dataclasses import asdict

    from mnlang.stores import open_store
    from mnlang.stores.base import StoreError

    try:
        with open_store(db) as store:
            records, now = store.list_workers(), store.now()
    except StoreError as e:
        _run_error(e)
    if as_json:
        click.echo(json.dumps([asdict(w) for w in records], ensure_ascii=False, indent=2))
        return
    if not records:
        click.echo("no live workers")
        return
    for w in records:
        runs = ", ".join(w.claimed) if w.claimed else "none"
        click.echo(
            f"{w.worker_id}  host {w.host}  pid {w.pid}  concurrency {w.concurrency}  "
            f"heartbeat {now - w.heartbeat_at:.1f}s ago  since {_when(w.started_at)}"
        )
        click.echo(f"  runs ({len(w.claimed)}): {runs}")


def _when(at: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@main.command()
@click.argument("file", type=click.Path(path_type=str))
@click.option("--check", is_flag=True, help="Only list the verdicts; move no run.")
@_db_option
@_json_option
def upgrade(file: str, check: bool, db: str | None, as_json: bool) -> None:
    """Move the waiting runs of FILE's workflows to this version of FILE when `mnc diff`'s
    compatibility rule allows it (`--check`: only say, per run, whether it can and why
    not). A moved run goes on with the next `mnc resume` or worker. Exits 1 when a run
    cannot move."""
    import json

    from mnlang import api
    from mnlang.runtime.run import RunError
    from mnlang.stores.base import StoreError

    program = _program_or_exit(file)
    try:
        verdicts = api.check_upgrades(program, apply=not check, db=db)
    except (RunError, StoreError) as e:
        _run_error(e)
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


# ---- the journal database: db migrate -----------------------------------------------------


@main.group("db")
def db_group() -> None:
    """The journal database."""


@db_group.command("migrate")
@_db_option
@_json_option
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
        _run_error(e)
    if as_json:
        click.echo(json.dumps({"journal": location, "from_version": before, "version": after}))
    elif before == 0:
        click.echo(f"created journal `{location}` at schema version {after}")
    elif before < after:
        click.echo(f"migrated journal `{location}` from schema version {before} to {after}")
    else:
        click.echo(f"journal `{location}` is up to date (schema version {after})")


# ---- the web console: ui ---------------------------------------------------------------------


@main.group("ui", invoke_without_command=True)
@_db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8737, show_default=True)
@click.option(
    "--token",
    envvar="MNC_UI_TOKEN",
    help="The admin token (or $MNC_UI_TOKEN); needed on any address but loopback "
    "unless users have tokens.",
)
@click.option(
    "--execute/--no-execute",
    default=True,
    show_default=True,
    help="Resume runs here after a decision, signal or cancel (--no-execute: `mnc worker` does).",
)
@click.pass_context
def ui_command(
    ctx: click.Context, db: str | None, host: str, port: int, token: str | None, execute: bool
) -> None:
    """Serve the web console: runs, the live graph, approvals and metrics (docs/ui.md).

    `mnc ui token add NAME` makes a user's token (shown once), `mnc ui token list`
    and `mnc ui token remove NAME` manage them.
    """
    if ctx.invoked_subcommand is not None:
        return
    from mnlang.ui.server import ConsoleError, serve

    try:
        serve(db, host, port, token, execute)
    except ConsoleError as e:
        _run_error(e)


@ui_command.command("token")
@click.argument("action", type=click.Choice(("add", "list", "remove")))
@click.argument("name", required=False)
@_db_option
def ui_token(action: str, name: str | None, db: str | None) -> None:
    """Add, list or remove the console's user tokens (kept hashed beside the journal)."""
    from mnlang.ui.server import ConsoleError, token_command

    try:
        token_command(action, name, db, sys.stdout)
    except ConsoleError as e:
        _run_error(e)


# ---- metrics and bench ---------------------------------------------------------------------


@main.command()
@click.option("--class", "workflow_class", metavar="CLASS", help="Only runs of this class.")
@click.option(
    "--since",
    metavar="WHEN",
    help="Only runs started since then: a span back from now (24h, 7d), an ISO date or time.",
)
@_db_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
@click.option("--prom", is_flag=True, help="Print the Prometheus text exposition.")
def metrics(
    workflow_class: str | None, since: str | None, db: str | None, as_json: bool, prom: bool
) -> None:
    """The product metrics of the journal's runs, per workflow class, each with its
    numerator and denominator (formulas: docs/metrics.md)."""
    import json

    from mnlang.metrics import compute_metrics
    from mnlang.metrics.compute import since_of
    from mnlang.metrics.render import metrics_lines, prometheus_text
    from mnlang.stores import open_store
    from mnlang.stores.base import StoreError

    if as_json and prom:
        raise click.UsageError("give --json or --prom, not both")
    try:
        with open_store(db) as store:
            start = None
            if since is not None:
                try:
                    start = since_of(since, store.now())
                except ValueError as e:
                    raise click.BadParameter(str(e), param_hint="--since") from None
            report = compute_metrics(store, workflow_class, start)
    except StoreError as e:
        _run_error(e)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    elif prom:
        click.echo(prometheus_text(report), nl=False)
    else:
        click.echo("\n".join(metrics_lines(report)))


# ---- test ----------------------------------------------------------------------------------


@main.command("test")
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option("-k", "select", metavar="TEXT", help="Only scenarios whose name contains TEXT.")
@click.option("-v", "--verbose", is_flag=True, help="One line per scenario, with what was done.")
@click.option(
    "--color",
    type=click.Choice(_COLOURS),
    default="auto",
    show_default=True,
    help="Colour the output; auto: only on a terminal, unless NO_COLOR is set.",
)
@_json_option
def test_command(
    paths: tuple[str, ...], select: str | None, verbose: bool, color: str, as_json: bool
) -> None:
    """Run the scenarios of the `.mn` files under PATHS (default: the current folder), each on
    a fresh journal with its mocked tools, scripted replies, decisions and faults, and
    compare each run with what the scenario expects (docs/testing.md).

    Exits 0 when every scenario passed, 1 when one failed or a file has errors, 5 when no
    scenario was found."""
    import json

    from mnlang import report
    from mnlang.testing import run_tests
    from mnlang.testing.report import render, result_lines
    from mnlang.testing.runner import ScenarioResult

    colour = report.wants_colour(sys.stdout, color)

    def style(text: str, name: str) -> str:
        return click.style(text, fg=name) if colour else text

    def progress(result: ScenarioResult) -> None:
        click.echo("\n".join(result_lines(result, style)))

    live = progress if verbose and not as_json else None
    outcome = run_tests(paths or ["."], select=select, on_result=live)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "passed": outcome.ok,
                    "seconds": round(outcome.seconds, 3),
                    "scenarios": [r.to_json() for r in outcome.results],
                    "errors": [
                        {
                            "file": p.file,
                            "message": p.message,
                            "diagnostics": [
                                {"code": d.code, "message": d.message, "span": str(d.span)}
                                for d in p.diagnostics
                            ],
                        }
                        for p in outcome.problems
                    ],
                },
                indent=2,
            )
        )
    else:
        click.echo("\n".join(render(outcome, listed=verbose, style=style)))
    sys.exit(outcome.exit_code)


@main.command()
@click.argument("path", type=click.Path(exists=True, path_type=str))
@click.option(
    "--faults",
    default="all",
    show_default=True,
    metavar="all|LIST",
    help="Fault classes to inject: all, or a comma-separated list (e.g. worker_crash,retry_storm).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Where faults go.")
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Repetitions of the suite (faults are placed anew each time).",
)
@click.option(
    "--chaos",
    type=click.FloatRange(0, 1),
    default=0.1,
    show_default=True,
    help="Also run each scenario with this chance of a fault at every call attempt (0: none).",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=str),
    help="Write an HTML report with charts to this file.",
)
@click.option("--db", metavar="PATH", help="The bench's journal (default: a new temporary file).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
def bench(
    path: str,
    faults: str,
    seed: int,
    repeat: int,
    chaos: float,
    report_path: str | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Run the scenarios under PATH with faults injected, and the naive agent chain beside
    them; print the metrics per class with the targets (docs/metrics.md). Exits 0 when
    every target is met, 1 otherwise."""
    import json
    from pathlib import Path

    from mnlang.bench.html import bench_html
    from mnlang.bench.report import bench_json, bench_lines, targets
    from mnlang.bench.runner import run_bench
    from mnlang.bench.suite import SuiteError
    from mnlang.runtime.faults import FAULT_CLASSES
    from mnlang.stores.base import StoreError

    chosen = list(FAULT_CLASSES) if faults == "all" else [f.strip() for f in faults.split(",")]
    unknown = [f for f in chosen if f not in FAULT_CLASSES]
    if unknown:
        raise click.BadParameter(
            f"unknown fault class `{unknown[0]}` (classes: {', '.join(FAULT_CLASSES)})",
            param_hint="--faults",
        )
    progress = None
    if not as_json and sys.stderr.isatty():

        def progress(phase: str, done: int, total: int) -> None:
            end = "\n" if done == total else ""
            click.echo(f"\r{phase}: {done}/{total}", err=True, nl=False)
            click.echo(end, err=True, nl=False)

    try:
        result = run_bench(
            path,
            faults=chosen,
            seed=seed,
            repeat=repeat,
            chaos=chaos,
            db=db,
            progress=progress,
        )
    except SuiteError as e:
        if e.diagnostics:
            _report_to_stderr(e.file or path, e.diagnostics)
        _run_error(e)
    except StoreError as e:
        _run_error(e)
    if report_path is not None:
        Path(report_path).write_text(bench_html(result), "utf-8")
    if as_json:
        click.echo(json.dumps(bench_json(result), indent=2))
    else:
        click.echo("\n".join(bench_lines(result)))
        if report_path is not None:
            click.echo(f"report: {report_path}")
    sys.exit(0 if all(t.met for t in targets(result)) else 1)


if __name__ == "__main__":
    main()
