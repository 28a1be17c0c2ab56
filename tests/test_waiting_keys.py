"""The index of keyed waits (`waiting_keys`, journal step 16) on both stores: it follows
each run's `waiting_for` whatever writes it (a commit, a retry's reopen, gc), an older
journal gains it filled from its waiting runs, and the lookup of an inbound webhook
matched by key alone (`Store.waiting_for_key`) is answered through its index, as the
query planners of SQLite and PostgreSQL show."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from mnlang.stores import open_store
from mnlang.stores.base import Batch, NewRun, RunUpdate, Store
from mnlang.stores.common import WAITING_FOR_KEY_SQL


def wait(store: Store, run_id: str, *addresses: str) -> None:
    store.commit(Batch(run_id, run=RunUpdate(status="waiting", waiting_for=list(addresses))))


def test_the_index_follows_what_each_run_waits_for(store: Store) -> None:
    for run_id in ("a", "b", "c"):
        store.create_run(NewRun(run_id, "order", {}))
    wait(store, "a", "shop.paid#o-1", "shipped")  # an unkeyed wait is not indexed
    wait(store, "b", "paid#o-1", "refund#o-1#x")  # a key may hold `#`
    wait(store, "c", "paid#o-2")
    assert store.waiting_for_key("o-1") == [("a", "shop.paid"), ("b", "paid")]
    assert store.waiting_for_key("o-1#x") == [("b", "refund")]
    assert store.waiting_for_key("shipped") == []

    wait(store, "a", "paid#o-2")  # its wait moved on
    assert store.waiting_for_key("o-1") == [("b", "paid")]
    assert store.waiting_for_key("o-2") == [("a", "paid"), ("c", "paid")]

    store.commit(Batch("c", run=RunUpdate(status="running", waiting_for=[])))
    store.commit(Batch("a", run=RunUpdate(status="completed", result=1)))
    assert store.waiting_for_key("o-2") == []  # running, ended: not waiting now

    wait(store, "b", "paid#o-1")
    store.commit(Batch("b", run=RunUpdate(status="failed", error={"kind": "x"})))
    assert store.waiting_for_key("o-1") == []


def test_a_removed_run_leaves_no_keyed_wait(store: Store) -> None:
    from mnlang.retention import TombstoneWriter

    store.create_run(NewRun("gone", "order", {}))
    wait(store, "gone", "paid#k")
    store.commit(Batch("gone", run=RunUpdate(status="cancelled", error={"kind": "cancelled"})))
    record = store.get_run("gone")
    assert record is not None
    assert store.remove_runs([[TombstoneWriter(store).tombstone(record)]]) == ["gone"]
    assert count_rows(store, "waiting_keys") == 0


def count_rows(store: Store, table: str) -> int:
    if store.location.startswith("postgresql://"):
        import psycopg

        from mnlang.stores.postgres import parse_url

        target = parse_url(store.location)
        with psycopg.connect(target.conninfo) as conn:
            row = conn.execute(f"SELECT count(*) FROM {target.schema}.{table}").fetchone()
    else:
        with sqlite3.connect(store.location) as conn:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def test_the_lookup_by_key_uses_the_index(store: Store) -> None:
    for n in range(50):
        store.create_run(NewRun(f"r{n}", "order", {}))
        wait(store, f"r{n}", f"paid#o-{n}")
    if store.location.startswith("postgresql://"):
        import psycopg

        from mnlang.stores.postgres import parse_url

        target = parse_url(store.location)
        with psycopg.connect(target.conninfo, options=f"-c search_path={target.schema}") as conn:
            conn.execute("ANALYZE waiting_keys")
            conn.execute("ANALYZE runs")
            # On 50 rows a sequential scan may be cheaper; the question is whether the
            # planner can answer by the index at all, as it will once there are many.
            conn.execute("SET enable_seqscan = off")
            rows: list[Any] = conn.execute(f"EXPLAIN {WAITING_FOR_KEY_SQL}", ("o-7",)).fetchall()
        plan = "\n".join(str(row[0]) for row in rows)
        assert "waiting_keys_by_key" in plan, plan
    else:
        with sqlite3.connect(store.location) as conn:
            rows = conn.execute(
                f"EXPLAIN QUERY PLAN {WAITING_FOR_KEY_SQL.replace('%s', '?')}", ("o-7",)
            ).fetchall()
        plan = "\n".join(str(row[3]) for row in rows)
        assert "USING INDEX waiting_keys_by_key (key=?)" in plan, plan
        assert "SCAN k" not in plan and "SCAN r" not in plan, plan
    assert store.waiting_for_key("o-7") == [("r7", "paid")]


def test_a_version_15_journal_gains_the_index_filled_from_its_waiting_runs(journal: str) -> None:
    with open_store(journal) as store:
        store.create_run(NewRun("w", "order", {}))
        wait(store, "w", "paid#o-9", "shipped")
        store.create_run(NewRun("x", "order", {}))
    undo_step_16(journal)
    with open_store(journal) as store:
        assert store.migrated_from == 15
        assert store.waiting_for_key("o-9") == [("w", "paid")]
        wait(store, "x", "paid#o-9")  # and its triggers keep it from now on
        assert store.waiting_for_key("o-9") == [("w", "paid"), ("x", "paid")]


def undo_step_16(journal: str) -> None:
    """Make `journal` a version-15 journal: no `waiting_keys`, its triggers or function,
    and (undoing step 17) the ledger's index by run."""
    if journal.startswith("postgresql://"):
        import psycopg

        from mnlang.stores.postgres import parse_url

        target = parse_url(journal)
        schema = target.schema
        with psycopg.connect(target.conninfo, autocommit=True) as conn:
            for trigger in ("insert", "update", "delete"):
                conn.execute(f"DROP TRIGGER runs_waiting_keys_{trigger} ON {schema}.runs")
            conn.execute(f"DROP FUNCTION {schema}.mnc_waiting_keys()")
            conn.execute(f"DROP TABLE {schema}.waiting_keys")
            conn.execute(f"CREATE INDEX ledger_by_run ON {schema}.ledger (run_id)")
            conn.execute(f"UPDATE {schema}.mnc_meta SET schema_version = 15")
    else:
        with sqlite3.connect(journal) as conn:
            for trigger in ("insert", "update", "delete"):
                conn.execute(f"DROP TRIGGER runs_waiting_keys_{trigger}")
            conn.execute("DROP TABLE waiting_keys")
            conn.execute("CREATE INDEX ledger_by_run ON ledger (run_id)")
            conn.execute("PRAGMA user_version = 15")


def test_a_damaged_waiting_for_gives_no_keyed_wait_and_does_not_fail_the_write(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "journal.db"
    with open_store(journal) as store:
        store.create_run(NewRun("d", "order", {}))
        wait(store, "d", "paid#o-1")
    with sqlite3.connect(journal) as conn:
        conn.execute("UPDATE runs SET waiting_for = '[\"paid#o-1' WHERE run_id = 'd'")
    with open_store(journal) as store:
        assert store.waiting_for_key("o-1") == []
