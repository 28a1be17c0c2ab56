"""`std.http`: `http_get` (a tool) and `http_post` (a keyed effect), over httpx2.

Failures are mapped to error kinds: a connection error, a 5xx, a 408 and a 429 are
`transient` (a retry may succeed); any other 4xx is a `tool_error` (the request itself
is wrong); no answer within `TIMEOUT_S` is a `timeout`. Redirects are followed. The
POST sends the effect's wire key (`ToolContext.wire_key`: unique to the run for a
`scope: run` key) as the `Idempotency-Key` header. Both send the attempt's W3C trace
context (`ToolContext.traceparent`) as the `traceparent` header, so the receiving
service's spans are children of the attempt's span (docs/observability.md); a
`traceparent` given in `headers` wins.
"""

from __future__ import annotations

from typing import Any

import httpx2

from mnlang.errors import Timeout, ToolError, Transient

TIMEOUT_S = 30.0
"""Matches the declarations' `timeout: 30s`: the request gives up as the step does."""
_RETRYABLE_4XX = (408, 429)
_SHOWN_BODY = 200


def _client() -> httpx2.Client:
    return httpx2.Client(timeout=TIMEOUT_S, follow_redirects=True)


def _send(method: str, url: str, headers: dict[str, str], **content: Any) -> dict[str, Any]:
    try:
        with _client() as client:
            response = client.request(method, url, headers=headers, **content)
    except httpx2.TimeoutException:
        raise Timeout(f"{method} {url}: no answer within {TIMEOUT_S:g}s") from None
    except httpx2.InvalidURL as e:
        raise ToolError(f"{method} {url}: not a valid URL ({e})") from None
    except httpx2.UnsupportedProtocol as e:
        raise ToolError(f"{method} {url}: {e}") from None
    except httpx2.TransportError as e:
        raise Transient(f"{method} {url}: {e or type(e).__name__}") from None
    status = response.status_code
    if status >= 500 or status in _RETRYABLE_4XX:
        raise Transient(f"{method} {url}: {status} {_excerpt(response)}")
    if status >= 400:
        raise ToolError(f"{method} {url}: {status} {_excerpt(response)}")
    return _answer(response)


def _excerpt(response: httpx2.Response) -> str:
    text = " ".join(response.text.split())
    reason = response.reason_phrase
    if not text:
        return reason
    shown = text if len(text) <= _SHOWN_BODY else text[: _SHOWN_BODY - 3] + "..."
    return f"{reason}: {shown}"


def _answer(response: httpx2.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        data = None
    return {
        "status": response.status_code,
        "headers": {name.lower(): value for name, value in response.headers.items()},
        "body": response.text,
        "data": data,
    }


def _headers(lines: list[str], method: str, url: str) -> dict[str, str]:
    """Request headers from `"Name: value"` lines."""
    out: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise ToolError(f'{method} {url}: a header is written "Name: value", not {line!r}')
        out[name.strip()] = value.strip()
    return out


def _traced(sent: dict[str, str], ctx: Any) -> dict[str, str]:
    """The headers with the attempt's `traceparent`, unless one was given (any case)."""
    traceparent = getattr(ctx, "traceparent", None)
    if traceparent and not any(name.lower() == "traceparent" for name in sent):
        sent["traceparent"] = traceparent
    return sent


def http_get(url: str, headers: list[str], *, ctx: Any = None) -> dict[str, Any]:
    return _send("GET", url, _traced(_headers(headers, "GET", url), ctx))


def http_post(
    url: str, body: Any, key: str, headers: list[str], *, ctx: Any = None
) -> dict[str, Any]:
    sent = _traced(_headers(headers, "POST", url), ctx)
    sent.setdefault("Idempotency-Key", getattr(ctx, "wire_key", None) or key)
    return _send("POST", url, sent, json=body)
