"""The interpreter's semantics, run in process on small programs (docs/runtime.md).

Each test writes a `.mn` file and its tools into a temporary folder, compiles it, runs it
on a fresh journal and looks at the outcome, the journal, the ledger and what the tools
saw.
"""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from mnlang.ir.compile import compile_file
from mnlang.ir.model import IRProgram
from mnlang.runtime.config import RuntimeConfig
from mnlang.runtime.run import InputError, RunConflict, RunOutcome, resume_run, start_run
from mnlang.stores.sqlite import SQLiteStore

CONFIG = RuntimeConfig(commit_ms=0)


class Program:
    """A compiled test program with its tools, and a journal to run it on."""

    def __init__(self, folder: Path, source: str, tools: str = "") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        (folder / "main.mn").write_text(textwrap.dedent(source), "utf-8")
        (folder / "tools.py").write_text(tools, "utf-8")
        ir, diagnostics = compile_file(folder / "main.mn")
        assert ir is not None, [str(d) for d in diagnostics]
        self.ir: IRProgram = ir
        self.store = SQLiteStore(folder / "journal.db")

    def run(self, given: Any = None, workflow: str | None = None, **kw: Any) -> RunOutcome:
        name = workflow or next(w for w in self.ir.workflows if "." not in w)
        return start_run(self.store, self.ir, name, given or {}, config=CONFIG, **kw)

    def resume(self, run_id: str) -> RunOutcome:
        return resume_run(self.store, run_id, program=self.ir, config=CONFIG)

    def events(self, run_id: str, kind: str | None = None) -> list[Any]:
        return [e for e in self.store.read_journal(run_id) if kind is None or e.kind == kind]

    def calls(self) -> list[dict[str, Any]]:
        path = self.folder / "calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]


RECORDER = """
import json, os, time
from pathlib import Path
HERE = Path(__file__).parent

def record(name, **data):
    with open(HERE / "calls.jsonl", "a") as f:
        f.write(json.dumps({"name": name, **data}, default=str) + "\\n")
"""


@pytest.fixture
def prog(tmp_path: Path) -> Any:
    def make(source: str, tools: str = "") -> Program:
        folder = tmp_path / f"p{len(list(tmp_path.iterdir()))}"
        return Program(folder, source, RECORDER + textwrap.dedent(tools))

    return make


# --- values and expressions ---------------------------------------------------------------


def test_arithmetic_templates_and_builtins(prog: Any) -> None:
    p = prog(
        """
        workflow calc(price: money, qty: int, label: str, wait_for: duration) -> str {
          total = price * qty + $2.50
          share = total / 4
          ratio = share / total
          half = qty / 2
          rest = qty % 3
          longer = wait_for * 2 + 500ms
          words = split(trim(lower(label)), " ")
          nick = null ?? "anon"
          biggest = max([3, 9, 4])
          dash = "-"
          return "{total} {share} {ratio} {half} {rest} {longer} {join(words, dash)} {nick} {biggest} {round(2.5)} {to_str(true)}"
        }
        """
    )
    out = p.run({"price": "19.99", "qty": 3, "label": "  Big Sale ", "wait_for": 1500})
    assert out.status == "completed", out.error
    assert out.result == "$62.47 $15.6175 0.25 1.5 0 3500 big-sale anon 9 3 true"


def test_value_errors_are_catchable_and_name_the_problem(prog: Any) -> None:
    p = prog(
        """
        workflow pick(xs: list[int], n: int) -> str {
          try {
            x = xs[n]
          } catch value_error as e {
            return "caught {e.kind} at {e.step}: {e.message}"
          }
          return "got {x}"
        }
        """
    )
    assert p.run({"xs": [1, 2], "n": 1}).result == "got 2"
    out = p.run({"xs": [1, 2], "n": 5})
    assert out.result == "caught value_error at try/body/x: index 5 is out of range (length 2)"


def test_timestamps_and_now_are_journaled(prog: Any) -> None:
    p = prog(
        """
        workflow clock(start: timestamp) -> str {
          later = start + 1d
          gap = later - start
          at = now()
          return "{later} {gap} {at > start}"
        }
        """
    )
    out = p.run({"start": "2024-05-02T09:30:00Z"})
    assert out.result == "2024-05-03T09:30:00.000Z 86400000 true"
    [event] = p.events(out.run_id, "now")
    assert event.state == "at" and event.data["value"].endswith("Z")


# --- control flow ----------------------------------------------------------------------------


def test_loops_collect_in_order_and_while_stops_at_max(prog: Any) -> None:
    p = prog(
        """
        workflow loops(xs: list[int]) -> str {
          evens = for x in xs {
            if x % 2 == 0 {
              yield x * 10
            }
          }
          pairs = for x in xs {
            yield x
            yield x * 2
          }
          n = 0
          while n < 100, max: 7 {
            n = n + 1
          }
          return "{evens} {pairs} {n}"
        }
        """
    )
    out = p.run({"xs": [1, 2, 3, 4]})
    assert out.result == "[20, 40] [1, 2, 2, 4, 3, 6, 4, 8] 7"


def test_parallel_for_keeps_input_order_and_its_limit(prog: Any) -> None:
    p = prog(
        """
        tool slow(n: int) -> int {
          impl: "tools:slow"
        }

        workflow fan(xs: list[int]) -> list[int] {
          out = parallel for x in xs limit 2 {
            y = slow(x)
            yield y
          }
          return out
        }
        """,
        """
        import threading
        LOCK = threading.Lock()
        ACTIVE = [0, 0]

        def slow(n):
            with LOCK:
                ACTIVE[0] += 1
                ACTIVE[1] = max(ACTIVE[1], ACTIVE[0])
            time.sleep(0.05 if n % 2 else 0.01)
            with LOCK:
                ACTIVE[0] -= 1
            record("slow", n=n, most=ACTIVE[1])
            return n * n
        """,
    )
    out = p.run({"xs": [1, 2, 3, 4, 5]})
    assert out.result == [1, 4, 9, 16, 25]
    assert max(c["most"] for c in p.calls()) == 2
    assert [c["n"] for c in p.calls()] != [1, 2, 3, 4, 5]  # they finished out of order


def test_parallel_branches_share_variables(prog: Any) -> None:
    p = prog(
        """
        tool a() -> int {
          impl: "tools:a"
        }

        tool b(x: int) -> int {
          impl: "tools:b"
        }

        workflow both() -> int {
          parallel {
            x = a()
            {
              y = b(1)
              z = b(y)
            }
          }
          return x + z
        }
        """,
        """
        def a():
            return 40

        def b(x):
            return x + 1
        """,
    )
    assert p.run().result == 43


def test_first_failure_in_parallel_cancels_siblings(prog: Any) -> None:
    p = prog(
        """
        tool boom() -> int {
          impl: "tools:boom"
        }

        tool sleepy() -> int {
          impl: "tools:sleepy"
        }

        workflow race() -> int {
          parallel {
            x = boom()
            {
              try {
                y = sleepy()
              } finally {
                log "cleanup ran"
              }
            }
          }
          return x + y
        }
        """,
        """
        from mnlang.errors import Rejected

        def boom():
            time.sleep(0.05)
            raise Rejected("no")

        def sleepy():
            time.sleep(3)
            return 1
        """,
    )
    start = time.monotonic()
    out = p.run()
    assert time.monotonic() - start < 2
    assert out.status == "failed" and out.error["kind"] == "rejected"
    assert [e.data["message"] for e in p.events(out.run_id, "log")] == ["cleanup ran"]


def test_try_catch_finally_and_kinds(prog: Any) -> None:
    p = prog(
        """
        tool flaky(kind: str) -> str {
          impl: "tools:flaky"
        }

        workflow guarded(kind: str) -> str {
          try {
            r = flaky(kind)
          } catch timeout, transient as e {
            r = "soft {e.kind}"
          } catch any as e {
            r = "hard {e.kind}: {e.message}"
          } finally {
            log "done with {kind}"
          }
          return r
        }
        """,
        """
        from mnlang.errors import MnError

        def flaky(kind):
            if kind == "none":
                return "fine"
            if kind == "python":
                raise KeyError("oops")
            raise MnError(kind, "it broke")
        """,
    )
    assert p.run({"kind": "none"}).result == "fine"
    assert p.run({"kind": "transient"}).result == "soft transient"
    assert p.run({"kind": "rejected"}).result == "hard rejected: it broke"
    out = p.run({"kind": "python"})
    assert out.result == "hard tool_error: KeyError: key 'oops' not found"
    assert len(p.events(out.run_id, "log")) == 1


def test_fail_runs_finally_and_is_not_caught(prog: Any) -> None:
    p = prog(
        """
        workflow stop(x: int) -> int {
          try {
            if x > 0 {
              fail "too big: {x}"
            }
          } catch any as e {
            return 0
          } finally {
            log "finally"
          }
          return x
        }
        """
    )
    out = p.run({"x": 3})
    assert out.status == "failed"
    assert out.error == {"kind": "fail", "message": "too big: 3", "step": "try/body/if/then/fail"}
    assert len(p.events(out.run_id, "log")) == 1


# --- calls: retries, timeouts, isolation, results --------------------------------------------


def test_retries_count_the_first_try_and_only_listed_kinds(prog: Any) -> None:
    p = prog(
        """
        tool wobbly(kind: str, fails: int) -> int {
          impl: "tools:wobbly"
          retry: { attempts: 3, backoff: 10ms, factor: 2, jitter: true, on: [transient] }
        }

        workflow w(kind: str, fails: int) -> int {
          n = wobbly(kind, fails)
          return n
        }
        """,
        """
        from mnlang.errors import MnError

        def wobbly(kind, fails, *, ctx):
            record("wobbly", attempt=ctx.attempt, step=ctx.step_id, run=ctx.run_id)
            if ctx.attempt <= fails:
                raise MnError(kind, f"try {ctx.attempt}")
            return ctx.attempt
        """,
    )
    out = p.run({"kind": "transient", "fails": 2})
    assert out.result == 3
    retries = p.events(out.run_id, "retry")
    assert [r.data["attempt"] for r in retries] == [1, 2]
    assert all(5 <= r.data["delay_ms"] <= 20 for r in retries)
    assert p.calls()[0]["step"] == "n" and p.calls()[0]["run"] == out.run_id
    out = p.run({"kind": "transient", "fails": 3})
    assert out.status == "failed" and out.error["message"] == "try 3"
    out = p.run({"kind": "rejected", "fails": 1})
    assert out.status == "failed" and not p.events(out.run_id, "retry")


def test_backoff_delays_are_capped_and_reproducible() -> None:
    from mnlang.ir.base import RetryIR
    from mnlang.runtime.retry import judge, should_retry

    def delay_ms(policy: RetryIR, attempt: int, seed: str) -> int | None:
        return judge(policy, "timeout", attempt, None, 0, seed).delay_ms

    policy = RetryIR(attempts=5, backoff_ms=1000, factor=2, max_delay_ms=3000, jitter=False)
    assert [delay_ms(policy, n, "s") for n in (1, 2, 3, 4)] == [1000, 2000, 3000, 3000]
    jittered = msgspec.structs.replace(policy, jitter=True)
    first = [delay_ms(jittered, n, "run:step") for n in (1, 2, 3)]
    assert first == [delay_ms(jittered, n, "run:step") for n in (1, 2, 3)]
    assert all(d is not None and 500 <= d <= 3000 for d in first)
    assert first != [delay_ms(jittered, n, "other:step") for n in (1, 2, 3)]
    assert should_retry(policy, "timeout", 4) and not should_retry(policy, "timeout", 5)
    assert not should_retry(policy, "rejected", 1)


def test_thread_timeout_keeps_counting_against_the_limit(prog: Any) -> None:
    p = prog(
        """
        tool hang(n: int) -> int {
          impl: "tools:hang"
          timeout: 100ms
          limit: { concurrent: 1 }
        }

        workflow w() -> str {
          try {
            a = hang(1)
          } catch timeout as e {
            log "first: {e.message}"
          }
          b = hang(2)
          return "b={b}"
        }
        """,
        """
        def hang(n):
            record("start", n=n, at=time.monotonic())
            if n == 1:
                time.sleep(0.6)
            record("end", n=n, at=time.monotonic())
            return n
        """,
    )
    out = p.run()
    assert out.result == "b=2"
    calls = p.calls()
    end_1 = next(c["at"] for c in calls if c["name"] == "end" and c["n"] == 1)
    start_2 = next(c["at"] for c in calls if c["name"] == "start" and c["n"] == 2)
    assert start_2 >= end_1  # the timed-out call held its slot until it really ended


def test_process_isolation_kills_the_call_on_timeout(prog: Any) -> None:
    p = prog(
        """
        tool stuck(seconds: float) -> str {
          impl: "tools:stuck"
          timeout: 3s
          isolation: process
        }

        workflow w(seconds: float) -> str {
          r = stuck(seconds)
          return r
        }
        """,
        """
        def stuck(seconds, *, ctx):
            time.sleep(seconds)
            record("finished", pid=os.getpid())
            return f"pid {os.getpid()} attempt {ctx.attempt}"
        """,
    )
    out = p.run({"seconds": 0.0})
    assert out.status == "completed" and out.result.endswith("attempt 1")
    start = time.monotonic()
    out = p.run({"seconds": 60.0})
    assert time.monotonic() - start < 30  # killed at its 3 s timeout, not after 60 s
    assert out.status == "failed" and out.error["kind"] == "timeout"
    time.sleep(0.2)
    assert len(p.calls()) == 1  # the stuck process was killed before it could finish


def test_wrong_result_type_is_a_tool_error_naming_the_field(prog: Any) -> None:
    p = prog(
        """
        type Order {
          id: str
          total: money
        }

        tool fetch(id: str) -> Order {
          impl: "tools:fetch"
        }

        workflow w(id: str) -> money {
          o = fetch(id)
          return o.total
        }
        """,
        """
        from decimal import Decimal

        def fetch(id):
            if id == "float":
                return {"id": id, "total": 12.5}
            if id == "missing":
                return {"id": id}
            return {"id": id, "total": Decimal("12.50"), "extra": 1}
        """,
    )
    assert p.run({"id": "ok"}).result == "12.50"
    out = p.run({"id": "float"})
    assert out.error["kind"] == "tool_error"
    assert "`result.total`" in out.error["message"] and "float" in out.error["message"]
    out = p.run({"id": "missing"})
    assert "`result.total`: missing field" in out.error["message"]


# --- effects -----------------------------------------------------------------------------------


EFFECTS = """
type Receipt {
  id: str
  amount: money
}

effect pay(order: str, amount: money) -> Receipt {
  impl: "tools:pay"
  key: "pay:{order}"
  scope: global
}

workflow w(order: str, amount: money) -> str {
  r = pay(order, amount)
  return "{r.id} {r.amount}"
}
"""

PAY = """
def pay(order, amount, *, ctx):
    record("pay", key=ctx.key, attempt=ctx.attempt)
    return {"id": f"rcpt-{order}", "amount": amount}
"""


def test_a_committed_global_key_is_not_called_again(prog: Any) -> None:
    p = prog(EFFECTS, PAY)
    first = p.run({"order": "o1", "amount": "10.00"})
    second = p.run({"order": "o1", "amount": "10.0"})  # the same amount
    assert first.result == second.result == "rcpt-o1 $10.00"
    assert [c["key"] for c in p.calls()] == ["pay:o1"]
    assert p.events(second.run_id, "replayed")
    row = p.store.ledger_get("pay:o1", run_id=None)
    assert row is not None and row.status == "done" and row.run_id == first.run_id


def test_a_reused_key_with_other_arguments_is_a_key_conflict(prog: Any) -> None:
    p = prog(EFFECTS, PAY)
    p.run({"order": "o1", "amount": "10.00"})
    out = p.run({"order": "o1", "amount": "99.00"})
    assert out.status == "failed" and out.error["kind"] == "key_conflict"
    assert "`pay:o1`" in out.error["message"]
    assert len(p.calls()) == 1


def test_compensations_run_in_reverse_on_an_uncaught_failure(prog: Any) -> None:
    p = prog(
        """
        effect reserve(item: str) -> str {
          impl: "tools:reserve"
          key: "reserve:{item}"
          compensate: release(item)
        }

        effect release(item: str) -> bool {
          impl: "tools:release"
          key: "release:{item}"
        }

        workflow pair(a: str, b: str) -> str {
          first = reserve(a)
          second = reserve(b)
          if b == "bad" {
            fail "{b} is out of stock"
          }
          return "{first} {second}"
        }
        """,
        """
        def reserve(item, *, ctx):
            record("reserve", item=item)
            return "r-" + item

        def release(item, *, ctx):
            record("release", item=item, key=ctx.key)
            return True
        """,
    )
    assert p.run({"a": "x", "b": "y"}).status == "completed"
    assert [c["name"] for c in p.calls()] == ["reserve", "reserve"]
    out = p.run({"a": "p", "b": "bad"})
    assert out.status == "failed" and out.error["message"] == "bad is out of stock"
    released = [c["item"] for c in p.calls() if c["name"] == "release"]
    assert released == ["bad", "p"]
    assert len(p.events(out.run_id, "compensated")) == 2


# --- budget, deadline, cancellation ------------------------------------------------------------


def test_budget_is_reserved_before_each_call_and_not_catchable(prog: Any) -> None:
    p = prog(
        """
        tool paid(n: int) -> int {
          impl: "tools:paid"
          cost: $0.40
        }

        workflow spend() -> int {
          budget: $1.00
          total = 0
          try {
            for n in [1, 2, 3] {
              x = paid(n)
              total = total + x
            }
          } catch any as e {
            return -1
          } finally {
            log "spent so far: {total}"
          }
          return total
        }
        """,
        """
        def paid(n):
            record("paid", n=n)
            return n
        """,
    )
    out = p.run()
    assert out.status == "failed" and out.error["kind"] == "budget_exceeded"
    assert [c["n"] for c in p.calls()] == [1, 2]
    assert [e.data["message"] for e in p.events(out.run_id, "log")] == ["spent so far: 3"]
    record = p.store.get_run(out.run_id)
    assert record is not None and record.meta["cost"] == "0.80"


def test_deadline_stops_the_run(prog: Any) -> None:
    p = prog(
        """
        tool slow() -> int {
          impl: "tools:slow"
        }

        workflow late() -> int {
          deadline: 200ms
          x = slow()
          return x
        }
        """,
        """
        def slow():
            time.sleep(2)
            return 1
        """,
    )
    start = time.monotonic()
    out = p.run()
    assert time.monotonic() - start < 1.5
    assert out.status == "failed" and out.error["kind"] == "deadline_exceeded"


# --- pauses ---------------------------------------------------------------------------------------


def test_checkpoint_waits_then_continues_with_the_decision(prog: Any) -> None:
    p = prog(
        """
        workflow ask(amount: money) -> str {
          d = checkpoint review {
            ask: "Pay {amount}?"
            options: [approve, reject]
            timeout: 1h
            on_timeout: reject
          }
          if not d.approved {
            return "declined by {d.by}"
          }
          none = "-"
          comment = d.comment ?? none
          return "approved by {d.by}: {comment}"
        }
        """
    )
    out = p.run({"amount": "5.00"})
    assert out.status == "waiting"
    [cp] = p.store.open_checkpoints(out.run_id)
    assert cp.request["ask"] == "Pay $5.00?" and cp.checkpoint_id == "d"
    assert p.resume(out.run_id).status == "waiting"
    p.store.decide_checkpoint(out.run_id, "d", {"choice": "approve", "comment": "ok"}, by="ana")
    done = p.resume(out.run_id)
    assert done.status == "completed" and done.result == "approved by ana: ok"


def test_a_signal_sent_before_the_wait_is_kept(prog: Any) -> None:
    p = prog(
        """
        type Paid {
          amount: money
        }

        event paid -> Paid

        workflow w() -> str {
          wait 1ms
          p = wait paid { timeout: 1d }
          if p == null {
            return "nothing"
          }
          return "paid {p.amount}"
        }
        """
    )
    out = p.run()
    assert out.status == "waiting"
    p.store.send_signal(out.run_id, "paid", {"amount": "3.50"}, signal_id="s1")
    time.sleep(0.01)
    done = p.resume(out.run_id)
    assert done.status == "completed" and done.result == "paid $3.50"


def test_cancelling_a_waiting_run_runs_its_finally(prog: Any) -> None:
    p = prog(
        """
        workflow w() -> bool {
          try {
            d = checkpoint go {
              timeout: never
            }
          } finally {
            log "cleanup"
          }
          return d.approved
        }
        """
    )
    out = p.run()
    assert out.status == "waiting"
    assert p.store.request_cancel(out.run_id)
    done = p.resume(out.run_id)
    assert done.status == "cancelled" and done.error["kind"] == "cancelled"
    assert [e.data["message"] for e in p.events(out.run_id, "log")] == ["cleanup"]
    assert not p.store.open_checkpoints(out.run_id)


# --- runs: input, ids, resume ----------------------------------------------------------------------


def test_input_is_checked_against_the_parameters(prog: Any) -> None:
    p = prog(
        """
        type Item {
          id: str
          price: money
        }

        workflow w(items: list[Item], note: str = "none", extra: int?) -> str {
          return "{len(items)} {note} {extra}"
        }
        """
    )
    assert p.run({"items": [{"id": "a", "price": "1.00"}]}).result == "1 none null"
    with pytest.raises(InputError, match=r"`input.items\[0\].price`: expected money"):
        p.run({"items": [{"id": "a", "price": 1.5}]})
    with pytest.raises(InputError, match="has no parameter `itemz`"):
        p.run({"itemz": []})
    with pytest.raises(InputError, match="the input has no `items`"):
        p.run({})
    with pytest.raises(InputError, match=r"`input.items\[0\].size`: `Item` has no such field"):
        p.run({"items": [{"id": "a", "price": "1", "size": 2}]})


def test_a_second_start_with_the_same_id_returns_the_run(prog: Any) -> None:
    p = prog(
        """
        tool once_a_run() -> int {
          impl: "tools:once_a_run"
        }

        workflow w() -> int {
          n = once_a_run()
          return n
        }
        """,
        """
        def once_a_run():
            record("called")
            return 7
        """,
    )
    first = p.run(run_id="fixed")
    again = p.run(run_id="fixed")
    assert first.created and not again.created
    assert again.status == "completed" and again.result == 7
    assert len(p.calls()) == 1
    assert p.resume("fixed").result == 7 and len(p.calls()) == 1


def test_a_start_with_an_existing_id_and_other_input_is_a_conflict(prog: Any) -> None:
    p = prog(
        """
        workflow w(amount: money, note: str = "none") -> str {
          return "${amount} ${note}"
        }
        """
    )
    first = p.run({"amount": "240.0"}, run_id="pay-1")
    # The same input, canonically: another spelling of the amount, the default spelled out.
    same = p.run({"amount": "240.00", "note": "none"}, run_id="pay-1")
    assert first.created and not same.created and same.result == first.result
    with pytest.raises(RunConflict) as caught:
        p.run({"amount": "241"}, run_id="pay-1")
    assert caught.value.existing == {"amount": "240.0", "note": "none"}
    assert caught.value.given == {"amount": "241"}
    assert "241" in (caught.value.help or "") and "240.0" in (caught.value.help or "")
    assert [r.run_id for r in p.store.list_runs()] == ["pay-1"]


def test_resume_warns_when_a_tool_module_changed(prog: Any) -> None:
    p = prog(
        """
        tool ping() -> bool {
          impl: "tools:ping"
        }

        workflow w() -> bool {
          ok = ping()
          d = checkpoint go {
            timeout: never
          }
          return d.approved and ok
        }
        """,
        """
        def ping():
            return True
        """,
    )
    out = p.run()
    (p.folder / "tools.py").write_text(RECORDER + "\ndef ping():\n    return False\n")
    again = p.resume(out.run_id)
    assert again.warnings == ["tool module `tools.py` changed since the run started"]
