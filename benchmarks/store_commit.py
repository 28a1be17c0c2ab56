"""What a journal commit costs, and whether resuming a run slows down as its journal grows.

Run: `python benchmarks/store_commit.py [--commits 1000] [--rounds 3] [--dir DIR]`. Prints figures;
asserts nothing. Measures, on one disk (a temporary directory unless `--dir` names one):

- commits/s of a small batch (one event, one variable, one cursor) through
  `SQLiteStore.commit` at durability `full` (synchronous=FULL) and `fast` (NORMAL),
  beside a raw `sqlite3` loop of `BEGIN IMMEDIATE` / one INSERT / `COMMIT` on the same
  settings: the floor any store on this disk pays per transaction;
- `load_state` time for runs whose journals hold 1k, 10k and 100k events and whose live
  state is the same size (20 variables, a 100-item list, a cursor), beside `read_journal`
  for the same runs, which does grow.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from mnlang.stores.base import (
    Batch,
    Durability,
    NewEvent,
    NewRun,
    SetCursor,
    SetList,
    SetVar,
    StateOp,
)
from mnlang.stores.sqlite import SQLiteStore

JOURNAL_SIZES = (1_000, 10_000, 100_000)


def store_commits(store: SQLiteStore, commits: int) -> float:
    """Seconds for `commits` small batches through `SQLiteStore.commit`."""
    start = time.perf_counter()
    for i in range(commits):
        store.commit(
            Batch(
                "bench",
                events=[NewEvent("result", {"tool": "fetch_order", "value": {"id": i}}, "s1")],
                state=[SetVar("", "order", {"id": i, "total": "12.50"}), SetCursor("", i)],
            )
        )
    return time.perf_counter() - start


def raw_commits(conn: sqlite3.Connection, commits: int) -> float:
    """Seconds for `commits` transactions of one INSERT each: the per-transaction floor."""
    start = time.perf_counter()
    for _ in range(commits):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO events (data) VALUES (?)", ('{"value":1}',))
        conn.execute("COMMIT")
    return time.perf_counter() - start


def commit_rates(directory: Path, durability: Durability, commits: int, rounds: int) -> str:
    """Store and raw commits/s, alternating in rounds so that disk noise hits both."""
    synchronous = "FULL" if durability == "full" else "NORMAL"
    store = SQLiteStore(directory / f"store-{durability}.db", durability=durability)
    store.create_run(NewRun("bench", "wf", {}))
    conn = sqlite3.connect(directory / f"raw-{durability}.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, data TEXT)")
    ours, raw = [], []
    for _ in range(rounds):
        ours.append(commits / store_commits(store, commits))
        raw.append(commits / raw_commits(conn, commits))
    store.close()
    conn.close()
    o, r = statistics.median(ours), statistics.median(raw)
    return (
        f"  synchronous={synchronous:<6}  store.commit {o:8.0f}/s   "
        f"raw BEGIN IMMEDIATE/INSERT/COMMIT {r:8.0f}/s   store/raw {o / r:.2f}"
    )


def fill_run(store: SQLiteStore, run_id: str, events: int) -> None:
    store.create_run(NewRun(run_id, "wf", {}))
    state: list[StateOp] = [SetVar("", f"v{k}", {"k": k, "text": "x" * 40}) for k in range(20)]
    state += [SetList("", "items", [{"n": n} for n in range(100)]), SetCursor("", "s0")]
    store.commit(Batch(run_id, state=state))
    per_commit = 1_000
    for done in range(0, events, per_commit):
        batch = [
            NewEvent("result", {"i": done + i, "value": "y" * 60}, "s1") for i in range(per_commit)
        ]
        store.commit(Batch(run_id, events=batch, state=[SetCursor("", f"s{done}")]))


def median_seconds(action: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=1000, help="commits per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, help="directory for the databases (default: temp)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        directory = Path(tmp)
        print(
            f"commits/s of a small batch, median of {args.rounds} rounds of {args.commits}, "
            f"in {directory}"
        )
        print(commit_rates(directory, "full", args.commits, args.rounds))
        print(commit_rates(directory, "fast", args.commits, args.rounds))
        print("resume cost by journal length (same live state: 20 vars, 100-item list)")
        with SQLiteStore(directory / "resume.db", durability="fast") as store:
            for events in JOURNAL_SIZES:
                fill_run(store, f"run-{events}", events)
            for events in JOURNAL_SIZES:
                run_id = f"run-{events}"
                load = median_seconds(partial(store.load_state, run_id), 50)
                read = median_seconds(partial(store.read_journal, run_id), 3)
                print(
                    f"  {events:>7} events   load_state {load * 1e3:7.3f} ms   "
                    f"read_journal {read * 1e3:9.1f} ms"
                )


if __name__ == "__main__":
    main()
