"""The fault plan of `mnc run --inject` is journaled with the run and honoured by the
process that goes on with it (`mnc signal`, `mnc resume`), reaches child runs, and a
fault injected before a model request does not take the request's scripted reply. All
through the CLI, on `tests/faultplan/settle.mn`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from mnlang.runtime.faults import FAULT_EVENT
from mnlang.stores.sqlite import SQLiteStore

SETTLE = Path(__file__).parent / "faultplan" / "settle.mn"
RUN_ID = "settle-1"


def env_for(tmp: Path) -> dict[str, str]:
    replies = tmp / "replies.json"
    replies.write_text(json.dumps({"classify": [{"size": "small"}]}), "utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNC_")}
    return {
        **env,
        "MNC_DB": str(tmp / "journal.db"),
        "MNC_MODELS": f"scripted:{replies}",
        "PLAN_LOG": str(tmp / "calls.jsonl"),
    }


def mnc(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mnlang.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def start(tmp: Path, *inject: str) -> subprocess.CompletedProcess[str]:
    args = ["run", str(SETTLE), "--workflow", "settle", "--id", RUN_ID]
    args += ["--input", '{"order_id": "o-1"}']
    for fault in inject:
        args += ["--inject", fault]
    return mnc(args, env_for(tmp))


def journal(tmp: Path, run_id: str = RUN_ID) -> list[Any]:
    with SQLiteStore(tmp / "journal.db") as store:
        return store.read_journal(run_id)


def faults_of(tmp: Path, run_id: str = RUN_ID) -> list[dict[str, Any]]:
    return [e.data for e in journal(tmp, run_id) if e.kind == FAULT_EVENT]


def calls(tmp: Path) -> list[dict[str, Any]]:
    path = tmp / "calls.jsonl"
    lines = path.read_text("utf-8").splitlines() if path.exists() else []
    return [json.loads(line) for line in lines]


def test_a_network_failure_at_an_agent_does_not_take_its_scripted_reply(tmp_path: Path) -> None:
    started = start(tmp_path, "network_failure@classify")
    assert started.returncode == 3, started.stdout + started.stderr  # waits for go_ahead
    assert [f["fault"] for f in faults_of(tmp_path)] == ["network_failure"]
    replies = [e.data for e in journal(tmp_path) if e.kind == "model_reply"]
    assert [r.get("error", {}).get("kind") for r in replies] == ["transient", None]
    assert [r["call"] for r in replies] == [0, 0]  # the retry is request 0 again: its reply
    done = mnc(["signal", RUN_ID, "go_ahead", "--json"], env_for(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["runs"][0]["result"] == "pay-o-1 refund-o-1 small"


def test_a_fault_after_a_wait_fires_in_the_process_that_signals(tmp_path: Path) -> None:
    started = start(tmp_path, "partial_effect@pay")
    assert started.returncode == 3, started.stdout + started.stderr
    assert faults_of(tmp_path) == []
    env = env_for(tmp_path)
    signalled = mnc(["signal", RUN_ID, "go_ahead"], env)
    assert signalled.returncode == 137, signalled.stdout + signalled.stderr  # the fault killed it
    assert [f["fault"] for f in faults_of(tmp_path)] == ["partial_effect"]
    resumed = mnc(["resume", RUN_ID, "--json"], env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert [f["fault"] for f in faults_of(tmp_path)] == ["partial_effect"]  # once
    pays = [c for c in calls(tmp_path) if c["action"] == "pay"]
    assert len(pays) == 2 and pays[0]["key"] == pays[1]["key"]  # performed, then resent


def test_a_fault_aimed_inside_a_child_run_is_handed_to_it(tmp_path: Path) -> None:
    started = start(tmp_path, "partial_effect@refund")  # `refund` is `settle_refund`'s
    assert started.returncode == 3, started.stdout + started.stderr
    env = env_for(tmp_path)
    signalled = mnc(["signal", RUN_ID, "go_ahead"], env)
    assert signalled.returncode == 137, signalled.stdout + signalled.stderr
    with SQLiteStore(tmp_path / "journal.db") as store:
        (child,) = store.list_runs(parent_run_id=RUN_ID)
        parent_events = store.read_journal(RUN_ID)
    handed = [e for e in parent_events if e.kind == "fault_handed"]
    created = [e for e in parent_events if e.kind == "child"]
    assert [h.data["run"] for h in handed] == [child.run_id]
    # One commit: its events and the child's row share the commit's time.
    assert handed[0].at == created[0].at == child.created_at
    assert faults_of(tmp_path) == []  # the parent injects nothing itself
    assert [f["fault"] for f in faults_of(tmp_path, child.run_id)] == ["partial_effect"]
    resumed = mnc(["resume", RUN_ID, "--json"], env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert json.loads(resumed.stdout)["result"] == "pay-o-1 refund-o-1 small"
    assert [f["fault"] for f in faults_of(tmp_path, child.run_id)] == ["partial_effect"]
    refunds = [c for c in calls(tmp_path) if c["action"] == "refund"]
    assert len(refunds) == 2 and refunds[0]["key"] == refunds[1]["key"]


def test_a_target_nowhere_in_the_run_is_refused_naming_the_children(tmp_path: Path) -> None:
    refused = start(tmp_path, "tool_timeout@nowhere")
    assert refused.returncode == 2
    assert "or the workflows it starts" in refused.stderr and "refund" in refused.stderr
    assert not (tmp_path / "journal.db").exists() or not journal_runs(tmp_path)


def journal_runs(tmp: Path) -> list[Any]:
    with SQLiteStore(tmp / "journal.db") as store:
        return store.list_runs()


LATE = """
event go_ahead

workflow late(order_id: str) -> str {
  _go = wait go_ahead { timeout: 1h }
  d = checkpoint review {
    ask: "Pay {order_id}?"
    timeout: 1h
    on_timeout: reject
  }
  return "{d.choice} by {d.by}"
}
"""


def test_an_approval_delay_after_a_wait_lets_the_timeout_decide(tmp_path: Path) -> None:
    (tmp_path / "late.mn").write_text(LATE, "utf-8")
    env = env_for(tmp_path)
    args = ["run", str(tmp_path / "late.mn"), "--id", "late-1", "--input", '{"order_id": "o"}']
    started = mnc([*args, "--inject", "approval_delay@review"], env)
    assert started.returncode == 3, started.stdout + started.stderr
    signalled = mnc(["signal", "late-1", "go_ahead", "--json"], env)
    assert signalled.returncode == 0, signalled.stdout + signalled.stderr
    assert json.loads(signalled.stdout)["runs"][0]["result"] == "reject by timeout"
    assert [f["fault"] for f in faults_of(tmp_path, "late-1")] == ["approval_delay"]
