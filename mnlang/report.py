"""Rendering diagnostics: `full` (rustc style, with source excerpts), `concise` (one line
each) and `json`, followed by a summary line.

Rendering builds lines of styled segments; plain text joins them, and colour (only
for a terminal) hands them to rich, imported only then.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from mnlang.diagnostics import Diagnostic
from mnlang.span import Span

Format = Literal["full", "concise", "json"]

# A segment of output text and its style name (see `_RICH_STYLES`); None is unstyled.
Segment = tuple[str, str | None]
Line = list[Segment]

_TAB = "    "
_MAX_WIDTH = 140  # source lines wider than this are shown as a window around the span
_CONTEXT = 40  # columns kept before the span in such a window

_RICH_STYLES = {
    "error": "bold red",
    "warning": "bold yellow",
    "title": "bold",
    "gutter": "bold blue",
    "secondary": "bold blue",
    "note": "bold",
    "summary_bad": "bold red",
    "summary_warn": "bold yellow",
    "summary_ok": "bold green",
}


@dataclass
class Located:
    """A diagnostic with the file it belongs to when it has no span (a file it could not
    read)."""

    diagnostic: Diagnostic
    file: str


@dataclass
class Sources:
    """Source text by file name (as spans name files), read from disk when not given."""

    texts: dict[str, str] = field(default_factory=dict)
    _lines: dict[str, list[str] | None] = field(default_factory=dict)

    def line(self, file: str, number: int) -> str | None:
        if file not in self._lines:
            text = self.texts.get(file)
            if text is None:
                text = _read_quietly(file)
            self._lines[file] = text.split("\n") if text is not None else None
        lines = self._lines[file]
        if lines is None or not 1 <= number <= len(lines):
            return None
        return lines[number - 1].rstrip("\r")


def _read_quietly(file: str) -> str | None:
    try:
        return Path(file).read_text("utf-8", errors="replace")
    except (OSError, ValueError):
        return None


def display_path(file: str, cwd: Path | None = None) -> str:
    """`file` relative to the working directory when it lies under it, else as it is."""
    base = cwd or Path.cwd()
    try:
        return str(Path(file).relative_to(base))
    except ValueError:
        return file


# ---- full --------------------------------------------------------------------------


@dataclass
class _Mark:
    """One underline under a source line: carets for the primary span, dashes for a label."""

    line: int
    start: int  # 1-based columns, end exclusive, within the line
    end: int
    primary: bool
    message: str


def render_full(item: Located, sources: Sources, cwd: Path | None = None) -> list[Line]:
    """The rustc-style rendering of one diagnostic."""
    d = item.diagnostic
    severity = d.severity
    out: list[Line] = [
        [(f"{severity}[{d.code}]", severity), (f": {d.message}", "title")],
    ]
    span = d.span
    labels_elsewhere = [lb for lb in d.labels if span is None or lb.span.file != span.file]
    here = [lb for lb in d.labels if lb not in labels_elsewhere]
    width = _gutter_width(d)
    pad = " " * width
    if span is None:
        out.append([(f"{pad}--> ", "gutter"), (display_path(item.file, cwd), None)])
    else:
        out.append([(f"{pad}--> ", "gutter"), (_location(span, cwd), None)])
        marks = [_mark(span, True, "", sources)]
        marks += [_mark(lb.span, False, lb.message, sources) for lb in here]
        out += _excerpt(span.file, marks, sources, width, severity)
    for file in dict.fromkeys(lb.span.file for lb in labels_elsewhere):
        group = [lb for lb in labels_elsewhere if lb.span.file == file]
        out.append([(f"{pad}::: ", "gutter"), (_location(group[0].span, cwd), None)])
        marks = [_mark(lb.span, False, lb.message, sources) for lb in group]
        out += _excerpt(file, marks, sources, width, severity)
    if d.notes or d.help:
        out.append([(f"{pad} |", "gutter")])
    for note in d.notes:
        out.append([(f"{pad} = ", "gutter"), ("note", "note"), (f": {note}", None)])
    if d.help:
        out.append([(f"{pad} = ", "gutter"), ("help", "note"), (f": {d.help}", None)])
    return out


def _location(span: Span, cwd: Path | None) -> str:
    return f"{display_path(span.file, cwd)}:{span.line}:{span.col}"


def _gutter_width(d: Diagnostic) -> int:
    lines = [lb.span.line for lb in d.labels]
    if d.span is not None:
        lines.append(d.span.line)
    return len(str(max(lines, default=1)))


def _mark(span: Span, primary: bool, message: str, sources: Sources) -> _Mark:
    """A span's underline on its first line; a span over several lines runs to its end."""
    end = span.end_col
    if span.end_line != span.line:
        text = sources.line(span.file, span.line) or ""
        end = len(text) + 1
    return _Mark(span.line, span.col, max(end, span.col + 1), primary, message)


def _excerpt(
    file: str, marks: list[_Mark], sources: Sources, width: int, severity: str
) -> list[Line]:
    """The source lines the marks stand on, in order, each followed by its underlines."""
    pad = " " * width
    out: list[Line] = [[(f"{pad} |", "gutter")]]
    previous: int | None = None
    for number in sorted({m.line for m in marks}):
        text = sources.line(file, number)
        if text is None:
            continue
        if previous is not None and number > previous + 1:
            out.append([("...", "gutter")])
        previous = number
        on_line = sorted(
            (m for m in marks if m.line == number), key=lambda m: (not m.primary, m.start)
        )
        shown, shift = _window(text, on_line)
        out.append([(f"{number:>{width}} | ", "gutter"), (shown, None)])
        for m in on_line:
            lead = _display_width(text[: m.start - 1]) - shift
            size = max(1, _display_width(text[m.start - 1 : m.end - 1]))
            underline = ("^" if m.primary else "-") * size
            style = severity if m.primary else "secondary"
            message = f" {m.message}" if m.message else ""
            out.append(
                [(f"{pad} | ", "gutter"), (" " * max(lead, 0), None), (underline + message, style)]
            )
    return out


def _window(text: str, marks: list[_Mark]) -> tuple[str, int]:
    """The line as shown (tabs expanded, clipped around the marks when very long) and how
    many display columns were cut from its start."""
    shown = text.replace("\t", _TAB)
    if _display_width(text) <= _MAX_WIDTH:
        return shown, 0
    first = min(m.start for m in marks)
    start_col = max(first - 1 - _CONTEXT, 0)
    cut = _display_width(text[:start_col])
    body = text[start_col : start_col + _MAX_WIDTH].replace("\t", _TAB)
    prefix = "..." if start_col else ""
    suffix = "..." if start_col + _MAX_WIDTH < len(text) else ""
    return prefix + body + suffix, cut - len(prefix)


def _display_width(text: str) -> int:
    """Columns `text` takes in a terminal: tabs as four, wide East Asian characters as two."""
    if text.isascii():
        return len(text) + 3 * text.count("\t")
    import unicodedata

    width = 0
    for ch in text:
        if ch == "\t":
            width += len(_TAB)
        elif unicodedata.combining(ch):
            continue
        else:
            width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


# ---- concise, json and the summary -------------------------------------------------------


def render_concise(item: Located, cwd: Path | None = None) -> Line:
    d = item.diagnostic
    where = _location(d.span, cwd) if d.span is not None else display_path(item.file, cwd)
    return [(f"{where}: ", None), (f"{d.severity}[{d.code}]", d.severity), (f" {d.message}", None)]


def summary(items: Sequence[Located], strict: bool = False) -> Line:
    """`found 2 errors and 1 warning in 1 file`, or `all checks passed`."""
    errors = sum(1 for i in items if i.diagnostic.severity == "error")
    warnings = len(items) - errors
    if not items:
        return [("all checks passed", "summary_ok")]
    files = len({i.diagnostic.span.file if i.diagnostic.span else i.file for i in items})
    counts = [_plural(errors, "error")] if errors else []
    if warnings:
        counts.append(_plural(warnings, "warning"))
    text = f"found {' and '.join(counts)} in {_plural(files, 'file')}"
    if not errors and strict:
        text += " (warnings fail with --strict)"
    style = "summary_bad" if errors or strict else "summary_warn"
    return [(text, style)]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def to_json(items: Sequence[Located], checked: int) -> str:
    """A JSON object: `diagnostics` (see `Diagnostic.to_json`, plus the `file` each
    belongs to) and a `summary` of the counts."""
    import json

    entries: list[dict[str, Any]] = []
    for item in items:
        entry = item.diagnostic.to_json()
        entry["file"] = item.diagnostic.span.file if item.diagnostic.span else item.file
        entries.append(entry)
    errors = sum(1 for e in entries if e["severity"] == "error")
    document = {
        "diagnostics": entries,
        "summary": {
            "errors": errors,
            "warnings": len(entries) - errors,
            "files_checked": checked,
        },
    }
    return json.dumps(document, indent=2)


# ---- output --------------------------------------------------------------------------


def render(
    items: Sequence[Located],
    sources: Sources,
    fmt: Format = "full",
    *,
    strict: bool = False,
    cwd: Path | None = None,
) -> list[Line]:
    """Every diagnostic in `fmt` (full or concise) and the summary line, as styled lines."""
    out: list[Line] = []
    for item in items:
        if fmt == "concise":
            out.append(render_concise(item, cwd))
        else:
            out += render_full(item, sources, cwd)
            out.append([])
    out.append(summary(items, strict))
    return out


def plain(lines: Iterable[Line]) -> str:
    return "".join("".join(text for text, _ in line) + "\n" for line in lines)


def wants_colour(stream: IO[str], choice: str = "auto") -> bool:
    """Colour for `always`, never for `never`; for `auto`, only on a terminal that is not
    `TERM=dumb`, and unless `NO_COLOR` is set (`FORCE_COLOR` forces it)."""
    if choice != "auto":
        return choice == "always"
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def write(lines: Sequence[Line], stream: IO[str], colour: bool) -> None:
    """Write styled lines, with colour through rich when asked, else as plain text."""
    if not colour:
        stream.write(plain(lines))
        return
    from rich.console import Console
    from rich.text import Text

    console = Console(
        file=stream, force_terminal=True, highlight=False, soft_wrap=True, emoji=False
    )
    for line in lines:
        text = Text()
        for segment, style in line:
            text.append(segment, style=_RICH_STYLES.get(style, "") if style else "")
        console.print(text)
