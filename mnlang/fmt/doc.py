"""A small document algebra and its printer (Wadler's "prettier printer", as in Prettier).

The formatter builds a `Doc` from the AST: text, line breaks that a `Group`
prints as a space (or nothing) when the group fits on the line and as a new
line otherwise, nesting, and trailing comments. The printer picks the layout
and aligns the trailing comments of consecutive lines into one column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

WIDTH = 100
INDENT = 2
COMMENT_GAP = 2  # spaces between code and a trailing comment


@dataclass(frozen=True, slots=True)
class Line:
    """A line break; flat, it prints `flat` (" " or ""). A hard line always breaks."""

    flat: str = " "
    hard: bool = False


@dataclass(frozen=True, slots=True)
class Nest:
    doc: Doc
    indent: int = INDENT


@dataclass(slots=True)
class Group:
    """Printed flat when it fits on the rest of the line and holds no hard line."""

    doc: Doc
    hard: bool = field(init=False)

    def __post_init__(self) -> None:
        self.hard = has_hard_break(self.doc)


@dataclass(frozen=True, slots=True)
class IfBreak:
    """`broken` when the enclosing group breaks, `flat` when it does not."""

    broken: Doc
    flat: Doc = ""


@dataclass(frozen=True, slots=True)
class TrailingComment:
    """A `#` comment at the end of the current line; the line must break after it."""

    text: str


Doc: TypeAlias = "str | list[Doc] | Line | Nest | Group | IfBreak | TrailingComment"

LINE = Line(" ")
SOFTLINE = Line("")
HARDLINE = Line("", hard=True)


def has_hard_break(doc: Doc) -> bool:
    """Whether `doc` forces its enclosing groups to break (a hard line or a comment)."""
    if isinstance(doc, str):
        return False
    if isinstance(doc, list):
        return any(has_hard_break(d) for d in doc)
    if isinstance(doc, Line):
        return doc.hard
    if isinstance(doc, Group):
        return doc.hard
    if isinstance(doc, Nest):
        return has_hard_break(doc.doc)
    if isinstance(doc, IfBreak):
        return has_hard_break(doc.broken)
    return True  # TrailingComment


def join(separator: Doc, docs: list[Doc]) -> list[Doc]:
    out: list[Doc] = []
    for i, d in enumerate(docs):
        if i:
            out.append(separator)
        out.append(d)
    return out


_FLAT, _BREAK = 0, 1


def _fits(item: tuple[int, int, Doc], rest: list[tuple[int, int, Doc]], width: int) -> bool:
    """Whether `item` (printed flat) and what follows it up to the next line break fit."""
    todo = [item]
    rest_index = len(rest)
    while width >= 0:
        if not todo:
            if rest_index == 0:
                return True
            rest_index -= 1
            todo.append(rest[rest_index])
            continue
        indent, mode, doc = todo.pop()
        if isinstance(doc, str):
            newline = doc.find("\n")
            if newline >= 0:
                return width - newline >= 0
            width -= len(doc)
        elif isinstance(doc, list):
            todo.extend((indent, mode, d) for d in reversed(doc))
        elif isinstance(doc, Line):
            if mode == _BREAK or doc.hard:
                return True
            width -= len(doc.flat)
        elif isinstance(doc, Group):
            todo.append((indent, _BREAK if doc.hard else mode, doc.doc))
        elif isinstance(doc, Nest):
            todo.append((indent + doc.indent, mode, doc.doc))
        elif isinstance(doc, IfBreak):
            todo.append((indent, mode, doc.broken if mode == _BREAK else doc.flat))
        else:  # a trailing comment ends the line
            return True
    return False


def render(doc: Doc, width: int = WIDTH) -> str:
    """Print `doc` in at most `width` columns where it can, with trailing comments aligned."""
    lines: list[str] = []
    comments: dict[int, str] = {}
    current: list[str] = []
    column = 0
    stack: list[tuple[int, int, Doc]] = [(0, _BREAK, doc)]
    while stack:
        indent, mode, d = stack.pop()
        if isinstance(d, str):
            if "\n" in d:
                first, *middle, last = d.split("\n")
                current.append(first)
                lines.append("".join(current))
                lines.extend(middle)
                current = [last]
                column = len(last)
            else:
                current.append(d)
                column += len(d)
        elif isinstance(d, list):
            stack.extend((indent, mode, x) for x in reversed(d))
        elif isinstance(d, Line):
            if mode == _FLAT and not d.hard:
                current.append(d.flat)
                column += len(d.flat)
            else:
                lines.append("".join(current).rstrip(" "))
                current = [" " * indent]
                column = indent
        elif isinstance(d, Group):
            if mode == _FLAT and not d.hard:
                stack.append((indent, _FLAT, d.doc))
            else:
                flat = not d.hard and _fits((indent, _FLAT, d.doc), stack, width - column)
                stack.append((indent, _FLAT if flat else _BREAK, d.doc))
        elif isinstance(d, Nest):
            stack.append((indent + d.indent, mode, d.doc))
        elif isinstance(d, IfBreak):
            stack.append((indent, mode, d.broken if mode == _BREAK else d.flat))
        else:
            comments[len(lines)] = d.text
    lines.append("".join(current).rstrip(" "))
    return "\n".join(_align_comments(lines, comments))


def _align_comments(lines: list[str], comments: dict[int, str]) -> list[str]:
    """Trailing comments of consecutive lines start in one column, as gofmt aligns them."""
    out = list(lines)
    index = sorted(comments)
    start = 0
    while start < len(index):
        end = start + 1
        while end < len(index) and index[end] == index[end - 1] + 1:
            end += 1
        run = index[start:end]
        column = max(len(lines[i]) for i in run) + COMMENT_GAP
        for i in run:
            out[i] = lines[i].ljust(column) + comments[i]
        start = end
    return out
