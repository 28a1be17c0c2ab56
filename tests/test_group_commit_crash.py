"""Crash enumeration with group commit on (slow): a worker process executes three runs of
a chain of keyed effects at once, so that their commits go in groups, and is made to
crash at each of its commits in turn (`MNC_CRASH_AT_COMMIT`); with `written`, at each
member of that commit's group too (`MNC_CRASH_MEMBER`: the first K members written in
the group's transaction, the rest not, no COMMIT). Fresh workers then drive the runs to
their end. On SQLite also `after` (the group durable, no member told yet) and on
PostgreSQL `during` (COMMIT sent, its reply unread). On PostgreSQL the worker's store has
one connection, so one transaction in flight, as on SQLite (with its default four, three
runs would each have a transaction of their own).

The effect's tool waits for the next 30 ms tick of the clock before it returns, so that
the three runs' results reach the committer together and groups form; it also reads the
ledger from a connection of its own when it is called and notes whether its intent was
committed (no effect before its intent's group is durable).

The checks are those of `test_crash.py`: each run's result is that of an uninterrupted
run, every key has one result in the journal, each key was called at most once more per
crash that left it between intent and result, none was called after a crash that found
its result committed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mnlang.ir.compile import compile_file
from mnlang.runtime.run import start_run
from tests.crash.journals import Journals, journals_of
from tests.pg import STORES
from tests.test_crash import Crash, crash_point, ledger_keys, result_events

ROOT = Path(__file__).resolve().parent.parent
RUNS = 3
LINKS = 3

SOURCE = """
effect put(order: str, n: int) -> int {
  impl: "grouped_tools:put"
  key: "put:{order}:{n}"
}

workflow chain(order: str) -> int {
  total = 0
  for n in [1, 2, 3] {
    x = put(order, n)
    total = total + x
  }
  return total
}
"""

TOOLS = """
import os, sqlite3, time
from mnlang.effect_log import record


def _committed(ctx):
    url = os.environ["MNC_DB"]
    if url.startswith("postgresql://"):
        import psycopg
        from mnlang.stores.postgres import parse_url
        target = parse_url(url)
        with psycopg.connect(target.conninfo, autocommit=True) as conn:
            conn.execute(f"SET search_path = {target.schema}")
            query = "SELECT 1 FROM ledger WHERE scope = %s AND key = %s"
            return conn.execute(query, (ctx.run_id, ctx.key)).fetchone() is not None
    conn = sqlite3.connect(url)
    try:
        query = "SELECT 1 FROM ledger WHERE scope = ? AND key = ?"
        return conn.execute(query, (ctx.run_id, ctx.key)).fetchone() is not None
    finally:
        conn.close()


def put(order, n, *, ctx):
    record("put", ctx, {"order": order, "n": n, "committed": _committed(ctx)})
    time.sleep(0.03 - time.time() % 0.03)  # the runs return together: their commits group
    return n
"""

# Imports the worker once and forks a fresh worker process for each line it reads (the
# environment of that worker, as JSON), answering with its exit status: a crash point
# costs a fork rather than a Python start-up. It holds no thread or connection itself.
WORKERS = """
import json, os, sys
import mnlang.stores.postgres
from mnlang.runtime.worker import Worker
from mnlang.stores import open_store

for line in sys.stdin:
    env = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.environ.clear()
        os.environ.update(env)
        sys.path.insert(0, env["TOOLS_DIR"])
        url = env["MNC_DB"]
        if url.startswith("postgresql://"):
            # One connection: one transaction in flight, so that commits group as on SQLite.
            store = mnlang.stores.postgres.PostgresStore(url, pool_size=1)
        else:
            store = open_store(url)
        with store:
            Worker(store, concurrency=3, lease_ttl=5, idle_wait=0.05).run(until_idle=True)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status), flush=True)
"""


class Forks:
    """The process that forks the workers."""

    def __init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MNC_")}
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKERS],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**env, "PYTHONPATH": str(ROOT)},
        )

    def worker(self, env: dict[str, str]) -> int:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(env) + "\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline())

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture
def forks() -> Iterator[Forks]:
    made = Forks()
    yield made
    made.close()


@pytest.fixture(params=STORES)
def journals(request: pytest.FixtureRequest) -> Iterator[Journals]:
    yield from journals_of(request)


@dataclass
class Driven:
    crashes: list[Crash]
    results: dict[str, object]


def _start(journals: Journals, folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "chain.mn").write_text(SOURCE, "utf-8")
    (folder / "grouped_tools.py").write_text(TOOLS, "utf-8")
    ir, diagnostics = compile_file(folder / "chain.mn")
    assert ir is not None, diagnostics
    with journals.open(folder) as store:
        for n in range(RUNS):
            start_run(store, ir, "chain", {"order": f"o{n}"}, run_id=f"r{n}", detach=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNC_")}
    env.update(
        MNC_DB=journals.url(folder),
        MNC_EXAMPLE_LEDGER=str(folder / "ledger.jsonl"),
        MNC_COMMIT_MS="0",
        MNC_SLOW_CALL_MS="1000000000",
        TOOLS_DIR=str(folder),
    )
    return env


def drive(journals: Journals, forks: Forks, folder: Path, plan: dict[str, str]) -> Driven:
    """A worker with the crash plan, then workers without one until every run ended."""
    env = _start(journals, folder)
    crashes: list[Crash] = []
    for process in range(10):
        status = forks.worker({**env, **(plan if process == 0 else {})})
        if status == 0:
            break
        assert status == 137, f"the worker exited {status}"
        journals.settle()
        with journals.open(folder) as store:
            crashes.append(crash_point(store, folder / "ledger.jsonl"))
        journals.expire_leases(folder)
    with journals.open(folder) as store:
        results = {}
        for n in range(RUNS):
            record = store.get_run(f"r{n}")
            assert record is not None
            results[record.run_id] = (record.status, record.result)
    return Driven(crashes, results)


def check(driven: Driven, journals: Journals, folder: Path) -> None:
    assert driven.results == {f"r{n}": ("completed", 6) for n in range(RUNS)}
    keys = ledger_keys(folder / "ledger.jsonl")
    expected = {f"put:o{n}:{i}" for n in range(RUNS) for i in (1, 2, 3)}
    assert set(keys) == expected
    lines = (folder / "ledger.jsonl").read_text("utf-8").splitlines()
    assert all(json.loads(line)["args"]["committed"] for line in lines), "a call before its intent"
    with journals.open(folder) as store:
        assert result_events(store) == dict.fromkeys(expected, 1)
    for key in expected:
        allowed = 1 + sum(key in crash.pending for crash in driven.crashes)
        assert keys.count(key) <= allowed, (key, keys.count(key), allowed)
    for crash in driven.crashes:
        again = [key for key in keys[crash.calls :] if key in crash.done]
        assert not again, f"called after their results were committed: {again}"
    journals.drop(folder)


CASES = [
    ("sqlite", "written"),
    ("sqlite", "after"),
    ("postgres", "written"),
    ("postgres", "during"),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("journals", "when"), CASES, ids=[f"{s}-{w}" for s, w in CASES], indirect=["journals"]
)
def test_crash_at_every_group_and_every_member(
    when: str, journals: Journals, forks: Forks, tmp_path: Path
) -> None:
    started = time.monotonic()
    tried = inside = 0
    at = 0
    while True:
        at += 1
        member = 0
        crashed_here = False
        while True:
            member += 1
            plan = {"MNC_CRASH_AT_COMMIT": str(at), "MNC_CRASH_WHEN": when}
            if when == "written":
                plan["MNC_CRASH_MEMBER"] = str(member)
            folder = tmp_path / f"{at}-{member}"
            driven = drive(journals, forks, folder, plan)
            if not driven.crashes:
                journals.drop(folder)
                break  # fewer members than `member` (or no commit `at`)
            check(driven, journals, folder)
            tried += 1
            crashed_here = True
            inside += member > 1
            if when != "written":
                break
        if not crashed_here:
            break
    took = time.monotonic() - started
    print(f"{journals.kind} {when}: {tried} crash points ({inside} inside groups), {took:.0f} s")
    assert at > 4, "too few commits to test"
    if when == "written":
        assert inside >= 2, "the runs' commits did not go in groups"
