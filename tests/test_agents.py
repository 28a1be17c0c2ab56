"""Agent calls in runs: repair of malformed replies, budgets, resume without paying twice,
tool use (decisions, unsafe calls, approval, `max_turns`) and scripted replies.

Each test writes a small program and its tools into a temporary folder and runs it on a
temporary journal, with the `openai` provider pointed at a local server
(`tests/chat_server.py`) or with scripted replies.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from mnlang.ir.compile import compile_file
from mnlang.ir.model import IRProgram
from mnlang.models.openai import OpenAIConfig, OpenAIProvider
from mnlang.models.scripted import ScriptedProvider, check_script
from mnlang.models.setup import ModelSetup
from mnlang.runtime.config import RuntimeConfig
from mnlang.runtime.run import RunOutcome, resume_run, start_run
from mnlang.stores.base import Event, NewEvent, Store
from mnlang.stores.sqlite import SQLiteStore
from tests.chat_server import ChatServer, chat_server

TRIAGE = """
enum Category { damaged, late }

type Triage {
  category: Category
  confidence: float
}

agent triage(text: str) -> Triage {
  model: "gpt-5.4-mini"
  prompt: "Classify this complaint: {text}"
  max_tokens: 200
  retry: { attempts: 3, on: [malformed_output, transient] }
}

workflow classify(text: str) -> Triage {
  budget: $1.00
  t = triage(text)
  return t
}
"""

SUPPORT = """
type Answer {
  text: str
}

tool order_history(customer: str) -> list[str] {
  impl: "tools:order_history"
}

effect issue_credit(customer: str, amount: money) -> bool {
  impl: "tools:issue_credit"
  key: "credit:{customer}:{amount}"
  requires: approval
}

tool secret_admin(customer: str) -> str {
  impl: "tools:secret_admin"
}

agent support_bot(customer: str, question: str) -> Answer {
  model: "gpt-5.4-mini"
  prompt: "Help customer {customer} with: {question}"
  tools: [order_history, issue_credit]
  max_turns: 3
  max_tokens: 300
}

workflow support(customer: str, question: str) -> str {
  a = support_bot(customer, question)
  s = secret_admin(customer)
  return "{a.text} ({s})"
}
"""

SUPPORT_TOOLS = """
import json, os

def _log(name, args):
    with open(os.environ["AGENT_TEST_LOG"], "a") as f:
        f.write(json.dumps({"call": name, **args}, default=str) + "\\n")

def order_history(customer, *, ctx=None):
    _log("order_history", {"customer": customer})
    return ["o-1", "o-2"]

def issue_credit(customer, amount, *, ctx=None):
    _log("issue_credit", {"customer": customer, "amount": amount, "key": ctx.key})
    return True

def secret_admin(customer, *, ctx=None):
    return "ok"
"""


class Crash(Exception):
    """Raised from the journal observer: the process 'dies' before the next commit."""


@pytest.fixture
def server() -> Iterator[ChatServer]:
    with chat_server() as s:
        yield s


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with SQLiteStore(tmp_path / "journal.db") as s:
        yield s


@pytest.fixture
def calls_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("AGENT_TEST_LOG", str(log))
    return log


def program(tmp_path: Path, source: str, tools: str | None = None) -> IRProgram:
    path = tmp_path / "flow.mn"
    path.write_text(source, "utf-8")
    if tools is not None:
        (tmp_path / "tools.py").write_text(tools, "utf-8")
    ir, diagnostics = compile_file(path)
    assert ir is not None, [d.message for d in diagnostics]
    return ir


def openai(server: ChatServer) -> ModelSetup:
    provider = OpenAIProvider(OpenAIConfig(base_url=server.base_url, api_key="k"))
    return ModelSetup(spec="openai", override=provider)


def scripted(script: dict[str, list[Any]]) -> ModelSetup:
    return ModelSetup(spec="scripted", override=ScriptedProvider(check_script(script, "s"), "s"))


def config(models: ModelSetup) -> RuntimeConfig:
    return RuntimeConfig(models=models, commit_ms=0)


def events(store: Store, run_id: str, kind: str) -> list[Event]:
    return [e for e in store.read_journal(run_id) if e.kind == kind]


def run(
    store: Store,
    ir: IRProgram,
    workflow: str,
    given: dict[str, Any],
    models: ModelSetup,
    **kwargs: Any,
) -> RunOutcome:
    return start_run(store, ir, workflow, given, run_id="r1", config=config(models), **kwargs)


# --- validation and repair ------------------------------------------------------------------


def test_malformed_output_is_repaired_on_retry_with_the_problem_in_the_prompt(
    tmp_path: Path, server: ChatServer, store: Store
) -> None:
    ir = program(tmp_path, TRIAGE)
    server.chat("I think it is damaged")
    server.chat({"category": "broken", "confidence": 0.9})
    server.chat({"category": "damaged", "confidence": 0.9})
    outcome = run(store, ir, "classify", {"text": "cracked mug"}, openai(server))
    assert outcome.status == "completed", outcome.error
    assert outcome.result == {"category": "damaged", "confidence": 0.9}
    first, second, third = (r.body["messages"] for r in server.requests)
    assert first[-1] == {"role": "user", "content": "Classify this complaint: cracked mug"}
    assert second[-2] == {"role": "assistant", "content": "I think it is damaged"}
    assert "not JSON" in second[-1]["content"]
    assert "`category`: input should be 'damaged' or 'late'" in third[-1]["content"]
    retried = events(store, "r1", "retry")
    assert [e.data["kind"] for e in retried] == ["malformed_output", "malformed_output"]
    [done] = events(store, "r1", "agent")
    assert done.data["attempt"] == 3 and done.data["requests"] == 3


def test_malformed_output_after_the_last_attempt_fails_the_step(
    tmp_path: Path, store: Store
) -> None:
    ir = program(tmp_path, TRIAGE)
    bad = {"$text": "{]"}
    outcome = run(store, ir, "classify", {"text": "x"}, scripted({"triage": [bad, bad, bad]}))
    assert outcome.status == "failed"
    assert outcome.error is not None and outcome.error["kind"] == "malformed_output"
    assert outcome.error["step"] == "t"
    assert "`triage` replied with a value that is not a Triage" in outcome.error["message"]


def test_transport_retries_are_journaled_inside_one_attempt(
    tmp_path: Path, server: ChatServer, store: Store
) -> None:
    ir = program(tmp_path, TRIAGE)
    server.answer(429, {}, headers={"retry-after-ms": "10"})
    server.chat({"category": "late", "confidence": 0.4})
    outcome = run(store, ir, "classify", {"text": "slow"}, openai(server))
    assert outcome.status == "completed"
    [retry] = events(store, "r1", "transport_retry")
    assert retry.data["status"] == 429 and retry.data["agent"] == "triage"
    assert not events(store, "r1", "retry")  # the agent's attempts: still one
    [reply] = events(store, "r1", "model_reply")
    assert reply.data["attempt"] == 1


def test_a_missing_scripted_reply_names_the_agent_and_the_call(
    tmp_path: Path, store: Store
) -> None:
    ir = program(tmp_path, TRIAGE)
    outcome = run(store, ir, "classify", {"text": "x"}, scripted({"triage": []}))
    assert outcome.status == "failed" and outcome.error is not None
    assert outcome.error["kind"] == "tool_error"
    assert "0 replies for agent `triage` in call order; call 1 has none" in outcome.error["message"]


# --- cost and budget -----------------------------------------------------------------------


def test_each_call_costs_its_usage_at_the_model_price(
    tmp_path: Path, server: ChatServer, store: Store
) -> None:
    ir = program(tmp_path, TRIAGE)
    server.chat({"category": "late", "confidence": 0.4}, usage=(1000, 100))
    outcome = run(store, ir, "classify", {"text": "slow"}, openai(server))
    assert outcome.status == "completed"
    # gpt-5.4-mini: $0.75 in, $4.50 out per million tokens.
    [reply] = events(store, "r1", "model_reply")
    assert Decimal(reply.data["cost"]) == Decimal("0.0012")
    assert reply.data["usage"] == {"input_tokens": 1000, "output_tokens": 100}
    record = store.get_run("r1")
    assert record is not None and Decimal(record.meta["cost"]) == Decimal("0.0012")


def test_budget_exceeded_stops_the_run_before_the_request(
    tmp_path: Path, server: ChatServer, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(
        json.dumps({"models": {"gpt-5.4-mini": {"output_per_million": 10000}}}), "utf-8"
    )
    monkeypatch.setenv("MNC_PRICES", str(prices))
    ir = program(tmp_path, TRIAGE.replace("budget: $1.00", "budget: $0.50"))
    outcome = run(store, ir, "classify", {"text": "x"}, openai(server))
    assert outcome.status == "failed" and outcome.error is not None
    assert outcome.error["kind"] == "budget_exceeded"
    assert "a request of `triage` may cost $2" in outcome.error["message"]
    assert "of the $0.50 budget" in outcome.error["message"]
    assert server.requests == []


def test_budget_is_not_catchable(
    tmp_path: Path, server: ChatServer, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {"gpt-5.4-mini": {"output_per_million": 10000}}}))
    monkeypatch.setenv("MNC_PRICES", str(prices))
    source = TRIAGE.replace(
        "  t = triage(text)\n  return t\n",
        "  try {\n    t = triage(text)\n    return t\n  } catch any as e {\n"
        '    fail "caught {e.kind}"\n  }\n',
    ).replace("budget: $1.00", "budget: $0.50")
    ir = program(tmp_path, source)
    outcome = run(store, ir, "classify", {"text": "x"}, openai(server))
    assert outcome.error is not None and outcome.error["kind"] == "budget_exceeded"


# --- resume ----------------------------------------------------------------------------------


def test_a_resumed_run_does_not_call_the_model_again_for_a_journaled_reply(
    tmp_path: Path, server: ChatServer, store: Store, calls_log: Path
) -> None:
    ir = program(tmp_path, SUPPORT.replace("requires: approval", "scope: run"), SUPPORT_TOOLS)
    server.chat(None, tool_calls=[{"name": "order_history", "arguments": {"customer": "ana"}}])
    server.chat({"text": "You have two orders."})
    models = openai(server)

    def crash_at_the_tool(event: NewEvent) -> None:
        if event.kind == "tool" and event.state and ">order_history" in event.state:
            raise Crash

    with pytest.raises(Crash):
        run(
            store,
            ir,
            "support",
            {"customer": "ana", "question": "orders?"},
            models,
            observer=crash_at_the_tool,
        )
    assert len(server.requests) == 1
    outcome = resume_run(store, "r1", program=ir, config=config(models))
    assert outcome.status == "completed", outcome.error
    assert outcome.result == "You have two orders. (ok)"
    assert len(server.requests) == 2  # the first reply came from the journal
    second = server.requests[1].body["messages"]
    assert second[-1]["role"] == "tool" and json.loads(second[-1]["content"]) == ["o-1", "o-2"]


def test_a_resumed_run_keeps_its_scripted_reply_numbers(tmp_path: Path, store: Store) -> None:
    source = TRIAGE.replace(
        "  t = triage(text)\n  return t\n",
        "  t = triage(text)\n  u = triage(text)\n  return u\n",
    )
    ir = program(tmp_path, source)
    replies = {
        "triage": [
            {"category": "late", "confidence": 0.1},
            {"category": "damaged", "confidence": 0.2},
        ]
    }

    def crash_at_the_second(event: NewEvent) -> None:
        if event.kind == "agent_started" and event.state == "u":
            raise Crash

    with pytest.raises(Crash):
        run(store, ir, "classify", {"text": "x"}, scripted(replies), observer=crash_at_the_second)
    outcome = resume_run(store, "r1", program=ir, config=config(scripted(replies)))
    assert outcome.result == {"category": "damaged", "confidence": 0.2}


# --- tool use --------------------------------------------------------------------------------


def _tool_turn(name: str, **arguments: Any) -> dict[str, Any]:
    return {"$tool_calls": [{"name": name, "arguments": arguments}]}


def test_tools_run_as_steps_and_their_decisions_are_journaled(
    tmp_path: Path, store: Store, calls_log: Path
) -> None:
    ir = program(tmp_path, SUPPORT, SUPPORT_TOOLS)
    replies = {
        "support_bot": [
            _tool_turn("order_history", customer="ana"),
            {
                "$tool_calls": [
                    {"name": "secret_admin", "arguments": {"customer": "ana"}},
                    {"name": "order_history", "arguments": {"customer": 7}},
                ]
            },
            {"text": "Done."},
        ]
    }
    outcome = run(store, ir, "support", {"customer": "ana", "question": "q"}, scripted(replies))
    assert outcome.status == "completed", outcome.error
    decisions = [(e.data["tool"], e.data["allowed"]) for e in events(store, "r1", "tool_decision")]
    assert decisions == [("order_history", True), ("secret_admin", False), ("order_history", True)]
    [unsafe] = events(store, "r1", "unsafe_tool_call")
    assert unsafe.data == {
        "agent": "support_bot",
        "tool": "secret_admin",
        "arguments": {"customer": "ana"},
    }
    [invalid] = events(store, "r1", "tool_call_invalid")
    assert "expected str, got int 7" in invalid.data["problem"]
    [tool] = [e for e in events(store, "r1", "tool") if e.state and ">" in e.state]
    assert tool.state == "a>order_history:1" and tool.data["result"] == ["o-1", "o-2"]
    calls = [json.loads(line) for line in calls_log.read_text().splitlines()]
    assert calls == [{"call": "order_history", "customer": "ana"}]


def test_an_effect_that_needs_approval_waits_for_a_person(
    tmp_path: Path, store: Store, calls_log: Path
) -> None:
    ir = program(tmp_path, SUPPORT, SUPPORT_TOOLS)
    replies = {
        "support_bot": [
            _tool_turn("issue_credit", customer="ana", amount="5.00"),
            {"text": "Credited."},
        ]
    }
    models = scripted(replies)
    outcome = run(store, ir, "support", {"customer": "ana", "question": "refund"}, models)
    assert outcome.status == "waiting"
    assert not calls_log.exists()
    [checkpoint] = store.open_checkpoints("r1")
    assert checkpoint.name == "issue_credit"
    assert checkpoint.request["kind"] == "approval"
    assert (
        'wants to call `issue_credit(customer: "ana", amount: "5.00")`' in checkpoint.request["ask"]
    )
    store.decide_checkpoint("r1", checkpoint.checkpoint_id, {"choice": "approve"}, by="maria")
    outcome = resume_run(store, "r1", program=ir, config=config(models))
    assert outcome.status == "completed", outcome.error
    [call] = [json.loads(line) for line in calls_log.read_text().splitlines()]
    assert call == {
        "call": "issue_credit",
        "customer": "ana",
        "amount": "5.00",
        "key": "credit:ana:$5.00",
    }
    [decided] = events(store, "r1", "decided")
    assert decided.data["approved"] is True and decided.data["by"] == "maria"


def test_a_rejected_effect_is_told_to_the_model(
    tmp_path: Path, server: ChatServer, store: Store, calls_log: Path
) -> None:
    ir = program(tmp_path, SUPPORT, SUPPORT_TOOLS)
    server.chat(
        None, tool_calls=[{"name": "issue_credit", "arguments": {"customer": "ana", "amount": "5"}}]
    )
    server.chat({"text": "Sorry, no credit."})
    models = openai(server)
    assert (
        run(store, ir, "support", {"customer": "ana", "question": "q"}, models).status == "waiting"
    )
    [checkpoint] = store.open_checkpoints("r1")
    store.decide_checkpoint(
        "r1", checkpoint.checkpoint_id, {"choice": "reject", "comment": "not eligible"}, by="maria"
    )
    outcome = resume_run(store, "r1", program=ir, config=config(models))
    assert outcome.result == "Sorry, no credit. (ok)"
    told = server.requests[1].body["messages"][-1]
    assert told["role"] == "tool"
    assert json.loads(told["content"]) == {"error": "rejected: rejected by maria: not eligible"}
    assert not calls_log.exists()


def test_tool_calls_on_the_last_turn_are_malformed_output(tmp_path: Path, store: Store) -> None:
    ir = program(tmp_path, SUPPORT, SUPPORT_TOOLS)
    turn = _tool_turn("order_history", customer="ana")
    outcome = run(
        store,
        ir,
        "support",
        {"customer": "ana", "question": "q"},
        scripted({"support_bot": [turn] * 3}),
    )
    assert outcome.error is not None and outcome.error["kind"] == "malformed_output"
    assert "on its last turn (`max_turns: 3`)" in outcome.error["message"]


def test_the_last_turn_is_sent_without_tools_and_the_tools_are_described(
    tmp_path: Path, server: ChatServer, store: Store, calls_log: Path
) -> None:
    ir = program(tmp_path, SUPPORT.replace("max_turns: 3", "max_turns: 2"), SUPPORT_TOOLS)
    server.chat(None, tool_calls=[{"name": "order_history", "arguments": {"customer": "ana"}}])
    server.chat({"text": "ok"})
    run(store, ir, "support", {"customer": "ana", "question": "q"}, openai(server))
    first, last = (r.body for r in server.requests)
    assert first["tool_choice"] == "auto" and last["tool_choice"] == "none"
    names = [t["function"]["name"] for t in first["tools"]]
    assert names == ["order_history", "issue_credit"]
    credit = first["tools"][1]["function"]
    assert "A person must approve each call first." in credit["description"]
    assert credit["parameters"]["required"] == ["customer", "amount"]


# --- choosing the models of a run -------------------------------------------------------------

TWO_STEPS = """
agent first(x: str) -> str {
  model: "gpt-5.4-mini"
  prompt: "First: {x}"
  max_tokens: 50
}

agent second(x: str) -> str {
  model: "gpt-5.4-mini"
  prompt: "Second: {x}"
  max_tokens: 50
}

workflow two(x: str) -> str {
  a = first(x)
  d = checkpoint go_on {
    timeout: never
  }
  if not d.approved {
    fail "stopped"
  }
  b = second(a)
  return "{a} {b}"
}
"""


def test_mnc_run_models_is_kept_for_the_resume(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from mnlang.cli import main

    program(tmp_path, TWO_STEPS)
    replies = tmp_path / "elsewhere.json"
    replies.write_text(json.dumps({"first": ["one"], "second": ["two"]}), "utf-8")
    db = str(tmp_path / "journal.db")
    runner = CliRunner()
    flow = str(tmp_path / "flow.mn")
    args = ["run", flow, "--input", '{"x": "go"}', "--db", db, "--id", "m1"]
    result = runner.invoke(main, [*args, "--models", f"scripted:{replies}"])
    assert result.exit_code == 3, result.output  # waiting at the checkpoint
    result = runner.invoke(main, ["approve", "m1", "go_on", "--db", db])
    assert result.exit_code == 0, result.output
    assert '"one two"' in result.output
    bad = runner.invoke(main, [*args, "--models", "anthropic"])
    assert bad.exit_code == 2 and "unknown model setup `anthropic`" in bad.output
