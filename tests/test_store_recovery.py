"""The stores' part of retrying and searching runs, on SQLite and PostgreSQL:
`reopen_failed` (a failed run `running` again, atomically, only once) and `search_runs`
(filters and cursor pages done in the database); and a whole retry on each store."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mnlang.runtime.recovery import retry
from mnlang.runtime.run import resume_run, start_run
from mnlang.stores.base import (
    Batch,
    NewEvent,
    NewRun,
    RunNotFound,
    RunUpdate,
    SetCursor,
    Store,
)
from tests.test_crash import result_events
from tests.test_retry import PAY, PAY_TOOLS
from tests.test_runtime import CONFIG, RECORDER, Program


def failed_run(store: Store, run_id: str) -> None:
    store.create_run(NewRun(run_id, "pay", {"order": run_id}))
    store.commit(
        Batch(
            run_id,
            events=[NewEvent("failed", {"error": {"kind": "tool_error"}})],
            state=[SetCursor("", {"at": "s1"})],
            run=RunUpdate(status="failed", error={"kind": "tool_error"}, meta={"a": 1}),
        )
    )


def test_reopen_failed_sets_a_failed_run_running_once(store: Store) -> None:
    failed_run(store, "r1")
    ended = store.get_run("r1")
    assert ended is not None and ended.finished_at is not None
    assert store.reopen_failed("r1", NewEvent("retried", {"by": "ops"}), {"retries": 1})
    record = store.get_run("r1")
    assert record is not None
    assert (record.status, record.error, record.finished_at) == ("running", None, None)
    assert record.meta == {"retries": 1} and record.last_seq == ended.last_seq + 1
    last = store.read_journal("r1")[-1]
    assert (last.seq, last.kind, last.data) == (ended.last_seq + 1, "retried", {"by": "ops"})
    assert store.load_state("r1").cursors == {"": {"at": "s1"}}
    # running now: a second reopening is refused and writes nothing
    assert not store.reopen_failed("r1", NewEvent("retried", {"by": "other"}), {})
    assert len(store.read_journal("r1")) == len(store.read_journal("r1"))
    assert [e.kind for e in store.read_journal("r1")].count("retried") == 1
    with pytest.raises(RunNotFound):
        store.reopen_failed("nope", NewEvent("retried"), {})


def test_search_runs_filters_and_pages_in_the_database(store: Store) -> None:
    for n in range(25):
        store.create_run(
            NewRun(
                f"run-{n:02d}",
                "pay" if n % 2 else "ship",
                {"order": f"Order-{n}", "note": "Überweisung" if n == 7 else ""},
                workflow_class="money" if n % 3 == 0 else "",
            )
        )
    failed_run(store, "run-f")
    everything = [r.run_id for r in store.list_runs(limit=1000)]
    pages: list[str] = []
    after = None
    while True:
        page, more = store.search_runs(limit=7, after=after)
        pages += [r.run_id for r in page]
        if not more:
            break
        after = (page[-1].created_at, page[-1].run_id)
    assert pages == everything and len(pages) == 26

    def found(**filters: object) -> list[str]:
        runs, more = store.search_runs(limit=100, **filters)  # type: ignore[arg-type]
        assert not more
        return sorted(r.run_id for r in runs)

    assert found(status="failed") == ["run-f"]
    assert found(workflow="ship", workflow_class="money") == [
        f"run-{n:02d}" for n in range(0, 25, 6)
    ]
    assert found(text="order-13") == ["run-13"]  # in the input, case aside
    assert found(text="RUN-2") == [f"run-{n}" for n in range(20, 25)]  # in the id
    assert found(text="Überweisung") == ["run-07"]  # other letters: as written
    assert found(text="no such text") == []
    middle = store.get_run("run-10")
    assert middle is not None
    newer = found(since=middle.created_at)
    older = found(until=middle.created_at)
    assert "run-10" in newer and "run-10" not in older
    assert sorted(newer + older) == sorted(everything)
    page, more = store.search_runs(limit=3, workflow="pay")
    assert len(page) == 3 and more


def test_a_failed_run_is_retried_on_each_store(store: Store, tmp_path: Path) -> None:
    p = Program(tmp_path / "prog", PAY, RECORDER + textwrap.dedent(PAY_TOOLS))
    (p.folder / "broken").touch()
    out = start_run(store, p.ir, "pay", {"order": "o1"}, run_id="r1", config=CONFIG)
    assert out.status == "failed"
    (p.folder / "broken").unlink()
    retry(store, "r1", by="ops")
    out = resume_run(store, "r1", program=p.ir, config=CONFIG)
    assert (out.status, out.result) == ("completed", "charged-o1 receipt-o1 42")
    assert [c["name"] for c in p.calls()] == ["charge", "lookup", "lookup", "receipt"]
    assert set(result_events(store).values()) == {1}
