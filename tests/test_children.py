"""Child runs: created in the parent's commit with a derived id, waited for through the
parent's mailbox, their failure `child_failed`, and cancellation, deadline and budget
flowing from parent to child. `tests/human/human.mn` imports its child workflow
(`count_part`) from `helper.mn`."""

from __future__ import annotations

import time

import pytest

from mnlang import api
from mnlang.runtime.decisions import DecisionError, decide
from mnlang.runtime.worker import Worker
from tests.human.harness import Journal, journal

__all__ = ["journal"]


def children(journal: Journal, parent: str) -> list[str]:
    return sorted(r.run_id for r in journal.store.list_runs(parent_run_id=parent))


def test_a_child_is_created_in_the_parents_commit(journal: Journal) -> None:
    assert journal.start("parent", {"tag": "p", "parts": ["ab", "cde"]}, "p").status == "waiting"
    [child] = children(journal, "p")
    record = journal.store.get_run(child)
    assert record is not None and record.parent_run_id == "p"
    assert record.workflow == "helper.count_part" and record.status == "waiting"
    assert record.args == {"part": {"tag": "p", "name": "ab"}}
    [event] = [e for e in journal.store.read_journal("p") if e.kind == "child"]
    assert event.data["run"] == child
    assert record.created_at == event.at  # one transaction, one clock reading
    assert journal.store.get_run("p").waiting_for == [f"child:{child}"]  # type: ignore[union-attr]


def test_child_ids_differ_per_iteration_and_repeat_on_resume(journal: Journal) -> None:
    journal.start("parent", {"tag": "i", "parts": ["ab", "cd"]}, "i")
    [first] = children(journal, "i")
    assert first.startswith("i.")
    assert journal.resume("i").status == "waiting"
    assert children(journal, "i") == [first]  # resuming did not create another
    decide(journal.store, first, "part_review", approve=True, by="ann")
    assert journal.resume(first).status == "completed"
    assert journal.resume("i").status == "waiting"
    assert len(children(journal, "i")) == 2


def test_deciding_a_child_goes_on_with_its_parent(journal: Journal) -> None:
    journal.start("parent", {"tag": "a", "parts": ["ab", "cde"]}, "a")
    [first] = children(journal, "a")
    done = api.approve(first, "part_review", by="ann", db=journal.db)
    assert [r.status for r in done.runs] == ["completed", "waiting"]  # child, then parent
    second = next(c for c in children(journal, "a") if c != first)
    done = api.approve(second, "part_review", by="ann", db=journal.db)
    assert [(r.run_id, r.status) for r in done.runs] == [(second, "completed"), ("a", "completed")]
    assert done.runs[1].result == 5
    assert journal.texts("a") == ["counted 5"]
    assert [c["args"]["name"] for c in journal.calls("tally")] == ["ab", "cde"]
    assert journal.store.pending_signals("a") == []  # the children's signals were read


def test_a_worker_moves_children_and_parents(journal: Journal) -> None:
    journal.start("parent", {"tag": "w", "parts": ["ab", "cde", "f"]}, "w")
    worker = Worker(journal.store, concurrency=3, idle_wait=0.05)
    for _ in range(3):
        [open_child] = [c for c in children(journal, "w") if journal.store.open_checkpoints(c)]
        decide(journal.store, open_child, "part_review", approve=True, by="bob")
        worker.run(until_idle=True)
    parent = journal.store.get_run("w")
    assert parent is not None and parent.status == "completed" and parent.result == 6
    assert worker.stats.lost == 0


def test_a_failed_child_is_child_failed(journal: Journal) -> None:
    outcome = journal.start("careful", {"tag": "f"}, "f")
    assert outcome.status == "completed" and outcome.result == "caught child_failed"
    [child] = children(journal, "f")
    record = journal.store.get_run(child)
    assert record is not None and record.status == "failed"
    assert record.error["message"] == "a part needs a name"


def test_cancelling_a_parent_cancels_its_child(journal: Journal) -> None:
    journal.start("parent", {"tag": "c", "parts": ["ab"]}, "c")
    [child] = children(journal, "c")
    assert api.cancel_run("c", by="ann", db=journal.db).status == "cancelled"
    record = journal.store.get_run(child)
    assert record is not None and record.cancel_requested and record.status == "cancelled"
    # Who asked: ann the parent, the parent its child.
    parent = journal.store.get_run("c")
    assert parent is not None and parent.cancel_requested_by == "ann"
    assert record.cancel_requested_by == "run:c"
    assert journal.store.open_checkpoints(child) == []
    assert journal.store.runnable_runs() == []


def test_deadline_and_budget_flow_down(journal: Journal) -> None:
    journal.start("parent", {"tag": "b", "parts": ["ab", "cd"]}, "b")
    parent = journal.store.get_run("b")
    [first] = children(journal, "b")
    meta = journal.store.get_run(first).meta  # type: ignore[union-attr]
    assert parent is not None
    assert meta["parent_deadline_at"] == parent.created_at + 3600
    assert meta["parent_budget"] == "20.00"
    api.approve(first, "part_review", by="ann", db=journal.db)
    [second] = [c for c in children(journal, "b") if c != first]
    assert journal.store.get_run(second).meta["parent_budget"] == "19.90"  # type: ignore[union-attr]
    api.approve(second, "part_review", by="ann", db=journal.db)
    done = journal.store.get_run("b")
    assert done is not None and done.status == "completed" and done.meta["cost"] == "0.20"


def test_a_child_stops_at_its_parents_deadline(journal: Journal) -> None:
    journal.start("hurried", {"tag": "h"}, "h")
    [child] = children(journal, "h")
    time.sleep(1.1)
    decide(journal.store, child, "part_review", approve=True, by="ann")
    ended = journal.resume(child)
    assert ended.status == "failed" and ended.error["kind"] == "deadline_exceeded"
    assert "its parent's deadline" in ended.error["message"]
    parent = journal.resume("h")
    assert parent.status == "failed" and parent.error["kind"] == "deadline_exceeded"
    assert journal.calls("tally") == []


def test_a_worker_ends_waiting_runs_at_their_deadline(journal: Journal) -> None:
    """Nothing else would wake them: the deadline is a timer of its own."""
    journal.start("hurried", {"tag": "z"}, "z")
    [child] = children(journal, "z")
    assert {t.timer_id for t in journal.store.run_timers("z")} == {"deadline"}
    assert {t.timer_id for t in journal.store.run_timers(child)} == {"deadline"}
    time.sleep(1.1)
    Worker(journal.store, concurrency=2, idle_wait=0.05).run(until_idle=True)
    parent = journal.store.get_run("z")
    assert parent is not None and parent.status == "failed"
    assert parent.error["kind"] == "deadline_exceeded"
    # The child passed its deadline too, unless the parent's cancellation reached it first.
    ended = journal.store.get_run(child)
    assert ended is not None and ended.error["kind"] in ("deadline_exceeded", "cancelled")
    assert journal.store.run_timers("z") == journal.store.run_timers(child) == []


def test_deciding_on_the_parent_points_to_the_child(journal: Journal) -> None:
    journal.start("parent", {"tag": "q", "parts": ["ab"]}, "q")
    [child] = children(journal, "q")
    with pytest.raises(DecisionError) as wrong:
        decide(journal.store, "q", "part_review", approve=True)
    assert wrong.value.help == (
        f"it waits for a child run; decide there: `mnc approve {child} part_review`"
    )
