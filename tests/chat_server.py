"""A Chat Completions server on localhost for provider tests, typed by the official
`openai` SDK.

Every request body is validated with the SDK's own request type
(`CompletionCreateParamsNonStreaming`, a TypedDict, through pydantic; every message and
tool read through, and no key the type does not name), so a body the SDK would not
send is answered 400 and recorded in `invalid`; the `chat_server()` context fails the
test on leaving when any request was invalid (unless `allow_invalid=True`, for the tests
of that check). Every well-formed answer (`completion`, `chat`) is an
`openai.types.chat.ChatCompletion` built and dumped by the SDK, which the provider's SDK
client reads back. Neither side can drift to fit our client; `answer` still sends any
body, for the tests of a server that breaks the protocol.

Tests queue the answers, in order (`answer`, or `chat` for a completion), and read the
requests received (`requests`: path, headers, JSON body; `params`: each as the SDK's type
read it). When the queue is empty the server answers 500, so a test that expected fewer
requests fails. Or a test sets `respond`, a function from the request's JSON body to its
answer: a model that answers the same conversation the same way, however often it is
asked (a client that crashed and asks again).
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

import httpx2
from openai.types.chat import ChatCompletion
from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming
from pydantic import TypeAdapter, ValidationError

_PARAMS: TypeAdapter[CompletionCreateParamsNonStreaming] = TypeAdapter(
    CompletionCreateParamsNonStreaming
)
_PARAM_KEYS = frozenset(CompletionCreateParamsNonStreaming.__annotations__)


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
    headers: httpx2.Headers
    """Case-insensitive, as HTTP's are (the SDK sends `authorization`)."""
    body: Any


def completion(
    content: str | None = None,
    *,
    tool_calls: list[dict[str, Any]] | None = None,
    usage: tuple[int, int] | None = (100, 20),
    cached_tokens: int | None = None,
    finish: str = "stop",
    refusal: str | None = None,
    model: str = "test-model",
) -> dict[str, Any]:
    """The JSON of a Chat Completions answer, made by the SDK's `ChatCompletion` model;
    `tool_calls` as `{"name", "arguments"}`, `cached_tokens` of the prompt's."""
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": refusal}
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
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }
    if usage is not None:
        body["usage"] = {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": sum(usage),
        }
        if cached_tokens is not None:
            body["usage"]["prompt_tokens_details"] = {"cached_tokens": cached_tokens}
    dumped: dict[str, Any] = ChatCompletion.model_validate(body).model_dump(
        mode="json", exclude_none=True
    )
    # `content` is null (not left out) beside tool calls or a refusal, as OpenAI sends it.
    dumped["choices"][0]["message"].setdefault("content", None)
    return dumped


def read_all(value: Any) -> Any:
    """Validated params with every lazily validated iterable (the SDK's `Iterable[...]`
    fields) read through, so that all of the body is validated, as plain lists."""
    if isinstance(value, dict):
        return {k: read_all(v) for k, v in value.items()}
    if isinstance(value, list | tuple) or type(value).__name__ == "ValidatorIterator":
        return [read_all(v) for v in value]
    return value


class ChatServer:
    def __init__(self) -> None:
        self.answers: deque[Answer] = deque()
        self.respond: Callable[[Any], Answer] | None = None
        self.requests: list[Received] = []
        self.params: list[Any] = []
        """Each valid request as the SDK's request type read it."""
        self.invalid: list[str] = []
        """Why each request the SDK's type refused was refused (answered 400)."""
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length).decode("utf-8"))
                with server._lock:
                    server.requests.append(
                        Received(self.path, httpx2.Headers(self.headers.items()), body)
                    )
                    answer = server.refuse(body)
                    if answer is None and server.respond is not None:
                        answer = server.respond(body)
                    elif answer is None:
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

    def refuse(self, body: Any) -> Answer | None:
        """The 400 answer to a body the SDK's request type does not accept; None when it
        does (the body is then kept in `params`)."""
        unknown = sorted(set(body) - _PARAM_KEYS) if isinstance(body, dict) else []
        try:
            if unknown:
                raise ValueError(f"unknown parameters: {', '.join(unknown)}")
            self.params.append(read_all(_PARAMS.validate_python(body)))
        except (ValidationError, ValueError) as e:
            self.invalid.append(str(e))
            error = {"message": str(e), "type": "invalid_request_error", "code": None}
            return Answer(400, {"error": error})
        return None

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
def chat_server(*, allow_invalid: bool = False) -> Iterator[ChatServer]:
    server = ChatServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
    assert allow_invalid or not server.invalid, (
        f"requests the openai SDK's types refuse: {server.invalid}"
    )
