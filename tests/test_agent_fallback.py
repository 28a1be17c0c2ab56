"""Model fallback: `model: ["gpt-5.4", "gpt-5.4-mini"]` asks the next model when a request
fails or its reply does not validate, in the same attempt; each reply is priced as the
model that gave it; the journal says which model answered; scripted replies are keyed
`agent@model` for a fallback model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from mnlang.ir.compile import compile_file
from mnlang.ir.hashing import canonical_json
from mnlang.ir.model import IRProgram
from mnlang.models.openai import OpenAIConfig, OpenAIProvider
from mnlang.models.prices import load_prices
from mnlang.models.setup import ModelSetup
from mnlang.runtime.config import RuntimeConfig
from mnlang.runtime.run import start_run
from mnlang.stores.sqlite import SQLiteStore
from tests.chat_server import ChatServer, chat_server

SOURCE = """
type Triage {
  category: str
  urgent: bool
}

agent triage(text: str) -> Triage {
  model: ["gpt-5.4", "gpt-5.4-mini"]
  prompt: "Classify: {text}"
  max_tokens: 100
  retry: { attempts: 2, on: [malformed_output, transient] }
}

workflow classify(text: str) -> str {
  t = triage(text)
  return t.category
}
"""


@pytest.fixture
def server() -> Iterator[ChatServer]:
    with chat_server() as s:
        yield s


def compiled(tmp_path: Path, source: str = SOURCE) -> IRProgram:
    (tmp_path / "flow.mn").write_text(source, "utf-8")
    ir, diagnostics = compile_file(tmp_path / "flow.mn")
    assert ir is not None, [d.message for d in diagnostics]
    return ir


def run(tmp_path: Path, models: ModelSetup) -> tuple[Any, list[dict[str, Any]]]:
    ir = compiled(tmp_path)
    with SQLiteStore(tmp_path / "journal.db") as store:
        outcome = start_run(
            store,
            ir,
            "classify",
            {"text": "My parcel is late"},
            run_id="r1",
            config=RuntimeConfig(models=models, commit_ms=0),
        )
        events = [{**e.data, "event": e.kind} for e in store.read_journal("r1")]
    return outcome, events


def openai(server: ChatServer) -> ModelSetup:
    provider = OpenAIProvider(OpenAIConfig(base_url=server.base_url, api_key="k", retries=0))
    return ModelSetup(spec="openai", override=provider)


def test_a_failing_model_falls_back_to_the_next_in_the_same_attempt(
    tmp_path: Path, server: ChatServer
) -> None:
    server.answer(503, {"error": {"message": "overloaded"}})
    server.chat({"category": "late", "urgent": False}, model="gpt-5.4-mini", usage=(1000, 100))
    outcome, events = run(tmp_path, openai(server))
    assert outcome.status == "completed" and outcome.result == "late", outcome
    assert [r.body["model"] for r in server.requests] == ["gpt-5.4", "gpt-5.4-mini"]
    (fallback,) = [e for e in events if e["event"] == "model_fallback"]
    assert fallback["from"] == "gpt-5.4" and fallback["to"] == "gpt-5.4-mini"
    assert fallback["kind"] == "transient" and fallback["attempt"] == 1
    assert not [e for e in events if e["event"] == "retry"]  # no attempt was used up
    (agent,) = [e for e in events if e["event"] == "agent"]
    assert agent["model"] == "gpt-5.4-mini" and agent["attempt"] == 1
    replies = [e for e in events if e["event"] == "model_reply"]
    mini = load_prices().model("gpt-5.4-mini")
    assert mini is not None
    assert Decimal(replies[-1]["cost"]) == mini.cost(1000, 100)


def test_a_malformed_reply_is_repaired_by_the_next_model(
    tmp_path: Path, server: ChatServer
) -> None:
    server.chat({"category": "late"})  # `urgent` is missing
    server.chat({"category": "late", "urgent": True})
    outcome, events = run(tmp_path, openai(server))
    assert outcome.status == "completed", outcome
    second = server.requests[1].body
    assert second["model"] == "gpt-5.4-mini"
    assert second["messages"][-1]["role"] == "user"
    assert "`urgent`: missing" in second["messages"][-1]["content"]
    assert len([e for e in events if e["event"] == "model_fallback"]) == 1


def test_when_every_model_fails_the_attempt_fails_and_the_next_starts_with_the_first(
    tmp_path: Path, server: ChatServer
) -> None:
    server.chat("not json")
    server.chat("not json either")
    server.chat({"category": "late", "urgent": False})
    outcome, events = run(tmp_path, openai(server))
    assert outcome.status == "completed", outcome
    assert [r.body["model"] for r in server.requests] == ["gpt-5.4", "gpt-5.4-mini", "gpt-5.4"]
    (retry,) = [e for e in events if e["event"] == "retry"]
    assert retry["kind"] == "malformed_output"
    (agent,) = [e for e in events if e["event"] == "agent"]
    assert agent["model"] == "gpt-5.4" and agent["attempt"] == 2


def test_scripted_replies_are_keyed_by_model_for_a_fallback(tmp_path: Path) -> None:
    replies = {
        "triage": [{"$error": {"kind": "timeout"}}, {"category": "damaged", "urgent": True}],
        "triage@gpt-5.4-mini": [{"category": "late", "urgent": False}],
    }
    path = tmp_path / "replies.json"
    path.write_text(json.dumps(replies), "utf-8")
    outcome, events = run(tmp_path, ModelSetup.scripted(path, f"scripted:{path}"))
    assert outcome.status == "completed" and outcome.result == "late", outcome
    (agent,) = [e for e in events if e["event"] == "agent"]
    assert agent["model"] == "gpt-5.4-mini"


def test_a_fallback_model_without_scripted_replies_says_which_key_is_missing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "replies.json"
    path.write_text(json.dumps({"triage": [{"$error": "transient"}]}), "utf-8")
    outcome, _ = run(tmp_path, ModelSetup.scripted(path, f"scripted:{path}"))
    assert outcome.status == "failed"
    assert "no replies for agent `triage@gpt-5.4-mini`" in outcome.error["message"]


def test_one_model_hashes_as_before(tmp_path: Path) -> None:
    ir = compiled(tmp_path, SOURCE.replace('["gpt-5.4", "gpt-5.4-mini"]', '"gpt-5.4"'))
    assert ir.agents["triage"].fallback is None
    assert '"fallback"' not in canonical_json(ir)
    listed = compiled(tmp_path)
    assert listed.agents["triage"].models == ["gpt-5.4", "gpt-5.4-mini"]
