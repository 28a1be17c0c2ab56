"""Positions: our spans (1-based lines, columns in characters) and LSP positions (0-based,
columns in the client's code units, UTF-16 unless negotiated otherwise)."""

from __future__ import annotations

from bisect import bisect_right

from lsprotocol import types
from pygls.workspace import PositionCodec

from mnlang.span import Span


class SourceLines:
    """A text's lines and line offsets, for converting between the two kinds of position."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = text.split("\n")
        self.starts = [0]
        for line in self.lines[:-1]:
            self.starts.append(self.starts[-1] + len(line) + 1)

    def offset(self, line: int, column: int) -> int:
        """The offset of a 0-based line and character column, clamped to the text."""
        if line >= len(self.lines):
            return len(self.text)
        return self.starts[line] + min(column, len(self.lines[line]))

    def line_col(self, offset: int) -> tuple[int, int]:
        """The 0-based line and character column of an offset."""
        line = bisect_right(self.starts, offset) - 1
        return line, offset - self.starts[line]


def to_range(span: Span | None, lines: SourceLines, codec: PositionCodec) -> types.Range:
    """The LSP range of a span (the file's first character when there is no span)."""
    if span is None:
        return types.Range(types.Position(0, 0), types.Position(0, 0))
    start = types.Position(span.line - 1, span.col - 1)
    end = types.Position(span.end_line - 1, span.end_col - 1)
    return codec.range_to_client_units(lines.lines, types.Range(start, end))


def to_offset(position: types.Position, lines: SourceLines, codec: PositionCodec) -> int:
    """The offset into the text of an LSP position."""
    server = codec.position_from_client_units(lines.lines, position)
    return lines.offset(server.line, server.character)


def whole_text(lines: SourceLines, codec: PositionCodec) -> types.Range:
    """The range of the whole text, for an edit that replaces it."""
    last = len(lines.lines) - 1
    end = types.Position(last, len(lines.lines[last]))
    return codec.range_to_client_units(lines.lines, types.Range(types.Position(0, 0), end))
