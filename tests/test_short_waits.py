"""Issue 16, item 11: short waits without a worker (docs/runtime.md, "Short waits").

A process executing a run waits itself for a timer due within `MNC_SHORT_WAIT_S` (5 s by
default): `mnc run` of a workflow with `wait 1s` or a retry backoff just over a second
ends in one command. The run stays `running` meanwhile (its lease held, its `limit` slot
taken), so a `kill -9` while it sleeps leaves it for `mnc resume`, and a cancel ends it at
once. A longer wait is left to a worker as before (exit 3), and `mnc worker --until-idle`
does not stop while a timer is due within the window. Everything runs as real `mnc`
processes on a real SQLite journal; the effects' calls are counted in the tools' ledger
file, as tests/test_crash.py does.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

from mnlang.stores.base import RunRecord
from mnlang.stores.sqlite import SQLiteStore
from tests.human.harness import mnc, mnc_env
from tests.test_crash import CRASH, ledger_calls

FLOW = CRASH / "short_wait.mn"


def start(run_id: str, pause_ms: int) -> list[str]:
    given = json.dumps({"order": run_id, "pause": pause_ms})
    return ["run", str(FLOW), "--id", run_id, "--input", given]


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mnlang.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kinds(folder: Path, run_id: str) -> list[str]:
    with SQLiteStore(folder / "journal.db") as store:
        return [event.kind for event in store.read_journal(run_id)]


def record_of(folder: Path, run_id: str) -> RunRecord:
    with SQLiteStore(folder / "journal.db") as store:
        record = store.get_run(run_id)
    assert record is not None
    return record


def sleeping(folder: Path, run_id: str, proc: subprocess.Popen[str], count: int = 1) -> None:
    """Wait until the run's journal says it sleeps (the `count`-th time) in `proc`."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if (folder / "journal.db").exists() and kinds(folder, run_id).count("sleeping") >= count:
            return
        time.sleep(0.05)
    raise AssertionError("the run never slept")


def test_run_carries_a_one_second_wait_and_a_retry_backoff_itself(tmp_path: Path) -> None:
    env = mnc_env(tmp_path)
    ran = mnc(start("r1", 1000), env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert record_of(tmp_path, "r1").result == 2
    journal = kinds(tmp_path, "r1")
    # The `wait 1s`, then the retry's 1100 ms backoff (a durable timer), in this process.
    assert journal.count("sleeping") == 2 and journal.count("woke") == 2
    assert "retry" in journal and "waiting" not in journal
    assert ledger_calls(tmp_path / "ledger.jsonl") == Counter({"tick:r1:0": 1, "tick:r1:1": 1})


def test_a_longer_wait_is_left_to_a_worker(tmp_path: Path) -> None:
    env = mnc_env(tmp_path)
    ran = mnc(start("r10", 10_000), env)
    assert ran.returncode == 3, ran.stdout + ran.stderr
    assert record_of(tmp_path, "r10").status == "waiting"
    assert "sleeping" not in kinds(tmp_path, "r10")


def test_the_window_is_configurable(tmp_path: Path) -> None:
    """`MNC_SHORT_WAIT_S=0` leaves even a short wait to a worker; a wider window carries a
    wait the default one does not."""
    off = mnc(start("off", 300), mnc_env(tmp_path, MNC_SHORT_WAIT_S="0"))
    assert off.returncode == 3, off.stdout + off.stderr
    wide = mnc(start("wide", 6000), mnc_env(tmp_path, MNC_SHORT_WAIT_S="7.5"))
    assert wide.returncode == 0, wide.stdout + wide.stderr
    bad = mnc(start("bad", 300), mnc_env(tmp_path, MNC_SHORT_WAIT_S="soon"))
    assert bad.returncode == 2 and "MNC_SHORT_WAIT_S must be a number" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_until_idle_finishes_a_timer_due_within_the_window(tmp_path: Path) -> None:
    left = mnc(start("idle", 2000), mnc_env(tmp_path, MNC_SHORT_WAIT_S="0"))
    assert left.returncode == 3, left.stdout + left.stderr
    # A worker with no window stops at once: nothing is runnable yet.
    quick = mnc(["worker", "--until-idle", "--quiet"], mnc_env(tmp_path, MNC_SHORT_WAIT_S="0"))
    assert quick.returncode == 0, quick.stdout + quick.stderr
    assert record_of(tmp_path, "idle").status == "waiting"
    # With the default window it waits for the timer and ends the run. The wait's 2 s
    # (counted from the commit) may have passed already on a slow machine; the retry's
    # 1.1 s backoff still comes after the wait, inside the window.
    worked = mnc(["worker", "--until-idle", "--quiet"], mnc_env(tmp_path))
    assert worked.returncode == 0, worked.stdout + worked.stderr
    record = record_of(tmp_path, "idle")
    assert record.status == "completed" and record.result == 2
    assert ledger_calls(tmp_path / "ledger.jsonl") == Counter({"tick:idle:0": 1, "tick:idle:1": 1})


def test_kill_9_while_it_sleeps_then_resume_calls_every_effect_once(tmp_path: Path) -> None:
    env = mnc_env(tmp_path)
    proc = spawn(start("k", 4000), env)
    try:
        sleeping(tmp_path, "k", proc)
        held = record_of(tmp_path, "k")
        # Running, not waiting: the process holds the run (and a `limit` slot) while it sleeps.
        assert held.status == "running" and held.lease_owner is not None
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert record_of(tmp_path, "k").status == "running"
    resumed = mnc(["resume", "k"], env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert record_of(tmp_path, "k").result == 2
    assert ledger_calls(tmp_path / "ledger.jsonl") == Counter({"tick:k:0": 1, "tick:k:1": 1})


def test_a_cancel_while_it_sleeps_ends_the_run_cancelled(tmp_path: Path) -> None:
    env = mnc_env(tmp_path, MNC_SHORT_WAIT_S="120")
    proc = spawn(start("c", 90_000), env)
    try:
        sleeping(tmp_path, "c", proc)
        cancelled = mnc(["cancel", "c"], env)
        assert cancelled.returncode in (0, 4), cancelled.stdout + cancelled.stderr
        # The sleeping process notices within `cancel_poll_s`, long before its timer.
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 4, out + err
    assert record_of(tmp_path, "c").status == "cancelled"
    assert ledger_calls(tmp_path / "ledger.jsonl") == Counter({"tick:c:0": 1})
    with SQLiteStore(tmp_path / "journal.db") as store:
        assert store.run_timers("c") == []  # the wait's timer went with the run


LIMITED = textwrap.dedent(
    """\
    workflow nap(n: int) -> int {
      limit: 1
      wait 40s
      return n
    }
    """
)


def test_a_run_that_sleeps_holds_its_limit_slot(tmp_path: Path) -> None:
    (tmp_path / "nap.mn").write_text(LIMITED)
    env = mnc_env(tmp_path, MNC_SHORT_WAIT_S="60")
    first = spawn(["run", str(tmp_path / "nap.mn"), "--id", "a", "--input", '{"n": 1}'], env)
    try:
        sleeping(tmp_path, "a", first)
        second = mnc(["run", str(tmp_path / "nap.mn"), "--id", "b", "--input", '{"n": 2}'], env)
        assert second.returncode == 3, second.stdout + second.stderr
        assert "queued" in second.stdout + second.stderr
        assert record_of(tmp_path, "a").status == "running"
        assert "sleeping" not in kinds(tmp_path, "b")
        # Done with `a`: a cancel ends its sleep.
        assert mnc(["cancel", "a"], env).returncode in (0, 4)
        out, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode == 4, out + err


GATED = textwrap.dedent(
    """\
    workflow gate(n: int) -> int {
      decision = checkpoint go {
        ask: "go?"
        options: [approve, reject]
        timeout: never
      }
      wait 1s
      if decision.approved {
        return n
      }
      return 0
    }
    """
)


def test_approve_goes_on_through_a_short_wait(tmp_path: Path) -> None:
    (tmp_path / "gate.mn").write_text(GATED)
    env = mnc_env(tmp_path)
    started = mnc(["run", str(tmp_path / "gate.mn"), "--id", "g", "--input", '{"n": 3}'], env)
    assert started.returncode == 3, started.stdout + started.stderr  # a person: no timer
    approved = mnc(["approve", "g", "go"], env)
    assert approved.returncode == 0, approved.stdout + approved.stderr
    record = record_of(tmp_path, "g")
    assert record.status == "completed" and record.result == 3
    assert "sleeping" in kinds(tmp_path, "g")
