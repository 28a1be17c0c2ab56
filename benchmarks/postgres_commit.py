"""What a journal commit costs on PostgreSQL, beside the server's own commit rate.

Run: `python benchmarks/postgres_commit.py [--commits 1000] [--rounds 3] [--url URL]`.
Prints figures; asserts nothing. Without `--url` it starts a private server of its own
(`tests/pg.py`, with the server's default durability: fsync on) in a temporary folder
and stops it at the end; with `--url` it uses that database, in a schema it creates.

- commits/s of a small batch (one event, one variable, one cursor) through
  `PostgresStore.commit` at durability `full` (synchronous_commit=on) and `fast` (off),
  beside a raw loop of one-row INSERTs, each its own transaction, on the same server
  and settings: the per-transaction floor, the database's commit rate for one client;
- the same with 4 clients at once (threads, one connection each), where the server
  can flush several clients' commits together.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mnlang.stores.base import Batch, Durability, NewEvent, NewRun, SetCursor, SetVar  # noqa: E402
from mnlang.stores.postgres import PostgresStore, parse_url  # noqa: E402
from tests.pg import PostgresCluster, missing_reason  # noqa: E402

CLIENTS = 4


def store_commits(store: PostgresStore, run_id: str, commits: int) -> None:
    for i in range(commits):
        store.commit(
            Batch(
                run_id,
                events=[NewEvent("result", {"tool": "fetch_order", "value": {"id": i}}, "s1")],
                state=[SetVar("", "order", {"id": i, "total": "12.50"}), SetCursor("", i)],
            )
        )


def raw_commits(url: str, table: str, commits: int, synchronous: str) -> None:
    with psycopg.connect(parse_url(url).conninfo, autocommit=True) as conn:
        conn.execute(f"SET synchronous_commit = {synchronous}")
        for _ in range(commits):
            conn.execute(f"INSERT INTO {table} (data) VALUES (%s)", ('{"value":1}',))


def rate(clients: int, commits: int, work: Callable[[int], None]) -> float:
    """Commits/s of `clients` threads each running `work(client)`, `commits` commits each."""
    threads = [threading.Thread(target=work, args=(n,)) for n in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return clients * commits / (time.perf_counter() - start)


def commit_rates(url: str, durability: Durability, clients: int, commits: int, rounds: int) -> str:
    synchronous = "on" if durability == "full" else "off"
    stores = [PostgresStore(url, durability=durability) for _ in range(clients)]
    run_ids = [f"bench-{uuid.uuid4().hex[:8]}" for _ in range(clients)]
    for store, run_id in zip(stores, run_ids, strict=True):
        store.create_run(NewRun(run_id, "wf", {}))
    table = f"{parse_url(url).schema}.raw_commits"
    with psycopg.connect(parse_url(url).conninfo, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (seq bigserial PRIMARY KEY, data text)")
    ours, raw = [], []
    for _ in range(rounds):
        ours.append(rate(clients, commits, lambda n: store_commits(stores[n], run_ids[n], commits)))
        raw.append(rate(clients, commits, lambda n: raw_commits(url, table, commits, synchronous)))
    for store in stores:
        store.close()
    o, r = statistics.median(ours), statistics.median(raw)
    return (
        f"  {clients} client{'s' if clients > 1 else ' '}  synchronous_commit={synchronous:<3}  "
        f"store.commit {o:7.0f}/s   raw one-row INSERT per transaction {r:7.0f}/s   "
        f"store/raw {o / r:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=1000, help="commits per client per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--url", help="a PostgreSQL database to use instead of a private one")
    args = parser.parse_args()

    cluster: PostgresCluster | None = None
    url = args.url
    if url is None:
        reason = missing_reason()
        if reason is not None:
            sys.exit(f"cannot start a PostgreSQL server: {reason}")
        cluster = PostgresCluster(settings={})
        cluster.start()
        url = cluster.url()
    url = f"{url}{'&' if '?' in url else '?'}schema=bench_{uuid.uuid4().hex[:8]}"
    try:
        print(
            f"commits/s of a small batch, median of {args.rounds} rounds of {args.commits} "
            f"per client, on {parse_url(url).location}"
        )
        for clients in (1, CLIENTS):
            for durability in ("full", "fast"):
                print(commit_rates(url, durability, clients, args.commits, args.rounds))
    finally:
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    main()
