"""String literals: escapes, `{expr}` interpolation, `{{ }}` braces and `\"\"\"` dedent."""

from __future__ import annotations

import msgspec

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "{": "{", "}": "}", "0": "\0"}


class StringError(Exception):
    def __init__(self, message: str, index: int, length: int = 1, help: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.index = index  # offset into the raw token text
        self.length = length
        self.help = help


class Segment(msgspec.Struct):
    """Literal text, or an interpolated expression's source and its offset in the token."""

    text: str
    is_expr: bool
    index: int = 0


def _dedent_skips(raw: str, base: int) -> tuple[set[int], int, int]:
    """Offsets (into the token) of indentation to drop, and the content's start and end."""
    start, end = 0, len(raw)
    if raw.startswith("\n"):
        start = 1
    elif raw.startswith("\r\n"):
        start = 2
    last_nl = raw.rfind("\n", start)
    if last_nl >= 0 and raw[last_nl + 1 :].strip(" \t") == "":
        end = last_nl
    lines: list[tuple[int, int]] = []
    i = start
    while i <= end:
        j = raw.find("\n", i, end)
        if j < 0:
            j = end
        lines.append((i, j))
        i = j + 1
    indents = [
        len(raw[a:b]) - len(raw[a:b].lstrip(" \t")) for a, b in lines if raw[a:b].strip(" \t\r")
    ]
    indent = min(indents) if indents else 0
    skips: set[int] = set()
    for a, b in lines:
        n = 0
        while n < indent and a + n < b and raw[a + n] in " \t":
            skips.add(base + a + n)
            n += 1
    return skips, base + start, base + end


def split_string(token: str) -> list[Segment]:
    """Split a string token (quotes included) into literal and expression segments."""
    triple = token.startswith('"""')
    q = 3 if triple else 1
    raw = token[q:-q]
    if triple:
        skips, i, end = _dedent_skips(raw, q)
    else:
        skips, i, end = set(), q, len(token) - q
    segments: list[Segment] = []
    buf: list[str] = []
    while i < end:
        if i in skips:
            i += 1
            continue
        ch = token[i]
        if ch == "\\" and i + 1 < end:
            esc = token[i + 1]
            if esc not in _ESCAPES:
                raise StringError(
                    f"unknown escape `\\{esc}`",
                    i,
                    2,
                    help='the escapes are `\\n` `\\t` `\\r` `\\0` `\\"` `\\\\` `\\{` `\\}`',
                )
            buf.append(_ESCAPES[esc])
            i += 2
        elif ch == "{":
            if token.startswith("{{", i):
                buf.append("{")
                i += 2
                continue
            close = _matching_brace(token, i, end)
            if close < 0:
                raise StringError(
                    "unclosed `{` in string interpolation",
                    i,
                    help="close it with `}`, or write `{{` for a literal brace",
                )
            source = token[i + 1 : close]
            if not source.strip():
                raise StringError(
                    "empty `{}` in a string", i, 2, help="write `{{}}` for literal braces"
                )
            if buf:
                segments.append(Segment("".join(buf), False))
                buf = []
            segments.append(Segment(source, True, i + 1))
            i = close + 1
        elif ch == "}":
            if token.startswith("}}", i):
                buf.append("}")
                i += 2
                continue
            raise StringError("a lone `}` in a string", i, help="write `}}` for a literal brace")
        elif ch == "\r" and token.startswith("\r\n", i):
            i += 1
        else:
            buf.append(ch)
            i += 1
    if buf or not segments:
        segments.append(Segment("".join(buf), False))
    return segments


def _matching_brace(token: str, i: int, end: int) -> int:
    """The index of the `}` closing the interpolation at `i`; strings inside it are skipped."""
    depth = 0
    j = i
    while j < end:
        ch = token[j]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return j
        elif ch == '"':
            j = _string_end(token, j, end)
            if j < 0:
                return -1
        elif ch == "\n" and not token.startswith('"""'):
            return -1
        j += 1
    return -1


def _string_end(token: str, i: int, end: int) -> int:
    """The index of the quote closing the string that opens at `i`, or -1."""
    j = i + 1
    while j < end:
        ch = token[j]
        if ch == "\\":
            j += 2
            continue
        if ch == '"':
            return j
        if ch == "\n":
            return -1
        j += 1
    return -1
