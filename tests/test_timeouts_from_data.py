"""Issue 16, item 5: timeouts from data. A checkpoint's and an event wait's `timeout` may be
any `duration` expression, evaluated when the step starts; a null or negative duration is a
`value_error` naming the step, and `mnc diff` sees a changed timeout expression."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from mnlang.checker import check
from mnlang.ir.compile import compile_file
from mnlang.ir.diff import diff_programs
from mnlang.ir.model import IRProgram
from mnlang.runtime.config import RuntimeConfig
from mnlang.runtime.run import resume_run, start_run
from mnlang.stores.sqlite import SQLiteStore

FLOWS = textwrap.dedent(
    """\
    event paid -> int

    workflow review(amount: int, review_time: duration) -> str {
      d = checkpoint approve_it {
        ask: "Pay {amount}?"
        timeout: review_time * 2
        on_timeout: reject
      }
      return "{d.choice}"
    }

    workflow payment(grace: duration?) -> int {
      p = wait paid { timeout: (grace ?? 1h) + 1s }
      return p ?? -1
    }

    workflow pause(delay: duration) -> int {
      wait delay
      return 1
    }
    """
)
CONFIG = RuntimeConfig(commit_ms=0)
HOUR = 3600.0


@pytest.fixture
def program(tmp_path: Path) -> IRProgram:
    path = tmp_path / "flows.mn"
    path.write_text(FLOWS)
    ir, diags = compile_file(path)
    assert ir is not None, diags
    return ir


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "journal.db")
    yield s
    s.close()


def due_in(store: SQLiteStore, run_id: str) -> float:
    (timer,) = store.run_timers(run_id)
    return timer.due_at - store.now()


def fall_due(store: SQLiteStore, run_id: str) -> None:
    with store._lock:
        store._conn.execute(
            "UPDATE timers SET due_at = (julianday('now') - 2440587.5) * 86400.0 - 1 "
            "WHERE run_id = ?",
            (run_id,),
        )


def test_a_checkpoint_timeout_is_computed_from_the_arguments(
    program: IRProgram, store: SQLiteStore
) -> None:
    two_hours = 2 * 3_600_000
    outcome = start_run(
        store, program, "review", {"amount": 5, "review_time": two_hours}, run_id="r"
    )
    assert outcome.status == "waiting"
    [checkpoint] = store.open_checkpoints("r")
    assert checkpoint.request["timeout_ms"] == 2 * two_hours
    assert 4 * HOUR - 60 < due_in(store, "r") <= 4 * HOUR
    fall_due(store, "r")
    assert resume_run(store, "r", config=CONFIG).result == "reject"


def test_an_event_wait_timeout_is_computed_and_null_falls_back(
    program: IRProgram, store: SQLiteStore
) -> None:
    assert start_run(store, program, "payment", {"grace": 60_000}, run_id="g").status == "waiting"
    assert 60 < due_in(store, "g") <= 61
    assert start_run(store, program, "payment", {"grace": None}, run_id="n").status == "waiting"
    assert HOUR < due_in(store, "n") <= HOUR + 1
    fall_due(store, "g")
    assert resume_run(store, "g", config=CONFIG).result == -1


@pytest.mark.parametrize(
    ("workflow", "args", "message"),
    [
        (
            "review",
            {"amount": 1, "review_time": -1000},
            "the `timeout` of checkpoint `approve_it` must be 0 or more, got -2000ms",
        ),
        (
            "payment",
            {"grace": -5000},
            "the `timeout` of `wait paid` must be 0 or more, got -4000ms",
        ),
        ("pause", {"delay": -1}, "`wait` must be 0 or more, got -1ms"),
    ],
)
def test_a_negative_duration_is_a_clear_run_time_error(
    program: IRProgram, store: SQLiteStore, workflow: str, args: dict[str, int], message: str
) -> None:
    outcome = start_run(store, program, workflow, args, run_id="bad")
    assert outcome.status == "failed"
    assert isinstance(outcome.error, dict)
    assert outcome.error["kind"] == "value_error"
    assert outcome.error["message"] == message
    assert store.run_timers("bad") == []


def test_the_checker_takes_duration_expressions_and_says_what_else_it_found(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bad.mn"
    path.write_text(
        textwrap.dedent(
            """\
            event paid -> int

            workflow w(n: int, grace: duration?) -> int {
              a = wait paid { timeout: n }
              b = wait paid { timeout: grace }
              return (a ?? 0) + (b ?? 0)
            }
            """
        )
    )
    found = [(d.code, d.span.line if d.span else 0, d.message) for d in check(path).diagnostics]
    assert found == [
        ("E212", 4, "`timeout` takes a duration or `never`, found `int`"),
        ("E206", 5, "`grace` may be `null` here (its type is `duration?`)"),
    ]


def test_diff_sees_a_changed_timeout_expression(tmp_path: Path) -> None:
    path = tmp_path / "flows.mn"
    old, _ = compile_file(path, FLOWS)
    new, _ = compile_file(path, FLOWS.replace("review_time * 2", "review_time * 3"))
    assert old is not None and new is not None
    review = next(w for w in diff_programs(old, new).workflows if w.name == "review")
    assert [(c.id, c.fields) for c in review.changed] == [("d", ["timeout"])]


def test_the_graph_shows_a_computed_timeout(program: IRProgram) -> None:
    from mnlang.graph.dot import workflow_dot

    assert "timeout review_time * 2 -> reject" in workflow_dot(program, "review")
    assert "timeout (grace ?? 1h) + 1s" in workflow_dot(program, "payment")


SLOW = textwrap.dedent(
    """\
    tool nap(seconds: float, limit: duration) -> str {
      impl: "slow_tools:nap"
      timeout: limit + 100ms
    }

    workflow napping(seconds: float, limit: duration) -> str {
      r = nap(seconds, limit)
      return r
    }
    """
)


def test_a_tools_timeout_is_computed_from_its_arguments_per_call(tmp_path: Path) -> None:
    path = tmp_path / "slow.mn"
    path.write_text(SLOW)
    (tmp_path / "slow_tools.py").write_text(
        "import time\n\ndef nap(seconds, limit):\n    time.sleep(seconds)\n    return 'woke'\n"
    )
    ir, diags = compile_file(path)
    assert ir is not None, diags
    assert ir.tools["nap"].timeout is not None and ir.tools["nap"].timeout_ms is None
    store = SQLiteStore(tmp_path / "journal.db")
    try:
        quick = start_run(store, ir, "napping", {"seconds": 0.0, "limit": 5000}, run_id="ok")
        assert (quick.status, quick.result) == ("completed", "woke")
        slow = start_run(store, ir, "napping", {"seconds": 1.0, "limit": 0}, run_id="late")
        assert slow.status == "failed" and isinstance(slow.error, dict)
        assert slow.error["kind"] == "timeout"
        bad = start_run(store, ir, "napping", {"seconds": 0.0, "limit": -500}, run_id="bad")
        assert isinstance(bad.error, dict) and bad.error["kind"] == "value_error"
        assert bad.error["message"] == "the `timeout` of `nap` must be 0 or more, got -400ms"
    finally:
        store.close()


def test_a_tools_timeout_names_only_its_parameters(tmp_path: Path) -> None:
    path = tmp_path / "bad.mn"
    path.write_text(
        SLOW.replace("timeout: limit + 100ms", "timeout: seconds").replace(
            "workflow napping",
            'tool other(x: int) -> str {\n  impl: "m:o"\n  timeout: y\n}\n\nworkflow napping',
        )
    )
    found = [(d.code, d.message) for d in check(path).diagnostics]
    assert found == [
        ("E212", "`timeout` takes a duration or `never`, found `float`"),
        ("E101", "unknown name `y`"),
    ]


DEADLINE = textwrap.dedent(
    """\
    workflow slow(sla: duration) -> str {
      deadline: sla * 2
      wait 1h
      return "done"
    }
    """
)


def test_a_workflow_deadline_is_computed_once_from_its_arguments(tmp_path: Path) -> None:
    path = tmp_path / "deadline.mn"
    path.write_text(DEADLINE)
    ir, diags = compile_file(path)
    assert ir is not None, diags
    store = SQLiteStore(tmp_path / "journal.db")
    try:
        waiting = start_run(store, ir, "slow", {"sla": 30 * 60_000}, run_id="d")
        assert waiting.status == "waiting"
        deadline = next(t for t in store.run_timers("d") if t.timer_id == "deadline")
        record = store.get_run("d")
        assert record is not None
        assert deadline.due_at == pytest.approx(record.created_at + HOUR)
        # A 100 ms deadline is due within the short-wait window: the run waits for it in
        # process and ends there.
        ended = start_run(store, ir, "slow", {"sla": 50}, run_id="short")
        assert ended.status == "failed" and isinstance(ended.error, dict)
        assert ended.error["kind"] == "deadline_exceeded"
        assert ended.error["message"] == "the run passed its deadline of 100 ms"
        bad = start_run(store, ir, "slow", {"sla": -1}, run_id="bad")
        assert isinstance(bad.error, dict) and bad.error["kind"] == "value_error"
        assert bad.error["message"] == "the `deadline` of `slow` must be 0 or more, got -2ms"
    finally:
        store.close()


UNDO = textwrap.dedent(
    """\
    effect book(seconds: float, limit: duration) -> str {
      impl: "undo_tools:book"
      key: "book:{seconds}"
      compensate: unbook(seconds, limit)
    }

    effect unbook(seconds: float, limit: duration) -> str {
      impl: "undo_tools:unbook"
      key: "unbook:{seconds}"
      timeout: limit + 100ms
    }

    workflow booking(seconds: float, limit: duration) -> str {
      _b = book(seconds, limit)
      fail "no"
    }
    """
)


def test_a_compensations_timeout_is_computed_from_its_arguments(tmp_path: Path) -> None:
    path = tmp_path / "undo.mn"
    path.write_text(UNDO)
    (tmp_path / "undo_tools.py").write_text(
        "import time\n\n"
        "def book(seconds, limit):\n    return 'booked'\n\n"
        "def unbook(seconds, limit):\n    time.sleep(seconds)\n    return 'undone'\n"
    )
    ir, diags = compile_file(path)
    assert ir is not None, diags
    store = SQLiteStore(tmp_path / "journal.db")
    try:
        out = start_run(store, ir, "booking", {"seconds": 1.0, "limit": 0}, run_id="late")
        assert out.status == "failed"
        (undo,) = [e for e in store.read_journal("late") if e.kind == "compensation_failed"]
        assert undo.data["kind"] == "timeout"
    finally:
        store.close()
