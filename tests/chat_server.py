"""A small Chat Completions server on localhost for provider tests (standard library only).

Tests queue the answers it gives, in order (`answer`, or `chat` for a well-formed
completion), and read the requests it received (`requests`: path, headers, JSON body).
When the queue is empty it answers 500, so a test that expected fewer requests fails.
Or a test sets `respond`, a function from the request's JSON body to its answer: a model
that answers the same conversation the same way, however often it is asked (a client
that crashed and asks again).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    status: int = 200
    body: Any = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


def completion(
    content: str | None = None,
    *,
    tool_calls: list[dict[str, Any]] | None = None,
    usage: tuple[int, int] | None = (100, 20),
    finish: str = "stop",
    model: str = "test-model",
) -> dict[str, Any]:
    """The JSON of a Chat Completions answer; `tool_calls` as `{"name", "arguments"}`."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = [
            {
                "id": call.get("id", f"call_{i}"),
                "type": "function",
                "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])},
            }
            for i, call in enumerate(tool_calls)
        ]
    body: dict[str, Any] = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }
    if usage is not None:
        body["usage"] = {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": sum(usage),
        }
    return body


class ChatServer:
    def __init__(self) -> None:
        self.answers: deque[Answer] = deque()
        self.respond: Callable[[Any], Answer] | None = None
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length).decode("utf-8"))
                with server._lock:
                    server.requests.append(Received(self.path, dict(self.headers.items()), body))
                    if server.respond is not None:
                        answer = server.respond(body)
                    else:
                        answer = server.answers.popleft() if server.answers else Answer(500)
                if answer.delay_s:
                    time.sleep(answer.delay_s)
                data = answer.raw
                if data is None:
                    data = json.dumps(answer.body if answer.body is not None else {}).encode()
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def answer(self, status: int = 200, body: Any = None, **kwargs: Any) -> None:
        self.answers.append(Answer(status, body, **kwargs))

    def chat(self, content: Any = None, **kwargs: Any) -> None:
        """Queue a completion; `content` other than a string is sent as its JSON."""
        text = content if content is None or isinstance(content, str) else json.dumps(content)
        delay = kwargs.pop("delay_s", 0.0)
        self.answers.append(Answer(200, completion(text, **kwargs), delay_s=delay))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def chat_server() -> Iterator[ChatServer]:
    server = ChatServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
