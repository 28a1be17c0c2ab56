"""`mnc compile`, `mnc graph` and `mnc diff` from the command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from mnlang.cli import main
from mnlang.ir.load import load_ir

ROOT = Path(__file__).resolve().parent.parent
REFUND = str(ROOT / "examples" / "refund" / "refund.mn")
KINDS = str(ROOT / "tests" / "golden" / "ir" / "kinds.mn")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_compile_to_stdout_and_to_a_file(tmp_path: Path) -> None:
    code, out, _ = run("compile", REFUND)
    assert code == 0
    data = json.loads(out)
    assert data["ir_version"] == "1" and list(data["workflows"]) == ["refund"]
    target = tmp_path / "refund.json"
    assert run("compile", REFUND, "-o", str(target))[0] == 0
    assert load_ir(target).hash == data["hash"]


def test_compile_one_workflow_keeps_its_children(tmp_path: Path) -> None:
    code, out, _ = run("compile", KINDS, "--workflow", "helper")
    assert code == 0 and list(json.loads(out)["workflows"]) == ["helper"]
    code, out, _ = run("compile", KINDS, "-w", "kinds")
    assert code == 0 and set(json.loads(out)["workflows"]) == {"kinds", "helper"}
    code, _, err = run("compile", KINDS, "-w", "nope")
    assert code == 2 and "no workflow `nope`" in err


def test_compile_refuses_a_file_with_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.mn"
    broken.write_text("workflow w() -> int {\n  return missing\n}\n", "utf-8")
    code, out, err = run("compile", str(broken))
    assert (code, out) == (1, "")
    assert "error[E101]" in err


def test_compile_schema() -> None:
    code, out, _ = run("compile", "--schema")
    assert code == 0
    schema = json.loads(out)
    assert schema["title"] == "IRProgram" and "WorkflowIR" in schema["$defs"]
    assert run("compile")[0] == 2


def test_graph_dot_to_stdout_and_files(tmp_path: Path) -> None:
    code, out, _ = run("graph", REFUND)
    assert code == 0 and out.startswith("digraph refund {")
    target = tmp_path / "refund.dot"
    assert run("graph", REFUND, "-o", str(target))[0] == 0
    assert target.read_text("utf-8") == out


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` not installed")
def test_graph_svg_from_a_compiled_file(tmp_path: Path) -> None:
    ir_file = tmp_path / "refund.json"
    run("compile", REFUND, "-o", str(ir_file))
    svg = tmp_path / "refund.svg"
    assert run("graph", str(ir_file), "-o", str(svg))[0] == 0
    assert "[receipt]" in svg.read_text("utf-8")


def test_graph_usage_errors(tmp_path: Path) -> None:
    code, _, err = run("graph", KINDS)
    assert code == 2 and "declares 2 workflows" in err and "--workflow" in err
    code, _, err = run("graph", REFUND, "-o", str(tmp_path / "x.jpg"))
    assert code == 2 and "cannot tell the graph format" in err


def test_graph_without_graphviz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    code, _, err = run("graph", REFUND, "-o", str(tmp_path / "r.svg"))
    assert code == 1 and "apt-get install graphviz" in err


def test_diff_text_and_json(tmp_path: Path) -> None:
    new = tmp_path / "refund.mn"
    new.write_text(Path(REFUND).read_text("utf-8").replace("timeout: 24h", "timeout: 2d"), "utf-8")
    code, out, _ = run("diff", REFUND, str(new))
    assert code == 0
    assert "~ if#2/then/decision (checkpoint): timeout_ms" in out
    code, out, _ = run("diff", REFUND, str(new), "--json")
    assert code == 0
    (wf,) = json.loads(out)["workflows"]
    blocked = [v["state"] for v in wf["resume"] if not v["safe"]]
    assert blocked == ["if#2/then/decision"]


def test_diff_refuses_a_tampered_ir_file(tmp_path: Path) -> None:
    ir_file = tmp_path / "refund.json"
    run("compile", REFUND, "-o", str(ir_file))
    data = json.loads(ir_file.read_text("utf-8"))
    data["workflows"]["refund"]["options"]["deadline_ms"] = 1
    ir_file.write_text(json.dumps(data), "utf-8")
    code, out, err = run("diff", REFUND, str(ir_file))
    assert (code, out) == (1, "")
    assert "error[E095]: content hash mismatch" in err
