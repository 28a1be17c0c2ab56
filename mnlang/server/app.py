"""The `/api/v1` routes, mounted beside the console in one Starlette application.

Every route answers JSON: a body of its response model, or an error body
`{"error": {"type", "code", "message", "help", "details"}}` (Stripe-style) with the
HTTP status of its type. Requests pass the console's `AuthMiddleware` (a bearer token,
or the open local mode); reading needs any user, starting/signalling/deciding/cancelling
the operator role in the workflow's scope, registering programs the admin role.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, get_args

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mnlang.ir.model import IRProgram
from mnlang.jsonin import JSONInputError, decode_json
from mnlang.project import Project
from mnlang.runtime import decisions, signals
from mnlang.runtime.run import RunError
from mnlang.runtime.tokens import BadToken, read_token
from mnlang.server import models as m
from mnlang.stores.base import TERMINAL_STATUSES, RunRecord, RunStatus, Store, StoreError
from mnlang.telemetry.spans import TraceParent
from mnlang.ui.actions import ActionRefused, Executor, assignee_of, may_change
from mnlang.ui.auth import User

PREFIX = "/api/v1"
MAX_BODY = 2_000_000
MAX_PAGE = 1000
STATUSES = get_args(RunStatus)
BodyT = TypeVar("BodyT", bound=BaseModel)

_STATUS = {
    "invalid_request": 400,
    "authentication": 401,
    "permission": 403,
    "not_found": 404,
    "conflict": 409,
    "unavailable": 503,
}


class ApiError(Exception):
    def __init__(
        self,
        type_: str,
        code: str,
        message: str,
        *,
        help: str | None = None,
        details: dict[str, Any] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.body = m.ErrorResponse(
            error=m.ErrorDetail(
                type=type_,  # type: ignore[arg-type]
                code=code,
                message=message,
                help=help,
                details=details,
            )
        )
        self.status = status or _STATUS[type_]

    def response(self) -> Response:
        return _json(self.body, self.status)


def _json(body: BaseModel, status: int = 200) -> Response:
    return Response(body.model_dump_json(), status_code=status, media_type="application/json")


class Programs:
    """Parsed programs by hash, read from the store once."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._by_hash: dict[str, IRProgram] = {}
        self._unreadable: set[str] = set()

    def get(self, ir_hash: str) -> IRProgram | None:
        from mnlang.ir.load import IRLoadError, parse_ir

        with self._lock:
            found = self._by_hash.get(ir_hash)
            if found is not None or ir_hash in self._unreadable:
                return found
        text = self.store.get_program(ir_hash)
        if text is None:
            return None
        try:
            program = parse_ir(text, f"program {ir_hash[:12]}")
        except IRLoadError:
            with self._lock:  # written by another mnlang version: not read again
                self._unreadable.add(ir_hash)
            return None
        with self._lock:
            self._by_hash[ir_hash] = program
        return program

    def put(self, program: IRProgram) -> None:
        from mnlang.ir.load import dump_ir

        self.store.put_program(program.hash, dump_ir(program))
        with self._lock:
            self._by_hash[program.hash] = program

    def listed(self) -> list[tuple[IRProgram, float]]:
        out = []
        for ir_hash, at in self.store.program_hashes():
            program = self.get(ir_hash)
            if program is not None:
                out.append((program, at))
        return out


def workflows_of(program: IRProgram) -> list[m.WorkflowOut]:
    from mnlang.ir.schema import input_schema

    return [
        m.WorkflowOut(
            name=name,
            workflow_class=wf.options.class_ or "",
            ir_hash=program.hash,
            input_schema=input_schema(wf.params, program.types),
        )
        for name, wf in program.workflows.items()
    ]


def run_out(record: RunRecord, *, created: bool | None = None) -> m.RunOut:
    return m.RunOut(
        run_id=record.run_id,
        workflow=record.workflow,
        workflow_class=record.workflow_class,
        status=record.status,
        input=record.args,
        result=record.result,
        error=record.error,
        parent_run_id=record.parent_run_id,
        ir_hash=record.ir_hash,
        cancel_requested=record.cancel_requested,
        cancel_requested_by=record.cancel_requested_by,
        created_at=record.created_at,
        updated_at=record.updated_at,
        finished_at=record.finished_at,
        started_by=_text_or_none(record.meta.get("started_by")),
        created=created,
        quarantine=None
        if record.quarantine is None
        else m.QuarantineOut(
            at=record.quarantine.at, by=record.quarantine.by, reason=record.quarantine.reason
        ),
    )


def run_detail(store: Store, record: RunRecord) -> m.RunOut:
    """A run with where it stands and the work it waits for, checkpoints by name."""
    out = run_out(record)
    checkpoints = store.open_checkpoints(record.run_id)
    names = {c.checkpoint_id: c.name for c in checkpoints}
    positions = []
    for branch, cursor in sorted(store.load_state(record.run_id).cursors.items()):
        if not isinstance(cursor, dict):
            continue
        state = cursor.get("at")
        state = state if isinstance(state, str) else None
        pending = cursor.get("pending") or {}
        note = {k: v for k, v in pending.items() if k not in ("effect", "compensate", "agent")}
        positions.append(
            m.PositionOut(
                branch=branch or "main",
                state=state,
                checkpoint=names.get(state or ""),
                waiting_for=note or None,
            )
        )
    out.positions = positions
    out.pending = m.Pending(
        checkpoints=[
            m.CheckpointOut(
                name=c.name,
                checkpoint_id=c.checkpoint_id,
                request=c.request,
                assignee=assignee_of(c),
                opened_at=c.opened_at,
            )
            for c in checkpoints
        ],
        timers=[
            m.TimerOut(timer_id=t.timer_id, due_at=t.due_at)
            for t in store.run_timers(record.run_id)
        ],
        events=list(record.waiting_for) if record.status == "waiting" else [],
    )
    return out


def _cursor(record: RunRecord) -> str:
    raw = json.dumps([record.created_at, record.run_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _after_cursor(text: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        at, run_id = json.loads(raw)
        return float(at), str(run_id)
    except (ValueError, TypeError) as e:
        raise ApiError(
            "invalid_request", "bad_cursor", "the cursor is not one this API gave"
        ) from e


class Api:
    def __init__(self, store: Store, executor: Executor) -> None:
        self.store = store
        self.executor = executor
        self.programs = Programs(store)
        from mnlang.server.starts import StartQueue

        self.starts = StartQueue(store, self.programs)

    # ---- plumbing ------------------------------------------------------------------------

    async def body(self, request: Request, model: type[BodyT]) -> BodyT:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise ApiError(
                "invalid_request",
                "body_too_large",
                f"the body exceeds {MAX_BODY} bytes",
                status=413,
            )
        try:
            data = decode_json(raw or b"{}", "the body", max_bytes=MAX_BODY)
        except JSONInputError as e:
            raise ApiError("invalid_request", "invalid_body", e.message, help=e.help) from None
        try:
            return model.model_validate(data)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise ApiError(
                "invalid_request",
                "invalid_body",
                f"`{where}`: {first['msg']}",
                details={"errors": json.loads(e.json(include_url=False, include_input=False))},
            ) from None

    def user(self, request: Request) -> User:
        user: User | None = request.state.user
        if user is None:  # the middleware lets only public paths through without one
            raise ApiError("authentication", "token_required", "a token is needed")
        return user

    def may_act(self, request: Request, workflow: str) -> User:
        user = self.user(request)
        if not user.may_act_on(workflow):
            raise ApiError(
                "permission",
                "forbidden",
                f"`{user.name}` ({user.role_name}) may not act on runs of `{workflow}`",
            )
        return user

    def may_change(self, request: Request, record: RunRecord) -> User:
        """`may_act`, and the console's assignee rule: while a checkpoint of the run is
        assigned to someone else, only they (deciding it) or an admin change the run."""
        user = self.may_act(request, record.workflow)
        try:
            may_change(self.store, user, record.run_id)
        except ActionRefused as e:
            raise ApiError("permission", "assigned_to_another", e.message) from None
        return user

    def record(self, run_id: str) -> RunRecord:
        record = self.store.get_run(run_id)
        if record is None:
            raise ApiError("not_found", "run_not_found", f"no run `{run_id}`")
        return record

    def route(self, handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)  # type: ignore[no-any-return]
            except ApiError as e:
                return e.response()
            except StoreError as e:
                return ApiError(
                    "unavailable", "store_unavailable", e.message, help=e.help
                ).response()

        return endpoint

    # ---- programs and workflows ----------------------------------------------------------

    async def register_program(self, request: Request) -> Response:
        user = self.user(request)
        if not user.admin:
            raise ApiError("permission", "forbidden", "registering a program needs the admin role")
        body = await self.body(request, m.RegisterProgram)
        program = await run_in_threadpool(self._compile, body)
        await run_in_threadpool(self.programs.put, program)
        return _json(m.ProgramOut(ir_hash=program.hash, workflows=workflows_of(program)), 201)

    def _compile(self, body: m.RegisterProgram) -> IRProgram:
        from mnlang.ir.compile import compile_file
        from mnlang.ir.load import IRLoadError, parse_ir

        if (body.source is None) == (body.ir is None):
            raise ApiError("invalid_request", "invalid_body", "give `source` or `ir`, one of them")
        if body.ir is not None:
            try:
                return parse_ir(json.dumps(body.ir), "ir")
            except IRLoadError as e:
                raise ApiError("invalid_request", "invalid_ir", e.message, help=e.help) from None
        path = Path(body.path or "program.mn").absolute()
        if path.suffix != ".mn":
            raise ApiError("invalid_request", "invalid_body", "`path` must name a `.mn` file")
        assert body.source is not None
        program, diagnostics = compile_file(path, body.source)
        if program is None:
            raise ApiError(
                "invalid_request",
                "compile_failed",
                f"the program has errors ({sum(d.severity == 'error' for d in diagnostics)})",
                details={"diagnostics": [d.to_json() for d in diagnostics]},
                status=422,
            )
        return program

    async def list_programs(self, request: Request) -> Response:
        self.user(request)
        listed = await run_in_threadpool(self.programs.listed)
        return _json(
            m.ProgramList(
                programs=[
                    m.ProgramOut(ir_hash=p.hash, created_at=at, workflows=workflows_of(p))
                    for p, at in listed
                ]
            )
        )

    async def list_workflows(self, request: Request) -> Response:
        self.user(request)
        listed = await run_in_threadpool(self.programs.listed)
        seen: dict[str, m.WorkflowOut] = {}
        for program, _ in listed:  # newest first: the latest program of each workflow
            for wf in workflows_of(program):
                seen.setdefault(wf.name, wf)
        return _json(m.WorkflowList(workflows=sorted(seen.values(), key=lambda w: w.name)))

    # ---- runs ----------------------------------------------------------------------------

    async def start_run(self, request: Request) -> Response:
        body = await self.body(request, m.StartRun)
        user = self.may_act(request, body.workflow)
        # W3C trace context: an invalid header is ignored (the run starts a trace of its
        # own), as the recommendation asks of a receiver, instead of refusing the start.
        header = request.headers.get("traceparent")
        traceparent = header if header and TraceParent.parse(header) is not None else None
        started = await self.starts.start(body, user.name, traceparent)
        outcome = started.outcome
        if outcome.created and outcome.status == "running":
            self.executor.resume(outcome.run_id)
        return _json(
            run_out(started.record, created=outcome.created), 201 if outcome.created else 200
        )

    async def get_run(self, request: Request) -> Response:
        self.user(request)
        run_id = request.path_params["run_id"]

        def read() -> m.RunOut:
            return run_detail(self.store, self.record(run_id))

        return _json(await run_in_threadpool(read))

    async def journal(self, request: Request) -> Response:
        self.user(request)
        run_id = request.path_params["run_id"]
        after = _int_param(request, "after", 0, 0, 2**62)
        limit = _int_param(request, "limit", 100, 1, MAX_PAGE)

        def read() -> m.JournalPage:
            self.record(run_id)
            events = self.store.read_journal(run_id, after_seq=after, limit=limit + 1)
            more = len(events) > limit
            events = events[:limit]
            return m.JournalPage(
                events=[
                    m.EventOut(
                        seq=e.seq, at=e.at, kind=e.kind, state=e.state, branch=e.branch, data=e.data
                    )
                    for e in events
                ],
                next_after=events[-1].seq if more else None,
            )

        return _json(await run_in_threadpool(read))

    async def list_runs(self, request: Request) -> Response:
        self.user(request)
        params = request.query_params
        status = params.get("status") or None
        if status is not None and status not in STATUSES:
            raise ApiError("invalid_request", "invalid_parameter", f"no run status `{status}`")
        query = m.RunFilter(
            status=status,  # type: ignore[arg-type]
            workflow=params.get("workflow") or None,
            workflow_class=params.get("class") or None,
            since=_float_param(request, "since"),
            until=_float_param(request, "until"),
            q=params.get("q") or None,
        )
        limit = _int_param(request, "limit", 50, 1, MAX_PAGE)
        after = _after_cursor(params["cursor"]) if params.get("cursor") else None

        def read() -> m.RunPage:
            page, more = self.matching(query, limit, after)
            return m.RunPage(
                runs=[run_out(r) for r in page],
                next_cursor=_cursor(page[-1]) if more and page else None,
            )

        return _json(await run_in_threadpool(read))

    def matching(
        self, query: m.RunFilter, limit: int, after: tuple[float, str] | None = None
    ) -> tuple[list[RunRecord], bool]:
        """Up to `limit` runs matching `query`, newest first, after the cursor's run; and
        whether there are more."""
        return self.store.search_runs(
            status=query.status,
            workflow=query.workflow,
            workflow_class=query.workflow_class,
            since=query.since,
            until=query.until,
            text=query.q,
            after=after,
            limit=limit,
        )

    async def bulk_cancel(self, request: Request) -> Response:
        """Cancel every live run matching a filter (at most `limit`), that the user may
        act on; the others are listed as skipped, with the reason."""
        user = self.user(request)
        body = await self.body(request, m.BulkCancel)

        def cancel_all() -> m.BulkOut:
            out = m.BulkOut(done=[], skipped=[], more=False)
            page, out.more = self.matching(body.filter, body.limit)
            for record in page:
                if record.status in TERMINAL_STATUSES:
                    continue
                if not user.may_act_on(record.workflow):
                    reason = f"`{user.name}` ({user.role_name}) may not act on `{record.workflow}`"
                    out.skipped.append(m.Skipped(run_id=record.run_id, reason=reason))
                    continue
                try:
                    may_change(self.store, user, record.run_id)
                except ActionRefused as e:
                    out.skipped.append(m.Skipped(run_id=record.run_id, reason=e.message))
                    continue
                if self.store.request_cancel(record.run_id, by=user.name):
                    out.done.append(record.run_id)
                else:
                    out.skipped.append(m.Skipped(run_id=record.run_id, reason="it has ended"))
            return out

        out = await run_in_threadpool(cancel_all)
        for run_id in out.done:
            self.executor.resume(run_id)
        return _json(out)

    async def signal(self, request: Request) -> Response:
        body = await self.body(request, m.SendSignal)
        if body.token is not None:
            if body.event is not None or body.key is not None:
                raise ApiError(
                    "invalid_request",
                    "invalid_body",
                    "a token names the event and the key: give neither",
                )
        elif body.event is None:
            raise ApiError(
                "invalid_request", "invalid_body", "give `event` (or a callback `token`)"
            )
        run_id = request.path_params.get("run_id")
        if run_id is None and body.token is None:
            raise ApiError(
                "invalid_request",
                "invalid_body",
                "give a callback `token`, or send to /api/v1/runs/{run_id}/signals",
            )

        def send() -> signals.Delivered:
            try:
                if body.token is not None:
                    target = read_token(self.store.callback_secret(), body.token)
                    if run_id is not None and target.run_id != run_id:
                        raise ApiError(
                            "invalid_request", "token_mismatch", "the token is for another run"
                        )
                    user = self.may_change(request, self.record(target.run_id))
                    return signals.send_token(
                        self.store,
                        body.token,
                        body.payload,
                        signal_id=body.signal_id,
                        by=user.name,
                    )
                assert run_id is not None and body.event is not None
                record = self.record(run_id)
                user = self.may_change(request, record)
                if record.status in TERMINAL_STATUSES:
                    raise ApiError(
                        "conflict", "run_ended", f"run `{run_id}` has ended ({record.status})"
                    )
                return signals.send(
                    self.store,
                    run_id,
                    body.event,
                    body.payload,
                    signal_id=body.signal_id,
                    key=body.key,
                    by=user.name,
                )
            except BadToken as e:
                raise ApiError(
                    "invalid_request", "bad_token", f"refused callback token: {e}"
                ) from None
            except RunError as e:
                raise ApiError(
                    "invalid_request", "signal_refused", e.message, help=e.help
                ) from None

        delivered = await run_in_threadpool(send)
        if delivered.accepted and delivered.waiting:
            self.executor.resume(delivered.run_id)
        return _json(
            m.SignalOut(
                run_id=delivered.run_id,
                event=delivered.event,
                key=delivered.key,
                signal_id=delivered.signal_id,
                accepted=delivered.accepted,
                waiting=delivered.waiting,
            ),
            202 if delivered.accepted else 200,
        )

    async def decide(self, request: Request) -> Response:
        body = await self.body(request, m.Decide)
        run_id = request.path_params["run_id"]
        ref = request.path_params["checkpoint"]

        def record_decision() -> decisions.Decided:
            user = self.may_act(request, self.record(run_id).workflow)
            checkpoint = next(
                (
                    c
                    for c in self.store.open_checkpoints(run_id)
                    if ref in (c.name, c.checkpoint_id)
                ),
                None,
            ) or self.store.get_checkpoint(run_id, ref)
            if checkpoint is None:
                raise ApiError(
                    "not_found", "checkpoint_not_found", f"run `{run_id}` has no checkpoint `{ref}`"
                )
            assignee = assignee_of(checkpoint)
            if not user.may_decide(assignee):
                raise ApiError(
                    "permission",
                    "assigned_to_another",
                    f"checkpoint `{checkpoint.name}` is assigned to `{assignee}`",
                )
            try:
                return decisions.decide(
                    self.store,
                    run_id,
                    checkpoint.checkpoint_id,
                    approve=body.choice != "reject",
                    # `approve`/`reject` as `mnc approve`/`mnc reject`: the runtime picks
                    # the option (on a repair, `reject` fails the step)
                    choice=None if body.choice in ("approve", "reject") else body.choice,
                    by=user.name,
                    comment=body.comment,
                    result=body.result,
                )
            except decisions.DecisionRefused as e:
                raise ApiError("conflict", "already_decided", e.message, help=e.help) from None
            except RunError as e:
                raise ApiError(
                    "invalid_request", "decision_refused", e.message, help=e.help
                ) from None

        decided = await run_in_threadpool(record_decision)
        self.executor.resume(run_id)
        return _json(
            m.DecisionOut(
                run_id=decided.run_id,
                checkpoint=decided.name,
                checkpoint_id=decided.checkpoint_id,
                choice=decided.choice,
                by=decided.by,
            )
        )

    async def cancel(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]

        def request_cancel() -> RunRecord:
            user = self.may_change(request, self.record(run_id))
            self.store.request_cancel(run_id, by=user.name)
            return self.record(run_id)

        record = await run_in_threadpool(request_cancel)
        if record.status not in TERMINAL_STATUSES:
            self.executor.resume(run_id)
        return _json(
            m.CancelOut(
                run_id=run_id,
                status=record.status,
                cancel_requested=record.cancel_requested,
                cancel_requested_by=record.cancel_requested_by,
            ),
            202 if record.status not in TERMINAL_STATUSES else 200,
        )

    async def me(self, request: Request) -> Response:
        user = self.user(request)
        return _json(
            m.Me(
                user=user.name,
                role=user.role_name,  # type: ignore[arg-type]
                workflows=list(user.workflows) if user.workflows is not None else None,
            )
        )

    async def openapi(self, request: Request) -> Response:
        from mnlang.server.openapi import document

        return JSONResponse(document())

    def routes(self) -> list[Route]:
        r = self.route
        return [
            Route(f"{PREFIX}/openapi.json", r(self.openapi), methods=["GET"]),
            Route(f"{PREFIX}/me", r(self.me), methods=["GET"]),
            Route(f"{PREFIX}/programs", r(self.list_programs), methods=["GET"]),
            Route(f"{PREFIX}/programs", r(self.register_program), methods=["POST"]),
            Route(f"{PREFIX}/workflows", r(self.list_workflows), methods=["GET"]),
            Route(f"{PREFIX}/runs", r(self.list_runs), methods=["GET"]),
            Route(f"{PREFIX}/runs", r(self.start_run), methods=["POST"]),
            Route(f"{PREFIX}/runs/{{run_id}}", r(self.get_run), methods=["GET"]),
            Route(f"{PREFIX}/runs/{{run_id}}/journal", r(self.journal), methods=["GET"]),
            Route(f"{PREFIX}/runs/{{run_id}}/signals", r(self.signal), methods=["POST"]),
            Route(f"{PREFIX}/signals", r(self.signal), methods=["POST"]),
            Route(
                f"{PREFIX}/runs/{{run_id}}/checkpoints/{{checkpoint}}/decision",
                r(self.decide),
                methods=["POST"],
            ),
            Route(f"{PREFIX}/runs/{{run_id}}/cancel", r(self.cancel), methods=["POST"]),
            Route(f"{PREFIX}/bulk/cancel", r(self.bulk_cancel), methods=["POST"]),
        ]


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError(
            "invalid_request", "invalid_parameter", f"`{name}` must be an integer"
        ) from None
    if not low <= value <= high:
        raise ApiError("invalid_request", "invalid_parameter", f"`{name}` must be {low}..{high}")
    return value


def _float_param(request: Request, name: str) -> float | None:
    text = request.query_params.get(name)
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ApiError(
            "invalid_request", "invalid_parameter", f"`{name}` must be a number (Unix seconds)"
        ) from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ApiError("invalid_request", "invalid_parameter", f"`{name}` must be finite")
    return value


def create_server_app(
    store: Store, auth: Any, *, execute: bool = True, project: Project | None = None
) -> Starlette:
    """The console with the API beside it, sharing its store, auth and executor; with the
    webhooks in and out of `project` (by default the current folder's mnlang.toml)."""
    from mnlang.project import find_project
    from mnlang.server.webhooks import install
    from mnlang.ui.app import create_app

    app = create_app(store, auth, execute=execute)
    from mnlang.server.recovery import Recovery

    api = Api(store, app.state.console.executor)
    app.router.routes[:0] = [
        *api.routes(),
        *Recovery(api).routes(),
        Route("/metrics", prometheus_endpoint(store)),
    ]
    project = project or find_project()
    install(
        app,
        api,
        project.webhooks if project is not None else {},
        project.inbound if project is not None else {},
    )
    app.state.api = api
    return app


def prometheus_endpoint(store: Store) -> Callable[[Request], Any]:
    """`/metrics` for Prometheus: the journal's figures (`telemetry.metrics`), for any user
    (a scraper sends its token as `Authorization: Bearer`)."""
    from prometheus_client import CollectorRegistry

    from mnlang.telemetry.metrics import JournalCollector, metrics_response_body

    registry = CollectorRegistry()
    registry.register(JournalCollector(store))  # type: ignore[arg-type]

    async def metrics(request: Request) -> Response:
        try:
            body, content_type = await run_in_threadpool(metrics_response_body, registry)
        except StoreError as e:
            return Response(f"# the journal cannot be read: {e.message}\n", 503)
        return Response(body, headers={"Content-Type": content_type})

    return metrics
