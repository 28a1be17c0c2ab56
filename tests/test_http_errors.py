"""Exceptions of HTTP client libraries keep their meaning (mnlang.http_errors): connection
errors and 408/429/5xx are `transient`, timeouts `timeout`, other 4xx `tool_error`, told
by class name without importing the libraries; the journal, `mnc show` and `mnc log`
keep the exception's class and a trimmed traceback; a `KeyError` says which key."""

from __future__ import annotations

import asyncio
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx2
import pytest
from click.testing import CliRunner
from test_runtime import RECORDER, Program

from mnlang.cli import main
from mnlang.errors import kind_of
from mnlang.http_errors import library_kind, status_kind

# --- real httpx2 exceptions --------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def raised(call: Any) -> BaseException:
    try:
        call()
    except Exception as e:
        return e
    raise AssertionError("no exception")


def test_real_httpx2_connection_error_and_read_timeout(silent_server: str) -> None:
    refused = raised(lambda: httpx2.get(f"http://127.0.0.1:{closed_port()}/", timeout=2))
    assert type(refused).__name__ == "ConnectError" and kind_of(refused) == "transient"
    slow = raised(lambda: httpx2.get(silent_server, timeout=0.2))
    assert type(slow).__name__ == "ReadTimeout" and kind_of(slow) == "timeout"


@pytest.mark.parametrize(
    ("status", "kind"),
    [(503, "transient"), (500, "transient"), (429, "transient"), (408, "transient"),
     (404, "tool_error"), (400, "tool_error"), (401, "tool_error")],
)  # fmt: skip
def test_real_httpx2_status_errors(status: int, kind: str) -> None:
    request = httpx2.Request("GET", "http://example.test/")
    error = raised(httpx2.Response(status, request=request).raise_for_status)
    assert type(error).__name__ == "HTTPStatusError"
    assert kind_of(error) == kind == status_kind(status)


# --- requests, urllib3, aiohttp, httpx: their class hierarchies, by name -----------------------
# The libraries are not installed here; these classes have the names, modules and bases
# of the real ones (requests 2.32, urllib3 2.x, aiohttp 3.x, httpx 0.28), which is all
# the mapping looks at.


def module(name: str, source: str) -> ModuleType:
    found = ModuleType(name)
    found.__dict__["asyncio"] = asyncio
    exec(compile(source, name, "exec"), found.__dict__)
    return found


REQUESTS = module(
    "requests.exceptions",
    """
class RequestException(IOError):
    def __init__(self, *args, response=None):
        super().__init__(*args)
        self.response = response
class HTTPError(RequestException): pass
class ConnectionError(RequestException): pass
class ProxyError(ConnectionError): pass
class SSLError(ConnectionError): pass
class Timeout(RequestException): pass
class ConnectTimeout(ConnectionError, Timeout): pass
class ReadTimeout(Timeout): pass
class ChunkedEncodingError(RequestException): pass
class InvalidURL(RequestException, ValueError): pass
""",
)
URLLIB3 = module(
    "urllib3.exceptions",
    """
class HTTPError(Exception): pass
class PoolError(HTTPError): pass
class RequestError(PoolError): pass
class MaxRetryError(RequestError):
    def __init__(self, reason=None):
        super().__init__("max retries")
        self.reason = reason
class TimeoutError(HTTPError): pass
class ReadTimeoutError(TimeoutError, RequestError): pass
class ConnectTimeoutError(TimeoutError): pass
class NewConnectionError(ConnectTimeoutError, HTTPError): pass
class NameResolutionError(NewConnectionError): pass
class ProtocolError(HTTPError): pass
""",
)
AIOHTTP = module(
    "aiohttp.client_exceptions",
    """
class ClientError(Exception): pass
class ClientResponseError(ClientError):
    def __init__(self, status):
        super().__init__(f"status {status}")
        self.status = status
class ClientConnectionError(ClientError): pass
class ClientOSError(ClientConnectionError, OSError): pass
class ClientConnectorError(ClientOSError): pass
class ServerConnectionError(ClientConnectionError): pass
class ServerDisconnectedError(ServerConnectionError): pass
class ServerTimeoutError(ServerConnectionError, asyncio.TimeoutError): pass
class ConnectionTimeoutError(ServerTimeoutError): pass
class SocketTimeoutError(ServerTimeoutError): pass
class ClientPayloadError(ClientError): pass
""",
)
HTTPX = module(
    "httpx._exceptions",
    """
class HTTPError(Exception): pass
class RequestError(HTTPError): pass
class TransportError(RequestError): pass
class TimeoutException(TransportError): pass
class ConnectTimeout(TimeoutException): pass
class ReadTimeout(TimeoutException): pass
class NetworkError(TransportError): pass
class ConnectError(NetworkError): pass
class HTTPStatusError(HTTPError):
    def __init__(self, response):
        super().__init__("status")
        self.response = response
class Response:
    def __init__(self, status_code):
        self.status_code = status_code
""",
)


class Status:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (REQUESTS.ConnectionError("refused"), "transient"),
        (REQUESTS.ProxyError("proxy"), "transient"),
        (REQUESTS.ConnectTimeout("connect"), "timeout"),
        (REQUESTS.ReadTimeout("read"), "timeout"),
        (REQUESTS.ChunkedEncodingError("cut"), "transient"),
        (REQUESTS.HTTPError("503", response=Status(503)), "transient"),
        (REQUESTS.HTTPError("429", response=Status(429)), "transient"),
        (REQUESTS.HTTPError("404", response=Status(404)), "tool_error"),
        (REQUESTS.InvalidURL("bad"), None),
        (URLLIB3.NewConnectionError("refused"), "transient"),
        (URLLIB3.NameResolutionError("dns"), "transient"),
        (URLLIB3.ConnectTimeoutError("connect"), "timeout"),
        (URLLIB3.ReadTimeoutError("read"), "timeout"),
        (URLLIB3.ProtocolError("reset"), "transient"),
        (URLLIB3.MaxRetryError(URLLIB3.ReadTimeoutError("read")), "timeout"),
        (URLLIB3.MaxRetryError(URLLIB3.NewConnectionError("refused")), "transient"),
        (AIOHTTP.ClientConnectorError("refused"), "transient"),
        (AIOHTTP.ServerDisconnectedError("gone"), "transient"),
        (AIOHTTP.ServerTimeoutError("slow"), "timeout"),
        (AIOHTTP.ConnectionTimeoutError("slow"), "timeout"),
        (AIOHTTP.SocketTimeoutError("slow"), "timeout"),
        (AIOHTTP.ClientResponseError(502), "transient"),
        (AIOHTTP.ClientResponseError(422), "tool_error"),
        (HTTPX.ConnectError("refused"), "transient"),
        (HTTPX.ReadTimeout("read"), "timeout"),
        (HTTPX.HTTPStatusError(HTTPX.Response(503)), "transient"),
        (HTTPX.HTTPStatusError(HTTPX.Response(403)), "tool_error"),
        (ValueError("not a library"), None),
        (KeyError("missing"), None),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_library_exceptions_by_class_name(error: BaseException, kind: str | None) -> None:
    assert library_kind(error) == kind
    assert kind_of(error) == (kind or "tool_error")


# --- in a run: retried by standard_retry, kept in the journal, shown -------------------------


@pytest.fixture
def flaky_server() -> Iterator[str]:
    """Answers 503 on its first request to /flaky and 200 after; 404 on /missing."""
    hits: dict[str, int] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits[self.path] = hits.get(self.path, 0) + 1
            if self.path == "/flaky" and hits[self.path] == 1:
                self.send_response(503)
            elif self.path == "/flaky":
                self.send_response(200)
            else:
                self.send_response(404)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


TOOLS = """
import httpx2

def fetch(url):
    response = httpx2.get(url, timeout=5)
    response.raise_for_status()
    return response.text

def lookup(name):
    table = {"a": 1}
    return table[name]
"""

SOURCE = """
import std.policies { standard_retry }

tool fetch(url: str) -> str {
  impl: "tools:fetch"
  retry: standard_retry
}

tool lookup(name: str) -> int {
  impl: "tools:lookup"
}

workflow get(url: str) -> str {
  body = fetch(url)
  return body
}

workflow find(name: str) -> int {
  n = lookup(name)
  return n
}
"""


def test_a_503_is_retried_a_404_is_not(tmp_path: Path, flaky_server: str) -> None:
    p = Program(tmp_path / "p", SOURCE, RECORDER + TOOLS)
    out = p.run({"url": f"{flaky_server}/flaky"}, workflow="get")
    assert out.status == "completed" and out.result == "ok", out.error
    [retry] = p.events(out.run_id, "retry")
    assert retry.data["kind"] == "transient"
    assert retry.data["exception"] == "httpx2.HTTPStatusError"
    out = p.run({"url": f"{flaky_server}/missing"}, workflow="get")
    assert out.status == "failed" and out.error["kind"] == "tool_error"
    assert not p.events(out.run_id, "retry")


def test_key_error_and_traceback_in_journal_show_and_log(tmp_path: Path) -> None:
    p = Program(tmp_path / "p", SOURCE, RECORDER + TOOLS)
    out = p.run({"name": "missing"}, workflow="find")
    assert out.status == "failed"
    assert out.error["message"] == "KeyError: key 'missing' not found"
    [failed] = p.events(out.run_id, "call_failed")
    assert failed.data["exception"] == "KeyError"
    trace = failed.data["traceback"]
    assert "tools.py" in trace and "return table[name]" in trace
    assert "mnlang/runtime" not in trace
    db = str(p.folder / "journal.db")
    shown = CliRunner().invoke(main, ["show", out.run_id, "--db", db])
    assert "lookup try 1: tool_error (KeyError): KeyError: key 'missing' not found" in shown.output
    assert "      | " in shown.output and "return table[name]" in shown.output
    logged = CliRunner().invoke(main, ["log", out.run_id, "--db", db])
    assert "(KeyError)" in logged.output and "return table[name]" in logged.output
