"""Webhooks in `mnc serve`: the outbox's delivery routes of `/api/v1`, the delivery loop
beside the server, and the inbound webhook paths of `[inbound.NAME]`.

An inbound webhook is verified over its raw bytes before anything is parsed (a tampered
body is 401 and nothing is journaled), then turned into a signal through the ordinary
signal path (`mnlang.runtime.signals.send`, with the correlation key read from the body),
and answered 2xx only once the signal is committed. The signal's id is
`inbound:NAME:DELIVERY_ID`: a sender that repeats a delivery (because our answer was
lost, or by design) is answered 200 and ignored, and a kill -9 between the commit and the
answer leaves one signal that the repeat finds.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mnlang.jsonin import JSONInputError, decode_json
from mnlang.outbox.config import Inbound, Webhook
from mnlang.outbox.delivery import event_object
from mnlang.outbox.signing import BadSignature, verify_github, verify_stripe
from mnlang.runtime.run import RunError
from mnlang.server import webhook_models as w
from mnlang.stores.base import (
    TERMINAL_STATUSES,
    Delivery,
    RunNotFound,
    StoreError,
)

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from mnlang.server.app import Api

PREFIX = "/api/v1"
_DELIVERY_STATUSES = ("pending", "delivered", "failed")


def delivery_out(delivery: Delivery) -> w.DeliveryOut:
    event = delivery.event
    return w.DeliveryOut(
        event_id=event.event_id,
        type=event.type,
        run_id=event.run_id,
        workflow=event.workflow,
        webhook=delivery.sink,
        status=delivery.status,
        attempts=delivery.attempts,
        next_at=delivery.next_at if delivery.status == "pending" else None,
        created_at=event.created_at,
        attempt_log=[
            w.AttemptOut(attempt=a.attempt, at=a.at, status_code=a.status_code, error=a.error)
            for a in delivery.attempt_log
        ],
        event=event_object(event),
    )


class Deliveries:
    """`/api/v1/deliveries`, `/api/v1/runs/{run_id}/deliveries`, `/api/v1/webhooks`."""

    def __init__(self, api: Api, webhooks: Mapping[str, Webhook]) -> None:
        self.api = api
        self.webhooks = webhooks

    async def listed(self, request: Request) -> Response:
        from mnlang.server.app import ApiError, _int_param, _json

        self.api.user(request)
        run_id = request.path_params.get("run_id") or request.query_params.get("run_id")
        status = request.query_params.get("status") or None
        if status is not None and status not in _DELIVERY_STATUSES:
            raise ApiError("invalid_request", "invalid_parameter", f"no delivery status `{status}`")
        limit = _int_param(request, "limit", 100, 1, 1000)

        def read() -> w.DeliveryList:
            if request.path_params.get("run_id"):
                self.api.record(request.path_params["run_id"])
            found = self.api.store.list_deliveries(run_id=run_id, status=status, limit=limit)
            return w.DeliveryList(deliveries=[delivery_out(d) for d in found])

        return _json(await run_in_threadpool(read))

    async def redeliver(self, request: Request) -> Response:
        from mnlang.server.app import ApiError, _json

        body = await self.api.body(request, w.Redeliver)

        def again() -> w.DeliveryOut:
            def found() -> Delivery | None:
                listed = self.api.store.list_deliveries(event_id=body.event_id, limit=1000)
                return next((d for d in listed if d.sink == body.webhook), None)

            before = found()
            if before is None:
                raise ApiError(
                    "not_found",
                    "delivery_not_found",
                    f"no delivery of `{body.event_id}` to `{body.webhook}`",
                )
            self.api.may_act(request, before.event.workflow)
            self.api.store.redeliver(body.event_id, body.webhook)
            return delivery_out(found() or before)

        return _json(await run_in_threadpool(again), 202)

    async def list_webhooks(self, request: Request) -> Response:
        from mnlang.server.app import _json

        self.api.user(request)
        return _json(
            w.WebhookList(
                webhooks=[
                    w.WebhookOut(
                        name=h.name,
                        url=h.url,
                        events=list(h.events),
                        workflows=list(h.workflows) if h.workflows is not None else None,
                        signed=h.secret_env is not None,
                    )
                    for h in self.webhooks.values()
                ]
            )
        )

    def routes(self) -> list[Route]:
        r = self.api.route
        return [
            Route(f"{PREFIX}/deliveries", r(self.listed), methods=["GET"]),
            Route(f"{PREFIX}/deliveries/redeliver", r(self.redeliver), methods=["POST"]),
            Route(f"{PREFIX}/runs/{{run_id}}/deliveries", r(self.listed), methods=["GET"]),
            Route(f"{PREFIX}/webhooks", r(self.list_webhooks), methods=["GET"]),
        ]


# ---- webhooks in -------------------------------------------------------------------------


def json_path(value: Any, path: str) -> Any:
    """The value at a JSON path of the dotted form `$.a.b[0].c` (`None` when absent)."""
    rest = path[1:]
    while rest:
        if rest.startswith("."):
            rest = rest[1:]
            name = ""
            while rest and rest[0] not in ".[":
                name, rest = name + rest[0], rest[1:]
            value = value.get(name) if isinstance(value, dict) else None
        elif rest.startswith("["):
            index, _, rest = rest[1:].partition("]")
            ok = isinstance(value, list) and index.isdigit() and int(index) < len(value)
            value = value[int(index)] if ok else None
        else:
            return None
    return value


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _answer(status: int, code: str, message: str, **more: Any) -> Response:
    return JSONResponse({"code": code, "message": message, **more}, status_code=status)


class Receiver:
    """One `[inbound.NAME]` path."""

    def __init__(self, api: Api, inbound: Inbound) -> None:
        self.api = api
        self.inbound = inbound

    async def receive(self, request: Request) -> Response:
        from mnlang.server.app import MAX_BODY

        hook = self.inbound
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return _answer(413, "body_too_large", f"the body exceeds {MAX_BODY} bytes")
        secret = os.environ.get(hook.secret_env)
        if not secret:
            return _answer(503, "not_configured", f"{hook.secret_env} is not set on the server")
        try:
            if hook.verify == "github":
                verify_github(secret.encode(), raw, request.headers.get("x-hub-signature-256"))
            else:
                verify_stripe(
                    secret.encode(), raw, request.headers.get("stripe-signature"), time.time()
                )
        except BadSignature as e:
            return _answer(401, "bad_signature", str(e))
        try:
            body = decode_json(raw, "the body", max_bytes=MAX_BODY)
        except JSONInputError as e:
            return _answer(400, "invalid_body", e.message)
        source = hook.id_source
        delivery_id = (
            _text(json_path(body, source))
            if source.startswith("$")
            else request.headers.get(source) or None
        )
        if delivery_id is None:
            return _answer(400, "no_delivery_id", f"no delivery id at `{source}`")
        key = _text(json_path(body, hook.key)) if hook.key is not None else None
        run_id = _text(json_path(body, hook.run)) if hook.run is not None else None
        if hook.key is not None and key is None:
            return _answer(400, "no_key", f"no correlation key at `{hook.key}`")
        if hook.run is not None and run_id is None:
            return _answer(400, "no_run", f"no run id at `{hook.run}`")
        payload = json_path(body, hook.payload) if hook.payload is not None else body
        signal_id = f"inbound:{hook.name}:{delivery_id}"
        try:
            status, answer, wake = await run_in_threadpool(
                self._signal, signal_id, run_id, key, payload
            )
        except StoreError as e:
            return _answer(503, "store_unavailable", e.message)
        for target in wake:
            self.api.executor.resume(target)
        return JSONResponse({**answer, "delivery_id": delivery_id}, status_code=status)

    def _signal(
        self, signal_id: str, run_id: str | None, key: str | None, payload: Any
    ) -> tuple[int, dict[str, Any], list[str]]:
        from mnlang.runtime import signals

        store, hook = self.api.store, self.inbound
        seen = store.signal_holders(signal_id)
        targets = [run_id] if run_id is not None else self._waiting(key)
        targets = [t for t in targets if t not in seen]
        if not targets:
            if seen:
                return 200, {"code": "duplicate", "ignored": True, "runs": seen}, []
            return (
                404,
                {"code": "no_run", "message": f"no run waits for `{hook.event}` with key `{key}`"},
                [],
            )
        accepted: list[str] = []
        wake: list[str] = []
        for target in targets:
            record = store.get_run(target, args=False)
            if record is None:
                return 404, {"code": "no_run", "message": f"no run `{target}`"}, wake
            if record.status in TERMINAL_STATUSES:
                # Nothing could ever take it: a 2xx, or the sender retries for days.
                message = f"run `{target}` has ended ({record.status})"
                return 200, {"code": "run_ended", "ignored": True, "message": message}, wake
            try:
                delivered = signals.send(
                    store,
                    target,
                    hook.event,
                    payload,
                    signal_id=signal_id,
                    key=key,
                    by=f"inbound:{hook.name}",
                )
            except RunNotFound:
                return 404, {"code": "no_run", "message": f"no run `{target}`"}, wake
            except RunError as e:
                return 422, {"code": "signal_refused", "message": e.message}, wake
            if delivered.accepted:
                accepted.append(target)
                if delivered.waiting:
                    wake.append(target)
        if not accepted:
            return 200, {"code": "duplicate", "ignored": True, "runs": seen + targets}, []
        return 200, {"code": "received", "ignored": False, "runs": accepted}, wake

    def _waiting(self, key: str | None) -> list[str]:
        """The runs waiting now for the event with this key (found through the journal's
        index of keyed waits: the configuration makes `key` required without `run`)."""
        if key is None:
            return []
        event = self.inbound.event.rsplit(".", 1)[-1]
        found = self.api.store.waiting_for_key(key)
        return list(dict.fromkeys(r for r, name in found if name.rsplit(".", 1)[-1] == event))


# ---- installing it all -------------------------------------------------------------------


def install(
    app: Starlette,
    api: Api,
    webhooks: Mapping[str, Webhook],
    inbound: Mapping[str, Inbound],
) -> None:
    """Add the delivery routes and the inbound paths to `app`, and run the delivery loop
    beside it while it serves (when there is a webhook to deliver to)."""
    deliveries = Deliveries(api, webhooks)
    routes: list[Route] = deliveries.routes()
    for hook in inbound.values():
        routes.append(Route(hook.path, Receiver(api, hook).receive, methods=["POST"]))
    app.router.routes[:0] = routes
    if not webhooks:
        return
    inner: Callable[[Any], Any] = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        from mnlang.outbox.delivery import DeliveryLoop

        loop = DeliveryLoop(api.store, webhooks)
        thread, stop = loop.start()
        try:
            async with inner(app):
                yield
        finally:
            stop.set()
            await run_in_threadpool(thread.join, 10)

    app.router.lifespan_context = lifespan
