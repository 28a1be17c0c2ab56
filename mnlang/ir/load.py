"""IR files: writing them, and loading them back with validation and a hash check.

A loaded file must parse as JSON, validate against the models, have an
`ir_version` this package understands, and hash to the `hash` it states: an
IR edited by hand (or truncated) is refused rather than run.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from mnlang.deep import MAX_DEPTH, call_deep
from mnlang.impls import impl_dir_problem, impl_problem
from mnlang.ir.base import IR_VERSION, IRModel, encoded_fields, tag_of
from mnlang.ir.hashing import program_hash
from mnlang.ir.model import IRProgram
from mnlang.jsonin import JSONInputError, decode_json, nesting, read_regular_file

if TYPE_CHECKING:
    from mnlang.diagnostics import Diagnostic


class IRLoadError(Exception):
    """An IR file that cannot be used; the message says why and what to do."""

    def __init__(self, path: str, message: str, help: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message
        self.help = help


_MAX_IR_BYTES = 256 * 1024 * 1024
# An expression level is one or two JSON levels (`left`, or `items` and an item).
_MAX_IR_DEPTH = 2 * MAX_DEPTH + 100
# IR files nesting deeper than this are written compact, as the pydantic models (which
# could not indent them) wrote them: the same program keeps the same file.
_INDENTED_DEPTH = 258
# Python writes a float of 1e16 or more as `1e+16`, msgspec as `1e16`; IR files have the
# former (pydantic's), smaller floats are written alike.
_LARGE_FLOAT = 1e16
_WHERE = re.compile(r" - at `\$(.*)`$")


def dump_ir(program: IRProgram) -> str:
    """The IR as JSON text (fields that are null are left out)."""
    try:
        data = _jsonable(program)
    except RecursionError:
        data = call_deep(_jsonable, program)
    if _depth_over(data, _INDENTED_DEPTH):
        # Compact: `json` indents in Python generators, quadratic in the depth.
        return call_deep(json.dumps, data, ensure_ascii=False, separators=(",", ":")) + "\n"
    return msgspec.json.format(msgspec.json.encode(data), indent=2).decode("utf-8") + "\n"


def _jsonable(value: Any) -> Any:
    """The JSON value of an IR node: the tag first, then the fields that are not None, by
    their JSON names (run it under `call_deep` for a deep tree)."""
    if isinstance(value, IRModel):
        out: dict[str, Any] = {}
        tag = tag_of(value)
        if tag is not None:
            out[tag[0]] = tag[1]
        for name, key, _ in encoded_fields(type(value)):
            item = getattr(value, name)
            if item is not None:
                out[key] = _jsonable(item)
        return out
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float) and math.isfinite(value) and abs(value) >= _LARGE_FLOAT:
        return msgspec.Raw(repr(value).encode("ascii"))
    return value


def ir_schema() -> dict[str, Any]:
    """The JSON Schema of an IR file (`mnc compile --schema`): `IRProgram` at the top, the
    other models under `$defs`; a field that is left out of the content hash while null
    has `"hash_omits_none": true`."""
    schema = msgspec.json.schema(IRProgram)
    defs = schema["$defs"]
    return {**defs.pop("IRProgram"), "$defs": defs}


def parse_ir(text: str, path: str = "<ir>") -> IRProgram:
    """Validate IR JSON text and its content hash."""
    return call_deep(_parse_ir, text, path)


def _parse_ir(text: str, path: str) -> IRProgram:
    recompile = "recompile the source with `mnc compile`"
    program: IRProgram | None = None
    error: Exception | None = None
    if len(text) <= _MAX_IR_BYTES and nesting(text) <= _MAX_IR_DEPTH:
        try:
            program = msgspec.json.decode(text, type=IRProgram)
        except (msgspec.DecodeError, RecursionError) as e:  # ValidationError: a DecodeError
            error = e
    if program is None or program.ir_version != IR_VERSION or '"ir_version"' not in text:
        # Why, in the words of every JSON input (E096): not JSON, too deep, ...; then
        # whether it is an IR file of this version; then what msgspec refused.
        try:
            data = decode_json(text, "the file", max_bytes=_MAX_IR_BYTES, max_depth=_MAX_IR_DEPTH)
        except JSONInputError as e:
            raise IRLoadError(path, e.detail.removeprefix("is "), recompile) from None
        if not isinstance(data, dict) or "ir_version" not in data:
            raise IRLoadError(path, "not an mnlang IR file (no `ir_version`)", recompile)
        if data["ir_version"] != IR_VERSION:
            raise IRLoadError(
                path,
                f"IR version `{data['ir_version']}` is not supported "
                f"(this mnc reads `{IR_VERSION}`)",
                recompile + " of this mnc version",
            )
        if program is None:
            raise IRLoadError(path, _invalid(error, data), recompile)
    for call in [*program.tools.values(), *program.effects.values()]:
        problem = impl_problem(call.impl) or impl_dir_problem(call.impl_dir, call.impl)
        if problem is not None:
            raise IRLoadError(
                path,
                f"{call.name}: {problem} (E115)",
                "a compiled program names only what `mnc check` accepts; " + recompile,
            )
    actual = program_hash(program)
    if program.hash != actual:
        raise IRLoadError(
            path,
            f"content hash mismatch: the file says `{program.hash[:12]}`, "
            f"its content hashes to `{actual[:12]}`",
            "the file was edited or damaged after compiling; " + recompile,
        )
    return program


def _invalid(error: Exception | None, data: dict[str, Any]) -> str:
    """`invalid IR at `workflows.w.states.s.retry.attempts`: expected `int`, got `str``:
    msgspec's first problem, at a dotted path of keys and list indexes."""
    if error is None or isinstance(error, RecursionError):
        return "invalid IR: it nests deeper than this mnc reads"
    message = str(error)
    m = _WHERE.search(message)
    what = message[: m.start()] if m is not None else message
    what = what[:1].lower() + what[1:]
    if m is None:
        return f"invalid IR: {what}"
    where = ".".join(str(p) for p in _path(_SEGMENT.findall(m[1]), data, message))
    return f"invalid IR at `{where}`: {what}"


_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")


def _path(segments: list[tuple[str, str]], data: dict[str, Any], message: str) -> list[Any]:
    """msgspec's path with the map keys it writes as `[...]` found: the key whose entry,
    kept alone in its map, gives the same error."""
    path: list[Any] = []
    node: Any = data
    for name, index in segments:
        if name:
            step: Any = name
        elif index != "...":
            step = int(index)
        else:
            step = next(
                (
                    key
                    for key in node
                    if _error_of(_replaced(data, path, {key: node[key]})) == message
                ),
                "...",
            )
        path.append(step)
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            break
    return path


def _error_of(data: Any) -> str | None:
    try:
        msgspec.json.decode(msgspec.json.encode(data), type=IRProgram)
    except msgspec.DecodeError as e:
        return str(e)
    return None


def _replaced(data: Any, path: list[Any], value: Any) -> Any:
    """`data` with the value at `path` replaced (copies along the path only)."""
    if not path:
        return value
    copy = dict(data) if isinstance(data, dict) else list(data)
    copy[path[0]] = _replaced(data[path[0]], path[1:], value)
    return copy


def _depth_over(data: Any, limit: int) -> bool:
    """Whether objects and arrays nest more than `limit` levels in `data` (without recursion)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        values = item.values() if isinstance(item, dict) else item
        stack.extend((v, depth + 1) for v in values if isinstance(v, dict | list))
    return False


def load_ir(path: Path | str) -> IRProgram:
    """Read and validate an IR file (a regular file: a FIFO is refused, not waited on)."""
    p = Path(path)
    try:
        data = read_regular_file(p, _MAX_IR_BYTES)
    except OSError as e:
        reason = e.strerror or str(e)
        raise IRLoadError(
            str(p), f"cannot read the IR file: {reason.lower()}", "check the path"
        ) from None
    except JSONInputError as e:
        raise IRLoadError(
            str(p), e.detail.removeprefix("is "), "give the path of a compiled IR file"
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise IRLoadError(
            str(p), "cannot read the IR file: cannot read it as UTF-8", "check the path"
        ) from None
    return parse_ir(text, str(p))


def load_or_compile(path: Path | str) -> tuple[IRProgram | None, list[Diagnostic]]:
    """An IR file (`.json`, validated) or a `.mn` source (checked and compiled): running
    a compiled IR file loads neither the parser nor the checker.

    Raises `IRLoadError` for an IR file that cannot be used.
    """
    if Path(path).suffix.lower() == ".json":
        return load_ir(path), []
    from mnlang.ir.compile import compile_file

    return compile_file(path)
