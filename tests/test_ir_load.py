"""Loading IR files: a valid file loads; a damaged, edited or foreign one is refused with why."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
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
    assert message.startswith("invalid IR at `workflows.refund.states.order.kind`: invalid value")


def test_an_unknown_field_is_refused(tmp_path: Path, refund_ir: IRProgram) -> None:
    data = json.loads(dump_ir(refund_ir))
    data["tools"]["fetch_order"]["colour"] = "blue"
    assert "colour" in refused(write(tmp_path, json.dumps(data))).message


def test_a_missing_file(tmp_path: Path) -> None:
    error = refused(tmp_path / "nope.json")
    assert error.message.startswith("cannot read the IR file")


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("impl", "os:system", "runs code or commands"),
        ("impl", "builtins:eval", "runs code or commands"),
        ("impl", "subprocess:run", "runs code or commands"),
        ("impl", "not an impl", "must be"),
        ("impl_dir", "/etc", "is absolute"),
        ("impl_dir", "../../elsewhere", "climbs out of the program's folder"),
    ],
)
def test_a_crafted_ir_naming_code_execution_is_refused_even_with_a_good_hash(
    tmp_path: Path, refund_ir: IRProgram, field: str, value: str, says: str
) -> None:
    from mnlang.ir.hashing import program_hash

    # The hash is not a signature: whoever edits the file can recompute it.
    name = next(iter(refund_ir.tools))
    tools = {
        **refund_ir.tools,
        name: msgspec.structs.replace(refund_ir.tools[name], **{field: value}),
    }
    crafted = msgspec.structs.replace(refund_ir, tools=tools)
    crafted = msgspec.structs.replace(crafted, hash=program_hash(crafted))
    error = refused(write(tmp_path, dump_ir(crafted)))
    assert says in error.message and "E115" in error.message


def test_the_standard_librarys_tools_may_live_outside_the_program_folder(
    tmp_path: Path,
) -> None:
    source = tmp_path / "get.mn"
    source.write_text(
        "import std.http { http_get }\n\n"
        "workflow main(url: str) -> int {\n"
        "  reply = http_get(url)\n"
        "  return reply.status\n"
        "}\n"
    )
    program, diagnostics = compile_file(source)
    assert program is not None, diagnostics
    assert load_ir(write(tmp_path, dump_ir(program))).hash == program.hash


@pytest.mark.parametrize(
    ("path", "value", "says"),
    [
        (
            ("tools", "fetch_order", "impl"),
            None,
            "`tools.fetch_order`: object missing required field `impl`",
        ),
        (
            ("tools", "fetch_order", "retry", "backoff_ms"),
            "5",
            "`tools.fetch_order.retry.backoff_ms`: expected `int`, got `str`",
        ),
        (
            ("workflows", "refund", "params", 0, "name"),
            5,
            "`workflows.refund.params.0.name`: expected `str`, got `int`",
        ),
    ],
)
def test_a_missing_field_or_a_wrong_type_is_refused_at_its_place(
    tmp_path: Path, refund_ir: IRProgram, path: tuple[str | int, ...], value: object, says: str
) -> None:
    data = json.loads(dump_ir(refund_ir))
    node = data
    for step in path[:-1]:
        node = node[step]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    assert refused(write(tmp_path, json.dumps(data))).message == f"invalid IR at {says}"
