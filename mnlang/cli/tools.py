"""Tools around programs and the journal: test, bench, lsp and the web console (ui)."""

from __future__ import annotations

import sys

import click

from mnlang.cli.running import SPAN
from mnlang.cli.shared import (
    color_option,
    db_option,
    json_option,
    program_or_exit,
    report_to_stderr,
    run_error,
)


@click.command("test")
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option("-k", "select", metavar="TEXT", help="Only scenarios whose name contains TEXT.")
@click.option("-v", "--verbose", is_flag=True, help="One line per scenario, with what was done.")
@click.option(
    "--from-run",
    "from_run",
    metavar="RUN",
    help="Write run RUN of the journal as a scenario into -o FILE instead of testing.",
)
@click.option(
    "-o",
    "--output",
    metavar="FILE",
    help="With --from-run: a new .mn file beside the workflow, or the workflow's own file "
    "(the scenario is appended).",
)
@click.option(
    "--omit",
    multiple=True,
    metavar="PARAM",
    help="With --from-run: leave out the arguments of this parameter (`amount`, or "
    "`refund_payment.amount`); repeatable.",
)
@click.option("--name", metavar="NAME", help="With --from-run: the scenario's name.")
@click.option(
    "--program",
    "source",
    metavar="FILE.mn",
    help="With --from-run: the workflow's source (default: where the run's program was).",
)
@click.option(
    "--archive",
    "archives",
    multiple=True,
    metavar="FILE",
    help="With --from-run: read the run from this archive file instead of the journal.",
)
@db_option
@color_option
@json_option
def test_command(
    paths: tuple[str, ...],
    select: str | None,
    verbose: bool,
    from_run: str | None,
    output: str | None,
    omit: tuple[str, ...],
    name: str | None,
    source: str | None,
    archives: tuple[str, ...],
    db: str | None,
    color: str,
    as_json: bool,
) -> None:
    """Run the scenarios of the `.mn` files under PATHS (default: the current folder), each on
    a fresh journal with its mocked tools, scripted replies, decisions and faults, and
    compare each run with what the scenario expects (docs/testing.md).

    With --from-run RUN -o FILE, write run RUN as a scenario instead (its input, results
    matched by arguments, replies, decisions, events, output and calls; secrets and
    --omit'ted arguments left out).

    Exits 0 when every scenario passed, 1 when one failed or a file has errors, 5 when no
    scenario was found; with --from-run, 0 when written, 2 when refused."""
    import json

    if from_run is not None:
        if output is None or paths or select:
            raise click.UsageError("--from-run RUN takes -o FILE, and no PATHS or -k")
        _write_from_run(from_run, output, omit, name, source, archives, db, as_json)
        return
    if output is not None or omit or name or source or archives:
        raise click.UsageError("-o, --omit, --name, --program and --archive go with --from-run")

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


def _write_from_run(
    run_id: str,
    output: str,
    omit: tuple[str, ...],
    name: str | None,
    source: str | None,
    archives: tuple[str, ...],
    db: str | None,
    as_json: bool,
) -> None:
    import json

    from mnlang import api
    from mnlang.replay.archive import ArchiveError
    from mnlang.replay.engine import ReplayError
    from mnlang.stores.base import StoreError
    from mnlang.testing.from_run import FromRunError

    program = program_or_exit(source) if source is not None else None
    try:
        written = api.scenario_from_run(
            run_id,
            output,
            program=program,
            omit=list(omit),
            name=name,
            archives=list(archives),
            db=db,
        )
    except (FromRunError, ReplayError, StoreError, ArchiveError) as e:
        run_error(e)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "file": str(written.path),
                    "scenario": written.name,
                    "appended": written.appended,
                    "notes": written.notes,
                },
                indent=2,
            )
        )
        return
    how = "appended to" if written.appended else "written to"
    click.echo(f"scenario `{written.name}` {how} {output}")
    for note in written.notes:
        click.echo(f"note: {note}", err=True)


@click.command()
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
    "--seeds",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Run the bench with this many seeds from --seed; print 95% confidence intervals.",
)
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
@click.option(
    "--models",
    "live",
    metavar="PROVIDER",
    help="Live mode: agents answered by this provider (`openai`, `anthropic`, a plugin, or a "
    "project's [providers.NAME]) instead of the scenarios' replies; every request is real "
    "and paid.",
)
@click.option(
    "--cache-replies",
    "cache_for",
    type=SPAN,
    help="Give the runtime's agents (those that call no effect) `cache:` this long, to see "
    "what reply caching changes; the naive chain keeps nothing.",
)
@click.option(
    "--fallback-model",
    metavar="MODEL",
    help="Give the runtime's agents this model to ask when theirs fails (priced by the price "
    "table), to see what model fallback changes; the naive chain has none.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
def bench(
    path: str,
    faults: str,
    seed: int,
    seeds: int,
    repeat: int,
    chaos: float,
    report_path: str | None,
    db: str | None,
    live: str | None,
    cache_for: float | None,
    fallback_model: str | None,
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
    from mnlang.bench.seeds import seed_json, seed_lines
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
    if live is not None:
        from mnlang.bench.models import live_refusal
        from mnlang.models.setup import ModelSpecError

        try:
            why = live_refusal(live)
        except ModelSpecError as e:
            why = str(e)
        if why is not None:
            raise click.BadParameter(why, param_hint="--models")
    if fallback_model is not None:
        from mnlang.models.prices import PriceTableError, load_prices

        try:
            priced = load_prices().model(fallback_model) is not None
        except PriceTableError as e:
            raise click.BadParameter(str(e), param_hint="--fallback-model") from None
        if not priced:
            raise click.BadParameter(
                f"`{fallback_model}` is not in the price table: its replies could not be priced",
                param_hint="--fallback-model",
            )
    progress = None
    if not as_json and sys.stderr.isatty():

        def progress(phase: str, done: int, total: int) -> None:
            end = "\n" if done == total else ""
            click.echo(f"\r{phase}: {done}/{total}", err=True, nl=False)
            click.echo(end, err=True, nl=False)

    results = []
    try:
        for n in range(seeds):
            results.append(
                run_bench(
                    path,
                    faults=chosen,
                    seed=seed + n,
                    repeat=repeat,
                    chaos=chaos,
                    db=None if db is None else (db if n == 0 else f"{db}.seed{seed + n}"),
                    progress=progress,
                    live=live,
                    cache_ms=None if cache_for is None else round(cache_for * 1000),
                    fallback=fallback_model,
                )
            )
    except SuiteError as e:
        if e.diagnostics:
            report_to_stderr(e.file or path, e.diagnostics)
        run_error(e)
    except StoreError as e:
        run_error(e)
    result = results[0]
    if report_path is not None:
        Path(report_path).write_text(bench_html(result), "utf-8")
    if as_json:
        data = bench_json(result)
        if seeds > 1:
            data["over_seeds"] = seed_json(results)
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo("\n".join(bench_lines(result)))
        if seeds > 1:
            click.echo("\n" + "\n".join(seed_lines(results)))
        if report_path is not None:
            click.echo(f"report: {report_path}")
    sys.exit(0 if all(all(t.met for t in targets(r)) for r in results) else 1)


@click.command("lsp")
def lsp_command() -> None:
    """Run the language server on standard input and output (for editors)."""
    from mnlang.lsp.server import serve

    serve()


@click.group("ui", invoke_without_command=True)
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8737, show_default=True)
@click.option(
    "--token",
    envvar="MNC_UI_TOKEN",
    help="The admin token; prefer $MNC_UI_TOKEN, since every local user can read a "
    "command line (`ps`). Needed on any address but loopback unless users have tokens.",
)
@click.option(
    "--execute/--no-execute",
    default=True,
    show_default=True,
    help="Resume runs here after a decision, signal or cancel (--no-execute: `mnc worker` does).",
)
@click.option(
    "--open",
    "open_console",
    is_flag=True,
    help="Without tokens on loopback, let every local account in as you (a single-user "
    "machine only). By default a secret made at start is needed, in the link printed.",
)
@click.pass_context
def ui_command(
    ctx: click.Context,
    db: str | None,
    host: str,
    port: int,
    token: str | None,
    execute: bool,
    open_console: bool,
) -> None:
    """Serve the web console: runs, the live graph, approvals and metrics (docs/ui.md).

    `mnc ui token add NAME` makes a user's token (shown once), `mnc ui token list`
    and `mnc ui token remove NAME` manage them.
    """
    if ctx.invoked_subcommand is not None:
        return
    from mnlang.ui.server import ConsoleError, serve

    _warn_of_a_token_in_argv(ctx)
    try:
        serve(db, host, port, token, execute, open_console=open_console)
    except ConsoleError as e:
        run_error(e)


def _warn_of_a_token_in_argv(ctx: click.Context) -> None:
    """`mnc ui` and `mnc serve`: a token given as an argument is in every user's `ps`."""
    if ctx.get_parameter_source("token") is click.core.ParameterSource.COMMANDLINE:
        click.echo(
            "warning: --token on the command line is visible to every local user (`ps`); "
            "set MNC_UI_TOKEN instead",
            err=True,
        )


@click.command("serve")
@db_option
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
    help="Execute started, signalled, decided and cancelled runs here (a single box); "
    "--no-execute leaves them to `mnc worker`s.",
)
@click.option(
    "--log-format",
    type=click.Choice(("text", "json")),
    default="text",
    show_default=True,
    help="text: local time with its UTC offset; json: one object a line, UTC time, level, "
    "logger (docs/observability.md).",
)
@click.pass_context
def serve_command(
    ctx: click.Context,
    db: str | None,
    host: str,
    port: int,
    token: str | None,
    execute: bool,
    log_format: str,
) -> None:
    """Serve the JSON API under /api/v1 (docs/api.md), the web console beside it and
    Prometheus /metrics (docs/observability.md)."""
    from mnlang.server.serve import serve
    from mnlang.ui.server import ConsoleError

    _warn_of_a_token_in_argv(ctx)
    try:
        serve(db, host, port, token, execute, log_format=log_format)
    except ConsoleError as e:
        run_error(e)


@ui_command.command("token")
@click.argument("action", type=click.Choice(("add", "list", "remove")))
@click.argument("name", required=False)
@db_option
@click.option(
    "--role",
    type=click.Choice(("viewer", "operator", "admin")),
    default="operator",
    show_default=True,
    help="viewer: reads; operator: also starts, signals, decides, cancels; admin: everything.",
)
@click.option(
    "--workflow",
    "workflows",
    multiple=True,
    help="Limit an operator to runs of this workflow (repeatable; default: all).",
)
def ui_token(
    action: str, name: str | None, db: str | None, role: str, workflows: tuple[str, ...]
) -> None:
    """Add, list or remove the console's user tokens (kept hashed beside the journal)."""
    from mnlang.ui.server import ConsoleError, token_command

    try:
        token_command(action, name, db, sys.stdout, role=role, workflows=workflows or None)
    except ConsoleError as e:
        run_error(e)
