"""The `mnc test` report, laid out like pytest's: progress per file, failures, a summary.

```
examples/refund/refund.mn ..F
examples/research/research.mn ..x

=================================== FAILURES ===================================
___________________ examples/refund/refund.mn::late_delivery ___________________
status
    expected `completed`, the run ended `failed`
    error: tool_error: no order o-9 (at `order`)
========================= 1 failed, 4 passed in 0.81s =========================
```

A scenario with a `model_error` (a reply wrong on purpose, for `mnc bench`) is expected
to miss its expectations: it is marked `x` when it does, and fails when it does not.
In verbose mode each scenario gets its own lines as it ends (`result_lines`: `PASSED` or
`FAILED`, its time, what the runner did). Lines are plain text; `style` colours them.
"""

from __future__ import annotations

from collections.abc import Callable

from mnlang.testing import SuiteReport
from mnlang.testing.runner import ScenarioResult

WIDTH = 80
Style = Callable[[str, str], str]
"""Colours a text: `style(text, colour)`; the colours used are green, red and yellow."""


def _plain(text: str, colour: str) -> str:
    return text


def _rule(title: str, fill: str) -> str:
    title = f" {title} " if title else ""
    left = max((WIDTH - len(title)) // 2, 3)
    right = max(WIDTH - len(title) - left, 3)
    return fill * left + title + fill * right


def _mark(result: ScenarioResult, style: Style) -> str:
    if not result.passed:
        return style("F", "red")
    return style("x", "yellow") if result.expected_miss is not None else style(".", "green")


def result_lines(result: ScenarioResult, style: Style = _plain) -> list[str]:
    """A scenario's verbose lines: its id, outcome and time, then what the runner did."""
    if not result.passed:
        word = style("FAILED", "red")
    elif result.expected_miss is not None:
        word = style("MISSED AS EXPECTED", "yellow")
    else:
        word = style("PASSED", "green")
    lines = [f"{result.id} {word} ({result.seconds:.2f}s)"]
    if result.expected_miss is not None and result.passed:
        lines.append(f"    wrong on purpose: {result.expected_miss}")
        lines += [f"    missed: {m.title}" for m in result.mismatches]
    return lines + [f"    {note}" for note in result.notes]


def render(report: SuiteReport, *, listed: bool = False, style: Style = _plain) -> list[str]:
    """The report; `listed` when each scenario's lines were already printed as it ran
    (`result_lines`), else a line of dots per file comes first."""
    lines: list[str] = []
    if not listed:
        by_file: dict[str, list[ScenarioResult]] = {}
        for result in report.results:
            by_file.setdefault(result.file, []).append(result)
        for file, results in by_file.items():
            marks = "".join(_mark(r, style) for r in results)
            lines.append(f"{file} {marks}")
    if report.problems:
        lines += ["", style(_rule("ERRORS", "="), "red")]
        for problem in report.problems:
            lines.append(_rule(problem.file, "_"))
            lines.append(f"cannot test this file: {problem.message}")
            for d in problem.diagnostics:
                where = f"{d.span.file}:{d.span.line}:{d.span.col}: " if d.span else ""
                lines.append(f"    {where}{d.code} {d.message}")
    failed = report.failed
    if failed:
        lines += ["", style(_rule("FAILURES", "="), "red")]
        for result in failed:
            lines.append(_rule(result.id, "_"))
            if result.expected_miss is not None:
                lines.append(
                    f"the scenario says a reply is wrong on purpose ({result.expected_miss}), "
                    "yet the run met every expectation"
                )
            for mismatch in result.mismatches:
                lines.append(mismatch.title)
                lines += [f"    {line}" for line in mismatch.lines]
            lines += [f"    note: {note}" for note in result.notes]
    lines.append(_summary(report, style))
    return lines


def _summary(report: SuiteReport, style: Style) -> str:
    missed = sum(1 for r in report.results if r.passed and r.expected_miss is not None)
    passed = len(report.results) - len(report.failed) - missed
    parts = []
    if report.failed:
        parts.append(f"{len(report.failed)} failed")
    if passed:
        parts.append(f"{passed} passed")
    if missed:
        parts.append(f"{missed} missed as expected")
    if report.problems:
        count = len(report.problems)
        parts.append(f"{count} file{'s' if count > 1 else ''} with errors")
    text = (", ".join(parts) or "no scenarios found") + f" in {report.seconds:.2f}s"
    colour = "green" if report.ok else ("red" if report.failed or report.problems else "yellow")
    return style(_rule(text, "="), colour)
