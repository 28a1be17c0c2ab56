"""A small MCP server on the official SDK (`MCPServer`), for tests/test_mcp.py: a
read-only `lookup` with an output schema and a `close_ticket` that changes things,
a `halt` that kills the server mid-call, each call appended to `calls.jsonl` in its folder (what the server saw).

    python ticket_server.py            # over stdio
    python ticket_server.py --http     # streamable HTTP on a free port; prints its URL

With a file `v2` in its folder, `lookup` takes one more required argument: the server's
schema changed since it was imported.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations
from pydantic import BaseModel

server = MCPServer("tickets")
HERE = Path.cwd()


class Ticket(BaseModel):
    title: str
    open: bool
    priority: int


def seen(tool: str, **args: object) -> None:
    with (HERE / "calls.jsonl").open("a") as f:
        f.write(json.dumps({"tool": tool, **args}) + "\n")
    (HERE / "server.pid").write_text(str(os.getpid()))


if (HERE / "v2").exists():

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def lookup(id: int, tenant: str) -> Ticket:
        """Find a ticket by its number."""
        seen("lookup", id=id, tenant=tenant)
        return Ticket(title=f"ticket {id} of {tenant}", open=True, priority=1)

else:

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def lookup(id: int) -> Ticket:
        """Find a ticket by its number."""
        seen("lookup", id=id)
        return Ticket(title=f"ticket {id}", open=id % 2 == 1, priority=id % 3)


@server.tool()
def close_ticket(id: int, request_id: str, note: str | None = None) -> str:
    """Close a ticket; the same request_id closes it once."""
    seen("close_ticket", id=id, request_id=request_id, note=note)
    return f"closed {id}"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def halt() -> str:
    """The server process dies in the middle of the call (a crash)."""
    seen("halt")
    os._exit(1)


def serve_http() -> None:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    print(f"http://127.0.0.1:{port}/mcp", flush=True)
    config = uvicorn.Config(server.streamable_http_app(), log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    if "--http" in sys.argv:
        serve_http()
    else:
        server.run()
