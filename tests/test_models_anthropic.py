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


CLAUDE_FLOW = """
agent greet(name: str) -> str {
  model: "claude-haiku-4.5"
  provider: "claude"
  prompt: "Greet {name}."
}

workflow hello(name: str) -> str {
  said = greet(name)
  return said
}
"""


def test_a_projects_anthropic_kind_provider_answers_its_agents(
    tmp_path: Path, server: AnthropicServer
) -> None:
    """`[providers.claude]` with `kind = "anthropic"`: a Messages API endpoint under its own
    name, its key read from the variable `api_key_env` names; refused before the run is
    created while that variable is unset."""
    from tests.test_project import mnc

    (tmp_path / "flow.mn").write_text(CLAUDE_FLOW)
    (tmp_path / "mnlang.toml").write_text(
        f'[providers.claude]\nkind = "anthropic"\nbase_url = "{server.base_url}"\n'
        'api_key_env = "CLAUDE_KEY"\nmodel = "claude-served"\ntimeout = 30\n'
    )
    args = ("run", "flow.mn", "--input", '{"name": "Ada"}')
    refused = mnc(tmp_path, *args, "--id", "r0")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "`CLAUDE_KEY`, which is not set" in refused.stderr
    assert not server.requests and not (tmp_path / ".mnc").exists()
    server.reply(text=json.dumps({"value": "Hello, Ada"}), model="claude-served")
    ran = mnc(tmp_path, *args, "--id", "r1", CLAUDE_KEY="sk-ant-claude-0123456789")
    assert ran.returncode == 0 and "Hello, Ada" in ran.stdout, ran.stderr
    assert "claude (" in ran.stderr  # who answered, as `mnc run` prints it
    assert server.invalid == []
    (request,) = server.requests
    sent = [request.headers.get(h, "") for h in ("x-api-key", "authorization")]
    assert any(v.endswith("sk-ant-claude-0123456789") for v in sent)  # the SDK picks the header
    assert request.body["model"] == "claude-served"
    log = mnc(tmp_path, "log", "r1", "--json")
    assert "sk-ant-claude-0123456789" not in log.stdout
    assert '"provider": "claude"' in log.stdout.replace('":"', '": "')


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[providers.claude]\nkind = "anthropic"\nretries = 2\n', "providers.claude.retries"),
        ('[providers.anthropic]\nkind = "openai"\n', "providers.anthropic.kind"),
        ('[providers.openai]\nkind = "anthropic"\n', "providers.openai.kind"),
    ],
)
def test_a_wrong_anthropic_table_is_named(tmp_path: Path, table: str, message: str) -> None:
    from mnlang.project import ProjectError, load

    (tmp_path / "mnlang.toml").write_text(table)
    with pytest.raises(ProjectError, match=message):
        load(tmp_path / "mnlang.toml")


def test_the_builtin_anthropic_table_fills_in_what_the_environment_leaves() -> None:
    table = {"model": "claude-table", "timeout": 7, "api_key_env": "TEAM_ANTHROPIC_KEY"}
    env = {"TEAM_ANTHROPIC_KEY": "sk-team", "MNC_ANTHROPIC_MODEL": "claude-env"}
    config = AnthropicConfig.from_table("anthropic", table, env)
    assert (config.api_key, config.model, config.timeout_s) == ("sk-team", "claude-env", 7.0)
    other = AnthropicConfig.from_table("claude", {}, {"ANTHROPIC_API_KEY": "sk-not-mine"})
    assert other.api_key is None  # another provider never takes the built-in's key
    setup = ModelSetup(spec="openai", tables={"claude": {"kind": "anthropic"}})
    why = setup.unusable("claude")
    assert why is not None and "api_key_env" in why


def test_the_anthropic_tables_of_the_docs_are_valid(tmp_path: Path) -> None:
    from mnlang.project import load

    text = (Path(__file__).resolve().parent.parent / "docs" / "models.md").read_text()
    section = text.split('A table with `kind = "anthropic"`', 1)[1]
    (tmp_path / "mnlang.toml").write_text(section.split("```toml\n", 1)[1].split("```", 1)[0])
    tables = load(tmp_path / "mnlang.toml").providers
    setup = ModelSetup(spec="openai", tables=tables)
    env = {"TEAM_ANTHROPIC_KEY": "sk-team"}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TEAM_ANTHROPIC_KEY", "sk-team")
        claude = setup.provider_for_name("claude")
    assert isinstance(claude, AnthropicProvider) and claude.name == "claude"
    assert claude.config.api_key == "sk-team" and claude.config.model == "claude-haiku-4.5"
    builtin = AnthropicConfig.from_table("anthropic", tables["anthropic"], env)
    assert builtin.timeout_s == 60.0
