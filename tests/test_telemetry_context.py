"""The run's W3C trace context reaches its tools: `ToolContext.traceparent` names the
attempt's span, `std.http` sends it as the `traceparent` header, and the span id a real
HTTP server on localhost received is the id `mnc export traces` gives that attempt's span;
the API's start route takes the caller's `traceparent` header."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import pytest

from mnlang.ir.compile import compile_file
from mnlang.runtime.clock import VirtualClock
from mnlang.runtime.config import RuntimeConfig
from mnlang.runtime.run import start_run
from mnlang.stores.sqlite import SQLiteStore
from mnlang.telemetry.spans import TraceParent, journal_spans
from tests.api.server import ADMIN_TOKEN, serve
from tests.test_telemetry import Receiver, exporter_to, receiver  # noqa: F401 (a fixture)

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@dataclass
class Recorder:
    """An HTTP server that keeps each request's path and `traceparent`; `/flaky` answers
    503 once, then 200."""

    url: str = ""
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)
    flaky: int = 0


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    state = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            state.seen.append((self.command, self.path, self.headers.get("traceparent")))
            status = 200
            if self.path == "/flaky":
                state.flaky += 1
                status = 503 if state.flaky == 1 else 200
            body = b'{"ok": true}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._answer()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


WORKFLOW = """
import std.http { http_get, http_post }

workflow sync(base: str, order: str) -> int {
  page = http_get("{base}/flaky")
  sent = http_post("{base}/echo", page.data, "sync:{order}")
  return sent.status
}
"""


def test_http_tools_send_the_attempt_span_that_export_gives(
    recorder: Recorder,
    receiver: Receiver,  # noqa: F811
    tmp_path: Path,
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
            {"base": recorder.url, "order": "o-1"},
            run_id="sync-1",
            config=RuntimeConfig(clock=VirtualClock()),
            traceparent=CALLER,
        )
        assert outcome.status == "completed", outcome.error
        exporter = exporter_to(store, receiver, "traces")
        exporter.export_once()
        exporter.close()
    # The 503 (retried), the GET that answered, the POST: three attempts, three spans.
    assert [(method, path) for method, path, _ in recorder.seen] == [
        ("GET", "/flaky"),
        ("GET", "/flaky"),
        ("POST", "/echo"),
    ]
    sent = [TraceParent.parse(header or "") for _, _, header in recorder.seen]
    assert all(p is not None and p.sampled for p in sent), recorder.seen
    caller = TraceParent.parse(CALLER)
    assert caller is not None
    assert {p.trace_id for p in sent if p is not None} == {caller.trace_id}
    exported = {int(s.span_id, 16): s for s in receiver.spans}
    names = [exported[p.span_id].name for p in sent if p is not None and p.span_id in exported]
    assert names == [
        "attempt std.http.http_get",
        "tool std.http.http_get",
        "effect std.http.http_post",
    ]
    run_span = next(s for s in receiver.spans if s.name == "run sync")
    assert run_span.parent_id == "00f067aa0ba902b7"
    for p in sent:
        assert p is not None and exported[p.span_id].parent_id == run_span.span_id


def test_an_explicit_traceparent_header_wins(recorder: Recorder) -> None:
    from mnlang.runtime.tools import ToolContext
    from mnlang.stdlib_tools import http

    ctx = ToolContext("r", "s", 1, None, traceparent=CALLER)
    http.http_get(f"{recorder.url}/a", [], ctx=ctx)
    mine = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    http.http_get(f"{recorder.url}/b", [f"TraceParent: {mine}"], ctx=ctx)
    http.http_get(f"{recorder.url}/c", [])  # no context: no header
    assert [header for _, _, header in recorder.seen] == [CALLER, mine, None]


def test_the_api_start_route_takes_the_callers_traceparent(
    recorder: Recorder, tmp_path: Path
) -> None:
    recorder.flaky = 1  # no 503 here: a retry's delay is real time under `mnc serve`
    db = tmp_path / "journal.db"
    auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    with serve(db) as served:

        def post(path: str, body: Any, **headers: str) -> httpx2.Response:
            return httpx2.post(
                served.url + path, json=body, headers={**auth, **headers}, timeout=30
            )

        registered = post("/api/v1/programs", {"source": WORKFLOW, "path": "sync.mn"})
        assert registered.status_code == 201, registered.text
        given = {"base": recorder.url, "order": "o-1"}
        for run_id, header in (("traced", CALLER), ("garbled", "00-nope")):
            start = {"workflow": "sync", "input": given, "run_id": run_id}
            started = post("/api/v1/runs", start, traceparent=header)
            assert started.status_code == 201, started.text
        deadline = time.monotonic() + 30
        while len(recorder.seen) < 4:
            assert time.monotonic() < deadline, recorder.seen
            time.sleep(0.05)
    caller = TraceParent.parse(CALLER)
    assert caller is not None
    with SQLiteStore(db) as store:
        traced, garbled = store.get_run("traced"), store.get_run("garbled")
        assert traced is not None and garbled is not None
        assert traced.meta.get("traceparent") == CALLER
        # An invalid header is ignored (W3C): the run is the root of a trace of its own.
        assert "traceparent" not in garbled.meta
        spans = {s.span_id: s for s in journal_spans(traced, store.read_journal("traced"))}
    headers = [TraceParent.parse(h or "") for _, _, h in recorder.seen]
    ours = [p for p in headers if p is not None and p.trace_id == caller.trace_id]
    assert len(ours) == 2 and all(p.span_id in spans for p in ours)
    others = [p for p in headers if p is not None and p.trace_id != caller.trace_id]
    assert len(others) == 2
