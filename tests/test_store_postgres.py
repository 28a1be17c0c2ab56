"""The PostgreSQL store beyond the contract: URLs, schema versions, the ledger's unique
key, racing connections, fencing of paused worker processes, wake-ups across processes,
and crashes at commit boundaries. Every test runs against the private cluster of
`tests/pg.py`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("psycopg", reason="psycopg is not installed (mnlang[postgres])")

import psycopg

from mnlang.stores import open_store
from mnlang.stores.base import (
    Batch,
    LedgerPut,
    NewEvent,
    NewRun,
    OpenCheckpoint,
    RunUpdate,
    SetTimer,
    StaleLease,
    StoreCorrupt,
    StoreError,
    StoreUnavailable,
    StoreVersionError,
)
from mnlang.stores.crashpoints import CRASH_EXIT_STATUS
from mnlang.stores.postgres import PostgresStore, parse_url
from mnlang.stores.postgres_schema import SCHEMA_VERSION
from tests.pg import free_port
from tests.test_store_crash import BATCHES, WRITER

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def store(pg_url: str) -> Iterator[PostgresStore]:
    with PostgresStore(pg_url) as opened:
        yield opened


def raw(url: str) -> psycopg.Connection[tuple[Any, ...]]:
    """A plain connection to the test database, outside any store."""
    return psycopg.connect(parse_url(url).conninfo, autocommit=True)


def schema_of(url: str) -> str:
    return parse_url(url).schema


def python(script: str, *args: str) -> subprocess.Popen[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MNC_CRASH")}
    environment["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )


def wait_until_stopped(pid: int, timeout: float = 10) -> None:
    """Wait for a process to be in the stopped state (`T` in /proc)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "T":
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} did not stop")


# --- URLs and opening -------------------------------------------------------------------------


def test_url_parts() -> None:
    target = parse_url("postgresql://ann:s3cret@db.example:6543/prod?schema=flows&sslmode=require")
    assert target.schema == "flows"
    assert target.location == "postgresql://ann@db.example:6543/prod?schema=flows&sslmode=require"
    assert "schema" not in target.conninfo and "sslmode=require" in target.conninfo
    assert parse_url("postgres://h/db").schema == "mnc"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://h/db?schema=Bad-Name", "bad schema name `Bad-Name`"),
        ("postgresql://h/db?nonsense=1", "bad PostgreSQL URL"),
    ],
)
def test_bad_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message) as info:
        open_store(url)
    assert info.value.help


def test_unreachable_server_is_a_clear_error() -> None:
    start = time.monotonic()
    with pytest.raises(StoreUnavailable, match=r"cannot use journal `postgresql://x@127") as info:
        open_store(f"postgresql://x:pw@127.0.0.1:{free_port()}/mnc")
    assert info.value.help and "running" in info.value.help
    assert "pw" not in str(info.value)
    assert time.monotonic() - start < 5


def test_open_store_takes_postgres_urls_from_the_flag_and_the_environment(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_store(pg_url) as store:
        assert isinstance(store, PostgresStore)
        store.create_run(NewRun("r1", "wf", {}))
    monkeypatch.setenv("MNC_DB", pg_url.replace("postgresql://", "postgres://"))
    with open_store() as store:
        assert store.get_run("r1") is not None


def test_importing_the_stores_does_not_import_psycopg() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import sys, mnlang.stores; print('psycopg' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "False"


def test_session_settings_follow_the_store_options(pg_url: str) -> None:
    with (
        PostgresStore(pg_url, durability="fast", busy_timeout=2.5) as store,
        store._pool.connection() as conn,
    ):
        settings = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
            for name in ("synchronous_commit", "lock_timeout", "search_path")
        }
    assert settings == {
        "synchronous_commit": "off",
        "lock_timeout": "2500ms",
        "search_path": schema_of(pg_url),
    }


# --- schema versions --------------------------------------------------------------------------


def test_a_new_schema_is_created_then_reopened_as_is(pg_url: str) -> None:
    with PostgresStore(pg_url) as store:
        assert (store.migrated_from, store.schema_version) == (0, SCHEMA_VERSION)
        store.create_run(NewRun("r1", "wf", {}))
    with PostgresStore(pg_url) as store:
        assert store.migrated_from == SCHEMA_VERSION
        assert store.get_run("r1") is not None


def test_newer_schema_version_is_refused(pg_url: str) -> None:
    PostgresStore(pg_url).close()
    schema = schema_of(pg_url)
    with raw(pg_url) as conn:
        conn.execute(f"UPDATE {schema}.mnc_meta SET schema_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreVersionError, match=rf"schema version {SCHEMA_VERSION + 1}, newer"):
        PostgresStore(pg_url)


def drop_quarantine_columns(conn: psycopg.Connection[Any], schema: str) -> None:
    """Undo migration 10, for a test that makes a journal of an older version."""
    conn.execute(f"DROP INDEX {schema}.runs_quarantined")
    conn.execute(
        f"ALTER TABLE {schema}.runs DROP COLUMN quarantined_at, DROP COLUMN quarantined_by, "
        "DROP COLUMN quarantine_reason"
    )


def drop_outbox(conn: psycopg.Connection[Any], schema: str) -> None:
    """Undo migration 14 (the outbox, who sent a signal) and those after it, for a test
    that makes a journal of an older version."""
    conn.execute(f"DROP TABLE {schema}.delivery_attempts, {schema}.deliveries, {schema}.outbox")
    conn.execute(f"DROP INDEX {schema}.signals_by_signal_id")
    conn.execute(f"ALTER TABLE {schema}.signals DROP COLUMN sent_by")
    drop_cancel_requested_by_and_waiting_keys(conn, schema)


def drop_cancel_requested_by_and_waiting_keys(conn: psycopg.Connection[Any], schema: str) -> None:
    """Undo migrations 15 (who asked to cancel a run), 16 (the index of keyed waits) and
    17 (the ledger's index by run dropped), for a test that makes a journal of an older
    version."""
    conn.execute(f"CREATE INDEX ledger_by_run ON {schema}.ledger (run_id)")
    conn.execute(f"ALTER TABLE {schema}.runs DROP COLUMN cancel_requested_by")
    conn.execute(f"DROP TABLE {schema}.waiting_keys")
    for trigger in ("insert", "update", "delete"):
        conn.execute(f"DROP TRIGGER runs_waiting_keys_{trigger} ON {schema}.runs")
    conn.execute(f"DROP FUNCTION {schema}.mnc_waiting_keys()")


def test_a_version_2_journal_gains_the_indexes_and_workers_and_keeps_its_runs(pg_url: str) -> None:
    with PostgresStore(pg_url) as store:
        store.create_run(NewRun("r1", "wf", {}))
        store.request_cancel("r1")
    schema = schema_of(pg_url)
    with raw(pg_url) as conn:
        conn.execute(f"DROP INDEX {schema}.runs_cancel_requested, {schema}.runs_running")
        conn.execute(f"DROP INDEX {schema}.runs_by_lease_owner")
        conn.execute(f"DROP TABLE {schema}.workers, {schema}.tool_rates")
        conn.execute(f"DROP INDEX {schema}.runs_running_by_workflow, {schema}.runs_queued")
        conn.execute(f"ALTER TABLE {schema}.runs DROP COLUMN run_limit, DROP COLUMN queued")
        conn.execute(f"ALTER TABLE {schema}.signals DROP COLUMN correlation")
        conn.execute(f"DROP TABLE {schema}.secrets, {schema}.export_cursors")
        conn.execute(f"DROP TABLE {schema}.removed_runs")
        conn.execute(f"DROP INDEX {schema}.runs_ended_roots")
        drop_quarantine_columns(conn, schema)
        drop_outbox(conn, schema)
        conn.execute(f"ALTER TABLE {schema}.runs DROP COLUMN needs")
        conn.execute(f"DROP TABLE {schema}.worker_offers")
        conn.execute(f"UPDATE {schema}.mnc_meta SET schema_version = 2")
    with PostgresStore(pg_url) as store:
        assert (store.migrated_from, store.schema_version) == (2, SCHEMA_VERSION)
        assert store.runnable_runs() == ["r1"]
        assert store.list_workers() == []
    with raw(pg_url) as conn:
        indexes = conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND indexname IN "
            "('runs_cancel_requested', 'runs_running') ORDER BY indexname",
            (schema,),
        ).fetchall()
    assert indexes == [("runs_cancel_requested",), ("runs_running",)]


def test_a_version_16_journal_loses_the_ledger_index_by_run_and_keeps_its_keys(
    pg_url: str,
) -> None:
    with PostgresStore(pg_url) as store:
        store.create_run(NewRun("r", "wf", {}))
        store.commit(Batch("r", ledger=[LedgerPut("k", "h", "done", False, {"n": 1})]))
    schema = schema_of(pg_url)
    with raw(pg_url) as conn:
        conn.execute(f"CREATE INDEX ledger_by_run ON {schema}.ledger (run_id)")  # 17, undone
        conn.execute(f"UPDATE {schema}.mnc_meta SET schema_version = 16")
    with PostgresStore(pg_url) as store:
        assert (store.migrated_from, store.schema_version) == (16, SCHEMA_VERSION)
        row = store.ledger_get("k", run_id="r")
        assert row is not None and (row.status, row.result) == ("done", {"n": 1})
    with raw(pg_url) as conn:
        indexes = conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = 'ledger'",
            (schema,),
        ).fetchall()
    assert ("ledger_by_run",) not in indexes


def test_a_version_6_journal_keeps_its_signals_unkeyed_and_gains_a_secret(pg_url: str) -> None:
    with PostgresStore(pg_url) as store:
        store.create_run(NewRun("r1", "wf", {}))
        store.commit(Batch("r1", run=RunUpdate(status="waiting", waiting_for=["go"])))
        store.send_signal("r1", "go", 1, signal_id="s")
    schema = schema_of(pg_url)
    with raw(pg_url) as conn:
        conn.execute(f"ALTER TABLE {schema}.signals DROP COLUMN correlation")
        conn.execute(f"DROP TABLE {schema}.secrets, {schema}.export_cursors")
        conn.execute(f"DROP TABLE {schema}.removed_runs")
        conn.execute(f"DROP INDEX {schema}.runs_ended_roots")
        drop_quarantine_columns(conn, schema)
        drop_outbox(conn, schema)
        conn.execute(f"ALTER TABLE {schema}.runs DROP COLUMN needs")
        conn.execute(f"DROP TABLE {schema}.worker_offers")
        conn.execute(f"UPDATE {schema}.mnc_meta SET schema_version = 6")
    with PostgresStore(pg_url) as store:
        assert store.migrated_from == 6
        [kept] = store.pending_signals("r1")
        assert (kept.signal_id, kept.key, kept.address) == ("s", None, "go")
        assert store.runnable_runs() == ["r1"]
        assert len(store.callback_secret()) == 32


def test_another_programs_schema_is_refused_untouched(pg_url: str) -> None:
    schema = schema_of(pg_url)
    with raw(pg_url) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.customers (id int)")
    with pytest.raises(StoreCorrupt, match=f"schema `{schema}` .* is not an mnlang journal"):
        PostgresStore(pg_url)
    with raw(pg_url) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (schema,),
        ).fetchall()
    assert tables == [("customers",)]


def test_processes_opening_a_new_journal_at_once_migrate_it_once(pg_url: str) -> None:
    opener = """
        import sys
        from mnlang.stores.postgres import PostgresStore
        with PostgresStore(sys.argv[1]) as store:
            print(store.migrated_from)
    """
    processes = [python(opener, pg_url) for _ in range(4)]
    outputs = [process.communicate(timeout=60) for process in processes]
    assert [p.returncode for p in processes] == [0] * 4, outputs
    assert sorted(out.strip() for out, _ in outputs) == ["0"] + [str(SCHEMA_VERSION)] * 3


# --- the effect ledger's unique key -----------------------------------------------------------


def test_the_ledger_key_is_unique_in_the_database(store: PostgresStore, pg_url: str) -> None:
    store.create_run(NewRun("r1", "wf", {}))
    store.commit(Batch("r1", ledger=[LedgerPut("refund:17", "h", "done", True, 1)]))
    with raw(pg_url) as conn, pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(
            f"INSERT INTO {schema_of(pg_url)}.ledger "
            "(scope, key, args_hash, status, result, run_id, created_at, updated_at) "
            "VALUES ('', 'refund:17', 'h', 'done', '2', 'r2', 0, 0)"
        )


def test_runs_racing_on_a_global_key_from_many_connections_commit_it_once(pg_url: str) -> None:
    stores = [PostgresStore(pg_url) for _ in range(6)]
    for n, store in enumerate(stores):
        store.create_run(NewRun(f"r{n}", "wf", {}))
    barrier = threading.Barrier(len(stores))
    results: list[object] = []

    def put(n: int, store: PostgresStore) -> None:
        barrier.wait()
        intent = LedgerPut("refund:17", "h", "intent", True)
        first = store.commit(Batch(f"r{n}", ledger=[intent])).ledger[0]
        if first.run_id == f"r{n}" and first.status == "intent":
            done = LedgerPut("refund:17", "h", "done", True, {"by": n})
            results.append(store.commit(Batch(f"r{n}", ledger=[done])).ledger[0].result)
        else:
            results.append(first.result)

    threads = [threading.Thread(target=put, args=(n, s)) for n, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    row = stores[0].ledger_get("refund:17", run_id=None)
    for store in stores:
        store.close()
    assert row is not None and row.status == "done"
    # Every run saw either the winner's result or, before it was done, the intent.
    assert {str(r) for r in results if r is not None} == {str(row.result)}


# --- claims from many connections -------------------------------------------------------------


def test_workers_claiming_at_once_never_claim_a_run_twice(pg_url: str) -> None:
    with PostgresStore(pg_url) as setup:
        for n in range(120):
            setup.create_run(NewRun(f"run-{n:03}", "wf", {}))
    stores = [PostgresStore(pg_url) for _ in range(4)]
    claimed: dict[str, list[str]] = {}

    def work(worker: str, store: PostgresStore) -> None:
        mine: list[str] = []
        while leases := store.claim_runs(worker, ttl=30, limit=7):
            for lease in leases:
                store.commit(Batch(lease.run_id, lease=lease, run=RunUpdate(status="completed")))
                store.release_lease(lease)
                mine.append(lease.run_id)
        claimed[worker] = mine

    threads = [threading.Thread(target=work, args=(f"w{n}", s)) for n, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    every = [run_id for runs in claimed.values() for run_id in runs]
    assert sorted(every) == [f"run-{n:03}" for n in range(120)]
    assert sum(1 for runs in claimed.values() if runs) >= 2


# --- fencing ----------------------------------------------------------------------------------


def test_a_commit_waiting_for_the_row_sees_the_takeover_and_fails(
    store: PostgresStore, pg_url: str
) -> None:
    store.create_run(NewRun("r1", "wf", {}))
    lease = store.acquire_lease("r1", "w1", ttl=30)
    assert lease is not None
    outcome: list[BaseException | None] = []
    with raw(pg_url) as other:
        # Another session takes the row lock, then the run, while w1 commits.
        other.execute("BEGIN")
        other.execute(f"SELECT 1 FROM {schema_of(pg_url)}.runs WHERE run_id = 'r1' FOR UPDATE")

        def commit() -> None:
            try:
                store.commit(Batch("r1", lease=lease, events=[NewEvent("late")]))
                outcome.append(None)
            except StaleLease as e:
                outcome.append(e)

        committer = threading.Thread(target=commit)
        committer.start()
        time.sleep(0.3)
        assert not outcome, "the commit should wait for the row lock"
        other.execute(
            f"UPDATE {schema_of(pg_url)}.runs SET lease_owner = 'w2', "
            "lease_epoch = lease_epoch + 1 WHERE run_id = 'r1'"
        )
        other.execute("COMMIT")
        committer.join(timeout=10)
    assert isinstance(outcome[0], StaleLease)
    assert "epoch 1; the run is now at epoch 2" in str(outcome[0])
    assert store.read_journal("r1") == []


# A worker: takes the run, renews its lease from a heartbeat thread and commits a step every
# 20 ms until a commit or a renewal is refused; it then prints why and stops.
PAUSABLE_WORKER = """
    import sys, threading, time
    from mnlang.stores.base import Batch, NewEvent, StoreError
    from mnlang.stores.postgres import PostgresStore

    store = PostgresStore(sys.argv[1], idle_in_transaction_timeout=0.5)
    lease = store.acquire_lease("r1", "old", ttl=1.0)
    refused = threading.Event()

    def heartbeat():
        global lease
        while not refused.is_set():
            time.sleep(0.2)
            try:
                lease = store.renew_lease(lease, ttl=1.0)
            except StoreError as e:
                refused.set()
                print("renewal refused:", type(e).__name__, flush=True)

    threading.Thread(target=heartbeat, daemon=True).start()
    print("running", flush=True)
    step = 0
    while not refused.is_set():
        step += 1
        try:
            store.commit(Batch("r1", lease=lease, events=[NewEvent("step", {"by": "old", "i": step})]))
        except StoreError as e:
            refused.set()
            print("commit refused:", type(e).__name__, flush=True)
        time.sleep(0.02)
    store.close()
"""


def test_a_worker_paused_past_its_lease_commits_nothing_after_the_takeover(
    store: PostgresStore, pg_url: str
) -> None:
    store.create_run(NewRun("r1", "wf", {}))
    worker = python(PAUSABLE_WORKER, pg_url)
    try:
        assert worker.stdout is not None and worker.stdout.readline() == "running\n"
        deadline = time.monotonic() + 30
        while len(store.read_journal("r1")) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(worker.pid, signal.SIGSTOP)
        wait_until_stopped(worker.pid)
        time.sleep(1.3)  # past the lease's 1 s
        taken = store.acquire_lease("r1", "new", ttl=30)
        assert taken is not None and taken.epoch == 2
        store.commit(Batch("r1", lease=taken, events=[NewEvent("step", {"by": "new"})]))
        os.kill(worker.pid, signal.SIGCONT)
        out, err = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            os.kill(worker.pid, signal.SIGCONT)
            worker.kill()
    assert worker.returncode == 0, err
    assert "refused: StaleLease" in out or "refused: StoreUnavailable" in out, out
    journal = [e.data["by"] for e in store.read_journal("r1")]
    assert journal.count("old") >= 3
    assert journal == ["old"] * (len(journal) - 1) + ["new"], (journal, out, err)


# A worker that stops itself inside its third commit's transaction, its writes sent but
# not committed, holding the run's row lock.
STOPPED_IN_TRANSACTION = """
    import os, signal, sys
    from mnlang.stores import crashpoints
    from mnlang.stores.base import Batch, NewEvent, StoreError
    from mnlang.stores.postgres import PostgresStore

    commits = 0

    def point(self, moment):
        global commits
        if moment == "written":
            commits += 1
            if commits == 3:
                os.kill(os.getpid(), signal.SIGSTOP)

    crashpoints.CrashPlan.point = point
    store = PostgresStore(sys.argv[1], idle_in_transaction_timeout=0.5)
    lease = store.acquire_lease("r1", "old", ttl=1.0)
    for i in range(1, 4):
        try:
            store.commit(Batch("r1", lease=lease, events=[NewEvent("step", {"by": "old", "i": i})]))
            print("committed", i, flush=True)
        except StoreError as e:
            print("commit", i, "failed:", type(e).__name__, e, flush=True)
"""


def test_a_worker_stopped_inside_a_commit_loses_that_commit(
    store: PostgresStore, pg_url: str
) -> None:
    store.create_run(NewRun("r1", "wf", {}))
    worker = python(STOPPED_IN_TRANSACTION, pg_url)
    try:
        wait_until_stopped(worker.pid)
        time.sleep(1.1)  # past the lease
        # The paused session holds the row: the server ends it after 0.5 s idle.
        taken = store.acquire_lease("r1", "new", ttl=30)
        assert taken is not None and taken.epoch == 2
        store.commit(Batch("r1", lease=taken, events=[NewEvent("step", {"by": "new"})]))
        os.kill(worker.pid, signal.SIGCONT)
        out, err = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            os.kill(worker.pid, signal.SIGCONT)
            worker.kill()
    assert worker.returncode == 0, err
    assert out.splitlines()[:2] == ["committed 1", "committed 2"]
    assert out.splitlines()[2].startswith("commit 3 failed: StoreUnavailable"), out
    assert [e.data for e in store.read_journal("r1")] == [
        {"by": "old", "i": 1},
        {"by": "old", "i": 2},
        {"by": "new"},
    ]


# --- wake-ups across processes ----------------------------------------------------------------


WAITER = """
    import sys, time
    from mnlang.stores.postgres import PostgresStore
    with PostgresStore(sys.argv[1]) as store:
        print(store.wait_for_work(0), flush=True)
        woke = store.wait_for_work(20)
        print(woke, time.time(), flush=True)
"""


def test_a_decision_wakes_a_waiting_worker_in_another_process(
    store: PostgresStore, pg_url: str
) -> None:
    store.create_run(NewRun("r1", "wf", {}))
    store.commit(
        Batch(
            "r1",
            run=RunUpdate(status="waiting"),
            open_checkpoints=[OpenCheckpoint("cp1", "review", {})],
        )
    )
    waiter = python(WAITER, pg_url)
    assert waiter.stdout is not None and waiter.stdout.readline() == "False\n"
    time.sleep(0.5)
    decided_at = time.time()
    assert store.decide_checkpoint("r1", "cp1", {"choice": "approve"}, by="ann").accepted
    out, err = waiter.communicate(timeout=30)
    assert waiter.returncode == 0, err
    woke, woke_at = out.split()
    # Both processes read the same machine's clock.
    assert woke == "True" and 0 < float(woke_at) - decided_at < 1.0


# --- crashes at commit boundaries -------------------------------------------------------------


def run_writer(url: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MNC_CRASH")}
    environment.update(env, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-c", WRITER, url],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def committed_batches(url: str) -> int:
    """How many of the writer's batches are in the journal, after checking none is torn."""
    with PostgresStore(url) as store:
        state = store.load_state("r")
        journal = store.read_journal("r")
        ledger = [store.ledger_get(f"effect:{i}", run_id="r") for i in range(1, BATCHES + 1)]
        timers = store.run_timers("r")
    n = len(journal) // 2
    assert len(journal) == 2 * n
    assert sum(row is not None for row in ledger) == len(timers) == n
    expected = {"i": n, "done": [0, *range(2, n + 1)]} if n else {}
    assert state.variables.get("", {}) == expected
    assert state.run.status == ("completed" if n == BATCHES else "running")
    return n


@pytest.mark.parametrize(
    ("when", "at", "batches"),
    [
        ("after", 2, 2),
        ("before", 2, 1),
        ("written", 2, 1),
        ("written", 1, 0),
        # COMMIT sent, the process gone before its reply: the server still commits it.
        ("during", 2, 2),
        ("", 3, 3),
    ],
)
def test_a_crash_at_a_commit_leaves_whole_batches(
    pg_url: str, when: str, at: int, batches: int
) -> None:
    crashed = run_writer(pg_url, MNC_CRASH_AT_COMMIT=str(at), MNC_CRASH_WHEN=when)
    assert crashed.returncode == CRASH_EXIT_STATUS, crashed.stderr
    assert committed_batches(pg_url) == batches


# --- the database's clock ---------------------------------------------------------------------


def test_leases_and_timers_use_the_database_clock(
    store: PostgresStore, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """This process's clock is an hour fast; the store must not notice."""
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 3600)
    store.create_run(NewRun("r1", "wf", {}))
    lease = store.acquire_lease("r1", "w1", ttl=60)
    store.commit(Batch("r1", lease=lease, set_timers=[SetTimer("retry", 30)]))
    with raw(pg_url) as conn:
        row = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
    assert row is not None
    server_now = float(row[0])
    assert lease is not None and abs(lease.expires_at - (server_now + 60)) < 1
    assert abs(store.run_timers("r1")[0].due_at - (server_now + 30)) < 1
    assert abs(store.now() - server_now) < 1
    assert store.due_timers(now=server_now + 31) and not store.due_timers()


# --- mnc db migrate ---------------------------------------------------------------------------


def test_mnc_db_migrate_creates_then_reports_up_to_date(pg_url: str, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from mnlang.cli import main
    from mnlang.stores import schema as sqlite_schema

    runner = CliRunner()
    sqlite_path = str(tmp_path / "journal.db")
    for target, shown, version in (
        (pg_url, parse_url(pg_url).location, SCHEMA_VERSION),
        (sqlite_path, sqlite_path, sqlite_schema.SCHEMA_VERSION),
    ):
        created = runner.invoke(main, ["db", "migrate", "--db", target])
        assert (created.exit_code, created.output) == (
            0,
            f"created journal `{shown}` at schema version {version}\n",
        )
        again = runner.invoke(main, ["db", "migrate", "--db", target, "--json"])
        assert again.exit_code == 0
        assert json.loads(again.output) == {
            "journal": shown,
            "from_version": version,
            "version": version,
        }


def test_mnc_db_migrate_reports_an_unreachable_database() -> None:
    from click.testing import CliRunner

    from mnlang.cli import main

    done = CliRunner().invoke(
        main, ["db", "migrate", "--db", f"postgresql://x@127.0.0.1:{free_port()}/db"]
    )
    assert done.exit_code == 2
    assert "error: cannot use journal" in done.output and "help: " in done.output
