"""`select`: the first of its arms to happen wins, decided once in the store.

Runtime tests on SQLite and PostgreSQL (`tests/pg.py`): each kind of arm winning, a
signal already in the mailbox winning before anything is opened, a losing event arm
leaving its signal unread for a later wait, and the loser's command refused with who
won (a checkpoint closed because another arm won; a signal to a select a checkpoint
won). The store's own rules (a decision closes its rivals; a signal closing them in its
insert; `close_select` all or none) are tested on both stores; crashes at every commit
are in `test_in_process_crash_of_a_select_at_every_commit`, and the race of `mnc
approve` and `mnc signal` from two processes in `test_approve_and_signal_race`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mnlang import api
from mnlang.runtime.decisions import DecisionRefused
from mnlang.runtime.signals import SignalError
from mnlang.stores import open_store
from mnlang.stores.base import Batch, NewRun, OpenCheckpoint, SelectDecided, Store
from tests.test_crash import (
    RUN_ID,
    Scenario,
    check_against,
    crash_in_process_at,
    drive_in_process,
    ledger_calls,
)

ROOT = Path(__file__).resolve().parent.parent

RACE = """\
event message -> str

workflow race(conv: str) -> str {
  select {
    wait message for conv as m {
      return "message {m}"
    }
    checkpoint approve_it {
      ask: "Refund {conv}?"
    } as d {
      return "decided {d.choice}"
    }
    after 1h {
      return "idle"
    }
  }
}
"""

TWO_EVENTS = """\
event first -> int
event second -> int
event go

workflow two(n: int) -> int {
  _started = wait go { timeout: never }
  total = 0
  select {
    wait first as a {
      total = a
    }
    wait second for "k" as b {
      total = b * 100
    }
    after never {}
  }
  later = wait second for "k" { timeout: never }
  return total + later
}
"""

TIMER = """\
event message -> str

workflow idle(grace: duration) -> str {
  select {
    wait message as m {
      return m
    }
    checkpoint close_it {
      ask: "Close?"
    } as d {
      return "closed {d.choice}"
    }
    after grace {
      return "idle"
    }
  }
}
"""


def _source(tmp_path: Path, text: str, name: str = "flow.mn") -> Path:
    path = tmp_path / name
    path.write_text(text, "utf-8")
    return path


def test_the_event_wins_and_the_checkpoint_is_closed(tmp_path: Path, journal: str) -> None:
    source = _source(tmp_path, RACE)
    started = api.start_run(source, {"conv": "c1"}, run_id="r", db=journal)
    assert started.status == "waiting"
    sent = api.signal("r", "message", "hello", key="c1", db=journal)
    assert sent.delivered.accepted
    assert [r.status for r in sent.runs] == ["completed"]
    assert sent.runs[0].result == "message hello"
    with pytest.raises(DecisionRefused, match="closed because another arm of its select won"):
        api.approve("r", "approve_it", by="ann", db=journal)


def test_the_checkpoint_wins_and_the_signal_is_refused(tmp_path: Path, journal: str) -> None:
    source = _source(tmp_path, RACE)
    api.start_run(source, {"conv": "c1"}, run_id="r", db=journal)
    decided = api.approve("r", "approve_it", by="ann", resume=False, db=journal)
    assert decided.decided.choice == "approve"
    with pytest.raises(SignalError, match="checkpoint `approve_it` was decided `approve`"):
        api.signal("r", "message", "late", key="c1", resume=False, db=journal)
    ended = api.resume_run("r", db=journal)
    assert (ended.status, ended.result) == ("completed", "decided approve")
    with open_store(journal) as store:
        assert store.pending_signals("r") == []  # the refused signal created nothing


def test_a_signal_that_closed_the_select_wins_over_a_later_decision(
    tmp_path: Path, journal: str
) -> None:
    source = _source(tmp_path, RACE)
    api.start_run(source, {"conv": "c1"}, run_id="r", db=journal)
    api.signal("r", "message", "first", key="c1", resume=False, db=journal)
    with pytest.raises(DecisionRefused, match="won: event `message` \\(key `c1`\\)"):
        api.approve("r", "approve_it", by="ann", resume=False, db=journal)
    ended = api.resume_run("r", db=journal)
    assert (ended.status, ended.result) == ("completed", "message first")
    kinds = [e.kind for e in api.run_journal("r", db=journal)]
    assert kinds.count("select") == 1 and kinds.count("signal") == 1


def test_the_timer_wins_and_closes_the_checkpoint(tmp_path: Path, journal: str) -> None:
    source = _source(tmp_path, TIMER)
    # A timer this short is waited for by the attached run itself.
    ended = api.start_run(source, {"grace": 50}, run_id="r", db=journal)
    assert (ended.status, ended.result) == ("completed", "idle")
    with pytest.raises(DecisionRefused, match="won: its `after` timer"):
        api.approve("r", "close_it", by="ann", resume=False, db=journal)


def test_a_checkpoint_decided_before_the_timer_is_seen_wins(tmp_path: Path, journal: str) -> None:
    source = _source(tmp_path, TIMER)
    api.start_run(source, {"grace": 3_600_000}, run_id="r", db=journal)
    api.reject("r", "close_it", by="ann", resume=False, db=journal)
    ended = api.resume_run("r", db=journal)
    assert (ended.status, ended.result) == ("completed", "closed reject")


def test_a_losing_event_leaves_its_signal_unread(tmp_path: Path, journal: str) -> None:
    source = _source(tmp_path, TWO_EVENTS)
    api.start_run(source, {"n": 1}, run_id="r", db=journal)
    api.signal("r", "first", 7, resume=False, db=journal)
    api.signal("r", "second", 3, key="k", resume=False, db=journal)
    # Both are in the mailbox before the select opens: the older one wins at once.
    ended = api.signal("r", "go", None, db=journal)
    assert [(r.status, r.result) for r in ended.runs] == [("completed", 7 + 3)]
    events = api.run_journal("r", db=journal)
    taken = [e.data for e in events if e.kind == "signal" and "select_arm" in e.data]
    assert [(s["select_arm"], s["event"], s["payload"]) for s in taken] == [(0, "first", 7)]
    # Nothing was opened: the select never waited.
    assert not [e for e in events if e.kind == "select"]


def test_a_cancelled_select_closes_its_checkpoints_and_timer(tmp_path: Path, journal: str) -> None:
    source = _source(tmp_path, RACE)
    api.start_run(source, {"conv": "c1"}, run_id="r", db=journal)
    assert api.cancel_run("r", db=journal).status == "cancelled"
    with open_store(journal) as store:
        checkpoint = store.get_checkpoint("r", "select:approve_it")
        assert checkpoint is not None and checkpoint.status == "closed"
        assert store.run_timers("r") == []
    with pytest.raises(DecisionRefused):
        api.approve("r", "approve_it", by="ann", resume=False, db=journal)


def test_show_says_what_the_select_waits_for(tmp_path: Path) -> None:
    db = str(tmp_path / "journal.db")
    source = _source(tmp_path, RACE)
    api.start_run(source, {"conv": "c1"}, run_id="r", db=db)
    shown = subprocess.run(
        [sys.executable, "-m", "mnlang.cli", "show", "r", "--db", db],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "main: select  select: waiting for the first of" in shown
    assert "event message#c1: mnc signal r message --key c1 [JSON]" in shown
    assert "checkpoint select:approve_it: mnc approve r select:approve_it" in shown
    waiting = [e.data for e in api.run_journal("r", db=db) if e.kind == "waiting"][-1]
    assert waiting["for"] == [
        {
            "branch": "main",
            "step": "select",
            "select": "select",
            "first of": [
                "event message#c1",
                "checkpoint select:approve_it",
                "timer select:select",
            ],
        }
    ]


# --- the store's rules, on both stores ----------------------------------------------------


@pytest.fixture
def store(journal: str) -> Iterator[Store]:
    with open_store(journal) as opened:
        opened.create_run(NewRun("r", "wf", {}))
        select = {"step": "s", "checkpoints": ["s:a", "s:b"], "events": ["ev"]}
        opened.commit(
            Batch(
                run_id="r",
                open_checkpoints=[
                    OpenCheckpoint(c, c[2:], {"options": ["approve"], "select": select})
                    for c in ("s:a", "s:b")
                ],
            )
        )
        yield opened


def test_a_decision_closes_its_rivals(store: Store) -> None:
    won = store.decide_checkpoint("r", "s:a", {"choice": "approve"}, by="ann")
    assert won.accepted
    rival = store.get_checkpoint("r", "s:b")
    assert rival is not None and rival.status == "closed"
    assert rival.decision == {"lost_to": {"arm": "checkpoint", "name": "a", "by": "ann"}}
    late = store.decide_checkpoint("r", "s:b", {"choice": "approve"}, by="bob")
    assert not late.accepted and late.checkpoint.status == "closed"
    with pytest.raises(SelectDecided) as refused:
        store.send_signal("r", "ev", 1, closes=["s:a", "s:b"], reason={"lost_to": {}})
    assert refused.value.checkpoint.checkpoint_id == "s:a"
    assert store.pending_signals("r") == []


def test_a_signal_closes_the_select_in_its_insert(store: Store) -> None:
    reason = {"lost_to": {"arm": "event", "event": "ev", "key": None, "signal": "sig"}}
    assert store.send_signal("r", "ev", 1, signal_id="sig", closes=["s:a", "s:b"], reason=reason)
    for checkpoint_id in ("s:a", "s:b"):
        found = store.get_checkpoint("r", checkpoint_id)
        assert found is not None and (found.status, found.decision) == ("closed", reason)
    assert not store.decide_checkpoint("r", "s:a", {"choice": "approve"}, by="ann").accepted
    blocker = store.close_select("r", ["s:a", "s:b"], {"lost_to": {"arm": "after"}})
    assert blocker is not None and blocker.decision == reason


def test_close_select_is_all_or_none(store: Store) -> None:
    assert store.close_select("r", ["s:a", "s:b"], {"lost_to": {"arm": "after"}}) is None
    statuses = {c: store.get_checkpoint("r", c).status for c in ("s:a", "s:b")}  # type: ignore[union-attr]
    assert statuses == {"s:a": "closed", "s:b": "closed"}


# --- the race of `mnc approve` and `mnc signal` from two processes -------------------------

ROUNDS = 100

_RACER = """
import json, sys
from click.testing import CliRunner
from mnlang.cli import main

runner = CliRunner()
command = sys.argv[1:]
print("ready", flush=True)
for line in sys.stdin:
    run_id = line.strip()
    args = [command[0], run_id, *command[1:]]
    result = runner.invoke(main, args, catch_exceptions=False)
    print(json.dumps({"run": run_id, "code": result.exit_code, "out": result.output}), flush=True)
"""


def _racer(db: str, *command: str) -> subprocess.Popen[str]:
    environment = {**os.environ, "MNC_DB": db, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-c", _RACER, *command],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return process


@pytest.mark.slow
def test_approve_and_signal_race(tmp_path: Path, journal: str) -> None:
    """Each round, two processes answer one waiting select at the same moment: one runs
    `mnc approve`, the other `mnc signal` (both `--detach`, so neither moves the run and
    the loser meets the select, not an ended run). Exactly one wins; the other's command
    fails saying it was refused and why; the journal agrees with the winner, and the run
    resumed goes on in the winner's arm."""
    program = api.load_program(_source(tmp_path, RACE))
    runs = [f"race-{n}" for n in range(ROUNDS)]
    for run_id in runs:
        assert api.start_run(program, {"conv": "c1"}, run_id=run_id, db=journal).status == "waiting"
    approver = _racer(journal, "approve", "approve_it", "--by", "ann", "--detach")
    signaller = _racer(journal, "signal", "message", '"hi"', "--key", "c1", "--detach")
    wins: dict[str, int] = {"approve": 0, "signal": 0}
    try:
        for run_id in runs:
            for process in (approver, signaller):
                assert process.stdin is not None
                process.stdin.write(run_id + "\n")
                process.stdin.flush()
            answers: dict[str, dict[str, Any]] = {}
            for name, process in (("approve", approver), ("signal", signaller)):
                assert process.stdout is not None
                answers[name] = json.loads(process.stdout.readline())
            won = [name for name, answer in answers.items() if answer["code"] == 0]
            assert len(won) == 1, answers
            winner = won[0]
            loser = answers["signal" if winner == "approve" else "approve"]
            assert loser["code"] != 0 and "refused" in loser["out"], answers
            wins[winner] += 1
            with open_store(journal) as store:
                checkpoint = store.get_checkpoint(run_id, "select:approve_it")
                unread = store.pending_signals(run_id)
            assert checkpoint is not None
            if winner == "approve":
                assert (checkpoint.status, unread) == ("decided", [])
                assert "closed because" not in loser["out"]
            else:
                assert checkpoint.status == "closed" and len(unread) == 1
                assert checkpoint.decision["lost_to"]["signal"] == unread[0].signal_id
    finally:
        for process in (approver, signaller):
            assert process.stdin is not None
            process.stdin.close()
            process.wait(timeout=30)
    assert sum(wins.values()) == ROUNDS
    print(f"wins over {ROUNDS} rounds: {wins}")
    for run_id in runs[:10]:
        ended = api.resume_run(run_id, db=journal)
        assert ended.result in ("decided approve", "message hi")


# --- crashes at every commit --------------------------------------------------------------

CRASH = ROOT / "tests" / "crash"
CRASH_SCENARIOS = [
    # The person decides and the event comes too: the decision, committed first, wins.
    Scenario(
        "review",
        CRASH / "select.mn",
        CRASH / "select_input.json",
        workflow="review",
        events={"closed": 5},
    ),
    Scenario(
        "closing",
        CRASH / "select.mn",
        CRASH / "select_input.json",
        workflow="closing",
        events={"closed": 5},
    ),
    Scenario(
        "idle",
        CRASH / "select.mn",
        CRASH / "select_input.json",
        workflow="idle",
        short_wait_s=5.0,
    ),
]


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("scenario", CRASH_SCENARIOS, ids=lambda s: s.name)
def test_in_process_crash_of_a_select_at_every_commit(
    scenario: Scenario, when: str, tmp_path: Path
) -> None:
    """Stopped at each commit (before or after it) and resumed, a run with a select ends
    as an uninterrupted one did: the same arm wins (a person's decision, a signal from
    the mailbox, the timer), and every effect result is committed once."""
    reference, store, ledger, commits = drive_in_process(scenario, tmp_path / "ref", None)
    ref_calls = ledger_calls(ledger)
    assert ref_calls and all(n == 1 for n in ref_calls.values())
    won = [e.kind for e in store.read_journal(RUN_ID) if "select_arm" in e.data]
    assert won == [{"review": "decided", "closing": "signal", "idle": "timed_out"}[scenario.name]]
    store.close()
    assert commits >= 3
    for at in range(1, commits + 1):
        report, store, ledger = crash_in_process_at(scenario, tmp_path / f"{when}{at}", at, when)
        assert len(report.crashes) == 1
        check_against(reference, report, store, ledger, scenario, ref_calls)
        store.close()
