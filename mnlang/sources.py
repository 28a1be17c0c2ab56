"""Reading `.mn` files: every way a file can be unreadable is a coded diagnostic."""

from __future__ import annotations

from pathlib import Path

from mnlang.diagnostics import Diagnostic
from mnlang.span import Span

MAX_SOURCE_BYTES = 8 * 1024 * 1024


def read_source(path: Path | str) -> tuple[str | None, Diagnostic | None]:
    """The text of a source file, or a diagnostic saying why it cannot be read."""
    p = Path(path)
    where = Span(str(p), 1, 1, 1, 1)
    try:
        p.stat()
    except FileNotFoundError:
        pass  # reported just below
    except OSError as e:  # a name too long, a loop of links, no permission to look
        return None, Diagnostic(
            "E091", f"cannot read `{p}`: {e.strerror}", None, help="check the path"
        )
    if not p.exists():
        return None, Diagnostic("E090", f"file not found: `{p}`", None, help="check the path")
    if not p.is_file():
        kind = "a directory" if p.is_dir() else "not a regular file"
        return None, Diagnostic(
            "E091", f"`{p}` is {kind}", None, help="pass `.mn` files, e.g. `mnc check flows/*.mn`"
        )
    size = p.stat().st_size
    if size > MAX_SOURCE_BYTES:
        return None, Diagnostic(
            "E093",
            f"`{p}` is {size / 1048576:.1f} MB; the limit is {MAX_SOURCE_BYTES // 1048576} MB",
            where,
            help="split the workflow into modules and `import` them",
        )
    try:
        data = p.read_bytes()
    except OSError as e:
        return None, Diagnostic("E091", f"cannot read `{p}`: {e.strerror}", None)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        at = Span(str(p), line, col, line, col + 1, e.start, e.start + 1)
        return None, Diagnostic(
            "E092",
            f"`{p}` is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})",
            at,
            help="save the file as UTF-8",
        )
    if text.startswith("\ufeff"):
        text = text[1:]
    return text, None
