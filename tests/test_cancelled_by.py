"""Who cancelled a run (journal step 15): `request_cancel`'s `by` is kept on the run
(`RunRecord.cancel_requested_by`, the first asker) and journaled in its `cancelled`
event, and every reader shows it: `mnc show`, `mnc log`, `GET /api/v1/runs/{id}`, the
console. A crash at each write of a cancel loses neither the cancel nor who asked."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx2
import pytest
from click.testing import CliRunner

from mnlang import api
from mnlang.cli import main
from mnlang.stores import open_store
from mnlang.stores.base import Batch, NewEvent, NewRun, RunUpdate, Store
from tests.api.server import ADMIN_TOKEN, SHOP, Served, serve

HOLD = """\
workflow hold(order: str) -> str {
  try {
    d = checkpoint review {
      ask: "Ship {order}?"
      options: [approve, reject]
      timeout: never
    }
    return "decided"
  } finally {
    log "released {order}"
  }
}
"""


def test_the_first_asker_is_kept_and_a_reopened_run_forgets_it(store: Store) -> None:
    store.create_run(NewRun("r", "hold", {}))
    assert store.get_run("r").cancel_requested_by is None  # type: ignore[union-attr]
    assert store.request_cancel("r", by="ann")
    assert store.request_cancel("r", by="bob")  # still live: asked again, ann kept
    record = store.get_run("r")
    assert record is not None and (record.cancel_requested, record.cancel_requested_by) == (
        True,
        "ann",
    )
    listed = [r for r in store.list_runs() if r.run_id == "r"]
    assert listed[0].cancel_requested_by == "ann"
    store.commit(Batch("r", run=RunUpdate(status="failed", error={"kind": "x"})))
    assert not store.request_cancel("r", by="carl")  # ended: nothing changes
    assert store.get_run("r").cancel_requested_by == "ann"  # type: ignore[union-attr]
    assert store.reopen_failed("r", NewEvent("retried", {"by": "dan"}), {})
    record = store.get_run("r")
    assert record is not None and (record.cancel_requested, record.cancel_requested_by) == (
        False,
        None,
    )


def test_a_version_14_journal_gains_who_cancelled(journal: str) -> None:
    with open_store(journal) as store:
        store.create_run(NewRun("old", "hold", {}))
        store.request_cancel("old")
        store.create_run(NewRun("new", "hold", {}))
    undo_steps_15_and_16(journal)
    with open_store(journal) as store:
        assert store.migrated_from == 14
        old = store.get_run("old")
        assert old is not None and (old.cancel_requested, old.cancel_requested_by) == (True, None)
        assert store.request_cancel("new", by="ann")
        assert store.get_run("new").cancel_requested_by == "ann"  # type: ignore[union-attr]


def undo_steps_15_and_16(journal: str) -> None:
    if journal.startswith("postgresql://"):
        import psycopg

        from mnlang.stores.postgres import parse_url
        from tests.test_store_postgres import drop_cancel_requested_by_and_waiting_keys

        target = parse_url(journal)
        with psycopg.connect(target.conninfo, autocommit=True) as conn:
            drop_cancel_requested_by_and_waiting_keys(conn, target.schema)
            conn.execute(f"UPDATE {target.schema}.mnc_meta SET schema_version = 14")
    else:
        from tests.test_store_sqlite import drop_cancel_requested_by_and_waiting_keys

        with sqlite3.connect(journal) as conn:
            drop_cancel_requested_by_and_waiting_keys(conn)
            conn.execute("PRAGMA user_version = 14")


def start_hold(folder: Path, db: str, run_id: str) -> None:
    source = folder / "hold.mn"
    source.write_text(HOLD)
    outcome = api.start_run(source, {"order": run_id}, run_id=run_id, db=db)
    assert outcome.status == "waiting", outcome


def test_mnc_cancel_keeps_who_and_show_and_log_print_it(tmp_path: Path) -> None:
    db = str(tmp_path / "journal.db")
    start_hold(tmp_path, db, "h-1")
    runner = CliRunner()
    cancelled = runner.invoke(main, ["cancel", "h-1", "--by", "ann", "--db", db])
    assert cancelled.exit_code == 4, cancelled.output
    again = runner.invoke(main, ["cancel", "h-1", "--by", "bob", "--db", db])
    assert again.exit_code == 4, again.output

    details = api.get_run("h-1", db=db)
    assert (details.run.status, details.run.cancel_requested_by) == ("cancelled", "ann")
    [event] = [e for e in api.run_journal("h-1", db=db) if e.kind == "cancelled"]
    assert isinstance(event.data, dict) and event.data["by"] == "ann"

    shown = runner.invoke(main, ["show", "h-1", "--db", db])
    assert "(cancel requested by ann)" in shown.output, shown.output
    as_json = runner.invoke(main, ["show", "h-1", "--json", "--db", db])
    assert '"cancel_requested_by": "ann"' in as_json.output
    logged = runner.invoke(main, ["log", "h-1", "--db", db])
    assert "cancelled: the run was cancelled (by ann)" in logged.output, logged.output


def test_api_cancel_defaults_to_the_operating_system_user(tmp_path: Path) -> None:
    from mnlang.runtime.decisions import default_decider

    db = str(tmp_path / "journal.db")
    start_hold(tmp_path, db, "h-2")
    assert api.cancel_run("h-2", db=db).status == "cancelled"
    assert api.get_run("h-2", db=db).run.cancel_requested_by == default_decider()


def token_for(db: Path, name: str, role: str) -> str:
    added = subprocess.run(
        [sys.executable, "-m", "mnlang.cli", "ui", "token", "add", name, "--role", role],
        env={**os.environ, "MNC_DB": str(db)},
        capture_output=True,
        text=True,
        check=True,
    )
    return added.stdout.strip().split()[-1]


def test_the_http_api_and_bulk_cancel_keep_the_token_user(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    ana = token_for(db, "ana", "operator")
    with serve(db) as served:

        def call(method: str, path: str, token: str = ADMIN_TOKEN, **kw: Any) -> Any:
            headers = {"authorization": f"Bearer {token}"}
            return httpx2.request(method, served.url + path, headers=headers, timeout=30, **kw)

        body = {"source": SHOP.read_text(), "path": str(SHOP)}
        assert call("POST", "/api/v1/programs", json=body).status_code == 201
        for run_id in ("c-1", "c-2"):
            start = {"workflow": "order", "run_id": run_id, "input": {"id": run_id, "amount": "1"}}
            assert call("POST", "/api/v1/runs", json=start).status_code == 201
        answer = call("POST", "/api/v1/runs/c-1/cancel", token=ana)
        assert answer.status_code in (200, 202), answer.text
        assert answer.json()["cancel_requested_by"] == "ana"
        bulk = call("POST", "/api/v1/bulk/cancel", json={"filter": {"q": "c-2"}})
        assert bulk.json()["done"] == ["c-2"], bulk.text
        for run_id, who in (("c-1", "ana"), ("c-2", "admin")):
            run = wait_cancelled(served, call, run_id)
            assert run["cancel_requested_by"] == who
            journal = call("GET", f"/api/v1/runs/{run_id}/journal").json()
            [event] = [e for e in journal["events"] if e["kind"] == "cancelled"]
            assert event["data"]["by"] == who


def wait_cancelled(served: Served, call: Any, run_id: str) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + 30
    while True:
        run: dict[str, Any] = call("GET", f"/api/v1/runs/{run_id}").json()
        if run["status"] == "cancelled":
            return run
        assert time.monotonic() < deadline, (run, served.log.read_text())
        time.sleep(0.05)


CRASH_MOMENTS = [("sqlite", "written"), ("sqlite", "after"), ("postgres", "during")]


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "when"), CRASH_MOMENTS)
def test_a_crash_at_each_write_of_a_cancel_keeps_it_and_who_asked(
    kind: str, when: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """`mnc cancel --by ann` killed (exit 137) at its N-th commit, for every N, then
    `mnc cancel --by bob`: the run ends cancelled once, its `finally` ran once, and who
    asked is ann whenever her request was committed before the crash, else bob."""
    from tests.api.server import env_for

    crashed_at = 0
    for n in range(1, 20):
        db = str(tmp_path / f"journal-{n}.db")
        if kind == "postgres":
            db = request.getfixturevalue("pg_url") + f"_{n}"
        start_hold(tmp_path, db, "h")
        env = {**env_for(db), "MNC_CRASH_AT_COMMIT": str(n), "MNC_CRASH_WHEN": when}
        first = subprocess.run(
            [sys.executable, "-m", "mnlang.cli", "cancel", "h", "--by", "ann"],
            env=env,
            capture_output=True,
            text=True,
        )
        with open_store(db) as store:
            after_crash = store.get_run("h")
        assert after_crash is not None
        if first.returncode != 137:
            assert first.returncode == 4, first.stderr
            break
        crashed_at = n
        assert after_crash.cancel_requested_by == ("ann" if after_crash.cancel_requested else None)
        second = subprocess.run(
            [sys.executable, "-m", "mnlang.cli", "cancel", "h", "--by", "bob"],
            env=env_for(db),
            capture_output=True,
            text=True,
        )
        assert second.returncode == 4, second.stderr
        expected = "ann" if after_crash.cancel_requested else "bob"
        details = api.get_run("h", db=db)
        assert (details.run.status, details.run.cancel_requested_by) == ("cancelled", expected)
        events = api.run_journal("h", db=db)
        [cancelled] = [e for e in events if e.kind == "cancelled"]
        assert isinstance(cancelled.data, dict) and cancelled.data["by"] == expected, n
        released = [e for e in events if e.kind == "log" and "released" in str(e.data)]
        assert len(released) == 1, (n, events)
    assert crashed_at >= 2  # the request and the run's end were each crashed at
