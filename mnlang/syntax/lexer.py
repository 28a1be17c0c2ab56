"""The lexer: one compiled master regex, keyword lookup and newline handling.

Newlines end statements, options and fields. They are dropped inside `( )` and
`[ ]`, after tokens that cannot end a statement (`{`, `,`, operators), and
before `}`, `else`, `catch` and `finally`, so the grammar stays LALR(1) and
calls, lists and conditions may span lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import msgspec

from mnlang.syntax.tokens import KEYWORDS, PUNCTUATION

# Leading blanks are matched with the token, so most tokens take one regex call. The
# alternatives are ordered by frequency: the first character decides between them, except
# among numbers, where the order matters.
_MASTER = re.compile(
    r"""
    [ \t\f\r]*
    (?:
      (?P<IDENT>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<OP>==|!=|<=|>=|->|=>|\?\?|[{}()\[\],:.=<>+\-*/%?])
    | (?P<NL>\n)
    | (?P<STRING>"(?!"")(?:[^"\\\n{]|\\.|\{\{|\{(?:[^"{}\n]|"(?:[^"\\\n]|\\.)*")*\}|\{)*")
    | (?P<LONG_STRING>\"\"\"(?:[^"\\]|\\.|"(?!""))*\"\"\")
    | (?P<COMMENT>\#[^\n]*)
    | (?P<DURATION>[0-9]+(?:ms|s|m|h|d)(?![A-Za-z0-9_]))
    | (?P<FLOAT>[0-9]+\.[0-9]+(?:[eE][+-]?[0-9]+)?(?![A-Za-z0-9_.]))
    | (?P<INT>[0-9]+(?![A-Za-z0-9_.]))
    | (?P<MONEY>\$[0-9]+(?:\.[0-9]+)?(?![A-Za-z0-9_]))
    | (?P<BAD_NUMBER>\$?[0-9][0-9.]*[A-Za-z0-9_]*(?:\.[0-9][A-Za-z0-9_]*)*)
    | (?P<AT_ID>@[a-z_][A-Za-z0-9_]*)
    | (?P<END>\Z)
    )
    """,
    re.VERBOSE,
)

_PUBLISH_HEAD = re.compile(r"[ \t]+[a-z_][A-Za-z0-9_]*[ \t]*=(?!=)")
_SELECT_HEAD = re.compile(r"[ \t]*\{")
_START_HEAD = re.compile(r"[ \t]+[a-z_][A-Za-z0-9_]*(\.[a-z_][A-Za-z0-9_]*)?[ \t]*\(")

# After these a newline cannot end anything, so it is not a separator.
_NO_NL_AFTER = frozenset(
    {
        *("LBRACE", "COMMA", "COLON", "ASSIGN", "ARROW", "FATARROW"),
        *("EQ", "NE", "LT", "GT", "LE", "GE", "PLUS", "MINUS", "STAR", "SLASH", "PERCENT"),
        *("QQ", "AND", "OR", "NOT", "DOT"),
    }
)
_NO_NL_BEFORE = frozenset({"RBRACE", "RPAR", "RSQB", "ELSE", "CATCH", "FINALLY", "ON_FAILURE"})
# `error` and `on_failure` are keywords only where a name cannot stand: `error` before a
# type name at the top level, `on_failure` right after a top-level declaration's `}`.
_ERROR_DECL = re.compile(r"[ \t]+[A-Z]")
# Tokens an operand can end with: `first` after one of them in a `parallel for` header
# cannot go on an expression, so it is the quorum's keyword.
_ENDS_OPERAND = frozenset(
    {"NAME", "TYPE_NAME", "INT", "FLOAT", "MONEY", "DURATION", "STRING", "LONG_STRING"}
    | {"RPAR", "RSQB", "TRUE", "FALSE", "NULL", "QMARK"}
)
_OPENERS = {"LBRACE": "RBRACE", "LPAR": "RPAR", "LSQB": "RSQB"}
_CLOSERS = frozenset(_OPENERS.values())


class Token(msgspec.Struct, eq=False, gc=False):
    """A terminal with its text and position (1-based line and column; end exclusive).

    A Struct, not a class with `__slots__` and an `__init__`, because the lexer makes one
    per token (about 42,000 for a 7,000-line file) and a Struct is built in C, in about half
    the time; `eq=False` keeps comparison by identity, and `gc=False` leaves tokens (text
    and numbers only) out of the cycle collector.
    """

    type: str
    value: str
    start_pos: int
    line: int
    column: int
    end_line: int
    end_column: int
    end_pos: int

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"Token({self.type}, {self.value!r}, {self.line}:{self.column})"


class LexError(Exception):
    """A character sequence that is no token; carries its position for a diagnostic."""

    def __init__(
        self,
        code: str,
        message: str,
        line: int,
        col: int,
        pos: int,
        length: int,
        help: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.line = line
        self.col = col
        self.pos = pos
        self.length = length
        self.help = help


class Comment(msgspec.Struct):
    """A `#` comment, kept for the formatter and the language server."""

    text: str
    line: int
    col: int
    pos: int
    own_line: bool


def end_token(text: str, line: int = 1, col: int = 1, offset: int = 0) -> Token:
    """The `$END` token just after `text`, positioned as `tokenize` would position it."""
    newlines = text.count("\n")
    if newlines:
        line += newlines
        col = len(text) - text.rfind("\n")
    else:
        col += len(text)
    pos = offset + len(text)
    return Token("$END", "", pos, line, col, line, col, pos)


def tokenize(
    text: str,
    line: int = 1,
    col: int = 1,
    offset: int = 0,
    comments: list[Comment] | None = None,
) -> Iterator[Token]:
    """Yield tokens for `text`, positioned as if `text` began at (line, col, offset)."""
    match = _MASTER.match
    keywords = KEYWORDS
    punctuation = PUNCTUATION
    openers = _OPENERS
    closers = _CLOSERS
    no_nl_after = _NO_NL_AFTER
    no_nl_before = _NO_NL_BEFORE
    pos = 0
    end = len(text)
    line_start = -col + 1  # column = pos - line_start + 1
    stack: list[str] = []
    # `limit` is a keyword only in a `parallel for` header, so it stays free as a name;
    # `first` only there too, after the iterable or the limit (where no expression goes on).
    for_header_depth = -1
    parallel_header = limit_taken = False
    last: str | None = None
    pending_nl: Token | None = None
    line_has_token = False
    # `select {` at a statement's head opens a select body; `after` heads an arm of one.
    select_opening = False
    select_depths: list[int] = []
    while pos < end:
        m = match(text, pos)
        if m is None:
            raise _lex_error(text, pos, line, line_start, offset)
        kind = m.lastgroup or ""
        pos = m.end()
        if kind == "IDENT":
            value = m.group(kind)
            kind = keywords.get(value) or ("TYPE_NAME" if value[0].isupper() else "NAME")
            if value == "publish" and _PUBLISH_HEAD.match(text, pos):
                # `publish name = value`: a keyword only here, where `publish` followed by a
                # name cannot be anything else, so tools and fields may keep the name.
                kind = "PUBLISH"
            elif value == "start" and last != "DOT" and _START_HEAD.match(text, pos):
                # `start child(...)`: a name followed by a call cannot be anything else.
                kind = "START"
            elif last == "DOT" and kind not in ("NAME", "TYPE_NAME"):
                # After `.` a word is a field name (`e.type`, `x.not`): as a keyword,
                # `and`/`not` would also swallow the newline that ends the statement.
                kind = "NAME"
            elif (
                value == "select"
                and stack
                and stack[-1] == "RBRACE"
                and (not line_has_token or last in ("LBRACE", "AT_ID"))
                and _SELECT_HEAD.match(text, pos)
            ):
                # `select { ... }`: a name followed by a block at a statement's head
                # cannot be anything else, so `select` stays free as a name.
                kind = "SELECT"
                select_opening = True
            elif (
                value == "after"
                and select_depths
                and select_depths[-1] == len(stack)
                and (not line_has_token or last == "LBRACE")
            ):
                kind = "AFTER"
            elif not stack and kind == "NAME":
                if value == "error" and _ERROR_DECL.match(text, pos):
                    kind = "ERROR"
                elif value == "on_failure" and last == "RBRACE":
                    kind = "ON_FAILURE"
            if kind == "FOR":
                for_header_depth = len(stack)
                parallel_header = last == "PARALLEL"
                limit_taken = False
            elif kind == "LIMIT":
                if for_header_depth != len(stack) or limit_taken:
                    kind = "NAME"
                limit_taken = True
            elif (
                value == "first"
                and parallel_header
                and for_header_depth == len(stack)
                and last in _ENDS_OPERAND
            ):
                kind = "FIRST"
        elif kind == "OP":
            value = m.group(kind)
            kind = punctuation[value]
            if kind == "LBRACE" and for_header_depth == len(stack):
                for_header_depth = -1
            if kind in openers:
                stack.append(openers[kind])
                if select_opening and kind == "LBRACE":
                    select_depths.append(len(stack))
                select_opening = False
            elif kind in closers and stack and stack[-1] == kind:
                if select_depths and select_depths[-1] == len(stack):
                    select_depths.pop()
                stack.pop()
        elif kind == "NL":
            at = pos - 1
            separates = not stack or stack[-1] == "RBRACE"
            if separates and last is not None and last not in no_nl_after and pending_nl is None:
                col_at = at - line_start + 1
                pending_nl = Token(
                    "_NL", "\n", at + offset, line, col_at, line, col_at + 1, pos + offset
                )
            line += 1
            line_start = pos
            line_has_token = False
            continue
        elif kind == "COMMENT":
            if comments is not None:
                at = m.start(kind)
                comments.append(
                    Comment(
                        m.group(kind), line, at - line_start + 1, at + offset, not line_has_token
                    )
                )
            continue
        elif kind == "END":
            break
        elif kind == "BAD_NUMBER":
            at = m.start(kind)
            raise _bad_number(m.group(kind), line, at - line_start + 1, at + offset)
        else:
            value = m.group(kind)
        if pending_nl is not None:
            if kind not in no_nl_before:
                yield pending_nl
            pending_nl = None
        line_has_token = True
        start = pos - len(value)
        tok_line = line
        tok_col = start - line_start + 1
        if kind == "LONG_STRING":
            newlines = value.count("\n")
            if newlines:
                line += newlines
                line_start = start + value.rfind("\n") + 1
        yield Token(
            kind, value, start + offset, tok_line, tok_col, line, pos - line_start + 1, pos + offset
        )
        last = kind


def _lex_error(text: str, pos: int, line: int, line_start: int, offset: int) -> LexError:
    """The diagnostic for the character at `pos`, which starts no token."""
    while pos < len(text) and text[pos] in " \t\f\r":
        pos += 1
    ch = text[pos] if pos < len(text) else ""
    col = pos - line_start + 1
    if ch == '"':
        if text.startswith('"""', pos):
            return LexError(
                "E001",
                'unterminated string: `"""` has no closing `"""`',
                line,
                col,
                pos + offset,
                3,
                help='end the text with `"""`',
            )
        return LexError(
            "E001",
            'unterminated string: `"` has no closing `"` on this line',
            line,
            col,
            pos + offset,
            1,
            help='close the string with `"`, or use `"""` for text over several lines',
        )
    if ch == "$":
        return LexError(
            "E002",
            "`$` must be followed by an amount",
            line,
            col,
            pos + offset,
            1,
            help="money is written `$0.50` or `$100`",
        )
    if ch == "!":
        return LexError(
            "E002", "unexpected `!`", line, col, pos + offset, 1, help="write `not x`, or `!=`"
        )
    if ch in "&|":
        word = "and" if ch == "&" else "or"
        return LexError(
            "E002", f"unexpected `{ch}`", line, col, pos + offset, 1, help=f"write `{word}`"
        )
    if ch == "'":
        return LexError(
            "E002",
            "unexpected `'`",
            line,
            col,
            pos + offset,
            1,
            help='strings are written in double quotes: `"text"`',
        )
    shown = ch if ch.isprintable() else f"\\u{ord(ch):04x}"
    return LexError("E002", f"unexpected character `{shown}`", line, col, pos + offset, 1)


_UNIT_MILLIS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def _bad_number(text: str, line: int, col: int, pos: int) -> LexError:
    """E014 for a number glued to letters or dots: `5min`, `1.5s`, `1.2.3`, `$5k`."""
    help = (
        "a number is `42` or `0.5`; a duration is a whole number and a unit: `ms` `s` `m` `h` `d`"
    )
    digits = len(text) - len(text.lstrip("$0123456789."))
    number, unit = text[:digits], text[digits:]
    if text.startswith("$"):
        help = "money is written `$` and an amount: `$0.50`, `$100`"
    elif unit in _UNIT_MILLIS and number.count(".") == 1 and number.replace(".", "").isdigit():
        millis = float(number) * _UNIT_MILLIS[unit]
        whole = [u for u, size in _UNIT_MILLIS.items() if millis % size == 0]
        hint = f": write `{int(millis // _UNIT_MILLIS[whole[-1]])}{whole[-1]}`" if whole else ""
        help = f"durations are whole numbers of a unit{hint}"
    elif unit[:1] in ("e", "E") and number.isdigit() and unit[1:].isdigit():
        help = f"a number with an exponent needs a decimal point: `{number}.0{unit}`"
    elif number.isdigit() and unit:
        help = f"`{unit}` is not a duration unit; the units are `ms` `s` `m` `h` `d`"
    return LexError("E014", f"bad number `{text}`", line, col, pos, len(text), help=help)
