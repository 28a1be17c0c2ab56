"""Issue 16, item 1: `start child(...)`, a detached child run. The parent gets the child's
run id at once and goes on; the child is created in the parent's commit (so a crash
neither duplicates nor loses it), has no parent link, inherits neither deadline nor
budget, outlives its parent's cancel, and a worker runs it to its end."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mnlang import api
from mnlang.stores.sqlite import SQLiteStore
from tests.human.harness import mnc, mnc_env

FLOW = textwrap.dedent(
    """\
    event go

    workflow report(i: int) -> str {
      return "report {i} of {run.parent ?? "nobody"}"
    }

    workflow nightly(n: int) -> list[str] {
      ids = for i in range(n) {
        id = start report(i)
        yield id
      }
      _go = wait go { timeout: 1h }
      return ids
    }
    """
)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "nightly.mn").write_text(FLOW)
    return tmp_path


def result_of(db: Path, run_id: str) -> object:
    store = SQLiteStore(db)
    try:
        record = store.get_run(run_id)
        assert record is not None
        return record.result
    finally:
        store.close()


def runs_of(db: Path) -> dict[str, tuple[str, str, str | None, object]]:
    """Every run: id -> (workflow, status, parent link, who started it)."""
    store = SQLiteStore(db)
    try:
        return {
            r.run_id: (r.workflow, r.status, r.parent_run_id, r.meta.get("started_by"))
            for r in store.list_runs(limit=1000)
        }
    finally:
        store.close()


def test_start_gives_the_id_at_once_and_a_worker_runs_the_child(folder: Path) -> None:
    env = mnc_env(folder)
    db = folder / "journal.db"
    ran = mnc(
        ["run", str(folder / "nightly.mn"), "-w", "nightly", "--id", "p", "--input", '{"n": 2}'],
        env,
    )
    assert ran.returncode == 3, ran.stderr  # waits for `go`; the children did not hold it
    runs = runs_of(db)
    children = {rid for rid, (wf, *_rest) in runs.items() if wf == "report"}
    assert len(children) == 2
    for rid in children:
        assert runs[rid] == ("report", "running", None, "p")
    started = [e for e in api.run_journal("p", db=db) if e.kind == "child_started"]
    assert {e.data["run"] for e in started} == children

    # The parent's cancel leaves its detached children alone.
    assert mnc(["cancel", "p"], env).returncode in (0, 4)
    assert runs_of(db)["p"][1] == "cancelled"
    worker = mnc(["worker", "--until-idle"], env)
    assert worker.returncode == 0, worker.stderr
    runs = runs_of(db)
    assert runs["p"][1] == "cancelled"
    for rid in children:
        assert runs[rid][1] == "completed"
        result = result_of(db, rid)
        assert isinstance(result, str) and result.endswith("of nobody")


def test_only_a_workflow_can_be_started(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mn"
    bad.write_text('workflow w(q: str) -> str {\n  id = start len(q)\n  return "{id}"\n}\n')
    checked = mnc(["check", str(bad)], mnc_env(tmp_path))
    assert checked.returncode != 0
    assert "error[E234]" in checked.stdout and "bad.mn:2:8" in checked.stdout


@pytest.mark.slow
@pytest.mark.parametrize("when", ["before", "written", "after"])
def test_a_crash_at_any_commit_starts_each_child_exactly_once(folder: Path, when: str) -> None:
    """Killed at every commit boundary and resumed, the parent ends with the ids of
    exactly the children in the journal: none duplicated, none lost."""
    reference = folder / "ref"
    reference.mkdir()
    env = mnc_env(reference, MNC_COMMIT_MS="0")
    ran = mnc(
        ["run", str(folder / "nightly.mn"), "-w", "nightly", "--id", "c", "--input", '{"n": 3}'],
        env,
    )
    assert ran.returncode == 3, ran.stderr
    commits = len(list(api.run_journal("c", db=reference / "journal.db")))
    crashed_once = False
    for n in range(1, commits + 1):
        case = folder / f"{when}-{n}"
        case.mkdir()
        env = mnc_env(case, MNC_COMMIT_MS="0", MNC_CRASH_AT_COMMIT=str(n), MNC_CRASH_WHEN=when)
        crashed = mnc(
            [
                "run",
                str(folder / "nightly.mn"),
                "-w",
                "nightly",
                "--id",
                "c",
                "--input",
                '{"n": 3}',
            ],
            env,
        )
        if crashed.returncode != 137:
            assert crashed.returncode == 3, crashed.stderr
            break
        crashed_once = True
        db = case / "journal.db"
        if "c" not in runs_of(db):
            continue
        del env["MNC_CRASH_AT_COMMIT"]
        resumed = mnc(["resume", "c"], env)
        assert resumed.returncode == 3, resumed.stderr
        assert mnc(["signal", "c", "go"], env).returncode == 0
        runs = runs_of(db)
        assert runs["c"][1] == "completed"
        children = {rid for rid, (wf, *_rest) in runs.items() if wf == "report"}
        result = result_of(db, "c")
        assert isinstance(result, list) and sorted(result) == sorted(children)
        assert len(children) == 3
    assert crashed_once
