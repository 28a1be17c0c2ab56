"""A travel service on localhost for the saga example: flights, cars, a bank, tickets, mail.

Run it with `python examples/saga/travel.py 8642` (or start `TravelService` in a test);
the example's tools (`tools.py`) call it at `MNC_TRAVEL_URL`. It keeps what a real
receiver would: what is booked now, and every request it performed (`GET /log`), so a
test can check that each action happened once and that nothing stays booked. Like
Stripe, it performs a request whose `Idempotency-Key` it has performed before only once:
the repeat gets the first answer (`requests` counts every request, `log` what was done).

Two knobs make it misbehave the way real receivers do (`POST /settings`):
`decline` (trips whose card is declined, answered 402) and `late_ms` (the bank holds a
charge this long before it applies it and answers: a client that timed out meanwhile
does not know whether it was taken); `refuse_confirm` answers 409 to a confirmation.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class TravelService:
    """The service's state, shared by the request threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.booked: dict[str, dict[str, str]] = {"flight": {}, "car": {}, "charge": {}}
        self.log: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.answers: dict[str, tuple[int, Any]] = {}
        self.on_perform: Any = None
        """Called with each action performed (a test kills a process there)."""
        self.decline: set[str] = set()
        self.late_ms = 0
        self.refuse_confirm = False

    def perform(self, action: str, trip: str, **data: Any) -> None:
        self.log.append({"action": action, "trip": trip, "at": time.time(), **data})
        if self.on_perform is not None:
            self.on_perform(action)

    def request(
        self, method: str, path: str, body: dict[str, Any], key: str | None
    ) -> tuple[int, Any]:
        """Answer a request; one whose key was answered before gets that answer again."""
        with self.lock:
            self.requests.append({"method": method, "path": path, "key": key})
            if key is not None and key in self.answers:
                return self.answers[key]
        status, data = self.handle(method, path, body)
        if key is not None and status < 500:
            with self.lock:
                self.answers.setdefault(key, (status, data))
        return status, data

    def handle(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if method == "GET" and parts == ["log"]:
            with self.lock:
                return 200, {"log": self.log, "booked": self.booked}
        if method == "POST" and parts == ["settings"]:
            with self.lock:
                self.decline = set(body.get("decline", []))
                self.late_ms = int(body.get("late_ms", 0))
                self.refuse_confirm = bool(body.get("refuse_confirm", False))
            return 200, {}
        kind, trip = parts[0], parts[1] if len(parts) > 1 else str(body.get("trip", ""))
        if kind in ("flight", "car") and method == "POST":
            return self._book(kind, trip, f"{kind[:2]}-{trip}")
        if kind in ("flight", "car", "charge") and method == "DELETE":
            with self.lock:
                found = self.booked[kind].pop(trip, None)
                self.perform(f"cancel_{kind}", trip, found=found is not None)
            return 200, {"cancelled": found is not None}
        if kind == "charge" and method == "GET":
            with self.lock:
                charge = self.booked["charge"].get(trip)
            return (200, {"id": charge}) if charge is not None else (404, {})
        if kind == "charge" and method == "POST":
            return self._charge(trip, body)
        if kind == "confirm" and method == "POST":
            with self.lock:
                if self.refuse_confirm:
                    return 409, {"error": f"trip {trip}: the flight is sold out"}
                self.perform("confirm", trip)
            return 200, {"confirmed": True}
        if kind == "notify" and method == "POST":
            with self.lock:
                self.perform("notify", trip, text=body.get("text"))
            return 200, {"sent": True}
        return 404, {"error": f"no {method} {path}"}

    def _book(self, kind: str, trip: str, ident: str) -> tuple[int, Any]:
        with self.lock:
            self.booked[kind][trip] = ident
            self.perform(f"reserve_{kind}", trip)
        return 200, {"id": ident}

    def _charge(self, trip: str, body: dict[str, Any]) -> tuple[int, Any]:
        with self.lock:
            if trip in self.decline:
                return 402, {"error": f"card declined for trip {trip}"}
            late = self.late_ms
        if late:
            time.sleep(late / 1000)  # applied late: the client may have given up
        with self.lock:
            ident = f"ch-{trip}"
            self.booked["charge"][trip] = ident
            self.perform("charge", trip, amount=body.get("amount"))
        return 200, {"id": ident}


def serve(service: TravelService, port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server for `service` on 127.0.0.1 (port 0: any free port); not started."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            key = self.headers.get("Idempotency-Key")
            status, data = service.request(method, self.path, body, key)
            payload = json.dumps(data).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out; the action happened all the same

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def do_DELETE(self) -> None:
            self._answer("DELETE")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


if __name__ == "__main__":
    server = serve(TravelService(), int(sys.argv[1]) if len(sys.argv) > 1 else 8642)
    print(f"travel service on http://127.0.0.1:{server.server_address[1]}")
    server.serve_forever()
