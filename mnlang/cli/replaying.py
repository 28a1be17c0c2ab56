"""`mnc replay`: re-execute a recorded run offline and report where a program diverges."""

from __future__ import annotations

import json
import sys

import click

from mnlang.cli.shared import db_option, json_option, program_or_exit, run_error


@click.command("replay")
@click.argument("run_id")
@click.option(
    "--program",
    "source",
    type=click.Path(dir_okay=False, path_type=str),
    help="The new version to replay the run against (default: the run's own program).",
)
@db_option
@json_option
def replay_command(run_id: str, source: str | None, db: str | None, as_json: bool) -> None:
    """Re-execute run RUN_ID from its start on a throwaway journal, answering every tool,
    effect, agent, checkpoint, event and now() from its recording, and report "same" or
    the first divergence. Exit code 0 same, 1 diverged."""
    from mnlang import api
    from mnlang.replay.engine import ReplayError
    from mnlang.stores.base import StoreError

    program = program_or_exit(source) if source is not None else None
    try:
        report = api.replay_run(run_id, program=program, db=db)
    except (ReplayError, StoreError) as e:
        run_error(e)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        for note in report.notes:
            click.echo(f"note: {note}")
        d = report.divergence
        if d is None:
            click.echo(f"same: run {run_id} replays unchanged (`{report.status}`)")
        else:
            click.echo(f"diverged: run {d.run_id} at {d.where} ({d.reason})")
            if d.statement:
                click.echo(f"  {d.statement}")
            if d.branch:
                click.echo(f"  branch: {d.branch}")
            click.echo(f"  the run:         {d.old}")
            click.echo(f"  the new program: {d.new}")
    sys.exit(0 if report.same else 1)
