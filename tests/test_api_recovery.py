"""Retry and fork over the HTTP API, against a live `mnc serve` (docs/api.md): a failed
run retried in place once its cause is fixed (the receiving tool sees each effect once),
a refusal as a typed 409, a bulk retry by filter listing each run, a fork from a line
into a new run of the same journal with its effects answered from the source ledger."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from mnlang.client import Client, Conflict
from tests.api.server import ADMIN_TOKEN, Served, env_for, serve

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}

PAY = """\
effect charge(order: str) -> str {
  impl: "tools:charge"
  key: "charge:{order}"
}

effect alert(order: str) -> bool {
  impl: "tools:alert"
  key: "alert:{order}"
}

tool lookup(order: str) -> int {
  impl: "tools:lookup"
}

workflow pay(order: str) -> str {
  c = charge(order)
  n = lookup(order)
  return "{c} {n}"
}

workflow alerting(order: str) -> str {
  try {
    n = lookup(order)
  } finally {
    alerted = alert(order)
    log "alerted: {alerted}"
  }
  return "{n}"
}
"""
LOOKUP_LINE = PAY.splitlines().index("  n = lookup(order)") + 1
CHARGE_LINE = PAY.splitlines().index("  c = charge(order)") + 1

TOOLS = """\
import json
from pathlib import Path

HERE = Path(__file__).parent

def record(name, order):
    with open(HERE / "calls.jsonl", "a") as f:
        f.write(json.dumps({"name": name, "order": order}) + "\\n")

def charge(order):
    record("charge", order)
    return f"charged-{order}"

def alert(order):
    record("alert", order)
    return True

def lookup(order):
    record("lookup", order)
    if (HERE / "broken").exists():
        raise RuntimeError("the price service is down")
    return 42
"""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Served, Path]]:
    folder = tmp_path / "program"
    folder.mkdir()
    (folder / "pay.mn").write_text(PAY)
    (folder / "tools.py").write_text(TOOLS)
    with serve(tmp_path / "journal.db") as server:
        answer = call(
            server,
            "POST",
            "/api/v1/programs",
            json={"source": PAY, "path": str(folder / "pay.mn")},
        )
        assert answer.status_code == 201, answer.text
        yield server, folder


def call(served: Served, method: str, path: str, **kw: Any) -> httpx2.Response:
    return httpx2.request(method, served.url + path, headers=ADMIN, timeout=60, **kw)


def wait_until(served: Served, run_id: str, wanted: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        run = call(served, "GET", f"/api/v1/runs/{run_id}").json()
        if run["status"] == wanted:
            return dict(run)
        assert time.monotonic() < deadline, run
        time.sleep(0.05)


def calls(folder: Path) -> list[tuple[str, str]]:
    path = folder / "calls.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [(c["name"], c["order"]) for c in map(json.loads, lines)]


def start(served: Served, workflow: str, order: str) -> None:
    body = {"workflow": workflow, "input": {"order": order}, "run_id": order}
    assert call(served, "POST", "/api/v1/runs", json=body).status_code == 201


def test_retry_refusal_and_bulk_retry_over_http(served: tuple[Served, Path]) -> None:
    server, folder = served
    (folder / "broken").touch()
    start(server, "pay", "o-1")
    failed = wait_until(server, "o-1", "failed")
    assert failed["error"]["kind"] == "tool_error"

    # still broken: the retry runs the failed step again, and it fails again
    answer = call(server, "POST", "/api/v1/runs/o-1/retry")
    assert answer.status_code == 202, answer.text
    assert answer.json()["retries"] == 1 and answer.json()["step"]
    wait_until(server, "o-1", "failed")
    (folder / "broken").unlink()
    assert call(server, "POST", "/api/v1/runs/o-1/retry", json={}).status_code == 202
    done = wait_until(server, "o-1", "completed")
    assert done["result"] == "charged-o-1 42"
    assert calls(folder) == [("charge", "o-1")] + [("lookup", "o-1")] * 3
    journal = call(server, "GET", "/api/v1/runs/o-1/journal").json()["events"]
    retried = [e["data"] for e in journal if e["kind"] == "retried"]
    assert [r["by"] for r in retried] == ["admin", "admin"]

    again = call(server, "POST", "/api/v1/runs/o-1/retry")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "not_failed"
    with Client(server.url, ADMIN_TOKEN) as client, pytest.raises(Conflict) as refused_by:
        client.retry("o-1")
    assert refused_by.value.code == "not_failed"
    remote = subprocess.run(
        [sys.executable, "-m", "mnlang.cli", "retry", "o-1", "--server", server.url],
        env={**env_for(server.log.with_name("journal.db")), "MNC_SERVER_TOKEN": ADMIN_TOKEN},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert remote.returncode == 2 and "only a failed run is retried" in remote.stderr

    start(server, "alerting", "o-2")
    wait_until(server, "o-2", "completed")
    (folder / "broken").touch()
    start(server, "alerting", "o-3")
    wait_until(server, "o-3", "failed")
    refused = call(server, "POST", "/api/v1/runs/o-3/retry")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["type"] == "conflict" and error["code"] == "not_retryable"
    assert "alert:o-3" in error["message"] and "mnc fork" in error["help"]
    assert call(server, "POST", "/api/v1/runs/nope/retry").status_code == 404

    start(server, "pay", "o-4")
    start(server, "pay", "o-5")
    wait_until(server, "o-4", "failed")
    wait_until(server, "o-5", "failed")
    (folder / "broken").unlink()
    bulk = call(server, "POST", "/api/v1/bulk/retry", json={"filter": {"q": "o-"}, "limit": 10})
    assert bulk.status_code == 200, bulk.text
    out = bulk.json()
    assert sorted(r["run_id"] for r in out["retried"]) == ["o-4", "o-5"]
    assert [s["run_id"] for s in out["skipped"]] == ["o-3"]
    assert "alert:o-3" in out["skipped"][0]["reason"] and out["more"] is False
    for run_id in ("o-4", "o-5"):
        assert wait_until(server, run_id, "completed")["result"] == f"charged-{run_id} 42"
    assert calls(folder).count(("charge", "o-4")) == 1
    wrong = call(server, "POST", "/api/v1/bulk/retry", json={"filter": {"status": "running"}})
    assert wrong.status_code == 400


def test_fork_from_a_line_into_a_new_run_of_the_same_journal(
    served: tuple[Served, Path],
) -> None:
    server, folder = served
    start(server, "pay", "o-1")
    wait_until(server, "o-1", "completed")
    answer = call(
        server, "POST", "/api/v1/runs/o-1/fork", json={"from": str(CHARGE_LINE), "run_id": "f-1"}
    )
    assert answer.status_code == 201, answer.text
    forked = answer.json()
    assert forked["run_id"] == "f-1" and forked["status"] == "completed"
    assert forked["effects_from_ledger"] == ["charge"] and not forked["live_effects"]
    run = call(server, "GET", "/api/v1/runs/f-1").json()
    assert run["result"] == "charged-o-1 42"
    # the charge was answered from the source run's ledger, the lookup ran live
    assert calls(folder) == [("charge", "o-1"), ("lookup", "o-1"), ("lookup", "o-1")]

    again = call(
        server, "POST", "/api/v1/runs/o-1/fork", json={"from": str(LOOKUP_LINE), "run_id": "f-1"}
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "run_exists"
    nowhere = call(server, "POST", "/api/v1/runs/o-1/fork", json={"from": "9999"})
    assert nowhere.status_code == 400
    assert nowhere.json()["error"]["code"] == "fork_refused"
