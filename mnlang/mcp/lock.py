"""The MCP schema lock, `mcp.lock.json`: what `mnc mcp import` saw of each server.

It sits in the folder of the `.mn` file that declares the tools (as a tool module sits
beside it) and holds, per server name, how to reach the server (a `command` with its
`args`, run in the lock's folder with the variables `env` names passed on, or a
streamable HTTP `url`, with `token_env` naming the variable of its bearer token) and, per tool, its input
and output schemas, its annotations and `sha256`, the hash of what a call depends on.
`mnc check` reads it and never starts a server; the runtime compares the live server's
hash with it before the first call of a session.

```json
{
  "version": 1,
  "servers": {
    "fs": {
      "command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/data"],
      "env": [],
      "tools": {
        "write_file": {
          "sha256": "...",
          "description": "Create a new file or completely overwrite ...",
          "read_only": false,
          "params": {"path": "path", "content": "content"},
          "fields": null,
          "inputSchema": {...}, "outputSchema": {...}
        }
      }
    }
  }
}
```

`params` maps each declared parameter's name to the MCP argument it carries (MCP names
such as `messageType` or `max-results` are made into mnlang names), and `fields` does
the same for the record an output schema becomes (null: the tool returns `json`).

This module is pure (no MCP SDK): the checker, the generator and the runtime share it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOCK_NAME = "mcp.lock.json"
LOCK_VERSION = 1
IMPL_PREFIX = "mcp:"


class LockError(Exception):
    """A lock file that cannot be read or does not have the expected shape."""


@dataclass(frozen=True, slots=True)
class LockedTool:
    server: str
    name: str
    sha256: str
    description: str
    read_only: bool
    params: dict[str, str]
    """mnlang parameter name -> MCP argument name, in the schema's order."""
    required: frozenset[str]
    """The MCP names of the required arguments."""
    fields: dict[str, str] | None
    """mnlang field name -> MCP property of the structured result; None: `json`."""
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class LockedServer:
    name: str
    command: tuple[str, ...] | None
    url: str | None
    tools: dict[str, LockedTool]
    env: tuple[str, ...] = ()
    """Environment variables passed from the caller's environment to a stdio server (an
    MCP client passes only a few, such as PATH and HOME); names only, never values."""
    token_env: str | None = None
    """A streamable HTTP server that wants a bearer token: the variable holding it (sent
    as `Authorization: Bearer`); the name only, never the token."""
    reached_by: str | None = None
    """Set when a project's `[mcp.NAME]` table (`mnlang.mcp.config`) says how to reach
    the server instead of the lock: FILE:LINE of that table."""


def parse_impl(impl: str) -> tuple[str, str] | None:
    """`mcp:SERVER/TOOL` -> (SERVER, TOOL); None for an `impl` that is not MCP's."""
    if not impl.startswith(IMPL_PREFIX):
        return None
    server, slash, tool = impl[len(IMPL_PREFIX) :].partition("/")
    if not server or not slash or not tool:
        return None
    return server, tool


def schema_hash(
    input_schema: dict[str, Any], output_schema: dict[str, Any] | None, read_only: bool
) -> str:
    """What a call depends on: the arguments it takes, the result it gives and whether it
    changes anything. Descriptions and titles are left out: rewording them changes what a
    model is told, not what a call does."""
    import hashlib  # here: `mnc check` and `mnc run` read lock files without hashing

    body = {"input": input_schema, "output": output_schema, "read_only": read_only}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def is_read_only(annotations: dict[str, Any] | None) -> bool:
    return bool((annotations or {}).get("readOnlyHint"))


_NOT_NAME = re.compile(r"[^A-Za-z0-9_]+")


def mn_name(name: str, reserved: frozenset[str] = frozenset()) -> str:
    """An mnlang name for an MCP name: `get-sum` -> `get_sum`, `messageType` stays, a
    leading capital or digit gets a prefix, a reserved word a trailing `_`."""
    text = _NOT_NAME.sub("_", name).strip("_") or "x"
    if text[0].isdigit() or text[0].isupper():
        text = "x_" + text
    while text in reserved:
        text += "_"
    return text


def read_lock(path: Path) -> dict[str, LockedServer]:
    """The servers of a lock file; `LockError` says what is wrong with it."""
    try:
        raw = json.loads(path.read_text("utf-8"))
    except OSError as e:
        raise LockError(f"cannot read {path}: {e.strerror or e}") from None
    except ValueError as e:
        raise LockError(f"{path} is not JSON: {e}") from None
    try:
        return _servers(raw)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise LockError(f"{path} is not an MCP lock of version {LOCK_VERSION}: {e}") from None


def _servers(raw: Any) -> dict[str, LockedServer]:
    if not isinstance(raw, dict) or raw.get("version") != LOCK_VERSION:
        raise ValueError(f"`version` is not {LOCK_VERSION}")
    servers: dict[str, LockedServer] = {}
    for name, body in dict(raw["servers"]).items():
        tools = {
            tool_name: LockedTool(
                server=name,
                name=tool_name,
                sha256=str(t["sha256"]),
                description=str(t.get("description") or ""),
                read_only=bool(t["read_only"]),
                params={str(k): str(v) for k, v in dict(t["params"]).items()},
                required=frozenset(str(r) for r in t["inputSchema"].get("required", [])),
                fields=(
                    None
                    if t.get("fields") is None
                    else {str(k): str(v) for k, v in dict(t["fields"]).items()}
                ),
                input_schema=dict(t["inputSchema"]),
                output_schema=None if t.get("outputSchema") is None else dict(t["outputSchema"]),
            )
            for tool_name, t in dict(body["tools"]).items()
        }
        command = body.get("command")
        url = body.get("url")
        if (command is None) == (url is None):
            raise ValueError(f"server `{name}` needs one of `command` and `url`")
        servers[name] = LockedServer(
            name=name,
            command=None if command is None else (str(command), *map(str, body.get("args", []))),
            url=None if url is None else str(url),
            tools=tools,
            env=tuple(str(n) for n in body.get("env", [])),
            token_env=None if body.get("token_env") is None else str(body["token_env"]),
        )
    return servers


def lock_file(folder: Path) -> Path:
    return folder / LOCK_NAME
