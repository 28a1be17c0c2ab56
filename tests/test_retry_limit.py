"""A retried run takes a slot of its workflow's `limit:` like any run of it: reopened
while the limit is full, it waits, queued, and a worker claims it once a slot frees
(docs/runtime.md, "Retrying a failed run")."""

from __future__ import annotations

from typing import Any

from mnlang.runtime.recovery import retry
from mnlang.stores.base import Batch, NewEvent, NewRun, RunUpdate, Store
from tests.test_retry import prog  # noqa: F401 (a fixture)
from tests.test_runtime import RECORDER, Program


def test_a_run_reopened_while_the_limit_is_full_waits_for_a_slot(store: Store) -> None:
    store.create_run(NewRun("first", "sync", {}, limit=1))
    store.commit(Batch("first", run=RunUpdate(status="failed", error={"kind": "tool_error"})))
    store.create_run(NewRun("second", "sync", {}, limit=1))  # running: the one slot

    assert store.reopen_failed("first", NewEvent("retried", {"by": "ops"}), {})
    record = store.get_run("first")
    assert record is not None and record.status == "waiting"  # queued, holds no slot
    assert "first" not in store.runnable_runs()
    [lease] = store.claim_runs("w1", ttl=30, limit=5)
    assert lease.run_id == "second"

    store.commit(Batch("second", lease=lease, run=RunUpdate(status="completed", result=1)))
    assert [lease.run_id for lease in store.claim_runs("w2", ttl=30, limit=5)] == ["first"]
    record = store.get_run("first")
    assert record is not None and record.status == "running"


def test_a_run_reopened_with_a_free_slot_runs_at_once(store: Store) -> None:
    store.create_run(NewRun("only", "sync", {}, limit=1))
    store.commit(Batch("only", run=RunUpdate(status="failed", error={"kind": "tool_error"})))
    assert store.reopen_failed("only", NewEvent("retried", {"by": "ops"}), {})
    record = store.get_run("only")
    assert record is not None and record.status == "running"


SYNC = """
tool fetch(n: int) -> int {
  impl: "tools:fetch"
}

workflow sync(n: int) -> int {
  limit: 1
  got = fetch(n)
  return got
}
"""

SYNC_TOOLS = """
def fetch(n):
    record("fetch", n=n)
    if (HERE / "broken").exists():
        raise RuntimeError("the source is down")
    return n * 10
"""


def test_mnc_retry_under_a_full_limit_waits_until_the_running_run_ends(prog: Any) -> None:  # noqa: F811
    p: Program = prog(SYNC, SYNC_TOOLS)
    assert RECORDER  # the tools record their calls (`p.calls()`)
    (p.folder / "broken").touch()
    assert p.run({"n": 1}, run_id="a").status == "failed"
    (p.folder / "broken").unlink()
    assert p.run({"n": 2}, run_id="b", detach=True).status == "running"  # holds the slot

    retry(p.store, "a", by="ops")
    waiting = p.resume("a")
    assert waiting.status == "waiting" and any("queued" in w for w in waiting.warnings)
    assert [c["n"] for c in p.calls()] == [1]  # `a` did not run again

    assert p.resume("b").status == "completed"
    assert p.store.runnable_runs() == ["a"]  # the slot is free: a worker takes it
    done = p.resume("a")
    assert (done.status, done.result) == ("completed", 10)
    assert [c["n"] for c in p.calls()] == [1, 2, 1]
