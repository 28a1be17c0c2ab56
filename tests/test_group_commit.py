"""Group commit (`mnlang.stores.group_commit`): commits of runs executing at once share a
transaction, each batch in a savepoint of its own.

- the committer: a lone commit goes at once, alone; commits arriving while one is in
  flight go together right after it, in the order they queued; a failure of the group's
  transaction is every member's;
- the stores (SQLite and PostgreSQL): a member refused (a stale lease, a run that is
  gone, a bad state op, a value that is not JSON) writes nothing and the others commit;
  a key used with other arguments inside a group reads as it would in separate commits;
  and (a law, hypothesis on SQLite) a group leaves the journal and the ledger exactly as
  its batches committed one by one in the same order would;
- a worker: no effect is called before its intent is committed (the receiving tool reads
  the ledger from a connection of its own when it is called), and two runs racing on one
  `scope: global` key inside groups end as without groups (one calls, the other is a
  `key_conflict`; with the same arguments, both complete with one result).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnlang.ir.compile import compile_file
from mnlang.ir.model import IRProgram
from mnlang.runtime.run import start_run
from mnlang.runtime.worker import Worker
from mnlang.stores.base import (
    AppendList,
    Batch,
    CommitResult,
    Lease,
    LedgerPut,
    NewEvent,
    NewRun,
    RunNotFound,
    SetVar,
    StaleLease,
    Store,
    StoreError,
)
from mnlang.stores.group_commit import GroupCommitter
from mnlang.stores.sqlite import SQLiteStore

# --- the committer ------------------------------------------------------------------------


class HeldStore:
    """Commit functions that record what they were given; the lone commit of `hold` waits
    until the test lets it go, so that others queue behind it."""

    def __init__(self, hold: str) -> None:
        self.hold = hold
        self.go = threading.Event()
        self.calls: list[list[str]] = []

    def commit_one(self, batch: Batch) -> CommitResult:
        self.calls.append([batch.run_id])
        if batch.run_id == self.hold:
            assert self.go.wait(10)
        return CommitResult(1, 0.0, False, [], 0)

    def commit_group(self, batches: Sequence[Batch]) -> list[CommitResult | Exception]:
        self.calls.append([b.run_id for b in batches])
        return [
            StaleLease("refused") if b.run_id == "bad" else CommitResult(2, 0.0, False, [], 0)
            for b in batches
        ]


def _queued(committer: GroupCommitter, n: int) -> None:
    deadline = time.monotonic() + 10
    while len(committer._queue) < n:
        assert time.monotonic() < deadline, "the commits did not queue"
        time.sleep(0.001)


def test_a_lone_commit_goes_at_once_and_the_ones_behind_it_go_together() -> None:
    held = HeldStore("first")
    committer = GroupCommitter(held.commit_one, held.commit_group)
    # Nothing in flight: the commit goes alone, at once, through the lone path.
    assert committer.commit(Batch("alone")).last_seq == 1
    assert held.calls == [["alone"]]
    outcomes: dict[str, object] = {}

    def commit(run_id: str) -> None:
        try:
            outcomes[run_id] = committer.commit(Batch(run_id)).last_seq
        except StoreError as e:
            outcomes[run_id] = type(e).__name__

    first = threading.Thread(target=commit, args=("first",))
    first.start()
    while held.calls[-1] != ["first"]:
        time.sleep(0.001)
    others = []
    for n, run_id in enumerate(["a", "bad", "c"], 1):
        others.append(threading.Thread(target=commit, args=(run_id,)))
        others[-1].start()
        _queued(committer, n)  # one at a time: the order they queued is known
    assert not outcomes, "a commit returned while the one before it was in flight"
    held.go.set()
    for thread in [first, *others]:
        thread.join(10)
    assert held.calls[1:] == [["first"], ["a", "bad", "c"]]
    assert outcomes == {"first": 1, "a": 2, "bad": "StaleLease", "c": 2}
    stats = committer.stats
    assert (stats.commits, stats.transactions, stats.grouped, stats.largest) == (5, 3, 3, 3)


def test_a_failed_group_transaction_fails_every_member() -> None:
    held = HeldStore("first")

    def broken(batches: Sequence[Batch]) -> list[CommitResult | Exception]:
        raise StoreError("the disk is full")

    committer = GroupCommitter(held.commit_one, broken)
    errors: list[str] = []

    def commit(run_id: str) -> None:
        try:
            committer.commit(Batch(run_id))
        except StoreError as e:
            errors.append(f"{run_id}: {e}")

    threads = [threading.Thread(target=commit, args=(run_id,)) for run_id in ("first", "a", "b")]
    threads[0].start()
    while held.calls != [["first"]]:
        time.sleep(0.001)
    for n, thread in enumerate(threads[1:], 1):
        thread.start()
        _queued(committer, n)
    held.go.set()
    for thread in threads:
        thread.join(10)
    assert sorted(errors) == ["a: the disk is full", "b: the disk is full"]


# --- the stores --------------------------------------------------------------------------


def _leased(store: Store, run_id: str) -> Lease:
    store.create_run(NewRun(run_id, "wf", {}))
    lease = store.acquire_lease(run_id, "w", 60)
    assert lease is not None
    return lease


def _put(key: str, args_hash: str, status: str = "intent") -> LedgerPut:
    return LedgerPut(key, args_hash, status, True, None, "s")


def test_a_refused_member_writes_nothing_and_the_others_commit(store: Store) -> None:
    leases = {run_id: _leased(store, run_id) for run_id in ("r1", "r2", "r3", "r4", "r5")}
    stale = Lease("r2", "w", leases["r2"].epoch - 1, leases["r2"].expires_at)
    batches = [
        Batch("r1", leases["r1"], events=[NewEvent("step", {"n": 1})], ledger=[_put("k", "h1")]),
        Batch("r2", stale, events=[NewEvent("step", {"n": 2})], ledger=[_put("k2", "h")]),
        # The key of r1 with other arguments: a conflict, read from the row r1 wrote.
        Batch("r3", leases["r3"], events=[NewEvent("step", {"n": 3})], ledger=[_put("k", "h2")]),
        Batch("gone", None, events=[NewEvent("step", {"n": 0})]),
    ]
    r1, r2, r3, gone = store.commit_group(batches)
    # Appending to a variable that is not a list: the store refuses the op (on PostgreSQL
    # in the server, which aborts the pipeline: the members are then committed alone).
    r4, r5 = store.commit_group(
        [
            Batch("r4", leases["r4"], events=[NewEvent("step")], state=[AppendList("", "x", [1])]),
            Batch(
                "r5", leases["r5"], events=[NewEvent("step", {"n": 5})], state=[SetVar("", "v", 5)]
            ),
        ]
    )
    assert isinstance(r1, CommitResult) and isinstance(r3, CommitResult)
    assert isinstance(r5, CommitResult)
    assert isinstance(r2, StaleLease) and isinstance(gone, RunNotFound)
    assert isinstance(r4, ValueError)
    assert [row.args_hash for row in r1.ledger] == ["h1"]
    assert [(row.args_hash, row.run_id) for row in r3.ledger] == [("h1", "r1")]
    for run_id, n in (("r1", 1), ("r3", 3), ("r5", 5)):
        assert [e.data for e in store.read_journal(run_id)] == [{"n": n}]
    assert store.read_journal("r2") == [] and store.read_journal("r4") == []
    assert store.ledger_get("k2", run_id=None) is None
    assert store.load_state("r5").variables == {"": {"v": 5}}
    # The runs refused are as they were: the next commit with the right lease goes through.
    assert store.commit(Batch("r2", leases["r2"], events=[NewEvent("step")])).last_seq == 1


def test_a_value_that_is_not_json_is_its_members_refusal(store: Store) -> None:
    leases = {run_id: _leased(store, run_id) for run_id in ("r1", "r2")}
    bad = Batch("r1", leases["r1"], events=[NewEvent("step", {"x": object()})])  # type: ignore[dict-item]
    good = Batch("r2", leases["r2"], events=[NewEvent("step", {"n": 2})])
    refused, committed = store.commit_group([bad, good])
    assert isinstance(refused, TypeError | ValueError)
    assert isinstance(committed, CommitResult) and committed.last_seq == 1
    assert store.read_journal("r1") == []


# The law: a group leaves what its batches committed one by one, in its order, leave.

KEYS = st.sampled_from(["a", "b"])
PUTS = st.builds(
    LedgerPut,
    KEYS,
    st.sampled_from(["h1", "h2"]),
    st.sampled_from(["intent", "done", "unknown"]),
    st.booleans(),
    st.sampled_from([None, 1]),
    st.just("s"),
)
MEMBERS = st.lists(
    st.tuples(
        st.sampled_from(["r1", "r2", "r3", "gone"]),
        st.booleans(),  # whether its lease is stale
        st.lists(PUTS, max_size=3),
        st.integers(0, 2),  # events
    ),
    min_size=2,
    max_size=6,
)


def _journal_and_ledger(store: SQLiteStore) -> tuple[Any, ...]:
    journals = {
        run_id: [(e.seq, e.kind, e.data) for e in store.read_journal(run_id)]
        for run_id in ("r1", "r2", "r3")
    }
    ledger = {
        (key, run_id): (row.args_hash, row.status, row.result, row.run_id)
        for key in ("a", "b")
        for run_id in (None, "r1", "r2", "r3")
        if (row := store.ledger_get(key, run_id=run_id)) is not None
    }
    return journals, ledger


def _outcome(outcome: CommitResult | Exception) -> Any:
    if isinstance(outcome, Exception):
        return type(outcome).__name__
    ledger = [(r.key, r.args_hash, r.status, r.result, r.run_id) for r in outcome.ledger]
    return outcome.last_seq, ledger


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(members=MEMBERS)
def test_a_group_equals_its_batches_committed_one_by_one(
    members: list[tuple[str, bool, list[LedgerPut], int]],
) -> None:
    grouped, alone = SQLiteStore(":memory:"), SQLiteStore(":memory:")
    try:
        batches: dict[int, list[Batch]] = {0: [], 1: []}
        for n, store in enumerate((grouped, alone)):
            leases = {run_id: _leased(store, run_id) for run_id in ("r1", "r2", "r3")}
            for run_id, stale, puts, events in members:
                lease = leases.get(run_id)
                if lease is not None and stale:
                    lease = Lease(run_id, "w", lease.epoch + 1, lease.expires_at)
                batches[n].append(
                    Batch(
                        run_id,
                        lease,
                        events=[NewEvent("step", {"i": i}) for i in range(events)],
                        ledger=list(puts),
                    )
                )
        together = grouped.commit_group(batches[0])
        one_by_one: list[CommitResult | Exception] = []
        for batch in batches[1]:
            try:
                one_by_one.append(alone.commit(batch))
            except StoreError as e:
                one_by_one.append(e)
        assert [_outcome(o) for o in together] == [_outcome(o) for o in one_by_one]
        assert _journal_and_ledger(grouped) == _journal_and_ledger(alone)
    finally:
        grouped.close()
        alone.close()


# --- a worker ----------------------------------------------------------------------------

SOURCE = """
effect put(order: str, n: int) -> int {
  impl: "group_tools:put"
  key: "put:{order}:{n}"
}

effect claim(slot: str, who: str) -> str {
  impl: "group_tools:claim"
  key: "slot:{slot}"
  scope: global
}

workflow chain(order: str, links: int) -> int {
  total = 0
  for n in range(links) {
    x = put(order, n)
    total = total + x
  }
  return total
}

workflow race(slot: str, who: str) -> str {
  got = claim(slot, who)
  return got
}
"""

TOOLS = '''
import json, os, sqlite3, threading

_lock = threading.Lock()


def _committed(key, scope):
    """Whether the ledger row of the intent is committed, read from a connection of this
    call's own (uncommitted rows of the worker's transaction are invisible to it)."""
    url = os.environ["GROUP_TEST_DB"]
    if url.startswith("postgresql://"):
        import psycopg
        from mnlang.stores.postgres import parse_url
        target = parse_url(url)
        with psycopg.connect(target.conninfo, autocommit=True) as conn:
            conn.execute(f"SET search_path = {target.schema}")
            row = conn.execute(
                "SELECT status FROM ledger WHERE scope = %s AND key = %s", (scope, key)
            ).fetchone()
    else:
        conn = sqlite3.connect(url)
        try:
            row = conn.execute(
                "SELECT status FROM ledger WHERE scope = ? AND key = ?", (scope, key)
            ).fetchone()
        finally:
            conn.close()
    return row is not None


def _record(ctx, scope, **more):
    line = {"key": ctx.key, "committed": _committed(ctx.key, scope), **more}
    with _lock, open(os.environ["GROUP_TEST_CALLS"], "a") as f:
        f.write(json.dumps(line) + "\\n")


def put(order, n, *, ctx):
    _record(ctx, ctx.run_id)
    return n


def claim(slot, who, *, ctx):
    _record(ctx, "", who=who)
    return who
'''


def _program(folder: Path) -> IRProgram:
    (folder / "group.mn").write_text(SOURCE, "utf-8")
    (folder / "group_tools.py").write_text(TOOLS, "utf-8")
    ir, diagnostics = compile_file(folder / "group.mn")
    assert ir is not None, diagnostics
    return ir


def _calls(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


@pytest.fixture
def worker_store(
    store: Store, journal: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Store, IRProgram, Path]]:
    monkeypatch.setenv("GROUP_TEST_DB", journal)
    monkeypatch.setenv("GROUP_TEST_CALLS", str(tmp_path / "calls.jsonl"))
    yield store, _program(tmp_path), tmp_path / "calls.jsonl"


def _work(store: Store, concurrency: int) -> Worker:
    worker = Worker(store, concurrency=concurrency, idle_wait=0.05)
    worker.run(until_idle=True)
    assert store.committer is None, "the worker left group commit on"  # type: ignore[attr-defined]
    return worker


def test_no_effect_is_called_before_its_intent_is_committed(
    worker_store: tuple[Store, IRProgram, Path],
) -> None:
    store, program, calls = worker_store
    committers: list[GroupCommitter] = []
    use = store.use_group_commit

    def keep(on: bool) -> GroupCommitter | None:
        committer = use(on)
        if committer is not None:
            committers.append(committer)
        return committer

    store.use_group_commit = keep  # type: ignore[method-assign]
    for n in range(12):
        start_run(
            store, program, "chain", {"order": f"o{n}", "links": 6}, run_id=f"c{n}", detach=True
        )
    worker = _work(store, 12)
    assert worker.stats.ended == {"completed": 12}, [
        (r.run_id, r.error) for r in store.list_runs() if r.status != "completed"
    ][:2]
    seen = _calls(calls)
    assert len(seen) == 12 * 6
    assert all(call["committed"] for call in seen), [c for c in seen if not c["committed"]]
    [committer] = committers
    # The runs committed together: the calls above were made after group commits.
    assert committer.stats.grouped > 0, committer.stats


@pytest.mark.parametrize("same", [False, True], ids=["other-args", "same-args"])
def test_runs_racing_on_a_global_key_inside_groups_end_as_without(
    worker_store: tuple[Store, IRProgram, Path], same: bool
) -> None:
    store, program, calls = worker_store
    pairs = 8
    for n in range(pairs):
        for who in ("x", "y"):
            start_run(
                store,
                program,
                "race",
                {"slot": f"s{n}", "who": "x" if same else who},
                run_id=f"race{n}{who}",
                detach=True,
            )
    _work(store, 2 * pairs)
    seen = _calls(calls)
    assert all(call["committed"] for call in seen)
    for n in range(pairs):
        runs = [store.get_run(f"race{n}{who}") for who in ("x", "y")]
        assert all(r is not None for r in runs)
        ended = sorted(
            (r.status, r.result if r.status == "completed" else r.error["kind"]) for r in runs if r
        )
        row = store.ledger_get(f"slot:s{n}", run_id=None)
        assert row is not None and row.status == "done"
        called = [c for c in seen if c["key"] == f"slot:s{n}"]
        if same:
            # One result for the key, which both runs return (a second call is the same
            # wire key, as without groups when both intents are committed before either
            # result).
            assert ended == [("completed", "x"), ("completed", "x")]
            assert 1 <= len(called) <= 2
        else:
            # The second intent meets the first's row with other arguments.
            winner = row.result
            assert ended == sorted([("completed", winner), ("failed", "key_conflict")])
            assert [c["who"] for c in called] == [winner]
