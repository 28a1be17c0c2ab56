"""What `mnc --help` prints, as click renders it at its widest: `mnlang.mnc` prints
it without importing click. Generated: after changing the group's help, its options or
the commands' summaries (`_COMMANDS` in `mnlang/cli/__init__.py`), run
`python -m mnlang.mnc_help` (tests/test_mnc_help.py fails until then).
"""

from __future__ import annotations

TEXT = (
    "Usage: mnc [OPTIONS] COMMAND [ARGS]...\n"
    "\n"
    "  mnc: check, compile and run mnlang workflows.\n"
    "\n"
    "Options:\n"
    "  --version   Show the version and exit.\n"
    "  -h, --help  Show this message and exit.\n"
    "\n"
    "Commands:\n"
    "  approve     Approve CHECKPOINT (its name or id) of run RUN_ID, or...\n"
    "  bench       Run the scenarios under PATH with faults injected, and the...\n"
    "  cancel      Cancel a run; its `finally` bodies and compensations run.\n"
    "  check       Check FILES (`.mn` files, not folders: use a glob such as...\n"
    "  compile     Compile FILE to its IR: the JSON that the runtime runs (see...\n"
    "  db          The journal database.\n"
    "  deliveries  The webhook deliveries of the journal's outbox, newest...\n"
    "  diff        Compare two versions of a program (`.mn` files or IR...\n"
    "  export      Send the journal to observability tools (OpenTelemetry).\n"
    "  fmt         Format PATHS in the canonical layout (`.mn` files; folders...\n"
    "  fork        Fork run RUN_ID from a step into a new run in the same...\n"
    "  gc          Remove ended runs and all their rows (journal, state,...\n"
    "  get         Print the value run RUN_ID published as NAME (`publish NAME...\n"
    "  graph       Draw a workflow's state machine (FILE: `.mn`, or IR `.json`...\n"
    "  init        Start a project in FOLDER (default: here): the project file...\n"
    "  log         Print a run's journal: every event, oldest first.\n"
    "  lsp         Run the language server on standard input and output (for...\n"
    "  mcp         MCP servers as typed tools of a program.\n"
    "  metrics     The product metrics of the journal's runs, per workflow...\n"
    "  reject      Reject CHECKPOINT (its name or id) of run RUN_ID (a repair...\n"
    "  replay      Re-execute run RUN_ID from its start on a throwaway...\n"
    "  resume      Go on with run RUN_ID from its last commit (a run that...\n"
    "  retry       Retry failed run RUN_ID in place, from its failed step,...\n"
    "  run         Run a workflow of FILE (`.mn`, or IR `.json` from `mnc...\n"
    "  runs        List the runs of the journal, newest first.\n"
    "  schedules   List the schedules registered in the journal: name (its...\n"
    "  serve       Serve the JSON API under /api/v1 (docs/api.md), the web...\n"
    "  show        Show a run: status, position, pending work, steps with...\n"
    "  signal      Send EVENT, with its JSON payload (and --key), to run...\n"
    "  test        Run the scenarios of the `.mn` files under PATHS (default:...\n"
    "  ui          Serve the web console: runs, the live graph, approvals and...\n"
    "  upgrade     Move the waiting runs of FILE's workflows to this version...\n"
    "  worker      Move runs forward: resume runs whose process died (once...\n"
    "  workers     List the live workers of the journal: host, process,...\n"
)


def rendered() -> str:
    """`mnc --help` as click renders it now, at its widest."""
    from click.testing import CliRunner

    from mnlang.cli import main
    from mnlang.mnc import WIDEST

    result = CliRunner().invoke(
        main, ["--help"], prog_name="mnc", terminal_width=WIDEST - 2, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.output


def write() -> None:
    """Write this file again with `rendered()` as `TEXT`."""
    import pathlib

    path = pathlib.Path(__file__)
    text = rendered()
    lines = "".join(f"    {line!r}\n" for line in text.splitlines(keepends=True))
    source = path.read_text("utf-8")
    head, _, rest = source.partition("\nTEXT = ")
    _, _, tail = rest.partition("\n\n\n")
    path.write_text(f"{head}\nTEXT = (\n{lines})\n\n\n{tail}", "utf-8")


if __name__ == "__main__":
    write()
