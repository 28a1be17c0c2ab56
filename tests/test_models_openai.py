"""The `openai` provider (on the official `openai` SDK) against a real HTTP server on
localhost (`chat_server.py`), which validates each request with the SDK's request type
and answers with the SDK's `ChatCompletion`.

Each test queues the server's answers, sends one request through `OpenAIProvider` and
checks the reply or the failure's kind, the transport retries, and what the server saw.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mnlang.errors import MALFORMED_OUTPUT, REJECTED, TIMEOUT, TOOL_ERROR, TRANSIENT
from mnlang.models.base import ModelCallError, ModelRequest, ToolSpec
from mnlang.models.openai import DEFAULT_BASE_URL, OpenAIConfig, OpenAIProvider, response_schema
from tests.chat_server import ChatServer, chat_server

KEY = "sk-test-0123456789-SECRET"
TRIAGE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$ref": "#/$defs/Triage",
    "$defs": {
        "Triage": {
            "type": "object",
            "properties": {
                "category": {"type": "string", "enum": ["damaged", "late"]},
                "confidence": {"type": "number"},
                "note": {"type": "string"},
            },
            "required": ["category", "confidence"],
            "additionalProperties": False,
        }
    },
}
SEARCH = ToolSpec(
    "search",
    "Tool `search(query: str) -> list[str]`.",
    {
        "type": "object",
        "properties": {"query": {"type": "string"}},
        "required": ["query"],
        "additionalProperties": False,
    },
)


@pytest.fixture
def server() -> Iterator[ChatServer]:
    with chat_server() as s:
        yield s


class Sleeps:
    """Stands in for `time.sleep`: records the waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def provider(server: ChatServer, sleep: Any = None, **config: Any) -> OpenAIProvider:
    settings = OpenAIConfig(**{"base_url": server.base_url, "api_key": KEY, **config})
    return OpenAIProvider(settings, sleep=sleep or Sleeps())


def request(**changes: Any) -> ModelRequest:
    fields: dict[str, Any] = {
        "agent": "refund.triage",
        "model": "gpt-5.4-mini",
        "messages": [
            {"role": "system", "content": "Answer with JSON."},
            {"role": "user", "content": "Classify: the mug arrived broken"},
        ],
        "output_schema": TRIAGE_SCHEMA,
        "max_tokens": 400,
        "temperature": 0.2,
        "timeout_s": 5.0,
    }
    fields.update(changes)
    return ModelRequest(**fields)


def fails(p: OpenAIProvider, req: ModelRequest) -> ModelCallError:
    with pytest.raises(ModelCallError) as caught:
        p.complete(req)
    assert KEY not in str(caught.value)
    return caught.value


# --- the request ------------------------------------------------------------------------


def test_request_shape_and_structured_output(server: ChatServer) -> None:
    server.chat({"category": "damaged", "confidence": 0.93, "note": None})
    reply = provider(server).complete(request())
    assert json.loads(reply.text or "") == {"category": "damaged", "confidence": 0.93, "note": None}
    [seen] = server.requests
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["Authorization"] == f"Bearer {KEY}"
    body = seen.body
    assert body["model"] == "gpt-5.4-mini"
    assert body["messages"][1] == {"role": "user", "content": "Classify: the mug arrived broken"}
    assert body["max_completion_tokens"] == 400
    assert body["temperature"] == 0.2
    assert "tools" not in body
    format_ = body["response_format"]
    assert format_["type"] == "json_schema"
    assert format_["json_schema"]["name"] == "triage"
    assert format_["json_schema"]["strict"] is True
    schema = format_["json_schema"]["schema"]
    # Strict mode: the root record is inlined, every property is required, and the one with
    # no `required` entry may be null.
    assert schema["type"] == "object" and "$schema" not in schema
    assert schema["required"] == ["category", "confidence", "note"]
    assert schema["properties"]["note"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert schema["properties"]["category"] == {"type": "string", "enum": ["damaged", "late"]}


def test_a_non_object_answer_is_wrapped_and_unwrapped(server: ChatServer) -> None:
    schema = {"type": "array", "items": {"type": "string"}}
    server.chat({"value": ["a", "b"]})
    reply = provider(server).complete(request(output_schema=schema))
    assert json.loads(reply.text or "") == ["a", "b"]
    sent = server.requests[0].body["response_format"]["json_schema"]["schema"]
    assert sent["properties"]["value"] == schema and sent["required"] == ["value"]


def test_a_map_or_json_type_is_sent_without_strict_mode() -> None:
    schema = {"type": "object", "additionalProperties": {"type": "integer"}}
    sent, strict, wrapped = response_schema(schema)
    assert wrapped and not strict
    assert sent["properties"]["value"] == schema


def test_the_max_tokens_field_and_response_format_can_be_changed(server: ChatServer) -> None:
    server.chat("{}")
    server.chat("{}")
    provider(server, max_tokens_field="max_tokens", response_format="json_object").complete(
        request()
    )
    provider(server, response_format="none").complete(request())
    first, second = (r.body for r in server.requests)
    assert first["max_tokens"] == 400 and "max_completion_tokens" not in first
    assert first["response_format"] == {"type": "json_object"}
    assert "response_format" not in second


def test_one_model_for_every_agent(server: ChatServer) -> None:
    server.chat("{}")
    provider(server, model="llama3.2").complete(request())
    assert server.requests[0].body["model"] == "llama3.2"


def test_no_key_sends_no_authorization_header(server: ChatServer) -> None:
    server.chat("{}")
    p = OpenAIProvider(OpenAIConfig(base_url=server.base_url), sleep=Sleeps())
    p.complete(request())
    assert "Authorization" not in server.requests[0].headers


def test_the_openai_api_without_a_key_is_refused_before_any_request() -> None:
    p = OpenAIProvider(OpenAIConfig(base_url=DEFAULT_BASE_URL), sleep=Sleeps())
    error = fails(p, request())
    assert error.kind == TOOL_ERROR and "MNC_OPENAI_API_KEY" in error.message


# --- the reply --------------------------------------------------------------------------


def test_tool_calls_and_usage(server: ChatServer) -> None:
    server.chat(
        None,
        tool_calls=[{"id": "call_a", "name": "search", "arguments": {"query": "mugs"}}],
        usage=(321, 12),
        finish="tool_calls",
    )
    reply = provider(server).complete(request(tools=[SEARCH]))
    assert reply.text is None
    [call] = reply.tool_calls
    assert (call.id, call.name, json.loads(call.arguments)) == (
        "call_a",
        "search",
        {"query": "mugs"},
    )
    assert reply.usage is not None
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (321, 12)
    assert reply.model == "test-model"
    body = server.requests[0].body
    assert body["tool_choice"] == "auto"
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "search",
                "description": SEARCH.description,
                "parameters": SEARCH.parameters,
            },
        }
    ]


def test_the_last_turn_turns_tool_calls_off(server: ChatServer) -> None:
    server.chat("{}")
    provider(server).complete(request(tools=[SEARCH], tool_choice="none"))
    assert server.requests[0].body["tool_choice"] == "none"


def test_a_reply_without_usage_has_none(server: ChatServer) -> None:
    server.chat("{}", usage=None)
    assert provider(server).complete(request()).usage is None


def test_a_truncated_reply_is_malformed_output(server: ChatServer) -> None:
    server.chat('{"category": "dam', finish="length")
    error = fails(provider(server), request())
    assert error.kind == MALFORMED_OUTPUT
    assert "cut off at the token limit (400 tokens)" in error.message


def test_a_body_that_is_not_json_is_transient(server: ChatServer) -> None:
    server.answer(200, raw=b"<html>proxy error</html>")
    error = fails(provider(server), request())
    assert error.kind == TRANSIENT and "not JSON" in error.message


def test_a_reply_without_choices_is_malformed_output(server: ChatServer) -> None:
    server.answer(200, {"id": "x", "choices": []})
    assert fails(provider(server), request()).kind == MALFORMED_OUTPUT


def test_a_refusal_is_rejected(server: ChatServer) -> None:
    server.chat(None, refusal="I can't help")
    error = fails(provider(server), request())
    assert error.kind == REJECTED and "I can't help" in error.message


def test_a_reply_stopped_by_the_content_filter_is_rejected(server: ChatServer) -> None:
    server.chat('{"category": ', finish="content_filter")
    error = fails(provider(server), request())
    assert error.kind == REJECTED and "content filter" in error.message


def test_cached_prompt_tokens_are_kept_apart(server: ChatServer) -> None:
    """OpenAI counts cached tokens inside `prompt_tokens`; `Usage.input_tokens` are the
    uncached ones, so that the price table prices the cached ones as cache reads."""
    server.chat("{}", usage=(1000, 50), cached_tokens=768)
    usage = provider(server).complete(request()).usage
    assert usage is not None
    assert (usage.input_tokens, usage.cache_read_tokens, usage.output_tokens) == (232, 768, 50)


# --- the server checks the requests with the SDK's types ----------------------------------


def test_the_request_is_what_the_sdk_types_accept(server: ChatServer) -> None:
    server.chat(None, tool_calls=[{"name": "search", "arguments": {"query": "mugs"}}])
    provider(server).complete(request(tools=[SEARCH]))
    [params] = server.params
    assert params["response_format"]["type"] == "json_schema"
    assert [m["role"] for m in params["messages"]] == ["system", "user"]
    assert params["tools"][0]["function"]["name"] == "search"


@pytest.mark.parametrize(
    "body, why",
    [
        ({"model": "m", "messages": [{"role": "usr", "content": "hi"}]}, "input_value='usr'"),
        ({"model": "m", "messages": [], "max_complete_tokens": 10}, "max_complete_tokens"),
        ({"messages": []}, "model"),
        (
            {"model": "m", "messages": [], "tools": [{"type": "function", "function": {}}]},
            "function.name",
        ),
    ],
)
def test_the_server_refuses_a_body_the_sdk_types_refuse(body: dict[str, Any], why: str) -> None:
    import httpx2

    with chat_server(allow_invalid=True) as server:
        server.chat("{}")
        answered = httpx2.post(f"{server.base_url}/chat/completions", json=body)
    assert answered.status_code == 400 and why in answered.json()["error"]["message"]
    assert len(server.invalid) == 1 and server.answers  # the queued answer is still there


def test_a_test_whose_client_sent_a_refused_body_fails() -> None:
    """A provider that drifted from the SDK's types fails the test that used it, even
    when the test expected the request to fail."""
    refused = pytest.raises(AssertionError, match="the openai SDK's types refuse")
    with refused, chat_server() as server:
        bad = request(messages=[{"role": "robot", "content": "hi"}])
        assert fails(provider(server), bad).kind == TOOL_ERROR


# --- the transport ------------------------------------------------------------------------


def test_429_waits_as_retry_after_says_then_succeeds(server: ChatServer) -> None:
    sleeps = Sleeps()
    server.answer(429, {"error": {"message": "Rate limit reached"}}, headers={"Retry-After": "3"})
    server.chat({"category": "late", "confidence": 0.5})
    reply = provider(server, sleep=sleeps).complete(request())
    assert json.loads(reply.text or "")["category"] == "late"
    assert sleeps.waits == [3.0]
    [retry] = reply.retries
    assert retry.status == 429 and retry.delay_s == 3.0
    assert "Rate limit reached" in retry.reason
    assert len(server.requests) == 2


def test_retry_after_ms_is_honoured_with_a_real_wait(server: ChatServer) -> None:
    server.answer(503, {}, headers={"retry-after-ms": "200", "Retry-After": "9"})
    server.chat("{}")
    started = time.monotonic()
    reply = provider(server, sleep=time.sleep).complete(request())
    assert time.monotonic() - started >= 0.2
    assert [r.delay_s for r in reply.retries] == [0.2]


def test_retry_after_longer_than_allowed_fails_at_once(server: ChatServer) -> None:
    server.answer(429, {}, headers={"Retry-After": "600"})
    error = fails(provider(server, max_retry_wait_s=60), request())
    assert error.kind == TRANSIENT and "asked to wait 600s" in error.message
    assert len(server.requests) == 1


def test_500_is_retried_then_transient_with_each_retry_reported(server: ChatServer) -> None:
    sleeps = Sleeps()
    for _ in range(3):
        server.answer(500, {"error": {"message": "upstream overloaded"}})
    error = fails(provider(server, sleep=sleeps, retries=2), request())
    assert error.kind == TRANSIENT
    assert "500" in error.message and "gave up after 3 tries" in error.message
    assert [r.status for r in error.retries] == [500, 500]
    assert sleeps.waits == [0.5, 1.0]  # backoff when the server names no wait
    assert len(server.requests) == 3


@pytest.mark.parametrize("status", [408, 409, 502, 529])
def test_other_transient_statuses_are_retried(server: ChatServer, status: int) -> None:
    server.answer(status, {"error": {"message": "try again"}})
    server.chat("{}")
    reply = provider(server).complete(request())
    assert [r.status for r in reply.retries] == [status]


def test_the_sdk_retries_nothing_itself(server: ChatServer) -> None:
    """`max_retries=0`: with no transport retries configured, a 429 is one request."""
    server.answer(429, {"error": {"message": "slow down"}})
    error = fails(provider(server, retries=0), request())
    assert error.kind == TRANSIENT and "gave up after 1 try" in error.message
    assert len(server.requests) == 1


def test_a_connection_error_is_retried_then_transient() -> None:
    with chat_server() as s:
        url = s.base_url
    sleeps = Sleeps()
    p = OpenAIProvider(OpenAIConfig(base_url=url, api_key=KEY, retries=1), sleep=sleeps)
    error = fails(p, request())
    assert error.kind == TRANSIENT and "cannot reach 127.0.0.1" in error.message
    assert len(error.retries) == 1


def test_a_timeout_is_not_retried_by_the_transport(server: ChatServer) -> None:
    server.chat("{}", delay_s=1.0)
    started = time.monotonic()
    error = fails(provider(server), request(timeout_s=0.2))
    assert error.kind == TIMEOUT and "within 0.2s" in error.message
    assert time.monotonic() - started < 0.9
    assert len(server.requests) == 1


def test_a_4xx_is_tool_error_and_the_key_is_scrubbed(server: ChatServer) -> None:
    message = f"Incorrect API key provided: {KEY}. You can find your API key in settings."
    server.answer(401, {"error": {"message": message}})
    error = fails(provider(server), request())
    assert error.kind == TOOL_ERROR
    assert "refused the request (401)" in error.message and "***" in error.message
    assert len(server.requests) == 1


@pytest.mark.parametrize("offset", range(150, 205, 3))
def test_a_key_straddling_the_cut_leaves_no_prefix(server: ChatServer, offset: int) -> None:
    key = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1v2W3x4Y5"  # 58 characters
    message = "x" * offset + key + " was refused"
    server.answer(401, {"error": {"message": message}})
    error = fails(provider(server, api_key=key), request())
    assert not any(key[i : i + 6] in error.message for i in range(len(key) - 6))


@pytest.mark.parametrize("shown", [8, 12, 24, 40])
def test_a_server_echoing_part_of_the_key_has_it_scrubbed(server: ChatServer, shown: int) -> None:
    key = "sk-proj-" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4"
    server.answer(401, {"error": {"message": f"Incorrect API key provided: {key[:shown]}****"}})
    error = fails(provider(server, api_key=key), request())
    assert key[:8] not in error.message and "provided: ***" in error.message


def test_the_config_never_shows_the_key() -> None:
    config = OpenAIConfig.from_env({"OPENAI_API_KEY": KEY, "MNC_OPENAI_BASE_URL": "http://h/v1/"})
    assert config.api_key == KEY and config.base_url == "http://h/v1"
    assert KEY not in repr(config) and KEY not in str(config)
    preferred = OpenAIConfig.from_env({"OPENAI_API_KEY": "a", "MNC_OPENAI_API_KEY": "b"})
    assert preferred.api_key == "b"


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match="MNC_OPENAI_RETRIES"):
        OpenAIConfig.from_env({"MNC_OPENAI_RETRIES": "many"})
    with pytest.raises(ValueError, match="MNC_OPENAI_RESPONSE_FORMAT"):
        OpenAIConfig.from_env({"MNC_OPENAI_RESPONSE_FORMAT": "xml"})


def test_a_worker_imports_the_sdks_its_runs_will_use() -> None:
    """`mnc worker` imports these as it starts, not within its first model request."""
    from mnlang.models.setup import sdk_modules

    assert sdk_modules({}) == ["openai"]
    assert sdk_modules({"MNC_MODELS": "scripted:replies.json"}) == []
    assert sdk_modules({"MNC_REPLIES": "replies.json"}) == []
    assert sdk_modules({"ANTHROPIC_API_KEY": "k"}) == ["openai", "anthropic"]
    tables = json.dumps({"claude": {"kind": "anthropic"}, "local": {"base_url": "http://x"}})
    assert sdk_modules({"MNC_PROVIDERS": tables}) == ["openai", "anthropic"]
