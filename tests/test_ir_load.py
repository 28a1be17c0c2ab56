"""Loading IR files: a valid file loads; a damaged, edited or foreign one is refused with why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mnlang.ir.compile import compile_file
from mnlang.ir.load import IRLoadError, dump_ir, load_ir
from mnlang.ir.model import IRProgram

REFUND = Path(__file__).resolve().parent.parent / "examples" / "refund" / "refund.mn"


@pytest.fixture(scope="module")
def refund_ir() -> IRProgram:
    ir, _ = compile_file(REFUND)
    assert ir is not None
    return ir


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "refund.json"
    path.write_text(text, "utf-8")
    return path


def refused(path: Path) -> IRLoadError:
    with pytest.raises(IRLoadError) as info:
        load_ir(path)
    return info.value


def test_a_compiled_file_loads(tmp_path: Path, refund_ir: IRProgram) -> None:
    assert load_ir(write(tmp_path, dump_ir(refund_ir))) == refund_ir


def test_an_edited_file_is_refused_by_its_hash(tmp_path: Path, refund_ir: IRProgram) -> None:
    data = json.loads(dump_ir(refund_ir))
    data["effects"]["refund_payment"]["retry"]["attempts"] = 50
    error = refused(write(tmp_path, json.dumps(data)))
    assert "content hash mismatch" in error.message
    assert refund_ir.hash[:12] in error.message
    assert "mnc compile" in error.help


def test_spans_and_source_may_change_without_breaking_the_hash(
    tmp_path: Path, refund_ir: IRProgram
) -> None:
    data = json.loads(dump_ir(refund_ir))
    data["source"]["dir"] = "/somewhere/else"
    data["workflows"]["refund"]["states"]["order"]["span"]["line"] = 999
    assert load_ir(write(tmp_path, json.dumps(data))).hash == refund_ir.hash


def test_not_json(tmp_path: Path, refund_ir: IRProgram) -> None:
    error = refused(write(tmp_path, dump_ir(refund_ir)[:-40]))
    assert error.message.startswith("not JSON: ")


def test_not_an_ir_file(tmp_path: Path) -> None:
    assert "no `ir_version`" in refused(write(tmp_path, '{"hello": 1}')).message


def test_another_ir_version(tmp_path: Path, refund_ir: IRProgram) -> None:
    data = json.loads(dump_ir(refund_ir))
    data["ir_version"] = "0"
    assert "IR version `0` is not supported" in refused(write(tmp_path, json.dumps(data))).message


def test_a_schema_violation_names_the_place(tmp_path: Path, refund_ir: IRProgram) -> None:
    data = json.loads(dump_ir(refund_ir))
    data["workflows"]["refund"]["states"]["order"]["kind"] = "teleport"
    message = refused(write(tmp_path, json.dumps(data))).message
    assert message.startswith("invalid IR at `workflows.refund.states.order`")


def test_an_unknown_field_is_refused(tmp_path: Path, refund_ir: IRProgram) -> None:
    data = json.loads(dump_ir(refund_ir))
    data["tools"]["fetch_order"]["colour"] = "blue"
    assert "colour" in refused(write(tmp_path, json.dumps(data))).message


def test_a_missing_file(tmp_path: Path) -> None:
    error = refused(tmp_path / "nope.json")
    assert error.message.startswith("cannot read the IR file")
