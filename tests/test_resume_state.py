"""What a paused run's committed state holds, and that resuming from it goes on as an
uninterrupted run would: a loop keeps what it iterates as a reference to the variable
while that variable is unchanged (docs/runtime.md, "What is committed, and when"), and a
resume reads the run's arguments only when the run has not started, and they are kept
out of the `runs` row that every lease and commit updates."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from pathlib import Path

import pytest
import sqlite_utils

from mnlang.ir.compile import compile_file
from mnlang.ir.model import IRProgram
from mnlang.runtime.config import RuntimeConfig
from mnlang.runtime.decisions import decide
from mnlang.runtime.run import resume_run, start_run
from mnlang.stores.base import NewRun
from mnlang.stores.schema import APPLICATION_ID, MIGRATIONS
from mnlang.stores.sqlite import SQLiteStore

CONFIG = RuntimeConfig(commit_ms=0)

SOURCE = """
workflow walk(xs: list[int]) -> int {
  total = 0
  for x in xs {
    d = checkpoint hold {
      timeout: never
    }
    total = total + x
  }
  return total + len(xs)
}

workflow shrink(xs: list[int]) -> int {
  total = 0
  for x in xs {
    d = checkpoint hold {
      timeout: never
    }
    total = total + x
    xs = [100]
  }
  return total + len(xs)
}

workflow fan(xs: list[int]) -> list[int] {
  d = checkpoint hold {
    timeout: never
  }
  ys = parallel for x in xs {
    yield x * 2
  }
  return ys
}
"""


@pytest.fixture
def program(tmp_path: Path) -> IRProgram:
    (tmp_path / "main.mn").write_text(textwrap.dedent(SOURCE), "utf-8")
    ir, diagnostics = compile_file(tmp_path / "main.mn")
    assert ir is not None, [str(d) for d in diagnostics]
    return ir


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "journal.db")


def stored_items(folder: Path, run_id: str) -> list[object]:
    """The committed values of the run's loop copies (`$items:...`), decoded."""
    db = sqlite3.connect(folder / "journal.db")
    try:
        rows = db.execute(
            "SELECT value FROM variables WHERE run_id = ? AND name LIKE '$items:%'", (run_id,)
        ).fetchall()
    finally:
        db.close()
    return [json.loads(value) for (value,) in rows]


def approve_and_resume(store: SQLiteStore, program: IRProgram, run_id: str) -> str:
    decide(store, run_id, "hold", approve=True, by="test")
    return resume_run(store, run_id, program=program, config=CONFIG).status


def test_a_loop_over_an_unchanged_variable_stores_a_reference(
    tmp_path: Path, store: SQLiteStore, program: IRProgram
) -> None:
    xs = list(range(20))
    assert start_run(store, program, "walk", {"xs": xs}, run_id="w", config=CONFIG).status == (
        "waiting"
    )
    assert stored_items(tmp_path, "w") == [{"$same": "xs"}]
    for _ in range(len(xs) - 1):
        assert approve_and_resume(store, program, "w") == "waiting"
    decide(store, "w", "hold", approve=True, by="test")
    outcome = resume_run(store, "w", program=program, config=CONFIG)
    assert (outcome.status, outcome.result) == ("completed", sum(xs) + len(xs))


def test_a_loop_whose_variable_changes_keeps_its_own_copy(
    tmp_path: Path, store: SQLiteStore, program: IRProgram
) -> None:
    start_run(store, program, "shrink", {"xs": [1, 2, 3]}, run_id="s", config=CONFIG)
    assert stored_items(tmp_path, "s") == [{"$same": "xs"}]
    # The body replaced `xs`: the loop still iterates the list it started with, and so
    # does a resume from the commit after the change.
    assert approve_and_resume(store, program, "s") == "waiting"
    assert stored_items(tmp_path, "s") == [[1, 2, 3]]
    assert approve_and_resume(store, program, "s") == "waiting"
    decide(store, "s", "hold", approve=True, by="test")
    outcome = resume_run(store, "s", program=program, config=CONFIG)
    assert (outcome.status, outcome.result) == ("completed", 1 + 2 + 3 + 1)


def test_a_parallel_for_over_a_resumed_variable(store: SQLiteStore, program: IRProgram) -> None:
    start_run(store, program, "fan", {"xs": [1, 2, 3]}, run_id="f", config=CONFIG)
    decide(store, "f", "hold", approve=True, by="test")
    outcome = resume_run(store, "f", program=program, config=CONFIG)
    assert (outcome.status, outcome.result) == ("completed", [2, 4, 6])


def test_load_state_and_a_status_look_leave_the_arguments_out(
    store: SQLiteStore, program: IRProgram
) -> None:
    start_run(store, program, "walk", {"xs": [5]}, run_id="a", config=CONFIG)
    assert store.load_state("a").run.args is None
    light = store.get_run("a", args=False)
    assert light is not None and light.args is None and light.status == "waiting"
    full = store.get_run("a")
    assert full is not None and full.args == {"xs": [5]}


def test_a_created_run_starts_with_its_arguments(store: SQLiteStore, program: IRProgram) -> None:
    created = start_run(store, program, "walk", {"xs": [4, 6]}, run_id="d", detach=True)
    assert created.status == "running"
    assert resume_run(store, "d", program=program, config=CONFIG).status == "waiting"
    assert approve_and_resume(store, program, "d") == "waiting"
    decide(store, "d", "hold", approve=True, by="test")
    outcome = resume_run(store, "d", program=program, config=CONFIG)
    assert outcome.result == 4 + 6 + 2


def test_the_arguments_are_not_in_the_runs_row(tmp_path: Path, store: SQLiteStore) -> None:
    store.create_run(NewRun("big", "wf", {"xs": list(range(10_000))}))
    db = sqlite3.connect(tmp_path / "journal.db")
    try:
        columns = [row[1] for row in db.execute("PRAGMA table_info(runs)")]
        (stored,) = db.execute("SELECT args FROM run_args WHERE run_id = 'big'").fetchone()
    finally:
        db.close()
    assert "args" not in columns
    assert json.loads(stored) == {"xs": list(range(10_000))}
    listed = store.list_runs()
    assert [(r.run_id, r.args) for r in listed] == [("big", {"xs": list(range(10_000))})]


def test_a_journal_of_schema_5_keeps_its_runs_arguments(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite_utils.Database(path)
    for step in MIGRATIONS[:5]:
        step(db)
    db.execute(
        "INSERT INTO runs (run_id, workflow, status, args, created_at, updated_at) "
        "VALUES ('r', 'wf', 'running', '{\"n\":[1,2]}', 1.0, 1.0)"
    )
    db.conn.commit()
    db.execute("PRAGMA user_version = 5")
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db.close()
    store = SQLiteStore(path)
    try:
        record = store.get_run("r")
        assert record is not None and record.args == {"n": [1, 2]}
        assert store.create_run(NewRun("s", "wf", {"m": 3}))[0].args == {"m": 3}
    finally:
        store.close()
