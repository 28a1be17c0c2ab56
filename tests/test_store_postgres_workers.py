"""`mnc workers` on a PostgreSQL journal: a running `mnc worker` is listed with its
process and heartbeat, and is gone once it stopped."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

pytest.importorskip("psycopg", reason="psycopg is not installed (mnlang[postgres])")


MNC = [sys.executable, "-m", "mnlang.cli"]


def listed(url: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [*MNC, "workers", "--db", url, "--json"], capture_output=True, text=True, check=True
    )
    found: list[dict[str, Any]] = json.loads(out.stdout)
    return found


def test_a_running_worker_is_listed_then_gone_after_it_stops(pg_url: str) -> None:
    assert listed(pg_url) == []
    worker = subprocess.Popen(
        [*MNC, "worker", "--db", pg_url, "--concurrency", "3", "--quiet"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        workers = listed(pg_url)
        while not workers and time.monotonic() < deadline:
            time.sleep(0.2)
            workers = listed(pg_url)
        assert [(w["pid"], w["concurrency"], w["claimed"]) for w in workers] == [
            (worker.pid, 3, [])
        ]
        text = subprocess.run(
            [*MNC, "workers", "--db", pg_url], capture_output=True, text=True, check=True
        ).stdout
        assert f"pid {worker.pid}  concurrency 3" in text
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=20)
    assert listed(pg_url) == []
