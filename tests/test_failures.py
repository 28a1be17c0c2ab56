"""Typed failures and reconciliation, run in process (docs/language.md, docs/runtime.md).

Declared error names raised by `fail` and by Python tools, caught by name, retried by
name, raised again with `fail e`; `on_failure` after the compensations (and the order of
the compensations of parallel branches); `reconcile` after a timeout and after a crash
between an effect's intent and its result.
"""

from __future__ import annotations

import pickle
import textwrap
from pathlib import Path
from typing import Any

import pytest

from mnlang.errors import NamedError, named
from mnlang.runtime.run import resume_run, start_run
from mnlang.stores.base import Batch, CommitResult
from mnlang.stores.sqlite import SQLiteStore
from tests.test_crash import SimulatedCrash, _break_lease, _settle_threads
from tests.test_runtime import CONFIG, RECORDER, Program


@pytest.fixture
def prog(tmp_path: Path) -> Any:
    def make(source: str, tools: str = "") -> Program:
        folder = tmp_path / f"p{len(list(tmp_path.iterdir()))}"
        return Program(folder, source, RECORDER + textwrap.dedent(tools))

    return make


NAMED = """
error PaymentDeclined
error BookingFailed

tool charge(mode: str) -> str {
  impl: "tools:charge"
  retry: { attempts: 3, on: [PaymentDeclined] }
}

workflow book(mode: str) -> str {
  try {
    try {
      c = charge(mode)
    } catch PaymentDeclined as e {
      log "inner: {e.kind}"
      fail e
    }
    return c
  } catch PaymentDeclined as e {
    if mode == "wrap" {
      fail BookingFailed { message: "not booked", cause: e }
    }
    return "outer caught {e.kind} at {e.step}: {e.message}"
  } catch tool_error as e {
    return "tool_error: {e.message}"
  }
}
"""

NAMED_TOOLS = """
from mnlang.errors import named

def charge(mode, *, ctx):
    record("charge", attempt=ctx.attempt)
    if mode == "flaky" and ctx.attempt < 3:
        raise named("PaymentDeclined", f"declined {ctx.attempt}")
    if mode in ("declined", "wrap"):
        raise named("PaymentDeclined", "card declined")
    if mode == "undeclared":
        raise named("Unheard", "who?")
    return "paid"
"""


def test_named_errors_retry_catch_and_rethrow_with_their_kind(prog: Any) -> None:
    p = prog(NAMED, NAMED_TOOLS)
    assert p.run({"mode": "flaky"}).result == "paid"
    assert [c["attempt"] for c in p.calls()] == [1, 2, 3]
    out = p.run({"mode": "declined"})
    # `fail e` keeps the kind, the message and the step where it failed.
    assert out.result == "outer caught PaymentDeclined at try/body/try/body/c: card declined"
    out = p.run({"mode": "undeclared"})
    assert out.result.startswith("tool_error: `charge` raised `Unheard`, which no `error`")


def test_fail_with_a_name_carries_its_cause(prog: Any) -> None:
    p = prog(NAMED, NAMED_TOOLS)
    out = p.run({"mode": "wrap"})
    assert out.status == "failed"
    assert out.error["kind"] == "BookingFailed"
    assert out.error["message"] == "not booked"
    assert out.error["cause"]["kind"] == "PaymentDeclined"
    assert out.error["cause"]["message"] == "card declined"


def test_a_plain_fail_stays_uncatchable_and_a_named_one_is_caught(prog: Any) -> None:
    p = prog(
        """
        error Stop

        workflow stop(named: bool) -> str {
          try {
            if named {
              fail Stop { message: "named" }
            }
            fail "plain"
          } catch any as e {
            return "caught {e.kind}"
          }
        }
        """
    )
    assert p.run({"named": True}).result == "caught Stop"
    out = p.run({"named": False})
    assert out.status == "failed" and out.error["kind"] == "fail"


def test_named_errors_cross_a_process_boundary() -> None:
    raised = pickle.loads(pickle.dumps(named("PaymentDeclined", "declined")))
    assert isinstance(raised, NamedError)
    assert (raised.kind, raised.message) == ("PaymentDeclined", "declined")
    with pytest.raises(ValueError, match="capitalised"):
        named("payment_declined", "x")


PARALLEL = """
error Failed

effect book(item: str) -> str {
  impl: "tools:book"
  key: "book:{item}"
  compensate: unbook(item)
}

effect unbook(item: str) -> bool {
  impl: "tools:unbook"
  key: "unbook:{item}"
}

effect notify(text: str) -> bool {
  impl: "tools:notify"
  key: "notify:{text}"
  compensate: unbook(text)
}

workflow trip(fail_cleanup: bool) -> str {
  first = book("a")
  parallel {
    slow = book("slow")
    fast = book("fast")
  }
  fail "{first} {slow} {fast} then a failure"
} on_failure as e {
  notify("after {e.kind}")
  if fail_cleanup {
    fail Failed { message: "cleanup says so", cause: e }
  }
}
"""

PARALLEL_TOOLS = """
import time

def book(item, *, ctx):
    if item == "slow":
        time.sleep(0.3)
    record("book", item=item)
    return item

def unbook(item, *, ctx):
    record("unbook", item=item)
    return True

def notify(text, *, ctx):
    record("notify", text=text)
    return True
"""


def test_compensations_undo_in_reverse_commit_order_across_branches_then_on_failure(
    prog: Any,
) -> None:
    p = prog(PARALLEL, PARALLEL_TOOLS)
    out = p.run({"fail_cleanup": False})
    assert out.status == "failed" and out.error["kind"] == "fail"
    calls = [(c["name"], c.get("item") or c.get("text")) for c in p.calls()]
    # `fast` committed before `slow`: undone after it. The cleanup's effect is not undone.
    assert calls == [
        ("book", "a"),
        ("book", "fast"),
        ("book", "slow"),
        ("unbook", "slow"),
        ("unbook", "fast"),
        ("unbook", "a"),
        ("notify", "after fail"),
    ]
    out = p.run({"fail_cleanup": True})
    assert out.error["kind"] == "Failed" and out.error["cause"]["kind"] == "fail"


RECONCILED = """
effect pay(order: str) -> str {
  impl: "tools:pay"
  key: "pay:{order}"
  timeout: 300ms
  retry: { attempts: 2, on: [timeout] }
  reconcile: find_payment(order)
}

effect page(order: str) -> str {
  impl: "tools:pay"
  once: true
  timeout: 300ms
  reconcile: find_payment(order)
}

tool find_payment(order: str) -> str? {
  impl: "tools:find_payment"
}

workflow checkout(order: str, once: bool) -> str {
  if once {
    paged = page(order)
    return paged
  }
  paid = pay(order)
  return paid
}
"""

RECONCILED_TOOLS = """
import time

def pay(order, *, ctx):
    record("pay", order=order, attempt=ctx.attempt)
    if order.startswith("slow"):
        time.sleep(0.6)
    return "paid-" + order

def find_payment(order, *, ctx):
    record("find", order=order, key=ctx.key)
    if order.endswith("unknown"):
        raise ConnectionError("the bank does not answer")
    if order.endswith("missing"):
        return None
    return "found-" + order
"""


def test_a_timed_out_effect_is_reconciled_before_it_is_called_again(prog: Any) -> None:
    p = prog(RECONCILED, RECONCILED_TOOLS)
    out = p.run({"order": "slow-1", "once": False})
    assert out.result == "found-slow-1"
    assert [c["name"] for c in p.calls()] == ["pay", "find"]
    answer = p.events(out.run_id, "reconciled")[0].data
    assert answer["answer"] == "done" and answer["key"] == "pay:slow-1"
    # Not done: the retry policy calls it again, and asks again after that timeout too.
    out = p.run({"order": "slow-missing", "once": False})
    assert out.status == "failed" and out.error["kind"] == "timeout"
    names = [c["name"] for c in p.calls() if c["order"] == "slow-missing"]
    assert names == ["pay", "find", "pay", "find"]


def test_only_an_unknown_answer_opens_a_repair(prog: Any) -> None:
    p = prog(RECONCILED, RECONCILED_TOOLS)
    out = p.run({"order": "slow-unknown", "once": True})
    assert out.status == "waiting"
    assert p.events(out.run_id, "repair_opened")
    out = p.run({"order": "slow-missing", "once": True})
    assert out.status == "failed" and out.error["kind"] == "timeout"
    assert not p.events(out.run_id, "repair_opened")
    out = p.run({"order": "slow-2", "once": True})
    assert out.result == "found-slow-2"


RETRIED_ONCE = """
effect post(text: str) -> str {
  impl: "tools:post"
  once: true
  retry: { attempts: 3, backoff: 10ms, on: [transient] }
  reconcile: find_post(text)
}

tool find_post(text: str) -> str? {
  impl: "tools:find_post"
}

workflow announce(text: str) -> str {
  posted = post(text)
  return posted
}
"""

RETRIED_ONCE_TOOLS = """
def post(text, *, ctx):
    record("post", text=text, attempt=ctx.attempt, wire=ctx.wire_key)
    if ctx.attempt == 1 and text != "fine":
        if text == "delivered":  # the receiver got it; the answer was lost
            record("received", text=text, wire=ctx.wire_key)
        raise ConnectionError("connection reset by peer")
    record("received", text=text, wire=ctx.wire_key)
    return "posted-" + text

def find_post(text, *, ctx):
    calls = [json.loads(line) for line in open(HERE / "calls.jsonl")]
    record("find", text=text, wire=ctx.wire_key)
    seen = [c for c in calls if c["name"] == "received" and c["wire"] == ctx.wire_key]
    return "posted-" + text if seen else None
"""


def test_a_reconciled_once_effect_retries_only_what_its_receiver_has_not_got(
    prog: Any,
) -> None:
    """`once` with `reconcile` may retry: each failed attempt is looked up first, so the
    receiver gets the action once (E302 stays for a `once` effect without `reconcile`)."""
    p = prog(RETRIED_ONCE, RETRIED_ONCE_TOOLS)
    out = p.run({"text": "lost"})  # the reset came before the receiver got it
    assert out.result == "posted-lost"
    assert [c["name"] for c in p.calls()] == ["post", "find", "post", "received"]
    assert len({c["wire"] for c in p.calls()}) == 1  # one action, one reference
    (answer,) = p.events(out.run_id, "reconciled")
    assert answer.data["answer"] == "not_done"
    assert answer.data["reason"].startswith("the call failed (transient)")
    out = p.run({"text": "delivered"})  # the receiver got it: no second call
    assert out.result == "posted-delivered"
    mine = [c["name"] for c in p.calls() if c["text"] == "delivered"]
    assert mine == ["post", "received", "find"]
    assert p.events(out.run_id, "reconciled")[0].data["answer"] == "done"
    out = p.run({"text": "fine"})
    assert not p.events(out.run_id, "reconciled")


class CrashBeforeResult:
    """A store that stops the run before the commit of the first effect result."""

    def __init__(self, inner: SQLiteStore) -> None:
        self.inner = inner

    def commit(self, batch: Batch) -> CommitResult:
        if any(put.status == "done" for put in batch.ledger):
            raise SimulatedCrash()
        return self.inner.commit(batch)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("order", ["o-1", "o-missing"])
def test_after_a_crash_between_intent_and_result_it_asks_first(
    prog: Any, tmp_path: Path, order: str
) -> None:
    """A crash right after the intent's commit, with the call made: on resume the
    reconcile tool answers; done is the result (no second call), not done calls again."""
    p = prog(RECONCILED, RECONCILED_TOOLS)
    crashing = CrashBeforeResult(p.store)
    with pytest.raises(SimulatedCrash):
        start_run(
            crashing,  # type: ignore[arg-type]
            p.ir,
            "checkout",
            {"order": order, "once": False},
            run_id="r",
            config=CONFIG,
        )
    _settle_threads()
    _break_lease(p.store, "r")
    out = resume_run(p.store, "r", program=p.ir, config=CONFIG)
    names = [c["name"] for c in p.calls()]
    if order == "o-1":
        assert out.result == "found-o-1" and names == ["pay", "find"]
    else:
        assert out.result == "paid-o-missing" and names == ["pay", "find", "pay"]
    assert p.events("r", "reconciled")[0].data["reason"].startswith("the run stopped")


def test_an_imported_error_name_is_qualified_and_caught(tmp_path: Path) -> None:
    """`import payments { Declined }`: the kind is `payments.Declined`, which a tool raises
    by that name and `catch Declined` takes."""
    (tmp_path / "payments.mn").write_text(
        textwrap.dedent(
            """
            error Declined

            tool charge(card: str) -> str {
              impl: "tools:charge"
            }
            """
        )
    )
    source = """
        import payments { Declined, charge }

        workflow pay(card: str) -> str {
          try {
            c = charge(card)
          } catch Declined as e {
            return "declined: {e.kind}"
          }
          return c
        }
        """
    tools = """
        from mnlang.errors import named

        def charge(card, *, ctx):
            raise named("payments.Declined", "no")
        """
    p = Program(tmp_path, source, RECORDER + textwrap.dedent(tools))
    assert p.ir.errors == ["payments.Declined"]
    assert p.run({"card": "c"}).result == "declined: payments.Declined"


ABANDONED = """
effect pay(order: str) -> str {
  impl: "tools:pay"
  key: "pay:{order}"
  reconcile: find_payment(order)
  settle: 1s
  compensate: refund(order)
}

effect refund(order: str) -> bool {
  impl: "tools:refund"
  key: "refund:{order}"
}

tool find_payment(order: str) -> str? {
  impl: "tools:find_payment"
}

workflow checkout(order: str) -> str {
  deadline: 500ms
  paid = pay(order)
  return paid
}
"""

ABANDONED_TOOLS = """
def pay(order, *, ctx):
    time.sleep(1.0 if order == "slow" else 5.0)  # still running when the deadline passes
    record("pay", order=order)
    return "paid-" + order

def find_payment(order, *, ctx):
    paid = (HERE / "calls.jsonl").exists() and f'"order": "{order}"' in (
        HERE / "calls.jsonl"
    ).read_text()
    record("find", order=order, key=ctx.key, paid=paid)
    return "paid-" + order if paid else None

def refund(order, *, ctx):
    record("refund", order=order)
    return True
"""


@pytest.mark.parametrize(("order", "undone"), [("slow", True), ("stuck", False)])
def test_an_effect_abandoned_by_a_cancellation_is_undone_only_if_it_happened(
    prog: Any, order: str, undone: bool
) -> None:
    """The deadline cancels the run while `pay` is in flight: `settle` later the reconcile
    tool is asked; the payment that went through (after 1 s) is refunded, the one that
    had not happened yet is not."""
    p = prog(ABANDONED, ABANDONED_TOOLS)
    out = p.run({"order": order})
    assert out.status == "failed" and out.error["kind"] == "deadline_exceeded"
    names = [c["name"] for c in p.calls() if c.get("order") == order]
    assert names == (["pay", "find", "refund"] if undone else ["find"])
    (answer,) = p.events(out.run_id, "reconciled")
    assert answer.data["answer"] == ("done" if undone else "not_done")
    assert answer.data["key"] == "pay:" + order


def test_a_run_cancelled_after_a_crash_between_intent_and_result_asks_before_undoing(
    prog: Any,
) -> None:
    """`pay` was sent, then the process died before its result's commit; the run is
    cancelled while nobody runs it. Resumed, it cancels at once: the reconcile tool says
    the payment happened, so it is refunded."""
    p = prog(ABANDONED.replace("deadline: 500ms", ""), ABANDONED_TOOLS)
    with pytest.raises(SimulatedCrash):
        start_run(
            CrashBeforeResult(p.store),  # type: ignore[arg-type]
            p.ir,
            "checkout",
            {"order": "slow"},
            run_id="c",
            config=CONFIG,
        )
    _settle_threads()
    _break_lease(p.store, "c")
    p.store.request_cancel("c")
    out = resume_run(p.store, "c", program=p.ir, config=CONFIG)
    assert out.status == "cancelled"
    assert [c["name"] for c in p.calls()] == ["pay", "find", "refund"]
    assert p.events("c", "abandoned")


def test_a_reconcile_tools_timeout_is_computed_from_its_arguments(prog: Any) -> None:
    """A lookup whose `timeout` is an expression over its parameters is cut at that
    timeout (the answer is unknown: a repair), not left to run without one."""
    p = prog(
        """
        effect page(order: str, patience: duration) -> str {
          impl: "tools:pay"
          once: true
          timeout: 300ms
          reconcile: find_payment(order, patience)
        }

        tool find_payment(order: str, patience: duration) -> str? {
          impl: "tools:find_payment"
          timeout: patience + 100ms
        }

        workflow checkout(order: str, patience: duration) -> str {
          paged = page(order, patience)
          return paged
        }
        """,
        """
        import time

        def pay(order, patience, *, ctx):
            time.sleep(0.6)
            return "paid-" + order

        def find_payment(order, patience, *, ctx):
            record("find", order=order)
            time.sleep(1.5)
            return "found-" + order
        """,
    )
    out = p.run({"order": "slow-1", "patience": 0})
    assert out.status == "waiting"
    (answer,) = p.events(out.run_id, "reconciled")
    assert answer.data["answer"] == "unknown"
    assert p.events(out.run_id, "repair_opened")
