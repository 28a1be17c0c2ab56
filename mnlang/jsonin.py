"""The one decoder for JSON that comes in from outside: `--input`, `--input-file`, signal
payloads, `--result`, the console's forms and IR files.

Python's `json` takes numbers of any length (and then `int` refuses 4,300 digits with a
`ValueError`), `NaN` and `Infinity`, lone surrogates (which later fail at the journal's
insert) and nests until `RecursionError`. Here each of those is refused up front with
`JSONInputError` (code E096) saying what was wrong and where it came from.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mnlang.deep import call_deep

# What a run's input or a payload may be; IR files pass their own (deeper) limits.
MAX_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 1_000
MAX_NUMBER_CHARS = 100  # a 64-bit int has 19 digits, a float 17 significant ones
# Nesting that `json` parses within any thread's default recursion limit and stack.
SHALLOW_DEPTH = 100


class JSONInputError(ValueError):
    """JSON refused: `message` says why, `help` what to do; the code is E096."""

    code = "E096"

    def __init__(self, where: str, message: str, help: str) -> None:
        super().__init__(f"{where} {message}")
        self.where = where
        self.detail = message  # "is not JSON: ...", "has a number of ..."
        self.message = f"{where} {message}"
        self.help = help


def read_json_file(
    path: str | Path, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH
) -> Any:
    """A regular file's JSON; a FIFO, device or folder is refused before it is opened for
    reading, so that nothing blocks on it."""
    return decode_json(read_regular_file(path, max_bytes), f"`{path}`", max_depth=max_depth)


def read_regular_file(path: str | Path, max_bytes: int = MAX_BYTES) -> bytes:
    """The bytes of a regular file of at most `max_bytes`; OSError for a missing one,
    JSONInputError for what is not a regular file or too large."""
    where = f"`{path}`"
    # O_NONBLOCK: opening a FIFO with no writer must not hang before fstat says what it is.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise JSONInputError(
                where, "is not a regular file (E091)", "give the path of a file, not a pipe"
            )
        if info.st_size > max_bytes:
            raise JSONInputError(
                where, f"is {info.st_size:,} bytes; the limit is {max_bytes:,}", _SMALLER
            )
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise JSONInputError(where, f"is over {max_bytes:,} bytes", _SMALLER)
    return data


_SMALLER = "pass less data, or a reference to it (a path, an id) instead"
_WRITE = 'write it as JSON, e.g. {"order_id": "o-1"}'


def decode_json(
    data: str | bytes,
    where: str,
    *,
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
    max_number_chars: int = MAX_NUMBER_CHARS,
) -> Any:
    """`data` as JSON within the limits, or `JSONInputError` (E096)."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise JSONInputError(
                where, f"is not UTF-8 (byte {e.start})", "save it as UTF-8 text"
            ) from None
    else:
        text = data
    if len(text) > max_bytes:
        raise JSONInputError(where, f"is over {max_bytes:,} characters", _SMALLER)

    def number(kind: str) -> Any:
        def parse(token: str) -> Any:
            if len(token) > max_number_chars:
                raise _Refused(f"has a number of {len(token):,} characters", _NUMBER_HELP)
            value = int(token) if kind == "int" else float(token)
            if isinstance(value, float) and not math.isfinite(value):
                raise _Refused(f"has the number `{token}`, out of a float's range", _NUMBER_HELP)
            return value

        return parse

    def constant(token: str) -> Any:
        raise _Refused(f"has `{token}`, which is not JSON", "write a number or null")

    deepest = nesting(text)
    if deepest > max_depth:  # before `json` recurses into it
        raise JSONInputError(where, f"nests deeper than {max_depth:,} levels", _FLATTER)
    # A shallow document is parsed on the caller's stack: a thread of its own costs more
    # than parsing a request body (the API's starts and signals).
    parse = call_deep if deepest > SHALLOW_DEPTH else _here
    try:
        value = parse(
            json.loads,
            text,
            parse_int=number("int"),
            parse_float=number("float"),
            parse_constant=constant,
        )
    except _Refused as e:
        raise JSONInputError(where, e.message, e.help) from None
    except RecursionError:
        raise JSONInputError(where, f"nests deeper than {max_depth:,} levels", _FLATTER) from None
    except json.JSONDecodeError as e:
        raise JSONInputError(
            where, f"is not JSON: {e.msg.lower()} at line {e.lineno}, column {e.colno}", _WRITE
        ) from None
    _check_tree(value, where, max_depth)
    return value


def _here(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


_NUMBER_HELP = "send very long numbers as strings"
_FLATTER = "flatten the value; pass large structures by reference"


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_BRACKET = re.compile(r"[\[\]{}]")


def nesting(text: str) -> int:
    """How deep the brackets of `text` nest, strings aside, counted without recursion."""
    deepest = depth = 0
    for m in _BRACKET.finditer(_STRING.sub("", text)):
        depth += 1 if m.group() in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


class _Refused(Exception):
    def __init__(self, message: str, help: str) -> None:
        super().__init__(message)
        self.message = message
        self.help = help


def _check_tree(value: Any, where: str, max_depth: int) -> None:
    """Depth and text (no lone surrogates, which no store can write), without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item, where)
        elif isinstance(item, dict | list):
            if depth > max_depth:
                raise JSONInputError(where, f"nests deeper than {max_depth:,} levels", _FLATTER)
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_text(key, where)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)


def _check_text(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise JSONInputError(
            where,
            f"has a lone surrogate (\\u{ord(text[e.start]):04x}), which is not text",
            "escape a character outside the BMP as a surrogate pair, or send it as UTF-8",
        ) from None
