"""`mnc`, the command line: one small function per command over `mnlang.api`, grouped by
what the commands act on (authoring, running, people, reading, tools).

To add a command, write a `@click.command()` function in its group's module and list it
in `_COMMANDS` below with the first paragraph of its help; import what it needs (the
checker, the IR, rich, pydantic, graphviz) inside the function, so that `mnc --help` and
the other commands stay fast. A command's module is imported only when the command runs
or shows its own help: `mnc --help` lists the commands from `_COMMANDS` alone
(tests/test_cli_lazy.py keeps that table in step with the commands). Exit codes: 0
success, 1 the input has errors, 2 a usage error (click's own).
"""

from __future__ import annotations

import sys

import click

from mnlang import __version__

# name -> (module of mnlang.cli, the command's attribute there, the first paragraph of its
# help, which `mnc --help` shortens to fit).
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "check": (
        "authoring",
        "check",
        "Check FILES (`.mn` files, not folders: use a glob such as `flows/*.mn`).",
    ),
    "fmt": (
        "authoring",
        "fmt_command",
        "Format PATHS in the canonical layout (`.mn` files; folders recursively; `-` "
        "reads standard input and writes the result to standard output).",
    ),
    "compile": (
        "authoring",
        "compile_command",
        "Compile FILE to its IR: the JSON that the runtime runs (see docs/ir.md).",
    ),
    "graph": (
        "authoring",
        "graph",
        "Draw a workflow's state machine (FILE: `.mn`, or IR `.json` from `mnc compile`).",
    ),
    "diff": (
        "authoring",
        "diff",
        "Compare two versions of a program (`.mn` files or IR `.json` files).",
    ),
    "run": (
        "running",
        "run_command",
        "Run a workflow of FILE (`.mn`, or IR `.json` from `mnc compile`) until it "
        "completes, fails or waits. Exits 0 completed, 1 failed, 3 waiting, 4 "
        "cancelled, 2 when it could not run (usage, compile errors, bad input, journal "
        "problems). With --detach the run is only created (exit 0), for `mnc worker`.",
    ),
    "resume": (
        "running",
        "resume",
        "Go on with run RUN_ID from its last commit (a run that ended only prints its outcome).",
    ),
    "worker": (
        "running",
        "worker",
        "Move runs forward: resume runs whose process died (once their lease expired), "
        "fire due timers and checkpoint timeouts, deliver signals, continue decided "
        "runs and start scheduled runs. FILES (`.mn` or IR `.json`) register their "
        "`schedule`s in the journal first, for every worker on it.",
    ),
    "workers": (
        "running",
        "workers",
        "List the live workers of the journal: host, process, concurrency, last "
        "heartbeat and the runs each holds a lease on. A worker that stopped beating "
        "for its lease time is not listed (its runs go to other workers).",
    ),
    "schedules": (
        "running",
        "schedules_group",
        "List the schedules registered in the journal: name (its declaring module's and "
        "its own, `jobs.nightly`), workflow, next time, last start and whether it is "
        "paused.",
    ),
    "upgrade": (
        "running",
        "upgrade",
        "Move the waiting runs of FILE's workflows to this version of FILE when `mnc "
        "diff`'s compatibility rule allows it (`--check`: only say, per run, whether it "
        "can and why not). A moved run goes on with the next `mnc resume` or worker. "
        "Exits 1 when a run cannot move.",
    ),
    "db": (
        "running",
        "db_group",
        "The journal database.",
    ),
    "gc": (
        "running",
        "gc",
        "Remove ended runs and all their rows (journal, state, signals, checkpoints, "
        "timers, run-scoped effect keys) from the journal, in batches of one "
        "transaction each.",
    ),
    "approve": (
        "people",
        "approve",
        "Approve CHECKPOINT (its name or id) of run RUN_ID, or decide it with --choice; "
        "the run then goes on here unless --detach. The first decision committed wins: "
        "a decision after another one, or after the checkpoint's timeout fell due, is "
        "refused (exit 2). Exits like `mnc run` with the run's status.",
    ),
    "reject": (
        "people",
        "reject",
        "Reject CHECKPOINT (its name or id) of run RUN_ID (a repair checkpoint: fail "
        "the step); the run then goes on here unless --detach. Exits like `mnc "
        "approve`.",
    ),
    "signal": (
        "people",
        "signal_command",
        "Send EVENT, with its JSON payload (and --key), to run RUN_ID, or answer a "
        "callback --token. A run not waiting for it yet finds it in its mailbox when it "
        "does. A run waiting for it goes on here unless --detach; exits like `mnc run` "
        "then, else 0.",
    ),
    "cancel": (
        "people",
        "cancel",
        "Cancel a run; its `finally` bodies and compensations run. Exits 4 once cancelled.",
    ),
    "retry": (
        "people",
        "retry",
        "Retry failed run RUN_ID in place, from its failed step, once its cause is "
        "fixed (code, configuration, a key). A run whose unwinding did work outside it "
        "(an effect in a `finally`, compensations) is refused with the reason (exit 2).",
    ),
    "runs": (
        "reading",
        "runs",
        "List the runs of the journal, newest first.",
    ),
    "show": (
        "reading",
        "show",
        "Show a run: status, position, pending work, steps with their inputs and "
        "outputs, retries, failures and cost.",
    ),
    "get": (
        "reading",
        "get",
        "Print the value run RUN_ID published as NAME (`publish NAME = value`), or all "
        "its published values. Only committed values are seen. Exits 1 when NAME is not "
        "published (by the end of --wait), 2 when the run does not exist.",
    ),
    "log": (
        "reading",
        "log",
        "Print a run's journal: every event, oldest first.",
    ),
    "metrics": (
        "reading",
        "metrics",
        "The product metrics of the journal's runs, per workflow class, each with its "
        "numerator and denominator (formulas: docs/metrics.md).",
    ),
    "replay": (
        "replaying",
        "replay_command",
        "Re-execute run RUN_ID from its start on a throwaway journal, answering every "
        "tool, effect, agent, checkpoint, event and now() from its recording, and "
        'report "same" or the first divergence (exit 0 same, 1 diverged, 2 cannot '
        "replay). With --all, replay many runs and print a table.",
    ),
    "fork": (
        "replaying",
        "fork_command",
        "Fork run RUN_ID from a step into a new run in the same journal: replayed from "
        "its journal up to the step, live from there (`mnc replay --live-from --into` "
        "forks into another journal).",
    ),
    "export": (
        "observing",
        "export_group",
        "Send the journal to observability tools (OpenTelemetry).",
    ),
    "deliveries": (
        "observing",
        "deliveries_group",
        "The webhook deliveries of the journal's outbox, newest first, with every "
        "attempt (docs/webhooks.md); `mnc serve` delivers them.",
    ),
    "test": (
        "tools",
        "test_command",
        "Run the scenarios of the `.mn` files under PATHS (default: the current "
        "folder), each on a fresh journal with its mocked tools, scripted replies, "
        "decisions and faults, and compare each run with what the scenario expects "
        "(docs/testing.md).",
    ),
    "bench": (
        "tools",
        "bench",
        "Run the scenarios under PATH with faults injected, and the naive agent chain "
        "beside them; print the metrics per class with the targets (docs/metrics.md). "
        "Exits 0 when every target is met, 1 otherwise.",
    ),
    "lsp": (
        "tools",
        "lsp_command",
        "Run the language server on standard input and output (for editors).",
    ),
    "ui": (
        "tools",
        "ui_command",
        "Serve the web console: runs, the live graph, approvals and metrics (docs/ui.md).",
    ),
    "init": (
        "project_commands",
        "init",
        "Start a project in FOLDER (default: here): the project file `mnlang.toml`, a "
        "workflow with a scenario (`confirm.mn`) and its tools (`tools.py`). Refuses to "
        "overwrite a file that exists.",
    ),
    "serve": (
        "tools",
        "serve_command",
        "Serve the JSON API under /api/v1 (docs/api.md), the web console beside it and "
        "Prometheus /metrics (docs/observability.md).",
    ),
    "mcp": (
        "mcp_commands",
        "mcp_group",
        "MCP servers as typed tools of a program.",
    ),
}


class _LazyGroup(click.Group):
    """A group whose commands are imported from `_COMMANDS` when one is asked for: running
    `mnc runs` imports the reading commands only, and listing them imports none."""

    _listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = _COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module, attribute, summary = entry
        if self._listing:  # only its line in `mnc --help`
            return click.Command(cmd_name, help=summary)
        command = self.commands.get(cmd_name)
        if command is None:
            # `__import__`, not `importlib.import_module`: `python -X importtime` sees it
            __import__(f"mnlang.cli.{module}")
            command = getattr(sys.modules[f"mnlang.cli.{module}"], attribute)
            assert isinstance(command, click.Command)
            self.commands[cmd_name] = command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            self._listing = False


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mnc")
def main() -> None:
    """mnc: check, compile and run mnlang workflows."""
    import os

    from mnlang.project import ProjectError, apply_defaults, find_project

    try:
        project = find_project()
    except ProjectError as e:
        raise click.ClickException(f"{e.message}\nhelp: {e.help}") from None
    if project is not None:
        apply_defaults(os.environ, project)
