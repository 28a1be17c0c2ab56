"""Checkpoints: decisions and their value, the decision/timeout race, repairs of unknown
outcomes, and `mnc approve` / `mnc reject`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mnlang.runtime.decisions import (
    DecisionError,
    DecisionRefused,
    decide,
    decide_timeout_if_due,
    find_checkpoint,
)
from mnlang.stores.sqlite import SQLiteStore
from tests.human.harness import ROOT, Journal, ir_file, journal, mnc, mnc_env

__all__ = ["journal"]


def test_approve_goes_on_with_the_decision_value(journal: Journal) -> None:
    assert journal.start("approval", {"tag": "a"}, "a").status == "waiting"
    [checkpoint] = journal.store.open_checkpoints("a")
    assert checkpoint.name == "review" and checkpoint.request["ask"] == "Go ahead with a?"
    assert checkpoint.request["options"] == ["approve", "reject", "later"]
    decided = decide(journal.store, "a", "review", approve=True, by="alice", comment="fine")
    assert (decided.choice, decided.by, decided.comment) == ("approve", "alice", "fine")
    assert journal.store.runnable_runs() == ["a"]
    outcome = journal.resume("a")
    assert outcome.status == "completed"
    assert outcome.result == "approved by alice: fine"
    assert journal.texts("a") == ["approve"]
    assert "decided" in journal.kinds("a")
    assert journal.store.run_timers("a") == []


def test_another_choice_and_when_it_was_made(journal: Journal) -> None:
    journal.start("approval", {"tag": "b"}, "b")
    decide(journal.store, "b", "review", approve=True, choice="later", by="bob")
    outcome = journal.resume("b")
    assert re.fullmatch(r"later by bob: - at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d.*", outcome.result)
    assert journal.texts("b") == ["later"]


def test_reject_is_the_reject_option(journal: Journal) -> None:
    journal.start("approval", {"tag": "c"}, "c")
    decided = decide(journal.store, "c", "review", approve=False, by="carol")
    assert decided.choice == "reject"
    assert journal.resume("c").result.startswith("reject by carol: - at ")


def test_the_timeout_decides_when_nobody_does(journal: Journal) -> None:
    journal.start("approval", {"tag": "t"}, "t")
    assert journal.resume("t").status == "waiting"  # not due yet: still waiting
    journal.fall_due("t")
    assert journal.store.runnable_runs() == ["t"]
    outcome = journal.resume("t")
    assert outcome.status == "completed"
    assert outcome.result.startswith("reject by timeout: - at ")
    checkpoint = journal.store.get_checkpoint("t", "d")
    assert checkpoint is not None and checkpoint.decided_by == "timeout"


def test_a_decision_after_the_timeout_fell_due_is_refused(journal: Journal) -> None:
    journal.start("approval", {"tag": "late"}, "late")
    journal.fall_due("late")
    with pytest.raises(DecisionRefused) as refused:
        decide(journal.store, "late", "review", approve=True, by="dave")
    message = refused.value.message
    assert "checkpoint `review` of run `late` was already decided: `reject` by its timeout" in (
        message
    )
    assert journal.resume("late").result.startswith("reject by timeout")
    assert journal.texts("late") == ["reject"]


def test_a_decision_before_the_timeout_wins(journal: Journal) -> None:
    journal.start("approval", {"tag": "early"}, "early")
    decide(journal.store, "early", "review", approve=True, by="erin")
    journal.fall_due("early")
    _, checkpoint = find_checkpoint(journal.store, "early", "d")
    assert decide_timeout_if_due(journal.store, "early", checkpoint).decided_by == "erin"
    with pytest.raises(DecisionRefused, match=r"already decided: `approve` by `erin` at "):
        decide(journal.store, "early", "review", approve=False, by="frank")
    assert journal.resume("early").result == "approved by erin: -"


def test_racing_decisions_and_timeout_one_wins(journal: Journal, tmp_path: Path) -> None:
    """People on several connections and the timeout decide at once: one decision is
    accepted, every other is refused, and the run acts on the accepted one."""
    journal.start("approval", {"tag": "race"}, "race")
    journal.fall_due("race")
    barrier = threading.Barrier(6)
    accepted: list[str] = []
    refused: list[str] = []

    def person(name: str) -> None:
        with SQLiteStore(journal.db) as store:
            barrier.wait()
            try:
                accepted.append(decide(store, "race", "review", approve=True, by=name).by)
            except DecisionRefused as e:
                refused.append(e.message)

    def timeout() -> None:
        with SQLiteStore(journal.db) as store:
            _, checkpoint = find_checkpoint(store, "race", "d")
            barrier.wait()
            decide_timeout_if_due(store, "race", checkpoint)

    threads = [threading.Thread(target=person, args=(f"p{i}",)) for i in range(5)]
    threads.append(threading.Thread(target=timeout))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    checkpoint = journal.store.get_checkpoint("race", "d")
    assert checkpoint is not None and checkpoint.status == "decided"
    winner = checkpoint.decided_by
    assert len(accepted) + len(refused) == 5
    assert accepted == ([winner] if winner != "timeout" else [])
    assert all("already decided" in m for m in refused)
    result = journal.resume("race").result
    assert result.startswith(
        "reject by timeout" if winner == "timeout" else f"approved by {winner}"
    )
    assert len(journal.texts("race")) == 1


def test_decisions_that_do_not_fit(journal: Journal) -> None:
    journal.start("approval", {"tag": "x"}, "x")
    store = journal.store
    with pytest.raises(DecisionError, match=r"`maybe` is not an option of checkpoint `review`"):
        decide(store, "x", "review", approve=True, choice="maybe")
    with pytest.raises(DecisionError, match=r"only a repair marked done takes a result"):
        decide(store, "x", "review", approve=True, result=1)
    with pytest.raises(DecisionError, match=r"`timeout` is the name of a checkpoint's timeout"):
        decide(store, "x", "review", approve=True, by="timeout")
    with pytest.raises(DecisionError) as unknown:
        decide(store, "x", "revue", approve=True)
    assert unknown.value.message == "run `x` has no checkpoint `revue`"
    assert unknown.value.help == "its open checkpoints: `review` (id `d`)"
    assert store.get_checkpoint("x", "d").status == "open"  # type: ignore[union-attr]


def test_a_checkpoint_without_reject(journal: Journal) -> None:
    assert journal.start("parent", {"tag": "p", "parts": ["ab"]}, "p").status == "waiting"
    [child] = [r.run_id for r in journal.store.list_runs(parent_run_id="p")]
    with pytest.raises(DecisionError) as refused:
        decide(journal.store, child, "part_review", approve=False)
    assert refused.value.message == (
        "checkpoint `part_review` has no `reject` option (its options: `approve`, `skip`)"
    )
    assert refused.value.help == "decide with `mnc approve RUN part_review --choice OPTION`"


# --- repairs ----------------------------------------------------------------------------


def unknown_outcome(journal: Journal, run_id: str) -> str:
    """Start `launcher` with a call that outlives its timeout: a repair checkpoint opens."""
    assert journal.start("launcher", {"tag": "slow"}, run_id).status == "waiting"
    [repair] = journal.store.open_checkpoints(run_id)
    assert repair.name == "repair"
    assert repair.request["effect"] == "launch" and repair.request["result_type"] == "str"
    assert repair.request["options"] == ["mark_done", "retry", "fail"]
    return repair.checkpoint_id


def test_repair_marked_done_with_its_typed_result(journal: Journal) -> None:
    repair = unknown_outcome(journal, "r1")
    with pytest.raises(DecisionError, match=r"needs a choice: `mark_done`"):
        decide(journal.store, "r1", repair, approve=True)
    with pytest.raises(DecisionError, match=r"marking `launch` done needs its result"):
        decide(journal.store, "r1", repair, approve=True, choice="mark_done")
    with pytest.raises(DecisionError, match=r"the result is not a str"):
        decide(journal.store, "r1", repair, approve=True, choice="mark_done", result=12)
    decide(journal.store, "r1", repair, approve=True, choice="mark_done", result="launch-by-hand")
    outcome = journal.resume("r1")
    assert outcome.status == "completed" and outcome.result == "launch-by-hand"
    assert len(journal.calls("launch")) == 1
    assert journal.texts("slow") == ["launched launch-by-hand"]


def test_repair_retried(journal: Journal) -> None:
    repair = unknown_outcome(journal, "r2")
    decide(journal.store, "r2", repair, approve=True, choice="retry")
    outcome = journal.resume("r2")
    assert outcome.status == "completed" and outcome.result == "launch-slow"
    assert len(journal.calls("launch")) == 2


def test_repair_failed(journal: Journal) -> None:
    repair = unknown_outcome(journal, "r3")
    decide(journal.store, "r3", repair, approve=False, by="ops")
    outcome = journal.resume("r3")
    assert outcome.status == "failed"
    assert outcome.error["kind"] == "tool_error"
    assert "the outcome of `launch` was unknown; ops failed it" in outcome.error["message"]


# --- the command line ---------------------------------------------------------------------


def test_mnc_approve_and_reject(tmp_path: Path) -> None:
    env = mnc_env(tmp_path)
    ir = str(ir_file(tmp_path))
    for run in ("c1", "c2"):
        started = mnc(["run", ir, "-w", "approval", "--id", run, "--input", '{"tag": "t"}'], env)
        assert started.returncode == 3, started.stderr
    approved = mnc(["approve", "c1", "review", "--by", "ann", "--comment", "looks right"], env)
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.splitlines()[:2] == [
        "decided: checkpoint review of run c1: approve by ann: looks right",
        "completed: run c1 (approval)",
    ]
    again = mnc(["reject", "c1", "d"], env)
    assert again.returncode == 2
    assert "error: checkpoint `review` of run `c1` was already decided: `approve` by `ann`" in (
        again.stderr
    )
    rejected = mnc(["reject", "c2", "review", "--detach", "--json"], env)
    assert rejected.returncode == 0, rejected.stderr
    data = json.loads(rejected.stdout)
    assert data["decision"]["choice"] == "reject" and data["runs"] == []
    resumed = mnc(["resume", "c2"], env)
    assert resumed.returncode == 0 and "reject by " in resumed.stdout
    bad = mnc(["approve", "c2", "nothing"], env)
    assert bad.returncode == 2 and "error: run `c2` has ended (completed)" in bad.stderr


def test_the_refund_demo_goes_through_its_approval(tmp_path: Path) -> None:
    """`examples/refund/demo.sh`, the README's first command: run, wait, approve, done."""
    wrapper = tmp_path / "mnc"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m mnlang.cli "$@"\n', "utf-8")
    wrapper.chmod(0o755)
    demo = ROOT / "examples" / "refund" / "demo.sh"
    done = subprocess.run(
        ["sh", str(demo)],
        env=mnc_env(tmp_path, MNC=str(wrapper)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    run = re.search(r"waiting: run (refund-o-1002-\d{8}-\d{6}) \(refund\)", done.stdout)
    assert run is not None, done.stdout
    run_id = run.group(1)
    assert f"    decide: mnc approve {run_id} manager_review [--choice OPTION], " in done.stdout
    assert f"completed: run {run_id} (refund)" in lines
    assert lines[-2] == "the payment provider was called 1 time(s) for the refund"
    # The run stays in the journal, for `mnc ui`.
    assert "completed" in mnc(["show", run_id], mnc_env(tmp_path)).stdout
