"""Crash safety: a run crashed at any commit and resumed ends as if it had never crashed.

Two harnesses. In process (fast, not slow-marked): a store wrapper stops the run at its
N-th commit (before or after the commit) by raising, and the run is resumed on the same
journal. As processes (slow-marked, the real thing): `mnc run` with the store's crash
hook (`MNC_CRASH_AT_COMMIT=N`, `MNC_CRASH_WHEN`) exits like a SIGKILL at its N-th commit,
and `mnc resume` takes over until the run ends. Every N is tried, for every runnable
example, for `tests/crash/crash.mn` (tools with retries, keyed effects in a loop and a
`parallel for`, a `while`, a global key, a `try`, a `once` effect) and for
`tests/crash/chain.mn` (keyed effects chained through pure states, so that each result
commit carries the next intent); in process also `tests/crash/quorum.mn` (a 2-of-3
quorum whose loser is inside a `once` effect when the quorum is reached). The process
harness runs on SQLite and on PostgreSQL (a schema per crash on the session's private
server, `tests/crash/journals.py`); there the crash moments are `before`, `written` (the
batch sent, no COMMIT), `during` (COMMIT sent, its reply unread) and `after` (see
`mnlang.stores.crashpoints`).

After each crashed run the checks are:
- the final status and output equal those of an uninterrupted run;
- every effect key of the uninterrupted run is committed (`done`) in the store's ledger,
  with exactly one result event in the journal;
- in the tools' own ledger file (`MNC_EXAMPLE_LEDGER`), each key was called once, plus at
  most once more per crash that left it between its committed intent and its result;
  a `once` effect is never called twice: it waits on a repair checkpoint instead;
- no effect was called after a crash that found its result committed (the ledger file's
  lines after the crash name none of those keys).

When a run waits, the test answers like a person would: it approves checkpoints, sends
the events the workflow waits for, and settles repairs by looking at the tool's ledger
(called: mark it done; not called: retry).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mnlang.ir.compile import compile_file
from mnlang.ir.load import dump_ir
from mnlang.ir.model import IRProgram
from mnlang.runtime.config import RuntimeConfig
from mnlang.runtime.run import RunOutcome, resume_run, start_run
from mnlang.stores.base import Batch, CommitResult, Lease, NewRun, Store
from mnlang.stores.sqlite import SQLiteStore
from tests.crash.journals import Journals, journals_of
from tests.pg import STORES

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CRASH = Path(__file__).resolve().parent / "crash"
COMMIT_EVERY = 4
RUN_ID = "crash-run"


@dataclass(frozen=True)
class Scenario:
    name: str
    source: Path
    input: Path
    workflow: str | None = None
    masked: frozenset[str] = frozenset()
    """Result fields that legitimately differ between runs (fresh ids, durations)."""
    events: dict[str, Any] = field(default_factory=dict)
    """Payloads to send when the run waits for these events."""
    commit_every: int = COMMIT_EVERY
    short_wait_s: float = 0.0
    """Timers due within this window are waited for in process (`RuntimeConfig`)."""


SCENARIOS = [
    Scenario("crashflow", CRASH / "crash.mn", CRASH / "input.json"),
    # Room for the pure states of its loops, so that every link of its chains rides.
    Scenario("chain", CRASH / "chain.mn", CRASH / "chain_input.json", commit_every=16),
    Scenario("refund", EXAMPLES / "refund" / "refund.mn", EXAMPLES / "refund" / "input.json"),
    Scenario(
        "research", EXAMPLES / "research" / "research.mn", EXAMPLES / "research" / "input.json"
    ),
    Scenario(
        "digest",
        EXAMPLES / "digest" / "digest.mn",
        EXAMPLES / "digest" / "input.json",
        events={"payment_received": {"sponsor": "Acme", "amount": "150.00"}},
    ),
    Scenario(
        "invoice",
        EXAMPLES / "invoice" / "invoice.mn",
        EXAMPLES / "invoice" / "input.json",
        events={"bank_settlement": {"payment_id": "p-1", "settled": True, "reference": "ref-1"}},
    ),
    Scenario(
        "pipeline",
        EXAMPLES / "pipeline" / "pipeline.mn",
        EXAMPLES / "pipeline" / "input.json",
        workflow="pipeline",
        masked=frozenset({"load_id", "took"}),
    ),
]
SHORT_WAIT = Scenario(
    "short_wait", CRASH / "short_wait.mn", CRASH / "short_wait_input.json", short_wait_s=5.0
)
"""A `wait` and a durable retry backoff that the run waits for in process (a crash while
it sleeps leaves it `running`, with its timer committed)."""
QUORUM = Scenario("quorum", CRASH / "quorum.mn", CRASH / "quorum_input.json")
"""A 2-of-3 quorum whose loser is inside a `once` effect when the quorum is reached."""
IN_PROCESS = [
    s for s in SCENARIOS if s.name in ("crashflow", "chain", "refund", "digest", "invoice")
] + [SHORT_WAIT, QUORUM]
"""Scenarios without child runs or process-isolated tools, which the in-process harness
can stop cleanly (a child run's commit runs on a worker thread)."""

_programs: dict[Path, IRProgram] = {}


def program_of(scenario: Scenario) -> IRProgram:
    if scenario.source not in _programs:
        ir, diagnostics = compile_file(scenario.source)
        assert ir is not None, diagnostics
        _programs[scenario.source] = ir
    return _programs[scenario.source]


def workflow_of(scenario: Scenario) -> str:
    if scenario.workflow is not None:
        return scenario.workflow
    return next(name for name in program_of(scenario).workflows if "." not in name)


# --- what happened: the journal, the ledgers, the tools' ledger file -----------------------


def all_runs(store: Store) -> list[str]:
    return [r.run_id for r in store.list_runs(limit=10_000)]


def pending_intents(store: Store) -> set[str]:
    """Effect keys whose intent is committed and whose result is not, in any run."""
    pending: set[str] = set()
    for run_id in all_runs(store):
        intents, done = set(), set()
        for event in store.read_journal(run_id):
            if event.kind == "intent":
                intents.add(event.data["key"])
            elif event.kind in ("effect", "replayed", "repaired"):
                done.add(event.data["key"])
        pending |= intents - done
    return pending


def committed_results(store: Store) -> set[str]:
    """Effect keys whose result is committed (or was found committed), in any run."""
    done: set[str] = set()
    for run_id in all_runs(store):
        for event in store.read_journal(run_id):
            if event.kind in ("effect", "replayed", "repaired"):
                done.add(event.data["key"])
    return done


def result_events(store: Store) -> Counter[str]:
    """How many effect results each key has in the journals of every run."""
    counts: Counter[str] = Counter()
    for run_id in all_runs(store):
        for event in store.read_journal(run_id):
            if event.kind in ("effect", "repaired"):
                counts[event.data["key"]] += 1
    return counts


def ledger_keys(path: Path) -> list[str]:
    """The keys of the effect calls in the tools' ledger file, in call order."""
    if not path.exists():
        return []
    lines = path.read_text("utf-8").splitlines()
    return [json.loads(line)["key"] for line in lines if line.strip()]


def ledger_calls(path: Path) -> Counter[str]:
    return Counter(ledger_keys(path))


@dataclass(frozen=True)
class Crash:
    """What a crash left: keys between intent and result, keys with a committed result,
    and how many calls the tools' ledger file held."""

    pending: set[str]
    done: set[str]
    calls: int


def crash_point(store: Store, ledger: Path) -> Crash:
    """Look at the journal and the ledger file right after a crash (no call is running)."""
    return Crash(pending_intents(store), committed_results(store), len(ledger_keys(ledger)))


def answer_waits(store: Store, run_id: str, scenario: Scenario, ledger: Path) -> None:
    """Do what a person would for a waiting run: decide, signal, repair."""
    called = ledger_calls(ledger)
    for run in all_runs(store):
        for checkpoint in store.open_checkpoints(run):
            request = checkpoint.request
            if checkpoint.name == "repair":
                assert request["result_type"] == "bool", request
                decision: dict[str, Any] = (
                    {"choice": "mark_done", "result": True}
                    if called[request["key"]]
                    else {"choice": "retry"}
                )
            else:
                options = request["options"]
                decision = {"choice": "approve" if "approve" in options else options[0]}
            store.decide_checkpoint(run, checkpoint.checkpoint_id, decision, by="tester")
    record = store.get_run(run_id)
    assert record is not None
    for name in record.waiting_for:
        store.send_signal(run_id, name, scenario.events[name], signal_id=f"{name}-1")


@dataclass
class Report:
    status: str
    result: Any
    crashes: list[Crash]
    processes: int = 0


def masked(result: Any, fields: frozenset[str]) -> Any:
    if isinstance(result, dict):
        return {k: v for k, v in result.items() if k not in fields}
    return result


def check_against(
    reference: Report,
    crashed: Report,
    store: Store,
    ledger: Path,
    scenario: Scenario,
    ref_calls: Counter[str],
) -> None:
    assert crashed.status == reference.status
    assert masked(crashed.result, scenario.masked) == masked(reference.result, scenario.masked)
    committed = result_events(store)
    for key in ref_calls:
        assert committed[key] == 1, f"{key}: {committed[key]} results committed"
    keys = ledger_keys(ledger)
    calls = Counter(keys)
    assert set(calls) == set(ref_calls), "a different set of effects was called"
    for key, count in calls.items():
        allowed = 1 + sum(1 for crash in crashed.crashes if key in crash.pending)
        if key.startswith("once:"):
            allowed = 1
        assert count <= allowed, f"{key} called {count} times, at most {allowed} allowed"
    for crash in crashed.crashes:
        again = [key for key in keys[crash.calls :] if key in crash.done]
        assert not again, f"called after their results were committed: {again}"


# --- the in-process harness -------------------------------------------------------------


class SimulatedCrash(BaseException):
    """Stops a run where a real crash would (a `BaseException`, so nothing catches it)."""


class CrashingStore:
    """A store that stops the run at its N-th commit, before or after writing it."""

    def __init__(self, inner: SQLiteStore, at: int | None, when: str) -> None:
        self.inner = inner
        self.at = at
        self.when = when
        self.commits = 0

    def commit(self, batch: Batch) -> CommitResult:
        self.commits += 1
        if self.commits == self.at and self.when == "before":
            raise SimulatedCrash()
        result = self.inner.commit(batch)
        if self.commits == self.at and self.when == "after":
            raise SimulatedCrash()
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def start_or_resume(
        self,
        execution: int,
        program: IRProgram,
        workflow: str,
        given: Any,
        run_id: str,
        config: RuntimeConfig,
    ) -> RunOutcome:
        """The run's `execution`-th go on this store: the first (0) starts it, each later
        one resumes it from its last commit."""
        if execution == 0:
            return start_run(self, program, workflow, given, run_id=run_id, config=config)  # type: ignore[arg-type]
        return resume_run(self, run_id, program=program, config=config)  # type: ignore[arg-type]


def _settle_threads() -> None:
    """Let the calls a stopped run left on its worker threads finish, as a killed process's
    would have stopped: nothing of them may land after the test starts counting."""
    deadline = time.monotonic() + 10
    while any(t.name.startswith("mnc-call") for t in threading.enumerate()):
        assert time.monotonic() < deadline, "worker threads did not finish"
        time.sleep(0.005)


def _break_lease(store: SQLiteStore, run_id: str) -> None:
    record = store.get_run(run_id)
    if record is not None and record.lease_owner is not None:
        store.release_lease(
            Lease(run_id, record.lease_owner, record.lease_epoch, record.lease_expires_at or 0)
        )


def drive_in_process(
    scenario: Scenario, tmp: Path, at: int | None, when: str = "before"
) -> tuple[Report, SQLiteStore, Path, int]:
    """Run the scenario, stopping at commit `at` once; returns the report, the store, the
    tools' ledger file and how many commits the first execution made."""
    ledger = tmp / "ledger.jsonl"
    os.environ["MNC_EXAMPLE_LEDGER"] = str(ledger)
    store = SQLiteStore(tmp / "journal.db")
    config = RuntimeConfig(
        commit_every=scenario.commit_every,
        commit_ms=0,
        slow_call_ms=1e9,
        models="scripted",
        short_wait_s=scenario.short_wait_s,
    )
    program = program_of(scenario)
    given = json.loads(scenario.input.read_text("utf-8"))
    crashing = CrashingStore(store, at, when)
    crashes: list[Crash] = []
    outcome = None
    for execution in range(20):
        try:
            outcome = crashing.start_or_resume(
                execution, program, workflow_of(scenario), given, RUN_ID, config
            )
        except SimulatedCrash:
            _settle_threads()
            crashes.append(crash_point(store, ledger))
            _break_lease(store, RUN_ID)
            record = store.get_run(RUN_ID)
            if record is not None and record.status == "waiting":
                answer_waits(store, RUN_ID, scenario, ledger)
            continue
        if outcome.status != "waiting":
            break
        answer_waits(store, RUN_ID, scenario, ledger)
    assert outcome is not None and outcome.status != "waiting", "the run never ended"
    return Report(outcome.status, outcome.result, crashes), store, ledger, crashing.commits


def crash_in_process_at(
    scenario: Scenario, tmp: Path, at: int, when: str
) -> tuple[Report, SQLiteStore, Path]:
    """`drive_in_process` stopping at commit `at`. A run's commit count is not fixed: the
    results of two calls that end together (a `parallel` block's) share a commit or not,
    by timing. A run that ended in fewer commits than `at` never reached the crash and is
    driven again, in a fresh journal, up to five times."""
    for attempt in range(5):
        report, store, ledger, commits = drive_in_process(scenario, tmp / str(attempt), at, when)
        if report.crashes or commits >= at:
            break
        store.close()
    return report, store, ledger


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("scenario", IN_PROCESS, ids=lambda s: s.name)
def test_in_process_crash_at_every_commit(scenario: Scenario, when: str, tmp_path: Path) -> None:
    reference, store, ledger, commits = drive_in_process(scenario, tmp_path / "ref", None)
    ref_calls = ledger_calls(ledger)
    assert ref_calls and all(n == 1 for n in ref_calls.values())
    store.close()
    assert commits >= 3
    for at in range(1, commits + 1):
        report, store, ledger = crash_in_process_at(scenario, tmp_path / f"{when}{at}", at, when)
        assert len(report.crashes) == 1
        check_against(reference, report, store, ledger, scenario, ref_calls)
        store.close()


class RecordingStore:
    """A store that keeps each batch's ledger writes, as (key, status) pairs."""

    def __init__(self, inner: SQLiteStore) -> None:
        self.inner = inner
        self.commits: list[list[tuple[str, str]]] = []

    def commit(self, batch: Batch) -> CommitResult:
        self.commits.append([(put.key, put.status) for put in batch.ledger])
        return self.inner.commit(batch)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_an_intent_rides_in_the_result_commit_before_it(tmp_path: Path) -> None:
    """Along a chain of keyed effects with only pure states between, an effect's result
    commit carries the next intent: one commit per effect. Never after a tool call, after
    a join, or for a `once` effect."""
    scenario = next(s for s in SCENARIOS if s.name == "chain")
    os.environ["MNC_EXAMPLE_LEDGER"] = str(tmp_path / "ledger.jsonl")
    store = RecordingStore(SQLiteStore(tmp_path / "journal.db"))
    config = RuntimeConfig(
        commit_every=scenario.commit_every, commit_ms=0, slow_call_ms=1e9, models="scripted"
    )
    given = json.loads(scenario.input.read_text("utf-8"))
    outcome = start_run(store, program_of(scenario), "chain", given, run_id="c", config=config)  # type: ignore[arg-type]
    assert outcome.status == "completed", outcome.error
    commits = store.commits

    def commit_of(key: str, status: str) -> list[tuple[str, str]]:
        [found] = [c for c in commits if (key, status) in c]
        return found

    def rides(done: str, intent: str) -> bool:
        return (intent, "intent") in commit_of(done, "done")

    # `for` with `if`, `match`, `log`, `yield`; out of it into a `while` with a `try`.
    chain = [f"put:o-9:{n}" for n in (1, 2, 3, 4, 5, 100, 101, 102)] + ["mark:o-9:first"]
    for done, intent in itertools.pairwise(chain):
        assert rides(done, intent), (done, commits)
    assert rides("mark:o-9:first", "mark:o-9:m-first")
    # `again` has the key and arguments of `first`: its intent meets the done row in the
    # same commit, which answers it with the stored result, without a call.
    assert [("mark:o-9:m-first", "done"), ("mark:o-9:first", "intent")] in commits
    replayed = [e for e in store.read_journal("c") if e.kind == "replayed"]
    assert [e.data["key"] for e in replayed] == ["mark:o-9:first"]
    assert ledger_calls(tmp_path / "ledger.jsonl")["mark:o-9:first"] == 1
    # A tool call between, a join before (new items, the block after `parallel`) or a
    # `once` effect: the intent has a commit of its own.
    once = next(key for c in commits for key, _ in c if key.startswith("once:"))
    alone = ["mark:o-9:after-tool-100", "mark:o-9:joined-m-left-m-right", once]
    alone += [f"put:o-9:{200 + i}" for i in given["items"]]
    for key in alone:
        assert commit_of(key, "intent") == [(key, "intent")], (key, commits)
    # Items run two at a time: the first result of an item always carries its next intent.
    items = next(c for c in commits if any(k.startswith("put:o-9:20") for k, s in c if s == "done"))
    assert any(k.startswith("mark:o-9:item-") for k, s in items if s == "intent"), items
    # One commit per effect where the chain rides: fewer commits than intents + results.
    effects = sum(1 for c in commits for _, status in c if status == "done")
    assert len(commits) < 2 * effects - len(chain)
    store.close()


class CrashingBeforeResult:
    """A store that stops the run before the commit of the result of the effect whose key
    starts with `prefix` (its place among the commits varies: two results that end
    together share a commit or not)."""

    def __init__(self, inner: SQLiteStore, prefix: str) -> None:
        self.inner = inner
        self.prefix = prefix

    def commit(self, batch: Batch) -> CommitResult:
        if any(p.key.startswith(self.prefix) and p.status == "done" for p in batch.ledger):
            raise SimulatedCrash()
        return self.inner.commit(batch)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_once_effect_interrupted_waits_for_a_repair(tmp_path: Path) -> None:
    """A crash between the `once` effect's intent and its result: no second call, a repair."""
    scenario = SCENARIOS[0]
    ledger = tmp_path / "crash" / "ledger.jsonl"
    os.environ["MNC_EXAMPLE_LEDGER"] = str(ledger)
    inner = SQLiteStore(tmp_path / "crash" / "journal.db")
    config = RuntimeConfig(
        commit_every=COMMIT_EVERY, commit_ms=0, slow_call_ms=1e9, models="scripted"
    )
    given = json.loads(scenario.input.read_text("utf-8"))
    with pytest.raises(SimulatedCrash):
        start_run(
            CrashingBeforeResult(inner, "once:"),  # type: ignore[arg-type]
            program_of(scenario),
            "crashflow",
            given,
            run_id=RUN_ID,
            config=config,
        )
    _settle_threads()
    _break_lease(inner, RUN_ID)
    outcome = resume_run(inner, RUN_ID, program=program_of(scenario), config=config)
    assert outcome.status == "waiting"
    [repair] = inner.open_checkpoints(RUN_ID)
    assert repair.name == "repair" and repair.request["effect"] == "announce"
    key = repair.request["key"]
    assert ledger_calls(ledger)[key] == 1
    row = inner.ledger_get(key, run_id=RUN_ID)
    assert row is not None and row.status == "unknown"
    inner.decide_checkpoint(
        RUN_ID, repair.checkpoint_id, {"choice": "mark_done", "result": True}, by="ops"
    )
    outcome = resume_run(inner, RUN_ID, program=program_of(scenario), config=config)
    assert outcome.status == "completed" and outcome.result["announced"] is True
    assert ledger_calls(ledger)[key] == 1
    row = inner.ledger_get(key, run_id=RUN_ID)
    assert row is not None and row.status == "done"
    inner.close()


# --- the process harness ----------------------------------------------------------------


SQLITE = Journals(None)
"""The journals of the tests that run on SQLite only."""


@pytest.fixture(params=STORES)
def journals(request: pytest.FixtureRequest) -> Iterator[Journals]:
    yield from journals_of(request)


def mnc(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mnlang.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def ir_file(scenario: Scenario, folder: Path) -> Path:
    path = folder / f"{scenario.name}.json"
    if not path.exists():
        path.write_text(dump_ir(program_of(scenario)), "utf-8")
    return path


def base_env(
    tmp: Path, commit_every: int = COMMIT_EVERY, journals: Journals = SQLITE
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNC_")}
    env.update(
        MNC_DB=journals.url(tmp),
        MNC_EXAMPLE_LEDGER=str(tmp / "ledger.jsonl"),
        MNC_COMMIT_EVERY=str(commit_every),
        MNC_COMMIT_MS="0",
        MNC_SLOW_CALL_MS="1000000000",
        MNC_MODELS="scripted",
        PYTHONPATH=str(ROOT),
    )
    return env


def drive_processes(
    scenario: Scenario,
    tmp: Path,
    ir: Path,
    crash: Callable[[int], dict[str, str]],
    journals: Journals = SQLITE,
) -> Report:
    """`mnc run`, then `mnc resume` until the run ends; `crash(i)` gives the crash settings
    of the i-th process (from 0)."""
    tmp.mkdir(parents=True, exist_ok=True)
    env = base_env(tmp, scenario.commit_every, journals)
    crashes: list[Crash] = []
    args = ["run", str(ir), "--id", RUN_ID, "--input-file", str(scenario.input), "--json"]
    if scenario.workflow:
        args += ["--workflow", scenario.workflow]
    process = 0
    done = mnc(args, {**env, **crash(0)})
    while True:
        process += 1
        assert process < 300, "the run does not make progress"
        if done.returncode in (0, 1):
            outcome = json.loads(done.stdout)
            return Report(outcome["status"], outcome["result"], crashes, process)
        if done.returncode not in (3, 137):
            pytest.fail(f"mnc exited {done.returncode}: {done.stderr}")
        journals.settle()
        with journals.open(tmp) as store:
            if done.returncode == 137:
                crashes.append(crash_point(store, tmp / "ledger.jsonl"))
            record = store.get_run(RUN_ID)
            # A crash right after the commit that paused the run leaves it waiting too.
            if record is not None and record.status == "waiting":
                answer_waits(store, RUN_ID, scenario, tmp / "ledger.jsonl")
        done = mnc(["resume", RUN_ID, "--json"], {**env, **crash(process)})


def reference_run(
    scenario: Scenario, tmp: Path, ir: Path, journals: Journals = SQLITE
) -> tuple[Report, Counter[str]]:
    report = drive_processes(scenario, tmp / "reference", ir, lambda i: {}, journals)
    calls = ledger_calls(tmp / "reference" / "ledger.jsonl")
    assert calls and all(n == 1 for n in calls.values())
    return report, calls


def check_run(
    reference: Report,
    report: Report,
    tmp: Path,
    scenario: Scenario,
    ref_calls: Counter[str],
    journals: Journals = SQLITE,
) -> None:
    with journals.open(tmp) as store:
        check_against(reference, report, store, tmp / "ledger.jsonl", scenario, ref_calls)
    journals.drop(tmp)


@dataclass(frozen=True)
class Enumeration:
    """Crash every process of a scenario's run at the commit boundaries of one moment."""

    store: str
    scenario: Scenario
    when: str
    stride: int = 1
    """1: at every boundary; k: at every k-th, from a first one fixed by the case."""

    def first(self, process: int) -> int:
        return 1 + zlib.crc32(f"{self.scenario.name}-{self.when}-{process}".encode()) % self.stride

    @property
    def id(self) -> str:
        every = "" if self.stride == 1 else f"-every{self.stride}"
        return f"{self.store}-{self.scenario.name}-{self.when}{every}"


POSTGRES_STRIDES = {
    "crashflow": 1,
    "refund": 1,
    "chain": 4,
    "digest": 4,
    "invoice": 5,
    "research": 8,
    "pipeline": 8,
}
"""On PostgreSQL every boundary of the crash workflow (each feature of the runtime that
commits: retries, loops, `parallel for`, `while`, global keys, `try`, a `once` effect)
and of `refund`, which is short; every k-th of the others, to keep the variant to a few
minutes."""


def enumerations() -> list[Enumeration]:
    """SQLite: `before` and `after` everywhere; its `during` (which is its `written`: it
    cannot interrupt its own COMMIT) loses the batch like `before`, tried on the crash
    workflow. PostgreSQL: `written` (the batch sent, no COMMIT: the server must roll it
    back) and `during` (COMMIT sent, its reply unread: the server commits it). They leave
    the journals that `before` and `after` leave, through the server's handling of a
    client that died in the middle of a transaction, so those two are not repeated."""
    cases: list[Enumeration] = []
    for scenario in SCENARIOS:
        crashflow = scenario.name == "crashflow"
        for when in ["before", *(["during"] if crashflow else []), "after"]:
            cases.append(Enumeration("sqlite", scenario, when))
        for when in ["written", "during"]:
            stride = POSTGRES_STRIDES[scenario.name]
            cases.append(Enumeration("postgres", scenario, when, stride))
    return cases


@pytest.mark.slow
@pytest.mark.parametrize(
    ("journals", "case"),
    [pytest.param(case.store, case, id=case.id) for case in enumerations()],
    indirect=["journals"],
)
def test_process_crash_at_every_commit(
    case: Enumeration, journals: Journals, tmp_path: Path
) -> None:
    scenario, when = case.scenario, case.when
    ir = ir_file(scenario, tmp_path)
    reference, ref_calls = reference_run(scenario, tmp_path, ir, journals)
    tried = 0
    started = time.monotonic()
    # Process p of a run that did not crash before is the p-th process of the reference
    # (the first `mnc run`, then a `mnc resume` after each wait); crash it at every commit.
    for process in range(reference.processes):
        at = case.first(process) - case.stride
        while True:
            at += case.stride
            folder = tmp_path / f"{when}-{process}-{at}"
            plan = {"MNC_CRASH_AT_COMMIT": str(at), "MNC_CRASH_WHEN": when}

            def crash(
                i: int, process: int = process, plan: dict[str, str] = plan
            ) -> dict[str, str]:
                return plan if i == process else {}

            report = drive_processes(scenario, folder, ir, crash, journals)
            if not report.crashes:
                journals.drop(folder)
                break
            check_run(reference, report, folder, scenario, ref_calls, journals)
            tried += 1
    took = time.monotonic() - started
    print(f"{case.id}: {tried} crash points, {took:.0f} s")
    assert tried and tried * case.stride > 3, "the run made too few commits to test"


IN_EVERY_PROCESS = [
    ("sqlite", 2, "after"),
    ("sqlite", 2, "before"),
    ("sqlite", 3, "after"),
    ("sqlite", 5, "before"),
    ("postgres", 2, "during"),
    ("postgres", 5, "written"),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("journals", "at", "when"),
    IN_EVERY_PROCESS,
    ids=[f"{store}-{at}-{when}" for store, at, when in IN_EVERY_PROCESS],
    indirect=["journals"],
)
def test_process_crash_in_every_process(
    at: int, when: str, journals: Journals, tmp_path: Path
) -> None:
    """Every process, the first run and each resume, crashes at its `at`-th commit.

    (Not at the first: a `once` effect retried after a repair commits its new intent
    first, so a process that always dies right after its first commit could never call it;
    it would ask for a repair every time, which is the right answer.)"""
    scenario = SCENARIOS[0]
    ir = ir_file(scenario, tmp_path)
    reference, ref_calls = reference_run(scenario, tmp_path, ir, journals)
    folder = tmp_path / "crashing"
    report = drive_processes(
        scenario,
        folder,
        ir,
        lambda i: {"MNC_CRASH_AT_COMMIT": str(at), "MNC_CRASH_WHEN": when},
        journals,
    )
    assert len(report.crashes) >= 3
    check_run(reference, report, folder, scenario, ref_calls, journals)


JOIN_SOURCE = """
tool t(n: int) -> int {
  impl: "join_tools:t"
}

workflow joins(n: int) -> int {
  a = t(n)
  b = a + 1
  parallel {
    x = t(a)
    {
      y = t(b)
      z = t(y)
    }
  }
  c = [1, 2]
  ys = parallel for i in c {
    w = t(i)
    yield w
  }
  return x + z + sum(ys)
}
"""


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_committed_step_is_not_run_again(tmp_path: Path, when: str) -> None:
    """Committing after every state, crash at every commit: no step whose result was
    committed runs again (each state of each branch has one result in the journal)."""
    (tmp_path / "joins.mn").write_text(JOIN_SOURCE, "utf-8")
    (tmp_path / "join_tools.py").write_text("def t(n):\n    return n + 1\n", "utf-8")
    ir, diagnostics = compile_file(tmp_path / "joins.mn")
    assert ir is not None, diagnostics
    config = RuntimeConfig(commit_every=1, commit_ms=0, slow_call_ms=1e9, models="scripted")
    at = 0
    while True:
        at += 1
        store = SQLiteStore(tmp_path / f"{when}-{at}.db")
        crashing = CrashingStore(store, at, when)
        try:
            outcome = start_run(crashing, ir, "joins", {"n": 1}, run_id="j", config=config)  # type: ignore[arg-type]
        except SimulatedCrash:
            _settle_threads()
            _break_lease(store, "j")
            outcome = resume_run(store, "j", program=ir, config=config)
        else:
            break
        assert outcome.status == "completed" and outcome.result == 13
        results = Counter((e.state, e.branch) for e in store.read_journal("j") if e.kind == "tool")
        assert results and max(results.values()) == 1, results
        store.close()
    assert at > 10


# --- what `during` means on PostgreSQL --------------------------------------------------

# A writer that stops itself at the chosen moment of its second commit, with its lease.
STOPPED_AT_A_MOMENT = """
    import os, signal, sys
    from mnlang.stores import crashpoints
    from mnlang.stores.base import Batch, NewEvent
    from mnlang.stores.postgres import PostgresStore

    commits = 0

    def point(self, moment):
        global commits
        if moment == "before":
            commits += 1
        if moment == sys.argv[2] and commits == 2:
            os.kill(os.getpid(), signal.SIGSTOP)

    crashpoints.CrashPlan.point = point
    store = PostgresStore(sys.argv[1])
    lease = store.acquire_lease("r1", "w", ttl=60)
    for i in (1, 2):
        store.commit(Batch("r1", lease=lease, events=[NewEvent("step", {"i": i})]))
        print("committed", i, flush=True)
"""


@pytest.mark.parametrize(
    ("moment", "seen", "session"),
    [
        ("written", [1], ("idle in transaction", True)),
        # Out of its transaction but `active`: the server executed COMMIT and waits for the
        # Sync that would make it send the reply.
        ("during", [1, 2], ("active", False)),
    ],
)
def test_during_on_postgres_is_after_commit_was_sent_and_before_its_reply(
    pg_url: str, moment: str, seen: list[int], session: tuple[str, bool]
) -> None:
    """Stopped at `during`, the writer has sent COMMIT and the server has applied it (its
    session is out of its transaction, another session sees the batch), yet `commit` has
    not returned: the reply is unread, so a crash there leaves the outcome unknown to the
    process. At `written` the batch is sent but uncommitted, in an open transaction."""
    # Imported here: the rest of the module runs where psycopg is not installed.
    import psycopg

    from mnlang.stores.postgres import PostgresStore, parse_url

    with PostgresStore(pg_url) as store:
        store.create_run(NewRun("r1", "wf", {}))
        env = {k: v for k, v in os.environ.items() if not k.startswith("MNC_")}
        writer_url = f"{pg_url}&application_name=writer"
        writer = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(STOPPED_AT_A_MOMENT), writer_url, moment],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**env, "PYTHONPATH": str(ROOT)},
        )
        try:
            assert writer.stdout is not None and writer.stdout.readline() == "committed 1\n"
            deadline = time.monotonic() + 10
            while Path(f"/proc/{writer.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
                assert time.monotonic() < deadline, "the writer did not stop"
                time.sleep(0.01)
            # The COMMIT the writer sent before it stopped may still be on its way to the
            # server on a loaded machine: wait (boundedly) for the server to have it.
            deadline = time.monotonic() + 10
            while True:
                found = [e.data["i"] for e in store.read_journal("r1")]
                with psycopg.connect(parse_url(pg_url).conninfo, autocommit=True) as conn:
                    busy = conn.execute(
                        "SELECT state, xact_start IS NOT NULL FROM pg_stat_activity "
                        "WHERE application_name = 'writer' AND state <> 'idle'"
                    ).fetchall()
                if (found, busy) == (seen, [session]) or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert found == seen
            assert busy == [session]
        finally:
            writer.kill()
            out, _ = writer.communicate(timeout=30)
    assert "committed 2" not in out
