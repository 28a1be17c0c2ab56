"""Open-loop load on `mnc serve`: starts arrive at a fixed rate (200 per second by
default) from many clients, whatever the answers' speed, with reads and signals beside
them, for a bounded time, against SQLite and (when a PostgreSQL cluster can be started
here, see tests/pg.py) PostgreSQL.

Run: `python benchmarks/api_load.py [--rate 200] [--seconds 10] [--clients 200]
[--store sqlite|postgres|both]`. Prints the accepted-start latency p50/p99, errors and
the server's peak memory beside the targets (p50 <= 10 ms, p99 <= 50 ms, 0 errors on
SQLite); asserts nothing. The server runs with `--no-execute` (the runs are left to
workers, so the figures are those of the front door); a late arrival is measured from
when it was due, so a server that falls behind shows it (no coordinated omission).

Beside them, in the same run, where a start's time goes:

- a profile of one start's parts, in this process on the same kind of store: reading
  the body, finding the program, checking the input and pinning it (`prepare_start`),
  the transaction (`create_runs` of one start, with its fsync), the answer's JSON;
  the store's raw commit (one fsync'd insert) as the reference, and what a transaction
  of a group of 10 and 50 starts costs per start (the server's group commit);
- the server's wall time and CPU per request, one request at a time (`GET /me`, the
  HTTP, auth and uvicorn floor, and a start);
- under load, the server's CPU per accepted start (the reads and signals beside the
  starts included) and how many starts each commit carried (the runs of one
  transaction share its clock, so distinct creation times count the transactions).

On a shared machine the latency figures are noisy, and the CPU per start is the steadier
figure: a server that needs more CPU than the machine gives it falls behind whatever
its commits cost.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import httpx2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.api.server import ADMIN_TOKEN, SHOP, Served, serve  # noqa: E402

HEADERS = {"authorization": f"Bearer {ADMIN_TOKEN}"}


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(n: int, step: Callable[[int], object]) -> float:
    """Milliseconds per call of `step(i)` over `n` calls, one after another."""
    begin = time.perf_counter()
    for i in range(n):
        step(i)
    return (time.perf_counter() - begin) / n * 1000


def profile_start(location: Path | str, n: int) -> None:
    """One start's parts, timed in this process on a fresh store at `location`."""
    from mnlang.ir.compile import compile_file
    from mnlang.ir.load import dump_ir
    from mnlang.jsonin import decode_json
    from mnlang.runtime.run import prepare_start
    from mnlang.server import models as m
    from mnlang.server.app import Programs, run_out
    from mnlang.stores import open_store

    program, _ = compile_file(SHOP.absolute(), SHOP.read_text())
    assert program is not None
    with open_store(location) as store:
        programs = Programs(store)
        programs.put(program)
        raw = b'{"workflow": "order", "input": {"id": "b1", "amount": "1"}, "run_id": "b1"}'

        def body(i: int) -> m.StartRun:
            return m.StartRun.model_validate(decode_json(raw, "the body"))

        def prepare(i: int, tag: str = "p") -> object:
            given = {"id": f"{tag}{i}", "amount": "1"}
            return prepare_start(program, "order", given, run_id=f"{tag}{i}", started_by="b")

        runs = [prepare(i, "t").run for i in range(n)]  # type: ignore[attr-defined]
        record = store.create_runs([runs[0]])[0].record
        assert record is not None
        parts = [
            ("read the body (JSON, pydantic)", timed(n, body)),
            ("find the program (list, parsed once)", timed(n, lambda i: programs.listed())),
            ("check the input, pin it (prepare_start)", timed(n, prepare)),
            (
                "transaction of 1 start (create_runs)",
                timed(n - 1, lambda i: store.create_runs([runs[i + 1]])),
            ),
            ("answer's JSON", timed(n, lambda i: run_out(record, created=True).model_dump_json())),
        ]
        total = sum(ms for _, ms in parts)
        for name, ms in parts:
            print(f"           {name:<42} {ms:7.3f} ms  {ms / total:4.0%}")
        print(f"           {'one start, these parts':<42} {total:7.3f} ms")
        ir = dump_ir(program)
        old = timed(n, lambda i: store.put_program(program.hash, ir))
        print(f"           {'(gone: re-pinning the program per start)':<42} {old:7.3f} ms")
        raw_commit = timed(n, lambda i: store.put_program(uuid.uuid4().hex, "{}"))
        print(f"           {'reference: the raw commit (1 insert)':<42} {raw_commit:7.3f} ms")
        for size in (10, 50):
            groups = [
                [prepare(g * size + k, f"g{size}-").run for k in range(size)]  # type: ignore[attr-defined]
                for g in range(max(1, n // size))
            ]
            per_group = timed(len(groups), lambda g, groups=groups: store.create_runs(groups[g]))
            print(
                f"           {f'transaction of {size} starts, per start':<42} "
                f"{per_group / size:7.3f} ms  ({per_group:.2f} ms a commit)"
            )


def server_costs(served: Served, n: int) -> None:
    """Wall time and server CPU per request, one request at a time."""
    pid = served.process.pid
    with httpx2.Client(base_url=served.url + "/api/v1", headers=HEADERS) as http:

        def start(i: int) -> None:
            body = {"workflow": "order", "input": {"id": f"s{i}", "amount": "1"}, "run_id": f"s{i}"}
            http.post("/runs", json=body).raise_for_status()

        for name, step in (("GET /me", lambda i: http.get("/me")), ("POST /runs", start)):
            cpu = cpu_seconds(pid)
            wall = timed(n, step)
            used = (cpu_seconds(pid) - cpu) / n * 1000
            print(
                f"           {name:<11} one at a time: {wall:6.2f} ms wall, {used:5.2f} ms server CPU"
            )


def commits_of(db: Path | str) -> tuple[int, int]:
    """Runs `b*` of the load and the transactions that created them."""
    from mnlang.stores import open_store

    with open_store(db) as store:
        runs, _ = store.search_runs(text="b", limit=1_000_000)
    made = [r for r in runs if r.run_id.startswith("b")]
    return len(made), len({r.created_at for r in made})


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def drive(served: Served, rate: float, seconds: float, clients: int) -> dict[str, object]:
    limits = httpx2.Limits(max_connections=clients, max_keepalive_connections=clients)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    pending: set[asyncio.Task[None]] = set()
    async with httpx2.AsyncClient(
        base_url=served.url + "/api/v1", headers=HEADERS, timeout=30, limits=limits
    ) as http:

        async def start(n: int, due: float) -> None:
            body = {"workflow": "order", "input": {"id": f"b{n}", "amount": "1"}, "run_id": f"b{n}"}
            try:
                answer = await http.post("/runs", json=body)
                if answer.status_code != 201:
                    errors[str(answer.status_code)] = errors.get(str(answer.status_code), 0) + 1
                    return
            except httpx2.HTTPError as e:
                errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
                return
            latencies.append(time.perf_counter() - due)
            if n % 4 == 0:  # reads and signals beside the starts
                await http.get(f"/runs/b{n}")
                signal = {"event": "paid", "key": f"b{n}", "payload": {"amount": "1"}}
                await http.post(f"/runs/b{n}/signals", json=signal)

        begin = time.perf_counter()
        total = int(rate * seconds)
        for n in range(total):
            due = begin + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(start(n, due))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
        elapsed = time.perf_counter() - begin
    latencies.sort()
    return {
        "sent": total,
        "accepted": len(latencies),
        "elapsed": elapsed,
        "p50": latencies[len(latencies) // 2] * 1000 if latencies else float("nan"),
        "p99": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else float("nan"),
        "mean": statistics.fmean(latencies) * 1000 if latencies else float("nan"),
        "errors": errors,
    }


def bench(
    name: str, db: Path | str, scratch: Path | str, log_dir: Path, args: argparse.Namespace
) -> None:
    print(f"{name:<10} where one start's time goes (in this process, one at a time):")
    profile_start(scratch, 200)
    with serve(db, execute=False, log_dir=log_dir) as served:
        body = {"source": SHOP.read_text(), "path": str(SHOP)}
        httpx2.post(served.url + "/api/v1/programs", json=body, headers=HEADERS).raise_for_status()
        server_costs(served, 100)
        cpu, client_cpu = cpu_seconds(served.process.pid), time.process_time()
        result = asyncio.run(drive(served, args.rate, args.seconds, args.clients))
        cpu = cpu_seconds(served.process.pid) - cpu
        client_cpu = time.process_time() - client_cpu
        memory = peak_rss_mb(served.process.pid)
    runs, commits = commits_of(db)
    accepted = int(result["accepted"])  # type: ignore[call-overload]
    print(
        f"{name:<10} {result['accepted']}/{result['sent']} starts accepted in "
        f"{result['elapsed']:.1f} s ({args.rate:g}/s offered)\n"
        f"           p50 {result['p50']:.1f} ms (target <= 10)   "
        f"p99 {result['p99']:.1f} ms (target <= 50)   mean {result['mean']:.1f} ms\n"
        f"           errors {result['errors'] or 0} (target 0 on SQLite)   "
        f"server peak RSS {memory:.0f} MB\n"
        f"           server CPU {cpu / max(accepted, 1) * 1000:.2f} ms per accepted start "
        f"(reads and signals beside included)   "
        f"{runs / max(commits, 1):.1f} starts per commit ({runs} runs, {commits} commits)\n"
        f"           load generator CPU {client_cpu / max(accepted, 1) * 1000:.2f} ms per "
        f"start, on the same machine; load average {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} CPUs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="both")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        tmp = Path(folder)
        if args.store in ("sqlite", "both"):
            bench("sqlite", tmp / "journal.db", tmp / "profile.db", tmp, args)
        if args.store in ("postgres", "both"):
            from tests.pg import missing_reason, running_cluster

            reason = missing_reason()
            if reason is not None:
                print(f"postgres   skipped: {reason}")
                return
            cluster = stack.enter_context(running_cluster())
            bench("postgres", cluster.url("bench_api"), cluster.url("bench_profile"), tmp, args)


if __name__ == "__main__":
    main()
