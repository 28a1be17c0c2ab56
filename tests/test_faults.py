"""Fault injection: each of the eight fault classes injected once, with its expected outcome.

The workflow `settle` fetches an order (a tool with retries and a `limit:`), asks a model,
waits for a person's approval, pays once (a keyed effect) and pages someone (a `once`
effect, whose receiving system takes no key). Runs go through the bench's harness, which
answers the checkpoint, settles repairs by looking at what the receiving system did, and
runs the faults that kill a process in a forked child that really dies. The slow test
does the same from the command line: `mnc run --inject` dies with status 137, and `mnc
resume` goes on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from mnlang.bench import world
from mnlang.bench.harness import NODE_LEASE_S, Harness, RunPlan
from mnlang.bench.suite import Case, load_suite
from mnlang.cli import main
from mnlang.ir.model import LimitIR
from mnlang.runtime.call_threads import CallJob, CallRunner, ToolLimits
from mnlang.runtime.clock import VirtualClock
from mnlang.runtime.faults import (
    CRASH_STATUS,
    FAULT_EVENT,
    CallSite,
    FaultError,
    FaultInjector,
    FaultPlan,
    FaultSpec,
    parse_inject,
)
from mnlang.stores.base import Event
from mnlang.stores.sqlite import SQLiteStore

SOURCE = """
type Order {
  id: str
  total: money
}

type Label {
  size: str
}

tool fetch(order_id: str) -> Order {
  impl: "faulty_tools:fetch"
  timeout: 5s
  retry: { attempts: 3, backoff: 400ms, on: [timeout, transient] }
  limit: { concurrent: 2, per_second: 20 }
}

agent classify(order: Order) -> Label {
  model: "gpt-5.4-mini"
  prompt: "Classify order {order.id} of {order.total}"
  max_tokens: 50
  retry: { attempts: 3, on: [malformed_output, timeout, transient] }
}

agent summary(order: Order) -> str {
  model: "gpt-5.4-mini"
  prompt: "Summarise order {order.id}"
  max_tokens: 50
}

effect pay(order_id: str, amount: money) -> str {
  impl: "faulty_tools:pay"
  key: "pay:{order_id}"
  retry: { attempts: 3, backoff: 400ms, on: [timeout, transient] }
}

effect page(text: str) -> bool {
  impl: "faulty_tools:page"
  once: true
}

workflow settle(order_id: str) -> str {
  class: "finance"
  o = fetch(order_id)
  label = classify(o)
  note = summary(o)
  d = checkpoint review {
    ask: "Pay {o.total}?"
    timeout: 1h
    on_timeout: reject
  }
  if not d.approved {
    fail "not approved by {d.by}"
  }
  p = pay(o.id, o.total)
  page("paid {p} ({label.size}, {note})")
  return p
}

scenario settled {
  run: settle("o-1")
  replies: { classify: [Label { size: "small" }], summary: ["one order"] }
  decisions: { review: approve }
  expect: { status: completed, output: "pay-o-1" }
  expect_calls: [fetch("o-1"), pay("o-1", $12.00), page("paid pay-o-1 (small, one order)")]
}
"""

TOOLS = """
from typing import Any

from mnlang.bench.world import calling, perform


def fetch(order_id: str, *, ctx: Any = None) -> dict[str, Any]:
    with calling("fetch", ctx):
        return {"id": order_id, "total": "12.00"}


def pay(order_id: str, amount: Any, *, ctx: Any = None) -> str:
    with calling("pay", ctx):
        return str(perform("pay", {"order_id": order_id, "amount": amount}, ctx, lambda: f"pay-{order_id}"))


def page(text: str, *, ctx: Any = None) -> bool:
    with calling("page", ctx):
        return bool(perform("page", {"text": text}, ctx, lambda: True, idempotent=False))
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    here = tmp_path_factory.mktemp("faults")
    (here / "settle.mn").write_text(SOURCE, "utf-8")
    (here / "faulty_tools.py").write_text(TOOLS, "utf-8")
    (here / "replies.json").write_text(
        json.dumps({"classify": [{"size": "small"}], "summary": ["one order"]}), "utf-8"
    )
    return here


@pytest.fixture(scope="module")
def case(folder: Path) -> Case:
    return load_suite(folder / "settle.mn")[0]


@pytest.fixture()
def bench(tmp_path: Path) -> Iterator[tuple[Harness, SQLiteStore, str]]:
    world_path = str(tmp_path / "world.db")
    old = os.environ.get(world.WORLD_ENV)
    os.environ[world.WORLD_ENV] = world_path
    store = SQLiteStore(tmp_path / "journal.db", durability="fast")
    try:
        yield Harness(store, str(tmp_path / "journal.db"), world_path), store, world_path
    finally:
        store.close()
        if old is None:
            del os.environ[world.WORLD_ENV]
        else:
            os.environ[world.WORLD_ENV] = old


def _drive(
    bench: tuple[Harness, SQLiteStore, str],
    case: Case,
    spec: FaultSpec,
    **plan: object,
) -> tuple[str, list[Event]]:
    harness, store, _ = bench
    run_id = f"{spec.fault}-{spec.at}"
    record = harness.drive(RunPlan(run_id, case, FaultPlan((spec,)), **plan))  # type: ignore[arg-type]
    return record.status, store.read_journal(run_id)


def _kinds(events: list[Event]) -> list[str]:
    return [e.kind for e in events]


def _faults(events: list[Event]) -> list[str]:
    return [e.data["fault"] for e in events if e.kind == FAULT_EVENT]


def _performed(world_path: str, effect: str) -> int:
    return sum(1 for p in world.performances(world_path) if p.effect == effect)


@pytest.mark.parametrize(
    ("fault", "at", "retried"),
    [
        ("network_failure", "fetch", "retry"),
        ("tool_timeout", "pay", "retry"),
        ("malformed_output", "classify", "retry"),
        ("retry_storm", "fetch", "retry"),
    ],
)
def test_a_failed_attempt_is_retried_to_the_same_output(
    bench: tuple[Harness, SQLiteStore, str],
    case: Case,
    fault: str,
    at: str,
    retried: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    advanced: list[float] = []
    advance = VirtualClock.advance

    def recording_advance(self: VirtualClock, seconds: float) -> None:
        advanced.append(seconds)
        advance(self, seconds)

    monkeypatch.setattr(VirtualClock, "advance", recording_advance)
    status, events = _drive(bench, case, parse_inject(f"{fault}@{at}"), expect="same")
    assert status == "completed"
    assert _faults(events) == [fault]
    assert retried in _kinds(events)
    # A tool's backoff was let pass on the run's virtual clock, not slept (what was left
    # of it once the run had nothing else to do); a model's repair has no backoff. (A
    # wall-time bound here failed on a loaded machine.)
    assert bool(advanced) == (fault != "malformed_output")
    assert _performed(bench[2], "pay") == 1


def test_worker_crash_kills_the_process_and_the_run_resumes(
    bench: tuple[Harness, SQLiteStore, str], case: Case
) -> None:
    status, events = _drive(bench, case, FaultSpec("worker_crash", "pay"))
    assert status == "completed"
    kinds = _kinds(events)
    # The crash came after the payment's intent was committed: resumed, called again
    # with the same key, and the receiving system performed it once.
    after = kinds[kinds.index(FAULT_EVENT) :]
    assert after.index("resumed") < after.index("reattempt")
    assert _faults(events) == ["worker_crash"]
    assert _performed(bench[2], "pay") == 1


def test_partial_effect_of_a_once_effect_is_settled_by_a_repair(
    bench: tuple[Harness, SQLiteStore, str], case: Case
) -> None:
    status, events = _drive(bench, case, FaultSpec("partial_effect", "page", expect="repair"))
    assert status == "completed"
    kinds = _kinds(events)
    assert "repair_opened" in kinds and "repaired" in kinds
    repair = next(e for e in events if e.kind == "decided" and "repair" in e.data)
    assert repair.data["choice"] == "mark_done"  # the page had been sent before the crash
    assert _performed(bench[2], "page") == 1


def test_partial_effect_of_a_keyed_effect_is_not_repeated(
    bench: tuple[Harness, SQLiteStore, str], case: Case
) -> None:
    status, events = _drive(bench, case, FaultSpec("partial_effect", "pay"))
    assert status == "completed"
    assert "reattempt" in _kinds(events)
    assert _performed(bench[2], "pay") == 1
    assert world.redeliveries(bench[2]) == 1  # the second call was recognised by its key


def test_node_failure_is_taken_over_after_the_lease_expires(
    bench: tuple[Harness, SQLiteStore, str], case: Case
) -> None:
    store = bench[1]
    started = time.monotonic()
    status, events = _drive(bench, case, FaultSpec("node_failure", "fetch"))
    assert status == "completed"
    assert time.monotonic() - started >= NODE_LEASE_S * 0.5  # waited for the lease
    record = store.get_run("node_failure-fetch")
    assert record is not None and record.lease_epoch >= 2
    assert _faults(events) == ["node_failure"]


@pytest.mark.parametrize(("late", "status"), [("near", "completed"), ("past", "failed")])
def test_approval_delay(
    bench: tuple[Harness, SQLiteStore, str], case: Case, late: str, status: str
) -> None:
    spec = FaultSpec("approval_delay", "review", expect="same" if late == "near" else "failed")
    got, events = _drive(bench, case, spec, late=late, approval_at="review")
    assert got == status
    delay = next(e for e in events if e.kind == FAULT_EVENT)
    assert delay.data["late"] == f"{late}_timeout"
    decided = next(e for e in events if e.kind == "decided")
    assert decided.data["by"] == ("timeout" if late == "past" else "scenario")


def test_a_retry_storm_keeps_the_tool_limit_across_runs(
    bench: tuple[Harness, SQLiteStore, str], case: Case
) -> None:
    harness, _, world_path = bench
    spec = parse_inject("retry_storm@fetch")
    runs = [RunPlan(f"storm-{n}", case, FaultPlan((spec,)), real_clock=True) for n in range(10)]
    threads = [threading.Thread(target=harness.drive, args=(plan,)) for plan in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    calls = sorted(start for start, _ in world.calls_of(world_path, "fetch"))
    assert len(calls) == 30  # each run: two failing attempts and one that succeeds
    window = max(sum(1 for c in calls if s <= c < s + 1.0) for s in calls)
    assert window <= 20  # `per_second: 20` held across the ten runs


def test_chaos_is_decided_by_the_seed_and_not_injected_twice() -> None:
    site = CallSite("tool", "fetch", "o", "", "[]", 1)
    plan = FaultPlan(chaos=0.5, seed=7)
    draws = [FaultInjector(plan, f"run-{n}", set()).at_call(site) is not None for n in range(40)]
    again = [FaultInjector(plan, f"run-{n}", set()).at_call(site) is not None for n in range(40)]
    assert draws == again and 5 < sum(draws) < 35
    injector = FaultInjector(plan, "run-x", set())
    hits = [injector.at_call(CallSite("tool", "fetch", "o", "", "[]", a)) for a in range(1, 9)]
    first = next(hit for hit in hits if hit is not None)
    resumed = FaultInjector(plan, "run-x", {first.id})  # the journal holds the fault
    assert all(
        (i := resumed.at_call(CallSite("tool", "fetch", "o", "", "[]", a))) is None
        or i.id != first.id
        for a in range(1, 9)
    )


def test_fault_plans_refuse_what_cannot_happen(case: Case) -> None:
    with pytest.raises(FaultError, match="unknown fault"):
        parse_inject("meteor@fetch")
    with pytest.raises(FaultError, match="takes a number"):
        parse_inject("retry_storm@fetch*0")
    with pytest.raises(FaultError, match="cannot hit"):
        FaultPlan((FaultSpec("malformed_output", "fetch"),)).check(case.program, "settle")
    with pytest.raises(FaultError, match="no step or call"):
        FaultPlan((FaultSpec("tool_timeout", "fetchh"),)).check(case.program, "settle")
    with pytest.raises(FaultError, match="not a checkpoint"):
        FaultPlan((FaultSpec("approval_delay", "fetch"),)).check(case.program, "settle")
    with pytest.raises(FaultError, match="cannot be told"):
        FaultPlan((FaultSpec("malformed_output", "summary"),)).check(case.program, "settle")
    with pytest.raises(FaultError, match="probability"):
        FaultPlan(chaos=1.5)
    assert parse_inject("retry_storm@fetch*3") == FaultSpec("retry_storm", "fetch", 3)


def test_mnc_run_reports_bad_faults_as_usage_errors(folder: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    db = str(tmp_path / "j.db")
    unknown = runner.invoke(main, ["run", str(folder / "settle.mn"), "--db", db, "--inject", "x@y"])
    assert unknown.exit_code == 2 and "unknown fault" in unknown.output
    missing = runner.invoke(
        main, ["run", str(folder / "settle.mn"), "--db", db, "--inject", "tool_timeout@nope"]
    )
    assert missing.exit_code == 2 and "no step or call named `nope`" in missing.output


def test_limits_are_shared_by_the_runners_of_a_process() -> None:
    limits = ToolLimits()
    gate = threading.Event()
    runners = [CallRunner(2, limits=limits) for _ in range(2)]
    jobs = [CallJob(n, "slow", gate.wait, limit=LimitIR(concurrent=1)) for n in range(2)]
    for runner, job in zip(runners, jobs, strict=True):
        runner.submit(job)
    assert runners[0].busy and runners[1].busy
    started = [job.started is not None for job in jobs]
    assert started.count(True) == 1  # the second runner waits for the first one's slot
    gate.set()
    done = [r.wait(2.0) for r in runners]
    assert sum(len(d) for d in done) >= 1
    for runner in runners:
        while runner.busy:
            runner.wait(0.5)
        runner.close()
    assert all(job.finished for job in jobs)


def test_a_virtual_clock_skips_waits_without_calls_in_flight() -> None:
    clock = VirtualClock()
    runner = CallRunner(1, clock)
    job = CallJob("x", "t", lambda: 42)
    runner.submit(job, delay_s=30.0)
    started = time.monotonic()
    out = []
    while not out:
        out = runner.wait(None)
    runner.close()
    assert out[0].value == 42
    assert time.monotonic() - started < 1.0 and clock.skipped > 29.0


@pytest.mark.slow
def test_mnc_run_inject_worker_crash_then_mnc_resume(folder: Path, tmp_path: Path) -> None:
    env = {**os.environ, world.WORLD_ENV: str(tmp_path / "world.db")}
    db = str(tmp_path / "journal.db")
    mnc = [sys.executable, "-m", "mnlang.cli"]
    given = json.dumps({"order_id": "o-1"})
    run = [
        *mnc,
        "run",
        str(folder / "settle.mn"),
        "--db",
        db,
        "--input",
        given,
        "--models",
        "scripted",
        "--id",
        "r",
        "--json",
    ]
    crashed = subprocess.run([*run, "--inject", "worker_crash@fetch"], env=env, check=False)
    assert crashed.returncode == CRASH_STATUS
    resumed = subprocess.run(
        [*mnc, "resume", "r", "--db", db, "--json"], env=env, capture_output=True, check=False
    )
    assert resumed.returncode == 3, resumed.stderr  # waiting for the review
    assert json.loads(resumed.stdout)["status"] == "waiting"
    with SQLiteStore(db) as store:
        events = store.read_journal("r")
    assert _faults(events) == ["worker_crash"]
    assert _kinds(events).count("tool") == 1
    late = subprocess.run(
        [*run[:-3], "--id", "late", "--json", "--inject", "approval_delay@review"],
        env=env,
        capture_output=True,
        check=False,
    )
    assert late.returncode == 1, late.stderr  # the timeout decided: rejected
    assert "by timeout" in json.loads(late.stdout)["error"]["message"]
