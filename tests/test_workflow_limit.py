"""A workflow's `limit:` (runs `running` at once) held by the runtime: new runs beyond it
are created queued (`waiting`) and take a slot as runs end or wait; claims, leases and
`mnc run` respect it on both stores, with several workers and several processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mnlang.cli import main
from mnlang.ir.compile import compile_file
from mnlang.ir.model import IRProgram
from mnlang.runtime.config import RuntimeConfig
from mnlang.runtime.run import start_run
from mnlang.runtime.worker import Worker
from mnlang.stores import open_store
from mnlang.stores.base import Batch, Lease, NewRun, RunLimitReached, RunUpdate, SetTimer, Store
from tests.human.harness import ROOT

FLOWS = """\
tool hold(tag: str, ms: int) -> str {
  impl: "limit_tools:hold"
  timeout: 30s
}

workflow capped(tag: str) -> str {
  limit: 2

  a = hold(tag, 250)
  return a
}

workflow single(tag: str) -> str {
  limit: 1

  a = hold(tag, 50)
  return a
}

workflow fan(tag: str) -> str {
  parallel {
    x = single("{tag}-x")
    y = single("{tag}-y")
  }
  return "{x} {y}"
}
"""

# Each call notes its start and end (wall clock, so several processes can be compared).
TOOLS = """\
import time
from pathlib import Path


def hold(tag, ms, *, ctx):
    spans = Path(__file__).with_name("spans.log")
    with spans.open("a") as f:
        f.write(f"start {tag} {time.time()}\\n")
    time.sleep(ms / 1000)
    with spans.open("a") as f:
        f.write(f"end {tag} {time.time()}\\n")
    return tag
"""

CONFIG = RuntimeConfig(commit_ms=0)
RUNS = 6


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    (tmp_path / "limit_tools.py").write_text(TOOLS)
    source = tmp_path / "limit.mn"
    source.write_text(FLOWS)
    return source


def compiled(source: Path) -> IRProgram:
    ir, diagnostics = compile_file(source)
    assert ir is not None, diagnostics
    return ir


def create(store: Store, run_id: str, limit: int | None = 2, workflow: str = "capped") -> str:
    record, created = store.create_run(NewRun(run_id, workflow, {}, limit=limit))
    assert created
    return record.status


def end(store: Store, lease: Lease, status: str, timer: float | None = None) -> None:
    store.commit(
        Batch(
            run_id=lease.run_id,
            lease=lease,
            run=RunUpdate(status=status),  # type: ignore[arg-type]
            set_timers=[] if timer is None else [SetTimer("t", timer)],
        )
    )
    if status == "waiting":
        store.release_lease(lease)  # as a worker does


def status_of(store: Store, run_id: str) -> str:
    record = store.get_run(run_id)
    assert record is not None
    return record.status


def test_runs_beyond_the_limit_queue_and_take_slots_as_runs_end_or_wait(store: Store) -> None:
    assert [create(store, r) for r in ("r1", "r2", "r3")] == ["running", "running", "waiting"]
    assert create(store, "free", limit=None, workflow="free") == "running"
    assert sorted(store.runnable_runs()) == ["free", "r1", "r2"]
    with pytest.raises(RunLimitReached, match=r"`capped` already has 2 runs running"):
        store.acquire_lease("r3", "me", 30)
    leases = {lease.run_id: lease for lease in store.claim_runs("w", 30, limit=10)}
    assert sorted(leases) == ["free", "r1", "r2"]

    end(store, leases["r1"], "completed")  # a slot frees: the queued run takes it
    assert store.runnable_runs() == ["r3"]
    (r3,) = store.claim_runs("w", 30, limit=10)
    assert (r3.run_id, status_of(store, "r3")) == ("r3", "running")
    assert store.claim_runs("w", 30, limit=10) == []

    end(store, leases["r2"], "waiting", timer=0.0)  # a waiting run holds no slot ...
    assert create(store, "r4") == "running"
    # ... and needs one again to go on when woken (its timer is due).
    assert [lease.run_id for lease in store.claim_runs("w", 30, limit=10)] == ["r4"]
    assert store.runnable_runs() == []
    end(store, r3, "failed")
    assert store.runnable_runs() == ["r2"]
    assert [lease.run_id for lease in store.claim_runs("w", 30, limit=10)] == ["r2"]
    assert status_of(store, "r2") == "running"


def test_a_lease_taken_by_a_process_takes_a_slot(store: Store) -> None:
    create(store, "r1", limit=1)
    assert create(store, "r2", limit=1) == "waiting"
    (r1,) = store.claim_runs("w", 30)
    end(store, r1, "completed")
    lease = store.acquire_lease("r2", "me", 30)  # `mnc resume` of the queued run
    assert lease is not None and status_of(store, "r2") == "running"
    assert store.runnable_runs() == []


def test_a_queued_run_is_cancelled_without_waiting_for_a_slot(store: Store) -> None:
    create(store, "r1", limit=1)
    create(store, "r2", limit=1)
    assert store.request_cancel("r2")
    assert sorted(store.runnable_runs()) == ["r1", "r2"]
    assert sorted(lease.run_id for lease in store.claim_runs("w", 30, limit=10)) == ["r1", "r2"]
    assert status_of(store, "r2") == "waiting"  # it takes no slot: it only ends


def claim_at(store: Store, barrier: threading.Barrier, claimed: list[Lease]) -> None:
    barrier.wait()
    claimed.extend(store.claim_runs(f"w{id(store)}", 30, limit=4))


def test_workers_claiming_at_once_never_share_the_last_slot(journal: str, store: Store) -> None:
    """Each round frees one slot of a `limit: 1` workflow while queued runs wait, then
    eight stores claim at the same moment: exactly one run is claimed."""
    runs = [f"q{i}" for i in range(6)]
    for run_id in runs:
        create(store, run_id, limit=1)
    stores = [open_store(journal) for _ in range(8)]
    try:
        for _ in range(len(runs)):
            barrier = threading.Barrier(len(stores))
            claimed: list[Lease] = []

            threads = [
                threading.Thread(target=claim_at, args=(s, barrier, claimed)) for s in stores
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            assert len(claimed) == 1
            assert len(store.list_runs(status="running", workflow="capped")) == 1
            end(store, claimed[0], "completed")
    finally:
        for s in stores:
            s.close()
    assert [r.status for r in store.list_runs()] == ["completed"] * len(runs)


def max_overlap(spans: Path) -> int:
    """The most tool calls in progress at one moment."""
    moments = []
    for line in spans.read_text().splitlines():
        kind, _tag, at = line.split()
        moments.append((float(at), 1 if kind == "start" else -1))
    most = current = 0
    for _at, change in sorted(moments):
        current += change
        most = max(most, current)
    return most


class Sampler:
    """Counts the runs of `capped` in `running` as often as it can, in a thread."""

    def __init__(self, db: str) -> None:
        self.store = open_store(db)
        self.most = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            running = self.store.list_runs(status="running", workflow="capped")
            self.most = max(self.most, len(running))
            self.samples += 1
            time.sleep(0.005)

    def all_ended(self) -> bool:
        runs = self.store.list_runs(workflow="capped")
        return len(runs) == RUNS and all(r.status == "completed" for r in runs)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.store.close()


def test_two_workers_never_run_more_than_the_limit(journal: str, flows: Path) -> None:
    program = compiled(flows)
    with open_store(journal) as store:
        for i in range(RUNS):
            start_run(store, program, "capped", {"tag": f"t{i}"}, run_id=f"c{i}", detach=True)
        assert [r.status for r in store.list_runs()].count("running") == 2
    sampler = Sampler(journal)
    stores = [open_store(journal) for _ in range(2)]
    workers = [Worker(s, concurrency=4, config=CONFIG, idle_wait=0.05) for s in stores]
    threads = [threading.Thread(target=w.run, kwargs={"until_idle": True}) for w in workers]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sampler.all_ended()
    finally:
        sampler.stop()
        for s in stores:
            s.close()
    assert sampler.most == 2 and sampler.samples > 10
    assert max_overlap(flows.with_name("spans.log")) == 2
    assert sum(w.stats.ended.get("completed", 0) for w in workers) == RUNS


def test_mnc_run_beyond_the_limit_says_the_run_is_queued(tmp_path: Path, flows: Path) -> None:
    db = str(tmp_path / "journal.db")

    def run(*args: str) -> Result:
        return CliRunner().invoke(main, [*args, "--db", db], catch_exceptions=False)

    for i in range(2):
        started = run(
            "run",
            str(flows),
            "-w",
            "capped",
            "--detach",
            "--id",
            f"c{i}",
            "--input",
            '{"tag": "x"}',
        )
        assert started.exit_code == 0, started.output
    queued = run("run", str(flows), "-w", "capped", "--id", "c2", "--input", '{"tag": "x"}')
    assert queued.exit_code == 3, queued.output
    assert "waiting: run c2 (capped)" in queued.output
    assert "queued: `capped` has 2 runs running, its `limit`" in queued.output
    resumed = run("resume", "c2")
    assert resumed.exit_code == 3 and "queued" in resumed.output
    worked = run("worker", "--until-idle", "--quiet")
    assert worked.exit_code == 0, worked.output
    with open_store(db) as store:
        assert [r.status for r in store.list_runs()] == ["completed"] * 3


def test_a_child_run_beyond_its_limit_is_queued_and_its_parent_waits_for_it(
    tmp_path: Path, flows: Path
) -> None:
    program = compiled(flows)
    with open_store(str(tmp_path / "journal.db")) as store:
        outcome = start_run(store, program, "fan", {"tag": "f"}, run_id="f", config=CONFIG)
        assert outcome.status == "waiting"  # one child ran here, the other is queued
        children = {r.run_id: r.status for r in store.list_runs(parent_run_id="f")}
        assert sorted(children.values()) == ["completed", "waiting"]
        Worker(store, concurrency=2, config=CONFIG, idle_wait=0.05).run(until_idle=True)
        record = store.get_run("f")
        assert record is not None and (record.status, record.result) == ("completed", "f-x f-y")
    assert max_overlap(flows.with_name("spans.log")) == 1


def mnc_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNC_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def mnc(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mnlang.cli", *args],
        cwd=cwd,
        env=mnc_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.serial
def test_detached_runs_with_two_mnc_worker_processes(journal: str, flows: Path) -> None:
    for i in range(RUNS):
        started = mnc(["run", str(flows), "-w", "capped", "--detach", "--id", f"c{i}", "--db", journal,
                       "--input", f'{{"tag": "t{i}"}}'], flows.parent)  # fmt: skip
        assert started.returncode in (0, 3), started.stderr
    sampler = Sampler(journal)
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "mnlang.cli", "worker", "--db", journal, "--concurrency", "4"],
            cwd=flows.parent,
            env=mnc_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        deadline = time.monotonic() + 60
        while not sampler.all_ended():
            assert time.monotonic() < deadline, "the runs did not all complete"
            time.sleep(0.05)
    finally:
        sampler.stop()
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(30)
    assert sampler.most <= 2
    assert max_overlap(flows.with_name("spans.log")) == 2
