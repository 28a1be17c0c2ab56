"""The API's request and response bodies; the OpenAPI document is generated from them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mnlang.stores.base import RunStatus


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    type: Literal[
        "invalid_request", "authentication", "permission", "not_found", "conflict", "unavailable"
    ]
    code: str = Field(description="A stable, machine-readable code, e.g. `run_conflict`.")
    message: str
    help: str | None = None
    details: dict[str, Any] | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class RegisterProgram(Body):
    """A program's `.mn` source (compiled as if it were the file at `path` on the server,
    where its imports and tool modules must be installed), or its compiled IR."""

    source: str | None = Field(None, max_length=1_000_000)
    path: str | None = Field(None, max_length=4096)
    ir: dict[str, Any] | None = None


class Diagnostic(BaseModel):
    code: str
    severity: str
    message: str
    line: int | None = None
    column: int | None = None
    help: str | None = None


class WorkflowOut(BaseModel):
    name: str
    workflow_class: str
    ir_hash: str
    input_schema: dict[str, Any]


class ProgramOut(BaseModel):
    ir_hash: str
    created_at: float | None = None
    workflows: list[WorkflowOut]


class ProgramList(BaseModel):
    programs: list[ProgramOut]


class WorkflowList(BaseModel):
    workflows: list[WorkflowOut]


class StartRun(Body):
    workflow: str = Field(min_length=1, max_length=512)
    input: dict[str, Any] = Field(default_factory=dict)
    run_id: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@+-]*$",
        description="Makes the start idempotent: the same id with the same input returns "
        "the run; with other input it is a 409 `run_conflict`.",
    )
    ir_hash: str | None = Field(
        None, description="The program to run; by default the latest registered one."
    )


class PositionOut(BaseModel):
    branch: str
    state: str | None
    checkpoint: str | None = Field(None, description="The name of the checkpoint it is at.")
    waiting_for: Any = None


class CheckpointOut(BaseModel):
    name: str
    checkpoint_id: str
    request: Any
    assignee: str | None
    opened_at: float


class TimerOut(BaseModel):
    timer_id: str
    due_at: float


class Pending(BaseModel):
    checkpoints: list[CheckpointOut]
    timers: list[TimerOut]
    events: list[str] = Field(description="The events the run waits for.")


class QuarantineOut(BaseModel):
    at: float = Field(description="When, by the journal's clock (Unix seconds).")
    by: str = Field(description="The worker that set the run aside.")
    reason: str = Field(description="The error the worker met.")


class RunOut(BaseModel):
    run_id: str
    workflow: str
    workflow_class: str
    status: RunStatus
    input: Any
    result: Any = None
    error: Any = None
    parent_run_id: str | None
    ir_hash: str
    cancel_requested: bool
    cancel_requested_by: str | None = Field(
        None,
        description="Who asked to cancel the run (a token's user, the operating system's "
        "user, `run:PARENT` for a child its parent cancelled); null when nobody did or "
        "it is not known.",
    )
    created_at: float
    updated_at: float
    finished_at: float | None
    started_by: str | None = Field(None, description="The user who started it through the API.")
    created: bool | None = Field(None, description="On a start: a new run was created.")
    quarantine: QuarantineOut | None = Field(
        None,
        description="Set when a worker found the run cannot be executed as stored: no "
        "worker takes it until a person releases it (`mnc db release`).",
    )
    positions: list[PositionOut] | None = None
    pending: Pending | None = None


class RunPage(BaseModel):
    runs: list[RunOut]
    next_cursor: str | None


class RunFilter(Body):
    status: RunStatus | None = None
    workflow: str | None = None
    workflow_class: str | None = None
    since: float | None = Field(default=None, description="Created at or after (Unix seconds).")
    until: float | None = Field(default=None, description="Created before (Unix seconds).")
    q: str | None = Field(default=None, max_length=1000, description="Text in the run id or input.")


class BulkCancel(Body):
    filter: RunFilter = Field(default_factory=lambda: RunFilter())
    limit: int = Field(1000, ge=1, le=10_000, description="At most this many runs, newest first.")


class Skipped(BaseModel):
    run_id: str
    reason: str


class BulkOut(BaseModel):
    done: list[str]
    skipped: list[Skipped]
    more: bool = Field(description="More runs matched than `limit`: send it again.")


class EventOut(BaseModel):
    seq: int
    at: float
    kind: str
    state: str | None
    branch: str
    data: Any


class JournalPage(BaseModel):
    events: list[EventOut]
    next_after: int | None


class SendSignal(Body):
    """A signal to a run (`event`, with a correlation `key` when the wait has one), or
    the answer to a callback `token` (which names the run, the event and the key)."""

    event: str | None = Field(None, min_length=1, max_length=512)
    payload: Any = None
    key: str | None = Field(None, max_length=1024)
    token: str | None = Field(None, max_length=4096)
    signal_id: str | None = Field(None, min_length=1, max_length=256)


class SignalOut(BaseModel):
    run_id: str
    event: str
    key: str | None
    signal_id: str | None
    accepted: bool
    waiting: bool


class Decide(Body):
    choice: str = Field(min_length=1, max_length=256, description="`approve`, `reject`, ...")
    comment: str | None = Field(None, max_length=10_000)
    result: Any = None


class DecisionOut(BaseModel):
    run_id: str
    checkpoint: str
    checkpoint_id: str
    choice: str
    by: str


class CancelOut(BaseModel):
    run_id: str
    status: RunStatus
    cancel_requested: bool
    cancel_requested_by: str | None = Field(
        None, description="Who asked first (a repeated cancel keeps the first asker)."
    )


class Me(BaseModel):
    user: str
    role: Literal["viewer", "operator", "admin"]
    workflows: list[str] | None
