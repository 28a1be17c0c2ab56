"""Webhooks in, over real HTTP against `mnc serve`: verified over the raw bytes (Stripe
and GitHub styles), turned into signals with the correlation key from the body, repeats
ignored, and kill -9 of the server mid-storm loses and duplicates nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import httpx2
import pytest

from mnlang.outbox.signing import sign_github, sign_stripe
from mnlang.stores.sqlite import SQLiteStore
from tests.api.server import ADMIN_TOKEN, Served, env_for, kill_9_in_a_storm, serve

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
PAY = Path(__file__).parent / "webhooks" / "pay.mn"
STRIPE_SECRET = "whsec_stripe-side-secret-0123456789"
GITHUB_SECRET = "github-side-secret-0123456789"
ENV = {"STRIPE_SECRET": STRIPE_SECRET, "GH_SECRET": GITHUB_SECRET}
TOML = """
[inbound.stripe]
path = "/hooks/stripe"
event = "paid"
key = "$.data.order_id"
payload = "$.data.object"
verify = "stripe"
secret_env = "STRIPE_SECRET"

[inbound.github]
path = "/hooks/github"
event = "paid"
run = "$.run"
key = "$.order"
payload = "$.payment"
verify = "github"
secret_env = "GH_SECRET"
"""


def stripe_event(delivery: str, order: str, amount: str = "5.00") -> dict[str, Any]:
    return {
        "id": delivery,
        "type": "payment.settled",
        "note": "café ☕",
        "data": {"order_id": order, "object": {"amount": amount}},
    }


def post_stripe(
    served: Served, body: bytes, *, signed: bytes | None = None, at: int | None = None
) -> httpx2.Response:
    """POST `body`, signed over `signed` (default: the body itself) at time `at`."""
    header = sign_stripe(
        STRIPE_SECRET.encode(), body if signed is None else signed, at or int(time.time())
    )
    return httpx2.post(
        served.url + "/hooks/stripe",
        content=body,
        headers={"content-type": "application/json", "stripe-signature": header},
        timeout=10,
    )


def start(served: Served, *ids: str) -> None:
    body = {"source": PAY.read_text(), "path": str(PAY)}
    assert httpx2.post(served.url + "/api/v1/programs", json=body, headers=ADMIN).status_code == 201
    for run_id in ids:
        start = {"workflow": "pay", "input": {"id": run_id}, "run_id": run_id}
        answer = httpx2.post(served.url + "/api/v1/runs", json=start, headers=ADMIN)
        assert answer.status_code == 201, answer.text


def status_of(served: Served, run_id: str, wanted: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        run = httpx2.get(f"{served.url}/api/v1/runs/{run_id}", headers=ADMIN).json()
        if run["status"] == wanted:
            return dict(run)
        assert time.monotonic() < deadline, run
        time.sleep(0.05)


def signals_of(db: Path, run_id: str) -> list[str]:
    with SQLiteStore(db) as store:
        return [
            row[0]
            for row in store._query("SELECT signal_id FROM signals WHERE run_id = ?", (run_id,))
        ]


def test_webhooks_in_verify_the_raw_bytes_and_become_signals_once(tmp_path: Path) -> None:
    (tmp_path / "mnlang.toml").write_text(TOML)
    db = tmp_path / "journal.db"
    with serve(db, cwd=tmp_path, env=ENV) as served:
        start(served, "p1", "p2", "p3", "p4")
        for run_id in ("p1", "p2", "p3"):
            status_of(served, run_id, "waiting")
        # compact and ASCII-escaped ...
        compact = json.dumps(stripe_event("evt_1", "p1"), separators=(",", ":")).encode()
        # ... and re-serialized: spaces, other key order, raw UTF-8 instead of \u escapes
        spaced = json.dumps(
            dict(reversed(stripe_event("evt_2", "p2").items())), indent=3, ensure_ascii=False
        ).encode()
        assert b"\\u00e9" in compact and "é".encode() in spaced
        first = post_stripe(served, compact)
        assert first.status_code == 200, first.text
        assert first.json()["runs"] == ["p1"]
        assert post_stripe(served, spaced).status_code == 200
        # a repeated delivery id: 200, ignored, once the run has moved on too
        status_of(served, "p1", "completed")
        again = post_stripe(served, compact)
        assert again.status_code == 200 and again.json()["ignored"] is True
        # a tampered body (signed over other bytes), a stale timestamp: 401, nothing kept
        tampered = json.dumps(stripe_event("evt_3", "p3", "999.00")).encode()
        honest = json.dumps(stripe_event("evt_3", "p3")).encode()
        assert post_stripe(served, tampered, signed=honest).status_code == 401
        stale = post_stripe(served, honest, at=int(time.time()) - 400)
        assert stale.status_code == 401
        assert "timestamp" in stale.json()["message"]
        # no run waits for that key: not 2xx, so the sender tries again later
        assert (
            post_stripe(served, json.dumps(stripe_event("evt_4", "nobody")).encode()).status_code
            == 404
        )
        # GitHub style: the run id and the key from the body, the delivery id a header
        body = json.dumps({"run": "p4", "order": "p4", "payment": {"amount": "7.00"}}).encode()
        headers = {
            "x-hub-signature-256": sign_github(GITHUB_SECRET.encode(), body),
            "x-github-delivery": "d-41",
        }
        assert (
            httpx2.post(served.url + "/hooks/github", content=body, headers=headers).status_code
            == 200
        )
        bad = {
            **headers,
            "x-hub-signature-256": "sha256=" + hmac.new(b"wrong", body, hashlib.sha256).hexdigest(),
        }
        assert (
            httpx2.post(served.url + "/hooks/github", content=body, headers=bad).status_code == 401
        )
        # without a token: /hooks/ is outside the API's tokens, verified by HMAC instead
        p1 = status_of(served, "p1", "completed")
        p2 = status_of(served, "p2", "completed")
        p4 = status_of(served, "p4", "completed")
        log = served.log.read_text()
        journal = httpx2.get(f"{served.url}/api/v1/runs/p1/journal", headers=ADMIN).json()
    # who made it: the signal is journaled with its sender, and `mnc log` shows it
    [signal] = [e for e in journal["events"] if e["kind"] == "signal"]
    assert signal["data"]["by"] == "inbound:stripe"
    shown = subprocess.run(
        [sys.executable, "-m", "mnlang.cli", "log", "p1"],
        env=env_for(db),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "(by inbound:stripe)" in shown
    assert p1["result"] == "p1 paid $5.00" and p2["result"] == "p2 paid $5.00"
    assert p4["result"] == "p4 paid $7.00"
    assert signals_of(db, "p1") == ["inbound:stripe:evt_1"]
    assert signals_of(db, "p3") == []  # tampered and stale: nothing journaled
    assert signals_of(db, "p4") == ["inbound:github:d-41"]
    assert STRIPE_SECRET not in log and GITHUB_SECRET not in log


RUNS = 40
STORM_TOML = """
[inbound.stripe]
path = "/hooks/stripe"
event = "paid"
run = "$.data.order_id"
key = "$.data.order_id"
payload = "$.data.object"
verify = "stripe"
secret_env = "STRIPE_SECRET"
"""


@pytest.mark.slow
def test_kill_9_during_inbound_webhooks_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    (tmp_path / "mnlang.toml").write_text(STORM_TOML)
    db = tmp_path / "journal.db"
    ids = [f"q{n}" for n in range(RUNS)]

    def send(served: Served, n: int) -> bool:
        body = json.dumps(stripe_event(f"evt_{n}", f"q{n}")).encode()
        try:
            answer = post_stripe(served, body)
        except httpx2.HTTPError:
            return False
        assert answer.status_code == 200, answer.text
        return True

    with serve(db, cwd=tmp_path, env=ENV, execute=False) as served:
        start(served, *ids)
        answered = kill_9_in_a_storm(served, partial(send, served), RUNS)
    assert 0 < len(answered) < RUNS
    with serve(db, cwd=tmp_path, env=ENV, execute=False) as served:
        for n in range(RUNS):  # the sender retries every delivery it is unsure of: all
            assert send(served, n)
    for n, run_id in enumerate(ids):
        assert signals_of(db, run_id) == [f"inbound:stripe:evt_{n}"]
