"""The provider interface: one model request in, one reply (or a failure of a known kind) out.

A request carries the conversation so far in the Chat Completions shape (`role`,
`content`, `tool_calls`, `tool_call_id`), which every provider reads: the `openai`
provider sends it as is, the `scripted` one looks only at the agent, the call number and
the prompt. A provider runs on a worker thread and never touches the journal: what it
did on the way (transport retries) travels back in the reply, or in the `ModelCallError`
it raises, and the runtime journals it.

Providers raise `mnlang.errors` kinds: `timeout`, `transient` (the network, a 429 or a
5xx once its transport retries are spent), `malformed_output` (a reply that is not a
usable answer: truncated, not JSON, neither text nor tool calls) and `tool_error`
(anything retrying will not fix: a 4xx, a missing scripted reply).
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

import msgspec

from mnlang.errors import MnError

Message = dict[str, Any]
"""One chat message: `{"role": "user", "content": "..."}` and the like."""

ToolChoice = Literal["auto", "none"]


class ToolSpec(msgspec.Struct, frozen=True):
    """A tool offered to the model: the name it calls it by and its parameters' schema."""

    name: str
    description: str
    parameters: dict[str, Any]


class ModelRequest(msgspec.Struct, frozen=True):
    agent: str
    """The agent's qualified name."""
    model: str
    messages: list[Message]
    output_schema: dict[str, Any]
    """The JSON Schema the final answer must match (from the agent's return type)."""
    tools: list[ToolSpec] = msgspec.field(default_factory=list)
    tool_choice: ToolChoice = "auto"
    max_tokens: int | None = None
    temperature: float | None = None
    timeout_s: float | None = None
    call_number: int = 0
    """How many model requests this agent made earlier in the run (durable across resumes)."""
    request_number: int = 0
    """How many requests this call of the agent made before this one, over all its attempts
    and turns."""
    fallback: bool = False
    """Sent to one of the agent's fallback models (`model: [first, ...]`), not its first:
    `call_number` then counts the agent's requests to this model."""
    conversation: int = 0
    """How many messages of the agent's `conversation:` come before the prompt."""

    @property
    def short_agent(self) -> str:
        return self.agent.rsplit(".", 1)[-1]

    @property
    def prompt(self) -> str:
        """The rendered prompt: the first user message after the system message and the
        agent's `conversation:` (whose own user turns are earlier messages, not the prompt)."""
        chat = [m for m in self.messages if m.get("role") != "system"]
        for message in chat[self.conversation :]:
            if message.get("role") == "user":
                return str(message.get("content") or "")
        return ""


class ToolCall(msgspec.Struct, frozen=True):
    """A tool call the model asked for; `arguments` is the JSON text it wrote."""

    id: str
    name: str
    arguments: str


class Usage(msgspec.Struct, frozen=True):
    input_tokens: int
    """Input tokens read neither from nor into a prompt cache."""
    output_tokens: int
    cache_read_tokens: int = 0
    """Input tokens read from the provider's prompt cache (Anthropic)."""
    cache_write_tokens: int = 0
    """Input tokens written into the prompt cache."""


class TransportRetry(msgspec.Struct, frozen=True):
    """One request the transport sent again: why, and how long it waited first."""

    reason: str
    delay_s: float
    status: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"reason": self.reason, "status": self.status, "delay_s": round(self.delay_s, 3)}


class ModelReply(msgspec.Struct, frozen=True):
    text: str | None
    """The answer's text (JSON for a structured answer); None when the model called tools."""
    tool_calls: list[ToolCall] = msgspec.field(default_factory=list)
    usage: Usage | None = None
    model: str = ""
    """The model that answered, as the provider reported it."""
    retries: list[TransportRetry] = msgspec.field(default_factory=list)


class ModelCallError(MnError):
    """A model request that failed, with the transport retries made before it gave up."""

    def __init__(
        self, kind: str, message: str, retries: list[TransportRetry] | None = None
    ) -> None:
        super().__init__(kind, message)
        self.retries = list(retries or [])

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.kind, self.message, self.retries))


class Provider(Protocol):
    """A source of model replies. `complete` runs on a worker thread; it may block."""

    name: str

    def complete(self, request: ModelRequest) -> ModelReply: ...
