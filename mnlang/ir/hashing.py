"""The content hash: sha256 of the canonical JSON of a program's meaning.

The canonical form drops every span, the program's `source` (machine paths,
tool module hashes), its scenarios (tests of the program, not part of it) and
the hash itself, so moving, reformatting or re-commenting a file, or adding a
test, keeps its hash; any change to what runs changes it.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any

from mnlang.ir.base import IRModel, SpanIR, encoded_fields, tag_of
from mnlang.ir.model import IRProgram

_PROGRAM_EXCLUDE = frozenset({"hash", "source", "scenarios"})


def canonical(value: Any, exclude: frozenset[str] = frozenset()) -> Any:
    """A JSON-ready value without spans; `exclude` names top-level fields to drop."""
    if isinstance(value, SpanIR):
        return None
    if isinstance(value, IRModel):
        out: dict[str, Any] = {}
        tag = tag_of(value)
        if tag is not None:
            out[tag[0]] = tag[1]
        for name, key, hash_omits_none in encoded_fields(type(value)):
            if key in exclude:
                continue
            item = getattr(value, name)
            if isinstance(item, SpanIR):
                continue
            if item is None and hash_omits_none:
                continue
            out[key] = canonical(item)
        return out
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)  # as the IR file writes money
    return value


def canonical_json(value: Any, exclude: frozenset[str] = frozenset()) -> str:
    return json.dumps(
        canonical(value, exclude), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def digest(value: Any, exclude: frozenset[str] = frozenset()) -> str:
    return hashlib.sha256(canonical_json(value, exclude).encode("utf-8")).hexdigest()


def program_hash(program: IRProgram) -> str:
    """The content hash of a program, as stored in `IRProgram.hash`."""
    return digest(program, _PROGRAM_EXCLUDE)
