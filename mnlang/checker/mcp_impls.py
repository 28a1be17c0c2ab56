"""`mnc check` of tools and effects whose `impl` is `mcp:SERVER/TOOL`, against the
`mcp.lock.json` beside the declaring `.mn` file (`mnlang.mcp.lock`); no server is
started. Checked:

- the lock exists and can be read (E170), and has the server and the tool (E171);
- the declaration's parameters are the tool's: each one an argument of the tool, each
  argument the tool requires declared (E172);
- a tool the server does not mark read-only is declared an `effect`, since the runtime
  may call a `tool` again (E173);
- no `isolation: process`: the call is a request to the server's session (E174).
"""

from __future__ import annotations

from typing import Any

from mnlang.checker.program import Symbol
from mnlang.diagnostics import Diagnostics
from mnlang.mcp.lock import LOCK_NAME, LockError, lock_file, parse_impl, read_lock
from mnlang.syntax import ast as mn


def check_mcp(
    symbol: Symbol,
    decl: mn.CallableDecl,
    impl: str,
    at: mn.Node,
    options: dict[str, Any],
    out: Diagnostics,
) -> None:
    name = decl.name.name
    found = parse_impl(impl)
    folder = symbol.module.path.parent
    if found is None:
        out.add(
            "E171",
            at,
            f"`{impl}` does not name an MCP tool for `{name}`",
            help='write `impl: "mcp:SERVER/TOOL"`, as `mnc mcp import` does',
        )
        return
    server_name, tool_name = found
    try:
        servers = read_lock(lock_file(folder))
    except LockError as e:
        out.add(
            "E170",
            at,
            f"no usable MCP lock for `{name}`: {e}",
            help=f"run `mnc mcp import {server_name} -o FILE.mn -- COMMAND` in this folder "
            f"to write {LOCK_NAME} from the live server",
        )
        return
    server = servers.get(server_name)
    tool = server.tools.get(tool_name) if server is not None else None
    if server is None or tool is None:
        known = sorted(server.tools) if server is not None else sorted(servers)
        what = "tools" if server is not None else "servers"
        out.add(
            "E171",
            at,
            f"{LOCK_NAME} has no {'tool' if server is not None else 'server'} "
            f"`{tool_name if server is not None else server_name}` for `{name}`",
            notes=[f"its {what}: {', '.join(known) or 'none'}"],
            help=f"run `mnc mcp import {server_name}` again if the server has it now",
        )
        return
    declared = {p.name.name: p for p in decl.params}
    for pname, param in declared.items():
        if pname not in tool.params:
            out.add(
                "E172",
                param.name,
                f"MCP tool `{server_name}/{tool_name}` has no parameter `{pname}`",
                notes=[f"its parameters: {', '.join(tool.params) or 'none'}"],
                help="declare the tool's parameters as `mnc mcp import` wrote them",
            )
    for pname, arg in tool.params.items():
        if arg in tool.required and pname not in declared:
            out.add(
                "E172",
                at,
                f"MCP tool `{server_name}/{tool_name}` requires `{pname}`, which `{name}` "
                "does not declare",
                help=f"add `{pname}` to `{name}`'s parameters",
            )
    if decl.kind == "tool" and not tool.read_only:
        out.add(
            "E173",
            decl.name,
            f"MCP tool `{server_name}/{tool_name}` is not marked read-only, so `{name}` "
            "must be an effect",
            notes=[
                "a `tool` may be called again after a crash or a timeout, and an MCP call "
                "carries no idempotency key the server honours"
            ],
            help="declare it `effect` with `once: true`, or with `key:` naming a parameter "
            "the server deduplicates by",
        )
    if options.get("isolation") == "process":
        out.add(
            "E174",
            at,
            f"`{name}` calls an MCP server: `isolation: process` does not apply",
            help="leave `isolation` out; the call's `timeout:` cancels the request",
        )
