"""Open-loop load on `mnc serve`: starts arrive at a fixed rate (200 per second by
default) from many clients, whatever the answers' speed, with reads and signals beside
them, for a bounded time, against SQLite and (when a PostgreSQL cluster can be started
here, see tests/pg.py) PostgreSQL.

Run: `python benchmarks/api_load.py [--rate 200] [--seconds 10] [--clients 200]
[--store sqlite|postgres|both]`. Prints the accepted-start latency p50/p99, errors and
the server's peak memory beside the targets (p50 <= 10 ms, p99 <= 50 ms, 0 errors on
SQLite); asserts nothing. The server runs with `--no-execute` (the runs are left to
workers, so the figures are those of the front door); a late arrival is measured from
when it was due, so a server that falls behind shows it (no coordinated omission). On
a shared machine the figures are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.api.server import ADMIN_TOKEN, SHOP, Served, serve  # noqa: E402

HEADERS = {"authorization": f"Bearer {ADMIN_TOKEN}"}


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


def bench(name: str, db: Path | str, log_dir: Path, args: argparse.Namespace) -> None:
    with serve(db, execute=False, log_dir=log_dir) as served:
        body = {"source": SHOP.read_text(), "path": str(SHOP)}
        httpx2.post(served.url + "/api/v1/programs", json=body, headers=HEADERS).raise_for_status()
        result = asyncio.run(drive(served, args.rate, args.seconds, args.clients))
        memory = peak_rss_mb(served.process.pid)
    print(
        f"{name:<10} {result['accepted']}/{result['sent']} starts accepted in "
        f"{result['elapsed']:.1f} s ({args.rate:g}/s offered)\n"
        f"           p50 {result['p50']:.1f} ms (target <= 10)   "
        f"p99 {result['p99']:.1f} ms (target <= 50)   mean {result['mean']:.1f} ms\n"
        f"           errors {result['errors'] or 0} (target 0 on SQLite)   "
        f"server peak RSS {memory:.0f} MB"
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
            bench("sqlite", tmp / "journal.db", tmp, args)
        if args.store in ("postgres", "both"):
            from tests.pg import missing_reason, running_cluster

            reason = missing_reason()
            if reason is not None:
                print(f"postgres   skipped: {reason}")
                return
            cluster = stack.enter_context(running_cluster())
            bench("postgres", cluster.url("bench_api"), tmp, args)


if __name__ == "__main__":
    main()
