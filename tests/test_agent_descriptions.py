"""What the model is told: tool descriptions (written or the impl's docstring) in the tool
schema and the agent's `system:` prompt in the system message, as the chat server saw them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

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
tool lookup_flight(flight: str) -> str {
  impl: "tools:lookup_flight"
  description: "Use this before making any flight changes."
}

effect change_seat(flight: str, seat: str) -> bool {
  impl: "tools:change_seat"
  key: "seat:{flight}:{seat}"
}

tool weather(city: str) -> str {
  impl: "tools:weather"
}

agent desk(passenger: str, question: str) -> str {
  model: "gpt-5.4-mini"
  description: "Answers a passenger's questions about their booking."
  system: "You are the airline's support agent, talking to passenger {passenger}. Be brief."
  prompt: "{question}"
  tools: [lookup_flight, change_seat, weather]
  max_turns: 2
  max_tokens: 200
}

workflow ask(passenger: str, question: str) -> str {
  a = desk(passenger, question)
  return a
}
"""

TOOLS = '''
def lookup_flight(flight, *, ctx=None):
    """Not sent: the declaration's description comes first."""
    return "on time"

def change_seat(flight, seat, *, ctx=None):
    """Moves the passenger to another seat.

    Ask for the seat number first.
    """
    return True

def weather(city, *, ctx=None):
    return "sunny"
'''


@pytest.fixture
def server() -> Iterator[ChatServer]:
    with chat_server() as s:
        yield s


def compiled(tmp_path: Path, source: str = SOURCE) -> IRProgram:
    (tmp_path / "flow.mn").write_text(source, "utf-8")
    (tmp_path / "tools.py").write_text(TOOLS, "utf-8")
    ir, diagnostics = compile_file(tmp_path / "flow.mn")
    assert ir is not None, [d.message for d in diagnostics]
    return ir


def test_the_server_receives_descriptions_and_the_system_prompt(
    tmp_path: Path, server: ChatServer
) -> None:
    ir = compiled(tmp_path)
    server.chat(None, tool_calls=[{"name": "lookup_flight", "arguments": {"flight": "LX8"}}])
    server.chat("It is on time.")
    provider = OpenAIProvider(OpenAIConfig(base_url=server.base_url, api_key="k"))
    models = ModelSetup(spec="openai", override=provider)
    with SQLiteStore(tmp_path / "journal.db") as store:
        outcome = start_run(
            store,
            ir,
            "ask",
            {"passenger": "p-42", "question": "Is LX8 late?"},
            run_id="r1",
            config=RuntimeConfig(models=models, commit_ms=0),
        )
    assert outcome.status == "completed", outcome
    first = server.requests[0].body
    tools = {t["function"]["name"]: t["function"]["description"] for t in first["tools"]}
    assert tools["lookup_flight"].endswith("\nUse this before making any flight changes.")
    assert "Not sent" not in tools["lookup_flight"]
    assert tools["change_seat"].endswith(
        "\nMoves the passenger to another seat.\n\nAsk for the seat number first."
    )
    assert tools["weather"] == "Tool `weather(city: str) -> str`."
    system = first["messages"][0]
    assert system["role"] == "system"
    assert system["content"].startswith(
        "You are the airline's support agent, talking to passenger p-42. Be brief.\n\n"
        "You are `desk`, one step of an automated workflow."
    )
    assert [m["role"] for m in first["messages"]].count("system") == 1
    assert first["messages"][1] == {"role": "user", "content": "Is LX8 late?"}
    assert json.loads(json.dumps(server.requests[1].body["messages"][0])) == system


def test_a_program_without_descriptions_hashes_as_before(tmp_path: Path) -> None:
    """The new fields are left out of the content hash while unset (`HASH_OMITS_NONE`)."""
    ir = compiled(tmp_path, TWO_WAY)
    hashed = canonical_json(ir)
    assert '"description"' not in hashed and '"system"' not in hashed
    assert ir.tools["weather"].description is None and ir.agents["desk"].system is None
    described = compiled(tmp_path)
    # A docstring is read at run time, not compiled: editing it keeps the program's hash.
    assert described.effects["change_seat"].description is None
    assert described.tools["lookup_flight"].description is not None


TWO_WAY = """
tool weather(city: str) -> str {
  impl: "tools:weather"
}

agent desk(question: str) -> str {
  model: "gpt-5.4-mini"
  prompt: "{question}"
  tools: [weather]
  max_turns: 2
}
"""


PARAMS = """
type Stay {
  hotel: str
}

tool search_hotels(city: str "The city, in English", max_price: money? "Per night; null for any") -> list[Stay] {
  impl: "tools:search_hotels"
}

effect book_hotel(hotel: str, nights: int = 1) -> str {
  impl: "tools:book_hotel"
  key: "hotel:{hotel}:{nights}"
}

agent travel(request: str) -> str {
  model: "gpt-5.4-mini"
  prompt: "{request}"
  tools: [search_hotels, book_hotel]
  max_turns: 2
  max_tokens: 200
}

workflow trip(request: str) -> str {
  a = travel(request)
  return a
}
"""

PARAM_TOOLS = '''
def search_hotels(city, max_price=None):
    return []

def book_hotel(hotel, nights, *, key):
    """Books a hotel.

    Ask before booking more than a week.

    Args:
        hotel: The hotel's id, from search_hotels.
        nights: How many nights.
    """
    return "booked"
'''


def test_parameter_descriptions_reach_the_tool_schema(tmp_path: Path, server: ChatServer) -> None:
    """Written ones (`city: str "..."`) and, for a parameter without, the impl docstring's
    `Args:` entry; the docstring's description then leaves its `Args:` section out."""
    (tmp_path / "flow.mn").write_text(PARAMS, "utf-8")
    (tmp_path / "tools.py").write_text(PARAM_TOOLS, "utf-8")
    ir, diagnostics = compile_file(tmp_path / "flow.mn")
    assert ir is not None, [d.message for d in diagnostics]
    assert ir.tools["search_hotels"].params[0].description == "The city, in English"
    server.chat("Nothing found.")
    provider = OpenAIProvider(OpenAIConfig(base_url=server.base_url, api_key="k"))
    with SQLiteStore(tmp_path / "journal.db") as store:
        outcome = start_run(
            store,
            ir,
            "trip",
            {"request": "Bern"},
            run_id="r1",
            config=RuntimeConfig(models=ModelSetup(spec="openai", override=provider), commit_ms=0),
        )
    assert outcome.status == "completed", outcome
    tools = {t["function"]["name"]: t["function"] for t in server.requests[0].body["tools"]}
    search = tools["search_hotels"]["parameters"]["properties"]
    assert search["city"] == {"type": "string", "description": "The city, in English"}
    assert search["max_price"]["description"] == "Per night; null for any"
    book = tools["book_hotel"]
    assert book["parameters"]["properties"]["hotel"]["description"] == (
        "The hotel's id, from search_hotels."
    )
    assert book["parameters"]["properties"]["nights"]["description"] == "How many nights."
    assert book["description"].endswith("\nBooks a hotel.\n\nAsk before booking more than a week.")
    assert "Args:" not in book["description"]
