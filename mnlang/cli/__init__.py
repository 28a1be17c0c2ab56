"""`mnc`, the command line: one small function per command over `mnlang.api`, grouped by
what the commands act on (authoring, running, people, reading, tools).

To add a command, write a `@click.command()` function in its group's module and list it
in `main` below; import what it needs (the checker, the IR, rich, pydantic, graphviz)
inside the function, so that `mnc --help` and the other commands stay fast. Exit codes:
0 success, 1 the input has errors, 2 a usage error (click's own).
"""

from __future__ import annotations

import click

from mnlang import __version__
from mnlang.cli import (
    authoring,
    mcp_commands,
    observing,
    people,
    project_commands,
    reading,
    replaying,
    running,
    tools,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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


_COMMANDS = (
    authoring.check,
    authoring.fmt_command,
    authoring.compile_command,
    authoring.graph,
    authoring.diff,
    running.run_command,
    running.resume,
    running.worker,
    running.workers,
    running.schedules_group,
    running.upgrade,
    running.db_group,
    running.gc,
    people.approve,
    people.reject,
    people.signal_command,
    people.cancel,
    people.retry,
    reading.runs,
    reading.show,
    reading.get,
    reading.log,
    reading.metrics,
    replaying.replay_command,
    replaying.fork_command,
    observing.export_group,
    observing.deliveries_group,
    tools.test_command,
    tools.bench,
    tools.lsp_command,
    tools.ui_command,
    project_commands.init,
    tools.serve_command,
    mcp_commands.mcp_group,
)
for _command in _COMMANDS:
    main.add_command(_command)
