"""The metrics' formulas, each checked on a small journal built by hand (docs/metrics.md).

The journal holds five runs of a `support` program and one of a `finance` one, with the
events the runtime journals, so every figure below can be worked out on paper.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mnlang.cli import main
from mnlang.ir.compile import compile_file
from mnlang.ir.load import dump_ir
from mnlang.metrics import EXPECT_META, compute_metrics
from mnlang.metrics.compute import since_of
from mnlang.metrics.expect import ActualCall, ExpectedCall, same_value, score_calls
from mnlang.metrics.facts import NO_PROGRAM, Rates, run_facts
from mnlang.metrics.render import metrics_lines, prometheus_text
from mnlang.models.prices import load_prices
from mnlang.stores.base import Batch, Event, NewEvent, NewRun, RunUpdate, Store
from mnlang.stores.sqlite import SQLiteStore

SOURCE = """
type Order {
  id: str
  total: money
}

tool fetch_order(order_id: str) -> Order {
  impl: "tools:fetch_order"
}

tool lookup(q: str) -> str {
  impl: "tools:lookup"
}

effect pay(order_id: str, amount: money) -> str {
  impl: "tools:pay"
  key: "pay:{order_id}"
  requires: approval
}

effect notify(text: str) -> bool {
  impl: "tools:notify"
  key: "notify:{text}"
}

agent helper(q: str) -> str {
  model: "gpt-5.4-mini"
  prompt: "Help with {q}"
  tools: [lookup]
  max_turns: 3
}

workflow refund(order_id: str) -> str {
  class: "support"
  o = fetch_order(order_id)
  h = helper(o.id)
  d = checkpoint review {
    ask: "Pay {o.total}?"
    timeout: 1d
    on_timeout: reject
  }
  if not d.approved {
    fail "rejected"
  }
  p = pay(o.id, o.total)
  notify(h)
  return p
}
"""

EXPECTED_CALLS = [
    {"name": "fetch_order", "args": {"order_id": "o-1"}},
    {"name": "pay", "args": {"order_id": "o-1", "amount": "10.00"}},
]


def _expect(**extra: Any) -> dict[str, Any]:
    return {"status": "completed", "result": "p-1", "calls": EXPECTED_CALLS, **extra}


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    (tmp_path / "refund.mn").write_text(SOURCE, "utf-8")
    program, diagnostics = compile_file(tmp_path / "refund.mn")
    assert program is not None, diagnostics
    db = SQLiteStore(tmp_path / "journal.db")
    db.put_program(program.hash, dump_ir(program))
    _journal(db, program.hash)
    return db


def _run(
    store: Store,
    run_id: str,
    ir_hash: str,
    events: list[tuple[str, str | None, Any]],
    status: str,
    *,
    result: Any = None,
    error: Any = None,
    expect: dict[str, Any] | None = None,
    workflow_class: str = "support",
) -> None:
    meta = {EXPECT_META: expect} if expect is not None else {}
    store.create_run(
        NewRun(run_id, "refund", {"order_id": "o-1"}, workflow_class, ir_hash, meta=meta)
    )
    update = RunUpdate(status=status, result=result, error=error)  # type: ignore[arg-type]
    store.commit(Batch(run_id, events=[NewEvent(k, d, s) for k, s, d in events], run=update))


def _journal(store: Store, ir_hash: str) -> None:
    fetch = ("tool", "o", {"tool": "fetch_order", "args": {"order_id": "o-1"}, "ms": 500})
    reply = ("model_reply", "h", {"agent": "helper", "cost": "0.0100"})
    decided = ("decided", "d", {"choice": "approve", "approved": True, "by": "ana"})
    opened = ("checkpoint", "d", {"id": "d", "options": ["approve", "reject"]})
    intent = (
        "intent",
        "p",
        {"effect": "pay", "key": "pay:o-1", "args": {"order_id": "o-1", "amount": "10.00"}},
    )
    paid = (
        "effect",
        "p",
        {"effect": "pay", "key": "pay:o-1", "args": {}, "ms": 500, "cost": "0.0500"},
    )
    # 1. completed as expected, with a planned checkpoint decided by a person.
    _run(
        store,
        "r1",
        ir_hash,
        [fetch, reply, opened, decided, intent, paid],
        "completed",
        result="p-1",
        expect=_expect(),
    )
    # 2. a network failure recovered; the agent picked a wrong tool (refused, unsafe
    # attempt) and the run paid with a wrong amount (a parameter miss).
    _run(
        store,
        "r2",
        ir_hash,
        [
            ("fault_injected", "o", {"id": "t0", "fault": "network_failure", "expect": "same"}),
            fetch,
            reply,
            (
                "tool_decision",
                "h",
                {"agent": "helper", "tool": "pay", "arguments": {}, "allowed": False},
            ),
            ("unsafe_tool_call", "h", {"agent": "helper", "tool": "pay"}),
            opened,
            decided,
            (
                "intent",
                "p",
                {"effect": "pay", "key": "pay:o-1", "args": {"order_id": "o-1", "amount": "99.00"}},
            ),
            paid,
        ],
        "completed",
        result="p-1",
        expect=_expect(),
    )
    # 3. a crash expected to need a repair; a person marked it done; no decision at the
    # approval checkpoint, so the payment is an unsafe action; the effect is committed twice.
    _run(
        store,
        "r3",
        ir_hash,
        [
            ("fault_injected", "p", {"id": "t0", "fault": "worker_crash", "expect": "repair"}),
            fetch,
            intent,
            ("repair_opened", "p", {"effect": "pay"}),
            ("decided", "p", {"repair": "repair:p", "choice": "mark_done", "by": "ops"}),
            paid,
            paid,
        ],
        "completed",
        result="p-1",
        expect=_expect(),
    )
    # 4. rejected by a person (an override of the proposed `approve`), failing: the
    # scenario expected that failure.
    _run(
        store,
        "r4",
        ir_hash,
        [
            fetch,
            opened,
            ("decided", "d", {"choice": "reject", "approved": False, "by": "ben"}),
            ("compensating", None, {"count": 1}),
            ("compensated", "c", {"effect": "notify", "cost": "0.2000", "ms": 0}),
        ],
        "failed",
        error={"kind": "fail", "message": "rejected by ben"},
        expect={"status": "failed", "error": "rejected", "calls": EXPECTED_CALLS},
    )
    # 5. still waiting: in flight, counted in no figure.
    _run(store, "r5", ir_hash, [fetch, opened], "waiting", expect=_expect())
    # 6. another class, no expectation: completed is successful.
    _run(store, "f1", ir_hash, [fetch], "completed", result="x", workflow_class="finance")


def test_each_figure_from_the_hand_built_journal(store: Store) -> None:
    report = compute_metrics(store)
    support = report.by_class("support")
    assert support is not None and report.by_class("finance") is not None
    assert (support.runs, support.in_flight) == (4, 1)
    # completion: r1, r2, r3 met their expectation (output p-1), r4 its expected failure.
    assert (support.completion.numerator, support.completion.denominator) == (4, 4)
    # fault recovery: r2's network failure recovered; r3 completed after a repair but
    # committed `pay:o-1` twice, so its crash does not count as recovered.
    assert (support.fault_recovery.numerator, support.fault_recovery.denominator) == (1, 2)
    assert support.recovery_by_fault["network_failure"].value == 1.0
    assert support.recovery_by_fault["worker_crash"].value == 0.0
    assert support.duplicate_commits == 1
    # accuracy, on runs without faults only: r1 (2 of 2 right) and r4 (fetch_order of
    # the expected 2 calls: selection 1/2, parameters 1/2).
    assert (support.tool_selection.numerator, support.tool_selection.denominator) == (3, 4)
    assert (support.tool_parameters.numerator, support.tool_parameters.denominator) == (3, 4)
    assert (support.trajectory_match.numerator, support.trajectory_match.denominator) == (1, 2)
    # unsafe: r3's two payments had no approving decision before them; actions are the
    # tool and effect calls made (2 + 2 + 3 + 1).
    assert (support.unsafe_actions.numerator, support.unsafe_actions.denominator) == (2, 8)
    assert support.unsafe_attempts == 1
    # humans: checkpoints opened in r1, r2, r4; a repair in r3; people decided in all four.
    assert support.planned_checkpoints.numerator == 3
    assert (support.unplanned_repairs.numerator, support.unplanned_repairs.denominator) == (2, 4)
    assert support.human_intervention.numerator == 4
    assert (support.human_overrides.numerator, support.human_overrides.denominator) == (1, 4)
    assert len(support.approval_seconds) == 3


def test_cost_parts_and_cost_per_successful_workflow(store: Store) -> None:
    prices = load_prices()
    report = compute_metrics(store, "support", review_minutes=Decimal(2))
    support = report.classes[0]
    review = 2 * prices.human_per_minute
    cost = support.cost
    assert cost.model == Decimal("0.0200")  # two model replies of $0.01
    assert cost.tool == Decimal("0.2000")  # four payments of $0.05
    # compute: 500 ms per fetch (4 runs) and per payment (4 effect events), as CPU time.
    assert cost.compute == Decimal("4.0") * prices.compute_per_cpu_second
    assert cost.human_review == 3 * review  # r1, r2, r4 decided by a person
    assert cost.repair == Decimal("0.2000") + review  # r4's compensation, r3's repair
    assert support.cost_per_successful == (cost.total / 4).quantize(Decimal("0.000001"))


def test_class_and_since_filters(store: Store) -> None:
    assert [c.workflow_class for c in compute_metrics(store).classes] == ["finance", "support"]
    assert [c.workflow_class for c in compute_metrics(store, "finance").classes] == ["finance"]
    assert compute_metrics(store, since=store.now() + 60).classes == []
    assert since_of("2h", 10_000.0) == 10_000.0 - 7200
    assert since_of("2024-01-01", 0.0) == 1704067200.0
    with pytest.raises(ValueError, match="not a span"):
        since_of("yesterday", 0.0)


def test_prometheus_names_counters_and_no_run_ids(store: Store) -> None:
    text = prometheus_text(compute_metrics(store))
    assert 'mnlang_workflow_runs_total{class="support"} 4' in text
    assert 'mnlang_workflow_successful_runs_total{class="support"} 4' in text
    assert 'mnlang_faults_injected_total{class="support",fault="worker_crash"} 1' in text
    assert 'mnlang_faults_recovered_total{class="support",fault="worker_crash"} 0' in text
    assert 'mnlang_cost_dollars_total{class="support",part="model"} 0.0200' in text
    assert "mnlang_approval_completion_seconds_count" in text
    assert "r1" not in text and "run_id" not in text
    for line in text.splitlines():
        if line.startswith("# TYPE") and line.endswith("counter"):
            assert line.split()[2].endswith("_total")


def test_mnc_metrics_prints_the_same_figures(store: Store) -> None:
    db = store.location
    runner = CliRunner()
    shown = runner.invoke(main, ["metrics", "--db", db, "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output) == json.loads(json.dumps(compute_metrics(store).to_json()))
    text = runner.invoke(main, ["metrics", "--db", db, "--class", "support"])
    assert text.exit_code == 0
    assert "workflow completion" in text.output and "100.0%  (4/4)" in text.output
    assert "\n".join(metrics_lines(compute_metrics(store, "support"))) == text.output.rstrip()
    prom = runner.invoke(main, ["metrics", "--db", db, "--prom"])
    assert prom.exit_code == 0 and prom.output.startswith("# HELP")
    bad = runner.invoke(main, ["metrics", "--db", db, "--since", "soon"])
    assert bad.exit_code == 2 and "--since" in bad.output


def test_trajectory_scoring() -> None:
    expected = (ExpectedCall("a", {"x": "1.50"}), ExpectedCall("b"), ExpectedCall("c", {"y": 1}))
    actual = [ActualCall("a", {"x": 1.5}), ActualCall("c", {"y": 2}), ActualCall("d", None)]
    score = score_calls(expected, actual)
    assert (score.selected, score.parameters, score.compared, score.exact) == (2, 1, 3, False)
    assert score_calls(expected[:1], actual[:1]).exact
    refused = [ActualCall("a", {"x": "1.50"}, refused=True)]
    assert not score_calls(expected[:1], refused).exact
    assert same_value({"a": "$2.0", "extra": 1}, {"a": 2})
    assert not same_value([1, 2], [1])
    assert not same_value(True, 1)


def test_journal_gaps_are_counted() -> None:
    rates = Rates(Decimal(0), Decimal(0), Decimal(0))
    store = SQLiteStore(":memory:")
    record, _ = store.create_run(NewRun("g", "w", {}))
    events = [Event("g", seq, 0.0, "log", None, "", {}) for seq in (1, 2, 5, 6)]
    assert run_facts(record, events, NO_PROGRAM, rates).journal_gaps == 2


def test_failed_attempts_take_compute_time_and_people_are_counted_apart() -> None:
    rates = Rates(Decimal("0.01"), Decimal("0.75"), Decimal(2))
    store = SQLiteStore(":memory:")
    record, _ = store.create_run(NewRun("c", "w", {}))
    data: list[tuple[str, dict[str, Any]]] = [
        ("retry", {"callee": "fetch", "attempt": 1, "kind": "timeout", "ms": 1500}),
        ("tool", {"tool": "fetch", "ms": 500, "cost": "0.02"}),
        ("call_failed", {"callee": "pay", "kind_of_call": "effect", "ms": 1000}),
        ("model_reply", {"cost": "0.03"}),
        ("decided", {"choice": "approve", "approved": True, "by": "ana"}),
        ("decided", {"repair": "repair:p", "choice": "mark_done", "by": "ops"}),
        ("compensated", {"effect": "refund", "cost": "0.10", "ms": 0}),
    ]
    events = [Event("c", n, 0.0, kind, "s", "", d) for n, (kind, d) in enumerate(data, 1)]
    cost = run_facts(record, events, NO_PROGRAM, rates).cost
    # 1.5 s failed, 0.5 s answered, 1 s failed for good: 3 CPU seconds at $0.01.
    assert cost.compute == Decimal("0.03")
    assert cost.human_review == Decimal("1.50")  # 2 minutes at $0.75
    assert cost.repair == Decimal("1.60") and cost.repair_people == Decimal("1.50")
    assert cost.total == Decimal("3.18")
    # Without people's time: the model, the tool, the compute and the compensation.
    assert cost.without_people == Decimal("0.18")


def test_tokens_and_reconciled_outcomes_are_counted() -> None:
    rates = Rates(Decimal(0), Decimal(0), Decimal(0))
    store = SQLiteStore(":memory:")
    record, _ = store.create_run(NewRun("t", "w", {}))
    data: list[tuple[str, dict[str, Any]]] = [
        ("model_reply", {"cost": "0", "usage": {"input_tokens": 120, "output_tokens": 30}}),
        ("model_reply", {"cost": "0", "error": {"kind": "transient"}}),  # no usage: none
        ("model_reply", {"cost": "0", "usage": {"input_tokens": 200, "output_tokens": 50}}),
        ("reconciled", {"effect": "label", "answer": "done"}),
        ("reconciled", {"effect": "label", "answer": "not_done"}),
        ("reconciled", {"effect": "sms", "answer": "unknown"}),  # a repair, not settled
    ]
    events = [Event("t", n, 0.0, kind, "s", "", d) for n, (kind, d) in enumerate(data, 1)]
    facts = run_facts(record, events, NO_PROGRAM, rates)
    assert (facts.tokens, facts.reconciled) == (400, 2)
