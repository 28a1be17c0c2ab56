"""Issue 16, item 2: published values. `publish name = value` sets a named, typed value
that `mnc get RUN NAME`, `mnlang.api.get_published` and the console read once the commit
holding it is written, never before: a process killed between the `publish` and its
commit leaves no trace a reader could see, and at every commit boundary of a crashed run
the published values agree with the journal's committed `publish` events."""

from __future__ import annotations

import json
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from mnlang import api
from mnlang.checker import check
from mnlang.ir.compile import compile_file
from mnlang.stores.sqlite import SQLiteStore
from tests.human.harness import mnc, mnc_env

FLOW = textwrap.dedent(
    """\
    event go

    tool step(i: int) -> int {
      impl: "pub_tools:step"
    }

    workflow widgets(n: int) -> int {
      publish progress = 0
      total = 0
      for i in range(n) {
        s = step(i)
        total = total + s
        publish progress = i + 1
      }
      publish status = "waiting for go"
      _go = wait go { timeout: 1h }
      publish status = "done"
      return total
    }
    """
)
# `step` dies like a SIGKILL (once, while the marker file is absent) when asked to.
TOOLS = textwrap.dedent(
    """\
    import os
    from pathlib import Path

    def step(i):
        marker = Path(__file__).with_name("died")
        if os.environ.get("PUB_DIE_AT") == str(i) and not marker.exists():
            marker.write_text("x")
            os._exit(137)
        return i * 10
    """
)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "pub.mn").write_text(FLOW)
    (tmp_path / "pub_tools.py").write_text(TOOLS)
    return tmp_path


def published_in_store(db: Path, run_id: str) -> dict[str, Any]:
    store = SQLiteStore(db)
    try:
        record = store.get_run(run_id)
        assert record is not None
        value = record.meta.get("published", {})
        assert isinstance(value, dict)
        return value
    finally:
        store.close()


def committed_publishes(db: Path, run_id: str) -> dict[str, Any]:
    """The last committed `publish` event per name: what the journal says was published."""
    store = SQLiteStore(db)
    try:
        seen: dict[str, Any] = {}
        for event in store.read_journal(run_id):
            if event.kind == "publish":
                seen[event.data["name"]] = event.data["value"]
        return seen
    finally:
        store.close()


def test_publish_get_and_wait(folder: Path) -> None:
    env = mnc_env(folder, MNC_COMMIT_MS="0")
    db = folder / "journal.db"
    ran = mnc(["run", str(folder / "pub.mn"), "--id", "w", "--input", '{"n": 3}'], env)
    assert ran.returncode == 3, ran.stderr
    assert api.get_published("w", db=db) == {"progress": 3, "status": "waiting for go"}
    got = mnc(["get", "w", "progress"], env)
    assert (got.returncode, got.stdout) == (0, "3\n")
    missing = mnc(["get", "w", "finished"], env)
    assert missing.returncode == 1
    assert "run `w` (waiting) has not published `finished`" in missing.stderr
    assert mnc(["get", "nope", "x"], env).returncode == 2

    # A reader waiting for a value sees it once the commit that holds it is written.
    seen: list[Any] = []
    reader = threading.Thread(
        target=lambda: seen.append(api.get_published("w", "status", wait_s=30, db=db))
    )
    status_now = api.get_published("w", "status", db=db)
    reader.start()
    time.sleep(0.3)
    assert mnc(["signal", "w", "go"], env).returncode == 0
    reader.join(timeout=60)
    assert status_now == "waiting for go"
    assert seen in (["done"], ["waiting for go"])  # the first value it saw
    final = mnc(["get", "w", "--json"], env)
    assert json.loads(final.stdout) == {"progress": 3, "status": "done"}


def test_wait_times_out_with_what_was_published(folder: Path) -> None:
    env = mnc_env(folder, MNC_COMMIT_MS="0")
    mnc(["run", str(folder / "pub.mn"), "--id", "w", "--input", '{"n": 1}'], env)
    started = time.monotonic()
    waited = mnc(["get", "w", "never_set", "--wait", "1s"], env)
    assert waited.returncode == 1 and time.monotonic() - started >= 1.0
    assert "it has published `progress`, `status`" in waited.stderr
    bad = mnc(["get", "w", "x", "--wait", "soon"], env)
    assert bad.returncode == 2 and "expected a duration" in bad.stderr


def test_a_kill_between_publish_and_its_commit_is_never_seen(folder: Path) -> None:
    """`publish progress = 1` is set in memory, then `step(1)` kills the process before any
    commit holds it: a reader sees the previous value, never 1; the resumed run publishes it."""
    env = mnc_env(folder, MNC_COMMIT_MS="0", MNC_COMMIT_EVERY="1000", PUB_DIE_AT="1")
    db = folder / "journal.db"
    died = mnc(["run", str(folder / "pub.mn"), "--id", "k", "--input", '{"n": 3}'], env)
    assert died.returncode == 137, died.stderr
    published = published_in_store(db, "k")
    assert published.get("progress") != 1 and "status" not in published
    assert published == committed_publishes(db, "k")
    resumed = mnc(["resume", "k"], env)
    assert resumed.returncode == 3, resumed.stderr
    assert published_in_store(db, "k") == {"progress": 3, "status": "waiting for go"}


@pytest.mark.slow
@pytest.mark.parametrize("when", ["before", "written", "after"])
def test_published_values_agree_with_the_journal_at_every_commit(folder: Path, when: str) -> None:
    reference = mnc_env(folder / "ref", MNC_COMMIT_MS="0", MNC_COMMIT_EVERY="2")
    (folder / "ref").mkdir()
    ran = mnc(["run", str(folder / "pub.mn"), "--id", "r", "--input", '{"n": 3}'], reference)
    assert ran.returncode == 3
    commits = len([e for e in api.run_journal("r", db=folder / "ref" / "journal.db")])
    for n in range(1, commits + 1):
        case = folder / f"{when}-{n}"
        case.mkdir()
        env = mnc_env(
            case,
            MNC_COMMIT_MS="0",
            MNC_COMMIT_EVERY="2",
            MNC_CRASH_AT_COMMIT=str(n),
            MNC_CRASH_WHEN=when,
        )
        crashed = mnc(["run", str(folder / "pub.mn"), "--id", "c", "--input", '{"n": 3}'], env)
        if crashed.returncode != 137:
            assert crashed.returncode == 3, crashed.stderr  # fewer commits than events
            break
        db = case / "journal.db"
        store = SQLiteStore(db)
        exists = store.get_run("c") is not None
        store.close()
        if exists:
            assert published_in_store(db, "c") == committed_publishes(db, "c")
            del env["MNC_CRASH_AT_COMMIT"]
            resumed = mnc(["resume", "c"], env)
            assert resumed.returncode == 3, resumed.stderr
            assert published_in_store(db, "c") == {"progress": 3, "status": "waiting for go"}


def test_a_published_name_keeps_its_type(tmp_path: Path) -> None:
    path = tmp_path / "typed.mn"
    path.write_text(
        'workflow w() -> int {\n  publish stage = 1\n  publish stage = "two"\n  return 0\n}\n'
    )
    found = [(d.code, d.message) for d in check(path).diagnostics]
    assert found == [("E201", "expected `int`, found `str` for `publish stage`")]


def test_the_ir_lists_published_names_with_types(folder: Path) -> None:
    ir, diags = compile_file(folder / "pub.mn")
    assert ir is not None, diags
    published = ir.workflows["widgets"].published
    assert published is not None
    assert {k: v.kind for k, v in published.items()} == {"progress": "int", "status": "str"}


def test_the_console_shows_published_values(folder: Path) -> None:
    from starlette.testclient import TestClient

    from mnlang.ui.app import create_app
    from mnlang.ui.auth import Authenticator

    env = mnc_env(folder, MNC_COMMIT_MS="0")
    mnc(["run", str(folder / "pub.mn"), "--id", "w", "--input", '{"n": 2}'], env)
    store = SQLiteStore(folder / "journal.db")
    try:
        client = TestClient(
            create_app(store, Authenticator(admin_token=None, tokens=None, loopback=True)),
            base_url="http://127.0.0.1:8737",
        )
        page = client.get("/runs/w")
        assert page.status_code == 200
        assert "<h2>Published</h2>" in page.text
        assert "waiting for go" in page.text and ">progress<" in page.text
    finally:
        store.close()
