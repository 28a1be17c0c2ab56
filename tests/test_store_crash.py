"""The crash hook, and what a crash at a commit leaves behind: whole batches or nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mnlang.stores import open_store
from mnlang.stores.base import StoreError
from mnlang.stores.crashpoints import CRASH_EXIT_STATUS, CrashPlan

BATCHES = 3

# Each batch writes two events, a variable, a list item, a cursor, a ledger row, a timer
# and the run's status: a torn batch would show as counts that disagree.
WRITER = textwrap.dedent(
    f"""
    import sys
    from mnlang.stores import open_store
    from mnlang.stores.base import (
        AppendList, Batch, LedgerPut, NewEvent, NewRun, RunUpdate, SetCursor, SetList,
        SetTimer, SetVar,
    )

    store = open_store(sys.argv[1])
    store.create_run(NewRun("r", "wf", {{}}))
    for i in range(1, {BATCHES} + 1):
        store.commit(
            Batch(
                "r",
                events=[NewEvent("call", {{"i": i}}), NewEvent("result", {{"i": i}})],
                state=[
                    SetVar("", "i", i),
                    SetList("", "done", [0]) if i == 1 else AppendList("", "done", [i]),
                    SetCursor("", f"s{{i}}"),
                ],
                run=RunUpdate(status="completed" if i == {BATCHES} else "running"),
                ledger=[LedgerPut(f"effect:{{i}}", "h", "done", result=i)],
                set_timers=[SetTimer(f"t{{i}}", 60.0)],
            )
        )
    print("finished")
    """
)


def run_writer(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MNC_CRASH")}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-c", WRITER, str(tmp_path / "j.db")],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def committed_batches(tmp_path: Path) -> int:
    """How many whole batches the journal holds, after checking no batch is torn."""
    with open_store(tmp_path / "j.db") as store:
        state = store.load_state("r")
        journal = store.read_journal("r")
        ledger = [store.ledger_get(f"effect:{i}", run_id="r") for i in range(1, BATCHES + 1)]
        timers = store.run_timers("r")
    n = len(journal) // 2
    assert len(journal) == 2 * n
    assert [e.data["i"] for e in journal] == [i for i in range(1, n + 1) for _ in (0, 1)]
    assert sum(row is not None for row in ledger) == n
    assert len(timers) == n
    if n == 0:
        assert (state.variables, state.cursors) == ({}, {})
    else:
        assert state.variables[""] == {"i": n, "done": [0, *range(2, n + 1)]}
        assert state.cursors == {"": f"s{n}"}
    assert state.run.status == ("completed" if n == BATCHES else "running")
    return n


def test_without_the_hook_every_batch_commits(tmp_path: Path) -> None:
    done = run_writer(tmp_path)
    assert (done.returncode, done.stdout.strip()) == (0, "finished")
    assert committed_batches(tmp_path) == BATCHES


@pytest.mark.parametrize(
    ("when", "at", "batches"),
    [
        ("after", 2, 2),
        ("before", 2, 1),
        ("during", 2, 1),
        ("during", 1, 0),
        ("", 3, 3),
    ],
)
def test_crash_at_a_commit_leaves_whole_batches(
    tmp_path: Path, when: str, at: int, batches: int
) -> None:
    crashed = run_writer(tmp_path, MNC_CRASH_AT_COMMIT=str(at), MNC_CRASH_WHEN=when)
    assert crashed.returncode == CRASH_EXIT_STATUS, crashed.stderr
    assert "finished" not in crashed.stdout
    assert committed_batches(tmp_path) == batches


@pytest.mark.parametrize(("at", "when"), [("2", "midway"), ("two", "after"), ("-1", "after")])
def test_bad_hook_settings_are_refused(monkeypatch: pytest.MonkeyPatch, at: str, when: str) -> None:
    monkeypatch.setenv("MNC_CRASH_AT_COMMIT", at)
    monkeypatch.setenv("MNC_CRASH_WHEN", when)
    with pytest.raises(StoreError, match="bad crash hook setting") as info:
        CrashPlan.from_env(1)
    assert info.value.help


@pytest.mark.parametrize("member", ["0", "first", "-1"])
def test_a_bad_member_number_is_refused(monkeypatch: pytest.MonkeyPatch, member: str) -> None:
    monkeypatch.setenv("MNC_CRASH_AT_COMMIT", "1")
    monkeypatch.setenv("MNC_CRASH_WHEN", "written")
    monkeypatch.setenv("MNC_CRASH_MEMBER", member)
    with pytest.raises(StoreError, match="MNC_CRASH_MEMBER") as info:
        CrashPlan.from_env(1)
    assert info.value.help


def test_a_member_number_picks_the_written_moment_of_a_group() -> None:
    """`written` at member K of a group; a commit with fewer members does not crash there
    (a lone commit is a group of one)."""
    plan = CrashPlan("written", 2)
    assert [plan.writes_at(k, 3) for k in (1, 2, 3)] == [False, True, False]
    assert not plan.writes_at(1, 1)
    assert [CrashPlan("written").writes_at(k, 3) for k in (1, 2, 3)] == [False, False, True]
    assert not CrashPlan("during", 2).writes_at(2, 3)
