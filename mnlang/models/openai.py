"""The `openai` provider: an OpenAI-compatible Chat Completions client on the official
`openai` SDK (imported only when an agent uses the provider, so `import mnlang` and
`mnc --help` stay light).

Configuration comes from the environment (see `OpenAIConfig.from_env`): the base URL
(`MNC_OPENAI_BASE_URL`, default the OpenAI API), the key (`MNC_OPENAI_API_KEY`, else
`OPENAI_API_KEY`; a server on this machine needs none), and a few knobs for servers
that differ from OpenAI's. The model is the agent's `model:` unless `MNC_OPENAI_MODEL`
names one for every agent (a local server serving one model). A project's
`[providers.NAME]` table (`OpenAIConfig.from_table`) configures another
OpenAI-compatible server under its own name, or fills in what the environment leaves
unset for `openai` itself; a key is never written there, only the variable that holds it.

Each request asks for structured output: `response_format` carries a JSON Schema of the
agent's return type, made to fit OpenAI's strict mode where it can (every property
listed, the ones with defaults nullable; a root that is not an object is wrapped as
`{"value": ...}` and unwrapped again). Tools are offered as functions.

The SDK's own retries are off (`max_retries=0`): its retries would be invisible to the
journal. The provider sends a request again itself, inside one attempt: a connection
error, a 408, 409, 429 or 5xx is sent again up to `retries` times, after the server's
`Retry-After` (or `retry-after-ms`) when it gives one, else after a short exponential
backoff; each retry is reported in the reply (or the error) for the runtime to journal.
A timeout is not retried here: the agent's `retry` decides. Once the transport gives
up, the failure is `transient`. Other 4xx answers are `tool_error`; a reply cut off at
`max_tokens` or one that is neither text nor tool calls is `malformed_output`; a refusal
(or a reply stopped by the content filter) is `rejected`.

The API key is sent in the `Authorization` header only (none at all without a key). It
is never part of a message, and any text from the server is scrubbed of it before it
reaches an error.
"""

from __future__ import annotations

import copy
import email.utils
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from mnlang.errors import MALFORMED_OUTPUT, REJECTED, TIMEOUT, TOOL_ERROR, TRANSIENT
from mnlang.models.base import (
    ModelCallError,
    ModelReply,
    ModelRequest,
    ToolCall,
    TransportRetry,
    Usage,
)

if TYPE_CHECKING:
    import openai
    from openai.types import CompletionUsage
    from openai.types.chat import ChatCompletion

DEFAULT_BASE_URL = "https://api.openai.com/v1"
WRAPPER_KEY = "value"
"""The property a non-object answer is wrapped in, since a structured output is an object."""
RETRIED_STATUSES = frozenset({408, 409, 429})
"""Besides 5xx: the answers worth sending the same request again for."""

ResponseFormat = Literal["json_schema", "json_object", "none"]
_RESPONSE_FORMATS: tuple[ResponseFormat, ...] = ("json_schema", "json_object", "none")


@dataclass(frozen=True)
class OpenAIConfig:
    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = None
    model: str | None = None
    """One model for every agent (None: each agent's `model:`)."""
    timeout_s: float = 120.0
    """Per request, for agents without a `timeout:`."""
    retries: int = 2
    """Transport retries of one request (429, 5xx, connection errors)."""
    max_retry_wait_s: float = 60.0
    """The longest `Retry-After` honoured; a server asking for more fails the attempt."""
    response_format: ResponseFormat = "json_schema"
    max_tokens_field: str = "max_completion_tokens"

    def __repr__(self) -> str:  # never show the key
        key = "set" if self.api_key else "none"
        return f"OpenAIConfig(base_url={self.base_url!r}, api_key={key}, model={self.model!r})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OpenAIConfig:
        """The `openai` provider's settings: the `MNC_OPENAI_*` variables."""
        return cls.from_table("openai", {}, environ)

    @classmethod
    def from_table(
        cls, name: str, table: Mapping[str, Any], environ: Mapping[str, str] | None = None
    ) -> OpenAIConfig:
        """The settings of provider `name` from its `[providers.NAME]` table (keys as in
        `mnlang.project.PROVIDER_KEYS`). For `openai` the `MNC_OPENAI_*` variables win
        over the table; a provider's key is read from the variable its `api_key_env`
        names (for `openai` without one: `MNC_OPENAI_API_KEY`, else `OPENAI_API_KEY`)."""
        env = os.environ if environ is None else environ
        builtin = name == "openai"

        def setting(variable: str, key: str) -> tuple[str, str] | None:
            """The value and where it was found, for messages."""
            if builtin:
                value = env.get(variable, "").strip()
                if value:
                    return value, variable
            if table.get(key) is not None:
                return str(table[key]).strip(), f"`{key}` of [providers.{name}]"
            return None

        def text(variable: str, key: str) -> str | None:
            found = setting(variable, key)
            return found[0] or None if found else None

        def number(variable: str, key: str, default: float) -> float:
            found = setting(variable, key)
            if found is None:
                return default
            value, where = found
            try:
                parsed = float(value)
            except ValueError:
                raise ValueError(f"{where} must be a number, not {value!r}") from None
            if parsed < 0:
                raise ValueError(f"{where} must not be negative")
            return parsed

        found = setting("MNC_OPENAI_RESPONSE_FORMAT", "response_format")
        response_format, where = found or ("json_schema", "")
        if response_format not in _RESPONSE_FORMATS:
            raise ValueError(f"{where} must be one of {', '.join(_RESPONSE_FORMATS)}")
        found = setting("MNC_OPENAI_MAX_TOKENS_FIELD", "max_tokens_field")
        max_tokens_field, where = found or ("max_completion_tokens", "")
        if max_tokens_field not in ("max_completion_tokens", "max_tokens"):
            raise ValueError(f"{where} must be `max_completion_tokens` or `max_tokens`")
        key_variable = table.get("api_key_env")
        if key_variable is not None:
            api_key = env.get(str(key_variable), "").strip() or None
        elif builtin:
            api_key = text("MNC_OPENAI_API_KEY", "") or text("OPENAI_API_KEY", "")
        else:
            api_key = None
        return cls(
            base_url=(text("MNC_OPENAI_BASE_URL", "base_url") or DEFAULT_BASE_URL).rstrip("/"),
            api_key=api_key,
            model=text("MNC_OPENAI_MODEL", "model"),
            timeout_s=number("MNC_OPENAI_TIMEOUT", "timeout", cls.timeout_s),
            retries=int(number("MNC_OPENAI_RETRIES", "retries", cls.retries)),
            max_retry_wait_s=number(
                "MNC_OPENAI_MAX_RETRY_WAIT", "max_retry_wait", cls.max_retry_wait_s
            ),
            response_format=response_format,  # type: ignore[arg-type]
            max_tokens_field=max_tokens_field,
        )


def missing_key(config: OpenAIConfig) -> str | None:
    """Why a request cannot be sent: the public API needs a key; a server elsewhere (a
    local one) may do without."""
    if config.api_key or config.base_url != DEFAULT_BASE_URL:
        return None
    return (
        "no API key for the OpenAI API: set `MNC_OPENAI_API_KEY` (or `OPENAI_API_KEY`), "
        "point `MNC_OPENAI_BASE_URL` at another server, or run with `--models scripted:FILE`"
    )


class OpenAIProvider:
    name = "openai"

    def __init__(
        self,
        config: OpenAIConfig | None = None,
        *,
        name: str = "openai",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import openai

        self.name = name
        self.config = config or OpenAIConfig.from_env()
        self._sleep = sleep
        self._client = openai.OpenAI(
            # The SDK wants a key; without one, `_headers` omits the Authorization header.
            api_key=self.config.api_key or "none",
            base_url=self.config.base_url,
            max_retries=0,
            timeout=self.config.timeout_s,
        )
        self._headers: dict[str, Any] = (
            {} if self.config.api_key else {"Authorization": openai.omit}
        )

    def close(self) -> None:
        self._client.close()

    def model_for(self, declared: str) -> str:
        return self.config.model or declared

    # --- the request --------------------------------------------------------------------

    def body(self, request: ModelRequest) -> dict[str, Any]:
        """The JSON body of a Chat Completions request (the keyword arguments of
        `chat.completions.create`, a `CompletionCreateParamsNonStreaming`)."""
        body: dict[str, Any] = {
            "model": self.model_for(request.model),
            "messages": request.messages,
        }
        if request.max_tokens is not None:
            body[self.config.max_tokens_field] = request.max_tokens
        if request.temperature is not None:
            body["temperature"] = request.temperature
        mode = self.config.response_format
        if mode == "json_schema":
            schema, strict, _ = response_schema(request.output_schema)
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": _function_name(request.short_agent),
                    "schema": schema,
                    "strict": strict,
                },
            }
        elif mode == "json_object":
            body["response_format"] = {"type": "json_object"}
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": spec.name,
                        "description": spec.description,
                        "parameters": spec.parameters,
                    },
                }
                for spec in request.tools
            ]
            body["tool_choice"] = request.tool_choice
        return body

    def describe(self) -> str:
        """Where requests go and for which model, as `mnc run` prints it (never the key)."""
        model = f", model {self.config.model}" if self.config.model else ""
        return f"{self.config.base_url}{model}"

    def complete(self, request: ModelRequest) -> ModelReply:
        import openai

        why = missing_key(self.config)
        if why is not None:
            raise ModelCallError(TOOL_ERROR, why)
        body = self.body(request)
        timeout = request.timeout_s if request.timeout_s is not None else self.config.timeout_s
        retries: list[TransportRetry] = []
        while True:
            try:
                completion = self._client.chat.completions.create(
                    **body, timeout=timeout, extra_headers=self._headers
                )
            except openai.APITimeoutError:  # before APIConnectionError: it is one
                raise ModelCallError(
                    TIMEOUT, f"no answer from {self._host()} within {timeout:g}s", retries
                ) from None
            except openai.APIConnectionError as e:
                cause = e.__cause__ or e  # the transport's own error says more than the SDK's
                why = self._scrub(str(cause)) or type(cause).__name__
                reason = f"cannot reach {self._host()}: {why}"
                self._again(retries, reason, None, None)
                continue
            except openai.APIStatusError as e:
                status = e.status_code
                if status in RETRIED_STATUSES or status >= 500:
                    reason = f"{self._host()} answered {status}: {self._server_message(e)}"
                    self._again(retries, reason, status, _retry_after(e.response.headers))
                    continue
                raise ModelCallError(
                    TOOL_ERROR,
                    f"{self._host()} refused the request ({status}): {self._server_message(e)}",
                    retries,
                ) from None
            except json.JSONDecodeError:
                completion = None
            if not isinstance(completion, openai.types.chat.ChatCompletion):
                # The SDK hands back a body that is not JSON as text, or fails to decode it.
                raise ModelCallError(
                    TRANSIENT, f"{self._host()} sent a reply that is not JSON", retries
                )
            return self._reply(completion, request, retries)

    def _again(
        self,
        retries: list[TransportRetry],
        reason: str,
        status: int | None,
        asked_s: float | None,
    ) -> None:
        """Wait before sending the request again, or give up (`transient`)."""
        if len(retries) >= self.config.retries:
            tries = len(retries) + 1
            shown = "1 try" if tries == 1 else f"{tries} tries"
            raise ModelCallError(TRANSIENT, f"{reason} (gave up after {shown})", retries)
        if asked_s is not None and asked_s > self.config.max_retry_wait_s:
            raise ModelCallError(
                TRANSIENT,
                f"{reason}; the server asked to wait {asked_s:g}s, more than the "
                f"{self.config.max_retry_wait_s:g}s allowed",
                retries,
            )
        delay = asked_s if asked_s is not None else min(0.5 * 2 ** len(retries), 8.0)
        retries.append(TransportRetry(reason, delay, status))
        self._sleep(delay)

    # --- the reply ----------------------------------------------------------------------

    def _reply(
        self, completion: ChatCompletion, request: ModelRequest, retries: list[TransportRetry]
    ) -> ModelReply:
        """The SDK's `ChatCompletion` as a reply. The SDK builds it without validation (a
        server may leave out what OpenAI always sends), so every field is read with care."""

        def malformed(why: str) -> ModelCallError:
            return ModelCallError(MALFORMED_OUTPUT, why, retries)

        choices = getattr(completion, "choices", None) or []
        choice = choices[0] if isinstance(choices, list) and choices else None
        message = getattr(choice, "message", None)
        if message is None:
            raise malformed(f"{self._host()} sent a reply without `choices[0].message`")
        usage = _usage(getattr(completion, "usage", None))
        model = str(getattr(completion, "model", None) or self.model_for(request.model))
        refusal = getattr(message, "refusal", None)
        if refusal:
            raise ModelCallError(
                REJECTED, f"the model refused: {self._scrub(str(refusal))}", retries
            )
        finish = getattr(choice, "finish_reason", None)
        if finish == "content_filter":
            raise ModelCallError(REJECTED, "the reply was stopped by a content filter", retries)
        if finish == "length":
            raise malformed(
                f"the reply was cut off at the token limit ({request.max_tokens} tokens)"
            )
        raw_calls = getattr(message, "tool_calls", None) or []
        if raw_calls:
            calls = []
            for i, call in enumerate(raw_calls):
                function = getattr(call, "function", None)
                name = getattr(function, "name", None)
                if not isinstance(name, str) or not name:
                    raise malformed("the reply has a tool call without a function name")
                call_id = getattr(call, "id", None)
                arguments = getattr(function, "arguments", None)
                calls.append(ToolCall(str(call_id or f"call_{i}"), name, str(arguments or "{}")))
            return ModelReply(None, calls, usage, model, retries)
        content = getattr(message, "content", None)
        if not isinstance(content, str):
            raise malformed("the reply has neither text nor tool calls")
        _, _, wrapped = response_schema(request.output_schema)
        if wrapped and self.config.response_format == "json_schema":
            content = _unwrap(content)
        return ModelReply(content, [], usage, model, retries)

    def _host(self) -> str:
        return urlsplit(self.config.base_url).hostname or self.config.base_url

    def _scrub(self, text: str) -> str:
        key = self.config.api_key
        return scrub_key(text, key) if key else text

    def _server_message(self, error: openai.APIStatusError) -> str:
        """The server's own words: `error.message` of the body (the SDK keeps the body's
        `error` object as `body`), else the status line's reason."""
        body = error.body
        text = body.get("message") if isinstance(body, dict) else body
        if not isinstance(text, str) or not text:
            text = error.response.reason_phrase or "no reason given"
        # Scrub first: a key cut in two at the 200th character would leave its prefix.
        text = self._scrub(" ".join(text.split()))
        return text if len(text) <= 200 else text[:197] + "..."


# A run of this many of a key's first characters is taken for (part of) the key: servers
# echo a key's prefix ("Incorrect API key provided: sk-abc123...") and a cut can end in one.
KEY_PREFIX_CHARS = 8


def scrub_key(text: str, key: str) -> str:
    """`text` with the key, and any run of at least `KEY_PREFIX_CHARS` of its first
    characters, replaced by `***`."""
    text = text.replace(key, "***")
    if len(key) < KEY_PREFIX_CHARS:
        return text
    head = key[:KEY_PREFIX_CHARS]
    out: list[str] = []
    at = 0
    while (found := text.find(head, at)) >= 0:
        end = found + KEY_PREFIX_CHARS
        while end < len(text) and end - found < len(key) and text[end] == key[end - found]:
            end += 1
        out.append(text[at:found] + "***")
        at = end
    out.append(text[at:])
    return "".join(out)


def _usage(raw: CompletionUsage | None) -> Usage | None:
    """The usage a reply reports. OpenAI counts cached prompt tokens inside
    `prompt_tokens` (`prompt_tokens_details.cached_tokens`); `Usage` keeps them apart, so
    that a price table with `cache_read_per_million` prices them as cache reads."""
    prompt = getattr(raw, "prompt_tokens", None)
    completion = getattr(raw, "completion_tokens", None)
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    cached = getattr(getattr(raw, "prompt_tokens_details", None), "cached_tokens", None)
    cached = min(cached, prompt) if isinstance(cached, int) and cached > 0 else 0
    return Usage(prompt - cached, completion, cache_read_tokens=cached)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asks to wait: `retry-after-ms`, or `Retry-After` in seconds or as
    an HTTP date."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(float(millis) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _unwrap(content: str) -> str:
    try:
        data = json.loads(content)
    except ValueError:
        return content
    if isinstance(data, dict) and set(data) == {WRAPPER_KEY}:
        return json.dumps(data[WRAPPER_KEY], ensure_ascii=False)
    return content


def _function_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in name)[:64] or "answer"


# --- schemas for structured output ---------------------------------------------------


def response_schema(schema: dict[str, Any]) -> tuple[dict[str, Any], bool, bool]:
    """The schema to send, whether it fits OpenAI's strict mode, and whether the answer is
    wrapped in `{"value": ...}` (a root that is not an object)."""
    out = copy.deepcopy(schema)
    out.pop("$schema", None)
    defs = out.pop("$defs", {})
    ref = out.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and len(out) == 1:
        out = copy.deepcopy(defs[ref.removeprefix("#/$defs/")])
    wrapped = out.get("type") != "object" or "properties" not in out
    if wrapped:
        out = {
            "type": "object",
            "properties": {WRAPPER_KEY: out},
            "required": [WRAPPER_KEY],
            "additionalProperties": False,
        }
    if defs:
        out["$defs"] = defs
    strict = _strictable(out)
    if strict:
        out = _strict(out)
    return out, strict, wrapped


def _strictable(schema: Any) -> bool:
    """Strict mode needs every object closed and every value typed: no maps, no `json`."""
    if isinstance(schema, dict):
        if schema == {}:
            return False
        if "additionalProperties" in schema and schema["additionalProperties"] is not False:
            return False
        named = [*schema.get("properties", {}).values(), *schema.get("$defs", {}).values()]
        nested = [schema[k] for k in ("items", "anyOf") if k in schema]
        return all(_strictable(v) for v in [*named, *nested])
    if isinstance(schema, list):
        return all(_strictable(v) for v in schema)
    return True


def _strict(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) if k in ("items", "anyOf") else v for k, v in schema.items()}
    for key in ("properties", "$defs"):
        if key in schema:
            out[key] = {name: _strict(v) for name, v in schema[key].items()}
    if "properties" in schema:
        required = set(schema.get("required", []))
        out["properties"] = {
            name: sub if name in required else _nullable(sub)
            for name, sub in out["properties"].items()
        }
        out["required"] = list(schema["properties"])
    return out


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if schema.get("type") == "null" or any(
        s.get("type") == "null" for s in schema.get("anyOf", [])
    ):
        return schema
    return {"anyOf": [schema, {"type": "null"}]}
