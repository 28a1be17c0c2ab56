"""`mnc test`: find the scenarios of `.mn` files, run each on a fresh journal, report.

`run_tests(paths)` looks through files and folders for `.mn` files that declare
scenarios, compiles each (a file with errors is reported, not run), runs its scenarios
one after the other (`runner.run_scenario`) and returns a `SuiteReport`;
`report.render` prints it the way pytest does.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mnlang.diagnostics import Diagnostic
from mnlang.testing.runner import ScenarioResult, run_scenario

_SCENARIO = re.compile(r"^\s*scenario\s", re.M)


@dataclass
class FileProblem:
    """A file given or found that could not be tested: unreadable, or with errors."""

    file: str
    message: str
    diagnostics: list[Diagnostic] = field(default_factory=list)


@dataclass
class SuiteReport:
    results: list[ScenarioResult] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[ScenarioResult]:
        return [r for r in self.results if not r.passed]

    @property
    def ok(self) -> bool:
        return bool(self.results) and not self.failed and not self.problems

    @property
    def exit_code(self) -> int:
        """0 all passed, 1 a scenario failed or a file could not be tested, 5 none found."""
        if self.failed or self.problems:
            return 1
        return 0 if self.results else 5


def scenario_files(paths: Sequence[str | Path]) -> tuple[list[Path], list[FileProblem]]:
    """The `.mn` files under `paths` that declare scenarios, in a stable order."""
    found: list[Path] = []
    problems: list[FileProblem] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            candidates = sorted(
                p for p in path.rglob("*.mn") if not any(part.startswith(".") for part in p.parts)
            )
        elif path.is_file():
            candidates = [path]
        else:
            problems.append(FileProblem(str(path), "no such file or folder"))
            continue
        for candidate in candidates:
            try:
                text = candidate.read_text("utf-8")
            except (OSError, UnicodeDecodeError) as e:
                problems.append(FileProblem(str(candidate), f"cannot read it: {e}"))
                continue
            if _SCENARIO.search(text) and candidate not in found:
                found.append(candidate)
    return found, problems


def run_tests(
    paths: Sequence[str | Path],
    *,
    select: str | None = None,
    on_result: Callable[[ScenarioResult], None] | None = None,
) -> SuiteReport:
    """Run every scenario under `paths` (only those whose name contains `select`)."""
    from mnlang.ir.compile import compile_file

    started = time.perf_counter()
    files, problems = scenario_files(paths)
    report = SuiteReport(problems=problems)
    for path in files:
        program, diagnostics = compile_file(path)
        if program is None:
            errors = [d for d in diagnostics if d.severity == "error"]
            report.problems.append(FileProblem(str(path), f"{len(errors)} errors", errors))
            continue
        for scenario in program.scenarios.values():
            if select is not None and select not in scenario.name:
                continue
            result = run_scenario(program, scenario, str(path))
            report.results.append(result)
            if on_result is not None:
                on_result(result)
    report.seconds = time.perf_counter() - started
    return report
