"""The worker's small HTTP listener: `/healthz` and `/readyz` (one listener, later shared
with `/metrics`).

- `/healthz`: 200 while the process serves requests (liveness: restart it when this fails).
- `/readyz`: 200 while the worker takes work (its last heartbeat reached the journal
  within its lease time, and it is not draining), else 503 (readiness: send no traffic,
  and expect its runs to move to other workers).

Standard library only (`http.server` on a daemon thread): it must stay up when the rest
of the worker is busy, and add nothing to `import mnlang`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class HealthServer:
    def __init__(self, host: str, port: int, ready: Callable[[], bool]) -> None:
        is_ready = ready

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/healthz":
                    self._answer(200, "ok\n")
                elif self.path == "/readyz":
                    up = is_ready()
                    self._answer(200 if up else 503, "ready\n" if up else "not ready\n")
                else:
                    self._answer(404, "not found\n")

            def _answer(self, status: int, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                return  # probes every few seconds would drown the worker's log

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="mnc-health", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> HealthServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
