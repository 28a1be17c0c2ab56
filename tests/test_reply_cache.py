"""`cache:` on an agent: a reply kept across runs answers the same request of another run,
journaled as that run's reply at no cost and marked cached; what is kept is what a run
accepted; kept replies expire (both stores); an agent that may call effects cannot cache
(E260, in tests/cases)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mnlang.ir.compile import compile_file
from mnlang.models.openai import OpenAIConfig, OpenAIProvider
from mnlang.models.setup import ModelSetup
from mnlang.runtime.config import RuntimeConfig
from mnlang.runtime.run import start_run
from mnlang.stores.base import Store
from mnlang.stores.sqlite import SQLiteStore
from tests.chat_server import ChatServer, chat_server

FLOW = """\
type Triage {
  label: str
}

tool lookup(text: str) -> str {
  impl: "tools:lookup"
}

agent triage(text: str) -> Triage {
  model: "gpt-5.4-mini"
  prompt: "Classify: {text}"
  tools: [lookup]
  max_turns: 3
  retry: { attempts: 2, on: [malformed_output] }
  cache: 1h
}

workflow classify(text: str) -> str {
  t = triage(text)
  return t.label
}
"""

TOOLS = """\
def lookup(text):
    return "found " + text
"""


@pytest.fixture
def server() -> Iterator[ChatServer]:
    with chat_server() as s:
        yield s


def run(folder: Path, store: Store, server: ChatServer, text: str, run_id: str) -> Any:
    ir, diagnostics = compile_file(folder / "flow.mn")
    assert ir is not None, diagnostics
    provider = OpenAIProvider(OpenAIConfig(base_url=server.base_url, api_key="k"))
    config = RuntimeConfig(models=ModelSetup(spec="openai", override=provider), commit_ms=0)
    return start_run(store, ir, "classify", {"text": text}, run_id=run_id, config=config)


def replies(store: Store, run_id: str) -> list[dict[str, Any]]:
    return [e.data for e in store.read_journal(run_id) if e.kind == "model_reply"]


def test_a_kept_reply_answers_another_run_for_free(tmp_path: Path, server: ChatServer) -> None:
    (tmp_path / "flow.mn").write_text(FLOW)
    (tmp_path / "tools.py").write_text(TOOLS)
    with SQLiteStore(tmp_path / "journal.db") as store:
        server.chat(tool_calls=[{"name": "lookup", "arguments": {"text": "mug"}}])
        server.chat({"label": "damaged"})
        first = run(tmp_path, store, server, "a cracked mug", "r1")
        assert first.status == "completed" and first.result == "damaged"
        assert len(server.requests) == 2
        assert all("cached" not in r and r["cost"] != "0" for r in replies(store, "r1"))
        # The same request in another run: both turns answered from the cache.
        second = run(tmp_path, store, server, "a cracked mug", "r2")
        assert second.result == "damaged" and len(server.requests) == 2
        kept = replies(store, "r2")
        assert [r.get("cached") for r in kept] == [True, True]
        assert all(r["cost"] == "0" and "usage" not in r for r in kept)
        # The tool is still called: the cache answers the model, not the tools.
        assert [e.data["tool"] for e in store.read_journal("r2") if e.kind == "tool"][-1:] == [
            "lookup"
        ]
        # Another request is asked.
        server.chat({"label": "late"})
        third = run(tmp_path, store, server, "it never came", "r3")
        assert third.result == "late" and len(server.requests) == 3


def test_only_a_reply_the_run_accepted_is_kept(tmp_path: Path, server: ChatServer) -> None:
    (tmp_path / "flow.mn").write_text(FLOW)
    (tmp_path / "tools.py").write_text(TOOLS)
    with SQLiteStore(tmp_path / "journal.db") as store:
        server.chat("not json")  # malformed: not kept
        server.chat({"label": "ok"})
        assert run(tmp_path, store, server, "x", "r1").result == "ok"
        server.chat({"label": "asked again"})
        # The first request's reply was not kept: the model is asked again.
        assert run(tmp_path, store, server, "x", "r2").result == "asked again"
        assert len(server.requests) == 3


def test_kept_replies_expire_in_both_stores(store: Store) -> None:
    store.keep_reply("d1", '{"text": "a"}', 60)
    store.keep_reply("d2", '{"text": "b"}', 0.2)
    store.keep_reply("d1", '{"text": "a2"}', 60)  # replaced
    assert store.cached_reply("d1") == '{"text": "a2"}'
    assert store.cached_reply("d2") == '{"text": "b"}'
    time.sleep(0.3)
    assert store.cached_reply("d2") is None and store.cached_reply("nope") is None
