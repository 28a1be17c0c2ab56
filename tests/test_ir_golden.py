"""Golden files: a readable summary of each example's IR and the DOT of each of its workflows.

`tests/golden/ir/<name>.txt` and `tests/golden/dot/<name>.<workflow>.dot` for every
`examples/*/*.mn` and for `tests/golden/ir/kinds.mn` (which has every state kind).
Regenerate after an intended change with `MNC_REGEN_GOLDEN=1 pytest tests/test_ir_golden.py`
and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mnlang.graph.dot import workflow_dot
from mnlang.ir.compile import compile_file
from mnlang.ir.model import IRProgram
from mnlang.ir.show import show, show_duration, summary
from mnlang.ir.states import STATE_KINDS, CallState, transitions

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
SOURCES = [*sorted(ROOT.glob("examples/*/*.mn")), GOLDEN / "ir" / "kinds.mn"]
REGEN = os.environ.get("MNC_REGEN_GOLDEN") == "1"


def compiled(path: Path) -> IRProgram:
    ir, diags = compile_file(path)
    assert ir is not None, [f"{d.code} {d.message} {d.span}" for d in diags]
    return ir


def ir_summary(ir: IRProgram) -> str:
    """Declarations one per line, then each workflow's states with transitions and live variables."""
    out = [f"hash {ir.hash}"]
    for name, decl in ir.types.items():
        if decl.kind == "enum":
            out.append(f"enum {name}: {', '.join(decl.members)}")
        else:
            fields = ", ".join(
                f"{f.name}: {f.type}" + (f" = {show(f.default)}" if f.default else "")
                for f in decl.fields
            )
            out.append(f"type {name} {{ {fields} }}")
    for kind, table in (("tool", ir.tools), ("effect", ir.effects), ("agent", ir.agents)):
        for name, tool in table.items():
            params = ", ".join(f"{p.name}: {p.type}" for p in tool.params)
            out.append(f"{kind} {name}({params}) -> {tool.returns}")
            reconcile = getattr(tool, "reconcile", None)
            if reconcile is not None:
                settle = show_duration(reconcile.settle_ms) if reconcile.settle_ms else "0s"
                out.append(f"  reconcile {reconcile.tool}, settle {settle}")
    if ir.errors:
        out.append(f"errors {', '.join(ir.errors)}")
    for name, event in ir.events.items():
        out.append(f"event {name} -> {event.payload}")
    for name, schedule in ir.schedules.items():
        every = (
            f"every {show_duration(schedule.every_ms)}"
            if schedule.every_ms
            else f"cron {schedule.cron}"
        )
        out.append(f"schedule {name}: {schedule.workflow} {every}")
    for wf in ir.workflows.values():
        params = ", ".join(f"{p.name}: {p.type}" for p in wf.params)
        out += ["", f"workflow {wf.name}({params}) -> {wf.returns}", f"  start -> {wf.start}"]
        if wf.on_failure is not None:
            out.append(f"  on_failure as {wf.on_failure.var} -> {wf.on_failure.entry}")
        for sid, state in wf.states.items():
            frame = f"  (in {state.frame})" if state.frame else ""
            out.append(f"  {sid} [{state.kind}] {summary(state)}{frame}")
            if isinstance(state, CallState) and (state.retry.attempts > 1 or state.timeout_ms):
                timeout = show_duration(state.timeout_ms) if state.timeout_ms else "none"
                out.append(f"      retry {state.retry.attempts}x, timeout {timeout}")
            for label, target in transitions(state):
                out.append(f"      {label} -> {target if target is not None else '(end of body)'}")
            live = ", ".join(f"{k}: {v}" for k, v in state.live.items())
            out.append(f"      live: {live or '-'}")
    return "\n".join(out) + "\n"


def golden_name(path: Path) -> str:
    return path.stem


def check_golden(path: Path, actual: str) -> None:
    if REGEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, "utf-8")
        return
    assert path.is_file(), f"missing golden {path}; run with MNC_REGEN_GOLDEN=1"
    assert actual == path.read_text("utf-8"), f"{path} differs; review, then MNC_REGEN_GOLDEN=1"


@pytest.mark.parametrize("source", SOURCES, ids=golden_name)
def test_ir_summary(source: Path) -> None:
    check_golden(GOLDEN / "ir" / f"{golden_name(source)}.txt", ir_summary(compiled(source)))


@pytest.mark.parametrize("source", SOURCES, ids=golden_name)
def test_dot(source: Path) -> None:
    ir = compiled(source)
    for workflow in ir.workflows:
        if "." in workflow:
            continue  # drawn with the module that declares it
        check_golden(
            GOLDEN / "dot" / f"{golden_name(source)}.{workflow}.dot", workflow_dot(ir, workflow)
        )


def test_golden_names_are_unique() -> None:
    names = [golden_name(p) for p in SOURCES]
    assert len(names) == len(set(names))


def test_every_state_kind_is_in_a_golden() -> None:
    seen = {
        state.kind
        for source in SOURCES
        for wf in compiled(source).workflows.values()
        for state in wf.states.values()
    }
    assert seen == set(STATE_KINDS)
