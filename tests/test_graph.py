"""`mnc graph`'s renderer: layout without overlaps, every state labelled, overlays, clear errors."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest

from mnlang.graph.dot import workflow_dot, workflow_graph
from mnlang.graph.overlay import RunOverlay, StateRun
from mnlang.graph.render import GraphError, format_of, pick_workflow, render
from mnlang.ir.compile import compile_file
from mnlang.ir.model import IRProgram
from mnlang.ir.show import summary

ROOT = Path(__file__).resolve().parent.parent
REFUND = ROOT / "examples" / "refund" / "refund.mn"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` not installed")


def compiled(path: Path) -> IRProgram:
    ir, diags = compile_file(path)
    assert ir is not None, [f"{d.code} {d.message} {d.span}" for d in diags]
    return ir


def big_source(blocks: int) -> str:
    """A workflow of about `blocks * 4 + 12` states mixing every drawing construct."""
    lines = [
        'tool step(x: int) -> int {\n  impl: "tools:step"\n  timeout: 2s\n}\n',
        'effect save(k: int) -> bool {\n  impl: "tools:save"\n  key: "save:{k}"\n}\n',
        "workflow big(n: int) -> int {",
        "  total = step(n)",
    ]
    for i in range(blocks):
        lines += [
            f"  a{i} = step(total)",
            f"  if a{i} > {i} {{",
            f'    log "block {i} is big: {{a{i}}}"',
            "  } else {",
            f"    total = step(a{i})",
            "  }",
        ]
    lines += [
        "  parallel {",
        "    p = step(total)",
        "    q = step(n)",
        "  }",
        "  doubled = parallel for x in [p, q] limit 2 {",
        "    d = step(x)",
        "    yield d",
        "  }",
        "  try {",
        "    save(total)",
        "  } catch timeout as e {",
        '    log "not saved: {e.message}"',
        "  } finally {",
        '    log "done"',
        "  }",
        "  return total + len(doubled)",
        "}",
    ]
    return "\n".join(lines) + "\n"


@needs_dot
def test_a_50_state_workflow_lays_out_without_overlapping_nodes(tmp_path: Path) -> None:
    source = tmp_path / "big.mn"
    source.write_text(big_source(10), "utf-8")
    ir = compiled(source)
    assert len(ir.workflows["big"].states) >= 50
    layout = json.loads(workflow_graph(ir, "big").pipe(format="json"))
    boxes: list[tuple[str, float, float, float, float]] = []
    for obj in layout["objects"]:
        if "pos" not in obj:
            continue  # a cluster
        x, y = (float(v) for v in obj["pos"].split(","))
        w, h = float(obj["width"]) * 72, float(obj["height"]) * 72
        boxes.append((obj["name"], x - w / 2, y - h / 2, x + w / 2, y + h / 2))
    assert len(boxes) >= 50
    for a, b in itertools.combinations(boxes, 2):
        overlap_x = min(a[3], b[3]) - max(a[1], b[1])
        overlap_y = min(a[4], b[4]) - max(a[2], b[2])
        assert overlap_x <= 0.5 or overlap_y <= 0.5, f"{a[0]} overlaps {b[0]}"


@needs_dot
def test_the_refund_svg_labels_every_state() -> None:
    ir = compiled(REFUND)
    svg = render(ir, "refund", "svg").decode("utf-8")
    assert svg.lstrip().startswith("<?xml")
    for sid, state in ir.workflows["refund"].states.items():
        assert f"[{sid}]" in svg
        first_line = summary(state)[:40].replace("&", "&amp;").replace("<", "&lt;")
        assert first_line.replace(">", "&gt;").replace('"', "&quot;") in svg


@needs_dot
def test_png_output() -> None:
    assert render(compiled(REFUND), "refund", "png").startswith(b"\x89PNG")


def test_svg_without_graphviz_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(GraphError) as info:
        render(compiled(REFUND), "refund", "svg")
    assert "`dot`" in info.value.message
    assert "apt-get install graphviz" in info.value.help
    assert render(compiled(REFUND), "refund", "dot").startswith(b"digraph")


def test_nodes_carry_policies_and_edges_conditions() -> None:
    dot = workflow_dot(compiled(REFUND), "refund")
    assert "retry 5x on timeout, transient, backoff 1s" in dot
    assert 'key \\"refund:{order_id}\\" (global)' in dot
    assert "timeout 10s" in dot
    assert "options approve, reject" in dot
    assert "label=then" in dot and "label=else" in dot


def test_frames_are_clusters_and_loops_go_back() -> None:
    ir = compiled(ROOT / "tests" / "golden" / "ir" / "kinds.mn")
    dot = workflow_dot(ir, "kinds")
    assert dot.count("subgraph cluster_") == 5  # map, loop (for), parallel, while, try
    assert 'label="item done"' in dot and "label=again" in dot
    assert "_join" in dot


def test_a_run_overlay_marks_states() -> None:
    ir = compiled(REFUND)
    overlay = RunOverlay(
        run_id="r1",
        workflow="refund",
        states={
            "order": StateRun(status="done", attempts=2),
            "if#2/then/decision": StateRun(status="waiting"),
        },
    )
    plain = workflow_dot(ir, "refund")
    marked = workflow_dot(ir, "refund", overlay)
    assert "done, 2 attempts" in marked and "waiting" in marked
    assert marked.count("penwidth=3") == 2
    assert "penwidth=3" not in plain


def test_format_and_workflow_choice() -> None:
    assert format_of(Path("a.SVG")) == "svg"
    assert format_of(Path("a.gv")) == "dot"
    with pytest.raises(GraphError):
        format_of(Path("a.jpeg"))
    pipeline = compiled(ROOT / "examples" / "pipeline" / "pipeline.mn")
    assert pick_workflow(pipeline, None) == "pipeline"  # the imported child is not a candidate
    assert pick_workflow(pipeline, "cleaning.clean_batch") == "cleaning.clean_batch"
    with pytest.raises(GraphError) as info:
        pick_workflow(pipeline, "nope")
    assert "`pipeline`" in info.value.help
