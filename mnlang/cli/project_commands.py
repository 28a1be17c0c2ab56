"""Commands about the project: `mnc init`."""

from __future__ import annotations

import sys

import click


@click.command()
@click.argument("folder", default=".", type=click.Path(file_okay=False))
def init(folder: str) -> None:
    """Start a project in FOLDER (default: here): the project file `mnlang.toml`, a
    workflow with a scenario (`confirm.mn`) and its tools (`tools.py`). Refuses to
    overwrite a file that exists."""
    from pathlib import Path

    from mnlang.scaffold import scaffold

    try:
        written = scaffold(Path(folder))
    except FileExistsError as e:
        click.echo(f"error: would overwrite {e}", err=True)
        click.echo("help: run `mnc init` in an empty folder, or name a new one", err=True)
        sys.exit(2)
    for path in written:
        click.echo(f"created {path}")
    click.echo(
        'next: mnc check confirm.mn && mnc test . && mnc run confirm.mn --input \'{"order_id": "o-1"}\''
    )
