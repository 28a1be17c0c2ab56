"""`std.http` against a real HTTP server on localhost: answers, error kinds, the idempotency
key, and a workflow that imports the module and runs it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mnlang.errors import MnError
from mnlang.ir.compile import compile_file
from mnlang.runtime.clock import VirtualClock
from mnlang.runtime.config import RuntimeConfig
from mnlang.runtime.run import start_run
from mnlang.stdlib_tools import http
from mnlang.stores.sqlite import SQLiteStore


class Server:
    """Routes by path: `/json`, `/text`, `/status/N`, `/slow`, `/echo` (POST), `/flaky`
    (503 once, then 200)."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.flaky_calls = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, status: int, body: bytes, kind: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Served-By", "test")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path == "/json":
                    self._reply(200, b'{"id": "o-1", "total": "42.50"}')
                elif self.path == "/text":
                    self._reply(200, b"plain words", "text/plain")
                elif self.path.startswith("/status/"):
                    status = int(self.path.rsplit("/", 1)[1])
                    self._reply(status, b'{"error": "nope"}')
                elif self.path == "/slow":
                    time.sleep(1.0)
                    self._reply(200, b"{}")
                elif self.path == "/flaky":
                    server.flaky_calls += 1
                    self._reply(503 if server.flaky_calls == 1 else 200, b'{"ok": true}')
                else:
                    self._reply(404, b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length))
                server.posts.append({"body": body, "key": self.headers.get("Idempotency-Key")})
                self._reply(201, json.dumps({"received": body}).encode())

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    s._thread.start()
    yield s
    s._server.shutdown()
    s._server.server_close()


class Ctx:
    key = "http_post:refund:o-1"
    wire_key = "run-0123:http_post:refund:o-1"


def kind_of_failure(call: Any) -> tuple[str, str]:
    with pytest.raises(MnError) as caught:
        call()
    return caught.value.kind, caught.value.message


def test_get_json_and_text(server: Server) -> None:
    answer = http.http_get(f"{server.url}/json", ["Accept: application/json"])
    assert answer["status"] == 200
    assert answer["data"] == {"id": "o-1", "total": "42.50"}
    assert answer["headers"]["x-served-by"] == "test"
    text = http.http_get(f"{server.url}/text", [])
    assert (text["body"], text["data"]) == ("plain words", None)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (500, "transient"),
        (503, "transient"),
        (429, "transient"),
        (408, "transient"),
        (404, "tool_error"),
        (400, "tool_error"),
        (401, "tool_error"),
    ],
)
def test_status_codes_map_to_error_kinds(server: Server, status: int, kind: str) -> None:
    got, message = kind_of_failure(lambda: http.http_get(f"{server.url}/status/{status}", []))
    assert got == kind
    assert f"GET {server.url}/status/{status}: {status}" in message


def test_a_malformed_header_is_a_tool_error(server: Server) -> None:
    kind, message = kind_of_failure(lambda: http.http_get(f"{server.url}/json", ["Accept"]))
    assert kind == "tool_error" and 'written "Name: value"' in message


def test_connection_errors_are_transient_and_bad_urls_tool_errors() -> None:
    s = Server()
    url = s.url
    s._server.server_close()  # nothing listens there any more
    assert kind_of_failure(lambda: http.http_get(f"{url}/json", []))[0] == "transient"
    assert kind_of_failure(lambda: http.http_get("ftp://example.org/x", []))[0] == "tool_error"


def test_a_slow_answer_is_a_timeout(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "TIMEOUT_S", 0.2)
    kind, message = kind_of_failure(lambda: http.http_get(f"{server.url}/slow", []))
    assert kind == "timeout" and "no answer within 0.2s" in message


def test_post_sends_json_and_the_idempotency_key(server: Server) -> None:
    answer = http.http_post(
        f"{server.url}/echo", {"amount": "42.50"}, "refund:o-1", ["X-Team: billing"], ctx=Ctx()
    )
    assert answer["status"] == 201 and answer["data"] == {"received": {"amount": "42.50"}}
    assert server.posts == [{"body": {"amount": "42.50"}, "key": "run-0123:http_post:refund:o-1"}]


WORKFLOW = """
import std.http { http_get, http_post }

workflow sync(base: str, order: str) -> int {
  page = http_get("{base}/flaky")
  sent = http_post("{base}/echo", page.data, "sync:{order}")
  again = http_post("{base}/echo", page.data, "sync:{order}")
  return sent.status + again.status
}
"""


def test_a_workflow_uses_std_http_with_retries_and_one_post_per_key(
    server: Server, tmp_path: Path
) -> None:
    source = tmp_path / "sync.mn"
    source.write_text(WORKFLOW, "utf-8")
    program, diagnostics = compile_file(source)
    assert program is not None, [d.message for d in diagnostics]
    with SQLiteStore(tmp_path / "journal.db") as store:
        outcome = start_run(
            store,
            program,
            "sync",
            {"base": server.url, "order": "o-1"},
            config=RuntimeConfig(clock=VirtualClock()),
        )
        assert outcome.status == "completed", outcome.error
        assert outcome.result == 402
        kinds = [e.kind for e in store.read_journal(outcome.run_id)]
    assert server.flaky_calls == 2  # a 503, retried by `http_retry`
    assert kinds.count("retry") == 1 and kinds.count("replayed") == 1
    ((post,),) = [server.posts]
    assert post["body"] == {"ok": True}
    assert post["key"].startswith("run-") and post["key"].endswith(":http_post:sync:o-1")
