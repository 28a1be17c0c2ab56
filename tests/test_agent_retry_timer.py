"""An agent's retry delay over a second is a durable timer, as a tool's is: the run waits
holding no worker, and a worker killed during the delay leaves nothing to take over, so
the next worker sends the next request when the timer is due (not after a lease expires)
and never asks the model again for a reply already journaled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mnlang.ir.compile import compile_file
from mnlang.models.openai import OpenAIConfig, OpenAIProvider
from mnlang.models.setup import ModelSetup
from mnlang.runtime.config import RuntimeConfig
from mnlang.runtime.run import resume_run, start_run
from mnlang.stores.base import Store
from mnlang.stores.sqlite import SQLiteStore
from tests.chat_server import ChatServer, chat_server
from tests.human.harness import ROOT

FLOW = """\
type Triage {
  label: str
}

agent triage(text: str) -> Triage {
  model: "gpt-5.4-mini"
  prompt: "Classify: {text}"
  max_tokens: 50
  retry: { attempts: 2, backoff: 3s, on: [malformed_output] }
}

workflow classify(text: str) -> str {
  t = triage(text)
  return t.label
}
"""

LEASE_TTL = 20.0
"""The killed worker's lease time: a run it held would wait this long for a takeover."""
KILLED_BACKOFF = "6s"
"""The retry delay of the test that kills a worker: long enough for the next worker to
start (and import the model SDK) before the timer is due, on a loaded machine too."""


@pytest.fixture
def server() -> Iterator[ChatServer]:
    with chat_server() as s:
        s.chat("not json at all")  # the first attempt: malformed, retried after 3 s
        s.chat({"label": "late"})
        yield s


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    path = tmp_path / "flow.mn"
    path.write_text(FLOW)
    return path


def openai(server: ChatServer) -> RuntimeConfig:
    provider = OpenAIProvider(OpenAIConfig(base_url=server.base_url, api_key="k"))
    return RuntimeConfig(models=ModelSetup(spec="openai", override=provider), commit_ms=0)


def retry_due_at(store: Store, run_id: str) -> float:
    [timer] = store.run_timers(run_id)
    assert timer.timer_id == "retry:t"
    return timer.due_at


def test_an_agent_retry_waits_on_a_durable_timer(
    tmp_path: Path, flow: Path, server: ChatServer
) -> None:
    ir, diagnostics = compile_file(flow)
    assert ir is not None, diagnostics
    with SQLiteStore(tmp_path / "journal.db") as store:
        outcome = start_run(
            store, ir, "classify", {"text": "x"}, run_id="r1", config=openai(server)
        )
        assert outcome.status == "waiting"
        due = retry_due_at(store, "r1")
        assert len(server.requests) == 1
        assert resume_run(store, "r1", config=openai(server)).status == "waiting"  # not yet
        assert len(server.requests) == 1
        time.sleep(max(0.0, due - store.now()))
        outcome = resume_run(store, "r1", config=openai(server))
        assert (outcome.status, outcome.result) == ("completed", "late")
        assert len(server.requests) == 2
        assert store.run_timers("r1") == []
        second = server.requests[1].body["messages"]
        assert second[-2] == {"role": "assistant", "content": "not json at all"}


def held(store: Store, run_id: str) -> bool:
    record = store.get_run(run_id)
    return record is not None and record.lease_owner is not None


def worker(db: Path, server: ChatServer, lease_ttl: float = 30.0) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNC_")}
    env.update(
        PYTHONPATH=str(ROOT),
        MNC_MODELS="openai",
        MNC_OPENAI_BASE_URL=server.base_url,
        MNC_OPENAI_API_KEY="k",
    )
    args = ["worker", "--db", str(db), "--concurrency", "1", "--lease-ttl", str(lease_ttl)]
    return subprocess.Popen(
        [sys.executable, "-m", "mnlang.cli", *args, "--quiet"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.slow
@pytest.mark.serial
def test_a_worker_killed_during_an_agent_retry_delay(
    tmp_path: Path, flow: Path, server: ChatServer
) -> None:
    flow.write_text(FLOW.replace("backoff: 3s", f"backoff: {KILLED_BACKOFF}"))
    ir, diagnostics = compile_file(flow)
    assert ir is not None, diagnostics
    db = tmp_path / "journal.db"
    with SQLiteStore(db) as store:
        start_run(store, ir, "classify", {"text": "x"}, run_id="r1", detach=True)
        first = worker(db, server, LEASE_TTL)
        try:
            deadline = time.monotonic() + 30
            # The run waits on the timer and the worker gave its lease back: it holds
            # nothing (an in-memory delay would hold the run, leased, until it ends).
            while not store.run_timers("r1") or held(store, "r1"):
                assert time.monotonic() < deadline, "the run never waited on its timer"
                time.sleep(0.02)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        due = retry_due_at(store, "r1")
        assert store.now() < due  # killed during the delay
        second = worker(db, server)
        try:
            deadline = time.monotonic() + 30
            while len(server.requests) < 2:
                assert time.monotonic() < deadline, "the next attempt was never sent"
                time.sleep(0.01)
            sent_at = store.now()
            while (record := store.get_run("r1")) is None or record.status != "completed":
                assert time.monotonic() < deadline, "the run did not complete"
                time.sleep(0.02)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(10)
        assert record.result == "late"
        assert len(server.requests) == 2  # the journaled reply was not asked for again
        # At the timer's time, not after the killed worker's lease (which it never held
        # during the delay): the run waited, committed, holding nothing.
        assert due - 0.05 <= sent_at < due + LEASE_TTL / 4
        replies = [e for e in store.read_journal("r1") if e.kind == "model_reply"]
        assert [r.data["attempt"] for r in replies] == [1, 2]
