"""Fixes that several checks make: options written into an option block, or removed."""

from __future__ import annotations

from mnlang.diagnostics import Edit, Fix, insertion
from mnlang.span import Span
from mnlang.syntax import ast


def add_options(source: str, options: ast.ObjectLit, written: list[str]) -> Fix:
    """The fix that writes options (`key: value` each) first in an option block: each on a
    line of its own when the block's first option has one, else before it on its line."""
    title = "Add " + " and ".join(f"`{w}`" for w in written)
    if not options.entries:  # `{}`: right after the `{`
        at = options.span
        text = " " + ", ".join(written) + " "
        return insertion(at.file, at.start + 1, at.line, at.col + 1, text, title)
    at = options.entries[0].span
    indent = source[source.rfind("\n", 0, at.start) + 1 : at.start]
    if indent.strip():
        text = "".join(f"{w}, " for w in written)
    else:
        text = "".join(f"{w}\n{indent}" for w in written)
    return insertion(at.file, at.start, at.line, at.col, text, title)


def removal(source: str, node: ast.Node, title: str) -> Fix:
    """The fix that removes `node`: its whole line(s) when nothing else is on them (but a
    comment), else the node with the `,` that separates it from its neighbour."""
    span = node.span
    line_start = source.rfind("\n", 0, span.start) + 1
    line_end = source.find("\n", span.end)
    line_end = len(source) if line_end < 0 else line_end
    after = source[span.end : line_end]
    if not source[line_start : span.start].strip() and not after.split("#", 1)[0].strip():
        return _deletion(span.file, source, line_start, min(line_end + 1, len(source)), title)
    rest = after.lstrip(" \t")
    if rest.startswith(","):
        end = span.end + len(after) - len(rest) + 1
        while end < len(source) and source[end] in " \t":
            end += 1
        return _deletion(span.file, source, span.start, end, title)
    before = source[line_start : span.start].rstrip(" \t")
    start = line_start + len(before) - 1 if before.endswith(",") else span.start
    return _deletion(span.file, source, start, span.end, title)


def _deletion(file: str, source: str, start: int, end: int, title: str) -> Fix:
    return Fix(title, (Edit(_span(file, source, start, end), ""),))


def _span(file: str, source: str, start: int, end: int) -> Span:
    """The span of offsets `start`..`end` of `source`, with its lines and columns."""

    def line_col(offset: int) -> tuple[int, int]:
        return source.count("\n", 0, offset) + 1, offset - source.rfind("\n", 0, offset)

    (line, col), (end_line, end_col) = line_col(start), line_col(end)
    return Span(file, line, col, end_line, end_col, start, end)
