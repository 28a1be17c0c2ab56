"""Answers matched by arguments and payloads sent to a correlation key: a `parallel for`
whose items run in any order still gets each item's own result, and a call no answer fits
fails naming its arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from mnlang.testing import SuiteReport, run_tests
from mnlang.testing.report import render

PROGRAM = """
type Order {
  id: str
  total: money
}

type Payment {
  amount: money
}

event paid -> Payment

tool fetch_order(order_id: str, token: secret) -> Order {
  impl: "tools:fetch_order"
}

effect refund(order_id: str, amount: money) -> str {
  impl: "tools:refund"
  key: "refund:{order_id}"
}

workflow many(ids: list[str], token: secret) -> list[str] {
  receipts = parallel for id in ids {
    o = fetch_order(id, token)
    p = wait paid for id { timeout: 1d }
    amount = o.total
    if p != null {
      amount = p.amount
    }
    r = refund(o.id, amount)
    yield r
  }
  return receipts
}

"""

TOOLS = """
def fetch_order(order_id, token, *, ctx=None):
    raise RuntimeError("a scenario called the real fetch_order")


def refund(order_id, amount, *, ctx=None):
    raise RuntimeError("a scenario called the real refund")
"""

ANSWERS = [
    '{ args: { order_id: "o-2" }, result: Order { id: "o-2", total: $20 } }',
    '{ args: { order_id: "o-1" }, result: Order { id: "o-1", total: $10 } }',
    'Order { id: "o-3", total: $30 }',
]
REFUNDS = [
    '{ args: { order_id: "o-1", amount: $11 }, result: "rf-1" }',
    '{ args: { order_id: "o-2" }, result: "rf-2" }',
    '{ args: { order_id: "o-3" }, result: "rf-3" }',
]
EVENTS = '{ paid: [{ key: "o-2", payload: Payment { amount: $20 } }, { key: "o-1", payload: Payment { amount: $11 } }] }'
CALLS = 'refund("o-1", $11), refund("o-2", $20), refund("o-3", $30)'


def run(tmp_path: Path, fetches: list[str], refunds: list[str], output: str) -> SuiteReport:
    (tmp_path / "tools.py").write_text(TOOLS, "utf-8")
    path = tmp_path / "many.mn"
    scenario = f"""
scenario per_argument {{
  run: many(["o-1", "o-2", "o-3"], "env:SHOP_TOKEN")
  tools: {{ fetch_order: [{", ".join(fetches)}], refund: [{", ".join(refunds)}] }}
  events: {EVENTS}
  expect: {{ output: {output} }}
  expect_calls: [fetch_order, fetch_order, fetch_order, {CALLS}]
}}
"""
    path.write_text(PROGRAM + scenario, "utf-8")
    report = run_tests([path])
    assert not report.problems, [d.message for p in report.problems for d in p.diagnostics]
    return report


@pytest.mark.parametrize("order", [1, -1])
def test_each_item_of_a_parallel_for_gets_its_own_answer(tmp_path: Path, order: int) -> None:
    report = run(tmp_path, ANSWERS[::order], REFUNDS[::order], '["rf-1", "rf-2", "rf-3"]')
    [result] = report.results
    assert result.passed, "\n".join(render(report))


def test_a_wrong_answer_fails_the_scenario(tmp_path: Path) -> None:
    wrong = [REFUNDS[0].replace("$11", "$10"), *REFUNDS[1:]]  # o-1 is refunded $11
    report = run(tmp_path, ANSWERS, wrong, '["rf-1", "rf-2", "rf-3"]')
    [result] = report.results
    text = "\n".join(render(report))
    assert not result.passed
    assert 'no answer of `refund` for { order_id: "o-1", amount: "11" }' in text, text


def test_a_call_no_answer_fits_names_its_arguments(tmp_path: Path) -> None:
    report = run(tmp_path, ANSWERS[:2], REFUNDS, '["rf-1", "rf-2", "rf-3"]')
    [result] = report.results
    text = "\n".join(render(report))
    assert not result.passed
    assert 'no answer of `fetch_order` for { order_id: "o-3"' in text, text
    assert "SHOP_TOKEN" in text  # the stand-in sees the secret's reference, never a value


def test_answers_with_the_same_arguments_answer_successive_calls(tmp_path: Path) -> None:
    """Two answers for `o-1`: the first call gets the first, a further call the last."""
    (tmp_path / "tools.py").write_text(TOOLS, "utf-8")
    path = tmp_path / "poll.mn"
    path.write_text(
        """
tool status(job: str) -> str {
  impl: "tools:status"
}

workflow poll(job: str) -> list[str] {
  a = status(job)
  b = status(job)
  c = status(job)
  return [a, b, c]
}

scenario polled {
  run: poll("j")
  tools: {
    status: [
      { args: { job: "j" }, result: "queued" },
      { args: { job: "j" }, result: "done" },
    ]
  }
  expect: { output: ["queued", "done", "done"] }
}
""",
        "utf-8",
    )
    report = run_tests([path])
    assert not report.problems
    assert report.results[0].passed, "\n".join(render(report))
