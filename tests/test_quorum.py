"""Quorum joins (`parallel for ... first N`): the first N items to end win, in the order
their ends were committed; the others lose. A loser in a tool call, a wait or a checkpoint
stops at once; a loser inside an effect waits for the effect's outcome, which goes to the
ledger (or, after a crash, to a repair for a `once` effect) and is never dropped.

The crash enumeration over `tests/crash/quorum.mn` is in tests/test_crash.py."""

from __future__ import annotations

import json
import os
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from mnlang.ir.compile import compile_file
from mnlang.ir.load import dump_ir
from mnlang.runtime.config import RuntimeConfig
from mnlang.runtime.run import resume_run, start_run
from mnlang.stores.base import Batch, CommitResult
from mnlang.stores.sqlite import SQLiteStore
from mnlang.syntax import ast
from tests.test_crash import (
    CRASH,
    QUORUM,
    SimulatedCrash,
    _break_lease,
    _settle_threads,
    ledger_calls,
    program_of,
)
from tests.test_runtime import Program

CONFIG = RuntimeConfig(commit_ms=0, slow_call_ms=1e9)

TOOLS = """
import json, time
from pathlib import Path
HERE = Path(__file__).parent

def seen(name, **data):
    # What the receiving system saw, one line per call.
    with open(HERE / "seen.jsonl", "a") as f:
        f.write(json.dumps({"name": name, **data}) + "\\n")

def read(sensor, ms):
    time.sleep(ms / 1000)
    if sensor.startswith("bad"):
        raise RuntimeError(f"{sensor} is broken")
    if ms >= 2000:
        seen("slow_done", sensor=sensor)
    return 20 + len(sensor)

def mark(sensor, *, ctx):
    seen("mark", sensor=sensor, key=ctx.key)
    return True

def unmark(sensor, *, ctx):
    seen("unmark", sensor=sensor)
    return True
"""

SOURCE = """
type Probe {
  sensor: str
  ms: int
}

tool read(sensor: str, ms: int) -> int {
  impl: "tools:read"
}

effect mark(sensor: str) -> bool {
  impl: "tools:mark"
  key: "mark:{sensor}"
  compensate: unmark(sensor)
}

effect unmark(sensor: str) -> bool {
  impl: "tools:unmark"
  key: "unmark:{sensor}"
}

workflow quorum(probes: list[Probe], n: int) -> list[int] {
  got = parallel for p in probes first n {
    v = read(p.sensor, p.ms)
    yield v
  }
  return got
}

workflow caught(probes: list[Probe], n: int) -> str {
  try {
    got = parallel for p in probes limit 1 first n {
      v = read(p.sensor, p.ms)
      yield v
    }
  } catch tool_error as e {
    return "failed: {e.message}"
  }
  return "got {len(got)}"
}

workflow marked(probes: list[Probe]) -> list[str] {
  got = parallel for p in probes first 1 {
    mark(p.sensor)
    v = read(p.sensor, p.ms)
    yield p.sensor
  }
  return got
}
"""


def seen(p: Program) -> list[dict[str, Any]]:
    path = p.folder / "seen.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def p(tmp_path: Path) -> Program:
    return Program(tmp_path / "p", SOURCE, TOOLS)


def probes(*pairs: tuple[str, int]) -> list[dict[str, Any]]:
    return [{"sensor": s, "ms": ms} for s, ms in pairs]


def test_the_first_n_win_in_finish_order_and_a_failure_is_tolerated(p: Program) -> None:
    given = {"probes": probes(("aaa", 300), ("bad", 0), ("c", 60), ("slowest", 3000)), "n": 2}
    out = start_run(p.store, p.ir, "quorum", given, config=CONFIG)
    assert out.status == "completed", out.error
    assert out.result == [21, 23]  # c (60 ms), then aaa (300 ms); bad failed, slowest lost
    [quorum] = p.events(out.run_id, "quorum")
    assert quorum.data == {"first": 2, "won": [2, 0]}
    # The slow loser was abandoned: the run ended while its call was still running.
    assert not any(s["name"] == "slow_done" for s in seen(p))


def test_a_quorum_that_can_no_longer_be_reached_fails_with_the_last_failure(
    p: Program,
) -> None:
    given = {"probes": probes(("bad1", 0), ("ok", 0), ("bad2", 0)), "n": 2}
    out = start_run(p.store, p.ir, "caught", given, config=CONFIG)
    assert out.status == "completed", out.error
    assert out.result == "failed: the quorum of 2 can no longer be reached: bad2 is broken"


def test_the_quorum_is_checked_against_the_items_at_run_time(p: Program) -> None:
    for n, message in [
        (4, "`parallel for ... first 4` over 3 items can never be reached"),
        (0, "`parallel for` quorum must be at least 1, got 0"),
    ]:
        given = {"probes": probes(("a", 0), ("b", 0), ("c", 0)), "n": n}
        out = start_run(p.store, p.ir, "quorum", given, config=CONFIG)
        assert out.status == "failed" and out.error is not None
        assert out.error["kind"] == "value_error" and message in out.error["message"]


def test_a_losers_committed_effects_are_not_undone_unless_the_run_fails(p: Program) -> None:
    """Losing is not failing: what a loser committed stays (as a Step Functions or
    Temporal cancellation leaves it); the run's own failure would undo it."""
    given = {"probes": probes(("fast", 0), ("slow", 400))}
    out = start_run(p.store, p.ir, "marked", given, config=CONFIG)
    assert out.status == "completed", out.error
    assert out.result == ["fast"]
    names = Counter(s["name"] for s in seen(p))
    assert names == {"mark": 2}  # both marked once, nothing unmarked
    for key in ("mark:fast", "mark:slow"):
        row = p.store.ledger_get(key, run_id=out.run_id)
        assert row is not None and row.status == "done"


# --- a loser inside a `once` effect: tests/crash/quorum.mn ---------------------------------


class CrashingAfterQuorum:
    """A store that stops the run right after the commit that decides the quorum, while
    the loser's `once` effect (`page_operator`, 400 ms) is still in flight."""

    def __init__(self, inner: SQLiteStore) -> None:
        self.inner = inner

    def commit(self, batch: Batch) -> CommitResult:
        result = self.inner.commit(batch)
        if any(e.kind == "quorum" for e in batch.events):
            raise SimulatedCrash()
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _quorum_run(tmp_path: Path, store: Any) -> Any:
    os.environ["MNC_EXAMPLE_LEDGER"] = str(tmp_path / "ledger.jsonl")
    given = json.loads((CRASH / "quorum_input.json").read_text("utf-8"))
    return start_run(store, program_of(QUORUM), "quorum", given, run_id="q", config=CONFIG)


def test_a_losers_once_effect_that_ends_after_the_quorum_is_in_the_ledger(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "journal.db")
    out = _quorum_run(tmp_path, store)
    assert out.status == "completed", out.error
    assert [r["sensor"] for r in out.result] == ["a", "b"]
    events = store.read_journal("q")
    kinds = [e.kind for e in events]
    [page] = [e for e in events if e.kind == "effect" and e.data["effect"] == "page_operator"]
    # The loser's result comes after the quorum: it was awaited, not dropped.
    assert kinds.index("quorum") < kinds.index("losing") < events.index(page)
    row = store.ledger_get(page.data["key"], run_id="q")
    assert row is not None and row.status == "done" and row.result is True
    calls = ledger_calls(tmp_path / "ledger.jsonl")
    assert calls[page.data["key"]] == 1 and set(calls.values()) == {1}
    store.close()


def test_a_loser_killed_inside_its_once_effect_opens_the_repair(tmp_path: Path) -> None:
    inner = SQLiteStore(tmp_path / "journal.db")
    with pytest.raises(SimulatedCrash):
        _quorum_run(tmp_path, CrashingAfterQuorum(inner))
    _settle_threads()
    _break_lease(inner, "q")
    program = program_of(QUORUM)
    out = resume_run(inner, "q", program=program, config=CONFIG)
    # The quorum is decided, but the block waits for the loser's effect's outcome.
    assert out.status == "waiting"
    [repair] = inner.open_checkpoints("q")
    assert repair.name == "repair" and repair.request["effect"] == "page_operator"
    key = repair.request["key"]
    assert inner.ledger_get(key, run_id="q").status == "unknown"  # type: ignore[union-attr]
    inner.decide_checkpoint(
        "q", repair.checkpoint_id, {"choice": "mark_done", "result": True}, by="ops"
    )
    out = resume_run(inner, "q", program=program, config=CONFIG)
    assert out.status == "completed", out.error
    assert [r["sensor"] for r in out.result] == ["a", "b"]  # as decided before the crash
    row = inner.ledger_get(key, run_id="q")
    assert row is not None and row.status == "done"
    calls = ledger_calls(tmp_path / "ledger.jsonl")
    assert calls[key] == 1 and set(calls.values()) == {1}  # the pager paged once
    inner.close()


# --- the editors ---------------------------------------------------------------------------


def test_the_language_server_offers_first_after_a_parallel_iterable() -> None:
    from mnlang.lsp.completion import Names, complete

    def words(text: str) -> set[str]:
        return {item.label for item in complete(text, len(text), Names())}

    head = "workflow w(xs: list[int]) -> int {\n  ys = parallel for x in xs "
    assert {"limit", "first"} <= words(head)
    assert words(head + "limit 2 ") == {"first"}
    assert "first" not in words("workflow w(xs: list[int]) -> int {\n  ys = for x in xs ")
    assert "first" not in words(head + "first 2 ")


def test_fmt_and_graph_keep_the_quorum(tmp_path: Path) -> None:
    from mnlang.fmt import format_source
    from mnlang.graph.dot import workflow_graph

    source = (CRASH / "quorum.mn").read_text("utf-8")
    messy = source.replace("in probes first 2 {", "in probes   first   2 {")
    assert format_source(messy).text == source
    ir, _ = compile_file(CRASH / "quorum.mn")
    assert ir is not None
    dot = workflow_graph(ir, "quorum").source
    assert 'label="parallel for, first 2"' in dot and 'label="2 won"' in dot


def test_diff_reports_a_changed_quorum_and_no_run_moves_inside_it(tmp_path: Path) -> None:
    from mnlang.ir.diff import diff_programs, resume_problems

    source = (CRASH / "quorum.mn").read_text("utf-8")
    for name, text in [("old", source), ("new", source.replace("first 2 {", "first 1 {"))]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "quorum.mn").write_text(text, "utf-8")
    old, _ = compile_file(tmp_path / "old" / "quorum.mn")
    new, _ = compile_file(tmp_path / "new" / "quorum.mn")
    assert old is not None and new is not None
    [workflow] = diff_programs(old, new).workflows
    assert [(c.id, c.fields) for c in workflow.changed] == [("readings", ["first"])]
    inside = next(s for s in old.workflows["quorum"].states.values() if s.frame == "readings")
    assert "the enclosing `readings` changed" in resume_problems(old, new, "quorum", inside.id)
    # Without `first` the IR is what it was before quorums existed: no `first` key at all.
    plain, _ = compile_file(CRASH / "chain.mn")
    assert plain is not None
    maps = [s for w in plain.workflows.values() for s in w.states.values() if s.kind == "map"]
    assert maps and all(s.first is None for s in maps)
    written = json.loads(dump_ir(plain))["workflows"].values()
    assert all("first" not in s for w in written for s in w["states"].values())


def test_a_loser_whose_effect_times_out_is_reconciled_into_the_ledger(tmp_path: Path) -> None:
    p = Program(
        tmp_path / "r",
        """
        effect post(sensor: str) -> bool {
          impl: "tools:post"
          key: "post:{sensor}"
          timeout: 150ms
          reconcile: find_post(sensor)
        }

        tool find_post(sensor: str) -> bool? {
          impl: "tools:find_post"
        }

        workflow hedged(sensors: list[str]) -> list[str] {
          got = parallel for s in sensors first 1 {
            post(s)
            yield s
          }
          return got
        }
        """,
        TOOLS
        + """
def post(sensor, *, ctx):
    seen("post", sensor=sensor)
    if sensor == "slow":
        time.sleep(0.5)  # the receiver applies it, but answers after the timeout
    return True

def find_post(sensor):
    return True if any(s["sensor"] == sensor for s in _seen_posts()) else None

def _seen_posts():
    lines = (HERE / "seen.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines if '"post"' in x]
""",
    )
    out = start_run(p.store, p.ir, "hedged", {"sensors": ["slow", "fast"]}, config=CONFIG)
    assert out.status == "completed", out.error
    assert out.result == ["fast"]
    row = p.store.ledger_get("post:slow", run_id=out.run_id)
    assert row is not None and row.status == "done" and row.result is True
    reconciled = [e for e in p.events(out.run_id, "effect") if e.data.get("reconciled")]
    assert [e.data["key"] for e in reconciled] == ["post:slow"]
    assert Counter(s["sensor"] for s in seen(p) if s["name"] == "post") == {"slow": 1, "fast": 1}


def test_first_is_a_keyword_only_after_a_parallel_iterable(tmp_path: Path) -> None:
    from mnlang.syntax.parser import parse

    source = """
    tool f(x: int) -> int {
      impl: "tools:f"
    }

    workflow w(first: list[int], limit: int) -> list[int] {
      a = parallel for x in first limit limit first limit {
        y = f(x)
        yield y
      }
      b = parallel for first in first first 1 {
        yield first
      }
      return a + b
    }
    """
    module, errors = parse(textwrap.dedent(source), "w.mn")
    assert module is not None and not errors
    workflow = module.decls[-1]
    assert isinstance(workflow, ast.WorkflowDecl)
    loops = [s.value for s in workflow.body.stmts if isinstance(s, ast.Assign)]
    assert all(isinstance(lp, ast.For) for lp in loops)
    assert [(type(lp.first).__name__, lp.var.name) for lp in loops] == [
        ("Name", "x"),
        ("IntLit", "first"),
    ]
    # A sequential `for` has no quorum: there `first` is a name, and a syntax error.
    (tmp_path / "seq.mn").write_text(
        'workflow w(xs: list[int]) -> int {\n  for x in xs first 2 {\n    log "{x}"\n  }\n'
        "  return 0\n}\n",
        "utf-8",
    )
    _, diagnostics = compile_file(tmp_path / "seq.mn")
    assert [d.code for d in diagnostics] == ["E010"]
