"""examples/support_agent (LangGraph's Swiss Airlines support bot) with its real tools: the
demo's conversation through `mnc`, and the approved ticket change killed at every commit
of the process that approves it, against the example's SQLite airline, which must move
the ticket once and record one request, whatever the crash."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from mnlang.api import get_published
from mnlang.stores.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "support_agent"
SOURCE = EXAMPLE / "support_agent.mn"
RUN_ID = "chat"
TICKET = "7240005432906569"


def env_for(folder: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNC_")}
    return {
        **env,
        "PYTHONPATH": str(ROOT),
        "MNC_DB": str(folder / "journal.db"),
        "MNC_AIRLINE_DB": str(folder / "airline.db"),
        "MNC_EXAMPLE_LEDGER": str(folder / "ledger.jsonl"),
        "MNC_MODELS": f"scripted:{EXAMPLE / 'replies.json'}",
        "MNC_COMMIT_MS": "0",
        **extra,
    }


def mnc(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mnlang.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def airline(folder: Path, query: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(folder / "airline.db") as db:
        return db.execute(query).fetchall()


def test_the_demo_changes_the_flight_once_and_books_no_hotel(tmp_path: Path) -> None:
    wrapper = tmp_path / "mnc"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m mnlang.cli "$@"\n', "utf-8")
    wrapper.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNC_")}
    done = subprocess.run(
        ["sh", str(EXAMPLE / "demo.sh")],
        env={**env, "PYTHONPATH": str(ROOT), "MNC": str(wrapper), "MNC_DB": str(tmp_path / "j.db")},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # The person approves the call with the passenger the workflow bound, not the model.
    asked = re.search(r"wants to call `update_ticket_to_new_flight\((.*)\)`", done.stdout)
    assert asked is not None, done.stdout
    assert (
        asked.group(1) == f'passenger: "3442 587242", ticket_no: "{TICKET}", new_flight_id: 19252'
    )
    assert "Understood, I did not book the Hilton." in done.stdout  # told of the rejection
    assert "the airline was sent 1 change(s)" in done.stdout
    run = re.search(r"completed: run (support-\d{8}-\d{6}) returned", done.stdout)
    assert run is not None, done.stdout
    shown = mnc({**env, "MNC_DB": str(tmp_path / "j.db")}, "get", run.group(1), "--json")
    assert json.loads(shown.stdout)["next_key"] == ""


def _to_the_approval(folder: Path) -> None:
    """The conversation's first message, then the change that waits for its approval."""
    env = env_for(folder)
    started = mnc(
        env, "run", str(SOURCE), "--id", RUN_ID, "--input-file", str(EXAMPLE / "input.json")
    )
    assert started.returncode == 3, started.stderr
    asked = mnc(
        env, "signal", RUN_ID, "user_message", "--key", "1", '"Move my flight to next week"'
    )
    assert asked.returncode == 3, asked.stderr
    waits = mnc(env, "show", RUN_ID).stdout
    assert "checkpoint update_ticket_to_new_flight" in waits, waits


@pytest.mark.slow
def test_a_crash_at_every_commit_of_the_approval_moves_the_ticket_once(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    ready.mkdir()
    _to_the_approval(ready)
    crashes, sent_twice = 0, 0
    for at in range(1, 40):
        folder = tmp_path / f"crash-{at}"
        shutil.copytree(ready, folder)
        crash = env_for(folder, MNC_CRASH_AT_COMMIT=str(at), MNC_CRASH_WHEN="before")
        approved = mnc(crash, "approve", RUN_ID, "update_ticket_to_new_flight", "--by", "p")
        if approved.returncode != 137:
            assert approved.returncode == 3, approved.stdout + approved.stderr
            break
        crashes += 1
        with SQLiteStore(folder / "journal.db") as store:
            still_open = store.open_checkpoints(RUN_ID)
        if still_open:  # the decision was lost with the crash: the person approves again
            again = mnc(env_for(folder), "approve", RUN_ID, "update_ticket_to_new_flight")
        else:
            again = mnc(env_for(folder), "resume", RUN_ID)
        assert again.returncode == 3, (at, again.stdout + again.stderr)
        answer = get_published(RUN_ID, "last_answer", db=folder / "journal.db")
        assert str(answer).startswith("Done: your ticket 7240005432906569 is now on"), (at, answer)
        assert airline(folder, "SELECT flight_id FROM ticket_flights") == [(19252,)], at
        changes = airline(folder, "SELECT effect FROM requests")
        assert changes == [("update_ticket_to_new_flight",)], (at, changes)
        sent = (folder / "ledger.jsonl").read_text("utf-8").splitlines()
        assert len(sent) in (1, 2), (at, sent)
        sent_twice += len(sent) == 2  # called again after the crash: the airline's key held
    assert crashes >= 4 and sent_twice >= 1, (crashes, sent_twice)
