"""`mnc mcp`: MCP servers as typed tools (`import`), workflows served to MCP clients (`serve`)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mnlang.cli.shared import db_option, program_or_exit


@click.group("mcp")
def mcp_group() -> None:
    """MCP servers as typed tools of a program."""


@mcp_group.command("import")
@click.argument("server")
@click.argument("command", nargs=-1, required=False)
@click.option("--url", metavar="URL", help="A streamable HTTP server instead of a COMMAND.")
@click.option(
    "-o",
    "--output",
    metavar="FILE",
    required=True,
    help="The .mn file to write; mcp.lock.json is written (or updated) beside it.",
)
@click.option(
    "--key",
    "keys",
    multiple=True,
    metavar="TOOL=PARAM",
    help="TOOL's parameter PARAM carries a key the server deduplicates by: a keyed "
    "effect instead of a `once` one.",
)
@click.option(
    "--env",
    "env",
    multiple=True,
    metavar="NAME",
    help="Pass this environment variable on to the server (its name is locked, never its value).",
)
def mcp_import(
    server: str,
    command: tuple[str, ...],
    url: str | None,
    output: str,
    keys: tuple[str, ...],
    env: tuple[str, ...],
) -> None:
    """Write typed declarations of SERVER's tools and lock their schemas.

    SERVER is the name the program uses (`impl: "mcp:SERVER/TOOL"`). The server is
    started as COMMAND (after `--`, run in FILE's folder, over stdio) or reached at
    --url. Read-only tools become `tool`s, the others `once` effects.

        mnc mcp import fs -o fs.mn -- npx @modelcontextprotocol/server-filesystem /data
    """
    from mnlang.mcp.generate import ImportFailure, build, fetch_tools, write
    from mnlang.mcp.lock import mn_name

    if (url is None) == (not command):
        raise click.UsageError("give the server's COMMAND (after --) or --url, not both")
    if mn_name(server) != server:
        raise click.UsageError(f"SERVER `{server}` must be a name such as `{mn_name(server)}`")
    key_map: dict[str, str] = {}
    for item in keys:
        tool, eq, param = item.partition("=")
        if not eq or not tool or not param:
            raise click.UsageError(f"--key {item}: expected TOOL=PARAM")
        key_map[tool] = param
    out = Path(output)
    if out.suffix != ".mn":
        raise click.UsageError(f"-o {output}: the output is a .mn file")
    folder = out.parent.resolve()
    if not folder.is_dir():
        raise click.UsageError(f"-o {output}: no folder {out.parent}")
    lock_path = folder / "mcp.lock.json"
    old = None
    if lock_path.exists():
        try:
            old = json.loads(lock_path.read_text("utf-8"))
        except ValueError as e:
            raise click.ClickException(
                f"{lock_path} is not JSON ({e}): move it away first"
            ) from None
    try:
        tools = fetch_tools(folder, server, list(command), url, env)
        imported = build(server, list(command), url, tools, key_map, old, env)
    except ImportFailure as e:
        raise click.ClickException(str(e)) from None
    write(out, imported)
    click.echo(f"wrote {output} ({imported.tools} tools of `{server}`) and {lock_path.name}")


@mcp_group.command("serve")
@click.argument("file", type=click.Path(path_type=str))
@db_option
@click.option("--detach", is_flag=True, help="Only create runs, for `mnc worker`s to execute.")
@click.option(
    "--allow-decisions",
    is_flag=True,
    help="Serve a `decide` tool for checkpoints; needs an operator token in "
    "MNC_MCP_OPERATOR_TOKEN, which each call must carry.",
)
def mcp_serve(file: str, db: str | None, detach: bool, allow_decisions: bool) -> None:
    """Serve FILE's workflows to MCP clients over stdio.

    Each workflow is a tool that starts a run; `mnrun://runs` and `mnrun://runs/RUN`
    are resources with the runs and where each stands. Decisions recorded through MCP
    are `by: "mcp:CLIENT"`, not counted as people's in the metrics.
    """
    import os

    from mnlang.mcp.serve import TOKEN_ENV, ServeOptions, serve_stdio

    token = os.environ.get(TOKEN_ENV) or None
    if allow_decisions and (token is None or len(token) < 16):
        raise click.UsageError(
            f"--allow-decisions needs an operator token of 16 characters or more in {TOKEN_ENV}"
        )
    program = program_or_exit(file)
    serve_stdio(ServeOptions(program, db, detach, token if allow_decisions else None))
