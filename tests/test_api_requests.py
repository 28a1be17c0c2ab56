"""The API's handling of requests, in-process through Starlette's TestClient (the live
server's tests are in test_api_server.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from mnlang.server.app import create_server_app
from mnlang.stores import open_store
from mnlang.stores.base import Batch, NewRun, OpenCheckpoint, Store
from mnlang.ui.auth import Authenticator
from mnlang.ui.tokens import TokenFile

TOKEN = "admin-token-for-the-api-request-tests"
HEADERS = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
REPAIR = "repair:pay@[]"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(tmp_path / "journal.db")
    yield opened
    opened.close()


def api(store: Store) -> TestClient:
    auth = Authenticator(admin_token=TOKEN, tokens=None, loopback=True)
    return TestClient(create_server_app(store, auth, execute=False), base_url="http://127.0.0.1")


def with_repair(store: Store, run_id: str) -> None:
    """A waiting run with an open repair checkpoint (an effect whose outcome is unknown)."""
    store.create_run(NewRun(run_id, "review", {}, "support", "0" * 64, status="waiting"))
    request = {
        "kind": "repair",
        "effect": "pay",
        "key": "pay:1",
        "args": {"order_id": "1"},
        "reason": "the call timed out",
        "options": ["mark_done", "retry", "fail"],
        "result_type": "str",
    }
    store.commit(Batch(run_id, open_checkpoints=[OpenCheckpoint(REPAIR, "repair", request)]))


def test_reject_over_the_api_fails_a_repair_as_mnc_reject_does(store: Store) -> None:
    with_repair(store, "fixme")
    client = api(store)
    path = f"/api/v1/runs/fixme/checkpoints/{REPAIR}/decision"
    approved = client.post(path, json={"choice": "approve"}, headers=HEADERS)
    assert approved.status_code == 400, approved.text
    assert "needs a choice: `mark_done`" in approved.json()["error"]["message"]
    rejected = client.post(path, json={"choice": "reject"}, headers=HEADERS)
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["choice"] == "fail"
    checkpoint = store.get_checkpoint("fixme", REPAIR)
    assert checkpoint is not None and checkpoint.decision["choice"] == "fail"


@pytest.mark.parametrize(
    ("body", "refused"),
    [
        (b'{"workflow": "order", "input": {"amount": NaN}}', "has `NaN`, which is not JSON"),
        (b'{"workflow": "order", "input": {"n": 1e999}}', "out of a float's range"),
        (b'{"workflow": "order", "input": {"n": ' + b"9" * 200 + b"}}", "a number of 200"),
        (b'{"workflow": "order", "input": {"s": "\\udc00"}}', "has a lone surrogate"),
        (b'{"workflow": "order"', "is not JSON"),
    ],
)
def test_a_body_is_decoded_as_all_json_coming_in_is(
    store: Store, body: bytes, refused: str
) -> None:
    """By `mnlang.jsonin`, as `mnc run --input` and `mnc signal` decode theirs: `NaN` and
    `Infinity`, out-of-range and overlong numbers and lone surrogates are refused up front."""
    answer = api(store).post("/api/v1/runs", content=body, headers=HEADERS)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_body" and refused in error["message"], error
    assert error["message"].startswith("the body ")


def test_the_assignee_rule_holds_for_every_change_over_the_api(
    store: Store, tmp_path: Path
) -> None:
    """As in the console (docs/ui.md): while a run's checkpoint is assigned to alice, bob
    (an operator) may neither signal nor cancel the run, alone or in a bulk cancel."""
    store.create_run(NewRun("held", "review", {}, "support", "0" * 64, status="waiting"))
    request = {"ask": "ship?", "options": ["approve", "reject"], "assignee": "alice"}
    store.commit(Batch("held", open_checkpoints=[OpenCheckpoint("d", "review", request)]))
    tokens = TokenFile(tmp_path / "tokens.json")
    bob = tokens.add("bob")
    auth = Authenticator(admin_token=TOKEN, tokens=tokens, loopback=True)
    client = TestClient(create_server_app(store, auth, execute=False), base_url="http://127.0.0.1")
    as_bob = {"authorization": f"Bearer {bob}"}
    for path, body in (
        ("/api/v1/runs/held/signals", {"event": "nudge", "payload": "x"}),
        ("/api/v1/runs/held/cancel", None),
    ):
        refused = client.post(path, json=body, headers=as_bob)
        assert refused.status_code == 403, (path, refused.text)
        error = refused.json()["error"]
        assert (
            error["code"] == "assigned_to_another" and "only they or an admin" in error["message"]
        )
    bulk = client.post("/api/v1/bulk/cancel", json={}, headers=as_bob).json()
    assert bulk["done"] == [] and [s["run_id"] for s in bulk["skipped"]] == ["held"]
    assert "only they or an admin" in bulk["skipped"][0]["reason"]
    run = store.get_run("held")
    assert run is not None and not run.cancel_requested
    allowed = client.post("/api/v1/runs/held/cancel", headers=HEADERS)  # the admin may
    assert allowed.status_code == 202, allowed.text
