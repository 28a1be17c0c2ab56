"""Tool-call argument accuracy, first try and after repair: from real agent runs (the
chat server answering), through `compute_metrics`, `mnc metrics` and the Prometheus text."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from mnlang.cli import main
from mnlang.ir.compile import compile_file
from mnlang.metrics import compute_metrics
from mnlang.metrics.facts import ArgumentTry, argument_accuracy
from mnlang.metrics.render import prometheus_text
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

effect book_hotel(hotel: str, nights: int) -> str {
  impl: "tools:book_hotel"
  key: "hotel:{hotel}:{nights}"
}

agent travel(request: str) -> str {
  model: "gpt-5.4-mini"
  prompt: "{request}"
  tools: [search_hotels, book_hotel]
  max_turns: 4
  max_tokens: 200
}

workflow trip(request: str) -> str {
  class: "travel"
  a = travel(request)
  return a
}
"""

TOOLS = """
def search_hotels(city):
    return ["Adler"]

def book_hotel(hotel, nights, *, key):
    return "booked"
"""


def call(name: str, **arguments: object) -> dict[str, object]:
    return {"name": name, "arguments": arguments}


@pytest.fixture
def server() -> Iterator[ChatServer]:
    with chat_server() as s:
        yield s


def test_first_try_and_after_repair_are_counted_apart(tmp_path: Path, server: ChatServer) -> None:
    (tmp_path / "flow.mn").write_text(SOURCE, "utf-8")
    (tmp_path / "tools.py").write_text(TOOLS, "utf-8")
    ir, diagnostics = compile_file(tmp_path / "flow.mn")
    assert ir is not None, [d.message for d in diagnostics]
    # r1: search right at once; book with `nights: "two"`, told, then right: 2 first tries,
    # 1 valid at once, 2 valid after repair.
    server.chat(None, tool_calls=[call("search_hotels", city="Bern")])
    server.chat(None, tool_calls=[call("book_hotel", hotel="Adler", nights="two")])
    server.chat(None, tool_calls=[call("book_hotel", hotel="Adler", nights=2)])
    server.chat("Booked.")
    # r2: search with a parameter it does not have, never repaired: 1 first try, 0 and 0.
    server.chat(None, tool_calls=[call("search_hotels", town="Bern")])
    server.chat("Sorry.")
    provider = OpenAIProvider(OpenAIConfig(base_url=server.base_url, api_key="k"))
    config = RuntimeConfig(models=ModelSetup(spec="openai", override=provider), commit_ms=0)
    db = tmp_path / "journal.db"
    with SQLiteStore(db) as store:
        for run_id in ("r1", "r2"):
            outcome = start_run(
                store, ir, "trip", {"request": "Bern"}, run_id=run_id, config=config
            )
            assert outcome.status == "completed", outcome
        report = compute_metrics(store)
    travel = report.total
    assert (travel.arguments_first_try.numerator, travel.arguments_first_try.denominator) == (1, 3)
    assert (travel.arguments_after_repair.numerator, travel.arguments_after_repair.denominator) == (
        2,
        3,
    )
    shown = report.to_json()["total"]
    assert shown["tool_arguments_valid_first_try"]["numerator"] == 1
    assert shown["tool_arguments_valid_after_repair"]["numerator"] == 2
    prom = prometheus_text(report)
    assert 'mnlang_tool_call_arguments_valid_after_repair_total{class="travel"} 2' in prom
    assert 'mnlang_tool_call_first_tries_total{class="travel"} 3' in prom
    runner = CliRunner()
    text = runner.invoke(main, ["metrics", "--db", str(db)])
    assert text.exit_code == 0, text.output
    assert "tool arguments valid, first try" in text.output and "(1/3)" in text.output
    assert "tool arguments valid, after repair" in text.output and "(2/3)" in text.output
    as_json = runner.invoke(main, ["metrics", "--db", str(db), "--json"])
    assert json.loads(as_json.output)["total"]["tool_arguments_valid_after_repair"]["value"] == (
        pytest.approx(2 / 3)
    )


def test_a_repair_is_a_later_call_of_the_same_tool_in_the_same_step() -> None:
    step, other = ("s1", "book"), ("s2", "book")
    tries = [
        ArgumentTry(step, valid=False),
        ArgumentTry(step, valid=False),  # still repairing: not a first try
        ArgumentTry(other),  # another agent call: its own first try
        ArgumentTry(step),  # repaired
        ArgumentTry(step),  # a new first try
    ]
    found = argument_accuracy(tries)
    assert (found.first_tries, found.valid_first, found.valid_after_repair) == (3, 2, 3)
