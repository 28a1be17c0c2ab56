"""Failover on PostgreSQL (slow): four `mnc worker` processes share one private server and
1,000 runs of a workflow with two keyed effects; two of the workers are killed with
`kill -9` at seeded random moments. Every run completes, each effect key is committed
once (the ledger) and called at most once more, only for a run the killed worker held
(the tools' `MNC_EXAMPLE_LEDGER` file), and the runs a dead worker held are taken over
within its lease time.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("psycopg", reason="psycopg is not installed (mnlang[postgres])")

from mnlang.api import load_program
from mnlang.runtime.run import start_run
from mnlang.stores.postgres import PostgresStore
from tests.test_store_postgres import raw, schema_of

RUNS = 1000
WORKERS = 4
KILLED = 2
CONCURRENCY = 8
LEASE_TTL = 3.0
SEED = 9
TAKEOVER_SLACK = 2.0
"""Seconds beyond the lease time a takeover may take: a live worker claims again only
once its queue of claimed runs is down to its concurrency (then runs with an expired
lease come first), on two cores shared with the server."""

SOURCE = """\
effect charge(order: str) -> str {
  impl: "failover_tools:charge"
  key: "charge:{order}"
}

effect notify(order: str, receipt: str) -> bool {
  impl: "failover_tools:notify"
  key: "notify:{order}"
}

workflow pay(order: str) -> str {
  receipt = charge(order)
  sent = notify(order, receipt)
  return "{receipt} {sent}"
}
"""

TOOLS = """\
from mnlang.effect_log import record


def charge(order, *, ctx):
    record("charge", ctx, {"order": order})
    return "c-" + order


def notify(order, receipt, *, ctx):
    record("notify", ctx, {"order": order, "receipt": receipt})
    return True
"""


def held_by(store: PostgresStore, pid: int) -> tuple[str, set[str]]:
    """The worker process `pid`'s lease owner name and the runs it holds now."""
    for worker in store.list_workers():
        if worker.pid == pid:
            return worker.worker_id, set(worker.claimed)
    raise AssertionError(f"worker {pid} is not in the workers table")


@pytest.mark.slow
@pytest.mark.serial
def test_runs_of_killed_workers_are_taken_over_and_no_effect_repeats(
    pg_url: str, tmp_path: Path
) -> None:
    (tmp_path / "pay.mn").write_text(SOURCE, "utf-8")
    (tmp_path / "failover_tools.py").write_text(TOOLS, "utf-8")
    effect_log = tmp_path / "effects.jsonl"
    program = load_program(tmp_path / "pay.mn")
    rng = random.Random(SEED)
    with PostgresStore(pg_url) as store:
        for n in range(RUNS):
            start_run(store, program, "pay", {"order": f"o{n:04}"}, run_id=f"f{n:04}", detach=True)
        env = {**os.environ, "MNC_EXAMPLE_LEDGER": str(effect_log), "PYTHONPATH": os.getcwd()}
        command = [sys.executable, "-m", "mnlang.cli", "worker", "--db", pg_url, "-q"]
        command += ["--concurrency", str(CONCURRENCY), "--lease-ttl", str(LEASE_TTL)]
        command += ["--durability", "fast"]
        logs = [(tmp_path / f"worker{i}.log").open("w") for i in range(WORKERS)]
        workers = [subprocess.Popen(command, env=env, stderr=log) for log in logs]
        # Kill when a seeded random share of the runs has completed.
        kill_at = sorted(rng.uniform(0.1, 0.6) * RUNS for _ in range(KILLED))
        victims = rng.sample(workers, KILLED)
        orphans: dict[str, tuple[float, set[str]]] = {}
        taken_over_in: dict[str, float] = {}
        started = time.monotonic()
        try:
            while time.monotonic() - started < 150:
                done = store.run_counts()
                completed = sum(c.count for c in done if c.status == "completed")
                if kill_at and completed >= kill_at[0]:
                    kill_at.pop(0)
                    victim = victims.pop(0)
                    owner, held = held_by(store, victim.pid)
                    victim.send_signal(signal.SIGKILL)
                    victim.wait()
                    # Runs it held may have ended between the look and the kill.
                    orphans[owner] = (time.monotonic(), held)
                if completed == RUNS:
                    break
                time.sleep(0.05)
                for owner, (killed_at, held) in orphans.items():
                    live = {
                        r.run_id
                        for r in (store.get_run(run_id) for run_id in held)
                        if r is not None and r.lease_owner == owner and r.status != "completed"
                    }
                    if live:
                        assert time.monotonic() - killed_at <= LEASE_TTL + TAKEOVER_SLACK, (
                            f"runs {sorted(live)} of killed {owner} not taken over"
                        )
                    elif owner not in taken_over_in:
                        taken_over_in[owner] = time.monotonic() - killed_at
            took = time.monotonic() - started
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.send_signal(signal.SIGTERM)
            for worker in workers:
                worker.wait(timeout=30)
            for log in logs:
                log.close()
        runs = store.list_runs(limit=RUNS + 1)
        assert Counter(r.status for r in runs) == {"completed": RUNS}, took
        assert all(r.result == f"c-o{r.run_id[1:]} true" for r in runs)
        assert len(orphans) == KILLED
        slowest = max(taken_over_in.values(), default=0.0)
        with raw(pg_url) as conn:
            keys = conn.execute(
                f"SELECT count(*), count(DISTINCT key), count(*) FILTER (WHERE status = 'done') "
                f"FROM {schema_of(pg_url)}.ledger"
            ).fetchone()
        assert keys == (2 * RUNS, 2 * RUNS, 2 * RUNS)
    calls = Counter(json.loads(line)["key"] for line in effect_log.read_text().splitlines())
    assert set(calls) == {f"{kind}:o{n:04}" for kind in ("charge", "notify") for n in range(RUNS)}
    orphaned = {f"o{run_id[1:]}" for _, held in orphans.values() for run_id in held}
    repeated = {key for key, n in calls.items() if n > 1}
    assert all(n <= 2 for n in calls.values())
    assert {key.split(":")[1] for key in repeated} <= orphaned
    print(
        f"failover: {RUNS} runs, {WORKERS} workers, {KILLED} killed, {took:.1f}s; "
        f"runs held by the killed: {len(orphaned)}, all taken over {slowest:.1f}s after the kill "
        f"(lease {LEASE_TTL}s); effect keys called twice: {len(repeated)}"
    )
