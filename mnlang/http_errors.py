"""The error kinds of HTTP client libraries' exceptions, told by class name.

A tool that lets `httpx.ConnectError` or a 503 `requests.HTTPError` escape should be
retried by `standard_retry` (`on: [timeout, transient]`) like one that raised
`Transient`. The libraries are recognised by the module their exception classes live
in (`httpx`, `httpx2`, `requests`, `aiohttp`, `urllib3`) and the class names along the
exception's MRO, so none of them is ever imported here:

- connection errors (refused, reset, DNS, protocol breaks) -> `transient`;
- connect, read, write and pool timeouts -> `timeout`;
- an HTTP status error: 408, 429 and 5xx -> `transient`, other 4xx -> `tool_error`.

urllib3's `MaxRetryError` is judged by its `reason`. Anything else: None (the caller
decides).
"""

from __future__ import annotations

from typing import Final

LIBRARIES: Final = frozenset({"httpx", "httpx2", "requests", "aiohttp", "urllib3"})

_TIMEOUT: Final = "timeout"
_TRANSIENT: Final = "transient"
_TOOL_ERROR: Final = "tool_error"

_BY_NAME: Final[dict[str, str]] = {
    # httpx / httpx2
    "ConnectTimeout": _TIMEOUT,
    "ReadTimeout": _TIMEOUT,
    "WriteTimeout": _TIMEOUT,
    "PoolTimeout": _TIMEOUT,
    "TimeoutException": _TIMEOUT,
    "ConnectError": _TRANSIENT,
    "ReadError": _TRANSIENT,
    "WriteError": _TRANSIENT,
    "CloseError": _TRANSIENT,
    "RemoteProtocolError": _TRANSIENT,
    "NetworkError": _TRANSIENT,
    "ProxyError": _TRANSIENT,
    # requests
    "Timeout": _TIMEOUT,
    "ConnectionError": _TRANSIENT,
    "ChunkedEncodingError": _TRANSIENT,
    # aiohttp
    "ServerTimeoutError": _TIMEOUT,
    "ConnectionTimeoutError": _TIMEOUT,
    "SocketTimeoutError": _TIMEOUT,
    "ClientConnectionError": _TRANSIENT,
    "ClientConnectorError": _TRANSIENT,
    "ServerDisconnectedError": _TRANSIENT,
    "ClientPayloadError": _TRANSIENT,
    # urllib3
    "ConnectTimeoutError": _TIMEOUT,
    "ReadTimeoutError": _TIMEOUT,
    "TimeoutError": _TIMEOUT,
    "NewConnectionError": _TRANSIENT,
    "NameResolutionError": _TRANSIENT,
    "ProtocolError": _TRANSIENT,
}
_STATUS_ERRORS: Final = frozenset({"HTTPStatusError", "HTTPError", "ClientResponseError"})


def _library(cls: type) -> str | None:
    root = cls.__module__.split(".", 1)[0]
    return root if root in LIBRARIES else None


def status_kind(status: int) -> str:
    """The kind of an HTTP error status: 408, 429 and 5xx may pass, other 4xx will not."""
    if status in (408, 429) or 500 <= status <= 599:
        return _TRANSIENT
    return _TOOL_ERROR


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    for source in (response, exc):
        for field in ("status_code", "status"):
            value = getattr(source, field, None)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    return None


def library_kind(exc: BaseException, _depth: int = 0) -> str | None:
    """The kind of an HTTP library's exception; None for any other exception."""
    if _library(type(exc)) is None:
        return None
    for cls in type(exc).__mro__:
        if _library(cls) is None:
            continue
        name = cls.__name__
        if name == "MaxRetryError":
            reason = getattr(exc, "reason", None)
            if isinstance(reason, BaseException) and _depth < 3:
                return library_kind(reason, _depth + 1) or _TRANSIENT
            return _TRANSIENT
        if name in _STATUS_ERRORS:
            status = _status(exc)
            if status is not None:
                return status_kind(status)
        found = _BY_NAME.get(name)
        if found is not None:
            return found
    return None
