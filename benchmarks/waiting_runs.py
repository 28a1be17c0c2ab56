"""Many runs waiting on checkpoints whose timeouts fall due at once: how fast `mnc worker`
fires them, and whether its memory stays flat while it does.

Run: `python benchmarks/waiting_runs.py [--runs 10000] [--parked 100000] [--workers 1]
[--concurrency 8] [--durability full|fast] [--dir DIR]`. Prints figures beside their
targets (10,000 timeouts in 10 s; the worker's memory flat; the look for runnable runs
costing what is due, not what waits); asserts nothing.

Setup (not measured): `--runs` runs of a workflow that asks a person at a checkpoint
(`timeout: 1h`, `on_timeout: reject`) are created and executed to their checkpoint, so
each waits with an open checkpoint and a timer; then every timer is moved to the past,
as if the hour had passed (the store's clock is the one that counts, so the benchmark
moves the timers rather than the clock). Beside them, `--parked` runs wait at the same
checkpoint with their timeout still an hour away: copies, row for row in every table, of
one such run (executing 100,000 runs to their checkpoint would take minutes).

Measured: `--workers` `mnc worker --until-idle` processes are started on the journal;
each claims due runs, decides their checkpoints by timeout, and completes them. The time
from start until every run completed, the runs per second, and each worker's resident
memory (VmRSS, sampled every 50 ms) when 10%, 50% and 100% of the runs had completed,
and the CPU time the workers used (which other load on the machine does not inflate).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mnlang.api import load_program
from mnlang.runtime.config import RuntimeConfig
from mnlang.runtime.run import start_run
from mnlang.runtime.worker import Worker
from mnlang.stores.sqlite import SQLiteStore

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


def setup(folder: Path, runs: int) -> Path:
    """A journal with `runs` runs waiting at their checkpoint, every timeout due."""
    source = folder / "ask.mn"
    source.write_text(SOURCE, "utf-8")
    program = load_program(source)
    db = folder / "journal.db"
    with SQLiteStore(db, durability="fast") as store:
        for n in range(runs):
            start_run(store, program, "ask", {"n": n}, run_id=f"ask-{n:06}", detach=True)
        config = RuntimeConfig(commit_ms=0)
        Worker(store, concurrency=8, config=config, idle_wait=0.05).run(until_idle=True)
        waiting = len(store.list_runs(status="waiting", limit=runs + 1))
        assert waiting == runs, f"{waiting} of {runs} runs wait at their checkpoint"
        with store._lock:
            store._conn.execute("UPDATE timers SET due_at = due_at - 7200")
    return db


def park(db: Path, parked: int) -> None:
    """`parked` copies of run `ask-000000`, each with its own id, whose timer is an hour
    away; they wait and must cost a worker nothing."""
    with SQLiteStore(db, durability="fast") as store, store._lock:
        conn = store._conn
        tables = [
            name
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if any(c[1] == "run_id" for c in conn.execute(f"PRAGMA table_info({name})"))
            # The outbox's rows are keyed by their own event id, and a parked run has sent
            # no notification a worker would read.
            and name != "outbox"
        ]
        conn.execute("BEGIN")
        conn.execute(
            "CREATE TEMP TABLE parked AS WITH RECURSIVE n(i) AS "
            "(SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "SELECT printf('parked-%06d', i) AS run_id FROM n",
            (parked,),
        )
        for name in tables:
            columns = [c[1] for c in conn.execute(f"PRAGMA table_info({name})")]
            chosen = ", ".join("p.run_id" if c == "run_id" else f"t.{c}" for c in columns)
            conn.execute(
                f"INSERT INTO {name} ({', '.join(columns)}) SELECT {chosen} "
                f"FROM {name} AS t, parked AS p WHERE t.run_id = 'ask-000000'"
            )
        conn.execute("UPDATE timers SET due_at = due_at + 7200 WHERE run_id LIKE 'parked-%'")
        conn.execute("COMMIT")


def lookup_ms(db: Path) -> float:
    """The median time of one look for runnable runs (a worker's claim query)."""
    with SQLiteStore(db) as store:
        times = []
        for _ in range(21):
            started = time.perf_counter()
            store.runnable_runs(limit=64)
            times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2] * 1000


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def completed(db: Path) -> int:
    with SQLiteStore(db) as store:
        (count,) = store._query("SELECT count(*) FROM runs WHERE status = 'completed'")[0]
    return int(count)


def measure(db: Path, runs: int, workers: int, concurrency: int, durability: str) -> None:
    env = {**os.environ, "MNC_DB": str(db), "MNC_COMMIT_MS": "0"}
    command = [sys.executable, "-m", "mnlang.cli", "worker", "--until-idle", "-q"]
    command += ["--concurrency", str(concurrency), "--durability", durability]
    start = time.perf_counter()
    processes = [
        subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL) for _ in range(workers)
    ]
    marks = {runs // 10: "10%", runs // 2: "50%", runs: "100%"}
    samples: dict[str, list[int]] = {}
    peak = [0] * workers
    done = 0
    while done < runs:
        time.sleep(0.05)
        rss = [rss_kib(p.pid) for p in processes]
        peak = [max(a, b) for a, b in zip(peak, rss)]
        done = completed(db)
        for at, label in marks.items():
            if done >= at and label not in samples:
                samples[label] = rss
        if all(p.poll() is not None for p in processes) and done < runs:
            raise SystemExit(f"the workers stopped with {done} of {runs} runs completed")
    took = time.perf_counter() - start
    cpu = 0.0
    for process in processes:
        _, _, usage = os.wait4(process.pid, 0)
        cpu += usage.ru_utime + usage.ru_stime
    print(
        f"fired {runs} checkpoint timeouts with {workers} worker(s) x {concurrency}, "
        f"durability {durability}: {took:.2f} s (target for 10,000: <= 10 s)"
    )
    print(f"  {runs / took:,.0f} runs/s (from worker start, imports included)")
    print(f"  worker CPU time: {cpu:.2f} s ({cpu / runs * 1000:.2f} ms per run)")
    print(f"  load average during the run: {os.getloadavg()[0]:.1f} (on {os.cpu_count()} CPUs)")
    for label in ("10%", "50%", "100%"):
        mib = ", ".join(f"{kib / 1024:.1f}" for kib in samples.get(label, []))
        print(f"  worker RSS at {label:>4} completed: {mib} MiB")
    print(
        f"  worker RSS peak: {', '.join(f'{kib / 1024:.1f}' for kib in peak)} MiB "
        "(target: flat from 10% to 100%)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--parked", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--durability", choices=("full", "fast"), default="full")
    parser.add_argument("--dir", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        db = setup(folder, args.runs)
        print(f"setup: {args.runs} runs waiting ({time.perf_counter() - started:.1f} s)")
        alone = lookup_ms(db)
        if args.parked:
            park(db, args.parked)
            print(f"  and {args.parked} parked runs (timeout an hour away)")
        beside = lookup_ms(db)
        print(
            f"look for runnable runs: {beside:.2f} ms with {args.parked} parked, "
            f"{alone:.2f} ms without (target: about the same)"
        )
        measure(db, args.runs, args.workers, args.concurrency, args.durability)
        print(f"look for runnable runs once all ran: {lookup_ms(db):.2f} ms (nothing due)")


if __name__ == "__main__":
    main()
