"""`mnc`, the command line: one small function per command over `mnlang.api`.

To add a command, add a function decorated with `@main.command()`; import what it
needs (the checker, the IR, rich, pydantic, graphviz) inside the function, so that
`mnc --help` and the other commands stay fast. Exit codes: 0 success, 1 the input
has errors, 2 a usage error (click's own).
"""

from __future__ import annotations

import sys

import click

from mnlang import __version__

_FORMATS = ("full", "concise", "json")
_COLOURS = ("auto", "always", "never")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mnc")
def main() -> None:
    """mnc: check, compile and run mnlang workflows."""


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(_FORMATS),
    default="full",
    show_default=True,
    help="full: with source excerpts; concise: one line each; json: for machines.",
)
@click.option("--strict", is_flag=True, help="Fail (exit 1) on warnings too.")
@click.option(
    "--color",
    type=click.Choice(_COLOURS),
    default="auto",
    show_default=True,
    help="Colour the output; auto: only on a terminal, unless NO_COLOR is set.",
)
def check(files: tuple[str, ...], fmt: str, strict: bool, color: str) -> None:
    """Check FILES (`.mn` files, not folders: use a glob such as `flows/*.mn`).

    Every problem is reported with its code, place and a hint. Exits 0 when there
    are no errors (warnings allowed unless --strict), 1 otherwise.
    """
    from mnlang import api, report

    result = api.check_files(files, strict=strict)
    items = result.items
    if fmt == "json":
        click.echo(report.to_json(items, checked=len(files)))
    else:
        lines = report.render(
            items,
            result.sources,
            "concise" if fmt == "concise" else "full",
            checked=len(files),
            strict=strict,
        )
        report.write(lines, sys.stdout, report.wants_colour(sys.stdout, color))
    sys.exit(0 if result.ok else 1)


if __name__ == "__main__":
    main()
