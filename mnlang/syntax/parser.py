"""The parser: Lark LALR over our lexer, building the AST while it parses.

The Lark parser is built once per process and cached on disk; the AST is
built by an inline transformer (no parse tree is materialised) and spans come
from the tokens, so no position propagation is needed.
"""

from __future__ import annotations

import threading
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer
from lark.lexer import Lexer
from lark.exceptions import UnexpectedInput, UnexpectedToken

from mnlang.resources import data_path
from mnlang.diagnostics import CompileError, Diagnostic, Diagnostics
from mnlang.span import Span
from mnlang.syntax import ast
from mnlang.syntax.lexer import Comment, LexError, tokenize
from mnlang.syntax.strings import StringError, split_string
from mnlang.syntax.tokens import display

_DURATION_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_EXPR_START = frozenset(
    "NAME TYPE_NAME INT FLOAT MONEY DURATION STRING LONG_STRING TRUE FALSE NULL LPAR LSQB "
    "MINUS NOT".split()
)
_STMT_START = _EXPR_START | frozenset(
    "IF MATCH FOR WHILE PARALLEL CHECKPOINT WAIT TRY RETURN FAIL LOG YIELD AT_ID LIMIT TYPE".split()
)
_DECL_START = frozenset(
    "IMPORT TYPE ENUM TOOL EFFECT AGENT EVENT POLICY SCHEDULE WORKFLOW SCENARIO".split()
)


def grammar_text() -> str:
    return (data_path("grammar") / "mnlang.lark").read_text("utf-8")


class _Origin(threading.local):
    """Where the text being lexed starts in its file (interpolations start mid-file)."""

    def __init__(self) -> None:
        self.stack: list[tuple[int, int, int, list[Comment] | None]] = []


_origin = _Origin()


class _Lexer(Lexer):
    """Lark custom lexer (interface 0): delegates to `tokenize` at the current origin."""

    def __init__(self, lexer_conf: Any) -> None:
        pass

    def lex(self, text: str) -> Any:
        line, col, offset, comments = _origin.stack[-1]
        return tokenize(text, line, col, offset, comments)


def _span(file: str, first: Any, last: Any) -> Span:
    a = first.span if isinstance(first, ast.Node) else first
    b = last.span if isinstance(last, ast.Node) else last
    if isinstance(a, Token):
        line, col, start = a.line, a.column, a.start_pos
    else:
        line, col, start = a.line, a.col, a.start
    if isinstance(b, Token):
        end_line, end_col, end = b.end_line, b.end_column, b.end_pos
    else:
        end_line, end_col, end = b.end_line, b.end_col, b.end
    return Span(file, line, col, end_line, end_col, start, end)


class _Builder(Transformer[Token, Any]):
    """One method per grammar rule; each returns an AST node."""

    def __init__(self) -> None:
        super().__init__(visit_tokens=False)
        self.file = "<string>"
        self.diags: Diagnostics = Diagnostics()

    def sp(self, first: Any, last: Any) -> Span:
        return _span(self.file, first, last)

    def tok_ident(self, tok: Token) -> ast.Ident:
        return ast.Ident(self.sp(tok, tok), str(tok))

    # ---- declarations ------------------------------------------------------

    def start(self, c: list[Any]) -> list[Any]:
        return c

    def dotted_name(self, c: list[Token]) -> list[ast.Ident]:
        return [self.tok_ident(t) for t in c if t.type == "NAME"]

    def import_decl(self, c: list[Any]) -> ast.Import:
        path = c[1]
        names = [x for x in c[2:] if isinstance(x, ast.Ident)]
        return ast.Import(self.sp(c[0], c[-1] if len(c) > 2 else path[-1]), path, names)

    def ident(self, c: list[Token]) -> ast.Ident:
        return self.tok_ident(c[0])

    def field_decl(self, c: list[Any]) -> ast.FieldDecl:
        default = c[4] if len(c) > 4 else None
        return ast.FieldDecl(self.sp(c[0], c[-1]), c[0], c[2], default)

    param = field_decl

    def type_decl(self, c: list[Any]) -> ast.TypeDecl:
        fields = [x for x in c if isinstance(x, ast.FieldDecl)]
        return ast.TypeDecl(self.sp(c[0], c[-1]), self.tok_ident(c[1]), fields)

    def enum_decl(self, c: list[Any]) -> ast.EnumDecl:
        members = [x for x in c if isinstance(x, ast.Ident)]
        return ast.EnumDecl(self.sp(c[0], c[-1]), self.tok_ident(c[1]), members)

    def params(self, c: list[Any]) -> list[ast.Param]:
        return [ast.Param(p.span, p.name, p.type, p.default) for p in c if isinstance(p, ast.FieldDecl)]

    def callable_decl(self, c: list[Any]) -> ast.CallableDecl:
        kind_tok, name, params, _arrow, returns, options = c
        return ast.CallableDecl(
            self.sp(kind_tok, options), name, str(kind_tok), params, returns, options
        )

    def event_decl(self, c: list[Any]) -> ast.EventDecl:
        payload = c[3] if len(c) > 2 else None
        return ast.EventDecl(self.sp(c[0], c[-1]), c[1], payload)

    def policy_decl(self, c: list[Any]) -> ast.PolicyDecl:
        return ast.PolicyDecl(self.sp(c[0], c[2]), c[1], c[2])

    def schedule_decl(self, c: list[Any]) -> ast.ScheduleDecl:
        return ast.ScheduleDecl(self.sp(c[0], c[2]), c[1], c[2])

    def scenario_decl(self, c: list[Any]) -> ast.ScenarioDecl:
        return ast.ScenarioDecl(self.sp(c[0], c[2]), c[1], c[2])

    def workflow_decl(self, c: list[Any]) -> ast.WorkflowDecl:
        body: ast.Block = c[5]
        options: list[ast.OptionStmt] = []
        stmts = body.stmts
        while stmts and isinstance(stmts[0], ast.OptionStmt) and stmts[0].label is None:
            options.append(stmts[0])  # type: ignore[arg-type]
            stmts = stmts[1:]
        body.stmts = stmts
        return ast.WorkflowDecl(self.sp(c[0], body), c[1], c[2], c[4], options, body)

    # ---- types ---------------------------------------------------------------

    def simple_type(self, c: list[Token]) -> ast.TypeRef:
        return ast.TypeRef(self.sp(c[0], c[0]), str(c[0]))

    def generic_type(self, c: list[Any]) -> ast.TypeRef:
        return ast.TypeRef(self.sp(c[0], c[3]), str(c[0]), [c[2]])

    def optional_type(self, c: list[Any]) -> ast.TypeRef:
        inner: ast.TypeRef = c[0]
        return ast.TypeRef(self.sp(inner, c[1]), inner.name, inner.args, True) if not inner.optional else ast.TypeRef(self.sp(inner, c[1]), inner.name, inner.args, True)

    # ---- statements ----------------------------------------------------------

    def block(self, c: list[Any]) -> ast.Block:
        return ast.Block(self.sp(c[0], c[-1]), [s for s in c[1:-1] if isinstance(s, ast.Stmt)])

    def stmt(self, c: list[Any]) -> ast.Stmt:
        if len(c) == 2:
            label_tok: Token = c[0]
            node: ast.Stmt = c[1]
            node.label = ast.Ident(self.sp(label_tok, label_tok), str(label_tok)[1:])
            node.span = self.sp(label_tok, node)
            return node
        result: ast.Stmt = c[0]
        return result

    def assign(self, c: list[Any]) -> ast.Assign:
        return ast.Assign(self.sp(c[0], c[2]), c[0], c[2])

    def expr_stmt(self, c: list[Any]) -> ast.ExprStmt:
        return ast.ExprStmt(c[0].span, c[0])

    def option_key(self, c: list[Token]) -> ast.Ident:
        return self.tok_ident(c[0])

    def option_stmt(self, c: list[Any]) -> ast.OptionStmt:
        return ast.OptionStmt(self.sp(c[0], c[2]), c[0], c[2])

    def if_stmt(self, c: list[Any]) -> ast.If:
        orelse = c[4] if len(c) > 3 else None
        return ast.If(self.sp(c[0], c[-1]), c[1], c[2], orelse)

    def match_stmt(self, c: list[Any]) -> ast.Match:
        arms = [x for x in c if isinstance(x, ast.MatchArm)]
        return ast.Match(self.sp(c[0], c[-1]), c[1], arms)

    def match_arm(self, c: list[Any]) -> ast.MatchArm:
        return ast.MatchArm(self.sp(c[0], c[-1]), [x for x in c if isinstance(x, ast.Ident)], c[-1])

    def for_stmt(self, c: list[Any]) -> ast.For:
        parallel = isinstance(c[0], Token) and c[0].type == "PARALLEL"
        rest = c[1:] if parallel else c
        var, iterable = rest[1], rest[3]
        limit = rest[5] if len(rest) > 5 else None
        return ast.For(self.sp(c[0], c[-1]), var, iterable, c[-1], parallel, limit)

    def while_stmt(self, c: list[Any]) -> ast.While:
        return ast.While(self.sp(c[0], c[-1]), c[1], c[3], c[5], c[6])

    def parallel_stmt(self, c: list[Any]) -> ast.Parallel:
        return ast.Parallel(self.sp(c[0], c[-1]), [x for x in c if isinstance(x, ast.Block)])

    def branch(self, c: list[Any]) -> ast.Block:
        node = c[0]
        if isinstance(node, ast.Block):
            return node
        return ast.Block(node.span, [node])

    def checkpoint(self, c: list[Any]) -> ast.Checkpoint:
        return ast.Checkpoint(self.sp(c[0], c[2]), c[1], c[2])

    def wait(self, c: list[Any]) -> ast.Wait:
        if len(c) == 3:
            return ast.Wait(self.sp(c[0], c[2]), None, c[1], c[2])
        return ast.Wait(self.sp(c[0], c[1]), c[1], None, None)

    def try_stmt(self, c: list[Any]) -> ast.Try:
        catches = [x for x in c if isinstance(x, ast.Catch)]
        final = c[-1] if isinstance(c[-2], Token) and c[-2].type == "FINALLY" else None
        return ast.Try(self.sp(c[0], c[-1]), c[1], catches, final)

    def catch_clause(self, c: list[Any]) -> ast.Catch:
        idents = [x for x in c if isinstance(x, ast.Ident)]
        has_var = any(isinstance(x, Token) and x.type == "AS" for x in c)
        var = idents.pop() if has_var else None
        return ast.Catch(self.sp(c[0], c[-1]), idents, var, c[-1])

    def return_stmt(self, c: list[Any]) -> ast.Return:
        return ast.Return(self.sp(c[0], c[-1]), c[1] if len(c) > 1 else None)

    def fail_stmt(self, c: list[Any]) -> ast.Fail:
        return ast.Fail(self.sp(c[0], c[1]), c[1])

    def log_stmt(self, c: list[Any]) -> ast.Log:
        return ast.Log(self.sp(c[0], c[1]), c[1])

    def yield_stmt(self, c: list[Any]) -> ast.Yield:
        return ast.Yield(self.sp(c[0], c[1]), c[1])

    # ---- expressions -----------------------------------------------------------

    def _binary_chain(self, c: list[Any]) -> ast.Expr:
        node: ast.Expr = c[0]
        for i in range(1, len(c), 2):
            right: ast.Expr = c[i + 1]
            node = ast.Binary(self.sp(node, right), str(c[i]), node, right)
        return node

    or_expr = and_expr = comparison = coalesce = sum = product = _binary_chain

    def unary(self, c: list[Any]) -> ast.Unary:
        return ast.Unary(self.sp(c[0], c[1]), str(c[0]), c[1])

    def field(self, c: list[Any]) -> ast.Field:
        return ast.Field(self.sp(c[0], c[2]), c[0], c[2])

    def index(self, c: list[Any]) -> ast.Index:
        return ast.Index(self.sp(c[0], c[3]), c[0], c[2])

    def call(self, c: list[Any]) -> ast.Call:
        args = [x for x in c[2:-1] if isinstance(x, ast.Node)]
        return ast.Call(self.sp(c[0], c[-1]), c[0], args)

    def name(self, c: list[Token]) -> ast.Name:
        return ast.Name(self.sp(c[0], c[0]), str(c[0]))

    def enum_member(self, c: list[Any]) -> ast.EnumMember:
        return ast.EnumMember(self.sp(c[0], c[2]), self.tok_ident(c[0]), c[2])

    def int_lit(self, c: list[Token]) -> ast.IntLit:
        return ast.IntLit(self.sp(c[0], c[0]), int(c[0]))

    def float_lit(self, c: list[Token]) -> ast.FloatLit:
        return ast.FloatLit(self.sp(c[0], c[0]), float(c[0]))

    def money_lit(self, c: list[Token]) -> ast.MoneyLit:
        span = self.sp(c[0], c[0])
        try:
            value = Decimal(str(c[0])[1:])
        except InvalidOperation:  # the lexer's pattern makes this unreachable in practice
            self.diags.add("E014", span, f"bad amount `{c[0]}`")
            value = Decimal(0)
        return ast.MoneyLit(span, value)

    def duration_lit(self, c: list[Token]) -> ast.DurationLit:
        text = str(c[0])
        unit = "ms" if text.endswith("ms") else text[-1]
        return ast.DurationLit(self.sp(c[0], c[0]), int(text[: -len(unit)]) * _DURATION_UNITS[unit], text)

    def bool_lit(self, c: list[Token]) -> ast.BoolLit:
        return ast.BoolLit(self.sp(c[0], c[0]), c[0].type == "TRUE")

    def null_lit(self, c: list[Token]) -> ast.NullLit:
        return ast.NullLit(self.sp(c[0], c[0]))

    def paren(self, c: list[Any]) -> ast.Paren:
        return ast.Paren(self.sp(c[0], c[2]), c[1])

    def list_lit(self, c: list[Any]) -> ast.ListLit:
        return ast.ListLit(self.sp(c[0], c[-1]), [x for x in c[1:-1] if isinstance(x, ast.Node)])

    def record_lit(self, c: list[Any]) -> ast.RecordLit:
        obj: ast.ObjectLit = c[1]
        return ast.RecordLit(self.sp(c[0], obj), self.tok_ident(c[0]), obj.entries)

    def object(self, c: list[Any]) -> ast.ObjectLit:
        return ast.ObjectLit(self.sp(c[0], c[-1]), [x for x in c if isinstance(x, ast.Entry)])

    def entry(self, c: list[Any]) -> ast.Entry:
        return ast.Entry(self.sp(c[0], c[2]), c[0], c[2])

    def string_lit(self, c: list[Token]) -> ast.StrLit:
        tok = c[0]
        span = self.sp(tok, tok)
        try:
            segments = split_string(str(tok))
        except StringError as e:
            line, col = _advance(str(tok), e.index, tok.line, tok.column)
            at = Span(self.file, line, col, line, col + e.length, tok.start_pos + e.index, tok.start_pos + e.index + e.length)
            self.diags.add("E003", at, e.message, help="write `{{` and `}}` for literal braces")
            return ast.StrLit(span, [""], triple=tok.type == "LONG_STRING")
        parts: list[str | ast.Expr] = []
        for seg in segments:
            if not seg.is_expr:
                parts.append(seg.text)
                continue
            line, col = _advance(str(tok), seg.index, tok.line, tok.column)
            parts.append(_parse_interpolation(self, seg.text, line, col, tok.start_pos + seg.index))
        return ast.StrLit(span, parts, triple=tok.type == "LONG_STRING")


def _advance(text: str, index: int, line: int, col: int) -> tuple[int, int]:
    """The (line, col) of `text[index]` when `text` starts at (line, col)."""
    newlines = text.count("\n", 0, index)
    if not newlines:
        return line, col + index
    return line + newlines, index - text.rfind("\n", 0, index)


@lru_cache(maxsize=1)
def _lark() -> Lark:
    cache_dir = Path.home() / ".cache" / "mnlang"
    cache: bool | str = True
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        cache = str(cache_dir / "parser.lark.cache")
    except OSError:
        pass
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer=_Lexer,
        start=["start", "expr"],
        transformer=_BUILDER,
        cache=cache,
        maybe_placeholders=False,
    )


_BUILDER = _Builder()
_LOCK = threading.RLock()


def _parse_interpolation(builder: _Builder, text: str, line: int, col: int, offset: int) -> ast.Expr:
    _origin.stack.append((line, col, offset, None))
    try:
        result: ast.Expr = _lark().parse(text, start="expr")
        return result
    except (UnexpectedInput, LexError) as e:
        _report_syntax(builder.diags, builder.file, e, text, offset)
        return ast.NullLit(Span(builder.file, line, col, line, col + len(text), offset, offset + len(text)))
    finally:
        _origin.stack.pop()


def _expected_words(expected: set[str]) -> str:
    words: list[str] = []
    rest = set(expected)
    if len(rest & _STMT_START) >= 8 and "IF" in rest:
        words.append("a statement")
        rest -= _STMT_START
    elif len(rest & _DECL_START) >= 5:
        words.append("a declaration")
        rest -= _DECL_START
    if len(rest & _EXPR_START) >= 8:
        words.append("an expression")
        rest -= _EXPR_START
    order = sorted(rest, key=lambda t: (not t.isupper() or len(t) > 6, t))
    words.extend(display(t) for t in order if t != "_NL")
    if "_NL" in rest:
        words.append("a new line")
    return ", ".join(words[:8]) + (", ..." if len(words) > 8 else "")


def _report_syntax(diags: Diagnostics, file: str, e: Exception, text: str, base: int) -> None:
    if isinstance(e, LexError):
        span = Span(file, e.line, e.col, e.line, e.col + e.length, e.pos, e.pos + e.length)
        help_text = None
        if e.code == "E001":
            help_text = "close the string with `\"`, or use `\"\"\"` for text over several lines"
        diags.add(e.code, span, e.message, help=help_text)
        return
    assert isinstance(e, UnexpectedToken)
    tok = e.token
    expected = set(e.accepts or e.expected)
    if tok.type == "$END":
        line = text.count("\n") + 1
        col = len(text) - text.rfind("\n")
        pos = base + len(text)
        span = Span(file, line, col, line, col, pos, pos)
        found = "the end of the file"
    else:
        span = _span(file, tok, tok)
        found = display(tok.type) if tok.type in ("_NL",) else f"`{tok}`"
    prev = e.token_history[-1] if e.token_history else None
    if "COLON" in expected and prev is not None and prev.type in ("NAME", "LIMIT", "TYPE"):
        if tok.type == "ASSIGN":
            diags.add("E012", span, f"expected `:` after `{prev}`, found `=`", help=f"options and fields are written `{prev}: value`")
            return
        if "ASSIGN" not in expected:
            at = _span(file, prev, prev)
            diags.add("E011", at, f"missing `:` after `{prev}`", help=f"write `{prev}: {tok if tok.type != '$END' else 'value'}`")
            return
    if tok.type == "$END" and "RBRACE" in expected:
        opener = _unclosed_brace(text, file, base)
        if opener is not None:
            diags.add("E013", opener, "unclosed `{`", help="add the matching `}`")
            return
    message = f"expected {_expected_words(expected)}; found {found}"
    help_text = None
    if tok.type == "_NL" and "RPAR" not in expected:
        help_text = "a new line ends a statement here"
    if tok.type == "TYPE_NAME" and "LBRACE" not in expected:
        help_text = "names of values start with a small letter; type names with a capital"
    diags.add("E010", span, message, help=help_text)


def _unclosed_brace(text: str, file: str, base: int) -> Span | None:
    stack: list[Token] = []
    _origin.stack.append((1, 1, base, None))
    try:
        for tok in tokenize(text, 1, 1, base):
            if tok.type == "LBRACE":
                stack.append(tok)
            elif tok.type == "RBRACE" and stack:
                stack.pop()
    except LexError:
        return None
    finally:
        _origin.stack.pop()
    return _span(file, stack[-1], stack[-1]) if stack else None


MAX_FILE_BYTES = 8 * 1024 * 1024


def parse(text: str, file: str = "<string>") -> tuple[ast.Module | None, list[Diagnostic]]:
    """Parse a module. On a syntax error, keep parsing from the next declaration to report more."""
    with _LOCK:
        builder = _BUILDER
        builder.file = file
        builder.diags = Diagnostics()
        comments: list[Comment] = []
        decls: list[Any] = []
        ok = True
        offset_line, start = 1, 0
        while True:
            chunk = text[start:]
            _origin.stack.append((offset_line, 1, start, comments))
            try:
                decls.extend(_lark().parse(chunk, start="start"))
                break
            except (UnexpectedInput, LexError) as e:
                ok = False
                _report_syntax(builder.diags, file, e, chunk, start)
                next_start = _next_decl_start(text, _error_pos(e, start))
                if next_start is None:
                    break
                offset_line = text.count("\n", 0, next_start) + 1
                start = next_start
            finally:
                _origin.stack.pop()
        diags = builder.diags.items
        if not ok or any(d.severity == "error" for d in diags):
            return None, diags
        imports = [d for d in decls if isinstance(d, ast.Import)]
        others = [d for d in decls if not isinstance(d, ast.Import)]
        end_line = text.count("\n") + 1
        span = Span(file, 1, 1, end_line, len(text) - text.rfind("\n"), 0, len(text))
        return ast.Module(span, file, imports, others, comments, text), diags


def _error_pos(e: Exception, base: int) -> int:
    if isinstance(e, LexError):
        return e.pos
    if isinstance(e, UnexpectedToken) and e.token.type != "$END":
        return int(e.token.start_pos) if e.token.start_pos is not None else base
    return 1 << 62


_DECL_WORDS = ("import ", "type ", "enum ", "tool ", "effect ", "agent ", "event ", "policy ", "schedule ", "workflow ", "scenario ")


def _next_decl_start(text: str, after: int) -> int | None:
    """The offset of the next line after `after` that starts a declaration in column 1."""
    pos = text.find("\n", after)
    while pos >= 0:
        pos += 1
        if text.startswith(_DECL_WORDS, pos):
            return pos
        pos = text.find("\n", pos)
    return None


def parse_expr(text: str, file: str = "<string>") -> ast.Expr:
    """Parse one expression (used by tests and tools); raises CompileError on a syntax error."""
    with _LOCK:
        _BUILDER.file = file
        _BUILDER.diags = Diagnostics()
        _origin.stack.append((1, 1, 0, None))
        try:
            result: ast.Expr = _lark().parse(text, start="expr")
        except (UnexpectedInput, LexError) as e:
            _report_syntax(_BUILDER.diags, file, e, text, 0)
            raise CompileError(_BUILDER.diags.items) from None
        finally:
            _origin.stack.pop()
        if _BUILDER.diags.errors:
            raise CompileError(_BUILDER.diags.items)
        return result
