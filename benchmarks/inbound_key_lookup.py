"""An inbound webhook matched by key alone: finding the runs that wait for the key among
many waiting runs, through the index of keyed waits (`Store.waiting_for_key`, journal
step 16) and, for comparison, by reading every waiting run (what the receiver did before
it); and what keeping the index costs a commit that changes what a run waits for.

Run: `python benchmarks/inbound_key_lookup.py [--runs 5000] [--lookups 200]
[--db PATH_OR_URL]` (default: a new SQLite file in a temporary folder; a
`postgresql://` URL takes a new schema of it). Prints figures beside their targets (a
lookup under 1 ms whatever the number of waiting runs; a commit's cost with the index
within 10% of one without); asserts nothing. Figures on a loaded machine are noisy.

Setup (not measured): `--runs` runs, each waiting for `paid#order-N`.
Measured: `--lookups` lookups of random keys by each way; then `--lookups` commits that
move a run's wait to another key, with the index's triggers and with them dropped.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from mnlang.stores import open_store
from mnlang.stores.base import Batch, NewRun, RunUpdate, Store, split_address


def scan(store: Store, key: str) -> list[str]:
    """The lookup before the index: every waiting run read, its waits split."""
    found = []
    for record in store.list_runs(status="waiting", limit=2**31 - 1):
        for address in record.waiting_for:
            name, their_key = split_address(address)
            if name == "paid" and their_key == key:
                found.append(record.run_id)
    return found


def timed(calls: int, call: object) -> list[float]:
    assert callable(call)
    out = []
    for n in range(calls):
        started = time.perf_counter()
        call(n)
        out.append((time.perf_counter() - started) * 1000)
    return out


def line(label: str, ms: list[float], target: str) -> None:
    p50 = statistics.median(ms)
    p99 = sorted(ms)[int(len(ms) * 0.99) - 1]
    print(f"{label:<44} p50 {p50:8.3f} ms  p99 {p99:8.3f} ms   target: {target}")


def drop_triggers(store: Store) -> None:
    if store.location.startswith("postgresql://"):
        import psycopg

        from mnlang.stores.postgres import parse_url

        target = parse_url(store.location)
        with psycopg.connect(target.conninfo, autocommit=True) as conn:
            for trigger in ("insert", "update", "delete"):
                conn.execute(f"DROP TRIGGER runs_waiting_keys_{trigger} ON {target.schema}.runs")
    else:
        import sqlite3

        with sqlite3.connect(store.location) as conn:
            for trigger in ("insert", "update", "delete"):
                conn.execute(f"DROP TRIGGER runs_waiting_keys_{trigger}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5_000)
    parser.add_argument("--lookups", type=int, default=200)
    parser.add_argument("--db")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="mnc-inbound-"))
    where = args.db or str(folder / "journal.db")
    if where.startswith("postgresql://"):
        where += f"{'&' if '?' in where else '?'}schema=bench_inbound_{int(time.time())}"
    rng = random.Random(7)
    with open_store(where) as store:
        started = time.perf_counter()
        for n in range(args.runs):
            store.create_run(NewRun(f"r{n}", "order", {}))
            store.commit(
                Batch(f"r{n}", run=RunUpdate(status="waiting", waiting_for=[f"paid#order-{n}"]))
            )
        print(f"setup: {args.runs} waiting runs in {time.perf_counter() - started:.1f} s")
        keys = [f"order-{rng.randrange(args.runs)}" for _ in range(args.lookups)]
        line(
            f"lookup by the index ({args.runs} waiting)",
            timed(len(keys), lambda i: store.waiting_for_key(keys[i])),
            "< 1 ms",
        )
        line(
            "lookup by reading every waiting run",
            timed(min(len(keys), 20), lambda i: scan(store, keys[i])),
            "(before: grows with the waiting runs)",
        )

        def move(i: int) -> None:
            run_id = f"r{rng.randrange(args.runs)}"
            waits = [f"paid#moved-{i}-{rng.random()}"]
            store.commit(Batch(run_id, run=RunUpdate(status="waiting", waiting_for=waits)))

        with_index = timed(args.lookups, move)
        drop_triggers(store)
        without = timed(args.lookups, move)
        line("commit moving a wait, index kept", with_index, "within 10% of the next")
        line("commit moving a wait, triggers dropped", without, "(the cost without the index)")


if __name__ == "__main__":
    main()
