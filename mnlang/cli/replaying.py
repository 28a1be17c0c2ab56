"""`mnc replay`: re-execute recorded runs offline and report where a program diverges."""

from __future__ import annotations

import json
import re
import sys
from typing import TYPE_CHECKING, NoReturn

import click

from mnlang.cli.shared import db_option, json_option, program_or_exit, run_error

if TYPE_CHECKING:
    from mnlang.ir.model import IRProgram
    from mnlang.replay.batch import BatchItem
    from mnlang.replay.engine import ReplayReport

_SINCE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _since(text: str | None) -> float | None:
    if text is None:
        return None
    match = _SINCE.match(text.strip())
    if match is None:
        raise click.BadParameter(
            "write a number and a unit, e.g. 30m, 12h, 7d", param_hint="--since"
        )
    return float(match.group(1)) * _UNIT_S[match.group(2)]


@click.command("replay")
@click.argument("run_id", required=False)
@click.option(
    "--program",
    "source",
    type=click.Path(dir_okay=False, path_type=str),
    help="The new version to replay against (default: each run's own program).",
)
@click.option("--all", "every", is_flag=True, help="Replay every top-level run selected.")
@click.option("--workflow", help="With --all: only runs of this workflow.")
@click.option("--since", help="With --all: only runs started this recently (30m, 12h, 7d).")
@click.option(
    "--status",
    type=click.Choice(("completed", "failed", "cancelled", "waiting", "running")),
    help="With --all: only runs with this status.",
)
@click.option(
    "--archive",
    "archives",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=str),
    help="Read runs from this archive file (`mnc gc --archive`) instead of the journal; "
    "may be repeated.",
)
@click.option("--ci", is_flag=True, help="With --all: exit 1 when a run diverged or failed.")
@click.option(
    "--junit",
    type=click.Path(dir_okay=False, path_type=str),
    help="With --all: write the results as JUnit XML to this file.",
)
@click.option(
    "--live-from",
    metavar="STATE",
    help="Fork: replay up to this state (an id from `mnc log`, or a line), then run on "
    "live as a new run in the journal --into names.",
)
@click.option("--into", metavar="PATH", help="With --live-from: the journal of the new run.")
@click.option("--models", help="With --live-from: who answers the agents after the fork point.")
@click.option(
    "--live-effects",
    is_flag=True,
    help="With --live-from: perform effects after the fork point for real (default: "
    "answer them from the source run's ledger, or refuse them).",
)
@click.option("--id", "new_run_id", help="With --live-from: the new run's id.")
@db_option
@json_option
def replay_command(
    run_id: str | None,
    source: str | None,
    every: bool,
    workflow: str | None,
    since: str | None,
    status: str | None,
    archives: tuple[str, ...],
    ci: bool,
    junit: str | None,
    live_from: str | None,
    into: str | None,
    models: str | None,
    live_effects: bool,
    new_run_id: str | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Re-execute run RUN_ID from its start on a throwaway journal, answering every tool,
    effect, agent, checkpoint, event and now() from its recording, and report "same" or
    the first divergence (exit 0 same, 1 diverged, 2 cannot replay). With --all, replay
    many runs and print a table."""
    from mnlang import api
    from mnlang.replay.archive import ArchiveError
    from mnlang.replay.engine import ReplayError
    from mnlang.stores.base import StoreError

    if every == (run_id is not None):
        raise click.UsageError("give a RUN_ID or --all")
    if not every and (workflow or since or status or ci or junit):
        raise click.UsageError("--workflow, --since, --status, --ci and --junit go with --all")
    forking = (into, models, new_run_id) != (None, None, None) or live_effects
    if live_from is None and forking:
        raise click.UsageError("--into, --models, --live-effects and --id go with --live-from")
    if live_from is not None and (every or into is None):
        raise click.UsageError("--live-from forks one RUN_ID and needs --into PATH")
    seconds = _since(since)
    program = program_or_exit(source) if source is not None else None
    if live_from is not None:
        assert into is not None
        _fork(
            str(run_id),
            live_from,
            into,
            program,
            models,
            live_effects,
            new_run_id,
            list(archives),
            db,
            as_json,
        )
    try:
        if every:
            items = api.replay_runs(
                program=program,
                workflow=workflow,
                status=status,
                since_s=seconds,
                archives=list(archives),
                db=db,
            )
        else:
            report = api.replay_run(str(run_id), program=program, archives=list(archives), db=db)
    except (ReplayError, StoreError, ArchiveError) as e:
        run_error(e)
    if not every:
        _print_report(report, as_json)
        sys.exit(0 if report.same else 1)
    if junit is not None:
        from pathlib import Path

        from mnlang.replay.batch import junit_xml

        Path(junit).write_text(junit_xml(items), "utf-8")
    _print_table(items, as_json)
    bad = any(item.verdict != "same" for item in items)
    sys.exit(1 if ci and bad else 0)


def _print_report(report: ReplayReport, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
        return
    for note in report.notes:
        click.echo(f"note: {note}")
    d = report.divergence
    if d is None:
        click.echo(f"same: run {report.run_id} replays unchanged (`{report.status}`)")
        return
    click.echo(f"diverged: run {d.run_id} at {d.where} ({d.reason})")
    if d.statement:
        click.echo(f"  {d.statement}")
    if d.branch:
        click.echo(f"  branch: {d.branch}")
    click.echo(f"  the run:         {d.old}")
    click.echo(f"  the new program: {d.new}")


def _print_table(items: list[BatchItem], as_json: bool) -> None:
    if as_json:
        out = [
            {
                "run_id": i.run_id,
                "workflow": i.workflow,
                "verdict": i.verdict,
                "problem": i.problem,
                "report": i.report.to_json() if i.report else None,
            }
            for i in items
        ]
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
        return
    rows = [("RUN", "WORKFLOW", "VERDICT", "WHERE")]
    for i in items:
        d = i.report.divergence if i.report else None
        where = i.problem or (f"{d.where} ({d.reason})" if d else "")
        rows.append((i.run_id, i.workflow, i.verdict, where))
    widths = [max(len(r[k]) for r in rows) for k in range(3)]
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + row[3])
    counts = {v: sum(i.verdict == v for i in items) for v in ("same", "diverged", "error")}
    click.echo(
        f"{len(items)} runs: {counts['same']} same, {counts['diverged']} diverged, "
        f"{counts['error']} could not be replayed"
    )


def _fork(
    run_id: str,
    live_from: str,
    into: str,
    program: IRProgram | None,
    models: str | None,
    live_effects: bool,
    new_run_id: str | None,
    archives: list[str],
    db: str | None,
    as_json: bool,
) -> NoReturn:
    from mnlang import api
    from mnlang.replay.archive import ArchiveError
    from mnlang.replay.engine import ReplayError
    from mnlang.runtime.run import RunError
    from mnlang.stores.base import StoreError

    warning = (
        "LIVE EFFECTS: effects after the fork point are performed for real: the new run has "
        "new wire keys, so the world sees them again"
        if live_effects
        else "effects after the fork point are answered from the source run's ledger, or "
        "refused (--live-effects performs them for real)"
    )
    click.echo(f"warning: {warning}", err=True)
    try:
        forked = api.fork_run(
            run_id,
            live_from,
            into=into,
            program=program,
            models=models,
            live_effects=live_effects,
            new_run_id=new_run_id,
            archives=archives,
            db=db,
        )
    except (ReplayError, StoreError, ArchiveError, RunError) as e:
        run_error(e)
    if as_json:
        click.echo(json.dumps(forked.to_json(), indent=2, ensure_ascii=False))
    else:
        outcome = forked.outcome
        click.echo(
            f"forked run {run_id} at `{forked.fork_state}` "
            f"({forked.replayed_steps} journal events replayed) as {outcome.run_id} in {into}"
        )
        for name in forked.effects_from_ledger:
            click.echo(f"  effect {name}: answered from the source run's ledger")
        for name in forked.effects_refused:
            click.echo(f"  effect {name}: REFUSED (the source run never made it)")
        click.echo(f"{outcome.run_id}: {outcome.status}")
        if outcome.result is not None:
            click.echo(json.dumps(outcome.result, indent=2, ensure_ascii=False))
        if outcome.error is not None:
            click.echo(f"error: {outcome.error}")
    sys.exit(0 if forked.outcome.status in ("completed", "waiting") else 1)


@click.command("fork")
@click.argument("run_id")
@click.option(
    "--from",
    "from_step",
    required=True,
    metavar="STATE|LINE",
    help="Where the new run goes live: a state id from `mnc log`, or a line.",
)
@click.option(
    "--source",
    type=click.Path(exists=True, dir_okay=False, path_type=str),
    help="Run the new run on this version of the program (default: the run's own).",
)
@click.option("--models", help="Who answers the agents after the fork point.")
@click.option(
    "--live-effects",
    is_flag=True,
    help="Perform effects after the fork point for real (default: answer them from the "
    "source run's ledger, or refuse them).",
)
@click.option("--id", "new_run_id", help="The new run's id.")
@db_option
@json_option
def fork_command(
    run_id: str,
    from_step: str,
    source: str | None,
    models: str | None,
    live_effects: bool,
    new_run_id: str | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Fork run RUN_ID from a step into a new run in the same journal: replayed from its
    journal up to the step, live from there (`mnc replay --live-from --into` forks into
    another journal)."""
    from mnlang.stores import store_location

    program = program_or_exit(source) if source is not None else None
    into = store_location(db)
    _fork(run_id, from_step, into, program, models, live_effects, new_run_id, [], db, as_json)
