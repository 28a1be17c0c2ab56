"""Diagnostics: a coded message with a primary span, labels, notes and a help line."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mnlang.errorcodes import CODES, Severity
from mnlang.span import Span


@dataclass(slots=True)
class Label:
    span: Span
    message: str


@dataclass(slots=True)
class Diagnostic:
    code: str
    message: str
    span: Span | None
    labels: list[Label] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    help: str | None = None

    @property
    def severity(self) -> Severity:
        return CODES[self.code].severity

    def to_json(self) -> dict[str, Any]:
        def span_json(s: Span) -> dict[str, Any]:
            return {
                "file": s.file,
                "line": s.line,
                "col": s.col,
                "end_line": s.end_line,
                "end_col": s.end_col,
            }

        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "span": span_json(self.span) if self.span else None,
            "labels": [{"span": span_json(lb.span), "message": lb.message} for lb in self.labels],
            "notes": list(self.notes),
            "help": self.help,
        }


class Diagnostics:
    """Collects diagnostics so that a pass reports every problem, not just the first."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []

    def add(
        self,
        code: str,
        at: Any,
        message: str,
        *,
        help: str | None = None,
        labels: list[Label] | None = None,
        notes: list[str] | None = None,
    ) -> Diagnostic:
        """Record a diagnostic at a node (anything with `.span`) or a span."""
        assert code in CODES, code
        span = at if isinstance(at, Span) or at is None else at.span
        diag = Diagnostic(code, message, span, labels or [], notes or [], help)
        self.items.append(diag)
        return diag

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "warning"]


class CompileError(Exception):
    """Raised by library entry points when a source has errors; carries them all."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__("; ".join(f"{d.code}: {d.message}" for d in diagnostics[:3]))
        self.diagnostics = diagnostics
