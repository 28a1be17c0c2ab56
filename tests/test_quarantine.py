"""A quarantined run is a stored flag (issue 15): a worker that meets a run it cannot
execute as stored (a damaged journal row, a program that does not load) sets it aside in
the journal, with when, by which worker and why; no worker claims it again, across
processes and restarts, until a person repairs it and releases it (`mnc db release`).

On both stores: the contract of `quarantine_run` / `release_quarantine`, real
`mnc worker --until-idle` processes over a journal with one damaged run, the refused
releases (which change nothing), and a journal of the schema before quarantines.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from mnlang import api
from mnlang.cli import main
from mnlang.runtime.worker import Worker
from mnlang.stores import open_store
from mnlang.stores.base import NewRun, Quarantine, RunNotFound, Store
from mnlang.stores.crashpoints import CRASH_EXIT_STATUS
from tests.pg import STORES, journal_location

PROGRAM = """\
event nudge -> str

workflow main(n: int) -> str {
  got = wait nudge { timeout: 1h }
  return got ?? "none"
}
"""


# --- the store contract ----------------------------------------------------------------------


def test_a_quarantined_run_is_not_claimed_until_released(store: Store) -> None:
    for run_id in ("r0", "r1"):
        store.create_run(NewRun(run_id, "wf", {}))
    before = store.now()
    assert store.quarantine_run("r1", by="w-1", reason="run r1's journal row is damaged")
    assert not store.quarantine_run("r1", by="w-2", reason="again")  # the first one is kept
    record = store.get_run("r1")
    assert record is not None and record.quarantine is not None
    kept = record.quarantine
    assert (kept.by, kept.reason) == ("w-1", "run r1's journal row is damaged")
    assert before - 1 <= kept.at <= store.now() + 1
    assert store.quarantined_runs() == {"r1": kept}
    assert {r.run_id: r.quarantine for r in store.list_runs()} == {"r0": None, "r1": kept}
    assert store.runnable_runs() == ["r0"]
    assert [lease.run_id for lease in store.claim_runs("w-3", 30, limit=10)] == ["r0"]

    assert store.release_quarantine("r1") == kept
    assert store.release_quarantine("r1") is None  # not quarantined: nothing to release
    assert store.quarantined_runs() == {}
    record = store.get_run("r1")
    assert record is not None and record.quarantine is None
    assert [lease.run_id for lease in store.claim_runs("w-3", 30, limit=10)] == ["r1"]


def test_quarantining_or_releasing_an_unknown_run_is_refused(store: Store) -> None:
    with pytest.raises(RunNotFound):
        store.quarantine_run("nope", by="w", reason="x")
    with pytest.raises(RunNotFound):
        store.release_quarantine("nope")
    assert store.quarantined_runs() == {}


# --- workers, commands and restarts on a journal with one damaged run ------------------------


def sql_runner(db: str) -> Callable[[str], None]:
    """Runs a statement on the journal behind the store's back, as damage or a repair by
    hand would."""
    if db.startswith("postgresql://"):
        import psycopg

        from mnlang.stores.postgres import parse_url

        target = parse_url(db)

        def on_postgres(statement: str) -> None:
            with psycopg.connect(target.conninfo, autocommit=True) as conn:
                conn.execute(f"SET search_path TO {target.schema}")
                conn.execute(statement)

        return on_postgres

    def on_sqlite(statement: str) -> None:
        with sqlite3.connect(db) as conn:
            conn.execute(statement)
        conn.close()

    return on_sqlite


def worker(
    db: str, tmp_path: Path, *, crash: str | None = None, lease_ttl: float = 30
) -> tuple[int, str]:
    """A real `mnc worker --until-idle` process; its pid and its log. With `crash`, it
    dies (as SIGKILL would) at that moment of its first commit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNC_")}
    if crash is not None:
        env |= {"MNC_CRASH_AT_COMMIT": "1", "MNC_CRASH_WHEN": crash}
    command = ["worker", "--until-idle", "--db", db, "--lease-ttl", str(lease_ttl)]
    process = subprocess.Popen(
        [sys.executable, "-m", "mnlang.cli", *command],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    out, err = process.communicate(timeout=120)
    log = out + err
    assert process.returncode == (CRASH_EXIT_STATUS if crash else 0), log
    assert "Traceback" not in log and "internal error" not in log, log
    return process.pid, log


def mnc(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def epochs(db: str) -> dict[str, int]:
    """Each run's lease epoch: it grows by one whenever a worker claims the run."""
    with open_store(db) as opened:
        return {r.run_id: r.lease_epoch for r in opened.list_runs()}


def quarantines(db: str) -> dict[str, Quarantine]:
    with open_store(db) as opened:
        return opened.quarantined_runs()


def test_a_damaged_run_is_quarantined_once_for_every_worker_until_released(
    journal: str, tmp_path: Path
) -> None:
    db = journal
    source = tmp_path / "w.mn"
    source.write_text(PROGRAM)
    for i in range(3):
        api.start_run(source, {"n": i}, run_id=f"r{i}", db=db)
    run_sql = sql_runner(db)
    # One flipped byte in r1's row; every run made runnable (as after a worker crash).
    run_sql("UPDATE runs SET result = '{\"bad' WHERE run_id = 'r1'")
    run_sql("UPDATE runs SET status = 'running'")

    pid, log = worker(db, tmp_path)
    about_r1 = [line for line in log.splitlines() if "run r1" in line]
    assert len(about_r1) == 1 and "quarantined: run r1's journal row is damaged" in about_r1[0]
    assert "mnc db release r1" in about_r1[0] and "quarantined 1" in log
    [(run_id, found)] = quarantines(db).items()
    assert run_id == "r1" and f":{pid}:" in found.by and "`result`" in found.reason

    # Another worker process, later: the flag is in the journal, so it never claims r1.
    claimed_before = epochs(db)
    _, log = worker(db, tmp_path)
    assert "run r1" not in log and "runs claimed 0" in log, log
    assert epochs(db) == claimed_before
    assert quarantines(db) == {"r1": found}

    code, out = mnc("runs", "--db", db)
    assert code == 0 and "running (damaged, quarantined)" in out
    assert "run r1 quarantined" in out and found.by in out and "mnc db release RUN" in out
    code, out = mnc("db", "check", "--db", db)
    assert code == 1 and "1 damaged rows, 1 quarantined runs" in out and found.by in out
    code, out = mnc("show", "r1", "--db", db)
    assert code == 2 and f"worker {found.by} quarantined it at" in out
    assert "`mnc db release r1`" in out

    # Refused releases say why, exit 2 and change nothing.
    for run_id, why in (
        ("r1", "run `r1` is still damaged: run r1's journal row is damaged"),
        ("r0", "run `r0` is not quarantined"),
        ("nope", "no run `nope`"),
    ):
        code, out = mnc("db", "release", run_id, "--db", db)
        assert code == 2 and why in out and "help:" in out, out
        assert quarantines(db) == {"r1": found}
        assert epochs(db) == claimed_before

    run_sql("UPDATE runs SET result = NULL WHERE run_id = 'r1'")  # the repair
    code, out = mnc("db", "release", "r1", "--db", db)
    assert code == 0 and "released: run r1 quarantined" in out and found.by in out
    assert quarantines(db) == {}
    code, out = mnc("db", "check", "--db", db)
    assert code == 0 and "3 runs read, 0 damaged rows, 0 quarantined runs" in out

    _, log = worker(db, tmp_path)
    assert "run r1: waiting" in log and "quarantined" not in log, log
    assert epochs(db)["r1"] == claimed_before["r1"] + 1
    code, out = mnc("signal", "r1", "nudge", '"hi"', "--db", db)
    assert code == 0 and "completed" in out


FAST_CRASHES = {("sqlite", "after"), ("postgres", "before")}
"""The crash cases of the fast suite; the others are slow."""


@pytest.mark.parametrize(
    ("store_name", "moment"),
    [
        pytest.param(
            store, moment, marks=[] if (store, moment) in FAST_CRASHES else [pytest.mark.slow]
        )
        for store in STORES
        for moment in ("before", "written", "during", "after")
    ],
)
def test_a_worker_killed_at_the_quarantines_commit_leaves_it_to_the_next_worker(
    store_name: str, moment: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Killed before its quarantine is committed, a worker leaves the run to be
    quarantined by the next worker once its lease expired; killed after, the run stays
    quarantined. Either way it ends quarantined once and no worker executes it."""
    db = journal_location(store_name, request, tmp_path)
    source = tmp_path / "w.mn"
    source.write_text(PROGRAM)
    for i in range(2):
        api.start_run(source, {"n": i}, run_id=f"r{i}", db=db)
    run_sql = sql_runner(db)
    run_sql("UPDATE runs SET result = '{\"bad', status = 'running' WHERE run_id = 'r1'")

    dead_pid, _ = worker(db, tmp_path, crash=moment, lease_ttl=0.5)
    found = quarantines(db)
    if moment in ("before", "written") or (moment == "during" and store_name == "sqlite"):
        assert found == {}
    if moment == "after":
        assert f":{dead_pid}:" in found["r1"].by
    deadline = time.monotonic() + 30
    with open_store(db) as opened:  # the dead worker's lease on r1 runs out
        while (record := opened.list_runs(id_prefix="r1")[0]).lease_expires_at is not None and (
            record.lease_expires_at > opened.now()
        ):
            assert time.monotonic() < deadline
            time.sleep(0.05)

    pid, log = worker(db, tmp_path)
    about_r1 = [line for line in log.splitlines() if "run r1" in line]
    if "r1" in found:
        assert about_r1 == [] and quarantines(db) == found, log
    else:
        assert len(about_r1) == 1 and "quarantined" in about_r1[0], log
        assert f":{pid}:" in quarantines(db)["r1"].by
    claimed = epochs(db)
    _, log = worker(db, tmp_path)
    assert "run r1" not in log and epochs(db) == claimed and set(quarantines(db)) == {"r1"}


def test_the_quarantine_survives_reopening_the_journal(journal: str) -> None:
    db = journal
    with open_store(db) as first:
        first.create_run(NewRun("r1", "wf", {}))
        first.quarantine_run("r1", by="w-1", reason="why")
        kept = first.quarantined_runs()["r1"]
    with open_store(db) as again:
        record = again.get_run("r1")
        assert record is not None and record.quarantine == kept
        assert again.runnable_runs() == [] and again.claim_runs("w-2", 30) == []


def test_a_run_whose_program_does_not_load_is_quarantined(tmp_path: Path) -> None:
    source = tmp_path / "w.mn"
    source.write_text(PROGRAM)
    db = tmp_path / "j.db"
    api.start_run(source, {"n": 1}, run_id="r1", db=db)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE programs SET ir = '{\"bad'")
        conn.execute("UPDATE runs SET status = 'running'")
    conn.close()
    lines: list[str] = []
    with open_store(db) as opened:
        first = Worker(opened, log=lambda line, _problem: lines.append(line))
        first.run(until_idle=True)
        assert first.stats.quarantined == {"r1"}
        found = opened.quarantined_runs()["r1"]
        assert found.by == first.owner and found.reason.startswith("program ")
        second = Worker(opened, log=lambda line, _problem: lines.append(line))
        assert second.run(until_idle=True).claimed == 0
    assert sum("run r1: quarantined: program " in line for line in lines) == 1, lines


def test_a_damaged_waiting_for_with_an_unread_signal_leaves_the_other_runs_claimable(
    tmp_path: Path,
) -> None:
    """SQLite reads `waiting_for` in the runnable query itself: one damaged value must not
    fail that query for every run; its run is claimed, found damaged and quarantined."""
    source = tmp_path / "w.mn"
    source.write_text(PROGRAM)
    db = tmp_path / "j.db"
    for i in range(2):
        api.start_run(source, {"n": i}, run_id=f"r{i}", db=db)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET waiting_for = '[\"nud' WHERE run_id = 'r1'")
        conn.execute(
            "INSERT INTO signals (run_id, signal_id, name, payload, sent_at) "
            "VALUES ('r1', 's1', 'nudge', '\"x\"', 0)"
        )
    conn.close()
    with open_store(db) as opened:
        assert opened.runnable_runs() == ["r1"]
        opened.send_signal("r0", "nudge", "hi")
        assert sorted(opened.runnable_runs()) == ["r0", "r1"]
        done = Worker(opened).run(until_idle=True)
        assert done.quarantined == {"r1"} and done.ended == {"completed": 1}
        assert opened.runnable_runs() == []


# --- the console and the API show it ---------------------------------------------------------


def test_the_console_and_the_api_show_a_quarantined_run(tmp_path: Path) -> None:
    from starlette.testclient import TestClient
    from test_ui import console

    from mnlang.server.app import create_server_app
    from mnlang.ui.auth import Authenticator

    with open_store(tmp_path / "j.db") as opened:
        opened.create_run(NewRun("r1", "wf", {}))
        opened.create_run(NewRun("r2", "wf", {}))
        opened.quarantine_run("r1", by="host:1:w-1", reason="run r1's <b>row</b> is damaged")
        page = console(opened)
        listed = page.get("/runs").text
        assert "quarantined" in listed and "&lt;b&gt;row&lt;/b&gt;" in listed
        detail = page.get("/runs/r1").text
        assert 'id="quarantine"' in detail and "mnc db release r1" in detail
        assert "<b>row</b>" not in detail
        assert 'id="quarantine"' not in page.get("/runs/r2").text
        assert page.get("/api/runs/r1").json()["run"]["quarantine"]["by"] == "host:1:w-1"

        token = "admin-token-for-the-quarantine-test"
        auth = Authenticator(admin_token=token, tokens=None, loopback=True)
        client = TestClient(
            create_server_app(opened, auth, execute=False), base_url="http://127.0.0.1"
        )
        headers = {"authorization": f"Bearer {token}"}
        shown = client.get("/api/v1/runs/r1", headers=headers).json()
        assert shown["quarantine"]["by"] == "host:1:w-1" and shown["quarantine"]["at"] > 0
        assert client.get("/api/v1/runs/r2", headers=headers).json()["quarantine"] is None
        listed_json = client.get("/api/v1/runs", headers=headers).json()["runs"]
        assert {r["run_id"]: r["quarantine"] is not None for r in listed_json} == {
            "r1": True,
            "r2": False,
        }


# --- a journal from before quarantines -------------------------------------------------------


def test_a_version_9_sqlite_journal_gains_quarantines_with_no_run_quarantined(
    tmp_path: Path,
) -> None:
    import sqlite_utils

    from mnlang.stores.schema import APPLICATION_ID, MIGRATIONS

    path = tmp_path / "v9.db"
    db = sqlite_utils.Database(path)
    for step in MIGRATIONS[:9]:
        step(db)
    db.execute("PRAGMA user_version = 9")
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db.execute(
        "INSERT INTO runs (run_id, workflow, workflow_class, status, result, error, ir_hash, "
        "meta, waiting_for, created_at, updated_at) VALUES ('r', 'wf', '', 'running', 'null', "
        "'null', '', '{}', '[]', 0, 0)"
    )
    db.execute("INSERT INTO run_args (run_id, args) VALUES ('r', '{}')")
    db.conn.commit()
    db.close()
    with open_store(path) as opened:
        assert opened.migrated_from == 9
        record = opened.get_run("r")
        assert record is not None and record.quarantine is None
        assert opened.quarantined_runs() == {} and opened.runnable_runs() == ["r"]


def test_a_version_9_postgresql_journal_gains_quarantines_with_no_run_quarantined(
    pg_url: str,
) -> None:
    import psycopg

    from mnlang.stores.postgres import parse_url
    from tests.test_store_postgres import drop_outbox, drop_quarantine_columns

    with open_store(pg_url) as opened:
        opened.create_run(NewRun("r", "wf", {}))
    target = parse_url(pg_url)
    with psycopg.connect(target.conninfo, autocommit=True) as conn:
        drop_quarantine_columns(conn, target.schema)
        drop_outbox(conn, target.schema)
        conn.execute(f"ALTER TABLE {target.schema}.runs DROP COLUMN needs")  # step 11
        conn.execute(f"DROP TABLE {target.schema}.worker_offers")
        conn.execute(f"UPDATE {target.schema}.mnc_meta SET schema_version = 9")
    with open_store(pg_url) as opened:
        assert opened.migrated_from == 9
        record = opened.get_run("r")
        assert record is not None and record.quarantine is None
        assert opened.quarantined_runs() == {} and opened.runnable_runs() == ["r"]
