"""Bound arguments: `tools: [book_hotel({ passenger: pid })]` fixes a parameter from the
agent's own; the model never sees it (the chat server's tool schema), the tool receives
it, the journal keeps it with the call, and a model that sends it anyway is told no."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mnlang.ir.compile import compile_file
from mnlang.ir.hashing import canonical_json
from mnlang.ir.model import IRProgram
from mnlang.models.openai import OpenAIConfig, OpenAIProvider
from mnlang.models.setup import ModelSetup
from mnlang.runtime.config import RuntimeConfig
from mnlang.runtime.run import start_run
from mnlang.stores.sqlite import SQLiteStore
from tests.chat_server import ChatServer, chat_server

SOURCE = """
tool search_hotels(city: str) -> list[str] {
  impl: "tools:search_hotels"
}

effect book_hotel(passenger: str, hotel: str, nights: int) -> str {
  impl: "tools:book_hotel"
  key: "hotel:{passenger}:{hotel}"
  description: "Books a hotel for the passenger."
}

agent travel(pid: str, request: str) -> str {
  model: "gpt-5.4-mini"
  prompt: "{request}"
  tools: [search_hotels, book_hotel({ passenger: "p-" + pid })]
  max_turns: 3
  max_tokens: 200
}

workflow trip(pid: str, request: str) -> str {
  a = travel(pid, request)
  return a
}
"""

TOOLS = """
import json, pathlib

def search_hotels(city):
    return ["Hotel Adler"]

def book_hotel(passenger, hotel, nights, *, key):
    with open(pathlib.Path(__file__).parent / "booked.jsonl", "a") as f:
        f.write(json.dumps({"passenger": passenger, "hotel": hotel, "nights": nights}) + "\\n")
    return f"booked {hotel} for {passenger}"
"""


@pytest.fixture
def server() -> Iterator[ChatServer]:
    with chat_server() as s:
        yield s


def compiled(tmp_path: Path) -> IRProgram:
    (tmp_path / "flow.mn").write_text(SOURCE, "utf-8")
    (tmp_path / "tools.py").write_text(TOOLS, "utf-8")
    ir, diagnostics = compile_file(tmp_path / "flow.mn")
    assert ir is not None, [d.message for d in diagnostics]
    return ir


def run(tmp_path: Path, server: ChatServer) -> tuple[str, list[dict[str, Any]]]:
    ir = compiled(tmp_path)
    provider = OpenAIProvider(OpenAIConfig(base_url=server.base_url, api_key="k"))
    config = RuntimeConfig(models=ModelSetup(spec="openai", override=provider), commit_ms=0)
    with SQLiteStore(tmp_path / "journal.db") as store:
        outcome = start_run(
            store,
            ir,
            "trip",
            {"pid": "42", "request": "A hotel in Bern"},
            run_id="r1",
            config=config,
        )
        events = [{"kind": e.kind, **e.data} for e in store.read_journal("r1")]
    assert outcome.status == "completed", outcome
    return str(outcome.result), events


def test_the_model_never_sees_a_bound_parameter_and_the_tool_receives_it(
    tmp_path: Path, server: ChatServer
) -> None:
    server.chat(
        None, tool_calls=[{"name": "book_hotel", "arguments": {"hotel": "Adler", "nights": 2}}]
    )
    server.chat("Booked.")
    result, events = run(tmp_path, server)
    assert result == "Booked."
    tools = {t["function"]["name"]: t["function"] for t in server.requests[0].body["tools"]}
    book = tools["book_hotel"]
    assert set(book["parameters"]["properties"]) == {"hotel", "nights"}
    assert book["parameters"]["required"] == ["hotel", "nights"]
    assert book["description"].startswith(
        "Effect (changes the world) `book_hotel(hotel: str, nights: int) -> str`."
    )
    assert "p-42" not in json.dumps(server.requests[0].body)
    booked = [json.loads(line) for line in (tmp_path / "booked.jsonl").read_text().splitlines()]
    assert booked == [{"passenger": "p-42", "hotel": "Adler", "nights": 2}]
    decision = next(e for e in events if e["kind"] == "tool_decision")
    assert decision["arguments"] == {"hotel": "Adler", "nights": 2}
    assert decision["bound"] == ["passenger"]
    done = next(e for e in events if e["kind"] == "agent_tool")
    assert done["args"] == {"passenger": "p-42", "hotel": "Adler", "nights": 2}


def test_a_model_that_sends_a_bound_parameter_is_told_it_may_not(
    tmp_path: Path, server: ChatServer
) -> None:
    server.chat(
        None,
        tool_calls=[
            {"name": "book_hotel", "arguments": {"passenger": "p-7", "hotel": "Adler", "nights": 1}}
        ],
    )
    server.chat(
        None, tool_calls=[{"name": "book_hotel", "arguments": {"hotel": "Adler", "nights": 1}}]
    )
    server.chat("Booked.")
    _, events = run(tmp_path, server)
    invalid = [e for e in events if e["kind"] == "tool_call_invalid"]
    assert len(invalid) == 1 and "`passenger`" in invalid[0]["problem"]
    assert "set by the workflow" in invalid[0]["problem"]
    told = server.requests[1].body["messages"][-1]
    assert told["role"] == "tool" and "set by the workflow" in told["content"]
    booked = [json.loads(line) for line in (tmp_path / "booked.jsonl").read_text().splitlines()]
    assert booked == [{"passenger": "p-42", "hotel": "Adler", "nights": 1}]


def test_an_agent_without_bindings_hashes_as_before(tmp_path: Path) -> None:
    (tmp_path / "flow.mn").write_text(
        SOURCE.replace('book_hotel({ passenger: "p-" + pid })', "search_hotels"), "utf-8"
    )
    (tmp_path / "tools.py").write_text(TOOLS, "utf-8")
    ir, _ = compile_file(tmp_path / "flow.mn")
    assert ir is not None and ir.agents["travel"].bound is None
    assert '"bound"' not in canonical_json(ir)


SCRIPTED = """
scenario books_for_the_passenger {
  run: trip("7", "a room in Bern")
  replies: { travel: [search_hotels("Bern"), book_hotel("Hotel Adler", 2), "booked"] }
  expect: { output: "booked" }
  expect_calls: [search_hotels("Bern"), book_hotel("p-7", "Hotel Adler", 2), travel]
}
"""


def test_a_scenario_scripts_a_call_with_the_models_arguments_only(tmp_path: Path) -> None:
    """A scripted turn calling `book_hotel` gives what the model sends (hotel, nights): the
    bound `passenger` is the workflow's, added by the runtime, and expected in the call."""
    from mnlang.testing import run_tests

    (tmp_path / "flow.mn").write_text(SOURCE + SCRIPTED, "utf-8")
    (tmp_path / "tools.py").write_text(TOOLS, "utf-8")
    report = run_tests([tmp_path / "flow.mn"])
    assert report.ok, (report.problems, [r.__dict__ for r in report.failed])
    booked = (tmp_path / "booked.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in booked] == [
        {"passenger": "p-7", "hotel": "Hotel Adler", "nights": 2}
    ]


def test_a_scripted_call_that_gives_the_bound_parameter_is_e202(tmp_path: Path) -> None:
    from mnlang.checker import check

    wrong = SCRIPTED.replace('book_hotel("Hotel Adler", 2)', 'book_hotel("p-7", "Hotel Adler", 2)')
    (tmp_path / "flow.mn").write_text(SOURCE + wrong, "utf-8")
    (tmp_path / "tools.py").write_text(TOOLS, "utf-8")
    codes = [(d.code, d.message) for d in check(tmp_path / "flow.mn").diagnostics]
    assert [c for c, _ in codes] == ["E202", "E201"], codes
    assert "2 arguments from the model, 3 given (the agent binds `passenger`)" in codes[0][1]


FALLBACK_SCRIPTED = """
scenario the_fallback_model_books {
  run: trip("7", "a room in Bern")
  replies: {
    travel: [
      "never sent",
      for_model("gpt-5.4-nano", book_hotel("Hotel Adler", 2)),
      for_model("gpt-5.4-nano", "booked"),
    ]
  }
  faults: [{ kind: transient, at: travel, times: 1 }]
  expect: { output: "booked" }
  expect_calls: [book_hotel("p-7", "Hotel Adler", 2), travel]
}
"""


def test_a_fallback_models_scripted_call_of_a_bound_tool(tmp_path: Path) -> None:
    """`for_model` around a call of a tool with a bound parameter: the call answers the
    fallback model's request, and the workflow's passenger is added to it."""
    from mnlang.testing import run_tests

    source = SOURCE.replace('model: "gpt-5.4-mini"', 'model: ["gpt-5.4-mini", "gpt-5.4-nano"]')
    (tmp_path / "flow.mn").write_text(source + FALLBACK_SCRIPTED, "utf-8")
    (tmp_path / "tools.py").write_text(TOOLS, "utf-8")
    report = run_tests([tmp_path / "flow.mn"])
    assert report.ok, (report.problems, [r.__dict__ for r in report.failed])
    booked = (tmp_path / "booked.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in booked] == [
        {"passenger": "p-7", "hotel": "Hotel Adler", "nights": 2}
    ]
