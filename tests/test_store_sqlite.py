"""The SQLite store beyond the contract: files, pragmas, migrations, locks, corruption."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mnlang.stores import DEFAULT_PATH, open_store
from mnlang.stores.base import (
    AppendList,
    Batch,
    Decision,
    LedgerPut,
    NewEvent,
    NewRun,
    OpenCheckpoint,
    SetCursor,
    SetList,
    Store,
    StoreCorrupt,
    StoreError,
    StoreLocked,
    StoreVersionError,
)
from mnlang.stores.schema import APPLICATION_ID, SCHEMA_VERSION
from mnlang.stores.sqlite import SQLiteStore


def pragma(path: Path, name: str) -> object:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        conn.close()


def drop_cancel_requested_by_and_waiting_keys(conn: sqlite3.Connection) -> None:
    """Undo migrations 15 (who asked to cancel a run), 16 (the index of keyed waits) and
    17 (the ledger's index by run dropped), for a test that makes a journal of an older
    version."""
    conn.execute("CREATE INDEX ledger_by_run ON ledger (run_id)")
    for trigger in ("insert", "update", "delete"):
        conn.execute(f"DROP TRIGGER runs_waiting_keys_{trigger}")
    conn.execute("DROP TABLE waiting_keys")
    conn.execute("ALTER TABLE runs DROP COLUMN cancel_requested_by")


# --- where the journal lives ------------------------------------------------------------


def test_default_path_is_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MNC_DB", raising=False)
    with open_store() as store:
        assert store.location == str(DEFAULT_PATH)
    assert (tmp_path / ".mnc" / "journal.db").is_file()


def test_env_var_and_explicit_path_override_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MNC_DB", str(tmp_path / "env.db"))
    with open_store() as store:
        assert store.location == str(tmp_path / "env.db")
    with open_store(tmp_path / "flag.db") as store:
        assert store.location == str(tmp_path / "flag.db")


def test_sqlite_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with open_store("sqlite:///rel.db") as store:
        assert store.location == "rel.db"
    absolute = tmp_path / "abs.db"
    with open_store(f"sqlite:///{absolute}") as store:
        assert store.location == str(absolute)


def test_unsupported_urls_are_refused() -> None:
    with pytest.raises(StoreError, match="unknown journal URL scheme `redis://`") as info:
        open_store("redis://x")
    assert info.value.help


def test_unknown_durability_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unknown durability `safe`"):
        open_store(tmp_path / "j.db", durability="safe")  # type: ignore[arg-type]


def test_uncreatable_directory_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(StoreError, match="cannot create directory") as info:
        open_store(tmp_path / "file" / "journal.db")
    assert info.value.help


# --- pragmas and durability -----------------------------------------------------------------


@pytest.mark.parametrize(("durability", "synchronous"), [("full", 2), ("fast", 1)])
def test_wal_and_synchronous(tmp_path: Path, durability: str, synchronous: int) -> None:
    store = SQLiteStore(tmp_path / "j.db", durability=durability)  # type: ignore[arg-type]
    with store:
        conn = store._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == synchronous


# --- schema versions --------------------------------------------------------------------------


def test_empty_file_is_migrated_from_version_0(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    path.write_bytes(b"")
    with open_store(path) as store:
        store.create_run(NewRun("r1", "wf", {}))
    assert pragma(path, "user_version") == SCHEMA_VERSION
    assert pragma(path, "application_id") == APPLICATION_ID
    # Reopening an up-to-date file keeps its data.
    with open_store(path) as store:
        assert store.get_run("r1") is not None


def test_a_version_6_journal_keeps_its_signals_unkeyed_and_gains_a_secret(tmp_path: Path) -> None:
    import sqlite_utils

    from mnlang.stores.schema import MIGRATIONS

    path = tmp_path / "v6.db"
    db = sqlite_utils.Database(path)
    for step in MIGRATIONS[:6]:
        step(db)
    db.execute("PRAGMA user_version = 6")
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db.execute(
        "INSERT INTO runs (run_id, workflow, workflow_class, status, result, error, ir_hash, "
        "meta, waiting_for, created_at, updated_at) VALUES ('r', 'wf', '', 'waiting', 'null', "
        "'null', '', '{}', '[\"go\"]', 0, 0)"
    )
    db.execute(
        "INSERT INTO signals (run_id, signal_id, name, payload, sent_at) "
        "VALUES ('r', 's', 'go', '1', 0)"
    )
    db.conn.commit()
    db.close()
    with open_store(path) as store:
        assert store.migrated_from == 6
        [kept] = store.pending_signals("r")
        assert (kept.key, kept.address) == (None, "go")
        assert "r" in store.runnable_runs()
        assert len(store.callback_secret()) == 32


def test_a_version_16_journal_loses_the_ledger_index_by_run_and_keeps_its_keys(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v16.db"
    with open_store(path) as store:
        store.create_run(NewRun("r", "wf", {}))
        store.commit(Batch("r", ledger=[LedgerPut("k", "h", "done", False, {"n": 1})]))
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE INDEX ledger_by_run ON ledger (run_id)")  # step 17, undone
        conn.execute("PRAGMA user_version = 16")
    with open_store(path) as store:
        assert (store.migrated_from, store.schema_version) == (16, SCHEMA_VERSION)
        row = store.ledger_get("k", run_id="r")
        assert row is not None and (row.status, row.result) == ("done", {"n": 1})
    with sqlite3.connect(path) as conn:
        indexes = conn.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'ledger'")
        assert "ledger_by_run" not in {name for (name,) in indexes}


def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    open_store(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreVersionError, match=rf"schema version {SCHEMA_VERSION + 1}, newer"):
        open_store(path)
    assert pragma(path, "user_version") == SCHEMA_VERSION + 1


def test_another_programs_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreCorrupt, match="not an mnlang journal"):
        open_store(path)
    assert pragma(path, "user_version") == 0
    assert pragma(path, "application_id") == 0


# --- locks and corruption -----------------------------------------------------------------


LOCK_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""


def test_journal_locked_by_another_process_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    store = open_store(path, busy_timeout=0.2)
    store.create_run(NewRun("r1", "wf", {}))
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with pytest.raises(StoreLocked, match=f"journal `{path}` is locked") as info:
            store.commit(Batch("r1", events=[NewEvent("step")]))
        assert info.value.help
        # Readers are not blocked in WAL mode.
        assert store.get_run("r1") is not None
    finally:
        holder.communicate("", timeout=10)
    assert store.commit(Batch("r1", events=[NewEvent("step")])).last_seq == 1
    store.close()


def test_journal_locked_while_opening_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("CREATE TABLE placeholder (x)")
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreLocked, match=f"`{path}`"):
            open_store(path, busy_timeout=0.2)
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_random_bytes_are_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    path.write_bytes(random.Random(7).randbytes(16384))
    with pytest.raises(StoreCorrupt, match=f"`{path}` is not a usable journal database") as info:
        open_store(path)
    assert info.value.help


def test_damaged_pages_are_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with open_store(path) as store:
        for i in range(50):
            store.create_run(NewRun(f"run-{i}", "wf", {"payload": "x" * 500}))
    data = bytearray(path.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    garbage = random.Random(3).randbytes(len(data) - 2 * page_size)
    data[2 * page_size :] = garbage
    path.write_bytes(bytes(data))
    with pytest.raises(StoreCorrupt, match=f"`{path}`"), open_store(path) as store:
        store.list_runs()


# --- incremental list variables and concurrency -------------------------------------------------


def test_appending_to_a_long_list_writes_a_constant_number_of_rows(tmp_path: Path) -> None:
    with open_store(tmp_path / "j.db", durability="fast") as store:
        store.create_run(NewRun("r1", "wf", {}))
        store.commit(Batch("r1", state=[SetList("", "summaries", [])]))
        expected: list[object] = []
        rows_written = []
        for commit in range(100):
            items = [{"i": commit * 100 + j, "text": f"summary {j}"} for j in range(100)]
            expected += items
            result = store.commit(
                Batch(
                    "r1",
                    events=[NewEvent("yield", {"n": 100})],
                    state=[AppendList("", "summaries", items), SetCursor("", commit)],
                )
            )
            rows_written.append(result.rows_written)
        # event + variable length + 100 items + cursor + run row, at item 100 as at 10,000
        assert set(rows_written) == {104}
        state = store.load_state("r1")
    assert state.variables[""]["summaries"] == expected
    assert state.cursors == {"": 99}


def test_load_state_reads_the_store_clock_with_the_run_row(tmp_path: Path) -> None:
    """A worker resuming a run takes the store's clock from `load_state` (no statement
    of its own): the offset is the store's clock minus this process's."""
    with open_store(tmp_path / "j.db", durability="fast") as store:
        store.create_run(NewRun("r1", "wf", {}))
        before = store.now() - time.time()
        offset = store.load_state("r1").clock_offset
        after = store.now() - time.time()
    assert offset is not None
    # SQLite's clock is this machine's, read to the millisecond.
    assert min(before, after) - 0.01 <= offset <= max(before, after) + 0.01


def test_threads_share_one_store(tmp_path: Path) -> None:
    with open_store(tmp_path / "j.db", durability="fast") as store:
        store.create_run(NewRun("r1", "wf", {}))

        def commit_many(branch: str) -> None:
            for i in range(50):
                store.commit(Batch("r1", events=[NewEvent("step", {"i": i}, branch=branch)]))

        threads = [threading.Thread(target=commit_many, args=(f"b{n}",)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        journal = store.read_journal("r1")
    assert [e.seq for e in journal] == list(range(1, 201))


def test_two_connections_number_events_without_gaps(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with (
        open_store(path, durability="fast") as first,
        open_store(path, durability="fast") as second,
    ):
        first.create_run(NewRun("r1", "wf", {}))
        for i in range(10):
            (first if i % 2 else second).commit(Batch("r1", events=[NewEvent("step", i)]))
        assert [e.data for e in first.read_journal("r1")] == list(range(10))
        assert second.load_state("r1").run.last_seq == 10


def test_racing_decisions_from_two_connections_have_one_winner(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with open_store(path) as setup:
        setup.create_run(NewRun("r1", "wf", {}))
        setup.commit(Batch("r1", open_checkpoints=[OpenCheckpoint("cp1", "review", {})]))
    stores = [open_store(path) for _ in range(4)]
    outcomes: list[Decision] = []
    barrier = threading.Barrier(len(stores))

    def decide(store: Store, who: str) -> None:
        barrier.wait()
        outcomes.append(store.decide_checkpoint("r1", "cp1", {"choice": who}, by=who))

    threads = [
        threading.Thread(target=decide, args=(store, f"person{n}"))
        for n, store in enumerate(stores)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    winners = [o for o in outcomes if o.accepted]
    assert len(outcomes) == 4 and len(winners) == 1
    winner = winners[0].checkpoint.decided_by
    assert {o.checkpoint.decided_by for o in outcomes} == {winner}
