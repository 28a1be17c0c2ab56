"""`conversation:` on an agent: the workflow's `list[Turn]` (std.chat) is sent as the
messages between the system message and the prompt, and the list the workflow keeps
across a wait and a signal reaches the next request whole."""

from __future__ import annotations

from pathlib import Path

from mnlang.ir.compile import compile_file
from mnlang.models.openai import OpenAIConfig, OpenAIProvider
from mnlang.models.setup import ModelSetup
from mnlang.runtime import signals
from mnlang.runtime.config import RuntimeConfig
from mnlang.runtime.run import resume_run, start_run
from mnlang.stores.sqlite import SQLiteStore
from tests.chat_server import chat_server

FLOW = """\
import std.chat { Role, Turn }

event message -> str

agent assistant(history: list[Turn], text: str) -> str {
  model: "gpt-5.4-mini"
  prompt: "{text}"
  conversation: history
}

workflow chat(first: str) -> int {
  a = assistant([], first)
  history = [Turn { role: Role.user, content: first }, Turn { role: Role.assistant, content: a }]
  next = wait message { timeout: 1h }
  if next == null {
    return 0
  }
  b = assistant(history, next)
  return len(history)
}
"""


def test_the_kept_conversation_is_sent_as_messages(tmp_path: Path) -> None:
    (tmp_path / "flow.mn").write_text(FLOW)
    ir, diagnostics = compile_file(tmp_path / "flow.mn")
    assert ir is not None, diagnostics
    with chat_server() as server, SQLiteStore(tmp_path / "journal.db") as store:
        provider = OpenAIProvider(OpenAIConfig(base_url=server.base_url, api_key="k"))
        config = RuntimeConfig(models=ModelSetup(spec="openai", override=provider), commit_ms=0)
        server.chat('"Hello! What can I do?"')
        server.chat('"About a week."')
        out = start_run(store, ir, "chat", {"first": "hi"}, run_id="c", config=config)
        assert out.status == "waiting"
        signals.send(store, "c", "message", "how long is delivery?")
        out = resume_run(store, "c", program=ir, config=config)
        assert out.status == "completed" and out.result == 2
    first, second = (r.body["messages"] for r in server.requests)
    assert [m["role"] for m in first] == ["system", "user"]
    assert [(m["role"], m["content"]) for m in second[1:]] == [
        ("user", "hi"),
        ("assistant", "Hello! What can I do?"),
        ("user", "how long is delivery?"),
    ]
