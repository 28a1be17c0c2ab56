"""A Messages API server on localhost for the `anthropic` provider's tests.

Every request body is validated with the official SDK's own request type
(`MessageCreateParamsNonStreaming`, a TypedDict, through pydantic), so a body the SDK
would not accept fails the test; and every answer is an `anthropic.types.Message` built
and dumped by the SDK, which the provider's SDK client reads back. Neither side can
drift to fit our client.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from anthropic.types import Message, MessageCreateParams
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
from pydantic import TypeAdapter, ValidationError

from tests.chat_server import Answer, ChatServer, read_all

_PARAMS: TypeAdapter[MessageCreateParamsNonStreaming] = TypeAdapter(MessageCreateParamsNonStreaming)


def message(
    *,
    text: str | None = None,
    tool_uses: list[dict[str, Any]] | None = None,
    stop_reason: str | None = None,
    model: str = "claude-haiku-4.5",
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The JSON of a Messages API answer, made by the SDK's `Message` model."""
    content: list[dict[str, Any]] = []
    if text is not None:
        content.append({"type": "text", "text": text})
    for i, use in enumerate(tool_uses or []):
        content.append(
            {
                "type": "tool_use",
                "id": use.get("id", f"toolu_{i}"),
                "name": use["name"],
                "input": use["input"],
            }
        )
    built = Message.model_validate(
        {
            "id": "msg_test",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason or ("tool_use" if tool_uses else "end_turn"),
            "stop_sequence": None,
            "usage": {"input_tokens": 100, "output_tokens": 20, **(usage or {})},
        }
    )
    dumped: dict[str, Any] = built.model_dump(mode="json", exclude_none=True)
    return dumped


class AnthropicServer(ChatServer):
    def __init__(self) -> None:
        super().__init__()
        self.replies: deque[Answer] = deque()
        self.params: list[MessageCreateParams] = []
        """Each request as the SDK's request type read it."""
        self.respond = lambda body: self.replies.popleft() if self.replies else Answer(500)

    def refuse(self, body: Any) -> Answer | None:
        """Requests the SDK's type refuses are answered 400 and kept in `invalid`: a test
        expects none."""
        try:
            self.params.append(read_all(_PARAMS.validate_python(body)))
        except ValidationError as e:
            self.invalid.append(str(e))
            return Answer(
                400,
                {"type": "error", "error": {"type": "invalid_request_error", "message": str(e)}},
            )
        return None

    def reply(self, status: int = 200, **kwargs: Any) -> None:
        body = message(**kwargs) if status == 200 else kwargs.get("body")
        self.replies.append(Answer(status, body))

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"


@contextmanager
def anthropic_server() -> Iterator[AnthropicServer]:
    server = AnthropicServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
