"""IR files: writing them, and loading them back with validation and a hash check.

A loaded file must parse as JSON, validate against the models, have an
`ir_version` this package understands, and hash to the `hash` it states: an
IR edited by hand (or truncated) is refused rather than run.
"""

from __future__ import annotations

import json
import typing
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError

from mnlang.deep import MAX_DEPTH, call_deep
from mnlang.impls import impl_dir_problem, impl_problem
from mnlang.ir.base import IR_VERSION
from mnlang.ir.expr import Expr
from mnlang.ir.hashing import program_hash
from mnlang.ir.model import IRProgram
from mnlang.jsonin import JSONInputError, decode_json, read_regular_file

if TYPE_CHECKING:
    from mnlang.diagnostics import Diagnostic


class IRLoadError(Exception):
    """An IR file that cannot be used; the message says why and what to do."""

    def __init__(self, path: str, message: str, help: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message
        self.help = help


# pydantic-core refuses to nest past 255 levels when it validates or serializes; an
# expression tree deeper than this goes through `_build_deep` and `_jsonable` instead.
_PYDANTIC_SAFE_DEPTH = 200
_MAX_IR_BYTES = 256 * 1024 * 1024
# An expression level is one or two JSON levels (`left`, or `items` and an item).
_MAX_IR_DEPTH = 2 * MAX_DEPTH + 100
_EXPR_NODES = frozenset(typing.get_args(typing.get_args(Expr)[0]))
_EXPR_TAGS = frozenset(cls.model_fields["node"].default for cls in _EXPR_NODES)
_EXPR = TypeAdapter(Expr)


def dump_ir(program: IRProgram) -> str:
    """The IR as JSON text (fields that are null are left out)."""
    try:
        return program.model_dump_json(by_alias=True, exclude_none=True, indent=2) + "\n"
    except PydanticSerializationError:  # deeper than pydantic nests: the same JSON, by hand
        # Compact: `json` indents in Python generators, quadratic in the depth.
        data = call_deep(_jsonable, program)
        return call_deep(json.dumps, data, ensure_ascii=False, separators=(",", ":")) + "\n"


def _jsonable(value: Any) -> Any:
    """What `model_dump(mode="json", by_alias=True, exclude_none=True)` gives, recursively
    in Python (run it under `call_deep`)."""
    if isinstance(value, BaseModel):
        out: dict[str, Any] = {}
        for name, info in type(value).model_fields.items():
            item = getattr(value, name)
            if item is not None:
                out[info.alias or name] = _jsonable(item)
        return out
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    return value


def parse_ir(text: str, path: str = "<ir>") -> IRProgram:
    """Validate IR JSON text and its content hash."""
    return call_deep(_parse_ir, text, path)


def _parse_ir(text: str, path: str) -> IRProgram:
    recompile = "recompile the source with `mnc compile`"
    try:
        data = decode_json(text, "the file", max_bytes=_MAX_IR_BYTES, max_depth=_MAX_IR_DEPTH)
    except JSONInputError as e:
        raise IRLoadError(path, e.detail.removeprefix("is "), recompile) from None
    if not isinstance(data, dict) or "ir_version" not in data:
        raise IRLoadError(path, "not an mnlang IR file (no `ir_version`)", recompile)
    if data["ir_version"] != IR_VERSION:
        raise IRLoadError(
            path,
            f"IR version `{data['ir_version']}` is not supported (this mnc reads `{IR_VERSION}`)",
            recompile + " of this mnc version",
        )
    try:
        if _depth_over(data, _PYDANTIC_SAFE_DEPTH):
            data = _build_deep(data)
        program = IRProgram.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise IRLoadError(
            path,
            f"invalid IR at `{where}`: {first['msg'].lower()} ({e.error_count()} problem(s))",
            recompile,
        ) from None
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


def _depth_over(data: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return False


def _build_deep(data: Any) -> Any:
    """`data` with every expression node validated bottom-up into its model, so that the
    program's own validation meets built nodes (pydantic takes them as they are) and never
    nests deeper than a statement. Iterative: the tree may be 20,000 levels deep."""
    root: list[Any] = [data]
    # (container, key): visit children first, then build the node in place.
    stack: list[tuple[Any, Any, bool]] = [(root, 0, False)]
    while stack:
        holder, key, children_done = stack.pop()
        value = holder[key]
        if not children_done and isinstance(value, dict | list):
            stack.append((holder, key, True))
            keys = value.keys() if isinstance(value, dict) else range(len(value))
            stack.extend((value, k, False) for k in keys)
        elif isinstance(value, dict) and value.get("node") in _EXPR_TAGS:
            holder[key] = _EXPR.validate_python(value)
    return root[0]


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
