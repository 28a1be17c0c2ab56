"""The API's group commit of starts (`mnlang.server.starts`): starts that arrive while a
commit is in flight share the next transaction, a refused start does not fail the others
of its group, one id started many times at once is one run, and a kill -9 of the server
in a storm of starts loses no answered start and duplicates none."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import pytest

from mnlang.ir.compile import compile_file
from mnlang.server import models as m
from mnlang.server.app import ApiError, Programs
from mnlang.server.starts import Started, StartQueue
from mnlang.stores import open_store
from mnlang.stores.base import NewRun, RunCreated, Store, StoreError
from tests.api.server import ADMIN_TOKEN, SHOP, Served, serve

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}


class GatedStore:
    """A real store whose first `create_runs` waits until `go` is set, so that the starts
    sent meanwhile gather into the next group; a transaction with the run `poison` fails
    (as a row the database refuses would fail it)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.entered = threading.Event()
        self.go = threading.Event()

    def create_runs(self, runs: Sequence[NewRun]) -> list[RunCreated]:
        if not self.go.is_set():
            self.entered.set()
            assert self.go.wait(30)
        if any(run.run_id == "poison" for run in runs):
            raise StoreError("the database refused a row of run `poison`")
        return self.store.create_runs(runs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def order(run_id: str, amount: str) -> m.StartRun:
    return m.StartRun(workflow="order", input={"id": run_id, "amount": amount}, run_id=run_id)


def grouped(store: Store, first: m.StartRun, group: list[m.StartRun]) -> list[Any]:
    """Start `first`, hold its transaction, send `group` meanwhile; the answers of the
    group (a `Started` or the exception), and the queue."""
    program, _ = compile_file(SHOP.absolute(), SHOP.read_text())
    assert program is not None
    gate = GatedStore(store)
    queue = StartQueue(gate, Programs(gate))  # type: ignore[arg-type]
    queue.programs.put(program)

    async def scenario() -> list[Any]:
        held = asyncio.create_task(queue.start(first, "tester", None))
        assert await asyncio.to_thread(gate.entered.wait, 30)
        rest = [asyncio.create_task(queue.start(body, "tester", None)) for body in group]
        deadline = time.monotonic() + 30
        while queue.waiting() < len(group):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        gate.go.set()
        assert (await held).outcome.created
        return list(await asyncio.gather(*rest, return_exceptions=True))

    answers = asyncio.run(scenario())
    assert queue.largest_group == len(group)  # taken together
    return answers


def test_a_refused_start_does_not_fail_the_others_of_its_group(store: Store) -> None:
    answers = grouped(
        store,
        order("a", "1"),
        [
            order("g1", "1"),
            order("bad", "not money"),  # refused before the transaction
            order("a", "2"),  # the id is taken with other input: 409
            order("a", "1.00"),  # the same input: the run
            order("poison", "1"),  # fails the group's transaction
            order("g2", "1"),
        ],
    )
    g1, bad, conflict, same, poison, g2 = answers
    for good in (g1, g2):
        assert isinstance(good, Started) and good.outcome.created, good
    assert isinstance(bad, ApiError) and bad.body.error.code == "invalid_input"
    assert isinstance(conflict, ApiError) and conflict.status == 409
    assert conflict.body.error.details == {
        "run_id": "a",
        "existing_input": {"id": "a", "amount": "1", "note": "none"},
        "given_input": {"id": "a", "amount": "2"},
    }
    assert isinstance(same, Started) and not same.outcome.created
    assert same.record.run_id == "a" and same.record.args == {
        "id": "a",
        "amount": "1",
        "note": "none",
    }
    # the group's transaction failed: its starts were committed one by one
    assert isinstance(poison, StoreError)
    assert sorted(r.run_id for r in store.list_runs()) == ["a", "g1", "g2"]


def test_one_id_started_many_times_at_once_is_one_run(store: Store) -> None:
    answers = grouped(store, order("first", "1"), [order("same", "5")] * 6)
    assert all(isinstance(a, Started) for a in answers), answers
    assert [a.outcome.created for a in answers] == [True] + [False] * 5
    assert len({(a.record.run_id, a.record.created_at) for a in answers}) == 1
    assert sorted(r.run_id for r in store.list_runs()) == ["first", "same"]


def _post(url: str, body: dict[str, Any]) -> httpx2.Response:
    return httpx2.post(url + "/api/v1/runs", json=body, headers=ADMIN, timeout=30)


def _register(served: Served) -> None:
    body = {"source": SHOP.read_text(), "path": str(SHOP)}
    answer = httpx2.post(served.url + "/api/v1/programs", json=body, headers=ADMIN, timeout=30)
    assert answer.status_code == 201, answer.text


def test_concurrent_starts_of_one_id_over_http_are_answered_with_one_run(
    tmp_path: Path,
) -> None:
    with serve(tmp_path / "journal.db", execute=False) as served:
        _register(served)
        body = {"workflow": "order", "input": {"id": "once", "amount": "3"}, "run_id": "once"}
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda _: _post(served.url, body), range(16)))
    assert sorted(a.status_code for a in answers) == [200] * 15 + [201]
    runs = {(a.json()["run_id"], a.json()["created_at"]) for a in answers}
    assert len(runs) == 1
    with open_store(tmp_path / "journal.db") as store:
        assert [r.run_id for r in store.list_runs()] == ["once"]


STORM = 90


@pytest.mark.slow
@pytest.mark.serial
def test_kill_9_in_a_storm_of_starts_loses_no_answered_start(journal: str, tmp_path: Path) -> None:
    db = journal
    answered: dict[int, int] = {}
    lock = threading.Lock()

    def body_of(n: int) -> dict[str, Any]:
        return {"workflow": "order", "input": {"id": f"k{n}", "amount": f"{n}"}, "run_id": f"k{n}"}

    def start(url: str, n: int) -> None:
        try:
            answer = _post(url, body_of(n))
        except httpx2.HTTPError:
            return  # no answer: the kill came first
        assert answer.status_code in (200, 201), answer.text
        with lock:
            answered[n] = answer.status_code

    with serve(db, execute=False, log_dir=tmp_path) as served:
        _register(served)
        with ThreadPoolExecutor(32) as pool:
            futures = [pool.submit(start, served.url, n) for n in range(STORM)]
            deadline = time.monotonic() + 60
            while len(answered) < STORM // 3:
                assert time.monotonic() < deadline
                time.sleep(0.002)
            served.kill()
            for f in futures:
                f.result()
    assert 0 < len(answered) < STORM
    assert set(answered.values()) == {201}
    with open_store(db) as store:
        runs = {r.run_id: r for r in store.list_runs(limit=10 * STORM)}
    for n in answered:  # every answered start is there, with its input
        assert runs[f"k{n}"].args == {"id": f"k{n}", "amount": f"{n}", "note": "none"}
    # the client retries every start: the answered ones (and those whose commit the kill
    # did not stop) exist, the others are created now, once
    with serve(db, execute=False, log_dir=tmp_path) as served, ThreadPoolExecutor(16) as pool:
        again = list(pool.map(lambda n: _post(served.url, body_of(n)), range(STORM)))
    for n, answer in enumerate(again):
        assert answer.status_code == (200 if f"k{n}" in runs else 201), (n, answer.text)
    with open_store(db) as store:
        after = store.list_runs(limit=10 * STORM)
    assert sorted(r.run_id for r in after) == sorted(f"k{n}" for n in range(STORM))
