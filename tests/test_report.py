"""Rendering diagnostics: golden files of the full output, and the concise, JSON and
summary forms. Regenerate the goldens with `MNC_REGEN_GOLDEN=1 pytest tests/test_report.py`."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from mnlang import api, report
from mnlang.diagnostics import Diagnostic, Label
from mnlang.report import Located, Sources
from mnlang.span import Span

GOLDEN = Path(__file__).parent / "golden" / "render"
REGEN = os.environ.get("MNC_REGEN_GOLDEN") == "1"


def assert_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if REGEN:
        path.write_text(actual, "utf-8")
    assert path.exists(), f"missing golden {path}: run with MNC_REGEN_GOLDEN=1"
    assert actual == path.read_text("utf-8")


def rendered(paths: list[str], fmt: report.Format = "full") -> str:
    result = api.check_files([GOLDEN / p for p in paths])
    lines = report.render(result.items, result.sources, fmt, cwd=GOLDEN)
    return report.plain(lines)


@pytest.mark.parametrize("name", ["syntax", "checker", "durability", "empty"])
def test_full_rendering_of_checked_files(name: str) -> None:
    assert_golden(f"{name}.txt", rendered([f"{name}.mn"]))


def test_the_goldens_cover_at_least_six_diagnostics() -> None:
    result = api.check_files([GOLDEN / f"{n}.mn" for n in ("syntax", "checker", "durability")])
    codes = {i.diagnostic.code for i in result.items}
    assert len(result.items) >= 6
    assert {"E010", "E011", "E012", "E013"} <= codes  # syntax
    assert codes - {c for c in codes if c < "E100"}  # and the checker's


# ---- synthetic diagnostics: every layout case, independent of the checker ------------

SOURCE = (
    "workflow w(order_id: str) -> Receipt {\n"  # 1
    "\tx = fetch(order_id)\n"  # 2: a tab
    '  y = "prix: 3€ — 日本"  + x\n'  # 3: wide characters
    "  z = compute(\n"  # 4
    "    x, y)\n"  # 5
    "  return z\n"  # 6
    "}"  # 7: no final newline
)
OTHER = 'tool fetch(id: str) -> Receipt {\n  impl: "tools:fetch"\n}\n'


def span(line: int, col: int, end_line: int, end_col: int, file: str = "/src/w.mn") -> Span:
    return Span(file, line, col, end_line, end_col)


def synthetic() -> tuple[list[Located], Sources]:
    long_line = "x" * 300 + " here " + "y" * 300
    sources = Sources({"/src/w.mn": SOURCE, "/src/tools.mn": OTHER, "/src/long.mn": long_line})
    diags = [
        Diagnostic(
            "E201",
            "type mismatch: expected `str`, found `int`",
            span(3, 7, 3, 23),
            labels=[
                Label(span(3, 26, 3, 27), "this is `Receipt`"),
                Label(span(2, 2, 2, 3), "`x` is assigned here"),
            ],
            notes=["strings and numbers do not mix"],
            help="convert with `str(x)`",
        ),
        Diagnostic(
            "E202",
            "`fetch` takes 1 argument but 2 were given",
            span(4, 7, 5, 10),
            labels=[Label(span(1, 6, 1, 11, "/src/tools.mn"), "`fetch` is declared here")],
        ),
        Diagnostic("W101", "`z` is unused", span(6, 10, 6, 11)),
        Diagnostic("E013", "unclosed `{`", span(7, 2, 7, 2)),
        Diagnostic("E010", "expected `:`", span(1, 307, 1, 311, "/src/long.mn")),
        Diagnostic("E090", "file not found: `gone.mn`", None, help="check the path"),
    ]
    items = [Located(d, "gone.mn" if d.span is None else d.span.file) for d in diags]
    return items, sources


def test_full_rendering_layouts() -> None:
    items, sources = synthetic()
    text = report.plain(report.render(items, sources, "full", cwd=Path("/src")))
    assert_golden("layouts.txt", text)


def test_full_rendering_details() -> None:
    items, sources = synthetic()
    lines = report.plain(report.render(items[:1], sources, cwd=Path("/src"))).splitlines()
    # The tab is shown as four spaces and the carets stay under the string, whose wide
    # characters take two columns each.
    assert lines[3] == "2 |     x = fetch(order_id)"
    assert lines[4] == "  |     - `x` is assigned here"
    assert lines[5] == '3 |   y = "prix: 3€ — 日本"  + x'
    assert lines[6] == "  |       " + "^" * 18


def test_concise() -> None:
    items, _ = synthetic()
    lines = report.plain(report.render(items, Sources(), "concise", cwd=Path("/src")))
    assert lines.splitlines() == [
        "w.mn:3:7: error[E201] type mismatch: expected `str`, found `int`",
        "w.mn:4:7: error[E202] `fetch` takes 1 argument but 2 were given",
        "w.mn:6:10: warning[W101] `z` is unused",
        "w.mn:7:2: error[E013] unclosed `{`",
        "long.mn:1:307: error[E010] expected `:`",
        "gone.mn: error[E090] file not found: `gone.mn`",
        "found 5 errors and 1 warning in 3 files",
    ]


def test_json() -> None:
    items, _ = synthetic()
    document = json.loads(report.to_json(items, checked=2))
    assert document["summary"] == {"errors": 5, "warnings": 1, "files_checked": 2}
    first = document["diagnostics"][0]
    assert first["file"] == "/src/w.mn"
    assert first["labels"][0] == {
        "span": {"file": "/src/w.mn", "line": 3, "col": 26, "end_line": 3, "end_col": 27},
        "message": "this is `Receipt`",
    }
    assert first["notes"] == ["strings and numbers do not mix"]
    assert document["diagnostics"][-1]["span"] is None


def test_summary_wording() -> None:
    def located(code: str, file: str) -> Located:
        return Located(Diagnostic(code, "m", span(1, 1, 1, 2, file)), file)

    def text(items: list[Located], strict: bool = False) -> str:
        return "".join(t for t, _ in report.summary(items, strict))

    assert text([]) == "all checks passed"
    assert text([located("E101", "a")]) == "found 1 error in 1 file"
    assert text([located("W101", "a")]) == "found 1 warning in 1 file"
    assert text([located("W101", "a")], strict=True) == (
        "found 1 warning in 1 file (warnings fail with --strict)"
    )
    many = [located("E101", "a"), located("E102", "b"), located("W101", "b"), located("W102", "b")]
    assert text(many) == "found 2 errors and 2 warnings in 2 files"


def test_colour_goes_through_rich_only_when_asked() -> None:
    items, sources = synthetic()
    lines = report.render(items[:1], sources, cwd=Path("/src"))
    plain = io.StringIO()
    report.write(lines, plain, colour=False)
    coloured = io.StringIO()
    report.write(lines, coloured, colour=True)
    assert "\x1b[" not in plain.getvalue()
    assert "\x1b[" in coloured.getvalue()
    assert "error[E201]" in coloured.getvalue()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_wants_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    assert report.wants_colour(_Terminal())
    monkeypatch.setenv("TERM", "dumb")
    assert not report.wants_colour(_Terminal())
    monkeypatch.setenv("TERM", "xterm-256color")
    assert not report.wants_colour(io.StringIO())
    assert report.wants_colour(io.StringIO(), "always")
    assert not report.wants_colour(_Terminal(), "never")
    monkeypatch.setenv("NO_COLOR", "1")
    assert not report.wants_colour(_Terminal())
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert report.wants_colour(io.StringIO())


def test_display_path() -> None:
    assert report.display_path("/src/a/w.mn", Path("/src")) == "a/w.mn"
    assert report.display_path("/elsewhere/w.mn", Path("/src")) == "/elsewhere/w.mn"


def test_sources_read_files_lazily_and_tolerate_missing_ones(tmp_path: Path) -> None:
    path = tmp_path / "a.mn"
    path.write_text("one\ntwo\r\n", "utf-8")
    sources = Sources()
    assert sources.line(str(path), 2) == "two"
    assert sources.line(str(path), 9) is None
    assert sources.line(str(tmp_path / "gone.mn"), 1) is None
