"""What the claim filter costs: a look for work by a worker that serves every run, and by
one that serves none of them (it reads every runnable run's needs and claims nothing).

Run: `python benchmarks/claim_filter.py [--runs 3000] [--programs 10] [--looks 50]
[--pg URL]`. Prints milliseconds per `claim_runs` (a code-less worker: nothing claimed,
nothing written) and per `runnable_runs(limit=32)` with and without `served_by`, on
SQLite and, with `--pg`, on PostgreSQL, beside the target; asserts nothing.

Setup (not measured): `--runs` running runs nobody holds, each needing a tool module of
one of `--programs` programs (with its sha256) and the `openai` key; a worker
advertising all of them (`capable`) and one advertising nothing (`codeless`).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mnlang.stores import open_store
from mnlang.stores.base import Need, NewRun, Store

TARGET_MS = 10.0
"""A code-less worker's look at 3,000 runs it cannot serve, at most (its poll interval on
SQLite is 50 ms; a look must stay well below it)."""


def needs_of(program: int) -> tuple[Need, ...]:
    digest = hashlib.sha256(f"tools {program}".encode()).hexdigest()
    return (Need("module", f"p{program}:.", "tools", digest), Need("provider", "", "openai"))


def setup(store: Store, runs: int, programs: int) -> None:
    for i in range(runs):
        store.create_run(NewRun(f"r{i:06}", "wf", {}, needs=needs_of(i % programs)))
    offers = [n for p in range(programs) for n in needs_of(p)]
    for worker, advertised in (("capable", offers), ("codeless", [])):
        store.worker_heartbeat(worker, host="bench", pid=0, concurrency=1, ttl=3600)
        store.advertise(worker, list(dict.fromkeys(advertised)), pinned=True)


def per_look(look: Callable[[], object], looks: int) -> float:
    look()  # warm up
    times = []
    for _ in range(looks):
        started = time.perf_counter()
        look()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(name: str, store: Store, args: argparse.Namespace) -> None:
    setup(store, args.runs, args.programs)
    assert store.claim_runs("codeless", 30, limit=32) == []
    figures = {
        "claim_runs by the code-less worker (claims none)": per_look(
            lambda: store.claim_runs("codeless", 30, limit=32), args.looks
        ),
        "runnable_runs(32), any worker": per_look(
            lambda: store.runnable_runs(limit=32), args.looks
        ),
        "runnable_runs(32), served_by the capable worker": per_look(
            lambda: store.runnable_runs(limit=32, served_by="capable"), args.looks
        ),
        "runnable_runs(32), served_by the code-less worker": per_look(
            lambda: store.runnable_runs(limit=32, served_by="codeless"), args.looks
        ),
    }
    print(f"{name}: {args.runs} runnable runs, {args.programs} programs")
    for what, ms in figures.items():
        print(f"  {what:<55} {ms:7.2f} ms")
    first = next(iter(figures.values()))
    verdict = "met" if first <= TARGET_MS else "missed"
    print(f"  target: a code-less worker's look <= {TARGET_MS:g} ms at 3,000 runs: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--programs", type=int, default=10)
    parser.add_argument("--looks", type=int, default=50)
    parser.add_argument("--pg", metavar="URL", help="also measure on this PostgreSQL journal")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, open_store(Path(folder) / "j.db") as store:
        measure("SQLite", store, args)
    if args.pg:
        with open_store(args.pg) as store:
            measure("PostgreSQL", store, args)


if __name__ == "__main__":
    main()
