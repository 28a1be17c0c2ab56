"""`mnc worker`: timers, checkpoint timeouts and signals fired by the worker; runs of dead
processes taken over once their lease expired; clean stops; several workers on one
journal with one killed; a worker paused past its lease commits nothing."""

from __future__ import annotations

import contextlib
import json
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from mnlang.runtime.decisions import DecisionRefused, decide
from mnlang.runtime.signals import SignalError, send
from mnlang.runtime.worker import Worker
from mnlang.stores.base import RunRecord
from mnlang.stores.sqlite import SQLiteStore
from tests.human.harness import Journal, ir_file, journal, mnc, mnc_env, program, spawn

__all__ = ["journal"]


def wait_until(condition: object, timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        time.sleep(0.05)


def detach(journal: Journal, workflow: str, args: dict[str, object], run_id: str) -> None:
    from mnlang.runtime.run import start_run

    start_run(journal.store, program(), workflow, args, run_id=run_id, detach=True)


def test_a_worker_fires_timers_timeouts_and_signals(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `--until-idle` stops with the `wait 1s` and the 1 s timeout still ahead (no window
    # for short waits); the test moves them due itself.
    monkeypatch.setenv("MNC_SHORT_WAIT_S", "0")
    detach(journal, "waiter", {"tag": "timer"}, "timer")
    detach(journal, "approval", {"tag": "late"}, "late")
    detach(journal, "poked", {"tag": "poke"}, "poke")
    worker = Worker(journal.store, concurrency=2, idle_wait=0.05)
    worker.run(until_idle=True)
    assert {r.run_id: r.status for r in journal.store.list_runs()} == {
        "timer": "waiting",
        "late": "waiting",
        "poke": "waiting",
    }
    journal.fall_due("late")  # the checkpoint's timeout
    journal.fall_due("timer")  # `wait 1s`
    send(journal.store, "poke", "poke")
    worker.run(until_idle=True)
    assert journal.texts("timer") == ["woke"]
    send(journal.store, "timer", "go", {"n": 7})
    worker.run(until_idle=True)
    results = {r.run_id: (r.status, r.result) for r in journal.store.list_runs()}
    assert results["timer"] == ("completed", 7)
    assert results["poke"] == ("completed", "poked")
    assert results["late"][0] == "completed" and results["late"][1].startswith("reject by timeout")
    assert worker.stats.lost == 0


def test_a_run_left_by_a_dead_process_is_taken_over(journal: Journal) -> None:
    detach(journal, "sleeper", {"tag": "dead", "ms": 10}, "dead")
    assert journal.store.acquire_lease("dead", "elsewhere:1:gone", 0.5) is not None
    worker = Worker(journal.store, concurrency=1, idle_wait=0.05)
    assert journal.store.runnable_runs() == []  # held until the lease expires
    wait_until(lambda: journal.store.runnable_runs() == ["dead"], what="the lease to expire")
    worker.run(until_idle=True)
    record = journal.store.get_run("dead")
    assert record is not None and record.status == "completed"
    assert record.lease_owner == worker.owner  # an ended run keeps who ended it
    assert journal.texts("dead") == ["before", "after"]


def test_a_stopped_worker_leaves_its_runs_to_others(journal: Journal) -> None:
    detach(journal, "sleeper", {"tag": "s", "ms": 800}, "s")
    worker = Worker(journal.store, concurrency=1, idle_wait=0.05)
    thread = threading.Thread(target=worker.run)
    thread.start()
    wait_until(lambda: journal.texts("s") == ["before"], what="the first effect")
    worker.stop()
    thread.join(timeout=10)
    assert not thread.is_alive()
    record = journal.store.get_run("s")
    assert record is not None and record.status == "running" and record.lease_owner is None
    assert journal.kinds("s")[-1] == "stopped"
    assert worker.stats.ended == {"running": 1}
    Worker(journal.store, concurrency=1, idle_wait=0.05).run(until_idle=True)
    record = journal.store.get_run("s")
    assert record is not None and record.status == "completed"
    assert journal.texts("s") == ["before", "after"]


def test_mnc_worker_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    env = mnc_env(tmp_path)
    ir = str(ir_file(tmp_path))
    args = ["run", ir, "-w", "sleeper", "--id", "t", "--detach", "--input"]
    assert mnc([*args, '{"tag": "t", "ms": 1500}'], env).returncode == 0
    worker = spawn(["worker", "--lease-ttl", "30"], env, tmp_path / "worker.log")
    try:
        with SQLiteStore(tmp_path / "journal.db") as store:
            ledger = tmp_path / "ledger.jsonl"
            wait_until(lambda: ledger.exists() and "before" in ledger.read_text(), what="an effect")
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=20) == 0
            record = store.get_run("t")
            assert record is not None and record.status == "running"
            assert record.lease_owner is None  # released, not left to expire
    finally:
        if worker.poll() is None:
            worker.kill()
    log = (tmp_path / "worker.log").read_text()
    assert "stopping: runs in progress stop at their next commit" in log
    assert "run t: running" in log


# --- several workers, kills and pauses ----------------------------------------------------


def kill_a_busy_worker(
    workers: list[subprocess.Popen[bytes]], records: list[RunRecord]
) -> tuple[subprocess.Popen[bytes] | None, set[str]]:
    """SIGKILL a worker that holds runs now; returns it and the runs it held."""
    for worker in workers:
        held = {
            r.run_id for r in records if (r.lease_owner or "").split(":")[1:2] == [str(worker.pid)]
        }
        if held:
            worker.send_signal(signal.SIGKILL)
            return worker, held
    return None, set()


@pytest.mark.slow
@pytest.mark.serial
def test_three_workers_one_killed_every_run_completes_once(tmp_path: Path) -> None:
    """100 runs (timers, approvals given during the test, events, long calls) on three
    `mnc worker` processes; one is killed with SIGKILL mid-way. Every run completes, once."""
    env = mnc_env(tmp_path)
    rng = random.Random(5)
    kinds: dict[str, str] = {}
    with SQLiteStore(tmp_path / "journal.db") as store:
        from mnlang.runtime.run import start_run

        for i in range(100):
            kind = ("approval", "waiter", "sleeper", "retrying")[i % 4]
            args: dict[str, object] = {"tag": f"t{i}"}
            if kind == "sleeper":
                args["ms"] = rng.choice((50, 300, 900))
            start_run(store, program(), kind, args, run_id=f"r{i:03}", detach=True)
            kinds[f"r{i:03}"] = kind
    workers = [
        spawn(["worker", "--concurrency", "4", "--lease-ttl", "2"], env, tmp_path / f"w{n}.log")
        for n in range(3)
    ]
    victim: subprocess.Popen[bytes] | None = None
    held: set[str] = set()
    try:
        with SQLiteStore(tmp_path / "journal.db") as store:
            deadline = time.monotonic() + 240
            while True:
                records = {r.run_id: r for r in store.list_runs(limit=1000)}
                done = sum(r.status == "completed" for r in records.values())
                if done == 100:
                    break
                assert time.monotonic() < deadline, f"{done} of 100 runs completed"
                if victim is None and done >= 30:
                    victim, held = kill_a_busy_worker(workers, list(records.values()))
                for checkpoint in store.open_checkpoints():
                    if rng.random() < 0.5:
                        with contextlib.suppress(DecisionRefused):
                            decide(
                                store,
                                checkpoint.run_id,
                                checkpoint.checkpoint_id,
                                approve=True,
                                by="tester",
                            )
                for run_id, record in records.items():
                    if (
                        kinds[run_id] == "waiter"
                        and "go" in record.waiting_for
                        and rng.random() < 0.5
                    ):
                        # The run may have timed out since the snapshot above.
                        with contextlib.suppress(SignalError):
                            payload = {"n": int(run_id[1:])}
                            send(store, run_id, "go", payload, signal_id=f"go-{run_id}")
                time.sleep(0.1)
            assert victim is not None and held  # it was killed holding runs
            for run_id in records:
                completed = [e for e in store.read_journal(run_id) if e.kind == "completed"]
                assert len(completed) == 1, run_id
            results = Counter()
            for event_run in records:
                for event in store.read_journal(event_run):
                    if event.kind == "effect":
                        results[event.data["key"]] += 1
            assert results and all(n == 1 for n in results.values())
    finally:
        for worker in workers:
            if worker is not victim:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=60)
    assert [w.returncode for w in workers if w is not victim] == [0, 0]
    calls = Counter(
        json.loads(line)["key"] for line in (tmp_path / "ledger.jsonl").read_text().splitlines()
    )
    # At least once: a key may be called twice only if a killed worker left it mid-call.
    assert all(n <= 2 for n in calls.values())
    assert sum(n - 1 for n in calls.values()) <= 4


@pytest.mark.slow
@pytest.mark.serial
def test_a_worker_paused_past_its_lease_commits_nothing(tmp_path: Path) -> None:
    env = mnc_env(tmp_path)
    ir = str(ir_file(tmp_path))
    args = ["run", ir, "-w", "sleeper", "--id", "p", "--detach", "--input"]
    assert mnc([*args, '{"tag": "p", "ms": 2500}'], env).returncode == 0
    ledger = tmp_path / "ledger.jsonl"
    first = spawn(["worker", "--lease-ttl", "1.5"], env, tmp_path / "first.log")
    second = None
    try:
        wait_until(
            lambda: ledger.exists() and "before" in ledger.read_text(), what="the first effect"
        )
        first.send_signal(signal.SIGSTOP)  # mid-call: the nap is in flight
        second = spawn(["worker", "--lease-ttl", "1.5"], env, tmp_path / "second.log")
        with SQLiteStore(tmp_path / "journal.db") as store:
            wait_until(
                lambda: store.get_run("p").status == "completed", timeout=60, what="takeover"
            )  # type: ignore[union-attr]
            before = store.get_run("p")
            assert before is not None
            first.send_signal(signal.SIGCONT)
            wait_until(
                lambda: "run p: " in (tmp_path / "first.log").read_text(),
                timeout=30,
                what="the paused worker to notice",
            )
            time.sleep(0.5)
            after = store.get_run("p")
            assert after is not None
            assert (after.last_seq, after.status, after.result) == (
                before.last_seq,
                "completed",
                2500,
            )
        texts = [json.loads(line)["args"]["text"] for line in ledger.read_text().splitlines()]
        assert texts == ["before", "after"]
        log = (tmp_path / "first.log").read_text()
        assert "lease" in log.split("run p: ", 1)[1]
    finally:
        for worker in (first, second):
            if worker is not None and worker.poll() is None:
                worker.send_signal(signal.SIGCONT)
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=30)


def test_a_worker_on_postgresql(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker needs only the store's interface: the same runs on the PostgreSQL store."""
    from mnlang.runtime.run import start_run
    from mnlang.stores import open_store

    monkeypatch.setenv("MNC_EXAMPLE_LEDGER", str(tmp_path / "ledger.jsonl"))
    with open_store(pg_url) as store:
        start_run(store, program(), "approval", {"tag": "pg"}, run_id="pg-a", detach=True)
        start_run(store, program(), "poked", {"tag": "pg"}, run_id="pg-p", detach=True)
        start_run(
            store, program(), "parent", {"tag": "pg", "parts": ["ab"]}, run_id="pg-c", detach=True
        )
        worker = Worker(store, concurrency=3, idle_wait=0.05)
        worker.run(until_idle=True)
        assert {r.status for r in store.list_runs()} == {"waiting"}
        decide(store, "pg-a", "review", approve=True, by="ann")
        send(store, "pg-p", "poke")
        [child] = [r.run_id for r in store.list_runs(parent_run_id="pg-c")]
        decide(store, child, "part_review", approve=True, by="ann")
        worker.run(until_idle=True)
        results = {r.run_id: (r.status, r.result) for r in store.list_runs()}
    assert results["pg-a"] == ("completed", "approved by ann: -")
    assert results["pg-p"] == ("completed", "poked")
    assert results["pg-c"] == ("completed", 2)
    assert worker.stats.lost == 0
