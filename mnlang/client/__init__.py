"""A typed Python client of `mnc serve`'s API (docs/api.md), sync (`Client`) and async
(`AsyncClient`), over httpx2. Every error answer raises an `ApiError` subclass named for
its type, carrying the answer's `code`, `message`, `help` and `details`.

    from mnlang.client import Client, RunConflict

    with Client("http://127.0.0.1:8737", token="...") as api:
        run = api.start_run("order", {"id": "o-1", "amount": "240.00"}, run_id="o-1")
        api.approve(run["run_id"], "review")
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self, TypedDict, cast

import httpx2

__all__ = [
    "ApiError",
    "AsyncClient",
    "AuthenticationError",
    "Client",
    "Conflict",
    "InvalidRequest",
    "NotFound",
    "PermissionDenied",
    "RunConflict",
    "Unavailable",
]


class ApiError(Exception):
    """An error answer of the API."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        help: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.help = help
        self.details = details or {}


class InvalidRequest(ApiError):
    """400/413/422: the request does not fit (a bad body, input, program)."""


class AuthenticationError(ApiError):
    """401: no valid token."""


class PermissionDenied(ApiError):
    """403: the token's role or workflow scope does not allow it."""


class NotFound(ApiError):
    """404: no such run, checkpoint, program or workflow."""


class Conflict(ApiError):
    """409: the journal's state refuses it (a decided checkpoint, an ended run)."""


class RunConflict(Conflict):
    """409 `run_conflict`: the run id exists with other input; `details` has both."""


class Unavailable(ApiError):
    """503: the server cannot reach its journal store."""


_BY_TYPE: dict[str, type[ApiError]] = {
    "invalid_request": InvalidRequest,
    "authentication": AuthenticationError,
    "permission": PermissionDenied,
    "not_found": NotFound,
    "conflict": Conflict,
    "unavailable": Unavailable,
}


class Run(TypedDict, total=False):
    run_id: str
    workflow: str
    workflow_class: str
    status: str
    input: Any
    result: Any
    error: Any
    parent_run_id: str | None
    ir_hash: str
    cancel_requested: bool
    cancel_requested_by: str | None
    created_at: float
    updated_at: float
    finished_at: float | None
    started_by: str | None
    created: bool | None
    positions: list[dict[str, Any]] | None
    pending: dict[str, Any] | None


class RunPage(TypedDict):
    runs: list[Run]
    next_cursor: str | None


class SignalResult(TypedDict):
    run_id: str
    event: str
    key: str | None
    signal_id: str | None
    accepted: bool
    waiting: bool


class DecisionResult(TypedDict):
    run_id: str
    checkpoint: str
    checkpoint_id: str
    choice: str
    by: str


def _raise_for(response: httpx2.Response) -> None:
    if response.is_success:
        return
    try:
        error = response.json()["error"]
        kind, code = str(error["type"]), str(error["code"])
        message, help, details = str(error["message"]), error.get("help"), error.get("details")
    except (ValueError, KeyError, TypeError):
        raise ApiError(response.status_code, "http_error", response.text[:500]) from None
    cls = RunConflict if code == "run_conflict" else _BY_TYPE.get(kind, ApiError)
    raise cls(response.status_code, code, message, help, details)


def _headers(token: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"} if token else {}


def _drop_none(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}


class _Requests:
    """The requests of each method, shared by both clients."""

    @staticmethod
    def start(
        workflow: str, input: dict[str, Any] | None, run_id: str | None, ir_hash: str | None
    ) -> dict[str, Any]:
        return _drop_none(
            {"workflow": workflow, "input": input or {}, "run_id": run_id, "ir_hash": ir_hash}
        )

    @staticmethod
    def signal(
        event: str | None, payload: Any, key: str | None, token: str | None, signal_id: str | None
    ) -> dict[str, Any]:
        return _drop_none({"event": event, "key": key, "token": token, "signal_id": signal_id}) | {
            "payload": payload
        }

    @staticmethod
    def decision(
        run_id: str, checkpoint: str, choice: str, comment: str | None, result: Any
    ) -> tuple[str, dict[str, Any]]:
        path = f"/runs/{_seg(run_id)}/checkpoints/{_seg(checkpoint)}/decision"
        return path, _drop_none({"choice": choice, "comment": comment, "result": result})

    @staticmethod
    def runs_query(**filters: Any) -> dict[str, Any]:
        return {
            ("class" if k == "workflow_class" else k): v
            for k, v in filters.items()
            if v is not None
        }


class Client:
    """The synchronous client."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 30.0) -> None:
        self._http = httpx2.Client(
            base_url=url.rstrip("/") + "/api/v1", headers=_headers(token), timeout=timeout
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        response = self._http.request(method, path, **kw)
        _raise_for(response)
        return response.json()

    def register_program(
        self,
        *,
        source: str | None = None,
        path: str | None = None,
        ir: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        body = _drop_none({"source": source, "path": path, "ir": ir})
        return dict(self._call("POST", "/programs", json=body))

    def workflows(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/workflows")["workflows"])

    def start_run(
        self,
        workflow: str,
        input: dict[str, Any] | None = None,
        *,
        run_id: str | None = None,
        ir_hash: str | None = None,
    ) -> Run:
        body = _Requests.start(workflow, input, run_id, ir_hash)
        return cast(Run, self._call("POST", "/runs", json=body))

    def get_run(self, run_id: str) -> Run:
        return cast(Run, self._call("GET", f"/runs/{_seg(run_id)}"))

    def list_runs(
        self,
        *,
        status: str | None = None,
        workflow: str | None = None,
        workflow_class: str | None = None,
        since: float | None = None,
        until: float | None = None,
        q: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> RunPage:
        params = _Requests.runs_query(
            status=status,
            workflow=workflow,
            workflow_class=workflow_class,
            since=since,
            until=until,
            q=q,
            cursor=cursor,
            limit=limit,
        )
        return cast(RunPage, self._call("GET", "/runs", params=params))

    def journal(self, run_id: str, *, after: int = 0, limit: int = 100) -> dict[str, Any]:
        params = {"after": after, "limit": limit}
        return dict(self._call("GET", f"/runs/{_seg(run_id)}/journal", params=params))

    def signal(
        self,
        run_id: str,
        event: str,
        payload: Any = None,
        *,
        key: str | None = None,
        signal_id: str | None = None,
    ) -> SignalResult:
        body = _Requests.signal(event, payload, key, None, signal_id)
        return cast(SignalResult, self._call("POST", f"/runs/{_seg(run_id)}/signals", json=body))

    def signal_token(
        self, token: str, payload: Any = None, *, signal_id: str | None = None
    ) -> SignalResult:
        body = _Requests.signal(None, payload, None, token, signal_id)
        return cast(SignalResult, self._call("POST", "/signals", json=body))

    def decide(
        self,
        run_id: str,
        checkpoint: str,
        choice: str,
        *,
        comment: str | None = None,
        result: Any = None,
    ) -> DecisionResult:
        path, body = _Requests.decision(run_id, checkpoint, choice, comment, result)
        return cast(DecisionResult, self._call("POST", path, json=body))

    def approve(
        self, run_id: str, checkpoint: str, *, comment: str | None = None
    ) -> DecisionResult:
        return self.decide(run_id, checkpoint, "approve", comment=comment)

    def reject(self, run_id: str, checkpoint: str, *, comment: str | None = None) -> DecisionResult:
        return self.decide(run_id, checkpoint, "reject", comment=comment)

    def cancel(self, run_id: str) -> dict[str, Any]:
        return dict(self._call("POST", f"/runs/{_seg(run_id)}/cancel"))

    def retry(self, run_id: str) -> dict[str, Any]:
        """Retry a failed run in place; a `Conflict` (`not_retryable`) says why not."""
        return dict(self._call("POST", f"/runs/{_seg(run_id)}/retry", json={}))

    def fork(
        self,
        run_id: str,
        from_step: str,
        *,
        live_effects: bool = False,
        new_run_id: str | None = None,
    ) -> dict[str, Any]:
        """Fork a run from a step (a state id or a line) into a new run."""
        body = _fork_body(from_step, live_effects, new_run_id)
        return dict(self._call("POST", f"/runs/{_seg(run_id)}/fork", json=body))

    def bulk_retry(self, filter: dict[str, Any], *, limit: int = 1000) -> dict[str, Any]:
        """Retry the failed runs matching `filter` (`workflow`, `workflow_class`,
        `since`, `until`, `q`); the answer lists each run's outcome."""
        body = {"filter": filter, "limit": limit}
        return dict(self._call("POST", "/bulk/retry", json=body))


class AsyncClient:
    """The asynchronous client: the same methods as `Client`, awaited."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 30.0) -> None:
        self._http = httpx2.AsyncClient(
            base_url=url.rstrip("/") + "/api/v1", headers=_headers(token), timeout=timeout
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, **kw: Any) -> Any:
        response = await self._http.request(method, path, **kw)
        _raise_for(response)
        return response.json()

    async def start_run(
        self,
        workflow: str,
        input: dict[str, Any] | None = None,
        *,
        run_id: str | None = None,
        ir_hash: str | None = None,
    ) -> Run:
        body = _Requests.start(workflow, input, run_id, ir_hash)
        return cast(Run, await self._call("POST", "/runs", json=body))

    async def get_run(self, run_id: str) -> Run:
        return cast(Run, await self._call("GET", f"/runs/{_seg(run_id)}"))

    async def list_runs(self, **filters: Any) -> RunPage:
        return cast(
            RunPage, await self._call("GET", "/runs", params=_Requests.runs_query(**filters))
        )

    async def signal(
        self,
        run_id: str,
        event: str,
        payload: Any = None,
        *,
        key: str | None = None,
        signal_id: str | None = None,
    ) -> SignalResult:
        body = _Requests.signal(event, payload, key, None, signal_id)
        return cast(
            SignalResult, await self._call("POST", f"/runs/{_seg(run_id)}/signals", json=body)
        )

    async def signal_token(
        self, token: str, payload: Any = None, *, signal_id: str | None = None
    ) -> SignalResult:
        body = _Requests.signal(None, payload, None, token, signal_id)
        return cast(SignalResult, await self._call("POST", "/signals", json=body))

    async def decide(
        self,
        run_id: str,
        checkpoint: str,
        choice: str,
        *,
        comment: str | None = None,
        result: Any = None,
    ) -> DecisionResult:
        path, body = _Requests.decision(run_id, checkpoint, choice, comment, result)
        return cast(DecisionResult, await self._call("POST", path, json=body))

    async def approve(
        self, run_id: str, checkpoint: str, *, comment: str | None = None
    ) -> DecisionResult:
        return await self.decide(run_id, checkpoint, "approve", comment=comment)

    async def reject(
        self, run_id: str, checkpoint: str, *, comment: str | None = None
    ) -> DecisionResult:
        return await self.decide(run_id, checkpoint, "reject", comment=comment)

    async def cancel(self, run_id: str) -> dict[str, Any]:
        return dict(await self._call("POST", f"/runs/{_seg(run_id)}/cancel"))

    async def retry(self, run_id: str) -> dict[str, Any]:
        return dict(await self._call("POST", f"/runs/{_seg(run_id)}/retry", json={}))

    async def fork(
        self,
        run_id: str,
        from_step: str,
        *,
        live_effects: bool = False,
        new_run_id: str | None = None,
    ) -> dict[str, Any]:
        body = _fork_body(from_step, live_effects, new_run_id)
        return dict(await self._call("POST", f"/runs/{_seg(run_id)}/fork", json=body))

    async def bulk_retry(self, filter: dict[str, Any], *, limit: int = 1000) -> dict[str, Any]:
        body = {"filter": filter, "limit": limit}
        return dict(await self._call("POST", "/bulk/retry", json=body))


def _fork_body(from_step: str, live_effects: bool, new_run_id: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"from": from_step, "live_effects": live_effects}
    if new_run_id is not None:
        body["run_id"] = new_run_id
    return body


def _seg(text: str) -> str:
    """A path segment, escaped."""
    from urllib.parse import quote

    return quote(text, safe="")
