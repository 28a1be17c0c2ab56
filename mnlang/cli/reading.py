"""Commands that read the journal: runs, show, log and metrics."""

from __future__ import annotations

import click

from mnlang.cli.shared import db_option, json_option, remote, run_error, server_option


@click.command()
@click.option(
    "--status",
    type=click.Choice(("running", "waiting", "completed", "failed", "cancelled")),
    help="Only runs with this status.",
)
@click.option("-w", "--workflow", help="Only runs of this workflow.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@db_option
@json_option
def runs(
    status: str | None, workflow: str | None, limit: int, db: str | None, as_json: bool
) -> None:
    """List the runs of the journal, newest first."""
    import json
    from typing import cast

    import msgspec

    from mnlang import api
    from mnlang.run_output import runs_lines
    from mnlang.stores.base import RunStatus, StoreError

    try:
        records = api.list_runs(
            status=cast(RunStatus | None, status), workflow=workflow, limit=limit, db=db
        )
    except StoreError as e:
        run_error(e)
    if as_json:
        click.echo(json.dumps(msgspec.to_builtins(records), ensure_ascii=False, indent=2))
    else:
        click.echo("\n".join(runs_lines(records)))


@click.command()
@click.argument("run_id")
@db_option
@json_option
@server_option
def show(
    run_id: str, db: str | None, as_json: bool, server: str | None, server_token: str | None
) -> None:
    """Show a run: status, position, pending work, steps with their inputs and outputs,
    retries, failures and cost."""
    import json

    if server is not None:
        remote(server, server_token, lambda c: c.get_run(run_id))

    from mnlang import api
    from mnlang.run_output import show_lines
    from mnlang.stores.base import StoreError

    try:
        details = api.get_run(run_id, db=db)
    except StoreError as e:
        run_error(e)
    if as_json:
        click.echo(json.dumps(details.to_json(), ensure_ascii=False, indent=2))
    else:
        click.echo("\n".join(show_lines(details)))


@click.command()
@click.argument("run_id")
@click.argument("name", required=False)
@click.option(
    "--wait",
    "wait_for",
    metavar="DURATION",
    help="Wait up to this long (30s, 5m) for NAME to be published.",
)
@db_option
@json_option
def get(run_id: str, name: str | None, wait_for: str | None, db: str | None, as_json: bool) -> None:
    """Print the value run RUN_ID published as NAME (`publish NAME = value`), or all its
    published values. Only committed values are seen. Exits 1 when NAME is not published
    (by the end of --wait), 2 when the run does not exist."""
    import json
    import sys

    from mnlang import api
    from mnlang.runtime.convert import ConversionError, parse_duration_text
    from mnlang.stores.base import StoreError

    wait_s = 0.0
    if wait_for is not None:
        try:
            wait_s = parse_duration_text(wait_for) / 1000
        except ConversionError as e:
            raise click.BadParameter(e.message, param_hint="--wait") from None
    try:
        value = api.get_published(run_id, name, wait_s=wait_s, db=db)
    except api.NotPublished as e:
        click.echo(f"error: {e.message}", err=True)
        if e.help:
            click.echo(f"help: {e.help}", err=True)
        sys.exit(1)
    except StoreError as e:
        run_error(e)
    if as_json or not isinstance(value, str):
        click.echo(json.dumps(value, ensure_ascii=False, indent=2 if name is None else None))
    else:
        click.echo(value)


@click.command()
@click.argument("run_id")
@db_option
@json_option
def log(run_id: str, db: str | None, as_json: bool) -> None:
    """Print a run's journal: every event, oldest first."""
    import json

    import msgspec

    from mnlang import api
    from mnlang.run_output import log_lines
    from mnlang.stores.base import StoreError

    try:
        events = api.run_journal(run_id, db=db)
        names = api.checkpoint_names(run_id, events, db=db)
    except StoreError as e:
        run_error(e)
    if as_json:
        click.echo(json.dumps(msgspec.to_builtins(events), ensure_ascii=False, indent=2))
    else:
        click.echo("\n".join(log_lines(events, names)))


@click.command()
@click.option("--class", "workflow_class", metavar="CLASS", help="Only runs of this class.")
@click.option(
    "--since",
    metavar="WHEN",
    help="Only runs started since then: a span back from now (24h, 7d), an ISO date or time.",
)
@db_option
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
        with open_store(db, existing=True) as store:
            start = None
            if since is not None:
                try:
                    start = since_of(since, store.now())
                except ValueError as e:
                    raise click.BadParameter(str(e), param_hint="--since") from None
            report = compute_metrics(store, workflow_class, start)
    except StoreError as e:
        run_error(e)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    elif prom:
        click.echo(prometheus_text(report), nl=False)
    else:
        click.echo("\n".join(metrics_lines(report)))
