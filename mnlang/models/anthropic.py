"""The `anthropic` provider: Anthropic's Messages API through the official `anthropic` SDK.

Configuration comes from the environment (`AnthropicConfig.from_env`): the key
(`MNC_ANTHROPIC_API_KEY`, else `ANTHROPIC_API_KEY`), the base URL
(`MNC_ANTHROPIC_BASE_URL`, default the Anthropic API), one model for every agent
(`MNC_ANTHROPIC_MODEL`) and the timeout of a request (`MNC_ANTHROPIC_TIMEOUT`). A
project's `[providers.NAME]` table with `kind = "anthropic"` (`AnthropicConfig.from_table`)
configures another Messages API endpoint or key under its own name, or fills in what the
environment leaves unset for `anthropic` itself.

The SDK's own retries are off (`max_retries=0`): the runtime owns retries (the agent's
`retry`, model fallback), so a connection error, a 429, a 5xx or Anthropic's 529
(overloaded) is `transient` at once, a timeout `timeout`, another 4xx `tool_error`.

The conversation the runtime keeps in the Chat Completions shape is translated: the
system message becomes `system` (with `cache_control`, so a conversation's later turns
read the prompt from Anthropic's cache), the assistant's tool calls `tool_use` blocks and
the tool results one user message of `tool_result` blocks. The tools are sent with
`cache_control` on the last one. Structured output is Anthropic's own: `output_config`
carries the JSON Schema of the return type (`format: json_schema`), a root that is not
an object wrapped as `{"value": ...}` as for `openai`. Usage keeps the cache tokens
(`cache_read_input_tokens`, `cache_creation_input_tokens`), priced by the price table's
`cache_read_per_million` and `cache_write_per_million`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mnlang.errors import MALFORMED_OUTPUT, REJECTED, TIMEOUT, TOOL_ERROR, TRANSIENT
from mnlang.models.base import ModelCallError, ModelReply, ModelRequest, ToolCall, Usage
from mnlang.models.openai import _unwrap, response_schema, scrub_key

if TYPE_CHECKING:
    import anthropic

DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_MAX_TOKENS = 4096
"""Anthropic requires `max_tokens`: for an agent without one."""
_CACHED = {"type": "ephemeral"}


@dataclass(frozen=True)
class AnthropicConfig:
    api_key: str | None = None
    base_url: str = DEFAULT_BASE_URL
    model: str | None = None
    timeout_s: float = 120.0

    def __repr__(self) -> str:  # never show the key
        return f"AnthropicConfig(base_url={self.base_url!r}, model={self.model!r})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AnthropicConfig:
        """The `anthropic` provider's settings: the `MNC_ANTHROPIC_*` variables."""
        return cls.from_table("anthropic", {}, environ)

    @classmethod
    def from_table(
        cls, name: str, table: Mapping[str, Any], environ: Mapping[str, str] | None = None
    ) -> AnthropicConfig:
        """The settings of provider `name` from its `[providers.NAME]` table with
        `kind = "anthropic"` (`base_url`, `api_key_env`, `model`, `timeout`). For
        `anthropic` itself the `MNC_ANTHROPIC_*` variables win over the table; another
        provider's key is read only from the variable its `api_key_env` names."""
        env = os.environ if environ is None else environ
        builtin = name == "anthropic"

        def setting(variable: str, key: str) -> tuple[str, str] | None:
            """The value and where it was found, for messages."""
            value = env.get(variable, "").strip() if builtin else ""
            if value:
                return value, variable
            if table.get(key) is not None:
                return str(table[key]).strip(), f"`{key}` of [providers.{name}]"
            return None

        found = setting("MNC_ANTHROPIC_TIMEOUT", "timeout")
        timeout_s = cls.timeout_s
        if found is not None:
            value, where = found
            try:
                timeout_s = float(value)
            except ValueError:
                raise ValueError(f"{where} must be seconds, not {value!r}") from None
        key_variable = table.get("api_key_env")
        if key_variable is not None:
            api_key = env.get(str(key_variable), "").strip() or None
        elif builtin:
            api_key = env.get("MNC_ANTHROPIC_API_KEY") or env.get("ANTHROPIC_API_KEY") or None
        else:
            api_key = None
        base_url = setting("MNC_ANTHROPIC_BASE_URL", "base_url")
        model = setting("MNC_ANTHROPIC_MODEL", "model")
        return cls(
            api_key=api_key,
            base_url=(base_url[0] if base_url else DEFAULT_BASE_URL).rstrip("/"),
            model=model[0] if model else None,
            timeout_s=timeout_s,
        )


def missing_key(config: AnthropicConfig, name: str = "anthropic") -> str | None:
    """The public API needs a key; a server elsewhere (a gateway, a test) may do without."""
    if config.api_key or config.base_url != DEFAULT_BASE_URL:
        return None
    if name != "anthropic":
        return (
            f"no API key for the `{name}` provider: its [providers.{name}] table sends "
            "requests to the Anthropic API; name the variable that holds the key with "
            "`api_key_env`"
        )
    return (
        "no API key for the Anthropic API: set `MNC_ANTHROPIC_API_KEY` (or "
        "`ANTHROPIC_API_KEY`), point `MNC_ANTHROPIC_BASE_URL` at another server, or run "
        "with `--models scripted:FILE`"
    )


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, config: AnthropicConfig | None = None, *, name: str = "anthropic") -> None:
        import anthropic

        self.name = name
        self.config = config or AnthropicConfig.from_env()
        self._client = anthropic.Anthropic(
            # A server that needs no key still gets a header: the SDK wants one.
            api_key=self.config.api_key or "none",
            base_url=self.config.base_url,
            max_retries=0,
            timeout=self.config.timeout_s,
        )

    def model_for(self, declared: str) -> str:
        return self.config.model or declared

    def describe(self) -> str:
        model = f", model {self.config.model}" if self.config.model else ""
        return f"{self.config.base_url}{model}"

    def close(self) -> None:
        self._client.close()

    # --- the request --------------------------------------------------------------------

    def params(self, request: ModelRequest) -> dict[str, Any]:
        """The keyword arguments of `messages.create` (a `MessageCreateParams`)."""
        system = [m for m in request.messages if m.get("role") == "system"]
        params: dict[str, Any] = {
            "model": self.model_for(request.model),
            "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
            "messages": _messages([m for m in request.messages if m.get("role") != "system"]),
        }
        if system:
            text = "\n\n".join(str(m.get("content") or "") for m in system)
            params["system"] = [{"type": "text", "text": text, "cache_control": _CACHED}]
        if request.temperature is not None:
            params["temperature"] = request.temperature
        schema, _, _ = response_schema(request.output_schema)
        params["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
        if request.tools:
            tools: list[dict[str, Any]] = [
                {"name": s.name, "description": s.description, "input_schema": s.parameters}
                for s in request.tools
            ]
            tools[-1] = {**tools[-1], "cache_control": _CACHED}
            params["tools"] = tools
            params["tool_choice"] = {"type": request.tool_choice}
        return params

    def complete(self, request: ModelRequest) -> ModelReply:
        import anthropic

        why = missing_key(self.config, self.name)
        if why is not None:
            raise ModelCallError(TOOL_ERROR, why)
        timeout = request.timeout_s if request.timeout_s is not None else self.config.timeout_s
        try:
            message = self._client.messages.create(**self.params(request), timeout=timeout)
        except anthropic.APITimeoutError:
            raise ModelCallError(TIMEOUT, f"no answer within {timeout:g}s") from None
        except anthropic.APIConnectionError as e:
            raise ModelCallError(
                TRANSIENT, f"cannot reach Anthropic: {self._scrub(str(e))}"
            ) from None
        except anthropic.APIStatusError as e:
            status = e.status_code
            kind = TRANSIENT if status in (408, 409, 429) or status >= 500 else TOOL_ERROR
            raise ModelCallError(
                kind, f"Anthropic answered {status}: {self._scrub(e.message)}"
            ) from None
        return self._reply(message, request)

    def _reply(self, message: anthropic.types.Message, request: ModelRequest) -> ModelReply:
        usage = Usage(
            message.usage.input_tokens,
            message.usage.output_tokens,
            cache_read_tokens=message.usage.cache_read_input_tokens or 0,
            cache_write_tokens=message.usage.cache_creation_input_tokens or 0,
        )
        if message.stop_reason == "refusal":
            raise ModelCallError(REJECTED, "the model refused")
        if message.stop_reason == "max_tokens":
            raise ModelCallError(
                MALFORMED_OUTPUT,
                f"the reply was cut off at the token limit ({request.max_tokens} tokens)",
            )
        calls = [
            ToolCall(block.id, block.name, json.dumps(block.input, ensure_ascii=False))
            for block in message.content
            if block.type == "tool_use"
        ]
        if calls:
            return ModelReply(None, calls, usage, message.model)
        texts = [block.text for block in message.content if block.type == "text"]
        if not texts:
            raise ModelCallError(MALFORMED_OUTPUT, "the reply has neither text nor tool calls")
        content = "".join(texts)
        _, _, wrapped = response_schema(request.output_schema)
        return ModelReply(_unwrap(content) if wrapped else content, [], usage, message.model)

    def _scrub(self, text: str) -> str:
        key = self.config.api_key
        return scrub_key(text, key) if key else text


def _messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Chat Completions conversation as Anthropic's `messages`: tool calls as
    `tool_use` blocks, consecutive tool results as one user message of `tool_result`s."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": message["tool_call_id"],
                "content": str(message.get("content") or ""),
            }
            last = out[-1] if out else None
            if last is not None and last["role"] == "user" and isinstance(last["content"], list):
                last["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        elif role == "assistant" and message.get("tool_calls"):
            blocks: list[dict[str, Any]] = []
            if message.get("content"):
                blocks.append({"type": "text", "text": str(message["content"])})
            for call in message["tool_calls"]:
                function = call["function"]
                try:
                    arguments = json.loads(function.get("arguments") or "{}")
                except ValueError:
                    arguments = {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call["id"],
                        "name": function["name"],
                        "input": arguments if isinstance(arguments, dict) else {},
                    }
                )
            out.append({"role": "assistant", "content": blocks})
        else:
            out.append({"role": str(role), "content": str(message.get("content") or "")})
    return out
