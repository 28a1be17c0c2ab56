"""`mnc test`: scenarios run on a fresh journal with their doubles, and the report.

A small refund workflow (a tool, an agent that may call it, a checkpoint on low
confidence, an event, a keyed effect) is written to a temporary folder with its tools;
each test adds scenarios and checks what the runner made of them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mnlang.cli import main
from mnlang.testing import SuiteReport, run_tests
from mnlang.testing.report import render

PROGRAM = """
enum Category { damaged, late }

type Order {
  id: str
  total: money
}

type Triage {
  category: Category
  confidence: float
}

type Payment {
  amount: money
}

event paid -> Payment

tool fetch_order(order_id: str) -> Order {
  impl: "tools:fetch_order"
  retry: { attempts: 3, on: [transient] }
}

agent triage(text: str) -> Triage {
  model: "gpt-5.4-mini"
  prompt: "Classify: {text}"
  tools: [fetch_order]
  max_turns: 2
  max_tokens: 100
  retry: { attempts: 2, on: [malformed_output] }
}

effect refund(order_id: str, amount: money) -> str {
  impl: "tools:refund"
  key: "refund:{order_id}"
}

workflow handle(order_id: str, text: str) -> str {
  o = fetch_order(order_id)
  t = triage(text)
  if t.confidence < 0.5 {
    d = checkpoint review {
      ask: "Refund {o.total}?"
      timeout: 1d
      on_timeout: reject
    }
    if not d.approved {
      fail "declined by {d.by}"
    }
  }
  p = wait paid { timeout: 2d }
  if p == null {
    fail "unpaid"
  }
  r = refund(o.id, p.amount)
  return r
}
"""

TOOLS = """
import json, os
from decimal import Decimal

def fetch_order(order_id, *, ctx=None):
    return {"id": order_id, "total": Decimal("42.50")}

def refund(order_id, amount, *, ctx=None):
    with open(os.environ["SCENARIO_TEST_LOG"], "a") as f:
        f.write(json.dumps({"order_id": order_id, "key": ctx.key}) + "\\n")
    return "rf-" + order_id
"""

SURE = "Triage { category: Category.damaged, confidence: 0.9 }"
UNSURE = "Triage { category: Category.late, confidence: 0.2 }"
PAID = "events: { paid: [Payment { amount: $42.50 }] }"


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "tools.py").write_text(TOOLS, "utf-8")
    monkeypatch.setenv("SCENARIO_TEST_LOG", str(tmp_path / "effects.jsonl"))
    return tmp_path


def scenarios(folder: Path, *blocks: str) -> SuiteReport:
    path = folder / "flow.mn"
    path.write_text(PROGRAM + "\n".join(blocks), "utf-8")
    report = run_tests([path])
    assert not report.problems, [d.message for p in report.problems for d in p.diagnostics]
    return report


def scenario(name: str, *lines: str) -> str:
    body = "\n".join(f"  {line}" for line in lines)
    return f"scenario {name} {{\n{body}\n}}\n"


def one(report: SuiteReport) -> tuple[bool, str]:
    [result] = report.results
    return result.passed, "\n".join(render(report))


def effects(folder: Path) -> list[dict[str, str]]:
    log = folder / "effects.jsonl"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_a_scenario_passes_with_real_tools_mocked_effects_replies_and_events(
    folder: Path,
) -> None:
    report = scenarios(
        folder,
        scenario(
            "sure",
            'run: handle("o-1", "cracked mug")',
            'tools: { refund: ["rf-mock"] }',
            f"replies: {{ triage: [{SURE}] }}",
            PAID,
            'expect: { status: completed, output: "rf-mock" }',
            'expect_calls: [fetch_order("o-1"), triage, refund("o-1", $42.5)]',
        ),
    )
    passed, text = one(report)
    assert passed, text
    assert "1 passed" in text and "flow.mn ." in text
    assert effects(folder) == []  # the effect was mocked


def test_the_agent_calls_a_tool_on_a_scripted_turn(folder: Path) -> None:
    report = scenarios(
        folder,
        scenario(
            "looked_up",
            'run: handle("o-1", "where is my order")',
            'tools: { fetch_order: [Order { id: "o-1", total: $5 }], refund: ["rf"] }',
            f'replies: {{ triage: [fetch_order("o-9"), {SURE}] }}',
            PAID,
            'expect: { output: "rf" }',
            'expect_calls: [fetch_order("o-1"), fetch_order("o-9"), triage, refund]',
        ),
    )
    passed, text = one(report)
    assert passed, text


def test_output_and_calls_that_differ_are_shown(folder: Path) -> None:
    report = scenarios(
        folder,
        scenario(
            "wrong",
            'run: handle("o-1", "x")',
            'tools: { refund: ["rf-1"] }',
            f"replies: {{ triage: [{SURE}] }}",
            PAID,
            'expect: { output: "rf-2" }',
            "expect_calls: [fetch_order, triage, triage]",
        ),
    )
    passed, text = one(report)
    assert not passed
    assert "FAILURES" in text and "flow.mn::wrong" in text
    assert '-"rf-2"' in text and '+"rf-1"' in text
    assert "missing: triage" in text and "unexpected: refund" in text
    assert "1 failed in" in text


@pytest.mark.parametrize(
    ("decision", "status", "message"),
    [
        ("approve", "completed", None),
        ('{ choice: reject, by: "maria" }', "failed", "declined by maria"),
        ("timeout", "failed", "declined by timeout"),
        ("{ choice: approve, after: 2d }", "failed", "declined by timeout"),
    ],
)
def test_decisions_and_timeouts(
    folder: Path, decision: str, status: str, message: str | None
) -> None:
    expect = (
        'expect: { output: "rf" }'
        if message is None
        else f'expect: {{ status: {status}, message: "{message}" }}'
    )
    report = scenarios(
        folder,
        scenario(
            "unsure",
            'run: handle("o-1", "x")',
            'tools: { refund: ["rf"] }',
            f"replies: {{ triage: [{UNSURE}] }}",
            f"decisions: {{ review: {decision} }}",
            PAID,
            expect,
        ),
    )
    passed, text = one(report)
    assert passed, text


def test_a_run_left_waiting_says_what_it_waits_for(folder: Path) -> None:
    report = scenarios(
        folder,
        scenario(
            "undecided",
            'run: handle("o-1", "x")',
            f"replies: {{ triage: [{UNSURE}] }}",
            'expect: { output: "rf" }',
        ),
    )
    passed, text = one(report)
    assert not passed
    assert "expected `completed`, the run ended `waiting`" in text
    assert "waiting at checkpoint `review`, and the scenario has no decision left for it" in text


def test_an_event_that_never_comes_times_out(folder: Path) -> None:
    report = scenarios(
        folder,
        scenario(
            "unpaid",
            'run: handle("o-1", "x")',
            f"replies: {{ triage: [{SURE}] }}",
            'expect: { status: failed, message: "unpaid" }',
        ),
    )
    passed, text = one(report)
    assert passed, text


def test_faults_are_retried_or_fail_the_run(folder: Path) -> None:
    common = [
        'run: handle("o-1", "x")',
        'tools: { refund: ["rf"] }',
        f"replies: {{ triage: [{SURE}] }}",
        PAID,
    ]
    report = scenarios(
        folder,
        scenario(
            "recovers",
            *common,
            "faults: [{ kind: transient, at: fetch_order, times: 2 }]",
            'expect: { output: "rf" }',
        ),
        scenario(
            "gives_up",
            *common,
            "faults: [{ kind: transient, at: fetch_order, times: 3 }]",
            'expect: { status: failed, error: transient, message: "injected fault" }',
        ),
        scenario(
            "repaired_reply",
            *common,
            "faults: [{ kind: malformed_output, at: triage }]",
            'expect: { output: "rf" }',
        ),
    )
    assert [r.passed for r in report.results] == [True, True, True], "\n".join(render(report))


def test_a_worker_crash_resumes_and_commits_the_effect_once(folder: Path) -> None:
    report = scenarios(
        folder,
        scenario(
            "crash",
            'run: handle("o-1", "x")',
            f"replies: {{ triage: [{SURE}] }}",
            PAID,
            "faults: [{ kind: worker_crash, at: refund }]",
            'expect: { output: "rf-o-1" }',
        ),
    )
    passed, text = one(report)
    assert passed, text
    [result] = report.results
    assert result.notes == ["worker crash injected after `refund`"]
    calls = effects(folder)
    assert len(calls) == 2  # called again after the crash, with the same key
    assert {c["key"] for c in calls} == {"refund:o-1"}


def test_replies_from_a_file(folder: Path) -> None:
    (folder / "replies.json").write_text(
        json.dumps(
            {"triage": [{"$match": "mug", "$reply": {"category": "damaged", "confidence": 1.0}}]}
        ),
        "utf-8",
    )
    report = scenarios(
        folder,
        scenario(
            "from_file",
            'run: handle("o-1", "mug")',
            'tools: { refund: ["rf"] }',
            'replies: "replies.json"',
            PAID,
            'expect: { output: "rf" }',
        ),
    )
    passed, text = one(report)
    assert passed, text


def test_a_missing_reply_fails_with_the_agent_named(folder: Path) -> None:
    report = scenarios(
        folder,
        scenario("no_reply", 'run: handle("o-1", "x")', 'expect: { output: "rf" }'),
    )
    passed, text = one(report)
    assert not passed
    assert "error: tool_error: scenario `no_reply` has no replies for agent `triage`" in text


# --- the command ---------------------------------------------------------------------------


def test_mnc_test_exit_codes_and_output(folder: Path) -> None:
    good = scenario(
        "good",
        'run: handle("o-1", "x")',
        'tools: { refund: ["rf"] }',
        f"replies: {{ triage: [{SURE}] }}",
        PAID,
        'expect: { output: "rf" }',
    )
    bad = good.replace("scenario good", "scenario bad").replace('output: "rf" }', 'output: "no" }')
    path = folder / "flow.mn"
    runner = CliRunner()
    path.write_text(PROGRAM + good, "utf-8")
    result = runner.invoke(main, ["test", str(folder)])
    assert result.exit_code == 0, result.output
    assert "1 passed" in result.output
    path.write_text(PROGRAM + good + bad, "utf-8")
    result = runner.invoke(main, ["test", "-v", str(path)])
    assert result.exit_code == 1
    assert "flow.mn::good PASSED" in result.output and "flow.mn::bad FAILED" in result.output
    result = runner.invoke(main, ["test", "-k", "good", "--json", str(path)])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert [s["scenario"] for s in data["scenarios"]] == ["good"] and data["passed"]
    (folder / "flow.mn").write_text(PROGRAM, "utf-8")
    assert runner.invoke(main, ["test", str(folder)]).exit_code == 5
    path.write_text(PROGRAM + good.replace("handle(", "handel("), "utf-8")
    result = runner.invoke(main, ["test", str(path)])
    assert result.exit_code == 1 and "cannot test this file" in result.output


def test_a_reply_wrong_on_purpose_is_an_expected_miss(folder: Path) -> None:
    common = [
        'run: handle("o-1", "x")',
        'tools: { refund: ["rf"] }',
        PAID,
        'expect: { output: "rf" }',
        'model_error: "triage is unsure, so a review is asked for"',
    ]
    report = scenarios(
        folder,
        scenario("missed", f"replies: {{ triage: [{UNSURE}] }}", *common),
        scenario("met_anyway", f"replies: {{ triage: [{SURE}] }}", *common),
    )
    missed, met = report.results
    assert missed.passed and not missed.met
    assert not met.passed and met.met
    text = "\n".join(render(report))
    assert "flow.mn xF" in text
    assert "yet the run met every expectation" in text
    assert "1 failed, 1 missed as expected" in text


def test_each_model_of_an_agent_is_scripted_on_its_own(tmp_path: Path) -> None:
    """`for_model("gpt-5.4-mini", reply)` answers only the requests sent to that fallback
    model, in their own order; expecting the first model's reply instead fails."""
    case = Path(__file__).parent / "cases" / "scenario_for_model.mn"
    report = run_tests([case])
    assert [r.passed for r in report.results] == [True, True], "\n".join(render(report))
    wrong = tmp_path / "flow.mn"
    wrong.write_text(
        case.read_text().replace('output: ["first", "second"]', 'output: ["second", "first"]')
    )
    [_, missed] = run_tests([wrong]).results
    assert not missed.passed
