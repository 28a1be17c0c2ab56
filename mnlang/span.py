"""Source positions shared by every stage (AST, diagnostics, IR).

A `msgspec.Struct` rather than a frozen dataclass: the parser makes one for nearly every
token and node (about 28,000 for a 7,000-line file), and a frozen dataclass's `__init__`
sets each field through `object.__setattr__`; a frozen Struct is built in C, about ten
times faster, and is likewise immutable, compared by value and hashable.
"""

from __future__ import annotations

import msgspec


class Span(msgspec.Struct, frozen=True):
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
