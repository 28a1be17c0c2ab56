"""kill -9 of `mnc serve` in the middle of starts and signals: a client that retries what
got no answer (same run id, same signal id) finds every run once, with its input, and
every signal once."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import httpx2
import pytest

from mnlang.stores.sqlite import SQLiteStore
from tests.api.server import ADMIN_TOKEN, SHOP, kill_9_in_a_storm, serve

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
RUNS = 60


def _start(url: str, n: int) -> bool:
    body = {"workflow": "order", "input": {"id": f"k{n}", "amount": f"{n}.50"}, "run_id": f"k{n}"}
    try:
        answer = httpx2.post(url + "/api/v1/runs", json=body, headers=ADMIN, timeout=10)
    except httpx2.HTTPError:
        return False
    assert answer.status_code in (200, 201), answer.text
    return True


def _signal(url: str, n: int) -> bool:
    body = {"event": "paid", "key": f"k{n}", "payload": {"amount": "1"}, "signal_id": f"s{n}"}
    try:
        answer = httpx2.post(
            url + f"/api/v1/runs/k{n}/signals", json=body, headers=ADMIN, timeout=10
        )
    except httpx2.HTTPError:
        return False
    assert answer.status_code in (200, 202), answer.text
    return True


@pytest.mark.slow
def test_kill_9_during_starts_and_signals_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    with serve(db, execute=False) as served:
        body = {"source": SHOP.read_text(), "path": str(SHOP)}
        assert httpx2.post(served.url + "/api/v1/programs", json=body, headers=ADMIN).is_success
        started = kill_9_in_a_storm(served, partial(_start, served.url), RUNS)
    assert 0 < len(started) < RUNS
    with serve(db, execute=False) as served:
        for n in range(RUNS):  # the client retries every start; answered ones are no-ops
            assert _start(served.url, n)
        kill_9_in_a_storm(served, partial(_signal, served.url), RUNS)
    with serve(db, execute=False) as served:
        for n in range(RUNS):
            assert _signal(served.url, n)
    with SQLiteStore(db) as store:
        runs = store.list_runs(limit=1000)
        assert sorted(r.run_id for r in runs) == sorted(f"k{n}" for n in range(RUNS))
        for r in runs:
            n = int(r.run_id[1:])
            assert r.args == {"id": r.run_id, "amount": f"{n}.50", "note": "none"}
            unread = store.pending_signals(r.run_id)
            assert [(s.name, s.key, s.signal_id) for s in unread] == [("paid", r.run_id, f"s{n}")]
