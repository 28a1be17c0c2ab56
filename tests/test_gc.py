"""Issue 18, retention: `mnc gc` removes ended run trees and every row of their runs in
bounded transactions, keeps `scope: global` keys (unless `--ledger-older-than`) and a
tombstone per run (an idempotent start with its id answers as before), keeps live trees
and runs whose detached child is alive, appends an archive that replays "same" before
deleting, and survives a kill -9 between the two. On SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
import signal
import sqlite3
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnlang import api
from mnlang.metrics import compute_metrics
from mnlang.metrics.render import metrics_lines
from mnlang.replay.archive import read_archive, write_archive
from mnlang.replay.recording import RecordedRun, Recording, recording_from_store
from mnlang.retention import TombstoneWriter
from mnlang.runtime.run import RunConflict
from mnlang.stores import open_store
from mnlang.stores.base import (
    Batch,
    Event,
    LedgerPut,
    NewEvent,
    NewRun,
    OpenCheckpoint,
    RunNotFound,
    RunRecord,
    RunRemoved,
    RunUpdate,
    SendSignal,
    SetCursor,
    SetTimer,
    SetVar,
    Store,
    Tombstone,
)
from mnlang.stores.crashpoints import CRASH_EXIT_STATUS
from mnlang.stores.sqlite import SQLiteStore
from tests.human.harness import mnc, mnc_env, spawn

FLOW = textwrap.dedent(
    """\
    effect pay(n: int) -> str {
      impl: "gc_flow_tools:pay"
      key: "pay:{n}"
      scope: global
    }

    effect note(n: int) -> str {
      impl: "gc_flow_tools:note"
      key: "note:{n}"
    }

    event go

    workflow line(n: int) -> str {
      x = note(n)
      return x
    }

    workflow order(n: int) -> str {
      r = pay(n)
      l = line(n)
      return "{r} {l}"
    }

    workflow hold(n: int) -> str {
      _go = wait go { timeout: 1h }
      return "held {n}"
    }

    workflow report(i: int) -> str {
      return "report {i}"
    }

    workflow launcher(n: int) -> str {
      id = start report(n)
      return id
    }
    """
)
TOOLS = textwrap.dedent(
    """\
    def pay(n, *, ctx):
        return f"paid-{n}"


    def note(n, *, ctx):
        return f"noted-{n}"
    """
)
TEMPLATE = "tmpl-x"
RUN_TABLES = (
    "events",
    "cursors",
    "variables",
    "list_items",
    "signals",
    "checkpoints",
    "timers",
    "export_cursors",
)
DAY = 86400.0


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    folder = tmp_path / "flow"
    folder.mkdir()
    (folder / "flow.mn").write_text(FLOW)
    (folder / "gc_flow_tools.py").write_text(TOOLS)
    return folder / "flow.mn"


@pytest.fixture
def store_of(journal: str) -> Iterator[Store]:
    store = open_store(journal, "fast")
    yield store
    store.close()


def start(flow: Path, journal: str, workflow: str, run_id: str, n: int) -> Any:
    return api.start_run(flow, {"n": n}, workflow=workflow, run_id=run_id, db=journal)


def clone_trees(store: Store, count: int, prefix: str) -> list[str]:
    """`count` copies of the run tree `TEMPLATE` (an `order` and its `line` child) made
    through the store API, each run with rows in every table gc must clear: journal,
    state, a run-scoped and a global key, a signal, a checkpoint, a timer, a cursor of
    `mnc export traces`."""
    template = recording_from_store(store, TEMPLATE)
    ids = []
    for i in range(count):
        new = f"{prefix}{i:05d}"
        ids.append(new)

        def renamed(value: Any, new: str = new) -> Any:
            return json.loads(json.dumps(value).replace(TEMPLATE, new))

        for run in template.root.walk():
            r = run.record
            run_id = renamed(r.run_id)
            store.create_run(
                NewRun(
                    run_id,
                    r.workflow,
                    renamed(r.args),
                    workflow_class=r.workflow_class,
                    ir_hash=r.ir_hash,
                    parent_run_id=renamed(r.parent_run_id),
                    meta=renamed(r.meta),
                )
            )
            store.commit(
                Batch(
                    run_id,
                    events=[
                        NewEvent(e.kind, renamed(e.data), e.state, e.branch) for e in run.events
                    ],
                    state=[SetVar("", "x", [1, 2]), SetCursor("", {"at": "end"})],
                    run=RunUpdate(status=r.status, result=renamed(r.result)),
                    ledger=[
                        LedgerPut(f"scoped:{run_id}", "h", "done", result=1),
                        LedgerPut(f"global:{run_id}", "h", "done", global_scope=True, result=1),
                    ],
                    set_timers=[SetTimer("t", 3600.0)],
                    open_checkpoints=[OpenCheckpoint("c", "ask", {"question": "?"})],
                    send_signals=[SendSignal(run_id, "ping", {}, signal_id="s")],
                )
            )
    exported = {f"{i}{suffix}": 1 for i in ids for suffix in ("", ".l")}
    store.move_export_cursor("traces", exported)
    return ids


def age(journal: str, days: float, run_ids: list[str] | None = None) -> None:
    """Move the end of runs (all, or those named) and the last write of the global keys
    they wrote `days` into the past."""
    seconds = days * DAY
    runs = f"UPDATE runs SET finished_at = finished_at - {seconds}"
    keys = f"UPDATE ledger SET updated_at = updated_at - {seconds} WHERE scope = ''"
    if journal.startswith("postgresql://"):
        import psycopg

        from mnlang.stores.postgres import parse_url

        target = parse_url(journal)
        with psycopg.connect(target.conninfo, autocommit=True) as conn:
            conn.execute(f"SET search_path TO {target.schema}")
            if run_ids is None:
                conn.execute(runs)
                conn.execute(keys)
            else:
                conn.execute(runs + " WHERE run_id = ANY(%s)", (run_ids,))
                conn.execute(keys + " AND run_id = ANY(%s)", (run_ids,))
        return
    with sqlite3.connect(journal) as conn:
        if run_ids is None:
            conn.execute(runs)
            conn.execute(keys)
        else:
            marks = ",".join("?" * len(run_ids))
            conn.execute(runs + f" WHERE run_id IN ({marks})", run_ids)
            conn.execute(keys + f" AND run_id IN ({marks})", run_ids)


def leftovers(store: Store, removed: list[str]) -> dict[str, int]:
    """Rows anywhere of runs that should be gone (through the store's own readers)."""
    found: dict[str, int] = {}
    for run_id in removed:
        for name, rows in (
            ("run", [store.get_run(run_id)] if store.get_run(run_id) else []),
            ("events", store.read_journal(run_id)),
            ("signals", store.pending_signals(run_id)),
            ("checkpoints", store.open_checkpoints(run_id)),
            ("timers", store.run_timers(run_id)),
            ("export cursor", [run_id] if run_id in store.export_cursor("traces") else []),
            (
                "scoped key",
                [store.ledger_get(f"scoped:{run_id}", run_id=run_id)]
                if store.ledger_get(f"scoped:{run_id}", run_id=run_id)
                else [],
            ),
        ):
            if rows:
                found[name] = found.get(name, 0) + len(rows)
    return found


def orphan_rows(path: str) -> dict[str, int]:
    """SQLite: rows of any run table whose run is not in `runs` (a half-deleted tree)."""
    with sqlite3.connect(path) as conn:
        counts = {
            table: conn.execute(
                f"SELECT count(*) FROM {table} WHERE run_id NOT IN (SELECT run_id FROM runs)"
            ).fetchone()[0]
            for table in (*RUN_TABLES, "run_args")
        }
        counts["ledger"] = conn.execute(
            "SELECT count(*) FROM ledger WHERE scope != '' "
            "AND scope NOT IN (SELECT run_id FROM runs)"
        ).fetchone()[0]
    return {k: v for k, v in counts.items() if v}


# --- a small journal, both stores ------------------------------------------------------------


def test_gc_removes_old_ended_trees_keeps_live_and_detached_parents(
    flow: Path, journal: str, store_of: Store, tmp_path: Path
) -> None:
    start(flow, journal, "order", "old-1", 1)
    start(flow, journal, "order", "old-2", 2)
    start(flow, journal, "order", "new-1", 3)  # ended, but recently
    held = start(flow, journal, "hold", "held", 4)
    assert held.status == "waiting"
    launched = start(flow, journal, "launcher", "launcher", 5)
    assert launched.status == "completed"  # its detached child waits for a worker
    child_id = launched.result
    assert store_of.get_run(child_id).status == "running"  # type: ignore[union-attr]
    age(journal, 40, ["old-1", "old-1.l", "old-2", "old-2.l", "held", "launcher", child_id])

    archive = tmp_path / "gc.jsonl"
    report = api.collect_garbage(older_than=30 * DAY, archive=archive, db=journal)

    assert (report.trees, report.runs) == (2, 4)
    assert report.kept_detached == ["launcher"]
    left = {r.run_id for r in store_of.list_runs(limit=100)}
    assert left == {"new-1", "new-1.l", "held", "launcher", child_id}
    assert leftovers(store_of, ["old-1", "old-1.l", "old-2", "old-2.l"]) == {}
    assert store_of.ledger_get("pay:1", run_id=None) is not None  # global keys stay
    assert store_of.ledger_get("note:1", run_id="old-1.l") is None
    assert store_of.tombstone_count() == 4
    assert [r.verdict for r in api.replay_runs(archives=[archive])] == ["same", "same"]
    # Metrics say what they no longer see; `mnc show` says where a run went.
    metrics = compute_metrics(store_of)
    assert metrics.removed_runs == 4
    assert metrics.earliest == min(r.created_at for r in store_of.list_runs(limit=100))
    assert "4 ended runs removed by `mnc gc` are not counted" in metrics_lines(metrics)[0]
    with pytest.raises(RunNotFound, match="removed by `mnc gc`"):
        api.get_run("old-1", db=journal)

    # Once the detached child ended, its starter goes (the child is a run of its own).
    api.run_worker(db=journal, until_idle=True)
    assert store_of.get_run(child_id).status == "completed"  # type: ignore[union-attr]
    again = api.collect_garbage(older_than=30 * DAY, db=journal)
    assert (again.trees, again.kept_detached) == (1, [])
    assert store_of.get_run("launcher") is None and store_of.get_run(child_id) is not None

    # A removed id still answers a start: same input the ended run, other input refused.
    same = start(flow, journal, "order", "old-1", 1)
    assert (same.status, same.created) == ("completed", False)
    assert store_of.get_run("old-1") is None  # not started again
    with pytest.raises(RunConflict):
        start(flow, journal, "order", "old-1", 9)

    # --ledger-older-than removes the global keys written before then.
    keys = api.collect_garbage(older_than=30 * DAY, ledger_older_than=30 * DAY, db=journal)
    assert keys.global_keys == 2  # pay:1 and pay:2 were aged; pay:3 was written now
    assert store_of.ledger_get("pay:1", run_id=None) is None
    assert store_of.ledger_get("pay:3", run_id=None) is not None


def test_dry_run_and_bad_arguments_change_nothing(flow: Path, tmp_path: Path) -> None:
    journal = str(tmp_path / "journal.db")
    start(flow, journal, "order", "o1", 1)
    age(journal, 40)
    env = mnc_env(tmp_path)
    before = rows(journal)
    archive = tmp_path / "a.jsonl"

    dry = mnc(
        [
            "gc",
            "--older-than",
            "30d",
            "--dry-run",
            "--archive",
            str(archive),
            "--db",
            journal,
            "--json",
        ],
        env,
    )
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["runs"] == 2
    for bad, says in (
        (["--older-than", "soon"], "is not a span"),
        (["--older-than", "30"], "has no unit"),
        ([], "Missing option '--older-than'"),
        (["--older-than", "30d", "--status", "running"], "not a list of ended statuses"),
        (["--older-than", "30d", "--ledger-older-than", "x"], "is not a span"),
        (
            ["--older-than", "30d", "--archive", str(tmp_path / "nowhere" / "a.jsonl")],
            "does not exist",
        ),
        (["--older-than", "30d", "--archive", str(tmp_path)], "directory"),
    ):
        refused = mnc(["gc", *bad, "--db", journal], env)
        assert refused.returncode == 2, (bad, refused.stdout)
        assert says in refused.stderr, (bad, refused.stderr)
        assert "Traceback" not in refused.stderr
    missing = mnc(["gc", "--older-than", "30d", "--db", str(tmp_path / "none.db")], env)
    assert missing.returncode == 2 and "no journal" in missing.stderr
    assert not (tmp_path / "none.db").exists()
    assert not archive.exists()
    with SQLiteStore(journal) as store:
        assert store.get_run("o1") is not None and store.tombstone_count() == 0
    assert rows(journal) == before


def rows(path: str) -> list[str]:
    """Every row of a SQLite journal, as SQL."""
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


# --- 10,000 ended runs ---------------------------------------------------------------------


@pytest.mark.slow  # about 30 s: 20,000 commits to make the runs, then the gc
def test_gc_of_ten_thousand_ended_runs(flow: Path, tmp_path: Path) -> None:
    journal = str(tmp_path / "journal.db")
    start(flow, journal, "order", TEMPLATE, 7)
    start(flow, journal, "hold", "held", 1)
    with open_store(journal, "fast") as store:
        began = time.monotonic()
        ids = clone_trees(store, 5000, "gen-")  # 10,000 runs with their children
        print(f"made 10,000 runs in {time.monotonic() - began:.1f}s", file=sys.stderr)
    age(journal, 40)
    archive = tmp_path / "gc.jsonl"
    env = mnc_env(tmp_path)
    began = time.monotonic()
    done = mnc(
        ["gc", "--older-than", "30d", "--archive", str(archive), "--db", journal, "--json"],
        env,
        timeout=600,
    )
    print(f"gc of 10,002 runs in {time.monotonic() - began:.1f}s", file=sys.stderr)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["trees"], report["runs"]) == (5001, 10002)

    with SQLiteStore(journal) as store:
        assert [r.run_id for r in store.list_runs(limit=10)] == ["held"]
        assert store.tombstone_count() == 10002
        assert store.get_tombstone("gen-04999.l") is not None
        for run_id in (ids[0], ids[-1]):  # global keys stay, run-scoped ones go
            assert store.ledger_get(f"global:{run_id}", run_id=None) is not None
            assert store.ledger_get(f"scoped:{run_id}", run_id=run_id) is None
    assert orphan_rows(journal) == {}
    recordings = read_archive(archive)
    assert len(recordings) == 5001
    assert sum(len(r.root.walk()) for r in recordings) == 10002
    sample = [r for r in recordings if r.root.record.run_id in (TEMPLATE, ids[0], ids[-1])]
    from mnlang.replay.batch import replay_all

    assert [item.verdict for item in replay_all(sample)] == ["same"] * 3


# --- kill -9 in the middle -------------------------------------------------------------------


@pytest.mark.parametrize("when", ["written", "after"])
def test_kill_between_archive_and_delete_loses_nothing(
    flow: Path, journal: str, tmp_path: Path, when: str
) -> None:
    start(flow, journal, "order", TEMPLATE, 7)
    with open_store(journal, "fast") as store:
        ids = clone_trees(store, 250, "gen-")  # three batches of trees
    age(journal, 40)
    archive = tmp_path / "gc.jsonl"
    args = ["gc", "--older-than", "30d", "--archive", str(archive), "--db", journal]
    crashed = mnc(args, mnc_env(tmp_path, MNC_CRASH_AT_COMMIT="2", MNC_CRASH_WHEN=when))
    assert crashed.returncode == CRASH_EXIT_STATUS, crashed.stderr

    with open_store(journal) as store:
        left = {r.run_id for r in store.list_runs(limit=1000)}
        # Whole trees only: a batch is removed with every row, or not at all.
        gone_batches = 2 if when == "after" else 1
        assert len(left) == 2 * (251 - 100 * gone_batches)
        archived = {run.record.run_id for r in read_archive(archive) for run in r.root.walk()}
        assert len(archived) == 2 * 200  # the crashed batch was archived before its delete
        gone = [i for i in [TEMPLATE, *ids] if i not in left]
        assert set(gone) <= {i for i in archived if "." not in i}
        assert leftovers(store, gone) == {}
    if not journal.startswith("postgresql://"):
        assert orphan_rows(journal) == {}

    again = mnc(args, mnc_env(tmp_path))
    assert again.returncode == 0, again.stderr
    with open_store(journal) as store:
        assert store.list_runs(limit=10) == []
        assert store.tombstone_count() == 502
    recordings = read_archive(archive)
    assert len(recordings) == 251  # a run archived twice counts once
    assert all(len(r.root.walk()) == 2 for r in recordings)
    for r in recordings:
        assert [e.seq for e in r.root.events] == list(range(1, len(r.root.events) + 1))
    assert [i.verdict for i in api.replay_runs(archives=[archive])] == ["same"] * 251


# --- the worker's schedule ---------------------------------------------------------------------


def test_two_workers_gc_on_a_schedule(flow: Path, journal: str, tmp_path: Path) -> None:
    start(flow, journal, "order", TEMPLATE, 7)
    with open_store(journal, "fast") as store:
        clone_trees(store, 150, "gen-")
    age(journal, 40)
    start(flow, journal, "order", "recent", 8)  # ended now: kept
    archive = tmp_path / "gc.jsonl"
    env = mnc_env(tmp_path)
    args = ["worker", "--gc-older-than", "30d", "--gc-every", "1s", "--gc-archive", str(archive)]
    workers = [spawn([*args, "--db", journal], env, tmp_path / f"w{i}.log") for i in range(2)]
    try:
        deadline = time.monotonic() + 60
        with open_store(journal) as store:
            while store.tombstone_count() < 302 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert store.tombstone_count() == 302
            assert [r.run_id for r in store.list_runs(limit=10)] == ["recent.l", "recent"]
            # One worker may have done it all while the other was still starting: a SIGTERM
            # before a worker stops on it (it registers after) would kill it outright.
            while len(store.list_workers()) < 2 and time.monotonic() < deadline + 30:
                time.sleep(0.2)
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            assert w.wait(timeout=30) == 0
    logs = "".join((tmp_path / f"w{i}.log").read_text() for i in range(2))
    assert "gc: removed" in logs and "gc failed" not in logs
    recordings = read_archive(archive)
    assert len(recordings) == 151  # archived once or twice (both workers), read once
    assert [i.verdict for i in api.replay_runs(archives=[archive])] == ["same"] * 151
    if not journal.startswith("postgresql://"):
        assert orphan_rows(journal) == {}


def test_api_start_of_a_removed_run_answers_as_before(tmp_path: Path) -> None:
    from tests.test_api_server import call, register, serve, wait_until

    db = tmp_path / "journal.db"
    with serve(db) as served:
        register(served)
        start_body = {
            "workflow": "order",
            "input": {"id": "o-1", "amount": "240.0"},
            "run_id": "o-1",
        }
        assert call(served, "POST", "/api/v1/runs", json=start_body).status_code == 201
        wait_until(served, "o-1", "waiting")
        assert call(served, "POST", "/api/v1/runs/o-1/cancel").status_code in (200, 202)
        wait_until(served, "o-1", "cancelled")
        time.sleep(0.05)  # ended strictly before the gc's cutoff
        assert api.collect_garbage(older_than=0, db=db).runs == 1

        again = {**start_body, "input": {"id": "o-1", "amount": "240.00"}}
        same = call(served, "POST", "/api/v1/runs", json=again)
        assert same.status_code == 200, same.text
        assert (same.json()["status"], same.json()["created"]) == ("cancelled", False)
        other = call(
            served,
            "POST",
            "/api/v1/runs",
            json={**start_body, "input": {"id": "o-1", "amount": "1"}},
        )
        assert other.status_code == 409
        assert other.json()["error"]["code"] == "run_conflict"
        assert other.json()["error"]["details"]["existing_input"]["removed_by_gc"] is True
        gone = call(served, "GET", "/api/v1/runs/o-1")
        assert gone.status_code == 404


def test_the_store_checks_each_tree_again_inside_its_transaction(
    flow: Path, journal: str, store_of: Store
) -> None:
    """What a gc read may be stale by the time it removes: the store keeps a tree whole
    when a run of it is live, gone, has a child outside the tree, or started a live run."""
    start(flow, journal, "order", "done", 1)
    start(flow, journal, "hold", "held", 2)
    launched = start(flow, journal, "launcher", "launcher", 3)
    programs = TombstoneWriter(store_of)

    def tree(*run_ids: str) -> list[Tombstone]:
        records = [store_of.get_run(i) for i in run_ids]
        return [programs.tombstone(r) for r in records if r is not None]

    done_tree = tree("done", "done.l")
    assert store_of.remove_runs([tree("held")]) == []  # live
    assert store_of.remove_runs([tree("done")]) == []  # its child is not in the tree
    assert store_of.remove_runs([tree("launcher")]) == []  # its detached child is live
    assert store_of.get_run(launched.result) is not None
    assert store_of.remove_runs([done_tree]) == ["done"]
    assert store_of.remove_runs([done_tree]) == []  # gone: another gc removed it
    assert store_of.tombstone_count() == 2
    with pytest.raises(RunRemoved):
        store_of.create_run(NewRun("done", "order", {"n": 1}))
    assert store_of.get_run("done") is None


def test_a_version_8_journal_gains_tombstones_and_keeps_its_runs(journal: str) -> None:
    from mnlang.stores.schema import SCHEMA_VERSION

    with open_store(journal) as store:
        store.create_run(NewRun("r1", "wf", {}))
        store.commit(Batch("r1", run=RunUpdate(status="completed", result=1)))
    if journal.startswith("postgresql://"):
        import psycopg

        from mnlang.stores.postgres import parse_url
        from tests.test_store_postgres import drop_outbox, drop_quarantine_columns

        target = parse_url(journal)
        with psycopg.connect(target.conninfo, autocommit=True) as conn:
            conn.execute(f"DROP TABLE {target.schema}.removed_runs")
            conn.execute(f"DROP INDEX {target.schema}.runs_ended_roots")
            drop_quarantine_columns(conn, target.schema)
            drop_outbox(conn, target.schema)
            conn.execute(f"ALTER TABLE {target.schema}.runs DROP COLUMN needs")  # step 11
            conn.execute(f"DROP TABLE {target.schema}.worker_offers")
            conn.execute(f"UPDATE {target.schema}.mnc_meta SET schema_version = 8")
    else:
        from tests.test_store_sqlite import drop_cancel_requested_by_and_waiting_keys

        with sqlite3.connect(journal) as conn:
            conn.execute("DROP TABLE removed_runs")
            conn.execute("DROP INDEX runs_ended_roots")
            conn.execute("DROP INDEX runs_quarantined")  # migration 10, undone
            for column in ("quarantined_at", "quarantined_by", "quarantine_reason"):
                conn.execute(f"ALTER TABLE runs DROP COLUMN {column}")
            conn.execute("ALTER TABLE runs DROP COLUMN needs")  # migration 11, undone
            conn.execute("DROP TABLE worker_offers")
            conn.execute("DROP TABLE delivery_attempts")  # migration 14, undone
            conn.execute("DROP TABLE deliveries")
            conn.execute("DROP TABLE outbox")
            conn.execute("DROP INDEX signals_by_signal_id")
            conn.execute("ALTER TABLE signals DROP COLUMN sent_by")
            drop_cancel_requested_by_and_waiting_keys(conn)  # migrations 15 to 17
            conn.execute("PRAGMA user_version = 8")
    with open_store(journal) as store:
        assert (store.migrated_from, store.schema_version) == (8, SCHEMA_VERSION)
        assert store.tombstone_count() == 0
        [(_, root)] = store.ended_roots(ended_before=store.now() + 1, statuses=["completed"])
        assert root == "r1"


def test_a_damaged_tree_is_kept_and_the_others_go(flow: Path, tmp_path: Path) -> None:
    journal = str(tmp_path / "journal.db")
    start(flow, journal, "order", "bad", 1)
    start(flow, journal, "order", "good", 2)
    with sqlite3.connect(journal) as conn:
        conn.execute("UPDATE events SET data = '{\"bad' WHERE run_id = 'bad.l'")
    report = api.collect_garbage(older_than=0, db=journal)
    assert (report.trees, report.kept_damaged) == (1, ["bad"])
    with SQLiteStore(journal) as store:
        assert store.get_run("good") is None and store.get_run("bad") is not None


# --- the archive's law -------------------------------------------------------------------------


def _tree(root: str, children: int, events: int) -> Recording:
    def run(run_id: str, parent: str | None, at: float) -> RecordedRun:
        record = RunRecord(run_id, "wf", "", "completed", {"n": 1}, "ok", None, parent, "h",
                           {}, [], False, events, None, 0, None, at, at, at)  # fmt: skip
        journal = [Event(run_id, s, at, "step", None, "", {"s": s}) for s in range(1, events + 1)]
        return RecordedRun(record, journal)

    top = run(root, None, 1.0)
    top.children = [run(f"{root}.{i}", root, 2.0 + i) for i in range(children)]
    return Recording(top, {"h": "{}"})


def _shape(recordings: list[Recording]) -> dict[str, list[tuple[int, object]]]:
    return {
        run.record.run_id: [(e.seq, e.data) for e in run.events]
        for r in recordings
        for run in r.root.walk()
    }


@given(
    trees=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 4)), min_size=1, max_size=6),
    again=st.lists(st.integers(0, 5), max_size=8),
)
@settings(max_examples=60, deadline=None)
def test_an_archive_read_keeps_one_copy_of_each_run(
    trees: list[tuple[int, int]], again: list[int]
) -> None:
    """Appending any of its trees again (a gc that crashed after archiving, run again)
    reads as the archive written once: the same runs, each with its events once."""
    written = [_tree(f"t{i}", children, events) for i, (children, events) in enumerate(trees)]
    once, twice = io.StringIO(), io.StringIO()
    write_archive(written, once)
    write_archive(written, twice)
    write_archive([written[i % len(written)] for i in again], twice)
    with tempfile.TemporaryDirectory() as folder:
        paths = [Path(folder) / "once.jsonl", Path(folder) / "twice.jsonl"]
        for path, out in zip(paths, (once, twice), strict=True):
            path.write_text(out.getvalue())
        expected = _shape(read_archive(paths[0]))
        assert _shape(read_archive(paths[1])) == expected
        assert expected == _shape(written)
