"""`mnc mcp`: MCP servers as typed tools (`import`), workflows served to MCP clients (`serve`)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mnlang.cli.shared import db_option, program_or_exit

DEFAULT_PORT = 8738
"""`mnc mcp serve --http`: beside `mnc serve`'s 8737."""


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
@click.option(
    "--token-env",
    metavar="NAME",
    help="With --url: the variable holding the server's bearer token, sent as "
    "`Authorization: Bearer` (its name is locked, never its value).",
)
def mcp_import(
    server: str,
    command: tuple[str, ...],
    url: str | None,
    output: str,
    keys: tuple[str, ...],
    env: tuple[str, ...],
    token_env: str | None,
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
    if token_env is not None and url is None:
        raise click.UsageError("--token-env goes with --url (a stdio server gets --env)")
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
        tools = fetch_tools(folder, server, list(command), url, env, token_env)
        imported = build(server, list(command), url, tools, key_map, old, env, token_env)
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
@click.option(
    "--http",
    is_flag=True,
    help="Serve over streamable HTTP at /mcp instead of stdio; every request needs the "
    "bearer token in MNC_MCP_TOKEN (on loopback without one, a token is made and printed).",
)
@click.option("--host", help="With --http: the address to bind.  [default: 127.0.0.1]")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    help=f"With --http: the port (0: a free one).  [default: {DEFAULT_PORT}]",
)
def mcp_serve(
    file: str,
    db: str | None,
    detach: bool,
    allow_decisions: bool,
    http: bool,
    host: str | None,
    port: int | None,
) -> None:
    """Serve FILE's workflows to MCP clients over stdio (or streamable HTTP).

    Each workflow is a tool that starts a run; `mnrun://runs` and `mnrun://runs/RUN`
    are resources with the runs and where each stands. Decisions recorded through MCP
    are `by: "mcp:CLIENT"`, not counted as people's in the metrics. With --http the
    URL is printed on stderr once the server listens.
    """
    import os
    import secrets
    import socket

    from mnlang.mcp.serve import (
        BEARER_ENV,
        HTTP_PATH,
        MIN_TOKEN,
        TOKEN_ENV,
        ServeOptions,
        serve_http,
        serve_stdio,
    )
    from mnlang.ui.server import is_loopback

    if not http and (host is not None or port is not None):
        raise click.UsageError("--host and --port go with --http")
    token = os.environ.get(TOKEN_ENV) or None
    if allow_decisions and (token is None or len(token) < MIN_TOKEN):
        raise click.UsageError(
            f"--allow-decisions needs an operator token of {MIN_TOKEN} characters or more "
            f"in {TOKEN_ENV}"
        )
    bearer = os.environ.get(BEARER_ENV) or None
    host = host or "127.0.0.1"
    if http:
        if bearer is not None and len(bearer) < MIN_TOKEN:
            raise click.UsageError(f"{BEARER_ENV} must be {MIN_TOKEN} characters or more")
        if bearer is None and not is_loopback(host):
            raise click.UsageError(
                f"--host {host} is not a loopback address: set a bearer token of "
                f"{MIN_TOKEN} characters or more in {BEARER_ENV}, which every client sends"
            )
        if allow_decisions and bearer == token:
            raise click.UsageError(
                f"{TOKEN_ENV} must differ from {BEARER_ENV}: reaching the server must not "
                "be enough to decide checkpoints"
            )
    program = program_or_exit(file)
    options = ServeOptions(program, db, detach, token if allow_decisions else None)
    if not http:
        serve_stdio(options)
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), DEFAULT_PORT if port is None else port))
        sock.listen(128)  # a client told the URL below may connect at once: it waits
    except OSError as e:
        sock.close()
        raise click.ClickException(f"cannot listen on {host}: {e.strerror or e}") from None
    bound = sock.getsockname()[1]
    where = f"[{host.strip('[]')}]" if family == socket.AF_INET6 else host
    url = f"http://{where}:{bound}{HTTP_PATH}"
    made = bearer is None
    bearer = bearer or secrets.token_urlsafe(24)

    def announce() -> None:
        if made:
            click.echo(f"mnc mcp serve: {url}", err=True)
            click.echo(
                f"bearer token for this start (set {BEARER_ENV} to choose one): {bearer}",
                err=True,
            )
        else:
            click.echo(f"mnc mcp serve: {url} (bearer token from {BEARER_ENV})", err=True)

    serve_http(options, sock, bearer, announce)
