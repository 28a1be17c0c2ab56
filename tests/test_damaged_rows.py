"""A damaged row is not a dead journal (issue 15): one run whose JSON does not decode is
marked in listings, refused by name in commands on it (exit 2), reported by
`mnc db check` (exit 1) and quarantined by a worker; the other runs carry on.

Each damaged column of the rows a run has is tried in turn, the way a flipped byte or a
bad restore would leave it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from mnlang import api
from mnlang.cli import main
from mnlang.runtime.worker import Worker
from mnlang.stores import open_store
from mnlang.stores.base import DamagedRow

PROGRAM = """\
event nudge -> str

workflow main(n: int) -> str {
  got = wait nudge { timeout: 1h }
  return got ?? "none"
}
"""

# (table, column): where a flipped byte leaves JSON that does not decode.
DAMAGE = [
    ("runs", "result"),
    ("runs", "meta"),
    ("runs", "waiting_for"),
    ("run_args", "args"),
    ("events", "data"),
    ("timers", "payload"),
]


def journal(tmp_path: Path) -> Path:
    source = tmp_path / "w.mn"
    source.write_text(PROGRAM)
    db = tmp_path / "j.db"
    for i in range(3):
        api.start_run(source, {"n": i}, run_id=f"r{i}", db=db)
    return db


def damage(db: Path, table: str, column: str, run_id: str) -> None:
    with sqlite3.connect(db) as conn:
        changed = conn.execute(
            f"UPDATE {table} SET {column} = '{{\"bad' WHERE run_id = ?", (run_id,)
        ).rowcount
    assert changed >= 1, (table, column)


def mnc(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


@pytest.mark.parametrize(("table", "column"), DAMAGE, ids=lambda v: str(v))
def test_one_damaged_run_leaves_the_others_usable(tmp_path: Path, table: str, column: str) -> None:
    db = journal(tmp_path)
    damage(db, table, column, "r1")
    code, out = mnc("runs", "--db", str(db))
    assert code == 0 and "r0" in out and "r2" in out
    if table in ("runs", "run_args"):
        assert "(damaged)" in out and "run r1's journal row is damaged" in out
    code, out = mnc("db", "check", "--db", str(db))
    assert code == 1 and "run r1's journal row is damaged" in out and "1 damaged rows" in out
    code, out = mnc("show", "r1", "--db", str(db))
    assert code == 2 and "run r1's journal row is damaged" in out and "help:" in out
    for other in ("r0", "r2"):
        code, out = mnc("show", other, "--db", str(db))
        assert code == 0 and "waiting" in out
    code, out = mnc("signal", "r2", "nudge", '"hi"', "--db", str(db))
    assert code == 0 and "completed" in out


def test_a_clean_journal_checks_clean(tmp_path: Path) -> None:
    db = journal(tmp_path)
    code, out = mnc("db", "check", "--db", str(db))
    assert code == 0 and "3 runs read, 0 damaged rows" in out


def test_the_console_lists_around_a_damaged_run(tmp_path: Path) -> None:
    from test_ui import console

    db = journal(tmp_path)
    damage(db, "runs", "result", "r1")
    store = open_store(db)
    try:
        client = console(store)
        for page in ("/runs", "/api/runs", "/inbox", "/product-metrics"):
            response = client.get(page)
            assert response.status_code == 200, (page, response.text[:300])
        assert "r0" in client.get("/api/runs").text
    finally:
        store.close()


def test_a_worker_quarantines_a_damaged_run_and_reports_it_once(tmp_path: Path) -> None:
    db = journal(tmp_path)
    damage(db, "runs", "waiting_for", "r1")
    with sqlite3.connect(db) as conn:  # make every run runnable now
        conn.execute("UPDATE runs SET status = 'running'")
    lines: list[str] = []
    store = open_store(db)
    try:
        worker = Worker(store, lease_ttl=0.2, log=lambda line, _problem: lines.append(line))
        worker.run(until_idle=True)
        assert worker.stats.quarantined == {"r1"}
        with pytest.raises(DamagedRow):
            store.load_state("r1")
    finally:
        store.close()
    reported = [line for line in lines if "r1" in line]
    assert reported and all("quarantined" in line for line in reported), lines
    assert not any("Traceback" in line or "internal error" in line for line in lines)


def test_postgresql_marks_refuses_and_reports_a_damaged_run(tmp_path: Path, pg_url: str) -> None:
    import psycopg

    from mnlang.stores.postgres import parse_url

    source = tmp_path / "w.mn"
    source.write_text(PROGRAM)
    for i in range(3):
        api.start_run(source, {"n": i}, run_id=f"r{i}", db=pg_url)
    target = parse_url(pg_url)
    with psycopg.connect(target.conninfo, autocommit=True) as conn:
        conn.execute(f"UPDATE {target.schema}.runs SET result = '{{\"bad' WHERE run_id = 'r1'")
        conn.execute(f"UPDATE {target.schema}.events SET data = '{{\"bad' WHERE run_id = 'r2'")
    listed = {r.run_id: r for r in api.list_runs(db=pg_url)}
    assert set(listed) == {"r0", "r1", "r2"}
    assert listed["r1"].damaged and not listed["r0"].damaged
    with pytest.raises(DamagedRow, match="run r1's journal row is damaged"):
        api.get_run("r1", db=pg_url)
    found = api.check_journal(db=pg_url)
    assert found.runs == 3 and len(found.damaged) == 2
    assert any("run r2's" in line and "event data" in line for line in found.damaged)


def test_read_commands_work_on_a_journal_on_a_read_only_mount(tmp_path: Path) -> None:
    import os
    import shutil
    import subprocess

    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a read-only file system")
    db = journal(tmp_path)
    mount = tmp_path / "ro"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        shutil.copy(db, mount / "j.db")
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        backup = str(mount / "j.db")
        code, out = mnc("runs", "--db", backup)
        assert code == 0 and "r0" in out and "r2" in out
        code, out = mnc("show", "r1", "--db", backup)
        assert code == 0 and "waiting" in out
        assert mnc("log", "r1", "--db", backup)[0] == 0
        assert mnc("db", "check", "--db", backup)[0] == 0
        code, out = mnc("signal", "r1", "nudge", '"x"', "--db", backup)
        assert code == 2 and "read-only" in out
    finally:
        subprocess.run(["umount", str(mount)], check=True)
