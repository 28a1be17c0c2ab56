"""Shared by the tests of checkpoints, signals, timers, child runs, schedules, workers and
upgrades: the workflows of `human.mn`, a journal per test, the tools' ledger file, and
`mnc` as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from mnlang.ir.compile import compile_file
from mnlang.ir.load import dump_ir
from mnlang.ir.model import IRProgram
from mnlang.runtime.config import RuntimeConfig
from mnlang.runtime.run import RunOutcome, resume_run, start_run
from mnlang.stores.sqlite import SQLiteStore

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FLOWS = HERE / "human.mn"
CONFIG = RuntimeConfig(commit_ms=0)


@cache
def program() -> IRProgram:
    ir, diagnostics = compile_file(FLOWS)
    assert ir is not None, diagnostics
    return ir


@dataclass
class Journal:
    """A test's journal file, its store, and the tools' ledger file."""

    folder: Path
    store: SQLiteStore

    @property
    def db(self) -> Path:
        return self.folder / "journal.db"

    @property
    def ledger(self) -> Path:
        return self.folder / "ledger.jsonl"

    def start(self, workflow: str, args: dict[str, Any], run_id: str) -> RunOutcome:
        return start_run(self.store, program(), workflow, args, run_id=run_id, config=CONFIG)

    def resume(self, run_id: str) -> RunOutcome:
        return resume_run(self.store, run_id, config=CONFIG)

    def calls(self, effect: str | None = None) -> list[dict[str, Any]]:
        """The effect calls the tools saw, oldest first."""
        if not self.ledger.exists():
            return []
        rows = [json.loads(line) for line in self.ledger.read_text("utf-8").splitlines()]
        return [r for r in rows if effect is None or r["effect"] == effect]

    def texts(self, tag: str) -> list[str]:
        """What `record(tag, text)` was called with, in order."""
        return [r["args"]["text"] for r in self.calls("record") if r["args"]["tag"] == tag]

    def kinds(self, run_id: str) -> list[str]:
        return [e.kind for e in self.store.read_journal(run_id)]

    def fall_due(self, run_id: str) -> None:
        """Let the run's timers fall due now, as if their time had passed."""
        with self.store._lock:
            self.store._conn.execute(
                "UPDATE timers SET due_at = (julianday('now') - 2440587.5) * 86400.0 - 1 "
                "WHERE run_id = ?",
                (run_id,),
            )


@pytest.fixture
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Journal]:
    monkeypatch.setenv("MNC_EXAMPLE_LEDGER", str(tmp_path / "ledger.jsonl"))
    store = SQLiteStore(tmp_path / "journal.db")
    try:
        yield Journal(tmp_path, store)
    finally:
        store.close()


def ir_file(folder: Path) -> Path:
    """The compiled workflows as an IR file (starting from it skips compiling)."""
    path = folder / "human.json"
    if not path.exists():
        path.write_text(dump_ir(program()), "utf-8")
    return path


def mnc_env(folder: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNC_")}
    env.update(
        MNC_DB=str(folder / "journal.db"),
        MNC_EXAMPLE_LEDGER=str(folder / "ledger.jsonl"),
        PYTHONPATH=str(ROOT),
        **extra,
    )
    return env


def mnc(
    args: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mnlang.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`mnc` in the background, its output in `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "mnlang.cli", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
