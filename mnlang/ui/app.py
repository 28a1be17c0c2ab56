"""The console's web application: routes, pages, live fragments, JSON and actions.

Pages are rendered on the server. Their live parts (`#live`) follow an event stream
(`/events/...`, see `mnlang.ui.live`): told that what they show changed, they fetch
their fragment with htmx, passing the fingerprint of what they show (`204 No Content`
if nothing changed after all). Every route but `/login` and `/static/` is behind
`AuthMiddleware`; every POST checks the CSRF token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

from jinja2 import Environment
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from mnlang.metrics.compute import ZERO
from mnlang.stores.base import RunNotFound, RunStatus, Store, StoreError
from mnlang.ui import actions, charts
from mnlang.ui.actions import ActionRefused, Executor
from mnlang.ui.auth import (
    COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    ASGIApp,
    Authenticator,
    AuthMiddleware,
    Message,
    Receive,
    Scope,
    Send,
    User,
)
from mnlang.ui.graphs import GraphCache
from mnlang.ui.live import LiveHub
from mnlang.ui.metrics import PERIODS, ConsoleMetrics, MetricsView
from mnlang.ui.queries import (
    STATUSES,
    InboxTopic,
    RunFilters,
    RunsTopic,
    RunTopic,
    RunView,
    Topic,
    inbox_view,
    live_fingerprints,
    run_fingerprint,
    run_view,
    runs_view,
    workflow_summaries,
    workflow_view,
)
from mnlang.ui.templating import environment

STATIC = Path(__file__).parent / "static"
# A run page shows this many of the latest journal events and steps (a long loop's run
# has thousands); the JSON twin and `mnc log` have them all.
SHOWN = {"journal_shown": 500, "evidence_shown": 200}
COST_NOTES = {
    "model": "every model reply, failed and repeated ones too",
    "tool": "the declared cost of tool and effect calls",
    "compute": "tool and effect call time, as CPU time",
    "human_review": "each decision a person made, at the price file's rate",
    "repair": "compensations, and repairs a person decided",
}
"""What each part of the cost counts (docs/metrics.md, "Cost")."""

_SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
_NO_STORE = (b"cache-control", b"no-store")


class SecurityHeaders:
    """Adds the content security policy and friends to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        # Pages show live data (never cached); the packaged static files may be.
        static = scope.get("path", "").startswith("/static/")
        wanted = _SECURITY_HEADERS if static else [*_SECURITY_HEADERS, _NO_STORE]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in wanted if k not in names]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


@dataclass
class Console:
    """The application's parts, shared by every request."""

    store: Store
    auth: Authenticator
    executor: Executor
    metrics: ConsoleMetrics = field(default_factory=ConsoleMetrics)
    graphs: GraphCache = field(default_factory=GraphCache)
    env: Environment = field(default_factory=environment)
    live: LiveHub[Topic] = field(init=False)

    def __post_init__(self) -> None:
        store = self.store
        self.live = LiveHub(lambda topics: live_fingerprints(store, topics))

    # ---- rendering ---------------------------------------------------------------------

    def page(self, request: Request, template: str, status: int = 200, **context: Any) -> Response:
        user: User | None = request.state.user
        inbox_count = len(self.store.open_checkpoints()) if user is not None else 0
        html = self.env.get_template(template).render(
            user=user,
            csrf=self.auth.csrf_token(user) if user is not None else "",
            open_local=self.auth.open_local,
            inbox_count=inbox_count,
            path=request.url.path,
            **context,
        )
        return HTMLResponse(html, status_code=status)

    def fragment(self, template: str, request: Request, **context: Any) -> Response:
        user: User = request.state.user
        html = self.env.get_template(template).render(
            user=user, csrf=self.auth.csrf_token(user), **context
        )
        return HTMLResponse(html)

    def run_graph(self, view: RunView) -> tuple[Markup | None, str | None]:
        if view.program is None:
            return None, view.program_problem
        return self.graphs.svg(view.program, view.run.workflow, view.overlay)

    # ---- runs ----------------------------------------------------------------------------

    def runs_context(self, request: Request) -> dict[str, Any]:
        return {"view": runs_view(self.store, _filters(request)), "statuses": STATUSES}

    def runs_page(self, request: Request) -> Response:
        return self.page(request, "runs.html", **self.runs_context(request))

    def runs_fragment(self, request: Request) -> Response:
        context = self.runs_context(request)
        if request.query_params.get("fp") == context["view"].fingerprint:
            return Response(status_code=204)
        return self.fragment("_runs_live.html", request, **context)

    def runs_json(self, request: Request) -> Response:
        return JSONResponse(self.runs_context(request)["view"].to_json())

    # ---- one run -------------------------------------------------------------------------

    def run_context(self, run_id: str) -> dict[str, Any]:
        view = run_view(self.store, run_id)
        graph, graph_problem = self.run_graph(view)
        return {"view": view, "graph": graph, "graph_problem": graph_problem, **SHOWN}

    def run_page(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        try:
            context = self.run_context(run_id)
        except RunNotFound:
            return self.not_found(request, f"no run `{run_id}`")
        return self.page(request, "run.html", note=request.query_params.get("note"), **context)

    def run_fragment(self, request: Request) -> Response:
        run_id = request.query_params.get("id", "")
        run = self.store.get_run(run_id)
        if run is None:
            return JSONResponse({"error": f"no run `{run_id}`"}, status_code=404)
        if request.query_params.get("fp") == run_fingerprint(self.store, run):
            return Response(status_code=204)
        return self.fragment("_run_live.html", request, **self.run_context(run_id))

    def run_json(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        try:
            view = run_view(self.store, run_id)
        except RunNotFound:
            return JSONResponse({"error": f"no run `{run_id}`"}, status_code=404)
        return JSONResponse(view.to_json())

    # ---- inbox ---------------------------------------------------------------------------

    def inbox_page(self, request: Request) -> Response:
        return self.page(request, "inbox.html", view=inbox_view(self.store))

    def inbox_fragment(self, request: Request) -> Response:
        view = inbox_view(self.store)
        if request.query_params.get("fp") == view.fingerprint:
            return Response(status_code=204)
        return self.fragment("_inbox_live.html", request, view=view)

    def inbox_json(self, request: Request) -> Response:
        return JSONResponse(inbox_view(self.store).to_json())

    # ---- live parts ----------------------------------------------------------------------

    async def live_stream(self, request: Request) -> Response:
        """GET /events/{runs,run,inbox}: the event stream of a live part, whose query is
        its fragment's; `fp` (or `Last-Event-ID` on reconnection) is what the page shows.
        Async: the hub is only ever touched on the event loop's thread."""
        topic = await run_in_threadpool(self.live_topic, request)
        if isinstance(topic, Response):
            return topic
        shown = request.headers.get("last-event-id") or request.query_params.get("fp", "")
        subscriber = self.live.open(topic, shown)
        if isinstance(subscriber, str):
            return JSONResponse(
                {"error": subscriber}, status_code=503, headers={"retry-after": "5"}
            )
        return StreamingResponse(
            self.live.follow(subscriber),
            media_type="text/event-stream",
            headers={"x-accel-buffering": "no"},  # a proxy must pass events on at once
            # A client gone before the stream started never runs the generator's cleanup.
            background=BackgroundTask(self.live.unsubscribe, subscriber),
        )

    def live_topic(self, request: Request) -> Topic | Response:
        kind = request.path_params["topic"]
        if kind == "runs":
            filters = _filters(request)
            return RunsTopic(filters.status, filters.workflow, filters.workflow_class)
        if kind == "inbox":
            return InboxTopic()
        if kind == "run":
            run_id = request.query_params.get("id", "")
            if self.store.get_run(run_id) is None:
                return JSONResponse({"error": f"no run `{run_id}`"}, status_code=404)
            return RunTopic(run_id)
        return JSONResponse({"error": f"no live part `{kind}`"}, status_code=404)

    # ---- workflows -----------------------------------------------------------------------

    def workflows_page(self, request: Request) -> Response:
        return self.page(request, "workflows.html", workflows=workflow_summaries(self.store))

    def workflows_json(self, request: Request) -> Response:
        return JSONResponse([w.to_json() for w in workflow_summaries(self.store)])

    def workflow_page(self, request: Request) -> Response:
        name = request.path_params["name"]
        view = workflow_view(self.store, name)
        if view is None:
            return self.not_found(request, f"the journal has no runs of workflow `{name}`")
        graph, problem = (None, view.program_problem)
        if view.program is not None:
            graph, problem = self.graphs.svg(view.program, name)
        return self.page(request, "workflow.html", view=view, graph=graph, graph_problem=problem)

    def workflow_json(self, request: Request) -> Response:
        name = request.path_params["name"]
        view = workflow_view(self.store, name)
        if view is None:
            return JSONResponse({"error": f"no runs of workflow `{name}`"}, status_code=404)
        return JSONResponse(view.to_json())

    # ---- metrics -------------------------------------------------------------------------

    def metrics_view(self, request: Request) -> MetricsView:
        return self.metrics.view(self.store, request.query_params.get("period", "7d"))

    def metrics_page(self, request: Request) -> Response:
        view = self.metrics_view(request)
        return self.page(
            request,
            "metrics.html",
            view=view,
            periods=list(PERIODS),
            charts=charts.metric_charts(view),
            cost_parts=charts.COST_PARTS,
            cost_notes=COST_NOTES,
            fault_classes=view.fault_classes,
            zero=ZERO,
        )

    def metrics_json(self, request: Request) -> Response:
        return JSONResponse(self.metrics_view(request).to_json())

    # ---- login ---------------------------------------------------------------------------

    def login_page(self, request: Request) -> Response:
        target = _local_path(request.query_params.get("next"))
        token = request.query_params.get("token")
        if token is not None:  # the link `mnc ui` prints, with its per-start secret
            return self.logged_in(request, token.strip(), target)
        return self.page(request, "login.html", next=target, error=None)

    async def login(self, request: Request) -> Response:
        form = await request.form()
        token = str(form.get("token", "")).strip()
        return self.logged_in(request, token, _local_path(str(form.get("next", ""))))

    def logged_in(self, request: Request, token: str, target: str) -> Response:
        if self.auth.user_of(token) is None:
            return self.page(
                request, "login.html", status=401, next=target, error="that token is not valid"
            )
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return response

    async def logout(self, request: Request) -> Response:
        try:
            await self.checked_form(request)
        except ActionRefused as e:
            return self.refused(request, e, "")
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    # ---- actions -------------------------------------------------------------------------

    async def checked_form(self, request: Request) -> dict[str, str]:
        """The POSTed form, once its CSRF token is found good; `ActionRefused` if not."""
        form = await request.form()
        fields = {k: str(v) for k, v in form.items()}
        user: User = request.state.user
        given = request.headers.get(CSRF_HEADER) or fields.get(CSRF_FIELD)
        if not self.auth.csrf_ok(user, given):
            raise ActionRefused(403, "the form's CSRF token is missing or stale: reload the page")
        return fields

    async def act(self, request: Request) -> Response:
        """POST /actions/{name}: decide, signal, cancel, resume, retry or fork a run."""
        name = request.path_params["name"]
        run_id = ""
        try:
            fields = await self.checked_form(request)
            run_id = fields.get("run", "")
            message = await run_in_threadpool(self._act, name, request.state.user, fields)
        except ActionRefused as e:
            return self.refused(request, e, run_id)
        except StoreError as e:
            return self.refused(request, ActionRefused(503, e.message), run_id)
        if _wants_json(request):
            return JSONResponse({"ok": True, "run": run_id, "message": message})
        if request.headers.get("hx-request"):
            if fields.get("back") == "inbox":
                view = inbox_view(self.store)
                return self.fragment("_inbox_live.html", request, view=view, note=message)
            context = self.run_context(run_id)
            return self.fragment("_run_live.html", request, note=message, **context)
        back = "/inbox" if fields.get("back") == "inbox" else f"/runs/{_q(run_id)}"
        return RedirectResponse(f"{back}?note={_q(message)}", status_code=303)

    def _act(self, name: str, user: User, fields: dict[str, str]) -> str:
        run_id = fields.get("run", "")
        store = self.store
        if name == "decide":
            message = actions.decide(
                store,
                user,
                run_id,
                fields.get("checkpoint", ""),
                fields.get("choice", ""),
                fields.get("comment", ""),
                fields.get("result", ""),
            )
        elif name == "signal":
            message = actions.signal(
                store,
                user,
                run_id,
                fields.get("event", ""),
                fields.get("payload", ""),
                fields.get("signal_id", ""),
                fields.get("key", ""),
            )
        elif name == "cancel":
            message = actions.cancel(store, user, run_id)
        elif name == "resume":
            message = actions.check_resumable(store, user, run_id)
        elif name == "retry":
            message = actions.retry(store, user, run_id)
        elif name == "fork":
            return actions.fork(
                store, user, run_id, fields.get("from", ""), fields.get("live_effects") == "1"
            )
        else:
            raise ActionRefused(404, f"no action `{name}`")
        if self.executor.resume(run_id):
            message += "; the run is resuming"
        elif name == "resume":
            message = "this console does not execute runs (--no-execute): a worker will"
        return message

    def refused(self, request: Request, error: ActionRefused, run_id: str) -> Response:
        if _wants_json(request) or not request.headers.get("hx-request"):
            return JSONResponse({"error": error.message, "run": run_id}, status_code=error.status)
        html = self.env.get_template("_flash.html").render(error=error.message)
        return HTMLResponse(
            html,
            status_code=error.status,
            headers={"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"},
        )

    def not_found(self, request: Request, message: str) -> Response:
        return self.page(request, "error.html", status=404, message=message)

    def me_json(self, request: Request) -> Response:
        user: User = request.state.user
        return JSONResponse({"user": user.name, "admin": user.admin})


def _filters(request: Request) -> RunFilters:
    params = request.query_params
    status = params.get("status") or None
    return RunFilters(
        status=cast(RunStatus, status) if status in STATUSES else None,
        workflow=params.get("workflow") or None,
        workflow_class=params.get("class") or None,
    )


def _q(text: str) -> str:
    return quote(text, safe="")


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def _local_path(target: str | None) -> str:
    """A redirect target on this site only (`/x`, never `//host` or `https://host`)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/runs"
    return target


def create_app(
    store: Store,
    auth: Authenticator,
    *,
    execute: bool = True,
) -> Starlette:
    """The console over `store`. With `execute`, decided, signalled and cancelled runs are
    resumed in this process; without it they are left to `mnc worker`."""
    console = Console(store, auth, Executor(store, enabled=execute))

    def home(request: Request) -> Response:
        return RedirectResponse("/runs", status_code=303)

    routes = [
        Route("/", home),
        Route("/runs", console.runs_page),
        Route("/runs/{run_id:path}", console.run_page),
        Route("/inbox", console.inbox_page),
        Route("/workflows", console.workflows_page),
        Route("/workflows/{name}", console.workflow_page),
        Route("/product-metrics", console.metrics_page),
        Route("/fragments/runs", console.runs_fragment),
        Route("/fragments/run", console.run_fragment),
        Route("/fragments/inbox", console.inbox_fragment),
        Route("/events/{topic}", console.live_stream),
        Route("/api/me", console.me_json),
        Route("/api/runs", console.runs_json),
        Route("/api/runs/{run_id:path}", console.run_json),
        Route("/api/inbox", console.inbox_json),
        Route("/api/workflows", console.workflows_json),
        Route("/api/workflows/{name}", console.workflow_json),
        Route("/api/metrics", console.metrics_json),
        Route("/login", console.login_page, methods=["GET"]),
        Route("/login", console.login, methods=["POST"]),
        Route("/logout", console.logout, methods=["POST"]),
        Route("/actions/{name}", console.act, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        console.live.close()
        await run_in_threadpool(console.executor.shutdown)

    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders), Middleware(AuthMiddleware, auth=auth)],
        lifespan=lifespan,
    )
    app.state.console = console
    return app
