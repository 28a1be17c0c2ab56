"""`mnc mcp serve`: a program's workflows served to MCP clients over stdio or streamable
HTTP (`serve_http`: a bearer token on every request, see there).

Tools: one per workflow, named as the workflow, whose input schema is the workflow's
parameters (`mnlang.ir.schema.input_schema`); a call starts a run (with `run_id`, once:
the same id and input return that run) and answers where it stands: executed here until
it completes, fails or waits, or only created for `mnc worker`s with `--detach`.
Resources: `mnrun://runs` (the latest runs) and `mnrun://runs/RUN` (a run's status,
position, checkpoints and steps, as `mnc show --json`).

Deciding checkpoints through MCP would let a model approve its own steps, so the
`decide` tool exists only with `--allow-decisions`, which needs an operator token in
`MNC_MCP_OPERATOR_TOKEN`; each call must carry that token, and its decision is recorded
`by: "mcp:CLIENT"` (the client's name from its handshake), which the metrics do not
count as a person's decision.
"""

from __future__ import annotations

import hmac
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnlang.ir.model import IRProgram
from mnlang.ir.schema import input_schema
from mnlang.metrics.facts import MCP_BY as BY_PREFIX

RUNS_URI = "mnrun://runs"
RUN_URI = "mnrun://runs/"
TOKEN_ENV = "MNC_MCP_OPERATOR_TOKEN"
BEARER_ENV = "MNC_MCP_TOKEN"
"""`--http`: the bearer token every request must carry."""
MIN_TOKEN = 16
HTTP_PATH = "/mcp"


@dataclass(frozen=True, slots=True)
class ServeOptions:
    program: IRProgram
    db: str | None
    detach: bool
    operator_token: str | None
    """Set: the `decide` tool is served, and each call must carry this token."""


def tool_list(options: ServeOptions) -> list[dict[str, Any]]:
    """The tools served, as MCP `Tool` JSON."""
    program = options.program
    tools: list[dict[str, Any]] = []
    for name, workflow in sorted(program.workflows.items()):
        schema = input_schema(workflow.params, program.types)
        schema.pop("$schema", None)
        schema["properties"]["run_id"] = {
            "type": "string",
            "description": "the run's id: starting the same id with the same input again "
            "returns that run",
        }
        tools.append(
            {
                "name": name,
                "description": f"Start a durable run of workflow `{name}`; answers its run "
                f"id and where it stands (read {RUN_URI}RUN to follow it).",
                "inputSchema": schema,
            }
        )
    if options.operator_token is not None:
        tools.append(
            {
                "name": "decide",
                "description": "Decide a checkpoint of a run (an operator's token is needed).",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "run_id": {"type": "string"},
                        "checkpoint": {"type": "string"},
                        "approve": {"type": "boolean"},
                        "choice": {"type": "string"},
                        "comment": {"type": "string"},
                        "token": {"type": "string"},
                    },
                    "required": ["run_id", "checkpoint", "approve", "token"],
                    "additionalProperties": False,
                },
            }
        )
    return tools


class Refused(Exception):
    """A call the server answers with `isError` (the message says why)."""


def call(options: ServeOptions, name: str, arguments: dict[str, Any], client: str) -> Any:
    """Run a tool call (in a worker thread: the runtime blocks); its JSON answer."""
    from mnlang import api
    from mnlang.runtime.run import RunBusy
    from mnlang.runtime.run_error import RunError

    if name == "decide" and options.operator_token is not None:
        return _decide(options, arguments, client)
    if name not in options.program.workflows:
        raise Refused(f"no workflow `{name}`")
    given = dict(arguments)
    run_id = given.pop("run_id", None)
    try:
        outcome = api.start_run(
            options.program,
            given,
            workflow=name,
            run_id=run_id,
            db=options.db,
            detach=options.detach,
        )
    except RunBusy as e:
        if run_id is None:
            raise Refused(e.message) from None
        # The same start, already being executed (by another call of this server, by
        # a worker): the run as it stands, for the client to follow.
        return _standing(options, str(run_id))
    except RunError as e:
        raise Refused(e.message) from None
    return outcome.to_json()


def _standing(options: ServeOptions, run_id: str) -> dict[str, Any]:
    from mnlang import api

    run = api.get_run(run_id, db=options.db).run
    return {
        "run_id": run.run_id,
        "workflow": run.workflow,
        "status": run.status,
        "result": run.result,
        "error": run.error,
        "created": False,
        "warnings": [
            f"run `{run_id}` is being executed by another call or worker: read "
            f"{RUN_URI}{run_id} to follow it"
        ],
    }


def _decide(options: ServeOptions, arguments: dict[str, Any], client: str) -> Any:
    from dataclasses import asdict

    from mnlang import api
    from mnlang.runtime.run_error import RunError

    token = str(arguments.get("token") or "")
    assert options.operator_token is not None
    if not hmac.compare_digest(token.encode(), options.operator_token.encode()):
        raise Refused("the operator token is wrong: nothing was decided")
    try:
        outcome = api.decide(
            str(arguments["run_id"]),
            str(arguments["checkpoint"]),
            approve=bool(arguments["approve"]),
            choice=arguments.get("choice"),
            comment=arguments.get("comment"),
            by=BY_PREFIX + client,
            db=options.db,
        )
    except RunError as e:
        raise Refused(e.message) from None
    return {"decided": asdict(outcome.decided), "runs": [r.to_json() for r in outcome.runs]}


def resource_list(options: ServeOptions) -> list[dict[str, Any]]:
    from mnlang import api

    runs = api.list_runs(limit=100, db=options.db)
    return [
        {"uri": RUNS_URI, "name": "runs", "mimeType": "application/json",
         "description": "the latest runs, newest first"},
        *(
            {"uri": RUN_URI + r.run_id, "name": r.run_id, "mimeType": "application/json",
             "description": f"run of `{r.workflow}`: {r.status}"}
            for r in runs
        ),
    ]  # fmt: skip


def read(options: ServeOptions, uri: str) -> str:
    from mnlang import api

    if uri == RUNS_URI:
        runs = api.list_runs(limit=100, db=options.db)
        return json.dumps(
            [{"run_id": r.run_id, "workflow": r.workflow, "status": r.status} for r in runs]
        )
    if uri.startswith(RUN_URI):
        from mnlang.stores.base import RunNotFound

        try:
            details = api.get_run(uri[len(RUN_URI) :], db=options.db)
        except RunNotFound as e:
            raise Refused(f"{uri}: {e}") from None
        return json.dumps(details.to_json(), default=str)
    raise Refused(f"no resource {uri}")


def _server(options: ServeOptions) -> Any:
    """The MCP server (the SDK's low-level `Server`) with the tools and resources above,
    for either transport."""
    import anyio
    import mcp_types as types
    from mcp.server.lowlevel import Server

    def client_name(ctx: Any) -> str:
        params = ctx.session.client_params
        info = getattr(params, "client_info", None)
        return str(getattr(info, "name", None) or "unknown")

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(
            tools=[types.Tool.model_validate(t) for t in tool_list(options)]
        )

    async def call_tool(ctx: Any, params: Any) -> types.CallToolResult:
        name = params.name
        arguments = dict(params.arguments or {})
        client = client_name(ctx)
        try:
            answer = await anyio.to_thread.run_sync(call, options, name, arguments, client)
        except Refused as e:
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=str(e))], is_error=True
            )
        text = json.dumps(answer, default=str)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)],
            structured_content=json.loads(text),
        )

    async def list_resources(ctx: Any, params: Any) -> types.ListResourcesResult:
        found = await anyio.to_thread.run_sync(resource_list, options)
        return types.ListResourcesResult(
            resources=[types.Resource.model_validate(r) for r in found]
        )

    async def read_resource(ctx: Any, params: Any) -> types.ReadResourceResult:
        uri = str(params.uri)
        text = await anyio.to_thread.run_sync(read, options, uri)
        return types.ReadResourceResult(
            contents=[types.TextResourceContents(uri=uri, mime_type="application/json", text=text)]
        )

    return Server(
        "mnc",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_read_resource=read_resource,
    )


def serve_stdio(options: ServeOptions) -> None:
    """Serve until the client closes stdin."""
    import anyio
    from mcp.server.stdio import stdio_server

    server = _server(options)

    async def main() -> None:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

    anyio.run(main)


def serve_http(
    options: ServeOptions,
    sock: socket.socket,
    bearer_token: str,
    announce: Callable[[], None] = lambda: None,
) -> None:
    """Serve over streamable HTTP at `/mcp` on a bound socket until interrupted, calling
    `announce` once the server is built (a client connecting then is answered at once,
    not after the imports). Every
    request needs `Authorization: Bearer TOKEN` (401 without it), checked by the SDK's
    bearer middleware; a session stays its token's. On a loopback address, requests
    whose `Host` or `Origin` names another host are refused too (DNS rebinding)."""
    import uvicorn
    from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
    from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend, RequireAuthMiddleware
    from mcp.server.streamable_http_manager import (
        StreamableHTTPASGIApp,
        StreamableHTTPSessionManager,
    )
    from mcp.server.transport_security import TransportSecuritySettings
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.authentication import AuthenticationMiddleware
    from starlette.routing import Route

    from mnlang.ui.server import is_loopback

    host = str(sock.getsockname()[0])
    security = None
    if is_loopback(host):
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
        )
    manager = StreamableHTTPSessionManager(app=_server(options), security_settings=security)
    app = Starlette(
        routes=[
            Route(
                HTTP_PATH,
                endpoint=RequireAuthMiddleware(StreamableHTTPASGIApp(manager), []),
            )
        ],
        middleware=[
            Middleware(AuthenticationMiddleware, backend=BearerAuthBackend(_Bearer(bearer_token))),
            Middleware(AuthContextMiddleware),
        ],
        lifespan=lambda app: manager.run(),
    )
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    announce()
    server.run(sockets=[sock])


@dataclass(frozen=True, slots=True)
class _Bearer:
    """The SDK's `TokenVerifier` for the one token the server was started with."""

    token: str

    async def verify_token(self, token: str) -> Any:
        from mcp.server.auth.provider import AccessToken

        if not hmac.compare_digest(token.encode(), self.token.encode()):
            return None
        return AccessToken(token=token, client_id="mnc-mcp-bearer", scopes=[])


def load(path: Path) -> IRProgram:
    from mnlang import api

    return api.load_program(path)
