"""An idempotent HTTP receiver on localhost, Stripe-style, for wire-key tests.

A POST with an `Idempotency-Key` it has not seen is **performed** (kept in
`performed`) and answered 201; a POST with a key it has seen is answered with the first
answer again (header `Idempotent-Replayed: true`) and performs nothing. A key that is
missing, longer than 255 characters or not printable ASCII is refused with 400, as
Stripe refuses it. Every request is kept in `requests`, in arrival order. The server
also serves as an HTTP proxy (a request line with an absolute URL), so a journal that
holds a fixed URL can be sent here through `HTTP_PROXY`.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_KEY = 255


@dataclass
class Request:
    path: str
    key: str | None
    body: Any
    replayed: bool


@dataclass
class Receiver:
    requests: list[Request] = field(default_factory=list)
    answers: dict[str, bytes] = field(default_factory=dict)
    answer_delay_s: float = 0.0
    """How long a performed request waits before its answer (a client may die meanwhile)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def performed(self) -> list[Request]:
        return [r for r in self.requests if not r.replayed]

    def seed(self, key: str, body: Any = None) -> None:
        """A key a previous life of the receiver performed already."""
        self.answers[key] = json.dumps({"performed": body}).encode()

    def receive(self, path: str, key: str | None, body: Any) -> tuple[int, bytes, bool]:
        with self.lock:
            if key is None or len(key) > MAX_KEY or not (key.isascii() and key.isprintable()):
                self.requests.append(Request(path, key, body, replayed=True))
                return 400, b'{"error": "invalid Idempotency-Key"}', False
            replayed = key in self.answers
            if not replayed:
                self.answers[key] = json.dumps({"performed": body}).encode()
            self.requests.append(Request(path, key, body, replayed))
            return 201, self.answers[key], replayed


class Server:
    def __init__(self, receiver: Receiver | None = None) -> None:
        self.receiver = receiver or Receiver()
        receiver_ = self.receiver

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                body = json.loads(raw) if raw else None
                status, answer, replayed = receiver_.receive(
                    self.path, self.headers.get("Idempotency-Key"), body
                )
                if not replayed:
                    time.sleep(receiver_.answer_delay_s)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                if replayed:
                    self.send_header("Idempotent-Replayed", "true")
                self.end_headers()
                self.wfile.write(answer)

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

    def __enter__(self) -> Server:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
