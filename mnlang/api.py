"""The library functions behind the `mnc` commands; programs can call them directly.

Each function takes plain values and returns plain results: no printing, no exit
codes; the CLI turns results into output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mnlang.diagnostics import Diagnostic
from mnlang.report import Located, Sources


@dataclass
class FileCheck:
    """The outcome of checking one file given on the command line (and what it imports)."""

    path: str  # as given, normalised by `Path`
    diagnostics: list[Diagnostic]


@dataclass
class CheckReport:
    files: list[FileCheck]
    strict: bool = False
    # Source texts by the file names the spans use, for rendering excerpts.
    sources: Sources = field(default_factory=Sources)

    @property
    def items(self) -> list[Located]:
        """Every diagnostic once, with its file: a module imported by several checked files
        reports its problems once."""
        seen: set[tuple[str, str, object]] = set()
        out: list[Located] = []
        for f in self.files:
            for d in f.diagnostics:
                key = (d.code, d.message, d.span or f.path)
                if key not in seen:
                    seen.add(key)
                    out.append(Located(d, f.path))
        return out

    @property
    def errors(self) -> int:
        return sum(1 for i in self.items if i.diagnostic.severity == "error")

    @property
    def warnings(self) -> int:
        return sum(1 for i in self.items if i.diagnostic.severity == "warning")

    @property
    def ok(self) -> bool:
        """No errors, and no warnings either when `strict`."""
        return not self.errors and not (self.strict and self.warnings)


def check_files(paths: Sequence[str | Path], strict: bool = False) -> CheckReport:
    """Check each `.mn` file and what it imports; a file that cannot be read (missing, a
    directory, not UTF-8, too large) is reported as a diagnostic, never raised."""
    from mnlang.checker import check
    from mnlang.sources import read_source
    from mnlang.syntax.parser import gc_paused

    report = CheckReport([], strict)
    for given in paths:
        path = Path(given)
        text, problem = read_source(path)
        if problem is not None:
            report.files.append(FileCheck(str(path), [problem]))
            continue
        assert text is not None
        with gc_paused():
            result = check(path, text=text)
        report.sources.texts[str(path.resolve())] = text
        if result.program is not None:
            for module in result.program.modules.values():
                report.sources.texts.setdefault(str(module.path), module.tree.source)
        report.files.append(FileCheck(str(path), result.diagnostics))
    return report
