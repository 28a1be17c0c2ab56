"""Workers advertise what they can serve and claim only runs they can serve: the store's
claim filter on both stores, the pin policy for changed code, a provider's key, and two
real `mnc worker` processes, one without the runs' code, sharing 100 runs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mnlang import api
from mnlang.ir.compile import compile_file
from mnlang.ir.model import IRProgram
from mnlang.runtime.run import start_run
from mnlang.runtime.serving import (
    changed_code_policy,
    module_scope,
    program_offers,
    provider_offers,
    run_needs,
    unserved,
)
from mnlang.runtime.views import FAILURE_KINDS, run_details, unserved_runs
from mnlang.runtime.worker import Worker
from mnlang.stores import open_store
from mnlang.stores.base import Need, NewRun, Offer, Store
from tests.chat_server import chat_server

MODULE = Need("module", "p1:", "refund_tools", "a" * 64)
KEY = Need("provider", "", "openai")


def beat(store: Store, worker: str) -> None:
    store.worker_heartbeat(worker, host="h", pid=1, concurrency=1, ttl=30)


def claimed(store: Store, worker: str) -> list[str]:
    return sorted(lease.run_id for lease in store.claim_runs(worker, 30, limit=10))


# --- the claim filter, on both stores ------------------------------------------------------


def test_a_worker_claims_only_the_runs_whose_needs_it_advertised(store: Store) -> None:
    store.create_run(NewRun("plain", "wf", {}))
    store.create_run(NewRun("coded", "wf", {}, needs=(MODULE,)))
    store.create_run(NewRun("keyed", "wf", {}, needs=(MODULE, KEY)))
    assert store.run_needs("plain") == [] and store.run_needs("keyed") == [MODULE, KEY]

    beat(store, "bare")
    store.advertise("bare", [], pinned=False)
    assert store.runnable_runs(served_by="bare") == ["plain"]
    assert claimed(store, "bare") == ["plain"]
    # Nothing left it can serve: it does not wake for the two others.
    assert store.runnable_runs(served_by="bare") == []
    assert store.wait_for_work(0.2, served_by="bare") is False
    assert sorted(store.runnable_runs()) == ["coded", "keyed"]  # there for someone

    # Pinned with another file of the module: not served. Allowing changed code: served.
    beat(store, "changed")
    changed = Need("module", "p1:", "refund_tools", "b" * 64)
    store.advertise("changed", [changed], pinned=True)
    assert claimed(store, "changed") == []
    store.advertise("changed", [changed], pinned=False)
    assert claimed(store, "changed") == ["coded"]

    # The module and the key: the last run.
    beat(store, "full")
    store.advertise("full", [MODULE, KEY], pinned=True)
    assert claimed(store, "full") == ["keyed"]

    offers = {(o.worker_id, o.need, o.pinned) for o in store.list_offers()}
    assert offers == {("changed", changed, False), ("full", MODULE, True), ("full", KEY, True)}
    store.worker_stopped("full")
    assert {o.worker_id for o in store.list_offers()} == {"changed"}


def test_a_queued_run_of_a_limited_workflow_goes_only_to_a_worker_that_serves_it(
    store: Store,
) -> None:
    store.create_run(NewRun("first", "wf", {}, limit=1, needs=(MODULE,)))
    store.create_run(NewRun("second", "wf", {}, limit=1, needs=(MODULE,)))
    assert store.get_run("second").status == "waiting"  # type: ignore[union-attr]
    beat(store, "bare")
    store.advertise("bare", [], pinned=False)
    beat(store, "coder")
    store.advertise("coder", [MODULE], pinned=True)
    assert claimed(store, "bare") == []
    assert claimed(store, "coder") == ["first"]


def test_a_version_7_journal_gains_needs_and_offers_and_its_runs_go_to_any_worker(
    tmp_path: Path,
) -> None:
    import sqlite_utils

    from mnlang.stores.schema import APPLICATION_ID, MIGRATIONS

    path = tmp_path / "v7.db"
    db = sqlite_utils.Database(path)
    for step in MIGRATIONS[:7]:
        step(db)
    db.execute("PRAGMA user_version = 7")
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db.execute(
        "INSERT INTO runs (run_id, workflow, workflow_class, status, result, error, ir_hash, "
        "meta, waiting_for, created_at, updated_at) VALUES ('old', 'wf', '', 'running', "
        "'null', 'null', '', '{}', '[]', 0, 0)"
    )
    db.execute("INSERT INTO run_args (run_id, args) VALUES ('old', '{}')")
    db.conn.commit()
    db.close()
    with open_store(path) as store:
        assert store.run_needs("old") == []
        beat(store, "bare")
        store.advertise("bare", [], pinned=True)
        assert claimed(store, "bare") == ["old"]


def test_a_version_7_postgres_journal_gains_needs_and_offers(
    request: pytest.FixtureRequest,
) -> None:
    psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed (mnlang[postgres])")
    from mnlang.stores.postgres import parse_url
    from tests.test_store_postgres import drop_outbox, drop_quarantine_columns

    pg_url: str = request.getfixturevalue("pg_url")
    with open_store(pg_url) as store:
        store.create_run(NewRun("old", "wf", {}))
    target = parse_url(pg_url)
    schema = target.schema
    with psycopg.connect(target.conninfo, autocommit=True) as conn:
        conn.execute(f"ALTER TABLE {schema}.runs DROP COLUMN needs")
        conn.execute(f"DROP TABLE {schema}.worker_offers, {schema}.export_cursors")
        conn.execute(f"DROP TABLE {schema}.removed_runs")
        conn.execute(f"DROP INDEX {schema}.runs_ended_roots")
        drop_quarantine_columns(conn, schema)
        drop_outbox(conn, schema)
        conn.execute(f"UPDATE {schema}.mnc_meta SET schema_version = 7")
    with open_store(pg_url) as store:
        assert store.run_needs("old") == []
        beat(store, "bare")
        store.advertise("bare", [], pinned=True)
        assert claimed(store, "bare") == ["old"]


# --- what runs need and workers offer ------------------------------------------------------

FLOW = """
tool double(n: int) -> int {
  impl: "refund_tools_h18:double"
}

workflow twice(n: int) -> int {
  d = double(n)
  return d
}
"""

TOOLS = "def double(n):\n    return 2 * n\n"


def compiled(folder: Path, source: str = FLOW) -> IRProgram:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "flow.mn").write_text(source)
    (folder / "refund_tools_h18.py").write_text(TOOLS)
    ir, diagnostics = compile_file(folder / "flow.mn")
    assert ir is not None, [d.message for d in diagnostics]
    return ir


def test_a_run_needs_its_modules_with_their_digests_and_a_worker_offers_what_it_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = compiled(tmp_path / "a")
    with open_store(tmp_path / "journal.db") as store:
        start_run(store, program, "twice", {"n": 2}, run_id="r1", detach=True)
        needs = store.run_needs("r1")
    record = store_meta(tmp_path / "journal.db", "r1")
    digest = record["tool_modules"]["refund_tools_h18.py"]
    assert needs == [
        Need(
            "module",
            module_scope(program.hash, program.source.tool_modules[0].impl_dir),
            "refund_tools_h18",
            digest,
        )
    ]
    assert list(run_needs(program, record)) == needs
    monkeypatch.chdir(tmp_path)
    assert program_offers(program.hash, program.source) == needs
    shutil.rmtree(tmp_path / "a")
    assert program_offers(program.hash, program.source) == []
    why = unserved(needs, [], ["w1"])
    assert why is not None
    assert (
        why.describe()
        == f"waiting for a worker with module refund_tools_h18 (sha256 {digest[:12]}…)"
    )
    assert unserved(needs, [Offer("w1", needs[0], True)], ["w1"]) is None


def store_meta(path: Path, run_id: str) -> dict[str, object]:
    with open_store(path) as store:
        record = store.get_run(run_id)
    assert record is not None
    return record.meta


def test_the_changed_code_policy_comes_from_the_flag_the_environment_or_allow() -> None:
    assert changed_code_policy(None, {}) == "allow"
    assert changed_code_policy(None, {"MNC_CHANGED_CODE": "pin"}) == "pin"
    assert changed_code_policy("allow", {"MNC_CHANGED_CODE": "pin"}) == "allow"
    with pytest.raises(ValueError, match="`allow` or `pin`"):
        changed_code_policy(None, {"MNC_CHANGED_CODE": "sometimes"})


# --- pin: a worker with changed code does not claim the run ---------------------------------


def test_a_pinning_worker_with_a_changed_module_leaves_the_run_to_an_allowing_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = compiled(tmp_path / "app")
    monkeypatch.chdir(tmp_path / "app")
    with open_store(tmp_path / "journal.db") as store:
        start_run(store, program, "twice", {"n": 4}, run_id="r1", detach=True)
        # A new release changes the module in place after the run started.
        (tmp_path / "app" / "refund_tools_h18.py").write_text(TOOLS.replace("2 * n", "3 * n"))
        pinned = Worker(store, concurrency=1, idle_wait=0.05, changed_code="pin")
        assert pinned.run(until_idle=True).claimed == 0
        assert store.get_run("r1").status == "running"  # type: ignore[union-attr]
        allowing = Worker(store, concurrency=1, idle_wait=0.05, changed_code="allow")
        stats = allowing.run(until_idle=True)
        record = store.get_run("r1")
        assert stats.claimed == 1 and record is not None
        assert (record.status, record.result) == ("completed", 12)
        warned = [e for e in store.read_journal("r1") if "changed since" in json.dumps(e.data)]
        assert warned, "the allowing worker journals that the module changed"


# --- a provider's key -----------------------------------------------------------------------

AGENT_FLOW = """
agent desk(question: str) -> str {
  model: "gpt-5.4-mini"
  prompt: "{question}"
  max_turns: 1
  max_tokens: 50
}

workflow ask(question: str) -> str {
  a = desk(question)
  return a
}
"""


def test_a_worker_without_the_providers_key_never_claims_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("MNC_MODELS", "MNC_REPLIES", "MNC_OPENAI_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("MNC_OPENAI_BASE_URL", raising=False)
    program = compiled(tmp_path / "app", AGENT_FLOW)
    with open_store(tmp_path / "journal.db") as store:
        start_run(store, program, "ask", {"question": "late?"}, run_id="r1", detach=True)
        assert store.run_needs("r1") == [Need("provider", "", "openai")]
        keyless = Worker(store, concurrency=1, idle_wait=0.05)
        thread = threading.Thread(target=keyless.run)
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while not store.list_workers() and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.3)  # several looks for work
            why = run_details(store, "r1").unserved
            assert why == "waiting for a worker with provider openai"
            assert unserved_runs(store) == [("r1", why)]
        finally:
            keyless.stop()
            thread.join(10)
        assert keyless.stats.claimed == 0
        with chat_server() as server:
            server.chat("It is on time.")
            monkeypatch.setenv("MNC_OPENAI_BASE_URL", server.base_url)
            monkeypatch.setenv("MNC_OPENAI_API_KEY", "k-test")
            keyed = Worker(store, concurrency=1, idle_wait=0.05)
            assert keyed.run(until_idle=True).claimed == 1
        record = store.get_run("r1")
        assert record is not None and (record.status, record.result) == (
            "completed",
            "It is on time.",
        )


# --- two real workers, one without the code -------------------------------------------------


def mnc(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNC_")}
    return subprocess.run(
        [sys.executable, "-m", "mnlang.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def start_worker(cwd: Path, db: str | Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNC_")}
    return subprocess.Popen(
        [sys.executable, "-m", "mnlang.cli", "worker", "--db", str(db), "--lease-ttl", "3", *args],
        cwd=cwd,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_two_workers_one_without_the_code_share_100_runs(tmp_path: Path, journal: str) -> None:
    release_a = tmp_path / "release-a"
    program = compiled(release_a)
    (release_a / "mnlang.toml").write_text("")
    db = journal
    for i in range(100):
        api.start_run(program, {"n": i}, run_id=f"r{i:03}", db=db, detach=True)
    # The release the runs started from is gone: a worker finds the code only in a copy.
    release_b = tmp_path / "release-b"
    shutil.copytree(release_a, release_b)
    shutil.rmtree(release_a)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    codeless = start_worker(elsewhere, db, "--concurrency", "2")
    try:
        deadline = time.monotonic() + 30
        text = ""
        while "serves: no tool modules" not in text and time.monotonic() < deadline:
            time.sleep(0.2)
            text = mnc(elsewhere, "workers", "--db", str(db)).stdout
        assert "serves: no tool modules" in text, text
        time.sleep(1.0)  # the code-less worker has looked for work several times
        shown = mnc(elsewhere, "show", "r000", "--db", str(db))
        assert "worker    waiting for a worker with module refund_tools_h18 (sha256 " in (
            shown.stdout
        ), shown.stdout + shown.stderr
        assert "runs no live worker can serve (100):" in text
        assert "r000: waiting for a worker with module refund_tools_h18" in text

        capable = start_worker(release_b, db, "--concurrency", "4", "--until-idle")
        _, capable_log = capable.communicate(timeout=300)
        assert capable.returncode == 0, capable_log
        assert "runs claimed 100; left 100 completed; lost 0" in capable_log, capable_log
    finally:
        codeless.send_signal(signal.SIGTERM)
        _, codeless_log = codeless.communicate(timeout=30)
    assert "runs claimed 0; left none; lost 0" in codeless_log, codeless_log
    with open_store(db) as store:
        runs = store.list_runs(limit=1000)
        assert len(runs) == 100
        assert {(r.status, r.result) for r in runs} == {
            ("completed", int(r.run_id[1:]) * 2) for r in runs
        }
        kinds = {e.kind for r in runs for e in store.read_journal(r.run_id)}
        assert not kinds & FAILURE_KINDS, kinds
    after = mnc(elsewhere, "show", "r000", "--db", str(db)).stdout
    assert "waiting for a worker" not in after


def test_mnc_workers_lists_what_a_worker_serves_as_json(tmp_path: Path) -> None:
    program = compiled(tmp_path / "app")
    db = tmp_path / "journal.db"
    api.start_run(program, {"n": 1}, run_id="r1", db=db, detach=True)
    worker = start_worker(tmp_path / "app", db, "--changed-code", "pin")
    try:
        deadline = time.monotonic() + 30
        listed: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            out = mnc(tmp_path, "workers", "--db", str(db), "--json").stdout
            listed = json.loads(out) if out.strip() else []
            if listed and listed[0]["serves"]:
                break
            time.sleep(0.2)
        assert listed and listed[0]["serves"] == [
            {
                "kind": "module",
                "scope": module_scope(program.hash, program.source.tool_modules[0].impl_dir),
                "name": "refund_tools_h18",
                "digest": store_meta(db, "r1")["tool_modules"]["refund_tools_h18.py"],  # type: ignore[index]
            }
        ]
        text = mnc(tmp_path, "workers", "--db", str(db)).stdout
        assert (
            "serves: modules refund_tools_h18 (1 programs); no provider keys; changed code: pin"
            in text
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=30)


# --- an upgraded run needs its new program's code -------------------------------------------

REVIEW = """
tool double(n: int) -> int {
  impl: "refund_tools_h18:double"
}

workflow review(n: int) -> int {
  d = checkpoint ok {
    ask: "Double {n}?"
    timeout: never
  }
  m = double(n)
  return m
}
"""


def test_an_upgraded_run_needs_the_code_of_its_new_program(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    old = compiled(tmp_path / "old", REVIEW)
    api.start_run(old, {"n": 3}, run_id="r1", db=db)
    digest = store_meta(db, "r1")["tool_modules"]["refund_tools_h18.py"]  # type: ignore[index]
    shown = api.get_run("r1", db=db)
    assert shown.run.status == "waiting"  # at its checkpoint: it waits for that first
    assert shown.unserved == f"no live worker has module refund_tools_h18 (sha256 {digest[:12]}…)"
    new = compiled(tmp_path / "new", REVIEW.replace("return m", 'log "v2"\n  return m'))
    api.upgrade_run("r1", source=new, resume=False, db=db)
    with open_store(db) as store:
        [need] = store.run_needs("r1")
    assert need.scope == module_scope(new.hash, new.source.tool_modules[0].impl_dir)
    assert need.scope != module_scope(old.hash, old.source.tool_modules[0].impl_dir)


def test_a_worker_offers_the_providers_it_can_call_here(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MNC_OPENAI_API_KEY", "OPENAI_API_KEY", "MNC_OPENAI_BASE_URL", "LOCAL_KEY"):
        monkeypatch.delenv(name, raising=False)
    tables = {"local": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": "LOCAL_KEY"}}
    monkeypatch.setenv("MNC_PROVIDERS", json.dumps(tables))
    assert provider_offers() == []
    monkeypatch.setenv("LOCAL_KEY", "k-local")
    assert provider_offers() == [Need("provider", "", "local")]
    monkeypatch.setenv("MNC_OPENAI_API_KEY", "k-openai")
    assert provider_offers() == [Need("provider", "", "local"), Need("provider", "", "openai")]
