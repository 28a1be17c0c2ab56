"""Calling MCP tools at run time: one session per server and process, reopened when lost.

A tool or effect with `impl: "mcp:SERVER/TOOL"` is called through the official `mcp`
SDK (imported here, lazily: only a run that calls an MCP tool pays for it). The sessions
of a process live on one event loop in a daemon thread of their own, since an MCP
session is bound to the loop that opened it while each tool call runs on a loop of its
own (`mnlang.runtime.tools.await_call`); a call hands its request to the sessions' loop
and waits for the answer, and cancelling the call (its timeout, a cancelled branch)
cancels the request.

A session is opened on first use, from the lock's `command` (a child process over
stdio, started in the lock's folder) or `url` (streamable HTTP), or from what the
project's `[mcp.NAME]` table says instead (`mnlang.mcp.config`). Opening it lists the
server's tools and keeps their schema hashes: a call whose tool's live hash differs from
the lock's fails with `tool_error` before anything is sent, naming the tool and what to
do. A session whose server went away (it crashed, the connection dropped) is closed and
reopened by the next call; a process that resumes a run after a crash opens its own.

Outcomes: a result marked `isError` is a `tool_error` (the server refused the call); a
connection lost while a request was in flight is a `timeout`, the kind the runtime treats
as an unknown outcome (a keyed effect is called again with its key, a `once` effect opens
a repair), since the server may have acted.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnlang.errors import Timeout, ToolError
from mnlang.mcp.lock import LockedServer, LockedTool, is_read_only, schema_hash

IDLE_S = 1.0
"""A session unused for longer is pinged before its next call."""
PING_TIMEOUT_S = 5.0
# Sessions are opened with the initialize handshake (`mode="legacy"`), where `ping` is
# part of the protocol; the SDK warns that later protocol versions dropped it.
warnings.filterwarnings("ignore", message="ping is removed", module=__name__)


@dataclass
class _Session:
    client: Any
    """The `mcp.Client`, entered."""
    hashes: dict[str, str]
    closed: asyncio.Event
    task: asyncio.Task[None] | None = None
    broken: bool = False
    used: float = field(default_factory=time.monotonic)
    """When the server last answered (`time.monotonic`)."""


@dataclass
class _Loop:
    loop: asyncio.AbstractEventLoop
    sessions: dict[tuple[str, str, str, tuple[str, ...]], _Session] = field(default_factory=dict)
    opening: dict[tuple[str, str, str, tuple[str, ...]], asyncio.Lock] = field(default_factory=dict)


_lock = threading.Lock()
_state: _Loop | None = None


def _loop() -> _Loop:
    global _state
    with _lock:
        if _state is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="mnc-mcp", daemon=True).start()
            _state = _Loop(loop)
        return _state


async def call_tool(
    folder: Path, server: LockedServer, tool: LockedTool, args: dict[str, Any]
) -> Any:
    """Call the tool with the declaration's arguments; its result as the declaration's
    return type has it (the structured result's fields, or `json`)."""
    state = _loop()
    future = asyncio.run_coroutine_threadsafe(_call(state, folder, server, tool, args), state.loop)
    try:
        return await asyncio.wrap_future(future)
    except asyncio.CancelledError:
        future.cancel()
        raise


async def _call(
    state: _Loop, folder: Path, server: LockedServer, tool: LockedTool, args: dict[str, Any]
) -> Any:
    session = await _session(state, folder, server)
    live = session.hashes.get(tool.name)
    if live is None:
        raise ToolError(
            f"MCP server `{server.name}` no longer has the tool `{tool.name}` that "
            f"{folder.name}/mcp.lock.json names; run `mnc mcp import {server.name}` again "
            "and check the program"
        )
    if live != tool.sha256 and server.reached_by is not None:
        raise ToolError(
            f"MCP server `{server.name}`, reached at {_where(server)} as "
            f"[mcp.{server.name}] of {server.reached_by} says, does not have the schema of "
            f"`{tool.name}` that mcp.lock.json was written with (locked sha256 "
            f"{tool.sha256[:12]}, live {live[:12]}): nothing was sent. Point "
            f"[mcp.{server.name}] at a server with the locked schema, or run `mnc mcp import "
            f"{server.name}` against this one, then `mnc check` to see what the change means"
        )
    if live != tool.sha256:
        raise ToolError(
            f"MCP server `{server.name}` changed the schema of `{tool.name}` since "
            f"mcp.lock.json was written (locked sha256 {tool.sha256[:12]}, live "
            f"{live[:12]}): nothing was sent. Run `mnc mcp import {server.name}` again, "
            "then `mnc check` to see what the change means for the program"
        )
    arguments = {tool.params[k]: v for k, v in args.items() if k in tool.params and v is not None}
    try:
        result = await session.client.call_tool(tool.name, arguments)
        session.used = time.monotonic()
    except asyncio.CancelledError:
        raise
    except Exception as e:
        if _lost(session, e):
            raise Timeout(
                f"the connection to MCP server `{server.name}` was lost during the call of "
                f"`{tool.name}` ({type(e).__name__}: {e}): the server may have acted"
            ) from None
        raise ToolError(f"MCP server `{server.name}`, tool `{tool.name}`: {e}") from None
    return _result(server, tool, result)


def _lost(session: _Session, e: Exception) -> bool:
    """Whether the call failed because the connection went away (the session is then
    reopened by the next call), not because the server answered with an error."""
    import anyio
    from mcp import MCPError
    from mcp_types import CONNECTION_CLOSED

    closed = isinstance(e, MCPError) and e.code == CONNECTION_CLOSED
    gone = isinstance(e, anyio.ClosedResourceError | anyio.BrokenResourceError | OSError)
    if closed or gone or session.closed.is_set():
        session.broken = True
    return session.broken


def _result(server: LockedServer, tool: LockedTool, result: Any) -> Any:
    content = [
        block.model_dump(mode="json", by_alias=True, exclude_none=True) for block in result.content
    ]
    text = "\n".join(str(b.get("text", "")) for b in content if b.get("type") == "text")
    if result.is_error:
        raise ToolError(f"MCP server `{server.name}`, tool `{tool.name}`: {text or 'failed'}")
    if tool.fields is None:
        if result.structured_content is not None:
            return result.structured_content
        return {"text": text, "content": content}
    structured = result.structured_content or {}
    return {name: structured.get(prop) for name, prop in tool.fields.items()}


async def _session(state: _Loop, folder: Path, server: LockedServer) -> _Session:
    key = (str(folder), server.name, _where(server), (*server.env, server.token_env or ""))
    opening = state.opening.setdefault(key, asyncio.Lock())
    async with opening:
        found = state.sessions.get(key)
        live = found is not None and not found.broken and not found.closed.is_set()
        if found is not None and live and await _alive(found):
            return found
        if found is not None:
            await _close(found)
        session = await _open(folder, server)
        state.sessions[key] = session
        return session


async def _close(session: _Session) -> None:
    if session.task is not None and not session.task.done():
        session.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await session.task


async def _open(folder: Path, server: LockedServer) -> _Session:
    """Start the session in a task of its own (an MCP client is entered and left in one
    task) and wait until it has listed the tools."""
    ready: asyncio.Future[_Session] = asyncio.get_running_loop().create_future()
    closed = asyncio.Event()

    async def hold() -> None:
        try:
            async with connect(folder, server) as client:
                hashes = await live_hashes(client)
                session = _Session(client, hashes, closed)
                ready.set_result(session)
                await asyncio.Event().wait()  # until `_close` cancels it
        except asyncio.CancelledError:
            raise
        except Exception as e:
            if not ready.done():
                ready.set_exception(_open_failure(server, e))
        finally:
            closed.set()

    task = asyncio.get_running_loop().create_task(hold())
    session = await ready
    session.task = task
    return session


async def _alive(session: _Session) -> bool:
    """Whether a session idle for a while still has its server: a ping before the call, so
    that a server that died between calls costs a reopened session, not a call whose
    outcome is unknown (for a `once` effect, a repair)."""
    if time.monotonic() - session.used < IDLE_S:
        return True
    try:
        await asyncio.wait_for(session.client.send_ping(), PING_TIMEOUT_S)
    except asyncio.CancelledError:
        raise
    except Exception:
        session.broken = True
        return False
    session.used = time.monotonic()
    return True


def _where(server: LockedServer) -> str:
    return " ".join(server.command) if server.command else str(server.url)


def _open_failure(server: LockedServer, e: BaseException) -> Exception:
    where = _where(server)
    if server.reached_by is not None:
        where += f", as [mcp.{server.name}] of {server.reached_by} says"
    inner = e
    while isinstance(inner, BaseExceptionGroup) and inner.exceptions:
        inner = inner.exceptions[0]
    return ToolError(
        f"cannot open a session with MCP server `{server.name}` ({where}): "
        f"{type(inner).__name__}: {inner}"
    )


def connect(folder: Path, server: LockedServer) -> Any:
    """An `mcp.Client` for the server, not yet entered."""
    from mcp import Client, StdioServerParameters

    if server.url is not None:
        if server.token_env is None:
            return Client(server.url, mode="legacy")
        token = os.environ.get(server.token_env)
        if not token:
            raise ToolError(
                f"MCP server `{server.name}` ({server.url}) wants a bearer token in "
                f"${server.token_env}, which is not set here"
            )
        return Client(_with_bearer(server.url, token), mode="legacy")
    assert server.command is not None
    command, *args = server.command
    env = {name: os.environ[name] for name in server.env if name in os.environ}
    params = StdioServerParameters(command=command, args=args, cwd=str(folder), env=env)
    return Client(params, mode="legacy")


@contextlib.asynccontextmanager
async def _with_bearer(url: str, token: str) -> AsyncIterator[Any]:
    """The SDK's streamable HTTP transport, each request carrying the bearer token."""
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    async with (
        httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx2.Timeout(30.0, read=300.0),  # the SDK's own client's timeouts
        ) as http,
        streamable_http_client(url, http_client=http) as streams,
    ):
        yield streams


async def live_hashes(client: Any) -> dict[str, str]:
    return {
        t["name"]: schema_hash(
            t["inputSchema"], t.get("outputSchema"), is_read_only(t.get("annotations"))
        )
        for t in await list_tools(client)
    }


async def list_tools(client: Any) -> list[dict[str, Any]]:
    """Every tool of the server (all pages), as JSON."""
    tools: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = await client.list_tools(cursor=cursor)
        tools += [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in page.tools]
        cursor = page.next_cursor
        if not cursor:
            return tools


def run_sync(make: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run a coroutine on the sessions' loop from synchronous code (the generator)."""
    state = _loop()
    future: concurrent.futures.Future[Any] = asyncio.run_coroutine_threadsafe(make(), state.loop)
    return future.result()
