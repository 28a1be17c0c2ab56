"""Tools' `limit:` held across worker processes on PostgreSQL (slow): two `mnc worker`
processes share one journal; a tool with `concurrent: 1` is never called twice at once
by either of them, and a tool with `per_second: 10` never starts twice within 0.1 s."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("psycopg", reason="psycopg is not installed (mnlang[postgres])")

from mnlang.api import load_program
from mnlang.runtime.run import start_run
from mnlang.stores.postgres import PostgresStore

RUNS = 30
RATE = 10.0
CLOCK_SLACK = 0.01
"""Seconds: the two processes read one system clock, with timer and write jitter."""

SOURCE = """\
tool slow(n: int) -> int {
  impl: "limit_tools:slow"
  limit: { concurrent: 1 }
}

tool quick(n: int) -> int {
  impl: "limit_tools:quick"
  limit: { per_second: 10 }
}

workflow use(n: int) -> int {
  a = slow(n)
  b = quick(a)
  return b
}
"""

TOOLS = """\
import json
import os
import time


def _note(tool, began):
    row = {"tool": tool, "pid": os.getpid(), "began": began, "ended": time.time()}
    with open(os.environ["LIMIT_LOG"], "a") as f:
        f.write(json.dumps(row) + "\\n")


def slow(n):
    began = time.time()
    time.sleep(0.1)
    _note("slow", began)
    return n


def quick(n):
    _note("quick", time.time())
    return n + 1
"""


@pytest.mark.slow
@pytest.mark.serial
def test_two_workers_never_exceed_a_tools_limit(pg_url: str, tmp_path: Path) -> None:
    (tmp_path / "use.mn").write_text(SOURCE, "utf-8")
    (tmp_path / "limit_tools.py").write_text(TOOLS, "utf-8")
    calls_log = tmp_path / "calls.jsonl"
    program = load_program(tmp_path / "use.mn")
    env = {**os.environ, "LIMIT_LOG": str(calls_log), "PYTHONPATH": os.getcwd()}
    command = [sys.executable, "-m", "mnlang.cli", "worker", "--db", pg_url, "-q"]
    # A worker claims up to eight times its concurrency at once: a low one leaves runs
    # for the other.
    command += ["--concurrency", "2"]
    with PostgresStore(pg_url) as store:
        workers = [subprocess.Popen(command, env=env) for _ in range(2)]
        try:
            deadline = time.monotonic() + 60
            while len(store.list_workers()) < 2:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            for n in range(RUNS):
                start_run(store, program, "use", {"n": n}, run_id=f"u{n:02}", detach=True)
            while len(store.list_runs(status="completed", limit=RUNS)) < RUNS:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                worker.wait(timeout=30)
    rows = [json.loads(line) for line in calls_log.read_text().splitlines()]
    slow = sorted((r["began"], r["ended"], r["pid"]) for r in rows if r["tool"] == "slow")
    quick = sorted(r["began"] for r in rows if r["tool"] == "quick")
    assert len(slow) == len(quick) == RUNS
    assert len({pid for _, _, pid in slow}) == 2, "one worker made every call"
    for (_, ended, _), (began, _, _) in itertools.pairwise(slow):
        assert began >= ended - CLOCK_SLACK, "two calls of a `concurrent: 1` tool overlapped"
    gaps = [b - a for a, b in itertools.pairwise(quick)]
    assert min(gaps) >= 1 / RATE - CLOCK_SLACK, f"`per_second: 10` broken: gaps {gaps}"
