"""Syntax errors in words: what was expected, what was found, and a fix for common mistakes.

The parser hands over the token it could not use, the terminals it would have
accepted and the token before; this module turns them into one diagnostic:
E011 (missing `:`, also in a workflow's head option lines), E012 (`=` for `:`), E013 (unclosed bracket, pointing at
the opener), E010 otherwise, with special help for capitalised value names,
lowercase type names, reserved words and misspelt declaration keywords.
"""

from __future__ import annotations

import difflib

from mnlang.diagnostics import Diagnostic, Diagnostics, Fix, Label, insertion, replacement
from mnlang.span import Span
from mnlang.syntax.lalr import ParseError
from mnlang.syntax.lexer import LexError, Token, tokenize
from mnlang.syntax.tokens import KEYWORDS, display

_EXPR_START = frozenset(
    {
        *("NAME", "TYPE_NAME", "INT", "FLOAT", "MONEY", "DURATION", "STRING", "LONG_STRING"),
        *("TRUE", "FALSE", "NULL", "LPAR", "LSQB", "MINUS", "NOT", "LBRACE", "START"),
    }
)
_STMT_START = _EXPR_START | frozenset(
    {
        *("IF", "MATCH", "FOR", "WHILE", "PARALLEL", "CHECKPOINT", "WAIT", "TRY", "RETURN"),
        *("FAIL", "LOG", "YIELD", "AT_ID", "TYPE"),
    }
)
_DECL_START = frozenset(
    {
        *("IMPORT", "TYPE", "ENUM", "TOOL", "EFFECT", "AGENT", "EVENT", "POLICY", "SCHEDULE"),
        *("WORKFLOW", "SCENARIO"),
    }
)
_DECL_WORDS = sorted(word.lower() for word in _DECL_START)
_OPENER_OF = {"RBRACE": "LBRACE", "RPAR": "LPAR", "RSQB": "LSQB"}
_KEYWORD_TYPES = frozenset(KEYWORDS.values())
# The option keys a workflow body may start with; the checker's `WORKFLOW_OPTIONS` is the
# authority (a test keeps the two equal; the syntax layer does not import the checker).
WORKFLOW_OPTION_KEYS = frozenset({"class", "budget", "deadline", "limit"})
# Tokens that cannot continue an expression after a name: after a lone name they mean a
# missing `:` (operators, `(`, `[` and `.` would extend the name into an expression).
_OPTION_VALUE_START = frozenset(
    {
        *("NAME", "TYPE_NAME", "INT", "FLOAT", "MONEY", "DURATION", "STRING", "LONG_STRING"),
        *("TRUE", "FALSE", "NULL", "NOT", "LBRACE"),
    }
)


def report_syntax_error(
    diags: Diagnostics,
    file: str,
    error: ParseError | LexError,
    text: str,
    line: int,
    col: int,
    offset: int,
) -> Diagnostic:
    """Add the diagnostic for `error` and return it; `text` starts at (line, col, offset)
    of `file`."""
    if isinstance(error, LexError):
        span = Span(
            file,
            error.line,
            error.col,
            error.line,
            error.col + error.length,
            error.pos,
            error.pos + error.length,
        )
        return diags.add(error.code, span, error.message, help=error.help)
    _Report(diags, file, error, text, line, col, offset).add()
    return diags.items[-1]


class _Report:
    def __init__(
        self,
        diags: Diagnostics,
        file: str,
        error: ParseError,
        text: str,
        line: int,
        col: int,
        offset: int,
    ) -> None:
        self.diags = diags
        self.file = file
        self.tok: Token = error.token
        self.prev: Token | None = error.previous
        self.expected = error.expected
        self.text = text
        self.origin = (line, col, offset)
        self.span = self.token_span(self.tok)

    def token_span(self, t: Token) -> Span:
        return Span(self.file, t.line, t.column, t.end_line, t.end_column, t.start_pos, t.end_pos)

    def colon_after(self, t: Token) -> Fix:
        """The fix that writes the missing `:` right after the token `t`."""
        return insertion(
            self.file, t.end_pos, t.end_line, t.end_column, ":", f"Add `:` after `{t.value}`"
        )

    def found(self) -> str:
        tok = self.tok
        if tok.type == "$END":
            return "the end of the file" if self.origin == (1, 1, 0) else "the end of the text"
        if tok.type == "_NL":
            return "a new line"
        if tok.type in ("STRING", "LONG_STRING"):
            return "a string"
        if tok.type in _KEYWORD_TYPES:
            return f"the reserved word `{tok.value}`"
        if tok.type == "TYPE_NAME":
            return f"the type name `{tok.value}`"
        return f"`{tok.value}`"

    def add(self) -> None:
        for rule in (
            self.unclosed,
            self.equals_for_colon,
            self.missing_colon,
            self.workflow_option_missing_colon,
            self.capitalised_value,
            self.reserved_word_assigned,
            self.lowercase_type,
            self.misspelt_declaration,
        ):
            if rule():
                return
        self.diags.add("E010", self.span, self.expected_found(), help=self.generic_help())

    def expected_found(self) -> str:
        return f"expected {describe_expected(self.expected)}, found {self.found()}"

    # ---- the common mistakes ----------------------------------------------------

    def equals_for_colon(self) -> bool:
        prev = self.prev
        if self.tok.type != "ASSIGN" or "COLON" not in self.expected or prev is None:
            return False
        if prev.type not in ("NAME", "TYPE"):
            return False
        self.diags.add(
            "E012",
            self.span,
            f"expected `:` after `{prev.value}`, found `=`",
            help=f"options and fields are written `{prev.value}: value`",
            fix=replacement(self.span, ":"),
        )
        return True

    def missing_colon(self) -> bool:
        prev = self.prev
        # In a statement (`ASSIGN` possible) `x y` is too ambiguous to call a missing `:`.
        if "COLON" not in self.expected or "ASSIGN" in self.expected or prev is None:
            return False
        if prev.type not in ("NAME", "TYPE") or self.tok.type == "$END":
            return False
        if self.tok.type not in _EXPR_START and self.tok.type != "LBRACE":
            return False
        self.diags.add(
            "E011",
            self.token_span(prev),
            f"missing `:` after `{prev.value}`",
            help=f"write `{prev.value}: {self.tok.value}`",
            fix=self.colon_after(prev),
        )
        return True

    def workflow_option_missing_colon(self) -> bool:
        """`budget $0.50` at the head of a workflow body: E011 with the fixed line.

        In a statement `x y` is a plain E010, but a known workflow option key opening a line
        among the workflow's leading option lines can only be an option missing its `:`.
        """
        tok, prev = self.tok, self.prev
        if prev is None or prev.type != "NAME" or prev.value not in WORKFLOW_OPTION_KEYS:
            return False
        if "COLON" not in self.expected or tok.type not in _OPTION_VALUE_START:
            return False
        if tok.line != prev.end_line:
            return False
        value = _workflow_head_option_value(self.text, self.origin, prev, tok)
        if value is None:
            return False
        self.diags.add(
            "E011",
            self.token_span(prev),
            f"missing `:` after the workflow option `{prev.value}`",
            help=f"write `{prev.value}: {value}`",
            fix=self.colon_after(prev),
        )
        return True

    def unclosed(self) -> bool:
        """E013 at the opener when the input ends, or the next declaration starts, inside
        brackets."""
        tok, prev = self.tok, self.prev
        if tok.type == "$END":
            if not {c for c in _OPENER_OF if c in self.expected}:
                return False
            stop = tok
        elif tok.type in _DECL_START and tok.column == 1:
            stop = tok
        elif prev is not None and prev.type in _DECL_START and prev.column == 1:
            stop = prev  # `type` also starts an option line, so the error comes one later
        else:
            return self.open_paren_label()
        found = _unclosed_opener(self.text, self.origin, stop.start_pos)
        if found is None:
            return False
        opener, note = found
        closer = {"LBRACE": "}", "LPAR": ")", "LSQB": "]"}[opener.type]
        where = (
            "the file ends" if stop.type == "$END" else f"`{stop.value}` starts on line {stop.line}"
        )
        self.diags.add(
            "E013",
            self.token_span(opener),
            f"unclosed `{opener.value}`: {where} before its `{closer}`",
            help=f"add the matching `{closer}`",
            notes=[note] if note else None,
        )
        return True

    def open_paren_label(self) -> bool:
        """A new line inside `( )` or `[ ]` is no separator: when the error comes on a later
        line than the last token, the bracket was probably left open."""
        prev = self.prev
        if prev is None or self.tok.line <= prev.end_line:
            return False
        if not {"RPAR", "RSQB"} & self.expected:
            return False
        found = _unclosed_opener(self.text, self.origin, self.tok.start_pos)
        if found is None or found[0].type == "LBRACE":
            return False
        opener = found[0]
        closer = ")" if opener.type == "LPAR" else "]"
        self.diags.add(
            "E010",
            self.span,
            f"expected `{closer}` or `,`, found {self.found()}",
            labels=[Label(self.token_span(opener), f"this `{opener.value}` is not closed")],
            help=f"add the `{closer}`; inside brackets a new line does not end a statement",
        )
        return True

    def capitalised_value(self) -> bool:
        tok, prev = self.tok, self.prev
        if tok.type == "TYPE_NAME" and "NAME" in self.expected and "TYPE_NAME" not in self.expected:
            self.diags.add(
                "E010",
                self.span,
                f"expected a name, found the type name `{tok.value}`",
                help="names of values, fields, tools and workflows start with a small letter: "
                f"`{_lower_first(tok.value)}`",
                fix=replacement(self.span, _lower_first(tok.value)),
            )
            return True
        if (
            prev is not None
            and prev.type == "TYPE_NAME"
            and tok.type in ("ASSIGN", "COLON")
            and prev.line == tok.line
        ):
            self.diags.add(
                "E010",
                self.token_span(prev),
                f"`{prev.value}` starts with a capital letter, so it names a type, not a value",
                help=f"names of values start with a small letter: `{_lower_first(prev.value)}`",
            )
            return True
        return False

    def reserved_word_assigned(self) -> bool:
        prev = self.prev
        if prev is None or prev.type not in _KEYWORD_TYPES or self.tok.type != "ASSIGN":
            return False
        self.diags.add(
            "E010",
            self.token_span(prev),
            f"`{prev.value}` is a reserved word, so it cannot be assigned",
            help=f"choose another name, e.g. `{prev.value}_result`",
        )
        return True

    def lowercase_type(self) -> bool:
        tok = self.tok
        if tok.type != "NAME" or "TYPE_NAME" not in self.expected or "NAME" in self.expected:
            return False
        capitalised = tok.value[:1].upper() + tok.value[1:]
        self.diags.add(
            "E010",
            self.span,
            f"expected a type name, found `{tok.value}`",
            help=f"type names start with a capital letter: `{capitalised}`",
            fix=replacement(self.span, capitalised),
        )
        return True

    def misspelt_declaration(self) -> bool:
        if len(self.expected & _DECL_START) < len(_DECL_START) or self.tok.type == "$END":
            return False
        close = difflib.get_close_matches(self.tok.value.lower(), _DECL_WORDS, n=1, cutoff=0.6)
        hint = f"did you mean `{close[0]}`?" if close else None
        self.diags.add(
            "E010",
            self.span,
            f"expected a declaration, found {self.found()}",
            help=hint or "a file holds declarations: " + ", ".join(f"`{w}`" for w in _DECL_WORDS),
            fix=replacement(self.span, close[0]) if close else None,
        )
        return True

    def generic_help(self) -> str | None:
        tok = self.tok
        if tok.type in _KEYWORD_TYPES and "NAME" in self.expected:
            return f"`{tok.value}` is a reserved word; choose another name"
        if tok.type == "_NL":
            if "LBRACE" in self.expected:
                return "put the `{` on the same line"
            return "a new line ends a statement here; inside `( )` or `[ ]` it does not"
        return None


def describe_expected(expected: set[str]) -> str:
    """The terminals in words: "`}`", "`,` or `)`", "one of: `}`, a statement, ..."."""
    rest = set(expected)
    words: list[str] = []
    if len(rest & _STMT_START) >= 8 and "IF" in rest:
        words.append("a statement")
        rest -= _STMT_START
    elif len(rest & _DECL_START) >= 5:
        words.append("a declaration")
        rest -= _DECL_START
    if len(rest & _EXPR_START) >= 8:
        words.append("an expression")
        rest -= _EXPR_START
    if "STRING" in rest and "LONG_STRING" in rest:
        rest.discard("LONG_STRING")
    # Punctuation first, then words; a new line and the end of the file last.
    order = sorted(rest - {"_NL", "$END"}, key=lambda t: (t not in _PUNCT_ORDER, t))
    words.extend(display(t) for t in order)
    words.extend(display(t) for t in ("_NL", "$END") if t in rest)
    if not words:
        return "nothing more"
    if len(words) == 1:
        return words[0]
    if len(words) == 2:
        return f"{words[0]} or {words[1]}"
    shown = words[:8] + (["..."] if len(words) > 8 else [])
    return "one of: " + ", ".join(shown)


_PUNCT_ORDER = frozenset(
    {
        *("RBRACE", "RPAR", "RSQB", "COMMA", "COLON", "ASSIGN", "LBRACE", "LPAR", "LSQB"),
        *("DOT", "ARROW", "FATARROW", "QMARK"),
    }
)


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def _unclosed_opener(
    text: str, origin: tuple[int, int, int], before: int
) -> tuple[Token, str | None] | None:
    """The bracket left open before offset `before`, and a note on how it was found.

    A `}` that is the first token of its line but not indented like the line of the
    `{` it closes probably belongs to an outer block, so the `{` it closes is the one
    missing its `}`; otherwise the innermost open bracket is.
    """
    line, col, offset = origin
    stack: list[Token] = []
    suspect: tuple[Token, str] | None = None
    lines = text.split("\n")
    last_line = -1
    try:
        for tok in tokenize(text, line, col, offset):
            if tok.start_pos >= before:
                break
            first_on_line = tok.line != last_line
            last_line = tok.end_line
            if tok.type in ("LBRACE", "LPAR", "LSQB"):
                stack.append(tok)
            elif tok.type in _OPENER_OF and stack and stack[-1].type == _OPENER_OF[tok.type]:
                opener = stack.pop()
                if (
                    suspect is None
                    and tok.type == "RBRACE"
                    and first_on_line
                    and opener.line != tok.line
                    and _indent(lines, tok.line - line) != _indent(lines, opener.line - line)
                ):
                    suspect = (
                        opener,
                        f"the `}}` on line {tok.line} closes this `{{` but is indented "
                        "like an outer block",
                    )
    except LexError:
        return None
    if not stack:
        return None
    if suspect is not None:
        return suspect
    return stack[-1], None


def _workflow_head_option_value(
    text: str, origin: tuple[int, int, int], key: Token, value: Token
) -> str | None:
    """The rest of `key`'s line from `value` on, if `key` starts a line among the leading
    option lines of a workflow body; None otherwise.

    Re-reads the tokens from the start of `text`, keeping the open brackets: the `{` after
    `workflow name(...) -> T` opens a body, and the body's head lasts while each of its
    statements starts with `name:`.
    """
    line, col, offset = origin
    # Per open bracket: is it a workflow body whose statements so far are all option lines?
    in_head: list[bool] = []
    after_workflow = False
    at_stmt_start = False
    awaiting_colon = False
    end: int | None = None
    try:
        for tok in tokenize(text, line, col, offset):
            if end is not None:
                if tok.line != value.line or tok.type == "_NL":
                    break
                end = tok.end_pos
                continue
            if tok.start_pos == key.start_pos:
                if not (at_stmt_start and in_head and in_head[-1]):
                    return None
                end = value.end_pos
                continue
            if awaiting_colon:
                in_head[-1] = tok.type == "COLON"
                awaiting_colon = False
            elif at_stmt_start and in_head and in_head[-1]:
                awaiting_colon = tok.type in ("NAME", "TYPE")
                in_head[-1] = awaiting_colon
            at_stmt_start = tok.type in ("LBRACE", "_NL")
            if tok.type == "WORKFLOW" and not in_head:
                after_workflow = True
            elif tok.type in ("LBRACE", "LPAR", "LSQB"):
                is_body = tok.type == "LBRACE" and after_workflow and not in_head
                after_workflow = after_workflow and not is_body
                in_head.append(is_body)
            elif tok.type in ("RBRACE", "RPAR", "RSQB") and in_head:
                in_head.pop()
    except LexError:
        return None
    if end is None:
        return None
    shown = text[value.start_pos - offset : end - offset]
    first_line, _, rest = shown.partition("\n")
    return first_line + (" ..." if rest else "")


def _indent(lines: list[str], index: int) -> int:
    if not 0 <= index < len(lines):
        return -1
    text = lines[index]
    return len(text) - len(text.lstrip(" \t"))
