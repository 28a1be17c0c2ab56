"""The compiler and the IR: round trips, the content hash, declarations and the state machine."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from mnlang.ir.base import TypeIR
from mnlang.ir.compile import compile_file, select_workflow
from mnlang.ir.hashing import program_hash
from mnlang.ir.load import dump_ir, ir_schema, parse_ir
from mnlang.ir.model import IRProgram
from mnlang.ir.states import (
    STATE_KINDS,
    BranchState,
    CallState,
    CheckpointState,
    ChildState,
    LoopState,
    MapState,
    ParallelState,
    TryState,
    WaitState,
    YieldState,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(ROOT.glob("examples/*/*.mn"))
REFUND = ROOT / "examples" / "refund" / "refund.mn"
KINDS = ROOT / "tests" / "golden" / "ir" / "kinds.mn"


def compiled(path: Path, text: str | None = None) -> IRProgram:
    ir, diags = compile_file(path, text)
    assert ir is not None, [f"{d.code} {d.message} {d.span}" for d in diags]
    return ir


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_round_trips_through_json(path: Path) -> None:
    ir = compiled(path)
    loaded = parse_ir(dump_ir(ir))
    assert loaded == ir
    assert loaded.hash == ir.hash == program_hash(loaded)
    assert dump_ir(loaded) == dump_ir(ir)


def test_examples_exist() -> None:
    assert len(EXAMPLES) >= 5


def test_hash_ignores_layout_comments_and_place(tmp_path: Path) -> None:
    source = REFUND.read_text("utf-8")
    original = compiled(REFUND)
    relaid = source.replace(
        "  order = fetch_order(order_id)\n", "\n\n  order = fetch_order(  order_id )  # fetch\n"
    )
    relaid = "# a new first comment\n" + relaid.replace("# same key, same effect", "# reworded")
    assert relaid != source
    assert compiled(REFUND, relaid).hash == original.hash
    moved = tmp_path / "elsewhere" / "refund.mn"
    moved.parent.mkdir()
    moved.write_text(source, "utf-8")
    assert compiled(moved).hash == original.hash


def test_hash_changes_with_meaning() -> None:
    source = REFUND.read_text("utf-8")
    original = compiled(REFUND).hash
    assert (
        compiled(REFUND, source.replace("t.confidence < 0.8", "t.confidence < 0.9")).hash
        != original
    )
    assert compiled(REFUND, source.replace("timeout: 10s", "timeout: 11s")).hash != original
    assert (
        compiled(REFUND, source.replace('"refund:{order_id}"', '"refund2:{order_id}"')).hash
        != original
    )


def test_the_runtime_side_imports_neither_parser_nor_checker() -> None:
    code = (
        "import sys, mnlang.ir, mnlang.ir.load, mnlang.ir.diff, mnlang.ir.show\n"
        "bad = [m for m in sys.modules if m.startswith(('mnlang.checker', 'mnlang.syntax', 'lark'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_a_file_with_errors_is_not_compiled() -> None:
    text = REFUND.read_text("utf-8").replace(
        "order = fetch_order(order_id)", "order = fetch_ordr(order_id)"
    )
    ir, diags = compile_file(REFUND, text)
    assert ir is None
    assert "E101" in {d.code for d in diags}


def test_the_schema_describes_every_state_kind() -> None:
    schema = json.dumps(ir_schema())
    for kind in STATE_KINDS:
        assert f'"kind": {{"enum": ["{kind}"]}}' in schema


# ---- declarations -----------------------------------------------------------------


def test_refund_declarations() -> None:
    ir = compiled(REFUND)
    fetch = ir.tools["fetch_order"]
    assert (fetch.impl, fetch.impl_dir, fetch.timeout_ms) == ("tools:fetch_order", ".", 10_000)
    assert (fetch.retry.attempts, fetch.retry.backoff_ms, fetch.retry.max_delay_ms) == (
        3,
        1000,
        30_000,
    )
    pay = ir.effects["refund_payment"]
    assert pay.scope == "global" and not pay.once
    assert pay.key is not None and [
        p if isinstance(p, str) else msgspec.to_builtins(p) for p in pay.key.parts
    ] == [
        "refund:",
        {"node": "var", "name": "order_id"},
    ]
    assert {
        k: v for k, v in msgspec.to_builtins(pay.retry).items() if v is not None
    } == {  # as the IR file writes it
        "attempts": 5,
        "backoff_ms": 1000,
        "factor": 2.0,
        "max_delay_ms": 30_000,
        "jitter": True,
        "on": ["timeout", "transient"],
    }
    triage = ir.agents["triage"]
    assert triage.model == "gpt-5.4-mini" and triage.max_tokens == 400
    assert triage.retry.on == ["malformed_output", "timeout"]
    schema = triage.output_schema
    triage_def = schema["$defs"]["Triage"]
    assert triage_def["required"] == ["category", "confidence", "summary"]
    assert triage_def["additionalProperties"] is False
    assert triage_def["properties"]["category"] == {
        "type": "string",
        "enum": ["damaged", "late", "wrong_item", "other"],
    }
    assert ir.workflows["refund"].options.class_ == "support"
    assert str(ir.workflows["refund"].options.budget) == "0.50"
    assert ir.workflows["refund"].options.deadline_ms == 3 * 86_400_000


def test_tool_modules_are_hashed_when_present() -> None:
    ir = compiled(REFUND)
    (module,) = ir.source.tool_modules
    assert (module.module, module.path) == ("tools", "tools.py")
    assert module.sha256 == hashlib.sha256((REFUND.parent / "tools.py").read_bytes()).hexdigest()
    kinds = compiled(KINDS)
    assert [m.sha256 for m in kinds.source.tool_modules] == [None]


def test_imported_declarations_are_qualified_and_keep_their_folder() -> None:
    ir = compiled(ROOT / "examples" / "pipeline" / "pipeline.mn")
    assert "cleaning.clean_batch" in ir.workflows
    assert "std.policies.standard_retry" not in ir.tools  # policies are resolved, not kept
    child_states = [s for s in ir.workflows["pipeline"].states.values() if s.kind == "child"]
    assert [s.workflow for s in child_states] == ["cleaning.clean_batch"]
    assert ir.schedules["nightly_orders"].workflow == "pipeline"
    assert ir.schedules["nightly_orders"].cron == "0 3 * * *"
    cut = select_workflow(ir, "pipeline")
    assert set(cut.workflows) == {"pipeline", "cleaning.clean_batch"}
    assert cut.hash == program_hash(cut)


def test_record_literals_get_declared_defaults(tmp_path: Path) -> None:
    source = tmp_path / "d.mn"
    source.write_text(
        "type Opts {\n  name: str\n  retries: int = 2\n  note: str?\n}\n\n"
        "workflow w(n: str) -> Opts {\n  o = Opts { name: n }\n  return o\n}\n",
        "utf-8",
    )
    state = compiled(source).workflows["w"].states["o"]
    assert state.kind == "assign"
    assert msgspec.to_builtins(state.value) == {
        "node": "record",
        "type": "Opts",
        "fields": {
            "name": {"node": "var", "name": "n"},
            "retries": {"node": "lit", "type": "int", "value": 2},
            "note": {"node": "lit", "type": "null", "value": None},
        },
    }


# ---- the state machine ----------------------------------------------------------------


def test_refund_state_machine() -> None:
    wf = compiled(REFUND).workflows["refund"]
    assert wf.start == "order"
    states = wf.states
    assert list(states) == [
        "order",
        "if",
        "if/then/fail",
        "t",
        "if#2",
        "if#2/then/decision",
        "if#2/then/if",
        "if#2/then/if/then/notify",
        "if#2/then/if/then/fail",
        "receipt",
        "notify",
        "return",
    ]
    first_if = states["if"]
    assert isinstance(first_if, BranchState)
    assert (first_if.then, first_if.else_) == ("if/then/fail", "t")
    review = states["if#2/then/decision"]
    assert isinstance(review, CheckpointState)
    assert (review.options, review.timeout_ms, review.on_timeout) == (
        ["approve", "reject"],
        86_400_000,
        "reject",
    )
    assert review.next == "if#2/then/if"
    second_if = states["if#2"]
    assert isinstance(second_if, BranchState) and second_if.else_ == "receipt"
    pay = states["receipt"]
    assert isinstance(pay, CallState)
    assert (pay.callee, pay.callee_kind, pay.target, pay.next) == (
        "refund_payment",
        "effect",
        "receipt",
        "notify",
    )
    assert pay.retry.attempts == 5
    assert list(pay.live) == ["order"]
    assert states["order"].live == {"complaint": TypeIR(kind="str"), "order_id": TypeIR(kind="str")}
    decided = states["if#2/then/if"].live["decision"]
    assert (decided.kind, decided.name, decided.members) == (
        "decision",
        "manager_review",
        ["approve", "reject"],
    )


def test_frames_and_body_ends() -> None:
    wf = compiled(KINDS).workflows["kinds"]
    s = wf.states
    levels = s["levels"]
    assert isinstance(levels, MapState)
    assert (levels.var, levels.body, levels.target, levels.next) == (
        "item",
        "levels/level",
        "levels",
        "names",
    )
    assert levels.limit is not None and msgspec.to_builtins(levels.limit) == {
        "node": "lit",
        "type": "int",
        "value": 2,
    }
    yielded = s["levels/yield"]
    assert isinstance(yielded, YieldState)
    assert (yielded.into, yielded.next, yielded.frame) == ("levels", None, "levels")
    assert str(s["names"].live.get("levels")) == "list[Level]"
    parallel = s["parallel"]
    assert isinstance(parallel, ParallelState)
    assert parallel.branches == ["parallel/first", "parallel/last"]
    for entry in parallel.branches:
        branch = s[entry]
        assert isinstance(branch, ChildState)
        assert (branch.frame, branch.next) == ("parallel", None)  # a branch ends at the join
    loop = s["while"]
    assert isinstance(loop, LoopState)
    assert (loop.mode, loop.body, loop.next) == ("while", "while/wait", "ok")
    assert loop.max is not None and msgspec.to_builtins(loop.max)["value"] == 3
    timer = s["while/wait"]
    assert isinstance(timer, WaitState) and timer.duration is not None and timer.event is None
    event = s["note"]
    assert isinstance(event, WaitState)
    assert (event.event, event.timeout_ms, str(event.payload)) == (
        "approved_elsewhere",
        600_000,
        "str",
    )
    assert str(s["label"].live["note"]) == "str?"
    attempt = s["try"]
    assert isinstance(attempt, TryState)
    assert attempt.body == "try/body/store" and attempt.finally_ == "try/finally/log"
    (catch,) = attempt.catches
    assert (catch.kinds, catch.var, catch.entry) == (
        ["key_conflict"],
        "e",
        "try/catch_key_conflict/log",
    )
    after_try = {"label", "total", "tries"}  # read by `finally` and by the `return`
    assert set(s["try/catch_key_conflict/log"].live) == after_try | {"e"}
    assert s["try/catch_key_conflict/log"].live["e"] == TypeIR(kind="error")
    assert set(s["try/finally/log"].live) == after_try
    assert set(s["try/body/store"].live) == after_try | {"first"}
    assert attempt.next == "return"
