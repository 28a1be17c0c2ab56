"""Issue 16, item 6: `run.id`, `run.workflow`, `run.parent`, `run.started_at` and
`run.scheduled_at`, read from the run's row (committed when the run was created), so a
resumed run, a child run and a scheduled run each see their own, unchanged values."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mnlang.checker import check
from mnlang.ir.compile import compile_file
from mnlang.ir.model import IRProgram
from mnlang.runtime.config import RuntimeConfig
from mnlang.runtime.run import resume_run, start_run
from mnlang.runtime.schedules import register, start_due
from mnlang.runtime.worker import ProgramCache
from mnlang.stores.sqlite import SQLiteStore

FLOWS = textwrap.dedent(
    """\
    event go

    workflow child(n: int) -> str {
      return "{run.workflow} {run.parent ?? "-"} {n}"
    }

    workflow meta() -> str {
      c = child(1)
      before = "{run.id} {run.started_at}"
      ok = wait go { timeout: never }
      after = "{run.id} {run.started_at}"
      return "{before == after} {run.workflow} {run.parent ?? "root"} {run.scheduled_at} | {c}"
    }

    workflow nightly() -> str {
      return "{run.scheduled_at ?? run.started_at}"
    }

    schedule every_second {
      run: nightly()
      every: 1s
    }
    """
)
CONFIG = RuntimeConfig(commit_ms=0)


def iso(seconds: float) -> str:
    moment = datetime.fromtimestamp(round(seconds * 1000) / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@pytest.fixture
def program(tmp_path: Path) -> IRProgram:
    path = tmp_path / "flows.mn"
    path.write_text(FLOWS)
    ir, diags = compile_file(path)
    assert ir is not None, diags
    return ir


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "journal.db")
    yield s
    s.close()


def test_a_run_and_its_child_see_their_own_record_across_a_resume(
    program: IRProgram, store: SQLiteStore
) -> None:
    waiting = start_run(store, program, "meta", {}, run_id="m1", config=CONFIG)
    assert waiting.status == "waiting"
    store.send_signal("m1", "go", None)
    done = resume_run(store, "m1", config=CONFIG)
    # `before == after`: the id and start time read before the wait and after the resume.
    assert done.result == "true meta root null | child m1 1"
    events = store.read_journal("m1")
    assert not any(e.kind in ("now", "run") for e in events)  # nothing new to journal


def test_started_at_is_the_runs_creation_time(program: IRProgram, store: SQLiteStore) -> None:
    outcome = start_run(store, program, "nightly", {}, run_id="n1", config=CONFIG)
    record = store.get_run("n1")
    assert record is not None
    assert outcome.result == iso(record.created_at)


def test_a_scheduled_run_sees_its_scheduled_time(program: IRProgram, store: SQLiteStore) -> None:
    (registered,) = register(store, program)
    due = registered.next_at
    [started] = start_due(store, ProgramCache(store), now=due)
    outcome = resume_run(store, started.run_id, config=CONFIG)
    assert outcome.status == "completed"
    assert outcome.result == iso(due)


def test_a_local_or_a_declaration_named_run_hides_it(tmp_path: Path) -> None:
    path = tmp_path / "shadow.mn"
    path.write_text(
        textwrap.dedent(
            """\
            type Job {
              id: int
            }

            workflow w(run: Job) -> int {
              return run.id + 1
            }
            """
        )
    )
    assert [d.code for d in check(path).diagnostics] == []


def test_run_is_read_by_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.mn"
    path.write_text('workflow w() -> str {\n  log "{run}"\n  return run.name\n}\n')
    found = [(d.code, d.message, d.help) for d in check(path).diagnostics]
    assert found == [
        (
            "E232",
            "`run` is read by its fields, not as a whole",
            "write one of `run.id`, `run.workflow`, `run.parent`, `run.started_at`, "
            "`run.scheduled_at`",
        ),
        (
            "E107",
            "`run` has no field `name`",
            "its fields: `id`, `workflow`, `parent`, `started_at`, `scheduled_at`",
        ),
    ]
