"""Finding and calling the Python functions behind tools and effects.

A tool's `impl` is `module:function`. The module is looked up first as a file in the
tool's folder (`IRProgram.source.dir / impl_dir`, as `module.py` or
`module/__init__.py`) and loaded under a private name, so two programs whose modules
are both called `tools` do not collide; the folder is put first on `sys.path` while it
loads, so the module can import its neighbours. Failing that, `module` is imported as
an installed module.

The function receives the call's arguments by parameter name (see `convert.to_tool`)
and, when it declares them, the keyword-only `ctx` (a `ToolContext`) and `key` (the
effect's idempotency key). `isolation: process` runs it in a child Python process
(`mnlang.runtime.isolated`) that is killed when the call times out.

An `async def` function (or any function returning an awaitable) runs on an event loop
of its own in the call's thread (or child process). Its timeout cancels it: the task is
cancelled, so `CancelledError` is raised at its `await` and its `finally` blocks run,
and the thread is free again at once (a blocking `def` keeps its thread until it
returns). A call whose fiber is cancelled is cancelled the same way (`AsyncCancel`).
For an effect, a cancelled call is an unknown outcome like any timeout: a keyed effect
is called again with its key, a `once` effect opens a repair.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from mnlang.errors import MnError, Timeout, ToolError
from mnlang.mcp.lock import (
    IMPL_PREFIX,
    LockedServer,
    LockError,
    lock_file,
    parse_impl,
    read_lock,
)
from mnlang.modulepath import impl_module_file

if TYPE_CHECKING:  # the child process of `isolation: process` imports this module: keep it light
    import asyncio

    from mnlang.ir.model import IRProgram, ToolIR


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What a tool may learn about the call it serves (the optional `ctx` argument)."""

    run_id: str
    step_id: str
    attempt: int
    """1 for the first try."""
    key: str | None
    """The same as `template_key` (kept for the tools written before wire keys); None
    for a tool."""
    key_scope: str | None = None
    """The effect's declared `scope`: `run` or `global`; None for a tool."""
    wire_key: str | None = None
    """What to send the receiving system as the idempotency key (an `Idempotency-Key`
    header): the key at its scope, unique to this run for `scope: run`; printable ASCII,
    at most 255 characters (`mnlang.runtime.effects`). None for a tool."""
    template_key: str | None = None
    """The `key` template's value over the arguments (a `once` effect's derived key): the
    same in every run for `scope: run`, and for every request of an agent; for logs,
    never to deduplicate. None for a tool."""
    traceparent: str | None = None
    """The W3C `traceparent` of this attempt's span: the run's trace, and the span id that
    `mnc export traces` gives the attempt (`std.http` sends it as a header). For a
    `reconcile` lookup, the run's span."""


@dataclass(frozen=True, slots=True)
class ModuleRef:
    """Where a tool module lives: a file to load, or an installed module's name."""

    name: str
    path: str | None
    folder: str | None


class ToolLoadError(Exception):
    """A tool whose `impl` cannot be found or loaded; the message says which and why."""


@dataclass(frozen=True, slots=True)
class ResolvedTool:
    function: Callable[..., Any]
    module: ModuleRef
    function_name: str
    wants_ctx: bool
    wants_key: bool


_import_lock = threading.Lock()
_loaded: dict[str, ModuleType] = {}


def module_ref(program: IRProgram, impl_dir: str, module: str) -> ModuleRef:
    """The module an `impl` names: from the program's source folder, else from the
    current folder's project and `MNC_PATH` (`mnlang.modulepath`), else installed."""
    return module_ref_from(program.source.dir, impl_dir, module)


def module_ref_from(source_dir: str, impl_dir: str, module: str) -> ModuleRef:
    """`module_ref` for a program compiled in `source_dir`."""
    hit = impl_module_file(Path(source_dir) / impl_dir, module, impl_dir, Path.cwd())
    if hit is None:
        return ModuleRef(module, None, None)
    path, folder = hit
    return ModuleRef(module, str(path.resolve()), str(folder.resolve()))


def load_module(ref: ModuleRef) -> ModuleType:
    """Import a tool module once per process (keyed by its file)."""
    cache_key = ref.path or ref.name
    with _import_lock:
        found = _loaded.get(cache_key)
        if found is not None:
            return found
        if ref.path is None:
            module = importlib.import_module(ref.name)
        else:
            private = "_mnc_tools_" + hashlib.sha1(ref.path.encode()).hexdigest()[:12]
            spec = importlib.util.spec_from_file_location(private, ref.path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {ref.path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[private] = module
            folder = ref.folder or str(Path(ref.path).parent)
            sys.path.insert(0, folder)
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[private]
                raise
            finally:
                if folder in sys.path:
                    sys.path.remove(folder)
        _loaded[cache_key] = module
        return module


def resolve(program: IRProgram, tool: ToolIR) -> ResolvedTool:
    """The function behind a tool; `ToolLoadError` names the tool and what went wrong."""
    if tool.impl.startswith(IMPL_PREFIX):
        return _resolve_mcp(Path(program.source.dir) / tool.impl_dir, tool)
    module_name, _, function_name = tool.impl.partition(":")
    ref = module_ref(program, tool.impl_dir, module_name)
    where = ref.path or f"installed module `{module_name}`"
    try:
        module = load_module(ref)
    except Exception as e:
        raise ToolLoadError(
            f"tool `{tool.name}`: cannot import `{module_name}` ({where}): {type(e).__name__}: {e}"
        ) from e
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ToolLoadError(
            f"tool `{tool.name}`: `{module_name}` has no function `{function_name}`"
        )
    params = _parameters(function)
    declared = {p.name for p in tool.params}
    return ResolvedTool(
        function=function,
        module=ref,
        function_name=function_name,
        wants_ctx="ctx" in params and "ctx" not in declared,
        wants_key="key" in params and "key" not in declared,
    )


def _resolve_mcp(folder: Path, tool: ToolIR) -> ResolvedTool:
    """An `impl: "mcp:SERVER/TOOL"`: a call of the tool through the server that the
    folder's `mcp.lock.json` names (`mnlang.mcp.sessions`)."""
    found = parse_impl(tool.impl)
    lock = lock_file(folder)
    if found is None:
        raise ToolLoadError(f"tool `{tool.name}`: `{tool.impl}` is not `mcp:SERVER/TOOL`")
    server_name, tool_name = found
    try:
        servers = read_lock(lock)
    except LockError as e:
        raise ToolLoadError(f"tool `{tool.name}`: {e}") from None
    server = servers.get(server_name)
    locked = server.tools.get(tool_name) if server is not None else None
    if server is None or locked is None:
        raise ToolLoadError(
            f"tool `{tool.name}`: {lock} has no tool `{tool_name}` of `{server_name}`"
        )
    server = _reached(tool, server)
    if (
        server.token_env is not None
        and server.url is not None
        and not os.environ.get(server.token_env)
    ):
        where = f"[mcp.{server_name}] of {server.reached_by}" if server.reached_by else lock
        raise ToolLoadError(
            f"tool `{tool.name}`: MCP server `{server_name}` ({server.url}) wants a bearer "
            f"token in ${server.token_env} (as {where} says), which is not set here"
        )

    async def call_mcp(**args: Any) -> Any:
        from mnlang.mcp.sessions import call_tool

        assert server is not None and locked is not None
        return await call_tool(folder, server, locked, args)

    return ResolvedTool(
        function=call_mcp,
        module=ModuleRef(tool.impl, None, str(folder)),
        function_name=tool_name,
        wants_ctx=False,
        wants_key=False,
    )


def _reached(tool: ToolIR, server: LockedServer) -> LockedServer:
    """The locked server, reached as the project's `[mcp.NAME]` table says, if it has one
    (`mnlang.mcp.config`, handed down in `MNC_MCP_SERVERS`)."""
    from mnlang.mcp.config import SERVERS_ENV, ConfigError, from_environ

    value = os.environ.get(SERVERS_ENV)
    if not value:
        return server
    try:
        reach = from_environ(value).get(server.name)
        return reach.applied_to(server) if reach is not None else server
    except ConfigError as e:
        raise ToolLoadError(f"tool `{tool.name}`: {e.message}") from None


def _parameters(function: Callable[..., Any]) -> set[str]:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return set()
    return {
        p.name
        for p in signature.parameters.values()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }


def call_kwargs(tool: ResolvedTool, args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    kwargs = dict(args)
    if tool.wants_ctx:
        kwargs["ctx"] = ctx
    if tool.wants_key:
        kwargs["key"] = ctx.key
    return kwargs


class AsyncCancel:
    """Cancels the coroutine of one async call from another thread (the scheduler's);
    cancelling before the call started makes it cancel itself as soon as it starts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._task: tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]] | None = None
        self.cancelled = False

    def attach(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> None:
        with self._lock:
            self._task = (loop, task)
            if self.cancelled:
                task.cancel()

    def detach(self) -> None:
        with self._lock:
            self._task = None

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            if self._task is not None:
                loop, task = self._task
                loop.call_soon_threadsafe(task.cancel)


def await_call(
    awaitable: Any, timeout_s: float | None = None, cancel: AsyncCancel | None = None
) -> Any:
    """Run an async tool's awaitable to its end on a loop of its own; past `timeout_s`
    it is cancelled and the call is a `Timeout`."""
    import asyncio

    async def guarded() -> Any:
        try:
            return await asyncio.wait_for(awaitable, timeout_s)
        except TimeoutError:
            raise Timeout(f"cancelled the async call after {timeout_s:g}s") from None

    loop = asyncio.new_event_loop()
    try:
        task = loop.create_task(guarded())
        if cancel is not None:
            cancel.attach(loop, task)
        try:
            return loop.run_until_complete(task)
        except asyncio.CancelledError:
            raise Timeout("cancelled: the run no longer waits for this call") from None
        finally:
            if cancel is not None:
                cancel.detach()
            if inspect.iscoroutine(awaitable):
                awaitable.close()  # cancelled before it started: never awaited
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def call_in_thread(
    tool: ResolvedTool,
    args: dict[str, Any],
    ctx: ToolContext,
    timeout_s: float | None = None,
    cancel: AsyncCancel | None = None,
) -> Any:
    result = tool.function(**call_kwargs(tool, args, ctx))
    if inspect.isawaitable(result):
        return await_call(result, timeout_s, cancel)
    return result


def call_in_process(
    tool: ResolvedTool, args: dict[str, Any], ctx: ToolContext, timeout_s: float | None
) -> Any:
    """Run the call in a child process; kill it when `timeout_s` passes (a `Timeout`)."""
    request = pickle.dumps((tool.module, tool.function_name, call_kwargs(tool, args, ctx)))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "mnlang.runtime.isolated"],
            input=request,
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise Timeout(f"killed the tool's process after {timeout_s:g}s") from None
    try:
        status, payload = pickle.loads(done.stdout)
    except Exception:
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        last = detail[-1] if detail else f"exit status {done.returncode}"
        raise ToolError(f"the tool's process ended without an answer: {last}") from None
    if status == "ok":
        return payload
    if isinstance(payload, BaseException):
        raise payload
    raise MnError(payload[0], payload[1])
