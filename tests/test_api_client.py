"""`mnlang.client` (sync and async) and `mnc ... --server URL` against a live server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mnlang.client import AsyncClient, Client, NotFound, RunConflict
from tests.api.server import ADMIN_TOKEN, SHOP, Served, env_for, serve


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Served]:
    with serve(tmp_path / "journal.db") as served:
        with Client(served.url, ADMIN_TOKEN) as api:
            api.register_program(source=SHOP.read_text(), path=str(SHOP))
        yield served


def waiting(api: Client, run_id: str, events: list[str] | None = None) -> None:
    deadline = time.monotonic() + 30
    while True:
        run = api.get_run(run_id)
        pending = run.get("pending") or {}
        ready = pending.get("checkpoints") if events is None else pending.get("events") == events
        if run["status"] == "waiting" and ready:
            return
        assert time.monotonic() < deadline, run
        time.sleep(0.05)


def test_the_sync_client(server: Served) -> None:
    with Client(server.url, ADMIN_TOKEN) as api:
        assert [w["name"] for w in api.workflows()] == ["order"]
        run = api.start_run("order", {"id": "a", "amount": "3.10"}, run_id="a")
        assert run["created"] is True
        with pytest.raises(RunConflict) as caught:
            api.start_run("order", {"id": "a", "amount": "3.11"}, run_id="a")
        assert caught.value.status == 409
        assert caught.value.details["existing_input"]["amount"] == "3.10"
        with pytest.raises(NotFound):
            api.get_run("nope")
        waiting(api, "a")
        assert api.approve("a", "review")["by"] == "admin"
        waiting(api, "a", ["paid#a"])
        assert api.signal("a", "paid", {"amount": "3.1"}, key="a")["accepted"] is True
        assert [r["run_id"] for r in api.list_runs(workflow="order")["runs"]] == ["a"]


def test_the_async_client(server: Served) -> None:
    async def go() -> None:
        async with AsyncClient(server.url, ADMIN_TOKEN) as api:
            runs = await asyncio.gather(
                *(api.start_run("order", {"id": f"x{n}", "amount": "1"}) for n in range(5))
            )
            assert all(r["created"] for r in runs)
            cancelled = await api.cancel(runs[0]["run_id"])
            assert cancelled["cancel_requested"] is True
            with pytest.raises(RunConflict):
                body = {"id": "y", "amount": "2"}
                await api.start_run("order", body, run_id=runs[1]["run_id"])

    asyncio.run(go())


def mnc(args: list[str], served: Served) -> subprocess.CompletedProcess[str]:
    env = {**env_for(Path(os.devnull)), "MNC_SERVER": served.url, "MNC_SERVER_TOKEN": ADMIN_TOKEN}
    env.pop("MNC_DB")
    command = [sys.executable, "-m", "mnlang.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def test_the_cli_through_the_server(server: Served) -> None:
    started = mnc(["run", str(SHOP), "--id", "c", "--input", '{"id": "c", "amount": "5"}'], server)
    # Exits with the run's status when the server answered: running (0), or already
    # waiting at its checkpoint (3).
    assert started.returncode in (0, 3), started.stderr
    assert json.loads(started.stdout)["created"] is True
    conflict = mnc(["run", str(SHOP), "--id", "c", "--input", '{"id": "c", "amount": "6"}'], server)
    assert conflict.returncode == 2 and "already exists with other input" in conflict.stderr
    assert '"given_input"' in conflict.stderr
    with Client(server.url, ADMIN_TOKEN) as api:
        waiting(api, "c")
        shown = mnc(["show", "c"], server)
        assert shown.returncode == 3
        assert json.loads(shown.stdout)["pending"]["checkpoints"][0]["name"] == "review"
        assert mnc(["approve", "c", "review"], server).returncode == 0
        waiting(api, "c", ["paid#c"])
        sent = mnc(["signal", "c", "paid", '{"amount": "5"}', "--key", "c"], server)
        assert sent.returncode == 0 and json.loads(sent.stdout)["accepted"] is True
        started = mnc(
            ["run", str(SHOP), "--id", "d", "--input", '{"id": "d", "amount": "1"}'], server
        )
        assert started.returncode in (0, 3), started.stderr
        waiting(api, "d")
        assert mnc(["reject", "d", "review"], server).returncode == 0
        started = mnc(
            ["run", str(SHOP), "--id", "e", "--input", '{"id": "e", "amount": "1"}'], server
        )
        assert mnc(["cancel", "e"], server).returncode in (3, 4, 0)
        deadline = time.monotonic() + 30
        while api.get_run("e")["status"] != "cancelled":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        while api.get_run("c")["status"] != "completed":
            assert time.monotonic() < deadline
            time.sleep(0.05)
