"""Fuzzing the front end: whatever the text, `check` returns diagnostics and never raises,
and our LALR driver accepts exactly what Lark's parser accepts, building the same AST.

Inputs are arbitrary text and mutations of real sources (examples, stdlib and the case
files): tokens deleted, duplicated, swapped or inserted. About 10 seconds by default;
`MNC_FUZZ_EXAMPLES=5000` runs longer.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_parser import assert_same_as_lark, corpus

from mnlang.checker import check
from mnlang.diagnostics import Diagnostic
from mnlang.errorcodes import CODES

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = int(os.environ.get("MNC_FUZZ_EXAMPLES", "800"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SOURCES = [(path, path.read_text("utf-8")) for path in corpus()]
# Words, strings, numbers, operators and runs of blanks, so that joining them gives back
# the text.
_LEXEME = re.compile(r'\s+|"(?:[^"\\\n]|\\.)*"|[A-Za-z_][A-Za-z0-9_]*|[0-9]+|\S')
VOCABULARY = sorted({m.group() for _, text in SOURCES for m in _LEXEME.finditer(text)})
ALPHABET = st.sampled_from([*'{}()[],:.="\n\t #$@?<>!-+*/%\\_ab0129AZ', "\u00e9", "\u65e5"])


def lexemes(text: str) -> list[str]:
    return [m.group() for m in _LEXEME.finditer(text)]


@st.composite
def mutated_sources(draw: st.DrawFn) -> tuple[Path, str]:
    path, text = draw(st.sampled_from(SOURCES))
    parts = lexemes(text)
    for _ in range(draw(st.integers(1, 4))):
        if not parts:
            break
        i = draw(st.integers(0, len(parts) - 1))
        action = draw(st.sampled_from(["delete", "duplicate", "swap", "insert"]))
        if action == "delete":
            del parts[i]
        elif action == "duplicate":
            parts.insert(i, parts[i])
        elif action == "swap":
            j = draw(st.integers(0, len(parts) - 1))
            parts[i], parts[j] = parts[j], parts[i]
        else:
            parts.insert(i, draw(st.sampled_from(VOCABULARY)))
    return path, "".join(parts)


def assert_only_diagnostics(path: Path, text: str) -> None:
    result = check(path, text=text)
    for d in result.diagnostics:
        assert isinstance(d, Diagnostic) and d.code in CODES
        assert d.message and d.message == d.message.strip()
        if d.span is not None:
            assert d.span.line >= 1 and d.span.col >= 1


@FUZZ
@given(st.text(ALPHABET, max_size=300) | st.text(max_size=200))
def test_arbitrary_text_gives_diagnostics(text: str) -> None:
    assert_only_diagnostics(ROOT / "fuzz.mn", text)


@FUZZ
@given(mutated_sources())
def test_mutated_sources_give_diagnostics(source: tuple[Path, str]) -> None:
    path, text = source
    assert_only_diagnostics(path, text)


@FUZZ
@given(mutated_sources())
def test_driver_agrees_with_lark_on_mutated_sources(source: tuple[Path, str]) -> None:
    assert_same_as_lark(source[1])


def test_the_mutations_reach_the_checker() -> None:
    """Most single mutations still parse, so the fuzzing above exercises the checker too."""
    path, text = next((p, t) for p, t in SOURCES if p.name == "refund.mn")
    parts = lexemes(text)
    assert "".join(parts) == text
    parsed = 0
    for i in range(0, len(parts), 7):
        mutated = "".join(parts[:i] + parts[i + 1 :])
        result = check(path, text=mutated)
        parsed += result.program is not None
    assert parsed > 0
