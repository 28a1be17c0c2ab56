"""A live `mnc serve` for the API tests: a real process on a free port (`--port 0`)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent
SHOP = HERE / "shop.mn"
ADMIN_TOKEN = "admin-token-for-the-api-tests"


@dataclass
class Served:
    url: str
    process: subprocess.Popen[str]
    log: Path

    def kill(self) -> None:
        """kill -9, as a crash would."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=20)


def kill_9_in_a_storm(served: Served, send: Callable[[int], bool], count: int) -> set[int]:
    """Send requests 0 to `count` - 1 in parallel (`send(n)` says whether request n was
    answered); kill -9 the server once a third have been answered. The ones answered."""
    answered: set[int] = set()
    lock = threading.Lock()

    def one(n: int) -> None:
        if send(n):
            with lock:
                answered.add(n)

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(one, n) for n in range(count)]
        deadline = time.monotonic() + 30
        while len(answered) < count // 3:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        served.kill()
        for f in futures:
            f.result()
    return answered


def env_for(db: Path | str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNC_")}
    env["MNC_DB"] = str(db)
    return env


@contextmanager
def serve(
    db: Path | str,
    *args: str,
    token: str | None = ADMIN_TOKEN,
    execute: bool = True,
    log_dir: Path | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Served]:
    """`mnc serve` on journal `db` (a SQLite path, or a PostgreSQL URL with `log_dir`),
    in folder `cwd` (its mnlang.toml is the server's project), with more variables `env`."""
    command = [sys.executable, "-m", "mnlang.cli", "serve", "--db", str(db), "--port", "0"]
    if token is not None:
        command += ["--token", token]
    command += ["--execute" if execute else "--no-execute", *args]
    folder = log_dir if log_dir is not None else Path(db).parent
    log = folder / f"serve-{time.monotonic_ns()}.log"
    with log.open("w") as err:
        process = subprocess.Popen(
            command, env={**env_for(db), **(env or {})}, stderr=err, text=True, cwd=cwd
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            found = re.search(r"serving (http://\S+?)/\n", log.read_text())
            if found:
                break
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "mnc serve did not start"
            time.sleep(0.05)
        served = Served(found.group(1), process, log)
        _wait_ready(served)
        yield served
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(served: Served) -> None:
    import httpx2

    deadline = time.monotonic() + 30
    while True:
        try:
            httpx2.get(served.url + "/api/v1/openapi.json", timeout=5).raise_for_status()
            return
        except httpx2.HTTPError:
            assert time.monotonic() < deadline, served.log.read_text()
            time.sleep(0.05)
