"""The `anthropic` provider through the official SDK against a local Messages API server
that reads each request with the SDK's request type and answers with the SDK's `Message`:
tool use, the system prompt and tools cached, structured output by `output_config`,
cache tokens priced, and errors mapped with the SDK's retries off."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from mnlang.errors import REJECTED, TOOL_ERROR, TRANSIENT
from mnlang.ir.compile import compile_file
from mnlang.models.anthropic import AnthropicConfig, AnthropicProvider
from mnlang.models.base import ModelCallError, ModelRequest
from mnlang.models.setup import ModelSetup
from mnlang.runtime.config import RuntimeConfig
from mnlang.runtime.run import start_run
from mnlang.stores.sqlite import SQLiteStore
from tests.anthropic_server import AnthropicServer, anthropic_server

SOURCE = """
type Answer {
  text: str
  late: bool
}

tool flight_status(flight: str "The flight number, e.g. LX8") -> str {
  impl: "tools:flight_status"
  description: "The flight's live status."
}

agent desk(question: str) -> Answer {
  model: "claude-haiku-4.5"
  provider: "anthropic"
  system: "You are the airline's support agent."
  prompt: "{question}"
  tools: [flight_status]
  max_turns: 2
  max_tokens: 300
}

workflow ask(question: str) -> str {
  a = desk(question)
  return a.text
}
"""

TOOLS = """
def flight_status(flight):
    return "delayed 40 minutes"
"""


@pytest.fixture
def server() -> Iterator[AnthropicServer]:
    with anthropic_server() as s:
        yield s


def provider(server: AnthropicServer) -> AnthropicProvider:
    return AnthropicProvider(AnthropicConfig(api_key="sk-ant-test", base_url=server.base_url))


def test_tool_use_structured_output_and_cached_tokens_priced(
    tmp_path: Path, server: AnthropicServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(
        json.dumps(
            {
                "models": {
                    "claude-haiku-4.5": {
                        "cache_read_per_million": 0.10,
                        "cache_write_per_million": 1.25,
                    }
                }
            }
        ),
        "utf-8",
    )
    monkeypatch.setenv("MNC_PRICES", str(prices))
    (tmp_path / "flow.mn").write_text(SOURCE, "utf-8")
    (tmp_path / "tools.py").write_text(TOOLS, "utf-8")
    ir, diagnostics = compile_file(tmp_path / "flow.mn")
    assert ir is not None, [d.message for d in diagnostics]
    server.reply(
        tool_uses=[{"id": "toolu_1", "name": "flight_status", "input": {"flight": "LX8"}}],
        usage={"cache_creation_input_tokens": 1000},
    )
    server.reply(
        text=json.dumps({"text": "LX8 is 40 minutes late.", "late": True}),
        usage={"input_tokens": 50, "output_tokens": 10, "cache_read_input_tokens": 1000},
    )
    models = ModelSetup(spec="openai", override=provider(server))
    with SQLiteStore(tmp_path / "journal.db") as store:
        outcome = start_run(
            store,
            ir,
            "ask",
            {"question": "Is LX8 late?"},
            run_id="r1",
            config=RuntimeConfig(models=models, commit_ms=0),
        )
        replies = [e.data for e in store.read_journal("r1") if e.kind == "model_reply"]
    assert outcome.status == "completed" and outcome.result == "LX8 is 40 minutes late.", outcome
    assert server.invalid == []
    first: Any = server.params[0]
    assert first["model"] == "claude-haiku-4.5" and first["max_tokens"] == 300
    assert first["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert first["system"][0]["text"].startswith("You are the airline's support agent.")
    (tool,) = first["tools"]
    assert tool["name"] == "flight_status" and tool["cache_control"] == {"type": "ephemeral"}
    assert tool["description"].endswith("The flight's live status.")
    assert (
        tool["input_schema"]["properties"]["flight"]["description"] == "The flight number, e.g. LX8"
    )
    assert first["tool_choice"] == {"type": "auto"}
    schema = first["output_config"]["format"]
    assert schema["type"] == "json_schema" and set(schema["schema"]["properties"]) == {
        "text",
        "late",
    }
    second: Any = server.params[1]
    assert second["messages"][1] == {
        "role": "assistant",
        "content": [
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "flight_status",
                "input": {"flight": "LX8"},
            }
        ],
    }
    assert second["messages"][2]["content"][0]["type"] == "tool_result"
    assert second["messages"][2]["content"][0]["tool_use_id"] == "toolu_1"
    assert "delayed 40 minutes" in second["messages"][2]["content"][0]["content"]
    assert second["tool_choice"] == {"type": "none"}  # the last turn answers
    # input 1.00, output 5.00, cache read 0.10, cache write 1.25 per million
    assert (
        Decimal(replies[0]["cost"])
        == (100 * Decimal("1.00") + 20 * 5 + 1000 * Decimal("1.25")) / 1_000_000
    )
    assert (
        Decimal(replies[1]["cost"])
        == (50 * Decimal("1.00") + 10 * 5 + 1000 * Decimal("0.10")) / 1_000_000
    )
    assert replies[1]["usage"]["cache_read_tokens"] == 1000


def request(**extra: Any) -> ModelRequest:
    return ModelRequest(
        agent="desk",
        model="claude-haiku-4.5",
        messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}],
        output_schema={"type": "string"},
        **extra,
    )


@pytest.mark.parametrize(
    ("status", "kind"), [(529, TRANSIENT), (429, TRANSIENT), (503, TRANSIENT), (400, TOOL_ERROR)]
)
def test_errors_keep_their_kind_and_the_sdk_does_not_retry(
    server: AnthropicServer, status: int, kind: str
) -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "sk-ant-test busy"}}
    server.reply(status, body=error)
    with pytest.raises(ModelCallError) as raised:
        provider(server).complete(request())
    assert raised.value.kind == kind
    assert "sk-ant-test" not in raised.value.message  # the key is scrubbed
    assert len(server.params) == 1  # the runtime owns retries


def test_a_plain_answer_is_unwrapped_and_a_refusal_is_rejected(server: AnthropicServer) -> None:
    server.reply(text=json.dumps({"value": "hello"}))
    reply = provider(server).complete(request())
    assert reply.text == '"hello"' and reply.model == "claude-haiku-4.5"
    schema: Any = server.params[0]["output_config"]
    assert schema["format"]["schema"]["properties"] == {"value": {"type": "string"}}
    server.reply(text="", stop_reason="refusal")
    with pytest.raises(ModelCallError) as raised:
        provider(server).complete(request())
    assert raised.value.kind == REJECTED


def test_the_public_api_without_a_key_is_refused_before_a_run() -> None:
    env = {"MNC_MODELS": "openai"}
    setup = ModelSetup.from_spec("openai", ".", env)
    with pytest.MonkeyPatch.context() as patch:
        for name in ("MNC_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY", "MNC_ANTHROPIC_BASE_URL"):
            patch.delenv(name, raising=False)
        why = setup.unusable("anthropic")
    assert why is not None and "MNC_ANTHROPIC_API_KEY" in why
