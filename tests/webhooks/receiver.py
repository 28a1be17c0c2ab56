"""A real webhook receiver on localhost for the outbox tests: an HTTP server on a free
port, in a thread, that logs every call (headers and raw body) and answers as told."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def event(self) -> dict[str, Any]:
        value = json.loads(self.body)
        assert isinstance(value, dict)
        return value


@dataclass
class Receiver:
    url: str
    calls: list[Call] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    """Statuses of the next calls, in order; then 200."""
    hang: threading.Event | None = None
    """While set... the receiver logs a call, then holds it open until cleared."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Call]:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if len(self.calls) >= count:
                    return list(self.calls)
            assert time.monotonic() < deadline, f"{len(self.calls)} calls, wanted {count}"
            time.sleep(0.02)


@contextmanager
def receiver() -> Iterator[Receiver]:
    state: list[Receiver] = []
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got = state[0]
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            with got.lock:
                got.calls.append(Call(self.path, dict(self.headers.items()), body, time.time()))
                status = got.answers.pop(0) if got.answers else 200
                hang = got.hang
            if hang is not None and hang.is_set():
                release.wait(30)
                return  # the sender was killed meanwhile; nobody reads an answer
            self.send_response(status)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.append(Receiver(f"http://127.0.0.1:{server.server_address[1]}/hook"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state[0]
    finally:
        release.set()
        server.shutdown()
        server.server_close()
