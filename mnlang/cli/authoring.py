"""Commands over programs: check, fmt, compile, graph and diff."""

from __future__ import annotations

import sys

import click

from mnlang.cli.shared import color_option, known_workflow, program_or_exit, run_error

_FORMATS = ("full", "concise", "json")


@click.command()
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
    "--no-import",
    is_flag=True,
    help="Never import tool modules: check only the functions their source defines by "
    "`def`, and skip tools whose modules are not beside the .mn file.",
)
@color_option
def check(files: tuple[str, ...], fmt: str, strict: bool, no_import: bool, color: str) -> None:
    """Check FILES (`.mn` files, not folders: use a glob such as `flows/*.mn`).

    Every problem is reported with its code, place and a hint, the Python functions
    behind tools and effects included (docs/tools.md). Exits 0 when there are no errors
    (warnings allowed unless --strict), 1 otherwise.
    """
    from mnlang import api, report

    result = api.check_files(files, strict=strict, allow_import=not no_import)
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


@click.command("compile")
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
    from mnlang.ir.load import dump_ir, ir_schema

    if schema:
        click.echo(json.dumps(ir_schema(), indent=2))
        return
    if file is None:
        raise click.UsageError("give a FILE to compile, or --schema")
    program = program_or_exit(file)
    known_workflow(program, workflow)
    if workflow is not None:
        program = select_workflow(program, workflow)
    text = dump_ir(program)
    if output is None:
        click.echo(text, nl=False)
    else:
        Path(output).write_text(text, "utf-8")


@click.command()
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
        program = program_or_exit(file)
        try:
            name = pick_workflow(program, workflow)
        except GraphError as e:
            raise click.UsageError(f"{e.message}; {e.help}") from None
    else:
        from mnlang.graph.runs import run_graph
        from mnlang.stores import open_store
        from mnlang.stores.base import StoreError

        given = program_or_exit(file) if file is not None else None
        try:
            with open_store(db) as store:
                drawn = run_graph(store, run_id, given, workflow)
        except (GraphError, StoreError) as e:
            run_error(e)
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


@click.command()
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

    before = program_or_exit(old)
    after = program_or_exit(new)
    if workflow is not None and workflow not in after.workflows:
        known_workflow(before, workflow)
    result = diff_programs(before, after, workflow)
    if as_json:
        click.echo(result.model_dump_json(indent=2))
    else:
        click.echo("\n".join(diff_lines(result)))


@click.command("fmt")
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
