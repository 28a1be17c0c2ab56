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
