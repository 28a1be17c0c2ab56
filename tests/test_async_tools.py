"""`async def` tools and effects (docs/tools.md): awaited on a loop of their own, cancelled
at their timeout or when their branch is cancelled, a cancelled effect treated as an
unknown outcome (a keyed one is called again with its key, a `once` one opens a repair),
in a thread or under `isolation: process`, and through a real `kill -9`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from test_runtime import RECORDER, Program

from mnlang.runtime.tools import AsyncCancel, await_call
from mnlang.stores.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent

ASYNC_TOOLS = """
import asyncio

async def fetch(n):
    await asyncio.sleep(0.01)
    record("fetch", n=n)
    return n * 2

async def slow(seconds, *, ctx):
    record("start", attempt=ctx.attempt)
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        record("cancelled", attempt=ctx.attempt)
        raise
    record("end", attempt=ctx.attempt)
    return f"slept {seconds}"

async def pay(order, *, key, ctx):
    record("pay", key=key, attempt=ctx.attempt)
    if ctx.attempt == 1:
        await asyncio.sleep(5)
    return "paid " + order

async def charge(order, *, ctx):
    record("charge", key=ctx.key, attempt=ctx.attempt)
    await asyncio.sleep(5)
    return "charged " + order

async def boom(n):
    await asyncio.sleep(0.05)
    raise ValueError("boom")

async def pid():
    await asyncio.sleep(0)
    return os.getpid()
"""


def program(tmp_path: Path, source: str) -> Program:
    return Program(tmp_path / "p", source, RECORDER + ASYNC_TOOLS)


def names(p: Program) -> list[str]:
    return [c["name"] for c in p.calls()]


def test_an_async_tool_is_awaited(tmp_path: Path) -> None:
    p = program(
        tmp_path,
        """
        tool fetch(n: int) -> int {
          impl: "tools:fetch"
        }

        workflow w(n: int) -> int {
          a = fetch(n)
          b = fetch(a)
          return b
        }
        """,
    )
    out = p.run({"n": 3})
    assert out.status == "completed", out.error
    assert out.result == 12 and names(p) == ["fetch", "fetch"]


def test_an_async_tool_past_its_timeout_is_cancelled(tmp_path: Path) -> None:
    p = program(
        tmp_path,
        """
        tool slow(seconds: float) -> str {
          impl: "tools:slow"
          timeout: 200ms
        }

        workflow w(seconds: float) -> str {
          s = slow(seconds)
          return s
        }
        """,
    )
    assert p.run({"seconds": 0.01}).result == "slept 0.01"
    out = p.run({"seconds": 30.0})
    assert out.status == "failed" and out.error["kind"] == "timeout", out.error
    deadline = time.monotonic() + 10
    while "cancelled" not in names(p) and time.monotonic() < deadline:
        time.sleep(0.02)
    # the coroutine saw CancelledError at its await and never finished
    assert names(p) == ["start", "end", "start", "cancelled"]


def test_a_keyed_async_effect_cancelled_at_its_timeout_is_called_again_with_its_key(
    tmp_path: Path,
) -> None:
    p = program(
        tmp_path,
        """
        effect pay(order: str) -> str {
          impl: "tools:pay"
          key: "pay:{order}"
          timeout: 200ms
          retry: { attempts: 3, backoff: 10ms, on: [timeout] }
        }

        workflow w(order: str) -> str {
          r = pay(order)
          return r
        }
        """,
    )
    out = p.run({"order": "o-1"})
    assert out.status == "completed", out.error
    assert out.result == "paid o-1"
    pays = [c for c in p.calls() if c["name"] == "pay"]
    assert [(c["key"], c["attempt"]) for c in pays] == [("pay:o-1", 1), ("pay:o-1", 2)]


def test_a_once_async_effect_cancelled_at_its_timeout_opens_a_repair(tmp_path: Path) -> None:
    p = program(
        tmp_path,
        """
        effect charge(order: str) -> str {
          impl: "tools:charge"
          once: true
          timeout: 200ms
        }

        workflow w(order: str) -> str {
          r = charge(order)
          return r
        }
        """,
    )
    out = p.run({"order": "o-2"})
    assert out.status == "waiting", out.error
    [cp] = p.store.open_checkpoints(out.run_id)
    assert cp.checkpoint_id.startswith("repair:")
    assert names(p) == ["charge"]  # never a second call
    assert p.events(out.run_id, "repair_opened")


def test_a_cancelled_branch_cancels_its_async_call(tmp_path: Path) -> None:
    p = program(
        tmp_path,
        """
        tool slow(seconds: float) -> str {
          impl: "tools:slow"
        }

        tool boom(n: int) -> str {
          impl: "tools:boom"
        }

        workflow w() -> str {
          parallel {
            a = slow(30.0)
            b = boom(1)
          }
          return "{a} {b}"
        }
        """,
    )
    out = p.run()
    assert out.status == "failed" and "boom" in out.error["message"]
    deadline = time.monotonic() + 10
    while "cancelled" not in names(p) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert names(p) == ["start", "cancelled"]


def test_async_tools_under_process_isolation(tmp_path: Path) -> None:
    p = program(
        tmp_path,
        """
        tool pid() -> int {
          impl: "tools:pid"
          isolation: process
        }

        tool slow(seconds: float) -> str {
          impl: "tools:slow"
          timeout: 3s
          isolation: process
        }

        workflow w(seconds: float) -> str {
          who = pid()
          s = slow(seconds)
          return "{who} {s}"
        }
        """,
    )
    out = p.run({"seconds": 0.0})
    assert out.status == "completed", out.error
    child, text = out.result.split(" ", 1)
    assert int(child) != os.getpid() and text == "slept 0.0"
    out = p.run({"seconds": 30.0})
    assert out.status == "failed" and out.error["kind"] == "timeout"
    assert "killed the tool's process" in out.error["message"]


def test_async_cancel_before_and_during_the_call() -> None:
    import asyncio

    early = AsyncCancel()
    early.cancel()
    with pytest.raises(Exception, match="cancelled"):
        await_call(asyncio.sleep(30), None, early)
    late = AsyncCancel()
    seen: list[str] = []

    async def wait() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    threading.Timer(0.1, late.cancel).start()
    with pytest.raises(Exception, match="cancelled"):
        await_call(wait(), None, late)
    assert seen == ["cancelled"]
    assert await_call(asyncio.sleep(0, "done"), 5.0) == "done"


# --- kill -9 during an async effect ---------------------------------------------------------


KILL_SOURCE = """
effect charge(order: str) -> str {
  impl: "tools:charge_once"
  once: true
}

effect pay(order: str) -> str {
  impl: "tools:pay_keyed"
  key: "pay:{order}"
}

workflow once_flow(order: str) -> str {
  r = charge(order)
  return r
}

workflow keyed_flow(order: str) -> str {
  r = pay(order)
  return r
}
"""

KILL_TOOLS = """
import asyncio

async def charge_once(order):
    record("charge", order=order)
    await asyncio.sleep(60)
    return "charged"

async def pay_keyed(order, *, key):
    record("pay", key=key)
    if len([1 for line in open(HERE / "calls.jsonl")]) == 1:
        await asyncio.sleep(60)  # the first call hangs until the process is killed
    return "paid " + key
"""


def mnc(folder: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNC_")}
    env.update(PYTHONPATH=str(ROOT), MNC_DB=str(folder / "journal.db"), MNC_COMMIT_MS="0")
    return subprocess.Popen(
        [sys.executable, "-m", "mnlang.cli", *args, "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill_when_called(folder: Path, proc: subprocess.Popen[str]) -> None:
    calls = folder / "calls.jsonl"
    deadline = time.monotonic() + 60

    # A whole line, not just the file: a kill between the file's creation and its line
    # would leave no call recorded, and the resumed call would take itself for the first.
    def recorded() -> bool:
        return calls.exists() and calls.read_text().endswith("\n")

    while not recorded() and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()


@pytest.mark.parametrize("flow", ["once_flow", "keyed_flow"])
def test_kill_9_during_an_async_effect(tmp_path: Path, flow: str) -> None:
    folder = tmp_path / "kill"
    folder.mkdir()
    (folder / "main.mn").write_text(KILL_SOURCE, "utf-8")
    (folder / "tools.py").write_text(RECORDER + KILL_TOOLS, "utf-8")
    run_id = f"kill-{flow}"
    started = mnc(
        folder, "run", str(folder / "main.mn"), "-w", flow, "--id", run_id,
        "--input", '{"order": "o-9"}',
    )  # fmt: skip
    kill_when_called(folder, started)
    resumed = mnc(folder, "resume", run_id)
    out, err = resumed.communicate(timeout=60)
    outcome: dict[str, Any] = json.loads(out)
    calls = [json.loads(line) for line in (folder / "calls.jsonl").read_text().splitlines()]
    if flow == "once_flow":
        assert resumed.returncode == 3, err
        assert outcome["status"] == "waiting"
        with SQLiteStore(folder / "journal.db") as store:
            [cp] = store.open_checkpoints(run_id)
        assert cp.checkpoint_id.startswith("repair:")
        assert [c["name"] for c in calls] == ["charge"]  # never a second charge
    else:
        assert resumed.returncode == 0, err
        assert outcome["result"] == "paid pay:o-9"
        assert [c["key"] for c in calls] == ["pay:o-9", "pay:o-9"]  # the same key again


def test_the_docs_example_runs(tmp_path: Path) -> None:
    """docs/tools.md's async example, as written there."""
    import re

    text = (ROOT / "docs" / "tools.md").read_text("utf-8")
    section = text.split("## async tools and effects", 1)[1]
    source = re.search(r"```mn\n(.*?)```", section, re.S)
    tools = re.search(r"```python\n(.*?)```", section, re.S)
    assert source is not None and tools is not None
    p = Program(tmp_path / "doc", source.group(1), tools.group(1))
    out = p.run({"sku": "mug", "qty": 3})
    assert out.status == "completed", out.error
    assert out.result == "reservation reserve:mug:3 at $4.20"
