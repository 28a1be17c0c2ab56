"""The IR's JSON and content hash stay the same across changes of the models' library.

Every program the repository has (each `examples/*/*.mn`, `tests/golden/ir/kinds.mn`, every
checked ```` ```mn ```` block of `docs/*.md` and every `tests/cases` program that compiles)
and deep programs on both sides of the depth where the pydantic version wrote compact JSON,
is compiled; its IR file text (`dump_ir`, with the machine's source folder replaced by
`<DIR>`, the repository's by `<ROOT>`, tool modules' sha256 by `<SHA>`; a program using
the standard library's tools, whose IR names their folder relative to its own, is left
out) and its content hash must equal the ones
recorded in `tests/golden/ir_json/fingerprints.json` under a key that ends with the sha256
of the program's source text (so a program edited since, or a new one, is simply not
compared; at least 120 must be), and the IR files of the refund example and of
`kinds.mn` (every state kind) the full texts in `tests/golden/ir_json/<name>.json`. The records were written by the pydantic models the IR
had before msgspec; loading each file back must give the same text again.

Regenerate after an intended format change (a new IR version) with
`MNC_REGEN_GOLDEN=1 pytest tests/test_ir_format.py` and review the diff.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from mnlang.deep import call_deep
from mnlang.ir.compile import compile_file
from mnlang.ir.load import dump_ir, parse_ir
from tests.test_cases import case_entries
from tests.test_docs import _write, checked_blocks

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "ir_json"
FINGERPRINTS = GOLDEN / "fingerprints.json"
EXAMPLES = [*sorted(ROOT.glob("examples/*/*.mn")), ROOT / "tests" / "golden" / "ir" / "kinds.mn"]
FULL = [ROOT / "examples" / "refund" / "refund.mn", ROOT / "tests" / "golden" / "ir" / "kinds.mn"]
# The pydantic version wrote a program nesting deeper than 258 JSON levels compact (it
# could not indent it): 252/253 `-` signs, 126/127 list levels, a 253/254-term sum.
DEEP = {
    **{f"minus{n}": "x = " + "-" * n + "1" for n in (252, 253, 600)},
    **{f"lists{n}": "x = " + "[" * n + "1" + "]" * n for n in (126, 127, 600)},
    **{f"chain{n}": "x = " + " + ".join(["1"] * n) for n in (253, 254, 3000)},
}
REGEN = os.environ.get("MNC_REGEN_GOLDEN") == "1"


_SHA = re.compile(r'"sha256": "[0-9a-f]{64}"')


def ir_text(path: Path) -> tuple[str, str, str] | None:
    """(IR file text with the source folder as `<DIR>` and tool modules' sha256 as `<SHA>`,
    the text as written, the hash), or None when the program does not compile."""
    ir, _ = call_deep(compile_file, path)
    if ir is None:
        return None
    text = call_deep(dump_ir, ir)
    normal = text.replace(json.dumps(ir.source.dir)[1:-1], "<DIR>")
    normal = _SHA.sub('"sha256": "<SHA>"', normal.replace(str(ROOT), "<ROOT>"))
    return normal, text, ir.hash


def source_key(name: str, path: Path) -> str:
    """`name#` and the sha256 of the program's `.mn` files (its folder's, for a case folder
    or a docs block written beside the page's other files)."""
    files = sorted(path.parent.glob("**/*.mn")) if path.name == "main.mn" else [path]
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.read_bytes())
    return f"{name}#{digest.hexdigest()[:16]}"


def programs(tmp: Path) -> Iterator[tuple[str, Path]]:
    for path in EXAMPLES:
        yield f"examples/{path.stem}", path
    for block in checked_blocks():
        if block.tag == "mn":
            folder = tmp / f"{block.doc.stem}-{block.line}"
            folder.mkdir()
            yield f"docs/{block.doc.name}", _write(block, folder)
    for name, line in DEEP.items():
        path = tmp / f"{name}.mn"
        path.write_text(f"workflow main() -> int {{\n  {line}\n  return 1\n}}\n", "utf-8")
        yield f"deep/{name}", path
    for entry in case_entries():
        yield f"cases/{entry.relative_to(ROOT / 'tests' / 'cases')}", entry


def fingerprints(tmp: Path) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for name, path in programs(tmp):
        compiled = ir_text(path)
        if compiled is None:
            continue
        normal, text, content_hash = compiled
        if '"../' in text:
            continue  # the standard library's tools, named by a path that depends on the machine
        assert call_deep(dump_ir, parse_ir(text, name)) == text, (
            f"{name}: loading changes the IR file"
        )
        found[source_key(name, path)] = {
            "hash": content_hash,
            "json_sha256": hashlib.sha256(normal.encode("utf-8")).hexdigest(),
        }
    return found


def test_every_program_keeps_its_ir_file_and_hash(tmp_path: Path) -> None:
    found = fingerprints(tmp_path)
    if REGEN:
        FINGERPRINTS.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n", "utf-8")
        return
    expected = json.loads(FINGERPRINTS.read_text("utf-8"))
    compared = found.keys() & expected.keys()
    assert len(compared) >= 120, f"only {len(compared)} recorded programs are left: regenerate"
    changed = sorted(name for name in compared if found[name] != expected[name])
    assert not changed, f"IR file or hash changed for {len(changed)} program(s): {changed[:10]}"


@pytest.mark.parametrize("source", FULL, ids=lambda p: p.stem)
def test_example_ir_file_is_unchanged(source: Path) -> None:
    compiled = ir_text(source)
    assert compiled is not None
    golden = GOLDEN / f"{source.stem}.json"
    if REGEN:
        golden.write_text(compiled[0], "utf-8")
        return
    assert compiled[0] == golden.read_text("utf-8")
