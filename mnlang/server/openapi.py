"""The OpenAPI 3.1 document of `/api/v1`, generated from the pydantic models."""

from __future__ import annotations

from functools import cache
from typing import Any, get_args

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from mnlang.server import models as m
from mnlang.server.app import MAX_PAGE
from mnlang.stores.base import RunStatus

_REF = "#/components/schemas/{model}"
_ERRORS = {
    "400": "The request is not valid",
    "401": "No valid token",
    "403": "The token's role or scope does not allow it",
    "404": "Not found",
    "409": "A conflict with the journal's state",
    "413": "The body is too large",
    "422": "The program has errors",
    "503": "The journal store cannot be reached",
}


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": _REF.format(model=model.__name__)}


def _content(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(model)}}


def _operation(
    op_id: str,
    summary: str,
    responses: dict[str, type[BaseModel]],
    *,
    body: type[BaseModel] | None = None,
    params: list[dict[str, Any]] | None = None,
    errors: tuple[str, ...] = ("400", "401", "403", "404", "503"),
    public: bool = False,
) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": op_id, "summary": summary, "responses": {}}
    for status, model in responses.items():
        out["responses"][status] = {"description": summary, "content": _content(model)}
    for status in errors:
        out["responses"].setdefault(
            status, {"description": _ERRORS[status], "content": _content(m.ErrorResponse)}
        )
    if body is not None:
        out["requestBody"] = {"required": True, "content": _content(body)}
    if params:
        out["parameters"] = params
    if public:
        out["security"] = []
    return out


def _path(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "minLength": 1},
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


RUN_ID = _path("run_id", "The run's id")
TRACEPARENT = {
    "name": "traceparent",
    "in": "header",
    "required": False,
    "description": "W3C trace context: a new run's spans join this trace, its run span a "
    "child of this span (docs/observability.md); an invalid value is ignored, as W3C says",
    "schema": {"type": "string"},
}
PAGE_LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}, "Page size")


def webhook_models() -> list[type[BaseModel]]:
    from mnlang.server import webhook_models as w

    return [w.DeliveryList, w.Redeliver, w.DeliveryOut, w.WebhookList]


def webhook_paths() -> dict[str, Any]:
    """The outbox's routes (`mnlang.server.webhooks`). The `/hooks/...` paths of inbound
    webhooks are the project's own, in the format of each sender: not part of this API."""
    from mnlang.server import webhook_models as w

    params = [
        _query("status", {"type": "string", "enum": ["pending", "delivered", "failed"]}, "Status"),
        _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "Page size"),
    ]
    return {
        "/api/v1/deliveries": {
            "get": _operation(
                "listDeliveries",
                "Webhook deliveries of the outbox, newest first, with their attempts",
                {"200": w.DeliveryList},
                params=[_query("run_id", {"type": "string"}, "Only about this run"), *params],
                errors=("400", "401", "503"),
            )
        },
        "/api/v1/runs/{run_id}/deliveries": {
            "get": _operation(
                "runDeliveries",
                "A run's webhook deliveries with their attempts",
                {"200": w.DeliveryList},
                params=[RUN_ID, *params],
                errors=("400", "401", "404", "503"),
            )
        },
        "/api/v1/deliveries/redeliver": {
            "post": _operation(
                "redeliver",
                "Send a delivery again (a failed one too), with its event id",
                {"202": w.DeliveryOut},
                body=w.Redeliver,
            )
        },
        "/api/v1/webhooks": {
            "get": _operation(
                "listWebhooks",
                "The webhooks of the server's mnlang.toml (secrets never shown)",
                {"200": w.WebhookList},
                errors=("401", "503"),
            )
        },
    }


@cache
def document() -> dict[str, Any]:
    every: list[type[BaseModel]] = [
        m.ErrorResponse,
        m.RegisterProgram,
        m.ProgramOut,
        m.ProgramList,
        m.WorkflowList,
        m.StartRun,
        m.RunOut,
        m.RunPage,
        m.JournalPage,
        m.SendSignal,
        m.SignalOut,
        m.Decide,
        m.DecisionOut,
        m.CancelOut,
        m.Me,
        m.BulkCancel,
        m.BulkOut,
        *webhook_models(),
    ]
    from mnlang.server import recovery

    every += recovery.MODELS
    _, schemas = models_json_schema(
        [(model, "serialization") for model in every], ref_template=_REF
    )
    statuses = list(get_args(RunStatus))
    paths: dict[str, Any] = {
        "/api/v1/me": {"get": _operation("me", "Who the token belongs to", {"200": m.Me})},
        "/api/v1/programs": {
            "get": _operation("listPrograms", "Registered programs", {"200": m.ProgramList}),
            "post": _operation(
                "registerProgram",
                "Register a program (source or IR)",
                {"201": m.ProgramOut},
                body=m.RegisterProgram,
                errors=("400", "401", "403", "422", "503"),
            ),
        },
        "/api/v1/workflows": {
            "get": _operation(
                "listWorkflows", "Workflows with their input schemas", {"200": m.WorkflowList}
            )
        },
        "/api/v1/runs": {
            "get": _operation(
                "listRuns",
                "Runs, newest first, filtered",
                {"200": m.RunPage},
                params=[
                    _query("status", {"type": "string", "enum": statuses}, "Run status"),
                    _query("workflow", {"type": "string"}, "Workflow name"),
                    _query("class", {"type": "string"}, "Workflow class"),
                    _query("since", {"type": "number"}, "Created at or after (Unix seconds)"),
                    _query("until", {"type": "number"}, "Created before (Unix seconds)"),
                    _query("q", {"type": "string"}, "Text in the run id or input"),
                    _query("cursor", {"type": "string"}, "`next_cursor` of the page before"),
                    PAGE_LIMIT,
                ],
            ),
            "post": _operation(
                "startRun",
                "Start a run (idempotent by run id)",
                {"200": m.RunOut, "201": m.RunOut},
                body=m.StartRun,
                params=[TRACEPARENT],
                errors=("400", "401", "403", "404", "409", "503"),
            ),
        },
        "/api/v1/runs/{run_id}": {
            "get": _operation(
                "getRun",
                "A run, where it stands and its pending work",
                {"200": m.RunOut},
                params=[RUN_ID],
            )
        },
        "/api/v1/runs/{run_id}/journal": {
            "get": _operation(
                "runJournal",
                "A run's journal, paged",
                {"200": m.JournalPage},
                params=[
                    RUN_ID,
                    _query("after", {"type": "integer", "minimum": 0}, "Events after this seq"),
                    PAGE_LIMIT,
                ],
            )
        },
        "/api/v1/runs/{run_id}/signals": {
            "post": _operation(
                "signalRun",
                "Send a signal to a run",
                {"200": m.SignalOut, "202": m.SignalOut},
                body=m.SendSignal,
                params=[RUN_ID],
                errors=("400", "401", "403", "404", "409", "503"),
            )
        },
        "/api/v1/signals": {
            "post": _operation(
                "signalToken",
                "Answer a callback token",
                {"200": m.SignalOut, "202": m.SignalOut},
                body=m.SendSignal,
                errors=("400", "401", "403", "404", "409", "503"),
            )
        },
        "/api/v1/runs/{run_id}/checkpoints/{checkpoint}/decision": {
            "post": _operation(
                "decideCheckpoint",
                "Decide a checkpoint (by name or id)",
                {"200": m.DecisionOut},
                body=m.Decide,
                params=[RUN_ID, _path("checkpoint", "The checkpoint's name or id")],
                errors=("400", "401", "403", "404", "409", "503"),
            )
        },
        "/api/v1/bulk/cancel": {
            "post": _operation(
                "bulkCancel",
                "Cancel the live runs matching a filter",
                {"200": m.BulkOut},
                body=m.BulkCancel,
                errors=("400", "401", "503"),
            )
        },
        "/api/v1/runs/{run_id}/cancel": {
            "post": _operation(
                "cancelRun",
                "Cancel a run",
                {"200": m.CancelOut, "202": m.CancelOut},
                params=[RUN_ID],
            )
        },
    }
    paths.update(webhook_paths())
    paths.update(recovery.openapi_paths(_operation, RUN_ID))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mnlang API",
            "version": "1",
            "description": "Start, read, signal, decide and cancel durable workflow runs.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas["$defs"],
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
