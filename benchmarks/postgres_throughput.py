"""Steps/s of the 1,000-step no-op workflow on PostgreSQL with 1, 2 and 4 workers, beside
DBOS on the same server and the server's own commit rate.

Run: `python benchmarks/postgres_throughput.py [--steps 1000] [--runs 4] [--url URL]`.
Prints figures; asserts nothing. Without `--url` it starts a private server of its own
(`tests/pg.py`, with the server's default durability: fsync on) and stops it at the end;
with `--url` it uses that server (the journal in a schema of its own, DBOS in a database
`dbos_bench` it creates).

- raw: one client inserting one row per transaction (`synchronous_commit=on`), the
  database's commit rate, the limit that workers' throughput grows towards;
- mnlang: `--runs` runs of `tool_chain` (a `for` loop over `--steps` items calling a no-op
  tool; `benchmarks/step_throughput.py`'s workflow), executed by 1, 2 and 4 `mnc worker`
  processes of concurrency 1 at durability `full`; timed from the runs' creation, with
  the workers already started, until the last run completed;
- DBOS: a `@DBOS.workflow` looping over `--steps` no-op `@DBOS.step`s, in a process of its
  own (after one warm-up workflow); if DBOS cannot run, the reason is printed.

Target (issue 9): one worker at least 5x DBOS; throughput that grows with workers until
the commit rate is the limit.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mnlang.ir.compile import compile_file  # noqa: E402
from mnlang.ir.model import IRProgram  # noqa: E402
from mnlang.runtime.run import start_run  # noqa: E402
from mnlang.stores.postgres import PostgresStore, parse_url  # noqa: E402
from tests.pg import PostgresCluster, missing_reason  # noqa: E402

SOURCE = """
tool noop(i: int) -> int {
  impl: "bench_tools:noop"
}

workflow tool_chain(items: list[int]) -> int {
  total = 0
  for i in items {
    x = noop(i)
    total = total + x
  }
  return total
}
"""

TOOLS = """
def noop(i):
    return i
"""

DBOS_SCRIPT = """
import sys
import time

from dbos import DBOS

url, steps = sys.argv[1], int(sys.argv[2])
DBOS(config={"name": "mnc_bench", "system_database_url": url, "run_admin_server": False})


@DBOS.step()
def noop(i: int) -> int:
    return i


@DBOS.workflow()
def chain(n: int) -> int:
    total = 0
    for i in range(n):
        total += noop(i)
    return total


DBOS.launch()
chain(10)
start = time.perf_counter()
chain(steps)
print(steps / (time.perf_counter() - start))
DBOS.destroy()
"""


def program(folder: Path) -> IRProgram:
    (folder / "bench.mn").write_text(SOURCE, "utf-8")
    (folder / "bench_tools.py").write_text(TOOLS, "utf-8")
    ir, diagnostics = compile_file(folder / "bench.mn")
    if ir is None:
        raise SystemExit("\n".join(str(d) for d in diagnostics))
    return ir


def raw_rate(url: str, commits: int) -> float:
    with psycopg.connect(parse_url(url).conninfo, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = on")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS raw_commits (seq bigserial PRIMARY KEY, data text)"
        )
        start = time.perf_counter()
        for _ in range(commits):
            conn.execute("INSERT INTO raw_commits (data) VALUES (%s)", ('{"value":1}',))
        return commits / (time.perf_counter() - start)


def worker_rate(url: str, ir: IRProgram, workers: int, runs: int, steps: int) -> float:
    """Steps/s of `runs` runs of `steps` steps executed by `workers` worker processes."""
    schema_url = f"{url}{'&' if '?' in url else '?'}schema=bench_{uuid.uuid4().hex[:8]}"
    with PostgresStore(schema_url) as store:
        command = [sys.executable, "-m", "mnlang.cli", "worker", "--db", schema_url, "-q"]
        command += ["--concurrency", "1"]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        processes = [subprocess.Popen(command, env=env) for _ in range(workers)]
        try:
            while len(store.list_workers()) < workers:
                time.sleep(0.05)
            start = time.perf_counter()
            for n in range(runs):
                items = list(range(steps))
                start_run(store, ir, "tool_chain", {"items": items}, run_id=f"b{n}", detach=True)
            while len(store.list_runs(status="completed", limit=runs)) < runs:
                time.sleep(0.01)
            took = time.perf_counter() - start
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                process.wait(timeout=60)
    return runs * steps / took


def dbos_rate(port: int, host: str, user: str, steps: int) -> tuple[float | None, str]:
    url = f"postgresql://{user}@{host}:{port}/dbos_bench"
    try:
        done = subprocess.run(
            [sys.executable, "-c", DBOS_SCRIPT, url, str(steps)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, "DBOS did not finish within 300 s"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"DBOS could not run: {last}"
    return float(done.stdout.strip().splitlines()[-1]), ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="steps per run")
    parser.add_argument("--runs", type=int, default=4, help="runs per measurement")
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
    conninfo = psycopg.conninfo.conninfo_to_dict(parse_url(url).conninfo)
    try:
        with tempfile.TemporaryDirectory(prefix="mnc-pg-bench-") as folder:
            ir = program(Path(folder))
            print(f"on {parse_url(url).location} (fsync and synchronous_commit on)")
            raw = raw_rate(url, 2000)
            print(f"  raw one-row INSERT per transaction, 1 client: {raw:8.0f} commits/s")
            dbos, why = dbos_rate(
                int(conninfo.get("port") or 5432),
                str(conninfo.get("host") or "127.0.0.1"),
                str(conninfo.get("user") or "postgres"),
                args.steps,
            )
            if dbos is None:
                print(f"  DBOS: not measured: {why}")
            else:
                print(f"  DBOS, one workflow of {args.steps} steps:    {dbos:8.0f} steps/s")
            for workers in (1, 2, 4):
                rate = worker_rate(url, ir, workers, args.runs, args.steps)
                vs = f"   {rate / dbos:5.1f}x DBOS" if dbos else ""
                print(
                    f"  mnlang, {workers} worker{'s' if workers > 1 else ' '} "
                    f"({args.runs} runs x {args.steps} steps): {rate:8.0f} steps/s   "
                    f"{rate / raw:4.2f}x raw commits/s{vs}"
                )
    finally:
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    main()
