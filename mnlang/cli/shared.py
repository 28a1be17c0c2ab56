"""Options and endings shared by the command groups: the journal and JSON options, the
exit codes of the run commands, and how a command reports what kept it from working."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from mnlang.client import Client
    from mnlang.diagnostics import Diagnostic
    from mnlang.ir.model import IRProgram
    from mnlang.runtime.run import RunOutcome


# Exit codes of the run commands: the run's status, or 2 when it could not be run at all.
RUN_EXIT = {"completed": 0, "failed": 1, "waiting": 3, "cancelled": 4, "running": 0}
db_option = click.option(
    "--db", metavar="PATH", help="The journal (default: $MNC_DB, else ./.mnc/journal.db)."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
color_option = click.option(
    "--color",
    type=click.Choice(("auto", "always", "never")),
    default="auto",
    show_default=True,
    help="Colour the output; auto: only on a terminal, unless NO_COLOR is set.",
)


def run_error(e: Exception) -> NoReturn:
    """Print an error that kept a run command from doing its work, and exit 2."""
    message = getattr(e, "message", None) or str(e)
    code = getattr(e, "code", None)
    click.echo(f"error[{code}]: {message}" if code else f"error: {message}", err=True)
    help_text = getattr(e, "help", None)
    if help_text:
        click.echo(f"help: {help_text}", err=True)
    sys.exit(2)


def report_to_stderr(file: str, diagnostics: list[Diagnostic]) -> None:
    """Diagnostics of a command whose standard output carries a result (IR, DOT, a diff)."""
    from mnlang import report

    if not diagnostics:
        return
    items = [report.Located(d, file) for d in diagnostics]
    lines = report.render(items, report.Sources(), "full")
    report.write(lines, sys.stderr, report.wants_colour(sys.stderr))


def program_or_exit(file: str) -> IRProgram:
    """A `.mn` file checked and compiled, or a compiled `.json` loaded; exit 1 on errors."""
    from mnlang.diagnostics import Diagnostic
    from mnlang.ir.load import IRLoadError, load_or_compile

    try:
        program, diagnostics = load_or_compile(file)
    except IRLoadError as e:
        program, diagnostics = None, [Diagnostic("E095", e.message, None, help=e.help)]
    report_to_stderr(file, diagnostics)
    if program is None:
        sys.exit(1)
    return program


def known_workflow(program: IRProgram, workflow: str | None) -> None:
    if workflow is not None and workflow not in program.workflows:
        known = ", ".join(f"`{w}`" for w in program.workflows) or "none"
        raise click.UsageError(f"no workflow `{workflow}` (workflows: {known})")


def finish_run(outcome: RunOutcome, as_json: bool) -> NoReturn:
    import json

    from mnlang.run_output import outcome_lines

    if as_json:
        click.echo(json.dumps(outcome.to_json(), ensure_ascii=False, indent=2))
    else:
        click.echo("\n".join(outcome_lines(outcome)))
    sys.exit(RUN_EXIT[outcome.status])


def server_option(f: Any) -> Any:
    """`--server URL` (and its token): act through `mnc serve`'s API instead of the
    journal (`mnlang.client`)."""
    f = click.option(
        "--server-token",
        envvar="MNC_SERVER_TOKEN",
        help="The API token for --server (or $MNC_SERVER_TOKEN).",
    )(f)
    return click.option(
        "--server",
        envvar="MNC_SERVER",
        metavar="URL",
        help="Act through the API of `mnc serve` at URL (or $MNC_SERVER), not the journal.",
    )(f)


def remote(server: str, token: str | None, call: Callable[[Client], Any]) -> NoReturn:
    """Make one API call, print its JSON answer and exit: with the run's status when the
    answer is a run, else 0; 2 with the API's error and help when it is refused."""
    import json

    from mnlang.client import ApiError, Client

    try:
        with Client(server, token) as client:
            answer = call(client)
    except ApiError as e:
        if e.details:
            e.help = (e.help + "; " if e.help else "") + json.dumps(e.details, ensure_ascii=False)
        run_error(e)
    except OSError as e:
        run_error(RuntimeError(f"cannot reach {server}: {e}"))
    except Exception as e:  # httpx2's transport errors are not OSErrors
        if type(e).__module__.startswith("httpx"):
            run_error(RuntimeError(f"cannot reach {server}: {e}"))
        raise
    click.echo(json.dumps(answer, ensure_ascii=False, indent=2))
    status = answer.get("status") if isinstance(answer, dict) else None
    sys.exit(RUN_EXIT.get(status, 0) if isinstance(status, str) else 0)
