"""Data-driven checker tests (mypy style).

Each `tests/cases/*.mn` file, and each `tests/cases/<dir>/main.mn` with its
sibling modules, is checked; expected diagnostics stand on the offending line
as comments: `# E: E301` or `# W: W101`, several codes separated by spaces,
optionally with a column: `# E: E301@12`. The diagnostics found must be
exactly the ones expected. A header line `# ok: E301 E302` says that the file
exercises those rules without breaking them (a passing case).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mnlang.checker import check
from mnlang.errorcodes import CODES

CASES = Path(__file__).parent / "cases"
_EXPECT = re.compile(r"#\s*([EW]):\s*((?:[EW]\d{3}(?:@\d+)?\s*)+)")
_OK = re.compile(r"^#\s*ok:\s*((?:[EW]\d{3}\s*)+)$", re.M)
# Codes about reading files are tested in test_sources.py (E094: test_prices.py, E095:
# test_ir_load.py; E096: test_hostile_input.py; E125-E128, about tools' Python modules:
# test_check_impls.py; E254, about the providers installed: test_provider_plugins.py), not
# by case files.
_NOT_IN_CASES = {
    *("E090", "E091", "E092", "E093", "E094", "E095", "E096"),
    *("E125", "E126", "E127", "E128"),
    "E254",
}


def case_entries() -> list[Path]:
    entries = sorted(CASES.glob("*.mn"))
    entries += sorted(p for p in CASES.glob("*/main.mn"))
    return entries


def expectations(entry: Path) -> set[tuple[str, int, str, int | None]]:
    files = [entry] if entry.parent == CASES else sorted(entry.parent.glob("**/*.mn"))
    expected: set[tuple[str, int, str, int | None]] = set()
    for f in files:
        for lineno, line in enumerate(f.read_text("utf-8").splitlines(), 1):
            for m in _EXPECT.finditer(line):
                for item in m.group(2).split():
                    code, _, col = item.partition("@")
                    expected.add((str(f.resolve()), lineno, code, int(col) if col else None))
    return expected


@pytest.mark.parametrize("entry", case_entries(), ids=lambda p: str(p.relative_to(CASES)))
def test_case(entry: Path) -> None:
    expected = expectations(entry)
    result = check(entry)
    found: set[tuple[str, int, str, int | None]] = set()
    messages: list[str] = []
    wants_col = {(f, ln, c) for f, ln, c, col in expected if col is not None}
    for d in result.diagnostics:
        assert d.span is not None, f"{d.code} {d.message} has no span"
        file = str(Path(d.span.file).resolve())
        col = d.span.col if (file, d.span.line, d.code) in wants_col else None
        found.add((file, d.span.line, d.code, col))
        messages.append(f"{Path(file).name}:{d.span.line}:{d.span.col} {d.code} {d.message}")
    missing = sorted(expected - found, key=str)
    extra = sorted(found - expected, key=str)
    assert not missing and not extra, (
        f"missing: {missing}\nunexpected: {extra}\nall found:\n" + "\n".join(messages)
    )


def test_every_code_has_a_failing_and_a_passing_case() -> None:
    failing: set[str] = set()
    passing: set[str] = set()
    for entry in case_entries():
        failing |= {code for _, _, code, _ in expectations(entry)}
        files = [entry] if entry.parent == CASES else entry.parent.glob("**/*.mn")
        for f in files:
            for m in _OK.finditer(f.read_text("utf-8")):
                passing |= set(m.group(1).split())
    wanted = set(CODES) - _NOT_IN_CASES
    assert not sorted(wanted - failing), f"codes with no failing case: {sorted(wanted - failing)}"
    assert not sorted(wanted - passing), f"codes with no passing case: {sorted(wanted - passing)}"


def test_at_least_80_cases() -> None:
    assert len(case_entries()) >= 80
