"""IR files: writing them, and loading them back with validation and a hash check.

A loaded file must parse as JSON, validate against the models, have an
`ir_version` this package understands, and hash to the `hash` it states: an
IR edited by hand (or truncated) is refused rather than run.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from mnlang.ir.base import IR_VERSION
from mnlang.ir.hashing import program_hash
from mnlang.ir.model import IRProgram


class IRLoadError(Exception):
    """An IR file that cannot be used; the message says why and what to do."""

    def __init__(self, path: str, message: str, help: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message
        self.help = help


def dump_ir(program: IRProgram) -> str:
    """The IR as JSON text (fields that are null are left out)."""
    return program.model_dump_json(by_alias=True, exclude_none=True, indent=2) + "\n"


def parse_ir(text: str, path: str = "<ir>") -> IRProgram:
    """Validate IR JSON text and its content hash."""
    recompile = "recompile the source with `mnc compile`"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise IRLoadError(
            path, f"not JSON (line {e.lineno}, column {e.colno}: {e.msg.lower()})", recompile
        ) from None
    if not isinstance(data, dict) or "ir_version" not in data:
        raise IRLoadError(path, "not an mnlang IR file (no `ir_version`)", recompile)
    if data["ir_version"] != IR_VERSION:
        raise IRLoadError(
            path,
            f"IR version `{data['ir_version']}` is not supported (this mnc reads `{IR_VERSION}`)",
            recompile + " of this mnc version",
        )
    try:
        program = IRProgram.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise IRLoadError(
            path,
            f"invalid IR at `{where}`: {first['msg'].lower()} ({e.error_count()} problem(s))",
            recompile,
        ) from None
    actual = program_hash(program)
    if program.hash != actual:
        raise IRLoadError(
            path,
            f"content hash mismatch: the file says `{program.hash[:12]}`, "
            f"its content hashes to `{actual[:12]}`",
            "the file was edited or damaged after compiling; " + recompile,
        )
    return program


def load_ir(path: Path | str) -> IRProgram:
    """Read and validate an IR file."""
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else "cannot read it as UTF-8"
        raise IRLoadError(
            str(p), f"cannot read the IR file: {reason.lower()}", "check the path"
        ) from None
    return parse_ir(text, str(p))
