"""Due checkpoint timeouts decided in batches by the worker (`decide_due_timeouts`): one
transaction decides many, and a crash at any of a worker's commits, the batch's or a
run's, leaves a journal that the next worker finishes with each run decided once, by its
timeout, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mnlang.api import load_program
from mnlang.runtime.config import RuntimeConfig
from mnlang.runtime.decisions import decide_due_timeouts
from mnlang.runtime.run import start_run
from mnlang.runtime.worker import Worker
from mnlang.stores.base import Lease
from mnlang.stores.crashpoints import CRASH_EXIT_STATUS
from tests.crash.journals import STORES, Journals, journals_of

ROOT = Path(__file__).resolve().parent.parent
RUNS = 3
SOURCE = """\
workflow ask(n: int) -> str {
  d = checkpoint review {
    ask: "Go ahead with {n}?"
    timeout: 1h
    on_timeout: reject
  }
  return "{d.choice} by {d.by}"
}
"""


@pytest.fixture(params=STORES)
def journals(request: pytest.FixtureRequest) -> Iterator[Journals]:
    yield from journals_of(request)


def waiting_runs(journals: Journals, folder: Path, runs: int = RUNS) -> None:
    """`runs` runs waiting at their checkpoint, with every timeout due."""
    folder.mkdir()
    source = folder / "ask.mn"
    source.write_text(SOURCE, "utf-8")
    program = load_program(source)
    with journals.open(folder) as store:
        for n in range(runs):
            start_run(store, program, "ask", {"n": n}, run_id=f"ask-{n}", detach=True)
        Worker(store, config=RuntimeConfig(commit_ms=0), idle_wait=0.05).run(until_idle=True)
        assert len(store.list_runs(status="waiting", limit=runs + 1)) == runs
    journals._execute(folder, "UPDATE timers SET due_at = 0")


def worker(journals: Journals, folder: Path, crash: dict[str, str]) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNC_")}
    env.update(MNC_DB=journals.url(folder), MNC_COMMIT_MS="0", PYTHONPATH=str(ROOT), **crash)
    done = subprocess.run(
        [sys.executable, "-m", "mnlang.cli", "worker", "--until-idle", "-q"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode in (0, CRASH_EXIT_STATUS), done.stderr
    return done.returncode


def check_decided_once(journals: Journals, folder: Path) -> None:
    with journals.open(folder) as store:
        for n in range(RUNS):
            run = store.get_run(f"ask-{n}")
            assert run is not None and (run.status, run.result) == (
                "completed",
                "reject by timeout",
            )
            decided = [e for e in store.read_journal(run.run_id) if e.kind == "decided"]
            assert len(decided) == 1, decided
            assert store.run_timers(run.run_id) == []


def test_one_transaction_decides_every_due_timeout(journals: Journals, tmp_path: Path) -> None:
    folder = tmp_path / "j"
    waiting_runs(journals, folder)
    # A timer set before the choice rode with it: the batch reads the checkpoint.
    journals._execute(folder, "UPDATE timers SET payload = '{}' WHERE run_id = 'ask-1'")
    with journals.open(folder) as store:
        # A person decides one first: the batch leaves that one alone.
        [review] = store.open_checkpoints("ask-0")
        store.decide_checkpoint("ask-0", review.checkpoint_id, {"choice": "approve"}, by="ann")
        assert decide_due_timeouts(store, limit=100) == RUNS - 1
        assert decide_due_timeouts(store, limit=100) == 0
        checkpoints = [store.get_checkpoint(f"ask-{n}", review.checkpoint_id) for n in range(RUNS)]
        assert [(c.status, c.decided_by) for c in checkpoints if c is not None] == [
            ("decided", "ann"),
            *[("decided", "timeout")] * (RUNS - 1),
        ]
    assert worker(journals, folder, {}) == 0
    with journals.open(folder) as store:
        results = [store.get_run(f"ask-{n}") for n in range(RUNS)]
        assert [r.result for r in results if r is not None] == [
            "approve by ann",
            *["reject by timeout"] * (RUNS - 1),
        ]


def test_a_backlog_of_due_timeouts_is_claimed_deeper(
    journals: Journals, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that finds more runnable runs than it claims claims deeper (the look for
    runnable runs costs what is runnable: taken 8 at a time, 150 due runs would pay it
    19 times); each run is still claimed, decided and completed once."""
    folder = tmp_path / "j"
    runs = 150
    waiting_runs(journals, folder, runs)
    with journals.open(folder) as store:
        worker = Worker(store, concurrency=1, config=RuntimeConfig(commit_ms=0), idle_wait=0.05)
        limits: list[int] = []
        claim_runs = store.claim_runs

        def claim(owner: str, ttl: float, limit: int = 1) -> list[Lease]:
            limits.append(limit)
            return claim_runs(owner, ttl, limit)

        monkeypatch.setattr(store, "claim_runs", claim)
        stats = worker.run(until_idle=True)
        assert (stats.claimed, stats.ended) == (runs, {"completed": runs})
        assert max(limits) > 8, limits  # deeper than the concurrency's 8 ahead
        assert len(limits) < runs // 8, limits
        for n in range(runs):
            run = store.get_run(f"ask-{n}")
            assert run is not None and run.result == "reject by timeout"
            assert [e.kind for e in store.read_journal(run.run_id)].count("decided") == 1


@pytest.mark.slow
@pytest.mark.parametrize("when", ["before", "written", "during", "after"])
def test_a_worker_crash_at_every_commit(journals: Journals, when: str, tmp_path: Path) -> None:
    """Commit 1 is the batch of timeouts, the next ones the runs' own (grouped or not);
    the worker dies at each in turn, then another finishes the work."""
    if journals.kind == "sqlite" and when == "written":
        pytest.skip("SQLite's `written` is its `during`")
    crashed = 0
    for at in range(1, 3 * RUNS):
        folder = tmp_path / f"{when}-{at}"
        waiting_runs(journals, folder)
        status = worker(journals, folder, {"MNC_CRASH_AT_COMMIT": str(at), "MNC_CRASH_WHEN": when})
        if status != CRASH_EXIT_STATUS:
            break
        crashed += 1
        journals.settle()
        journals.expire_leases(folder)
        assert worker(journals, folder, {}) == 0
        check_decided_once(journals, folder)
        journals.drop(folder)
    # Commit 1 is the batch; the runs' own commits follow, fewer than one a run when the
    # worker's group commit puts several runs' commits in one transaction (each such
    # group is one crash point, its members enumerated by tests/test_group_commit_crash).
    assert crashed >= 2, "the worker made too few commits to test"
