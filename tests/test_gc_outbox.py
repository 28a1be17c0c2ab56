"""`mnc gc` cleans the journal outbox (docs/deploy.md, "Retention"), on both stores: an
event whose deliveries were all delivered goes with its run or once older than the
retention; one given up (`failed`) only once older than the retention; one with a
delivery still pending (undelivered, within its attempts), or not yet routed, never. A
crash at each write of the cleaning loses nothing that must stay."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from mnlang.outbox import RUN_ENDED
from mnlang.retention import collect_garbage
from mnlang.stores import open_store
from mnlang.stores.base import Batch, NewRun, OutboxMessage, RunUpdate, Store


def notify(store: Store, run_id: str, event_id: str, *, status: str = "completed") -> None:
    """End run `run_id` with a notification `event_id`."""
    store.create_run(NewRun(run_id, "refund", {}))
    store.commit(
        Batch(
            run_id,
            run=RunUpdate(status=status, result="ok"),  # type: ignore[arg-type]
            outbox=[OutboxMessage(event_id, RUN_ENDED, {"status": status})],
        )
    )


def deliver(store: Store, event_id: str, outcomes: dict[str, str]) -> None:
    """Route `event_id` to the sinks of `outcomes` and settle each attempt as it says
    (`pending`: tried once, to be tried again)."""
    store.route_outbox({event_id: sorted(outcomes)})
    for delivery in store.claim_deliveries("loop", 30, 100):
        if delivery.event.event_id != event_id:
            continue
        outcome = outcomes[delivery.sink]
        store.finish_attempt(
            event_id,
            delivery.sink,
            "loop",
            status_code=200 if outcome == "delivered" else 500,
            error=None if outcome == "delivered" else "HTTP 500",
            outcome=outcome,  # type: ignore[arg-type]
            retry_in=3600.0,
        )


def event_ids(store: Store) -> set[str]:
    return {d.event.event_id for d in store.list_deliveries(limit=1000)}


def test_a_delivered_event_goes_with_its_run_and_the_others_stay(store: Store) -> None:
    from mnlang.retention import TombstoneWriter

    notify(store, "gone-ok", "e-gone-ok")  # delivered, its run removed: goes
    deliver(store, "e-gone-ok", {"a": "delivered", "b": "delivered"})
    notify(store, "gone-failed", "e-gone-failed")  # given up: stays for the retention
    deliver(store, "e-gone-failed", {"a": "delivered", "b": "failed"})
    notify(store, "gone-pending", "e-gone-pending")  # to be tried again: stays
    deliver(store, "e-gone-pending", {"a": "pending"})
    notify(store, "gone-unrouted", "e-gone-unrouted")  # not routed yet: stays
    notify(store, "kept", "e-kept")  # delivered, its run kept: stays
    deliver(store, "e-kept", {"a": "delivered"})
    writer = TombstoneWriter(store)
    gone = ["gone-ok", "gone-failed", "gone-pending", "gone-unrouted"]
    trees = [[writer.tombstone(store.get_run(r))] for r in gone]  # type: ignore[arg-type]
    assert sorted(store.remove_runs(trees)) == sorted(gone)

    # Nothing is older than the retention here: only the run-gone rule applies.
    assert store.remove_settled_outbox(0.0) == (1, None)
    assert event_ids(store) == {"e-gone-failed", "e-gone-pending", "e-kept"}
    assert [e.event_id for e in store.unrouted_outbox()] == ["e-gone-unrouted"]

    # The given-up one can still be sent again; a removed run's event is still routed.
    assert store.redeliver("e-gone-failed", "b")
    deliver(store, "e-gone-failed", {"b": "delivered"})
    deliver(store, "e-gone-unrouted", {"a": "delivered"})
    assert store.remove_settled_outbox(0.0) == (2, None)
    assert event_ids(store) == {"e-gone-pending", "e-kept"}


def test_past_the_retention_every_settled_event_goes_and_a_pending_one_stays(
    store: Store,
) -> None:
    store.create_run(NewRun("live", "refund", {}))  # its run still waits
    store.commit(Batch("live", run=RunUpdate(status="waiting")))
    for event_id, outcome in (("e1", "delivered"), ("e2", "failed"), ("e3", "pending")):
        store.commit(Batch("live", outbox=[OutboxMessage(event_id, RUN_ENDED, {})]))
        deliver(store, event_id, {"a": outcome})
    store.commit(Batch("live", outbox=[OutboxMessage("e4", RUN_ENDED, {})]))
    store.route_outbox({"e4": []})  # no webhook wanted it

    young = collect_garbage(store, older_than=3600)
    assert (young.runs, young.outbox_events) == (0, 0)  # all younger than an hour
    time.sleep(0.05)
    old = collect_garbage(store, older_than=0.01)
    assert old.outbox_events == 3
    assert event_ids(store) == {"e3"}
    assert collect_garbage(store, older_than=0.01, dry_run=True).outbox_events is None


def test_pages_go_through_every_event(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    import mnlang.retention

    monkeypatch.setattr(mnlang.retention, "OUTBOX_BATCH", 2)
    store.create_run(NewRun("live", "refund", {}))
    for n in range(7):
        store.commit(Batch("live", outbox=[OutboxMessage(f"e{n}", RUN_ENDED, {})]))
        deliver(store, f"e{n}", {"a": "pending" if n in (0, 3, 4) else "delivered"})
    time.sleep(0.05)
    assert collect_garbage(store, older_than=0.01).outbox_events == 4
    assert event_ids(store) == {"e0", "e3", "e4"}


CLEAN = """
import sys, time
from mnlang.retention import collect_garbage
from mnlang.stores import open_store
with open_store(sys.argv[1]) as store:
    print(collect_garbage(store, older_than=0).outbox_events)
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_crash_at_each_write_of_a_gc_removes_only_what_may_go(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A gc killed at its N-th commit (each moment), then a whole gc: the pending event
    is there at every moment; the delivered and the given-up ones (past a retention of
    0 s) are gone at the end, with their runs."""
    # One moment each, to keep it short: on SQLite `written` (a crash loses the
    # transaction), on PostgreSQL `during` (COMMIT sent, its outcome unknown).
    for when in ["written"] if kind == "sqlite" else ["during"]:
        for n in range(1, 10):
            db = str(tmp_path / f"j-{when}-{n}.db")
            if kind == "postgres":
                db = request.getfixturevalue("pg_url") + f"_{when}_{n}"
            with open_store(db) as store:
                notify(store, "ok", "e-ok")
                deliver(store, "e-ok", {"a": "delivered"})
                notify(store, "failed", "e-failed")
                deliver(store, "e-failed", {"a": "failed"})
                store.create_run(NewRun("live", "refund", {}))
                store.commit(Batch("live", outbox=[OutboxMessage("e-pending", RUN_ENDED, {})]))
                deliver(store, "e-pending", {"a": "pending"})
            env = {"MNC_CRASH_AT_COMMIT": str(n), "MNC_CRASH_WHEN": when}
            crashed = subprocess.run(
                [sys.executable, "-c", CLEAN, db],
                env={**_plain_env(), **env},
                capture_output=True,
                text=True,
            )
            with open_store(db) as store:
                seen = event_ids(store)
                assert "e-pending" in seen, (when, n)
            if crashed.returncode == 0:
                assert seen == {"e-pending"}
                break
            assert crashed.returncode == 137, crashed.stderr
            again = subprocess.run(
                [sys.executable, "-c", CLEAN, db], env=_plain_env(), capture_output=True, text=True
            )
            assert again.returncode == 0, again.stderr
            with open_store(db) as store:
                assert event_ids(store) == {"e-pending"}, (when, n)
                assert store.get_run("ok") is None and store.get_run("failed") is None
        else:
            raise AssertionError("the gc never finished")


def _plain_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("MNC_")}
