"""The store contract, written against the `Store` interface only.

Every store implementation must pass this file: add it to `STORES` and `journal_location`
in tests/pg.py (the `journal` and `store` fixtures).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import msgspec
import pytest

from mnlang.stores import open_store
from mnlang.stores.base import (
    AppendList,
    Batch,
    CheckpointNotFound,
    DeleteVar,
    DropBranch,
    LedgerPut,
    NewEvent,
    NewRun,
    OpenCheckpoint,
    QueueDepth,
    RunNotFound,
    RunRecord,
    RunUpdate,
    SendSignal,
    SetCursor,
    SetList,
    SetListItem,
    SetTimer,
    SetVar,
    StaleLease,
    StateOp,
    Store,
    TimedDecision,
    Tombstone,
)


def new_run(store: Store, run_id: str = "r1") -> str:
    store.create_run(NewRun(run_id=run_id, workflow="refund", args={}))
    return run_id


def ids(runs: list[RunRecord]) -> list[str]:
    return sorted(r.run_id for r in runs)


# --- clock and runs ------------------------------------------------------------------------


def test_clock_is_close_to_wall_time(store: Store) -> None:
    assert abs(store.now() - time.time()) < 5


def test_create_run_is_idempotent_by_id(store: Store) -> None:
    first, created = store.create_run(
        NewRun("order-17", "refund", {"order_id": "17"}, workflow_class="support", ir_hash="h1")
    )
    assert created
    assert (first.status, first.args, first.workflow_class) == (
        "running",
        {"order_id": "17"},
        "support",
    )
    again, created_again = store.create_run(NewRun("order-17", "refund", {"order_id": "other"}))
    assert not created_again
    assert again == first
    assert len(store.list_runs()) == 1


def test_create_runs_creates_a_group_in_one_transaction(store: Store) -> None:
    store.create_run(NewRun("old", "refund", {"n": 0}))
    gone = NewRun("gone", "refund", {"n": 9})
    store.create_run(gone)
    store.commit(Batch("gone", run=RunUpdate(status="completed", result=1)))
    record = store.get_run("gone")
    assert record is not None and record.finished_at is not None
    tombstone = Tombstone(
        "gone", "refund", "", "h", "completed", record.created_at, record.finished_at
    )
    assert store.remove_runs([[tombstone]]) == ["gone"]
    out = store.create_runs(
        [
            NewRun("a", "refund", {"n": 1}),
            NewRun("old", "refund", {"n": 2}),  # exists: returned as it is
            NewRun("gone", "refund", {"n": 9}),  # removed by gc: its tombstone
            NewRun("a", "refund", {"n": 3}),  # twice in the group: created once
            NewRun("b", "refund", {"n": 4}, limit=0),  # beyond its limit: queued
        ]
    )
    assert [(o.record.run_id if o.record else None, o.created) for o in out] == [
        ("a", True),
        ("old", False),
        (None, False),
        ("a", False),
        ("b", True),
    ]
    assert out[0].record == out[3].record and out[0].record.args == {"n": 1}
    assert out[1].record is not None and out[1].record.args == {"n": 0}
    assert out[2].removed is not None and out[2].removed.run_id == "gone"
    assert out[4].record is not None and out[4].record.status == "waiting"
    assert sorted(r.run_id for r in store.list_runs()) == ["a", "b", "old"]
    assert store.create_runs([]) == []


def test_get_run_of_unknown_id_is_none(store: Store) -> None:
    assert store.get_run("nope") is None


def test_list_runs_filters(store: Store) -> None:
    store.create_run(NewRun("a1", "refund", {}, workflow_class="support"))
    store.create_run(NewRun("a2", "refund", {}, workflow_class="support", parent_run_id="a1"))
    store.create_run(NewRun("b1", "digest", {}, workflow_class="news"))
    store.commit(Batch("a2", run=RunUpdate(status="completed", result=1)))
    assert ids(store.list_runs()) == ["a1", "a2", "b1"]
    assert ids(store.list_runs(workflow="refund")) == ["a1", "a2"]
    assert ids(store.list_runs(workflow_class="news")) == ["b1"]
    assert ids(store.list_runs(status="completed")) == ["a2"]
    assert ids(store.list_runs(status="running", workflow="refund")) == ["a1"]
    assert ids(store.list_runs(parent_run_id="a1")) == ["a2"]
    assert ids(store.list_runs(id_prefix="a")) == ["a1", "a2"]
    assert ids(store.list_runs(id_prefix="a%")) == []
    assert len(store.list_runs(limit=2)) == 2


def test_run_counts_per_workflow_class_and_status(store: Store) -> None:
    assert store.run_counts() == []
    store.create_run(NewRun("a1", "refund", {}, workflow_class="support"))
    store.create_run(NewRun("a2", "refund", {}, workflow_class="support"))
    store.create_run(NewRun("a3", "refund", {}, workflow_class="support"))
    store.create_run(NewRun("b1", "digest", {}))
    store.commit(Batch("a2", run=RunUpdate(status="completed", result=1)))
    counts = [(c.workflow, c.workflow_class, c.status, c.count) for c in store.run_counts()]
    assert counts == [
        ("digest", "", "running", 1),
        ("refund", "support", "completed", 1),
        ("refund", "support", "running", 2),
    ]


# --- commits, journal and state -------------------------------------------------------------


def test_commit_appends_numbered_events(store: Store) -> None:
    run_id = new_run(store)
    first = store.commit(
        Batch(
            run_id,
            events=[NewEvent("started", {"args": {}}), NewEvent("call", {"tool": "f"}, "s1")],
        )
    )
    second = store.commit(Batch(run_id, events=[NewEvent("result", {"v": "é ✓"}, "s1", "p1/0")]))
    assert (first.last_seq, second.last_seq) == (2, 3)
    journal = store.read_journal(run_id)
    assert [(e.seq, e.kind, e.state, e.branch, e.data) for e in journal] == [
        (1, "started", None, "", {"args": {}}),
        (2, "call", "s1", "", {"tool": "f"}),
        (3, "result", "s1", "p1/0", {"v": "é ✓"}),
    ]
    assert [e.seq for e in store.read_journal(run_id, after_seq=1, limit=1)] == [2]
    record = store.get_run(run_id)
    assert record is not None and record.last_seq == 3


def test_commit_for_unknown_run_is_refused(store: Store) -> None:
    with pytest.raises(RunNotFound, match="no run `ghost`"):
        store.commit(Batch("ghost", events=[NewEvent("x")]))


def test_failed_batch_leaves_nothing(store: Store) -> None:
    run_id = new_run(store)
    store.commit(Batch(run_id, state=[SetList("", "xs", [1])]))
    with pytest.raises(ValueError, match=r"`xs\[5\]`"):
        store.commit(
            Batch(
                run_id,
                events=[NewEvent("step")],
                state=[SetVar("", "y", 2), SetListItem("", "xs", 5, 0)],
                run=RunUpdate(status="failed"),
            )
        )
    state = store.load_state(run_id)
    assert state.variables == {"": {"xs": [1]}}
    assert state.run.status == "running"
    assert store.read_journal(run_id) == []


def test_non_json_value_rolls_the_batch_back(store: Store) -> None:
    run_id = new_run(store)
    with pytest.raises((TypeError, ValueError)):
        store.commit(Batch(run_id, events=[NewEvent("a")], state=[SetVar("", "x", object())]))
    assert store.read_journal(run_id) == []


def test_state_ops_and_load_state(store: Store) -> None:
    run_id = new_run(store)
    store.commit(
        Batch(
            run_id,
            state=[
                SetVar("", "order", {"id": "17", "total": "120.00"}),
                SetVar("", "tags", ["a", "b"]),
                SetList("", "summaries", ["s0"]),
                AppendList("", "summaries", ["s1", "s2"]),
                SetListItem("", "summaries", 1, "S1"),
                SetCursor("", {"state": "s3"}),
                SetCursor("p1/0", "p1/0/s1"),
                SetVar("p1/0", "item", 0),
                SetVar("", "gone", True),
                DeleteVar("", "gone"),
            ],
        )
    )
    state = store.load_state(run_id)
    assert state.cursors == {"": {"state": "s3"}, "p1/0": "p1/0/s1"}
    assert state.variables == {
        "": {
            "order": {"id": "17", "total": "120.00"},
            "tags": ["a", "b"],
            "summaries": ["s0", "S1", "s2"],
        },
        "p1/0": {"item": 0},
    }


def test_set_var_replaces_a_list_variable_and_back(store: Store) -> None:
    run_id = new_run(store)
    store.commit(Batch(run_id, state=[SetList("", "xs", [1, 2]), SetVar("", "xs", "now a string")]))
    assert store.load_state(run_id).variables == {"": {"xs": "now a string"}}
    store.commit(Batch(run_id, state=[SetList("", "xs", []), AppendList("", "xs", [None])]))
    assert store.load_state(run_id).variables == {"": {"xs": [None]}}
    store.commit(Batch(run_id, state=[SetList("", "xs", [7])]))
    assert store.load_state(run_id).variables == {"": {"xs": [7]}}


def test_set_vars_stored_new_and_former_lists_in_one_commit(store: Store) -> None:
    """A loop's commit sets variables that are stored already (SQLite writes those with
    one UPDATE); beside them, a new one and a former list take the full path in the same
    commit, and a list's items do not outlive it (a list set again starts empty)."""
    run_id = new_run(store)
    store.commit(Batch(run_id, state=[SetVar("", "i", 0), SetList("", "xs", [1, 2])]))
    store.commit(Batch(run_id, state=[SetVar("", "i", 1), SetVar("b", "new", {"k": 1})]))
    assert store.load_state(run_id).variables == {
        "": {"i": 1, "xs": [1, 2]},
        "b": {"new": {"k": 1}},
    }
    store.commit(Batch(run_id, state=[SetVar("", "i", 2), SetVar("", "xs", "flat")]))
    assert store.load_state(run_id).variables == {
        "": {"i": 2, "xs": "flat"},
        "b": {"new": {"k": 1}},
    }
    store.commit(Batch(run_id, state=[SetList("", "xs", []), SetVar("", "i", 3)]))
    assert store.load_state(run_id).variables == {"": {"i": 3, "xs": []}, "b": {"new": {"k": 1}}}


def test_append_to_a_plain_variable_is_refused(store: Store) -> None:
    run_id = new_run(store)
    store.commit(Batch(run_id, state=[SetVar("", "x", [1])]))
    with pytest.raises(ValueError, match="not a list variable"):
        store.commit(Batch(run_id, state=[AppendList("", "x", [2])]))


def test_drop_branch_drops_nested_branches_only(store: Store) -> None:
    run_id = new_run(store)
    ops: list[StateOp] = []
    for branch in ("", "p1", "p1/0", "p1/0/p2/3", "p10", "p1.x"):
        ops += [SetCursor(branch, branch), SetVar(branch, "v", branch), SetList(branch, "l", [1])]
    store.commit(Batch(run_id, state=ops))
    store.commit(Batch(run_id, state=[DropBranch("p1")]))
    state = store.load_state(run_id)
    assert sorted(state.cursors) == ["", "p1.x", "p10"]
    assert sorted(state.variables) == ["", "p1.x", "p10"]
    store.commit(Batch(run_id, state=[DropBranch("")]))
    state = store.load_state(run_id)
    assert (state.cursors, state.variables) == ({}, {})


def test_run_update(store: Store) -> None:
    run_id = new_run(store)
    store.commit(
        Batch(run_id, run=RunUpdate(status="waiting", waiting_for=["payment"], meta={"k": 1}))
    )
    waiting = store.get_run(run_id)
    assert waiting is not None
    assert (waiting.status, waiting.waiting_for, waiting.meta, waiting.finished_at) == (
        "waiting",
        ["payment"],
        {"k": 1},
        None,
    )
    store.commit(
        Batch(run_id, run=RunUpdate(status="completed", result={"refund_id": "x"}, waiting_for=[]))
    )
    done = store.get_run(run_id)
    assert done is not None
    assert (done.status, done.result, done.error, done.waiting_for) == (
        "completed",
        {"refund_id": "x"},
        None,
        [],
    )
    assert done.finished_at is not None and done.finished_at >= done.created_at
    assert done.meta == {"k": 1}


def test_batch_creates_child_runs_once(store: Store) -> None:
    parent = new_run(store, "parent")
    child = NewRun("parent/s1/0", "child_flow", {"x": 1}, parent_run_id=parent)
    store.commit(Batch(parent, events=[NewEvent("child")], create_runs=[child]))
    store.commit(Batch(parent, create_runs=[child]))
    children = store.list_runs(parent_run_id=parent)
    assert [(c.run_id, c.args) for c in children] == [("parent/s1/0", {"x": 1})]


# --- effect ledger --------------------------------------------------------------------------


def test_run_scoped_keys_are_unique_per_run(store: Store) -> None:
    r1, r2 = new_run(store, "r1"), new_run(store, "r2")
    store.commit(Batch(r1, ledger=[LedgerPut("notify:ann", "h1", "intent")]))
    store.commit(Batch(r2, ledger=[LedgerPut("notify:ann", "h2", "intent")]))
    row1 = store.ledger_get("notify:ann", run_id=r1)
    row2 = store.ledger_get("notify:ann", run_id=r2)
    assert row1 is not None and row2 is not None
    assert (row1.scope_run_id, row1.args_hash) == ("r1", "h1")
    assert (row2.scope_run_id, row2.args_hash) == ("r2", "h2")
    assert store.ledger_get("notify:ann", run_id=None) is None


def test_a_written_ledger_row_is_the_row_read_back(store: Store) -> None:
    """The row a commit hands back for a key it wrote is the stored row: its result as
    stored JSON reads it, its first write's `created_at` kept when a later put updates it."""
    run_id = new_run(store)
    intent = store.commit(Batch(run_id, ledger=[LedgerPut("k", "h", "intent", state="s")]))
    assert intent.ledger[0] == store.ledger_get("k", run_id=run_id)
    done = store.commit(
        Batch(run_id, ledger=[LedgerPut("k", "h", "done", False, {"ids": (1, 2)}, "s")])
    )
    row = done.ledger[0]
    assert row == store.ledger_get("k", run_id=run_id)
    assert (row.status, row.result, row.state) == ("done", {"ids": [1, 2]}, "s")
    assert row.created_at == intent.ledger[0].created_at <= row.updated_at


def test_global_keys_are_shared_by_all_runs(store: Store) -> None:
    r1, r2 = new_run(store, "r1"), new_run(store, "r2")
    put = LedgerPut("refund:17", "h", "intent", global_scope=True, state="refund_payment")
    result = store.commit(Batch(r1, ledger=[put]))
    row = result.ledger[0]
    assert (row.key, row.scope_run_id, row.status, row.run_id) == (
        "refund:17",
        None,
        "intent",
        "r1",
    )
    done = store.commit(
        Batch(r1, ledger=[LedgerPut("refund:17", "h", "done", True, {"refund_id": "R1"})])
    )
    assert (done.ledger[0].status, done.ledger[0].result) == ("done", {"refund_id": "R1"})
    # Another run putting the same global key finds it done, with the first result.
    late = store.commit(
        Batch(r2, ledger=[LedgerPut("refund:17", "h", "done", True, {"refund_id": "R2"})])
    )
    assert (late.ledger[0].status, late.ledger[0].result, late.ledger[0].run_id) == (
        "done",
        {"refund_id": "R1"},
        "r1",
    )
    assert store.ledger_get("refund:17", run_id=None) == late.ledger[0]
    assert store.ledger_get("refund:17", run_id=r1) is None


def test_ledger_keeps_a_row_with_other_arguments(store: Store) -> None:
    run_id = new_run(store)
    store.commit(Batch(run_id, ledger=[LedgerPut("k", "hash-a", "intent")]))
    result = store.commit(Batch(run_id, ledger=[LedgerPut("k", "hash-b", "done", result=1)]))
    assert (result.ledger[0].args_hash, result.ledger[0].status) == ("hash-a", "intent")


def test_ledger_intent_then_unknown_then_done(store: Store) -> None:
    run_id = new_run(store)
    for status in ("intent", "unknown", "intent", "done"):
        result = store.commit(Batch(run_id, ledger=[LedgerPut("k", "h", status, result=status)]))
        assert (result.ledger[0].status, result.ledger[0].result) == (status, status)
    again = store.commit(Batch(run_id, ledger=[LedgerPut("k", "h", "intent")]))
    assert again.ledger[0].status == "done"


# --- signals --------------------------------------------------------------------------------


def test_signals_are_kept_deduplicated_and_consumed(store: Store) -> None:
    run_id = new_run(store)
    assert store.send_signal(run_id, "payment", {"amount": "5.00"}, signal_id="pay-1")
    assert not store.send_signal(run_id, "payment", {"amount": "9.99"}, signal_id="pay-1")
    assert store.send_signal(run_id, "note", "hi")
    assert store.send_signal(run_id, "note", "hi")
    pending = store.pending_signals(run_id)
    assert [(s.name, s.payload) for s in pending] == [
        ("payment", {"amount": "5.00"}),
        ("note", "hi"),
        ("note", "hi"),
    ]
    assert [s.signal_id for s in store.pending_signals(run_id, "payment")] == ["pay-1"]
    store.commit(Batch(run_id, consume_signals=["pay-1"]))
    assert [s.name for s in store.pending_signals(run_id)] == ["note", "note"]
    # Consumed, the id still counts as sent.
    assert not store.send_signal(run_id, "payment", {}, signal_id="pay-1")


def test_signal_to_unknown_run_is_refused(store: Store) -> None:
    with pytest.raises(RunNotFound):
        store.send_signal("ghost", "payment", {})


def test_batch_sends_signals_to_other_runs(store: Store) -> None:
    parent, child = new_run(store, "parent"), new_run(store, "child")
    done = SendSignal(parent, "child_done", {"run_id": child}, signal_id=f"child:{child}")
    store.commit(Batch(child, run=RunUpdate(status="completed"), send_signals=[done]))
    store.commit(Batch(child, send_signals=[done]))
    assert [s.payload for s in store.pending_signals(parent)] == [{"run_id": "child"}]


def test_signals_keep_their_correlation_key(store: Store) -> None:
    run_id = new_run(store)
    assert store.send_signal(run_id, "restored", {"n": 2}, signal_id="s2", key="k2")
    assert store.send_signal(run_id, "restored", {"n": 0}, signal_id="s0")
    child = SendSignal(run_id, "restored", {"n": 1}, signal_id="s1", key="k1")
    store.commit(Batch(new_run(store, "other"), send_signals=[child]))
    pending = store.pending_signals(run_id, "restored")
    assert [(s.signal_id, s.key, s.address) for s in pending] == [
        ("s2", "k2", "restored#k2"),
        ("s0", None, "restored"),
        ("s1", "k1", "restored#k1"),
    ]
    assert store.taken_signal(run_id, "restored", "k2") is None
    store.commit(Batch(run_id, consume_signals=["s2"]))
    taken = store.taken_signal(run_id, "restored", "k2")
    assert taken is not None and taken.signal_id == "s2" and taken.consumed_at is not None
    assert store.taken_signal(run_id, "restored", "k1") is None


def test_the_store_keeps_one_unread_signal_per_key(store: Store) -> None:
    """What makes two racing senders of one key safe: the second insert is refused by the
    store itself, whatever the checks before it saw."""
    new_run(store, "q")
    assert store.send_signal("q", "restored", 1, key="k1", signal_id="a")
    assert not store.send_signal("q", "restored", 2, key="k1", signal_id="b")
    assert store.send_signal("q", "restored", 3, key="k2", signal_id="c")
    assert store.send_signal("q", "restored", 4, signal_id="d")
    assert store.send_signal("q", "restored", 5, signal_id="e")  # unkeyed: no limit
    store.commit(Batch("q", consume_signals=["a"]))
    assert store.send_signal("q", "restored", 6, key="k1", signal_id="f")
    assert [s.signal_id for s in store.pending_signals("q")] == ["c", "d", "e", "f"]


def test_a_run_is_runnable_only_for_a_signal_with_the_key_it_waits_for(store: Store) -> None:
    run_id = new_run(store)
    store.commit(Batch(run_id, run=RunUpdate(status="waiting", waiting_for=["restored#k1"])))
    store.send_signal(run_id, "restored", 2, key="k2")
    store.send_signal(run_id, "restored", 0)
    assert run_id not in store.runnable_runs()
    store.send_signal(run_id, "restored", 1, key="k1")
    assert run_id in store.runnable_runs()


def test_the_callback_secret_is_random_per_journal_and_kept(
    store: Store, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    secret = store.callback_secret()
    assert len(secret) >= 16
    assert store.callback_secret() == secret
    if request.node.callspec.params["journal"] == "postgres":
        # `pg_url` is one schema per test: the other journal is a schema of its own.
        cluster = request.getfixturevalue("pg_cluster")
        other = open_store(cluster.url(f"other_{tmp_path.name}"[:60]))
    else:
        other = open_store(tmp_path / "other.db")
    try:
        assert other.callback_secret() != secret
    finally:
        other.close()
    with open_store(store.location) as again:
        assert again.callback_secret() == secret


# --- checkpoints ----------------------------------------------------------------------------


def open_review(store: Store, run_id: str) -> None:
    request = {"ask": "Refund $120?", "options": ["approve", "reject"]}
    store.commit(Batch(run_id, open_checkpoints=[OpenCheckpoint("cp1", "manager_review", request)]))


def test_first_decision_wins(store: Store) -> None:
    run_id = new_run(store)
    open_review(store, run_id)
    [pending] = store.open_checkpoints()
    assert (pending.name, pending.status, pending.request["ask"]) == (
        "manager_review",
        "open",
        "Refund $120?",
    )
    first = store.decide_checkpoint(run_id, "cp1", {"choice": "approve"}, by="ann")
    assert first.accepted
    assert (first.checkpoint.status, first.checkpoint.decided_by) == ("decided", "ann")
    late = store.decide_checkpoint(run_id, "cp1", {"choice": "reject"}, by="timeout")
    assert not late.accepted
    assert (late.checkpoint.decision, late.checkpoint.decided_by) == ({"choice": "approve"}, "ann")
    assert store.open_checkpoints() == []
    store.commit(Batch(run_id, close_checkpoints=["cp1"]))
    closed = store.get_checkpoint(run_id, "cp1")
    assert closed is not None and closed.status == "closed"
    assert not store.decide_checkpoint(run_id, "cp1", {"choice": "reject"}, by="bob").accepted


def test_reopening_a_checkpoint_keeps_the_first(store: Store) -> None:
    run_id = new_run(store)
    open_review(store, run_id)
    store.decide_checkpoint(run_id, "cp1", {"choice": "approve"}, by="ann")
    open_review(store, run_id)
    checkpoint = store.get_checkpoint(run_id, "cp1")
    assert checkpoint is not None and checkpoint.status == "decided"


def test_deciding_an_unknown_checkpoint_is_an_error(store: Store) -> None:
    run_id = new_run(store)
    with pytest.raises(CheckpointNotFound, match="no checkpoint `cp9`"):
        store.decide_checkpoint(run_id, "cp9", {}, by="ann")


def test_open_checkpoints_of_one_run(store: Store) -> None:
    r1, r2 = new_run(store, "r1"), new_run(store, "r2")
    open_review(store, r1)
    open_review(store, r2)
    assert [c.run_id for c in store.open_checkpoints(r2)] == ["r2"]
    assert len(store.open_checkpoints()) == 2


# --- timers ---------------------------------------------------------------------------------


def test_due_timers_by_the_store_clock(store: Store) -> None:
    run_id = new_run(store)
    store.commit(
        Batch(
            run_id,
            set_timers=[
                SetTimer("retry", 0.0, {"attempt": 2}),
                SetTimer("deadline", 3600.0),
                SetTimer("checkpoint", 60.0),
            ],
        )
    )
    assert [(t.timer_id, t.payload) for t in store.due_timers()] == [("retry", {"attempt": 2})]
    later = [t.timer_id for t in store.due_timers(now=store.now() + 120)]
    assert later == ["retry", "checkpoint"]
    assert [t.timer_id for t in store.run_timers(run_id)] == ["retry", "checkpoint", "deadline"]
    next_due = store.next_due()
    assert next_due is not None and next_due <= store.now()
    store.commit(Batch(run_id, cancel_timers=["retry"], set_timers=[SetTimer("deadline", 0.0)]))
    assert [t.timer_id for t in store.due_timers()] == ["deadline"]
    store.commit(Batch(run_id, cancel_timers=["deadline", "checkpoint"]))
    assert store.next_due() is None


def test_timeouts_decided_in_one_transaction(store: Store) -> None:
    """`decide_timeouts` records a decision only where the checkpoint is still open, its
    timer due and its run live, and drops the timers of the checkpoints it decided."""
    for run_id in ("r1", "r2", "r3", "r4", "r5"):
        new_run(store, run_id)
        store.commit(
            Batch(
                run_id,
                open_checkpoints=[OpenCheckpoint("cp", "review", {"on_timeout": "reject"})],
                set_timers=[SetTimer("t:cp", 3600.0 if run_id == "r3" else 0.0)],
                run=RunUpdate(status="failed") if run_id == "r5" else None,
            )
        )
    store.decide_checkpoint("r2", "cp", {"choice": "approve"}, by="ann")  # a person first
    wanted = [
        TimedDecision(run_id, "cp", "t:cp", {"choice": "reject"})
        for run_id in ("r1", "r2", "r3", "r4", "r5", "r9")
    ]
    assert store.decide_timeouts(wanted, by="timeout") == 2
    decided = {r: store.get_checkpoint(r, "cp") for r in ("r1", "r2", "r3", "r4", "r5")}
    assert {r: (c.status, c.decided_by) for r, c in decided.items() if c is not None} == {
        "r1": ("decided", "timeout"),
        "r2": ("decided", "ann"),
        "r3": ("open", None),
        "r4": ("decided", "timeout"),
        "r5": ("open", None),
    }
    assert decided["r1"] is not None and decided["r1"].decision == {"choice": "reject"}
    assert [t.run_id for t in store.due_timers(prefix="t:")] == ["r2", "r5"]
    assert [t.run_id for t in store.due_timers(prefix="t:", now=store.now() + 7200)] == [
        "r2",
        "r5",
        "r3",
    ]
    assert store.due_timers(prefix="other:") == []
    assert store.decide_timeouts(wanted, by="timeout") == 0


# --- leases ---------------------------------------------------------------------------------


def test_lease_excludes_other_workers_until_it_expires(store: Store) -> None:
    run_id = new_run(store)
    lease = store.acquire_lease(run_id, "w1", ttl=30)
    assert lease is not None and lease.epoch == 1
    assert store.acquire_lease(run_id, "w2", ttl=30) is None
    store.commit(Batch(run_id, lease=lease, events=[NewEvent("step")]))
    renewed = store.renew_lease(lease, ttl=60)
    assert renewed.epoch == lease.epoch and renewed.expires_at > lease.expires_at
    store.release_lease(renewed)
    taken = store.acquire_lease(run_id, "w2", ttl=30)
    assert taken is not None and taken.epoch == 2


def test_commit_with_a_stale_epoch_is_refused(store: Store) -> None:
    run_id = new_run(store)
    old = store.acquire_lease(run_id, "w1", ttl=0.05)
    assert old is not None
    time.sleep(0.1)
    new = store.acquire_lease(run_id, "w2", ttl=30)
    assert new is not None and new.epoch == old.epoch + 1
    with pytest.raises(StaleLease, match=r"epoch 1; the run is now at epoch 2"):
        store.commit(Batch(run_id, lease=old, events=[NewEvent("late")]))
    with pytest.raises(StaleLease):
        store.renew_lease(old, ttl=30)
    store.release_lease(old)
    assert store.commit(Batch(run_id, lease=new, events=[NewEvent("ok")])).last_seq == 1
    assert [e.kind for e in store.read_journal(run_id)] == ["ok"]


def test_commit_with_an_expired_lease_is_refused(store: Store) -> None:
    run_id = new_run(store)
    lease = store.acquire_lease(run_id, "w1", ttl=0.05)
    assert lease is not None
    time.sleep(0.1)
    with pytest.raises(StaleLease, match="has expired"):
        store.commit(Batch(run_id, lease=lease, events=[NewEvent("late")]))
    assert store.read_journal(run_id) == []


def test_commit_without_a_lease_is_refused_while_one_is_held(store: Store) -> None:
    run_id = new_run(store)
    lease = store.acquire_lease(run_id, "w1", ttl=30)
    assert lease is not None
    with pytest.raises(StaleLease, match="leased by worker `w1`"):
        store.commit(Batch(run_id, events=[NewEvent("sneaky")]))
    store.release_lease(lease)
    store.commit(Batch(run_id, events=[NewEvent("fine")]))


def test_same_owner_reacquiring_fences_its_older_execution(store: Store) -> None:
    run_id = new_run(store)
    first = store.acquire_lease(run_id, "w1", ttl=30)
    second = store.acquire_lease(run_id, "w1", ttl=30)
    assert first is not None and second is not None and second.epoch == first.epoch + 1
    with pytest.raises(StaleLease):
        store.commit(Batch(run_id, lease=first))


def test_lease_of_unknown_run_is_an_error(store: Store) -> None:
    with pytest.raises(RunNotFound):
        store.acquire_lease("ghost", "w1", ttl=30)


# --- cancellation and scheduling ------------------------------------------------------------


def test_cancel_request_reaches_the_next_commit(store: Store) -> None:
    run_id = new_run(store)
    assert not store.commit(Batch(run_id)).cancel_requested
    assert store.request_cancel(run_id)
    assert store.commit(Batch(run_id)).cancel_requested
    store.commit(Batch(run_id, run=RunUpdate(status="cancelled")))
    assert not store.request_cancel(run_id)
    with pytest.raises(RunNotFound):
        store.request_cancel("ghost")


def test_runnable_runs(store: Store) -> None:
    running = new_run(store, "running")
    leased = new_run(store, "leased")
    store.acquire_lease(leased, "w1", ttl=30)
    waiting = {
        name: new_run(store, name) for name in ("idle", "timer", "signal", "other", "decided")
    }
    for run_id in waiting.values():
        store.commit(Batch(run_id, run=RunUpdate(status="waiting", waiting_for=["payment"])))
    done = new_run(store, "done")
    store.commit(Batch(done, run=RunUpdate(status="completed")))
    store.commit(Batch("timer", set_timers=[SetTimer("t", 0.0)]))
    store.commit(Batch("idle", set_timers=[SetTimer("t", 3600.0)]))
    store.send_signal("signal", "payment", {})
    store.send_signal("other", "unrelated", {})
    open_review(store, "decided")
    assert sorted(store.runnable_runs()) == [running, "signal", "timer"]
    store.decide_checkpoint("decided", "cp1", {"choice": "approve"}, by="ann")
    store.request_cancel("idle")
    assert sorted(store.runnable_runs()) == ["decided", "idle", running, "signal", "timer"]


def test_queue_depth_counts_runnable_waiting_and_leased_runs(store: Store) -> None:
    assert store.queue_depth() == QueueDepth(0, 0, 0)
    for n in range(3):
        new_run(store, f"running{n}")
    store.acquire_lease("running0", "w1", ttl=30)
    for name in ("idle", "timer", "held"):
        new_run(store, name)
        store.commit(Batch(name, run=RunUpdate(status="waiting", waiting_for=["payment"])))
    store.commit(Batch("timer", set_timers=[SetTimer("t", 0.0)]))
    store.commit(Batch("held", set_timers=[SetTimer("t", 0.0)]))
    store.acquire_lease("held", "w2", ttl=30)  # a waiting run a worker holds is not runnable
    new_run(store, "done")
    store.commit(Batch("done", run=RunUpdate(status="completed")))
    depth = store.queue_depth()
    assert depth.runnable == len(store.runnable_runs(limit=1000)) == 3  # running1, 2, timer
    assert (depth.waiting, depth.leased) == (3, 2)


def test_export_cursors_are_kept_per_exporter_and_moved_together(store: Store) -> None:
    assert store.export_cursor("traces") == {}
    store.move_export_cursor("traces", {"r1": 4, "r2": 9})
    store.move_export_cursor("other", {"r1": 1})
    store.move_export_cursor("traces", {"r1": 7})
    assert store.export_cursor("traces") == {"r1": 7, "r2": 9}
    assert store.export_cursor("other") == {"r1": 1}
    with open_store(store.location) as again:  # kept in the journal, not in the process
        assert again.export_cursor("traces") == {"r1": 7, "r2": 9}


# --- compiled programs ----------------------------------------------------------------------


def test_programs_are_kept_by_hash(store: Store) -> None:
    store.put_program("abc", '{"ir_version": 1}')
    store.put_program("abc", '{"ir_version": 2}')
    assert store.get_program("abc") == '{"ir_version": 1}'
    assert store.get_program("zzz") is None


# --- claiming and waking ------------------------------------------------------------------


def test_claim_runs_leases_each_runnable_run_once(store: Store) -> None:
    for run_id in ("a", "b", "c"):
        new_run(store, run_id)
    store.commit(Batch("c", run=RunUpdate(status="waiting", waiting_for=["payment"])))
    first = store.claim_runs("w1", ttl=30, limit=1)
    rest = store.claim_runs("w2", ttl=30, limit=10)
    assert [(lease.run_id, lease.owner, lease.epoch) for lease in first] == [("a", "w1", 1)]
    assert [(lease.run_id, lease.owner, lease.epoch) for lease in rest] == [("b", "w2", 1)]
    assert all(lease.expires_at > store.now() + 20 for lease in first + rest)
    assert store.claim_runs("w3", ttl=30, limit=10) == []
    assert store.runnable_runs() == []
    store.commit(Batch("a", lease=first[0], events=[NewEvent("step")]))
    with pytest.raises(StaleLease, match="leased by worker `w2`"):
        store.commit(Batch("b", events=[NewEvent("sneaky")]))


def test_an_expired_claim_can_be_claimed_again_with_the_next_epoch(store: Store) -> None:
    run_id = new_run(store)
    [old] = store.claim_runs("w1", ttl=0.05)
    time.sleep(0.1)
    [new] = store.claim_runs("w2", ttl=30)
    assert (new.run_id, new.epoch) == (run_id, old.epoch + 1)
    with pytest.raises(StaleLease, match="is stale"):
        store.commit(Batch(run_id, lease=old, events=[NewEvent("late")]))
    store.release_lease(new)
    assert store.runnable_runs() == [run_id]


def test_claim_needs_a_positive_ttl(store: Store) -> None:
    with pytest.raises(ValueError, match="positive time to live"):
        store.claim_runs("w1", ttl=0)


def test_wait_for_work_returns_at_once_when_a_run_is_runnable(store: Store) -> None:
    new_run(store)
    start = time.monotonic()
    assert store.wait_for_work(5)
    assert time.monotonic() - start < 1


def test_wait_for_work_times_out_without_work(store: Store) -> None:
    run_id = new_run(store)
    store.commit(Batch(run_id, run=RunUpdate(status="waiting", waiting_for=["payment"])))
    start = time.monotonic()
    assert not store.wait_for_work(0.3)
    assert 0.25 < time.monotonic() - start < 2


def test_wait_for_work_wakes_when_a_timer_falls_due(store: Store) -> None:
    run_id = new_run(store)
    store.commit(
        Batch(run_id, run=RunUpdate(status="waiting"), set_timers=[SetTimer("retry", 0.4)])
    )
    start = time.monotonic()
    assert store.wait_for_work(10)
    assert 0.3 < time.monotonic() - start < 1.5
    assert store.runnable_runs() == [run_id]


def test_wait_for_work_wakes_when_a_lease_expires(store: Store) -> None:
    run_id = new_run(store)
    assert store.acquire_lease(run_id, "dead-worker", ttl=0.4) is not None
    start = time.monotonic()
    assert store.wait_for_work(10)
    assert 0.3 < time.monotonic() - start < 1.5


def test_wait_for_work_wakes_on_a_decision(store: Store) -> None:
    run_id = new_run(store)
    store.commit(Batch(run_id, run=RunUpdate(status="waiting")))
    open_review(store, run_id)
    decider = threading.Timer(
        0.3, store.decide_checkpoint, (run_id, "cp1", {"choice": "approve"}), {"by": "ann"}
    )
    start = time.monotonic()
    decider.start()
    try:
        assert store.wait_for_work(10)
    finally:
        decider.join()
    assert time.monotonic() - start < 1.3


def test_appending_to_a_list_writes_the_same_rows_however_long_it_is(store: Store) -> None:
    run_id = new_run(store)
    store.commit(Batch(run_id, state=[SetList("", "xs", [])]))
    written = {
        store.commit(
            Batch(
                run_id,
                events=[NewEvent("yield")],
                state=[AppendList("", "xs", list(range(10))), SetCursor("", n)],
            )
        ).rows_written
        for n in range(20)
    }
    # event + list length + 10 items + cursor + run row
    assert written == {14}
    assert len(store.load_state(run_id).variables[""]["xs"]) == 200


def test_workers_are_listed_while_their_heartbeat_holds_with_the_runs_they_hold(
    store: Store,
) -> None:
    held, other = new_run(store, "r1"), new_run(store, "r2")
    store.worker_heartbeat("w1", host="a", pid=11, concurrency=4, ttl=30)
    # Long enough to be listed below on a loaded machine, short enough to wait out.
    store.worker_heartbeat("w2", host="b", pid=22, concurrency=2, ttl=1.0)
    assert store.acquire_lease(held, "w1", ttl=30) is not None
    assert store.acquire_lease(other, "w9", ttl=30) is not None
    first = store.list_workers()
    assert [(w.worker_id, w.host, w.pid, w.concurrency) for w in first] == [
        ("w1", "a", 11, 4),
        ("w2", "b", 22, 2),
    ]
    assert [w.claimed for w in first] == [(held,), ()]
    time.sleep(1.1)
    store.worker_heartbeat("w1", host="a", pid=11, concurrency=4, ttl=30)
    (beating,) = store.list_workers()
    assert beating.worker_id == "w1"
    assert beating.started_at == first[0].started_at < beating.heartbeat_at
    store.worker_stopped("w1")
    assert store.list_workers() == []


def test_a_look_without_arguments_leaves_them_out(store: Store) -> None:
    args = {"xs": list(range(1000)), "name": "n"}
    store.create_run(NewRun(run_id="big", workflow="refund", args=args))
    full = store.get_run("big")
    light = store.get_run("big", args=False)
    assert full is not None and full.args == args
    assert light is not None and light.args is None
    assert light == msgspec.structs.replace(full, args=None)
    assert store.load_state("big").run == light
    assert store.get_run("nope", args=False) is None
    assert [r.args for r in store.list_runs()] == [args]
