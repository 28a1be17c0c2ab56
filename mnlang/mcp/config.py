"""The `[mcp.NAME]` tables of mnlang.toml: where a deployment reaches a locked MCP server.

The lock (`mcp.lock.json`, beside the program) says what each server's tools look like;
a project's table says where to reach the server in this deployment (a staging and a
production server, the same server at another address), without importing again:

```toml
[mcp.tickets]
url = "https://tickets.internal/mcp"           # a streamable HTTP server, or ...

[mcp.fs]
command = "npx"                                 # ... a command started over stdio
args = ["-y", "@modelcontextprotocol/server-filesystem", "/srv/prod-notes"]
env = ["FS_AUDIT_TOKEN"]                        # variables passed on, by name only
```

`command` (with `args`) or `url` (with `token_env`, the variable holding its bearer
token) replaces how the lock reaches the server, as a whole; `env` names more variables
passed on to a stdio server, beside the lock's. A table
whose name no lock of the program has is not used by it. The tables reach a run as JSON
in `MNC_MCP_SERVERS` (set by `mnlang.project.apply_defaults`, the environment winning
over the file), so that a worker reads them from its environment like every setting;
each keeps `where` (FILE:LINE of its table) for the runtime's messages. The schema check
against the lock still applies: a server reached here whose tools differ is refused
before anything is sent.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any, Final

from mnlang.mcp.lock import LockedServer

SERVERS_ENV: Final = "MNC_MCP_SERVERS"
KEYS: Final = ("command", "args", "url", "env", "token_env")
_HELP: Final = 'see "Where a deployment reaches the server" in docs/tools.md'


class ConfigError(Exception):
    def __init__(self, message: str, *, help: str = _HELP) -> None:
        super().__init__(message)
        self.message = message
        self.help = help


@dataclass(frozen=True, slots=True)
class Reach:
    """How one deployment reaches server `name`: a command or a URL (or neither: the
    lock's), and the variables passed on besides the lock's."""

    name: str
    where: str
    """FILE:LINE of the table (or `MNC_MCP_SERVERS`), for messages."""
    command: tuple[str, ...] | None = None
    url: str | None = None
    env: tuple[str, ...] = ()
    token_env: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "where": self.where,
            "command": list(self.command) if self.command is not None else None,
            "url": self.url,
            "env": list(self.env),
            "token_env": self.token_env,
        }

    def applied_to(self, server: LockedServer) -> LockedServer:
        """The locked server, reached as this table says."""
        env = tuple(dict.fromkeys((*server.env, *self.env)))
        if self.command is None and self.url is None:
            token_env = self.token_env or server.token_env
            if token_env is not None and server.url is None:
                raise ConfigError(
                    f"{self.where}: `mcp.{self.name}.token_env` is for a server reached at "
                    "a URL, and the lock starts this one as a command"
                )
            return dataclasses.replace(server, env=env, token_env=token_env, reached_by=self.where)
        return dataclasses.replace(
            server,
            command=self.command,
            url=self.url,
            env=env,
            token_env=self.token_env,
            reached_by=self.where,
        )


def servers_of(data: dict[str, Any], text: str, path: str) -> dict[str, Reach]:
    """The `[mcp.NAME]` tables of a project file (`data`, parsed from `text`);
    `ConfigError` names FILE:LINE of what is wrong."""
    tables = data.get("mcp", {})
    if not isinstance(tables, dict) or not all(isinstance(v, dict) for v in tables.values()):
        line = line_of(text, "mcp", None)
        raise ConfigError(f"{path}:{line}: `mcp` must be a table of tables (`[mcp.NAME]`)")
    out: dict[str, Reach] = {}
    for name, table in tables.items():

        def at(key: str | None, name: str = name) -> str:
            return f"{path}:{line_of(text, f'mcp.{name}', key)}"

        out[name] = reach_of(name, table, at)
    return out


def reach_of(name: str, table: dict[str, Any], at: Any) -> Reach:
    """One table, checked; `at(key)` is where KEY (None: the table) is, for messages."""
    if "token" in table:
        raise ConfigError(
            f"{at('token')}: `mcp.{name}.token`: a token is never written in the project file",
            help='put it in an environment variable and name it: `token_env = "NAME"`',
        )
    for key in table:
        if key not in KEYS:
            raise ConfigError(
                f"{at(key)}: `mcp.{name}.{key}` is not a key of an MCP server's table; "
                f"the keys are {', '.join(KEYS)}"
            )
    command, args, url, env, token_env = (table.get(k) for k in KEYS)
    if command is not None and url is not None:
        raise ConfigError(
            f"{at('url')}: `mcp.{name}` has both `command` and `url`: a server is started "
            "as a command (over stdio) or reached at a URL, not both"
        )
    if command is not None and (not isinstance(command, str) or not command):
        raise ConfigError(f"{at('command')}: `mcp.{name}.command` must be a program to run")
    if args is not None:
        if command is None:
            raise ConfigError(
                f"{at('args')}: `mcp.{name}.args` without `command`: the arguments go with "
                "the command they are given to"
            )
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise ConfigError(f"{at('args')}: `mcp.{name}.args` must be a list of strings")
    if url is not None and (
        not isinstance(url, str) or not url.startswith(("http://", "https://"))
    ):
        raise ConfigError(f"{at('url')}: `mcp.{name}.url` must be an http:// or https:// URL")
    if env is not None and (
        not isinstance(env, list)
        or not all(isinstance(e, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", e) for e in env)
    ):
        raise ConfigError(
            f"{at('env')}: `mcp.{name}.env` must be a list of variable names (the values "
            "stay in the environment)",
            help="a value is never written in the project file: set it in the environment "
            'and name it, `env = ["NAME"]`',
        )
    if token_env is not None:
        if not isinstance(token_env, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", token_env):
            raise ConfigError(
                f"{at('token_env')}: `mcp.{name}.token_env` must be the name of the variable "
                "holding the bearer token",
                help="a token is never written in the project file: set it in the "
                'environment and name it, `token_env = "NAME"`',
            )
        if command is not None:
            raise ConfigError(
                f"{at('token_env')}: `mcp.{name}.token_env` goes with a `url`: a server "
                "started as a command gets its variables through `env`"
            )
    return Reach(
        name=name,
        where=at(None),
        command=(command, *(args or [])) if command is not None else None,
        url=url,
        env=tuple(env or ()),
        token_env=token_env,
    )


def from_environ(value: str) -> dict[str, Reach]:
    """The tables handed down in `MNC_MCP_SERVERS`; `ConfigError` if they are not."""
    try:
        raw = json.loads(value)
    except ValueError as e:
        raise ConfigError(f"{SERVERS_ENV} is not JSON: {e}") from None
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise ConfigError(f"{SERVERS_ENV} must be a JSON object of objects, one per server")
    out: dict[str, Reach] = {}
    for name, body in raw.items():
        where = str(body.get("where") or SERVERS_ENV)
        command = body.get("command")
        table = {
            "command": command[0] if isinstance(command, list) and command else command,
            "args": command[1:] if isinstance(command, list) and command else None,
            "url": body.get("url"),
            "env": body.get("env"),
            "token_env": body.get("token_env"),
        }
        reach = reach_of(
            name, {k: v for k, v in table.items() if v is not None}, lambda _key, where=where: where
        )
        out[name] = dataclasses.replace(reach, where=where)
    return out


def line_of(text: str, table: str, key: str | None) -> int:
    """The line (1-based) of KEY in `[TABLE]` of a TOML text, else of the table's header,
    else 1 (tomllib keeps no positions; the file is small)."""
    header = re.compile(
        r"\s*\[\s*" + r"\s*\.\s*".join(map(_key_pattern, table.split("."))) + r"\s*\]"
    )
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if header.match(line)), None)
    if start is None:
        return 1
    if key is None:
        return start + 1
    assignment = re.compile(r"\s*" + _key_pattern(key) + r"\s*=")
    for i in range(start + 1, len(lines)):
        if re.match(r"\s*\[", lines[i]):
            break
        if assignment.match(lines[i]):
            return i + 1
    return start + 1


def _key_pattern(key: str) -> str:
    escaped = re.escape(key)
    return f"(?:{escaped}|\"{escaped}\"|'{escaped}')"
