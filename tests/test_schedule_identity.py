"""Schedules registered once by their declaring module (`jobs.nightly`), whichever files
import it; the schema step that merges the two rows older journals hold; pausing,
resuming and dropping (`mnc schedules`); a worker killed at each commit boundary of a
fire."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnlang import api
from mnlang.runtime.schedules import run_id_for, start_due
from mnlang.runtime.worker import ProgramCache
from mnlang.stores import open_store
from mnlang.stores.base import NewRun, NewSchedule, Store
from tests.human.harness import mnc, mnc_env, spawn
from tests.pg import STORES

JOBS = """\
workflow report(team: str) -> str {
  return "report for {team}"
}

schedule nightly {
  run: report("ops")
  EVERY
}
"""

IMPORTER = """\
import jobs

workflow NAME() -> str {
  r = jobs.report("NAME")
  return r
}
"""


def folder_with(tmp: Path, every: str = 'cron: "0 0 * * *"') -> Path:
    """`jobs.mn` declaring a schedule, and `a.mn` and `b.mn` importing it."""
    (tmp / "jobs.mn").write_text(JOBS.replace("EVERY", every), "utf-8")
    for name in ("a", "b"):
        (tmp / f"{name}.mn").write_text(IMPORTER.replace("NAME", name), "utf-8")
    return tmp


# --- one registration per declaring module --------------------------------------------------


def test_a_module_given_and_imported_registers_its_schedule_once(
    journal: str, tmp_path: Path
) -> None:
    """`mnc worker jobs.mn a.mn b.mn` registered `nightly` (from jobs.mn) and
    `jobs.nightly` (from a.mn, b.mn): two runs every midnight. Now one, by its module."""
    folder = folder_with(tmp_path)
    files = [folder / "jobs.mn", folder / "a.mn", folder / "b.mn"]
    records = api.register_schedules(files, db=journal)
    assert [(r.name, r.module) for r in records] == [("jobs.nightly", "jobs")]
    with open_store(journal) as store:
        [record] = store.list_schedules()
        assert (record.name, record.module, record.paused_at) == ("jobs.nightly", "jobs", None)
        assert record.workflow == "jobs.report"  # in jobs.mn itself it is `report`
        started = start_due(store, ProgramCache(store), now=record.next_at)
        assert [s.run_id for s in started] == [run_id_for("jobs.nightly", record.next_at)]
        assert start_due(store, ProgramCache(store), now=record.next_at) == []
        # Registering the module's own file again keeps the schedule's place.
        api.register_schedules([folder / "jobs.mn"], db=journal)
        [again] = store.list_schedules()
        assert again.next_at == record.next_at + 86400 and again.last_at == record.next_at
        assert again.workflow == "jobs.report"


def test_a_schedule_its_module_no_longer_declares_is_forgotten_by_an_importer(
    journal: str, tmp_path: Path
) -> None:
    folder = folder_with(tmp_path)
    api.register_schedules([folder / "jobs.mn"], db=journal)
    (folder / "jobs.mn").write_text(JOBS.split("schedule")[0], "utf-8")
    assert api.register_schedules([folder / "a.mn"], db=journal) == []
    assert api.list_schedules(db=journal) == []


@pytest.mark.slow
def test_a_real_worker_with_two_importers_starts_each_time_once(tmp_path: Path) -> None:
    """`mnc worker jobs.mn a.mn b.mn` on an `every: 1s` schedule: one run per second."""
    folder = folder_with(tmp_path, "every: 1s")
    env = mnc_env(tmp_path)
    args = ["worker", *(str(folder / f) for f in ("jobs.mn", "a.mn", "b.mn"))]
    worker = spawn(args, env, tmp_path / "worker.log")
    deadline = time.monotonic() + 30  # a loaded machine starts it slowly
    while (tmp_path / "worker.log").read_text().count("started run") < 3:
        assert worker.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    log = (tmp_path / "worker.log").read_text()
    assert log.count("registered") == 1, log
    runs = json.loads(mnc(["runs", "--json", "--limit", "1000"], env).stdout)
    times = [r["meta"]["scheduled_at"] for r in runs]
    assert len(runs) >= 2 and len(set(times)) == len(times), runs
    assert all(r["run_id"].startswith("jobs.nightly@") for r in runs)
    listed = json.loads(mnc(["schedules", "--json"], env).stdout)
    assert [(s["name"], s["module"]) for s in listed] == [("jobs.nightly", "jobs")]


# --- migrating a journal that holds both rows -------------------------------------------------

DAY = 86400.0
T1 = 1_800_000_000.0  # a midnight both rows passed: `nightly` fired it, `jobs.nightly` not yet


def old_rows() -> list[tuple[str, str, float, float | None, str | None]]:
    """(name, source, next_at, last_at, last_run_id) as a version 11 journal held them."""
    return [
        ("nightly", "jobs.mn", T1 + DAY, T1, "nightly@T1"),
        ("jobs.nightly", "a.mn", T1, T1 - DAY, "jobs.nightly@T0"),
        ("ops.jobs.hourly", "x.mn", T1 + 3600, None, None),
        ("solo", "solo.mn", T1 + 60, None, None),
    ]


def insert_old_rows(execute: Callable[[str, tuple[object, ...]], object], mark: str) -> None:
    for name, source, next_at, last_at, last_run_id in old_rows():
        execute(
            "INSERT INTO schedules (name, workflow, ir_hash, source, spec, next_at, last_at, "
            f"last_run_id, updated_at) VALUES ({', '.join([mark] * 9)})",
            (
                name,
                "report",
                "h",
                source,
                '{"every_ms": 86400000}',
                next_at,
                last_at,
                last_run_id,
                T1,
            ),
        )


def assert_merged(store: Store) -> None:
    merged = {r.name: r for r in store.list_schedules()}
    assert sorted(merged) == ["jobs.nightly", "ops.jobs.hourly", "solo.solo"]
    nightly = merged["jobs.nightly"]
    # The latest fired time and its run, and the latest next time: T1 does not fire again.
    assert (nightly.module, nightly.last_at, nightly.last_run_id) == ("jobs", T1, "nightly@T1")
    assert nightly.next_at == T1 + DAY and nightly.paused_at is None
    assert merged["ops.jobs.hourly"].module == "ops.jobs"
    assert merged["solo.solo"].module == "solo"

    def no_program(ir_hash: str) -> object:
        raise AssertionError(f"nothing is due, yet program {ir_hash} was loaded to start it")

    assert start_due(store, no_program, now=T1 + 50) == []  # type: ignore[arg-type]


def test_a_version_11_sqlite_journal_merges_the_rows_of_one_schedule(tmp_path: Path) -> None:
    import sqlite_utils

    from mnlang.stores.schema import APPLICATION_ID, MIGRATIONS

    path = tmp_path / "v11.db"
    db = sqlite_utils.Database(path)
    for step in MIGRATIONS[:11]:
        step(db)
    db.execute("PRAGMA user_version = 11")
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    insert_old_rows(db.execute, "?")
    db.conn.commit()
    db.close()
    with open_store(path) as store:
        assert_merged(store)


def test_a_version_11_postgres_journal_merges_the_rows_of_one_schedule(
    request: pytest.FixtureRequest,
) -> None:
    psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed (mnlang[postgres])")
    from mnlang.stores.postgres import parse_url
    from mnlang.stores.postgres_schema import MIGRATIONS
    from tests.test_store_postgres import drop_outbox

    pg_url: str = request.getfixturevalue("pg_url")
    open_store(pg_url).close()
    target = parse_url(pg_url)
    with psycopg.connect(target.conninfo, autocommit=True) as conn:
        conn.execute(f"SET search_path TO {target.schema}")
        conn.execute("DROP TABLE schedules")
        for statement in MIGRATIONS[1]:  # the schedules table as version 2 made it
            conn.execute(statement)
        insert_old_rows(conn.execute, "%s")
        drop_outbox(conn, target.schema)  # step 14 undone too
        conn.execute("UPDATE mnc_meta SET schema_version = 11")
    with open_store(pg_url) as store:
        assert_merged(store)


# --- pause, resume, drop ------------------------------------------------------------------------


def registered(store: Store, next_at: float = 100.0) -> None:
    store.put_schedule(
        NewSchedule("jobs.nightly", "report", "h", "jobs.mn", {"every_ms": 1000}, next_at, "jobs")
    )


def test_a_paused_schedule_does_not_fire_and_resumes_without_catching_up(store: Store) -> None:
    registered(store)
    assert store.pause_schedule("jobs.nightly") and not store.pause_schedule("other.x")
    run = NewRun(run_id="jobs.nightly@100", workflow="report", args={})
    assert not store.fire_schedule(
        "jobs.nightly", run, expected=100.0, scheduled_at=100.0, next_at=101.0
    )
    assert store.list_runs() == []
    registered(store)  # a worker registering it again keeps it paused
    [paused] = store.list_schedules()
    assert paused.paused_at is not None and paused.next_at == 100.0
    assert store.resume_schedule("jobs.nightly", 5000.0)
    [resumed] = store.list_schedules()
    assert resumed.paused_at is None and resumed.next_at == 5000.0
    # Resuming a schedule that is not paused keeps its place.
    assert store.resume_schedule("jobs.nightly", 9000.0)
    assert store.list_schedules()[0].next_at == 5000.0


def test_pause_resume_drop_through_the_api(journal: str, tmp_path: Path) -> None:
    folder = folder_with(tmp_path, "every: 1s")
    api.register_schedules([folder / "a.mn"], db=journal)
    paused = api.pause_schedule("jobs.nightly", db=journal)
    with open_store(journal) as store:
        assert start_due(store, ProgramCache(store), now=paused.next_at + 10) == []
        before = store.now()
    resumed = api.resume_schedule("jobs.nightly", db=journal)
    assert resumed.paused_at is None and resumed.next_at > before  # missed times skipped
    assert api.drop_schedule("jobs.nightly", db=journal).name == "jobs.nightly"
    assert api.list_schedules(db=journal) == []
    api.register_schedules([folder / "b.mn"], db=journal)  # a worker started with it again
    assert [r.name for r in api.list_schedules(db=journal)] == ["jobs.nightly"]


def test_mnc_schedules(tmp_path: Path) -> None:
    folder = folder_with(tmp_path)
    env = mnc_env(tmp_path)
    worker = mnc(["worker", str(folder / "jobs.mn"), str(folder / "a.mn"), "--until-idle"], env)
    assert worker.returncode == 0, worker.stderr
    listed = mnc(["schedules"], env)
    assert listed.returncode == 0
    assert "jobs.nightly  next " in listed.stdout and "never started" in listed.stdout
    assert (
        "module jobs  workflow jobs.report  " in listed.stdout
        and "cron '0 0 * * *'" in listed.stdout
    )
    paused = mnc(["schedules", "pause", "jobs.nightly"], env)
    assert paused.returncode == 0 and paused.stdout.startswith("paused: schedule jobs.nightly")
    [row] = json.loads(mnc(["schedules", "--json"], env).stdout)
    assert row["paused"] is True and row["next_at"] is None and row["module"] == "jobs"
    assert "jobs.nightly  paused" in mnc(["schedules"], env).stdout
    resumed = mnc(["schedules", "resume", "jobs.nightly", "--json"], env)
    assert json.loads(resumed.stdout)["paused"] is False
    dropped = mnc(["schedules", "drop", "jobs.nightly"], env)
    assert dropped.returncode == 0 and "registers it again" in dropped.stdout
    assert json.loads(mnc(["schedules", "--json"], env).stdout) == []
    assert mnc(["schedules"], env).stdout.startswith("no schedules")


def test_mnc_schedules_refuses_bad_input_and_creates_nothing(tmp_path: Path) -> None:
    folder = folder_with(tmp_path)
    env = mnc_env(tmp_path)
    for args in (["schedules"], ["schedules", "pause", "jobs.nightly"]):
        refused = mnc([*args, "--db", str(tmp_path / "none.db")], env)
        assert refused.returncode == 2 and "help:" in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
    assert not (tmp_path / "none.db").exists() and not (tmp_path / "journal.db").exists()
    assert mnc(["worker", str(folder / "a.mn"), "--until-idle"], env).returncode == 0
    before = json.loads(mnc(["schedules", "--json"], env).stdout)
    for action in ("pause", "resume", "drop"):
        refused = mnc(["schedules", action, "nightly"], env)
        assert refused.returncode == 2
        assert "error: no schedule `nightly` in this journal" in refused.stderr
        assert "help: did you mean `jobs.nightly`?" in refused.stderr
    assert json.loads(mnc(["schedules", "--json"], env).stdout) == before


# --- a worker killed around a fire ----------------------------------------------------------------


def fired_state(db: str) -> tuple[float | None, str | None, list[tuple[str, float]]]:
    with open_store(db) as store:
        [record] = store.list_schedules()
        runs = [(r.run_id, float(r.meta["scheduled_at"])) for r in store.list_runs(limit=1000)]  # type: ignore[arg-type]
    return record.last_at, record.last_run_id, runs


@pytest.mark.slow
@pytest.mark.parametrize("kind", STORES)
def test_a_worker_killed_at_each_commit_boundary_of_a_fire_starts_the_time_once(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """`mnc worker jobs.mn` killed (exit 137, as SIGKILL) at its first commit, the fire:
    before it, with it written but not committed, while committing, after it. The
    schedule moved if and only if its run exists; whoever looks next starts each time
    once, and never again the time the killed worker started."""
    # SQLite's COMMIT is one call Python cannot stop half-way: its `during` is `written`.
    moments = (
        ("before", "written", "during", "after")
        if kind == "postgres"
        else ("before", "written", "after")
    )
    for moment in moments:
        case = tmp_path / moment
        case.mkdir()
        folder = folder_with(case, "every: 1s")
        db = (
            str(case / "journal.db")
            if kind == "sqlite"
            else request.getfixturevalue("pg_cluster").url(f"t{os.getpid()}_fire_{moment}")
        )
        env = mnc_env(case, MNC_CRASH_AT_COMMIT="1", MNC_CRASH_WHEN=moment)
        env["MNC_DB"] = db
        crashed = mnc(["worker", str(folder / "jobs.mn")], env, timeout=60)
        assert crashed.returncode == 137, crashed.stderr
        last_at, last_run_id, runs = fired_state(db)
        if moment == "after" or (moment == "during" and last_at is not None):
            assert runs == [(last_run_id, last_at)]
        else:
            assert (last_at, runs) == (None, [])
        with open_store(db) as store:
            [record] = store.list_schedules()
            started = start_due(store, ProgramCache(store), now=record.next_at + 0.5)
            assert start_due(store, ProgramCache(store), now=record.next_at + 0.5) == []
        assert [s.scheduled_at for s in started] == [record.next_at]
        _, _, after = fired_state(db)
        times = [at for _, at in after]
        assert len(times) == len(set(times)) == len(runs) + 1


@settings(max_examples=15, deadline=None)
@given(
    fired=st.lists(
        st.tuples(
            st.sampled_from(["nightly", "jobs.nightly", "hourly", "ops.jobs.hourly"]),
            st.integers(0, 5),  # days of fires the row saw
            st.integers(0, 5),  # days it lags behind the first next time (a worker down)
        ),
        min_size=1,
        max_size=4,
        unique_by=lambda row: row[0],
    )
)
def test_merging_keeps_the_latest_fired_and_next_times(
    fired: list[tuple[str, int, int]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Whatever rows a version 11 journal held for one schedule, the merged row holds the
    latest time any of them fired and the latest next time: nothing fired fires again."""
    import sqlite_utils

    from mnlang.stores.schema import APPLICATION_ID, MIGRATIONS

    path = tmp_path_factory.mktemp("merge") / "v11.db"
    db = sqlite_utils.Database(path)
    for step in MIGRATIONS[:11]:
        step(db)
    db.execute("PRAGMA user_version = 11")
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    expected: dict[str, tuple[float | None, float]] = {}
    for name, days, lag in fired:
        last_at = T1 + days * DAY if days else None
        next_at = (last_at or T1) + DAY - lag * DAY / 8
        source = "jobs.mn" if "." not in name else "a.mn"
        identity = name if "." in name else f"jobs.{name}"
        was_last, was_next = expected.get(identity, (None, float("-inf")))
        latest = max((t for t in (was_last, last_at) if t is not None), default=None)
        expected[identity] = (latest, max(was_next, next_at))
        db.execute(
            "INSERT INTO schedules (name, workflow, ir_hash, source, spec, next_at, last_at, "
            "last_run_id, updated_at) VALUES (?, 'report', 'h', ?, '{}', ?, ?, ?, ?)",
            (name, source, next_at, last_at, f"{name}@{last_at}", T1),
        )
    db.conn.commit()
    db.close()
    with open_store(path) as store:
        merged = {r.name: (r.last_at, r.next_at) for r in store.list_schedules()}
    assert merged == expected
