"""Crash enumeration through the worker, over everything a run waits for: a checkpoint, a
timer, an event (signalled before the run waits for it) and a child run that waits for a
checkpoint of its own (`journey` in tests/human/human.mn).

A `mnc worker` process moves the run while the test acts as the outside world, over and
over (approves every open checkpoint, lets every other timer fall due, sends the event
with a fixed signal id). The worker is made to crash at each of its commits in turn
(`MNC_CRASH_AT_COMMIT`, before or after the commit is written), and fresh workers drive
the run on to its end. Then, compared with a run that
never crashed: the same result, each effect key committed once with one result event,
each key called at most once more per crash that left it between intent and result,
the same child runs (no duplicate, none orphaned), the signal consumed once.

On SQLite and on PostgreSQL (a schema per crash on the session's private server); on
PostgreSQL the worker dies with the batch sent but no COMMIT (`written`), or with COMMIT
sent and its reply unread (`during`), at every fourth commit.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mnlang.runtime.decisions import decide
from mnlang.runtime.signals import SignalError, send
from mnlang.stores.base import TERMINAL_STATUSES, Store
from tests.crash.journals import STORES, Journals, journals_of
from tests.human.harness import ir_file, mnc, mnc_env, spawn

RUN_ID = "journey"
SIGNAL_ID = "go-1"


@pytest.fixture(params=STORES)
def journals(request: pytest.FixtureRequest) -> Iterator[Journals]:
    yield from journals_of(request)


@dataclass
class Driven:
    status: str
    result: object
    crashes: list[set[str]] = field(default_factory=list)
    """For each crash, the effect keys it left between intent and result."""


def pending_intents(store: Store) -> set[str]:
    pending: set[str] = set()
    for run in store.list_runs(limit=1000):
        intents, results = set(), set()
        for event in store.read_journal(run.run_id):
            if event.kind == "intent":
                intents.add(event.data["key"])
            elif event.kind in ("effect", "replayed"):
                results.add(event.data["key"])
        pending |= intents - results
    return pending


def act(store: Store, journals: Journals, folder: Path) -> None:
    """What the outside world does while workers run, again and again: idempotent on purpose.
    Timers fall due at once, except checkpoint timeouts: the person decides first."""
    for checkpoint in store.open_checkpoints():
        decide(store, checkpoint.run_id, checkpoint.checkpoint_id, approve=True, by="tester")
    journals.fall_due(folder)
    record = store.get_run(RUN_ID)
    if record is not None and record.status not in TERMINAL_STATUSES:
        try:
            send(store, RUN_ID, "go", {"n": 42}, signal_id=SIGNAL_ID)
        except SignalError:
            # The run may have ended between the look above and the send.
            ended = store.get_run(RUN_ID)
            if ended is None or ended.status not in TERMINAL_STATUSES:
                raise


def drive(journals: Journals, folder: Path, at: int | None, when: str) -> Driven:
    """A worker that crashes at its commit `at` (None: never), then workers that do not,
    until the run ends."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {
        **mnc_env(folder, MNC_COMMIT_EVERY="3", MNC_COMMIT_MS="0"),
        "MNC_DB": journals.url(folder),
    }
    ir = str(ir_file(folder))
    args = ["run", ir, "-w", "journey", "--id", RUN_ID, "--detach", "--input", '{"tag": "j"}']
    started = mnc(args, env)
    assert started.returncode == 0, started.stderr
    crashes: list[set[str]] = []
    plan = {} if at is None else {"MNC_CRASH_AT_COMMIT": str(at), "MNC_CRASH_WHEN": when}
    worker_args = ["worker", "--lease-ttl", "5", "-q"]
    worker = spawn(worker_args, {**env, **plan}, folder / "worker.log")
    deadline = time.monotonic() + 120
    try:
        with journals.open(folder) as store:
            while True:
                assert time.monotonic() < deadline, "the run did not end"
                record = store.get_run(RUN_ID)
                assert record is not None
                if record.status in ("completed", "failed"):
                    return Driven(record.status, record.result, crashes)
                if worker.poll() is not None:
                    assert worker.returncode == 137, (folder / "worker.log").read_text()
                    journals.settle()
                    crashes.append(pending_intents(store))
                    journals.expire_leases(folder)
                    worker = spawn(worker_args, env, folder / "worker.log")
                act(store, journals, folder)
                time.sleep(0.03)
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)


def effect_results(store: Store) -> Counter[str]:
    counts: Counter[str] = Counter()
    for run in store.list_runs(limit=1000):
        for event in store.read_journal(run.run_id):
            if event.kind == "effect":
                counts[event.data["key"]] += 1
    return counts


def tool_calls(folder: Path) -> Counter[str]:
    ledger = folder / "ledger.jsonl"
    lines = ledger.read_text("utf-8").splitlines() if ledger.exists() else []
    return Counter(json.loads(line)["key"] for line in lines)


def check(
    journals: Journals, reference: Driven, ref_folder: Path, crashed: Driven, folder: Path
) -> None:
    assert (crashed.status, crashed.result) == (reference.status, reference.result)
    with journals.open(ref_folder) as ref_store, journals.open(folder) as store:
        ref_runs = sorted(r.run_id for r in ref_store.list_runs(limit=1000))
        assert sorted(r.run_id for r in store.list_runs(limit=1000)) == ref_runs
        assert all(r.status == "completed" for r in store.list_runs(limit=1000))
        results = effect_results(store)
        assert set(results) == set(effect_results(ref_store))
        assert all(n == 1 for n in results.values()), results
        assert store.pending_signals(RUN_ID) == []
    calls = tool_calls(folder)
    assert set(calls) == set(tool_calls(ref_folder))
    for key, n in calls.items():
        assert n <= 1 + sum(key in left for left in crashed.crashes), (key, n)
    journals.drop(folder)


# (store, moment, stride): at every commit of the worker, or at every k-th from the first.
# PostgreSQL's `written` and `during` leave what `before` and `after` leave, through the
# server's handling of a worker that died inside its transaction (see test_crash.py).
CASES = [
    ("sqlite", "before", 1, 1),
    ("sqlite", "after", 1, 1),
    ("postgres", "written", 4, 2),
    ("postgres", "during", 4, 3),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("journals", "when", "stride", "first"),
    CASES,
    ids=[f"{store}-{when}" + (f"-every{k}" if k > 1 else "") for store, when, k, _ in CASES],
    indirect=["journals"],
)
def test_crash_at_every_commit_of_a_worker(
    when: str, stride: int, first: int, journals: Journals, tmp_path: Path
) -> None:
    reference = drive(journals, tmp_path / "reference", None, when)
    assert reference.status == "completed"
    assert reference.result == "approve, 42, 5"
    assert all(n == 1 for n in tool_calls(tmp_path / "reference").values())
    at = first - stride
    tried = 0
    started = time.monotonic()
    while True:
        at += stride
        folder = tmp_path / f"crash-{at}"
        crashed = drive(journals, folder, at, when)
        if not crashed.crashes:
            break
        check(journals, reference, tmp_path / "reference", crashed, folder)
        tried += 1
    took = time.monotonic() - started
    print(f"{journals.kind}, worker crash {when}: {tried} crash points, {took:.0f} s")
    assert at > 10, "too few commits to test"
