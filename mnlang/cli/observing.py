"""Commands that send what the journal knows to the team's own tools: `mnc export traces`."""

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
