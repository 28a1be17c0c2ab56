"""The HTTP API of `mnc serve`, end to end over real HTTP against a live server process."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from mnlang.stores.sqlite import SQLiteStore
from tests.api.server import ADMIN_TOKEN, SHOP, Served, serve

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Served]:
    with serve(tmp_path / "journal.db") as served:
        yield served


def call(served: Served, method: str, path: str, **kw: Any) -> httpx2.Response:
    headers = {**ADMIN, **kw.pop("headers", {})}
    return httpx2.request(method, served.url + path, headers=headers, timeout=30, **kw)


def register(served: Served) -> dict[str, Any]:
    answer = call(
        served, "POST", "/api/v1/programs", json={"source": SHOP.read_text(), "path": str(SHOP)}
    )
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def wait_until(served: Served, run_id: str, wanted: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        run = call(served, "GET", f"/api/v1/runs/{run_id}").json()
        if run["status"] == wanted and (
            wanted != "waiting" or run["pending"]["checkpoints"] or run["pending"]["events"]
        ):
            return dict(run)
        assert time.monotonic() < deadline, run
        time.sleep(0.05)


def test_a_run_started_decided_and_signalled_over_http(server: Served) -> None:
    program = register(server)
    (workflow,) = program["workflows"]
    assert workflow["name"] == "order"
    assert workflow["input_schema"]["required"] == ["id", "amount"]
    listed = call(server, "GET", "/api/v1/workflows").json()["workflows"]
    assert [w["name"] for w in listed] == ["order"]

    start = {"workflow": "order", "input": {"id": "o-1", "amount": "240.0"}, "run_id": "o-1"}
    started = call(server, "POST", "/api/v1/runs", json=start)
    assert started.status_code == 201 and started.json()["created"] is True
    assert started.json()["started_by"] == "admin"
    run = wait_until(server, "o-1", "waiting")
    # Pending work names the checkpoint, not its state id.
    (checkpoint,) = run["pending"]["checkpoints"]
    assert checkpoint["name"] == "review"
    assert any(p["checkpoint"] == "review" for p in run["positions"])

    # The same id, the same input canonically: the run, not a new one.
    again = {**start, "input": {"id": "o-1", "amount": "240.00", "note": "none"}}
    same = call(server, "POST", "/api/v1/runs", json=again)
    assert same.status_code == 200 and same.json()["created"] is False
    # Other input: a conflict showing both.
    other = call(
        server, "POST", "/api/v1/runs", json={**start, "input": {"id": "o-1", "amount": "1"}}
    )
    assert other.status_code == 409
    error = other.json()["error"]
    assert error["type"] == "conflict" and error["code"] == "run_conflict"
    assert error["details"]["existing_input"]["amount"] == "240.0"
    assert error["details"]["given_input"]["amount"] == "1"

    decided = call(
        server, "POST", "/api/v1/runs/o-1/checkpoints/review/decision", json={"choice": "approve"}
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["by"] == "admin"
    run = wait_until(server, "o-1", "waiting")
    deadline = time.monotonic() + 30
    while run["pending"]["events"] != ["paid#o-1"]:
        assert time.monotonic() < deadline, run
        run = call(server, "GET", "/api/v1/runs/o-1").json()

    signal = {"event": "paid", "key": "o-1", "payload": {"amount": "240"}, "signal_id": "pay-1"}
    sent = call(server, "POST", "/api/v1/runs/o-1/signals", json=signal)
    assert sent.status_code == 202 and sent.json()["accepted"] is True
    done = wait_until(server, "o-1", "completed")
    assert done["result"] == "o-1 paid $240 after admin approved"
    late = call(server, "POST", "/api/v1/runs/o-1/signals", json=signal)
    assert late.status_code == 409 and late.json()["error"]["code"] == "run_ended"

    page = call(server, "GET", "/api/v1/runs/o-1/journal", params={"limit": 2}).json()
    assert [e["seq"] for e in page["events"]] == [1, 2] and page["next_after"] == 2
    rest = call(server, "GET", "/api/v1/runs/o-1/journal", params={"after": 2, "limit": 1000})
    assert rest.json()["events"][0]["seq"] == 3 and rest.json()["next_after"] is None


def test_runs_are_listed_and_searched_by_cursor_without_a_cap(server: Served) -> None:
    register(server)
    ids = [f"r-{n:03d}" for n in range(130)]
    for run_id in ids:
        start = {"workflow": "order", "input": {"id": run_id, "amount": "1"}, "run_id": run_id}
        assert call(server, "POST", "/api/v1/runs", json=start).status_code == 201
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 40, "workflow": "order"}
        if cursor:
            params["cursor"] = cursor
        page = call(server, "GET", "/api/v1/runs", params=params).json()
        seen += [r["run_id"] for r in page["runs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == ids and len(seen) == len(set(seen))
    found = call(server, "GET", "/api/v1/runs", params={"q": "r-12"}).json()["runs"]
    assert sorted(r["run_id"] for r in found) == [f"r-{n}" for n in range(120, 130)]
    later = call(server, "GET", "/api/v1/runs", params={"since": time.time() + 60}).json()
    assert later["runs"] == []


def test_cancel_and_typed_errors(server: Served) -> None:
    register(server)
    start = {"workflow": "order", "input": {"id": "c", "amount": "1"}, "run_id": "c"}
    call(server, "POST", "/api/v1/runs", json=start)
    wait_until(server, "c", "waiting")
    assert call(server, "POST", "/api/v1/runs/c/cancel").status_code == 202
    assert wait_until(server, "c", "cancelled")["cancel_requested"] is True
    missing = call(server, "GET", "/api/v1/runs/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "run_not_found"
    bad = call(server, "POST", "/api/v1/runs", json={"workflow": "order", "input": {"id": "x"}})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_input"
    unknown = call(server, "POST", "/api/v1/runs", json={"workflow": "nope"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "workflow_not_found"
    broken = call(
        server, "POST", "/api/v1/programs", json={"source": "workflow w( {", "path": "/tmp/x.mn"}
    )
    assert broken.status_code == 422 and broken.json()["error"]["details"]["diagnostics"]


def test_no_state_change_without_a_valid_token(server: Served) -> None:
    register(server)
    start = {"workflow": "order", "input": {"id": "t", "amount": "1"}, "run_id": "t"}
    for headers in ({}, {"authorization": "Bearer wrong-token-0000000000"}):
        refused = httpx2.post(server.url + "/api/v1/runs", json=start, headers=headers)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "token_required"
    assert call(server, "GET", "/api/v1/runs").json()["runs"] == []
    assert httpx2.get(server.url + "/api/v1/openapi.json").json()["openapi"] == "3.1.0"


def test_roles_and_workflow_scopes(tmp_path: Path) -> None:
    from mnlang.ui.tokens import TokenFile

    tokens = TokenFile(tmp_path / "ui-tokens.json")
    viewer = tokens.add("vera", role="viewer")
    scoped = tokens.add("otto", role="operator", workflows=("billing",))
    operator = tokens.add("olga", role="operator")
    with serve(tmp_path / "journal.db") as server:
        register(server)
        start = {"workflow": "order", "input": {"id": "s", "amount": "1"}, "run_id": "s"}

        def as_(token: str, method: str, path: str, **kw: Any) -> httpx2.Response:
            return call(server, method, path, headers={"authorization": f"Bearer {token}"}, **kw)

        assert as_(viewer, "GET", "/api/v1/me").json() == {
            "user": "vera",
            "role": "viewer",
            "workflows": None,
        }
        assert as_(viewer, "POST", "/api/v1/runs", json=start).status_code == 403
        assert as_(scoped, "POST", "/api/v1/runs", json=start).status_code == 403
        assert as_(operator, "POST", "/api/v1/programs", json={"source": "x"}).status_code == 403
        assert as_(operator, "POST", "/api/v1/runs", json=start).status_code == 201
        wait_until(server, "s", "waiting")
        assert as_(viewer, "POST", "/api/v1/runs/s/cancel").status_code == 403
        assert as_(viewer, "GET", "/api/v1/runs/s").status_code == 200
        decided = as_(
            operator,
            "POST",
            "/api/v1/runs/s/checkpoints/review/decision",
            json={"choice": "reject"},
        )
        assert decided.status_code == 200 and decided.json()["by"] == "olga"
        assert wait_until(server, "s", "completed")["result"] == "rejected by olga"


def test_a_token_file_from_before_roles_gives_operators(tmp_path: Path) -> None:
    import json

    from mnlang.ui.tokens import TokenFile, digest

    path = tmp_path / "ui-tokens.json"
    path.write_text(json.dumps({"users": {"old": {"sha256": digest("mnc_x"), "created_at": 1}}}))
    entry = TokenFile(path).entry_of("mnc_x")
    assert entry is not None and entry.role == "operator" and entry.workflows is None


def test_concurrent_starts_of_one_id_with_different_inputs_give_one_run(server: Served) -> None:
    register(server)
    answers: list[int] = []

    def start(amount: str) -> None:
        body = {"workflow": "order", "input": {"id": "race", "amount": amount}, "run_id": "race"}
        answers.append(call(server, "POST", "/api/v1/runs", json=body).status_code)

    threads = [threading.Thread(target=start, args=(str(n),)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [201, 409]
    db = Path(server.log).with_name("journal.db")
    with SQLiteStore(db) as store:
        assert [r.run_id for r in store.list_runs()] == ["race"]


def test_on_postgresql_with_workers_behind_the_server(pg_url: str, tmp_path: Path) -> None:
    """`--no-execute`: the server only records; two `mnc worker`s move the runs."""
    import subprocess
    import sys

    from tests.api.server import env_for

    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "mnlang.cli", "worker", "--db", pg_url],
            env=env_for(pg_url),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        with serve(pg_url, execute=False, log_dir=tmp_path) as server:
            register(server)
            for n in range(4):
                start = {
                    "workflow": "order",
                    "input": {"id": f"p{n}", "amount": "2"},
                    "run_id": f"p{n}",
                }
                assert call(server, "POST", "/api/v1/runs", json=start).status_code == 201
            other = {"workflow": "order", "input": {"id": "p0", "amount": "3"}, "run_id": "p0"}
            assert call(server, "POST", "/api/v1/runs", json=other).status_code == 409
            for n in range(4):
                wait_until(server, f"p{n}", "waiting")
                path = f"/api/v1/runs/p{n}/checkpoints/review/decision"
                assert call(server, "POST", path, json={"choice": "approve"}).status_code == 200
                signal = {"event": "paid", "key": f"p{n}", "payload": {"amount": "2"}}
                assert call(server, "POST", f"/api/v1/runs/p{n}/signals", json=signal).is_success
            for n in range(4):
                assert wait_until(server, f"p{n}", "completed")["result"].startswith(f"p{n} paid")
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(timeout=30)


def test_bulk_cancel_by_filter(tmp_path: Path) -> None:
    from mnlang.ui.tokens import TokenFile

    scoped = TokenFile(tmp_path / "ui-tokens.json").add("otto", workflows=("billing",))
    with serve(tmp_path / "journal.db", execute=False) as server:
        register(server)
        for run_id in ("bulk-1", "bulk-2", "keep-1"):
            start = {"workflow": "order", "input": {"id": run_id, "amount": "1"}, "run_id": run_id}
            assert call(server, "POST", "/api/v1/runs", json=start).status_code == 201
        body = {"filter": {"workflow": "order", "q": "bulk"}}
        refused = call(
            server,
            "POST",
            "/api/v1/bulk/cancel",
            json=body,
            headers={"authorization": f"Bearer {scoped}"},
        ).json()
        assert refused["done"] == [] and len(refused["skipped"]) == 2
        done = call(server, "POST", "/api/v1/bulk/cancel", json=body).json()
        assert sorted(done["done"]) == ["bulk-1", "bulk-2"] and done["more"] is False
        for run_id, wanted in (("bulk-1", True), ("bulk-2", True), ("keep-1", False)):
            assert (
                call(server, "GET", f"/api/v1/runs/{run_id}").json()["cancel_requested"] is wanted
            )
