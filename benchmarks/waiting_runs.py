"""Many runs waiting on checkpoints whose timeouts fall due at once: how fast `mnc worker`
fires them, and whether its memory stays flat while it does.

Run: `python benchmarks/waiting_runs.py [--runs 10000] [--parked 100000] [--workers 1]
[--concurrency 8] [--durability full|fast] [--dir DIR] [--profile 2000] [--top 25]`. Prints figures beside their
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

`--profile N` (0 to leave out) then fires N more due timeouts on a fresh journal with a
`Worker` in this process under cProfile (every thread of it, CPU time of each thread, so
waiting for the disk counts nothing), and prints where a run's CPU goes: by area (SQLite's
statements, JSON, the store's Python, the worker, the interpreter, ...) and the top
functions by own time, per run. The profiler's own cost inflates the sums: compare the
shares.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from mnlang.api import load_program
from mnlang.runtime.config import RuntimeConfig
from mnlang.runtime.run import start_run
from mnlang.runtime.worker import Worker
from mnlang.stores.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent

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


_AREAS = (
    ("sqlite3", "SQLite statements (C)"),
    ("mnlang/stores/", "the store's Python"),
    ("json/", "JSON"),
    ("mnlang/runtime/worker", "the worker (claims, leases, log)"),
    ("mnlang/runtime/decisions", "the timeouts' decisions"),
    ("mnlang/runtime/journal", "the journal's batches"),
    ("mnlang/runtime/", "the interpreter"),
    ("mnlang/ir/", "the IR"),
    ("concurrent/futures", "the pool's hand-off"),
    ("threading", "the pool's hand-off"),
)


def area(where: str) -> str:
    for needle, name in _AREAS:
        if needle in where:
            return name
    return "other"


def profile_worker(folder: Path, runs: int, concurrency: int, top: int) -> None:
    """Where the CPU of a worker firing `runs` due timeouts goes, per run: a `Worker` in
    this process, each of its threads under its own profiler (thread CPU time)."""
    db = setup(folder, runs)
    profiles: list[cProfile.Profile] = []
    mine = threading.local()

    def profiled(execute):  # type: ignore[no-untyped-def]
        def run(*args):  # type: ignore[no-untyped-def]
            profiler = getattr(mine, "profiler", None)
            if profiler is None:
                profiler = mine.profiler = cProfile.Profile(time.thread_time)
                profiles.append(profiler)
            profiler.enable()
            try:
                return execute(*args)
            finally:
                profiler.disable()

        return run

    with SQLiteStore(db) as store:
        worker = Worker(store, concurrency=concurrency, config=RuntimeConfig(commit_ms=0))
        worker._execute = profiled(worker._execute)  # type: ignore[method-assign]
        main_profile = cProfile.Profile(time.thread_time)
        profiles.append(main_profile)
        cpu = time.process_time()
        main_profile.enable()
        worker.run(until_idle=True)
        main_profile.disable()
        cpu = time.process_time() - cpu
        done = len(store.list_runs(status="completed", limit=runs + 1))
    if done != runs:
        raise SystemExit(f"the profiled worker completed {done} of {runs} runs")
    stats = pstats.Stats(profiles[0])
    for other in profiles[1:]:
        stats.add(other)
    by_area: dict[str, float] = {}
    rows = []
    for (file, number, function), entry in stats.stats.items():  # type: ignore[attr-defined]
        own = entry[2]
        where = f"{file}:{number}({function})"
        name = area(where if file != "~" else function)
        by_area[name] = by_area.get(name, 0.0) + own
        rows.append((own, entry[1], where.replace(str(ROOT) + "/", "")))
    total = sum(by_area.values()) or 1.0
    print(
        f"\nprofile of a worker in this process firing {runs} due timeouts: "
        f"{total / runs * 1000:.2f} ms of its threads' CPU a run under the profiler, "
        f"{cpu / runs * 1000:.2f} ms of the process's (the profiler's cost included: compare "
        "the shares, not the sums, with the CPU figure above)"
    )
    print("  by area (own time):")
    for name, own in sorted(by_area.items(), key=lambda kv: -kv[1]):
        print(f"    {own / runs * 1e6:7.1f} us/run  {own / total:5.1%}  {name}")
    print(f"  top {top} functions (own time; calls a run):")
    for own, calls, where in sorted(rows, reverse=True)[:top]:
        print(f"    {own / runs * 1e6:7.1f} us/run  {calls / runs:6.1f}  {where[-90:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--parked", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--durability", choices=("full", "fast"), default="full")
    parser.add_argument("--dir", type=Path)
    parser.add_argument("--profile", type=int, default=2000, metavar="N")
    parser.add_argument("--top", type=int, default=25)
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
        if args.profile:
            profiled = folder / "profiled"
            profiled.mkdir()
            profile_worker(profiled, args.profile, args.concurrency, args.top)


if __name__ == "__main__":
    main()
