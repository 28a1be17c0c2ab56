"""The lexer: one compiled master regex, keyword lookup and newline handling.

Newlines end statements, options and fields. They are dropped inside `( )` and
`[ ]`, after tokens that cannot end a statement (`{`, `,`, operators), and
before `}`, `else`, `catch` and `finally`, so the grammar stays LALR(1) and
calls, lists and conditions may span lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from lark import Token

from mnlang.syntax.tokens import KEYWORDS, PUNCTUATION

_MASTER = re.compile(
    r"""
    (?P<WS>[ \t\f\r]+)
  | (?P<NL>\n)
  | (?P<COMMENT>\#[^\n]*)
  | (?P<LONG_STRING>\"\"\"(?:[^"\\]|\\.|"(?!""))*\"\"\")
  | (?P<STRING>"(?:[^"\\\n]|\\.)*")
  | (?P<MONEY>\$[0-9]+(?:\.[0-9]+)?)
  | (?P<DURATION>[0-9]+(?:ms|s|m|h|d)(?![A-Za-z0-9_]))
  | (?P<FLOAT>[0-9]+\.[0-9]+(?:[eE][+-]?[0-9]+)?)
  | (?P<INT>[0-9]+)
  | (?P<IDENT>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<AT_ID>@[a-z_][A-Za-z0-9_]*)
  | (?P<OP>==|!=|<=|>=|->|=>|\?\?|[{}()\[\],:.=<>+\-*/%?])
    """,
    re.VERBOSE,
)

# After these a newline cannot end anything, so it is not a separator.
_NO_NL_AFTER = frozenset(
    "LBRACE COMMA COLON ASSIGN ARROW FATARROW EQ NE LT GT LE GE PLUS MINUS STAR SLASH "
    "PERCENT QQ AND OR NOT DOT".split()
)
_NO_NL_BEFORE = frozenset("RBRACE RPAR RSQB ELSE CATCH FINALLY".split())
_OPENERS = {"LBRACE": "RBRACE", "LPAR": "RPAR", "LSQB": "RSQB"}
_CLOSERS = frozenset(_OPENERS.values())


class LexError(Exception):
    """A character sequence that is no token; carries its position for a diagnostic."""

    def __init__(self, code: str, message: str, line: int, col: int, pos: int, length: int) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.line = line
        self.col = col
        self.pos = pos
        self.length = length


@dataclass(slots=True)
class Comment:
    """A `#` comment, kept for the formatter and the language server."""

    text: str
    line: int
    col: int
    pos: int
    own_line: bool


def tokenize(
    text: str,
    line: int = 1,
    col: int = 1,
    offset: int = 0,
    comments: list[Comment] | None = None,
) -> Iterator[Token]:
    """Yield Lark tokens for `text`, positioned as if `text` began at (line, col, offset)."""
    match = _MASTER.match
    keywords = KEYWORDS
    punctuation = PUNCTUATION
    pos = 0
    end = len(text)
    line_start = -col + 1  # column = pos - line_start + 1
    stack: list[str] = []
    last: str | None = None
    pending_nl: Token | None = None
    line_has_token = False
    while pos < end:
        m = match(text, pos)
        if m is None:
            ch = text[pos]
            c = pos - line_start + 1
            if ch == '"':
                if text.startswith('"""', pos):
                    raise LexError(
                        "E001",
                        "unterminated string: `\"\"\"` has no closing `\"\"\"`",
                        line,
                        c,
                        pos + offset,
                        3,
                    )
                raise LexError(
                    "E001", "unterminated string: `\"` has no closing `\"` on this line",
                    line, c, pos + offset, 1,
                )
            if ch == "$":
                raise LexError("E002", "`$` must be followed by an amount, e.g. `$0.50`", line, c, pos + offset, 1)
            raise LexError("E002", f"unexpected character `{ch}`", line, c, pos + offset, 1)
        kind = m.lastgroup
        value = m.group()
        start = pos
        pos = m.end()
        if kind == "WS":
            continue
        if kind == "NL":
            line += 1
            line_start = pos
            line_has_token = False
            if stack and stack[-1] != "RBRACE":
                continue
            if last is None or last in _NO_NL_AFTER or pending_nl is not None:
                continue
            pending_nl = Token("_NL", "\n", start + offset, line - 1, start - line_start + 1)
            continue
        if kind == "COMMENT":
            if comments is not None:
                comments.append(
                    Comment(value, line, start - line_start + 1, start + offset, not line_has_token)
                )
            continue
        if kind == "IDENT":
            kind = keywords.get(value) or ("TYPE_NAME" if value[0].isupper() else "NAME")
        elif kind == "OP":
            kind = punctuation[value]
            if kind in _OPENERS:
                stack.append(_OPENERS[kind])
            elif kind in _CLOSERS and stack and stack[-1] == kind:
                stack.pop()
        if pending_nl is not None:
            if kind not in _NO_NL_BEFORE:
                yield pending_nl
            pending_nl = None
        line_has_token = True
        tok_line = line
        tok_col = start - line_start + 1
        if kind == "LONG_STRING":
            newlines = value.count("\n")
            if newlines:
                line += newlines
                line_start = start + value.rfind("\n") + 1
        yield Token(
            kind,
            value,
            start + offset,
            tok_line,
            tok_col,
            line,
            pos - line_start + 1,
            pos + offset,
        )
        last = kind
