"""The operator's way out of a failed run, under `/api/v1`: retry a failed run in place,
retry the failed runs matching a filter, fork a run from a step into a new run.

Routes of their own module beside `app.Api`, whose plumbing (bodies, users, errors)
they use; `create_server_app` mounts them. Acting needs the operator role in the run's
workflow scope, as cancelling does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mnlang.server import models as m
from mnlang.server.app import PREFIX, Api, ApiError, _json
from mnlang.stores.base import RunStatus
from mnlang.ui.actions import ActionRefused, may_change

if TYPE_CHECKING:
    from mnlang.runtime.recovery import Retried


class RetryRun(m.Body):
    """No fields yet: the run goes on from its failed step with the code, configuration
    and keys as they are now."""


class RetryOut(BaseModel):
    run_id: str
    status: RunStatus
    step: str = Field(description="The failed step the run goes on from.")
    retries: int = Field(description="How many times the run was retried, this one included.")


class BulkRetry(m.Body):
    filter: m.RunFilter = Field(
        default_factory=lambda: m.RunFilter(),
        description="Which failed runs: `status`, when given, must be `failed`.",
    )
    limit: int = Field(1000, ge=1, le=10_000, description="At most this many runs, newest first.")


class BulkRetryOut(BaseModel):
    retried: list[RetryOut]
    skipped: list[m.Skipped] = Field(description="Runs that matched and were not retried: why.")
    more: bool = Field(description="More runs matched than `limit`: send it again.")


class ForkRun(m.Body):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_step: str = Field(
        alias="from",
        min_length=1,
        max_length=512,
        description="Where the new run goes live: a state id (as the journal names it) or "
        "a source line of a statement the run executed.",
    )
    live_effects: bool = Field(
        False,
        description="Perform effects after the fork point for real; by default they are "
        "answered from the source run's ledger, or refused.",
    )
    run_id: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@+-]*$",
        description="The new run's id (default: `<run>-fork-<hex>`).",
    )


class ForkOut(BaseModel):
    source_run_id: str
    run_id: str
    status: RunStatus
    fork_state: str
    replayed_steps: int = Field(description="Journal events of the source run before the fork.")
    live_effects: bool
    effects_from_ledger: list[str]
    effects_refused: list[str]


MODELS: tuple[type[BaseModel], ...] = (
    RetryRun,
    RetryOut,
    BulkRetry,
    BulkRetryOut,
    ForkRun,
    ForkOut,
)


def _retry_out(retried: Retried, status: RunStatus) -> RetryOut:
    return RetryOut(
        run_id=retried.run_id, status=status, step=retried.step, retries=retried.retries
    )


class Recovery:
    def __init__(self, api: Api) -> None:
        self.api = api
        self.store = api.store

    async def retry(self, request: Request) -> Response:
        from mnlang.runtime.recovery import RetryRefused, retry

        run_id = request.path_params["run_id"]
        await self.api.body(request, RetryRun)

        def act() -> Retried:
            user = self.api.may_change(request, self.api.record(run_id))
            try:
                return retry(self.store, run_id, by=user.name)
            except RetryRefused as e:
                raise ApiError("conflict", e.reason, e.message, help=e.help) from None

        retried = await run_in_threadpool(act)
        self.api.executor.resume(run_id)
        record = await run_in_threadpool(self.api.record, run_id)
        return _json(_retry_out(retried, record.status), 202)

    async def bulk_retry(self, request: Request) -> Response:
        """Retry every failed run matching a filter (at most `limit`) that the user may
        act on; the others are listed as skipped, with the reason."""
        from mnlang.runtime.recovery import RetryRefused, retry

        user = self.api.user(request)
        body = await self.api.body(request, BulkRetry)
        query = body.filter
        if query.status not in (None, "failed"):
            raise ApiError(
                "invalid_request", "invalid_body", "a retry takes failed runs: `status` is `failed`"
            )

        def retry_all() -> BulkRetryOut:
            records, more = self.store.search_runs(
                status="failed",
                workflow=query.workflow,
                workflow_class=query.workflow_class,
                since=query.since,
                until=query.until,
                text=query.q,
                limit=body.limit,
            )
            out = BulkRetryOut(retried=[], skipped=[], more=more)
            for record in records:
                if not user.may_act_on(record.workflow):
                    reason = f"`{user.name}` ({user.role_name}) may not act on `{record.workflow}`"
                    out.skipped.append(m.Skipped(run_id=record.run_id, reason=reason))
                    continue
                try:
                    may_change(self.store, user, record.run_id)
                    retried = retry(self.store, record.run_id, by=user.name)
                except (ActionRefused, RetryRefused) as e:
                    out.skipped.append(m.Skipped(run_id=record.run_id, reason=e.message))
                    continue
                out.retried.append(_retry_out(retried, "running"))
            return out

        out = await run_in_threadpool(retry_all)
        for retried in out.retried:
            self.api.executor.resume(retried.run_id)
        return _json(out)

    async def fork(self, request: Request) -> Response:
        """Replay the run up to a step, then go on live as a new run in this journal. The
        answer comes when the new run ends or waits for a person or a signal."""
        from mnlang.replay.engine import ReplayError
        from mnlang.replay.fork import ForkOutcome, fork_run
        from mnlang.replay.recording import recording_from_store
        from mnlang.runtime.run import RunError

        run_id = request.path_params["run_id"]
        body = await self.api.body(request, ForkRun)

        def act() -> ForkOutcome:
            self.api.may_act(request, self.api.record(run_id).workflow)
            if body.run_id is not None and self.store.get_run(body.run_id) is not None:
                raise ApiError("conflict", "run_exists", f"run `{body.run_id}` exists already")
            try:
                return fork_run(
                    recording_from_store(self.store, run_id),
                    body.from_step,
                    self.store,
                    live_effects=body.live_effects,
                    run_id=body.run_id,
                )
            except (ReplayError, RunError) as e:
                raise ApiError("invalid_request", "fork_refused", e.message, help=e.help) from None

        forked = await run_in_threadpool(act)
        return _json(
            ForkOut(
                source_run_id=forked.source_run_id,
                run_id=forked.outcome.run_id,
                status=forked.outcome.status,
                fork_state=forked.fork_state,
                replayed_steps=forked.replayed_steps,
                live_effects=forked.live_effects,
                effects_from_ledger=forked.effects_from_ledger,
                effects_refused=forked.effects_refused,
            ),
            201,
        )

    def routes(self) -> list[Route]:
        r = self.api.route
        return [
            Route(f"{PREFIX}/runs/{{run_id}}/retry", r(self.retry), methods=["POST"]),
            Route(f"{PREFIX}/runs/{{run_id}}/fork", r(self.fork), methods=["POST"]),
            Route(f"{PREFIX}/bulk/retry", r(self.bulk_retry), methods=["POST"]),
        ]


def openapi_paths(operation: Any, run_id: dict[str, Any]) -> dict[str, Any]:
    """The routes' part of the OpenAPI document (`openapi.document`)."""
    errors = ("400", "401", "403", "404", "409", "503")
    return {
        "/api/v1/runs/{run_id}/retry": {
            "post": operation(
                "retryRun",
                "Retry a failed run in place, from its failed step",
                {"202": RetryOut},
                body=RetryRun,
                params=[run_id],
                errors=errors,
            )
        },
        "/api/v1/runs/{run_id}/fork": {
            "post": operation(
                "forkRun",
                "Fork a run from a step into a new run",
                {"201": ForkOut},
                body=ForkRun,
                params=[run_id],
                errors=errors,
            )
        },
        "/api/v1/bulk/retry": {
            "post": operation(
                "bulkRetry",
                "Retry the failed runs matching a filter",
                {"200": BulkRetryOut},
                body=BulkRetry,
                errors=("400", "401", "503"),
            )
        },
    }
