"""Commands that send what the journal knows to the team's own tools: `mnc export traces`,
and what became of the outbox's webhooks: `mnc deliveries`."""

from __future__ import annotations

import click

from mnlang.cli.shared import db_option, run_error


@click.group("export")
def export_group() -> None:
    """Send the journal to observability tools (OpenTelemetry)."""


@export_group.command("traces")
@db_option
@click.option(
    "--cursor",
    metavar="NAME",
    default="traces",
    show_default=True,
    help="The delivery cursor, kept in the journal: how far each run's spans were "
    "accepted (one name per receiver).",
)
@click.option("--follow", is_flag=True, help="Keep exporting new spans until interrupted.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    help="Seconds between passes with --follow.",
)
def export_traces(db: str | None, cursor: str, follow: bool, interval: float) -> None:
    """Export the runs' spans over OTLP/HTTP, each once, to the endpoint the standard
    OTEL_EXPORTER_OTLP_* variables name (docs/observability.md)."""
    from mnlang.stores import open_store
    from mnlang.stores.base import StoreError
    from mnlang.telemetry.export import ExportFailed, JournalExporter

    try:
        with open_store(db, existing=True) as store:
            exporter = JournalExporter(store, cursor)
            try:
                if follow:
                    exporter.follow(interval)
                else:
                    click.echo(f"{exporter.export_once()} spans exported", err=True)
            except KeyboardInterrupt:
                pass
            finally:
                exporter.close()
    except (StoreError, ExportFailed) as e:
        run_error(e)


@click.group("deliveries", invoke_without_command=True)
@db_option
@click.option("--run", "run_id", metavar="RUN", help="Only the deliveries about this run.")
@click.option("--status", type=click.Choice(["pending", "delivered", "failed"]), help="Only these.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per delivery.")
@click.pass_context
def deliveries_group(
    ctx: click.Context,
    db: str | None,
    run_id: str | None,
    status: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """The webhook deliveries of the journal's outbox, newest first, with every attempt
    (docs/webhooks.md); `mnc serve` delivers them."""
    if ctx.invoked_subcommand is not None:
        return
    import json

    from mnlang import api
    from mnlang.stores.base import StoreError

    try:
        found = api.list_deliveries(run_id=run_id, status=status, limit=limit, db=db)
    except StoreError as e:
        run_error(e)
    for d in found:
        attempts = [
            {"attempt": a.attempt, "at": a.at, "status_code": a.status_code, "error": a.error}
            for a in d.attempt_log
        ]
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "event_id": d.event.event_id,
                        "type": d.event.type,
                        "run_id": d.event.run_id,
                        "webhook": d.sink,
                        "status": d.status,
                        "attempts": attempts,
                    }
                )
            )
            continue
        click.echo(f"{d.event.event_id}  {d.event.type:<17} run {d.event.run_id}  -> {d.sink}")
        click.echo(f"    {d.status}, {d.attempts} attempt(s)")
        for a in d.attempt_log:
            code = a.status_code if a.status_code is not None else "no answer"
            click.echo(f"    #{a.attempt}  {code}  {a.error or 'ok'}")


@deliveries_group.command("redeliver")
@db_option
@click.argument("event_id")
@click.argument("webhook")
def redeliver_command(db: str | None, event_id: str, webhook: str) -> None:
    """Send a delivery again (a failed one too), with its event id."""
    from mnlang import api
    from mnlang.stores.base import StoreError

    try:
        found = api.redeliver(event_id, webhook, db=db)
    except StoreError as e:
        run_error(e)
    if not found:
        raise click.ClickException(
            f"no delivery of `{event_id}` to `{webhook}`\nhelp: `mnc deliveries` lists them"
        )
    click.echo(f"{event_id} to {webhook}: pending, due now", err=True)
