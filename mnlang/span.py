"""Source positions shared by every stage (AST, diagnostics, IR)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Span:
    """A range in a source file: 1-based lines and columns, end exclusive; offsets into the text."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int
    start: int = 0
    end: int = 0

    def to(self, other: Span) -> Span:
        """The span from the start of `self` to the end of `other`."""
        return Span(
            self.file, self.line, self.col, other.end_line, other.end_col, self.start, other.end
        )

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"
