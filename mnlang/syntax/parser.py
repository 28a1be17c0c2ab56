"""The parser: LALR(1) tables from the Lark grammar, run over our lexer, building the AST.

The tables are built once by Lark and cached on disk (`mnlang.syntax.lalr`);
each reduction calls the `_Builder` method named after the grammar rule, so no
parse tree is materialised, and spans come from the tokens.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from functools import lru_cache
from typing import Any

import msgspec

from mnlang.diagnostics import CompileError, Diagnostic, Diagnostics
from mnlang.resources import data_path
from mnlang.span import Span
from mnlang.syntax import ast
from mnlang.syntax.lalr import Driver, ParseError, cache_dir, load_tables
from mnlang.syntax.lexer import Comment, LexError, Token, end_token, tokenize
from mnlang.syntax.limits import too_deep
from mnlang.syntax.strings import StringError, split_string

_DURATION_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_INT_MAX = 2**63 - 1
_INT_DIGITS = len(str(_INT_MAX))


def _quoted(literal: str) -> str:
    """A literal as a message quotes it: a 5,000-digit one by its ends and length."""
    if len(literal) <= 40:
        return f"`{literal}`"
    return f"`{literal[:12]}...{literal[-12:]}` ({len(literal):,} characters)"


def grammar_text() -> str:
    return (data_path("grammar") / "mnlang.lark").read_text("utf-8")


class _ParamDoc(msgspec.Struct, frozen=True):
    """A parameter's description while its `param` is built."""

    text: ast.StrLit


class _Builder:
    """One method per grammar rule (or alias); each returns an AST node."""

    def __init__(self) -> None:
        self.file = "<string>"
        self.diags = Diagnostics()

    def sp(self, first: Token | ast.Node, last: Token | ast.Node) -> Span:
        """The span from the start of `first` to the end of `last`."""
        if isinstance(first, Token):
            line, col, start = first.line, first.column, first.start_pos
        else:
            a = first.span
            line, col, start = a.line, a.col, a.start
        if isinstance(last, Token):
            return Span(self.file, line, col, last.end_line, last.end_column, start, last.end_pos)
        b = last.span
        return Span(self.file, line, col, b.end_line, b.end_col, start, b.end)

    def tok_span(self, t: Token) -> Span:
        return Span(self.file, t.line, t.column, t.end_line, t.end_column, t.start_pos, t.end_pos)

    def tok_ident(self, t: Token) -> ast.Ident:
        return ast.Ident(self.tok_span(t), t.value)

    # ---- declarations ------------------------------------------------------

    def start(self, c: list[Any]) -> list[Any]:
        return c

    def dotted_name(self, c: list[Token]) -> list[ast.Ident]:
        return [self.tok_ident(t) for t in c if t.type == "NAME"]

    def import_decl(self, c: list[Any]) -> ast.Import:
        path: list[ast.Ident] = c[1]
        names = [x for x in c[2:] if isinstance(x, ast.Ident)]
        return ast.Import(self.sp(c[0], c[-1] if len(c) > 2 else path[-1]), path, names)

    def ident(self, c: list[Token]) -> ast.Ident:
        return self.tok_ident(c[0])

    field_name = ident

    def field_decl(self, c: list[Any]) -> ast.FieldDecl:
        default = c[4] if len(c) > 4 else None
        return ast.FieldDecl(self.sp(c[0], c[-1]), c[0], c[2], default)

    def param(self, c: list[Any]) -> ast.Param:
        doc = c[-1] if isinstance(c[-1], _ParamDoc) else None
        rest = c[:-1] if doc is not None else c
        default = rest[4] if len(rest) > 4 else None
        end = doc.text if doc is not None else rest[-1]
        description = doc.text if doc is not None else None
        return ast.Param(self.sp(c[0], end), c[0], c[2], default, description)

    def param_doc(self, c: list[Token]) -> _ParamDoc:
        return _ParamDoc(self.string_lit(c))

    def type_decl(self, c: list[Any]) -> ast.TypeDecl:
        fields = [x for x in c if isinstance(x, ast.FieldDecl)]
        return ast.TypeDecl(self.sp(c[0], c[-1]), self.tok_ident(c[1]), fields)

    def error_decl(self, c: list[Any]) -> ast.ErrorDecl:
        return ast.ErrorDecl(self.sp(c[0], c[1]), self.tok_ident(c[1]))

    def on_failure(self, c: list[Any]) -> ast.OnFailure:
        var = c[2] if len(c) > 2 else None
        return ast.OnFailure(self.sp(c[0], c[-1]), var, c[-1])

    def enum_decl(self, c: list[Any]) -> ast.EnumDecl:
        members = [x for x in c if isinstance(x, ast.Ident)]
        return ast.EnumDecl(self.sp(c[0], c[-1]), self.tok_ident(c[1]), members)

    def params(self, c: list[Any]) -> list[ast.Param]:
        return [p for p in c if isinstance(p, ast.Param)]

    def callable_decl(self, c: list[Any]) -> ast.CallableDecl:
        kind_tok, name, params, _arrow, returns, options = c
        return ast.CallableDecl(
            self.sp(kind_tok, options), name, kind_tok.value, params, returns, options
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
        # Leading option lines (`class: "support"`) are the workflow's options.
        options: list[ast.OptionStmt] = []
        stmts = body.stmts
        while stmts and isinstance(stmts[0], ast.OptionStmt) and stmts[0].label is None:
            options.append(stmts[0])
            stmts = stmts[1:]
        body.stmts = stmts
        on_failure = c[6] if len(c) > 6 else None
        return ast.WorkflowDecl(
            self.sp(c[0], on_failure or body), c[1], c[2], c[4], options, body, on_failure
        )

    # ---- types ---------------------------------------------------------------

    def simple_type(self, c: list[Token]) -> ast.TypeRef:
        return ast.TypeRef(self.tok_span(c[0]), c[0].value)

    def generic_type(self, c: list[Any]) -> ast.TypeRef:
        return ast.TypeRef(self.sp(c[0], c[3]), c[0].value, [c[2]])

    def optional_type(self, c: list[Any]) -> ast.TypeRef:
        inner: ast.TypeRef = c[0]
        return ast.TypeRef(self.sp(inner, c[1]), inner.name, inner.args, True)

    # ---- statements ----------------------------------------------------------

    def block(self, c: list[Any]) -> ast.Block:
        return ast.Block(self.sp(c[0], c[-1]), [s for s in c[1:-1] if isinstance(s, ast.Stmt)])

    def stmt(self, c: list[Any]) -> ast.Stmt:
        node: ast.Stmt = c[-1]
        if len(c) == 2:
            label: Token = c[0]
            node.label = ast.Ident(self.tok_span(label), label.value[1:])
            node.span = self.sp(label, node)
        return node

    def assign(self, c: list[Any]) -> ast.Assign:
        return ast.Assign(self.sp(c[0], c[2]), c[0], c[2])

    def expr_stmt(self, c: list[Any]) -> ast.ExprStmt:
        return ast.ExprStmt(c[0].span, c[0])

    def option_stmt(self, c: list[Any]) -> ast.OptionStmt:
        return ast.OptionStmt(self.sp(c[0], c[2]), c[0], c[2])

    def if_stmt(self, c: list[Any]) -> ast.If:
        orelse = c[4] if len(c) > 3 else None
        return ast.If(self.sp(c[0], c[-1]), c[1], c[2], orelse)

    def match_stmt(self, c: list[Any]) -> ast.Match:
        arms = [x for x in c if isinstance(x, ast.MatchArm)]
        return ast.Match(self.sp(c[0], c[-1]), c[1], arms)

    def match_arm(self, c: list[Any]) -> ast.MatchArm:
        patterns = [x for x in c if isinstance(x, ast.Ident)]
        return ast.MatchArm(self.sp(c[0], c[-1]), patterns, c[-1])

    def for_stmt(self, c: list[Any]) -> ast.For:
        parallel = isinstance(c[0], Token) and c[0].type == "PARALLEL"
        rest = c[1:] if parallel else c
        var, iterable = rest[1], rest[3]
        options = {tok.type: value for tok, value in zip(rest[4:-1:2], rest[5:-1:2], strict=True)}
        return ast.For(
            self.sp(c[0], c[-1]),
            var,
            iterable,
            c[-1],
            parallel,
            options.get("LIMIT"),
            options.get("FIRST"),
        )

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
        if len(c) == 5:
            return ast.Wait(self.sp(c[0], c[4]), None, c[1], c[4], c[3])
        if len(c) == 3:
            return ast.Wait(self.sp(c[0], c[2]), None, c[1], c[2])
        return ast.Wait(self.sp(c[0], c[1]), c[1], None, None)

    def select_stmt(self, c: list[Any]) -> ast.Select:
        arms = [x for x in c if isinstance(x, ast.SelectArm)]
        return ast.Select(self.sp(c[0], c[-1]), arms)

    @staticmethod
    def _arm_var(c: list[Any]) -> ast.Ident | None:
        has_var = any(isinstance(x, Token) and x.type == "AS" for x in c)
        return c[-2] if has_var else None

    def select_wait(self, c: list[Any]) -> ast.SelectArm:
        head = c[-4] if self._arm_var(c) is not None else c[-2]
        key = c[3] if isinstance(c[2], Token) and c[2].type == "FOR" else None
        wait = ast.Wait(self.sp(c[0], head), None, c[1], None, key)
        return ast.SelectArm(self.sp(c[0], c[-1]), wait, None, None, self._arm_var(c), c[-1])

    def select_checkpoint(self, c: list[Any]) -> ast.SelectArm:
        checkpoint = ast.Checkpoint(self.sp(c[0], c[2]), c[1], c[2])
        return ast.SelectArm(self.sp(c[0], c[-1]), None, checkpoint, None, self._arm_var(c), c[-1])

    def select_after(self, c: list[Any]) -> ast.SelectArm:
        return ast.SelectArm(self.sp(c[0], c[-1]), None, None, c[1], None, c[-1])

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

    def publish_stmt(self, c: list[Any]) -> ast.Publish:
        return ast.Publish(self.sp(c[0], c[3]), c[1], c[3])

    def yield_stmt(self, c: list[Any]) -> ast.Yield:
        return ast.Yield(self.sp(c[0], c[1]), c[1])

    # ---- expressions -----------------------------------------------------------

    def _binary_chain(self, c: list[Any]) -> ast.Expr:
        node: ast.Expr = c[0]
        for i in range(1, len(c), 2):
            right: ast.Expr = c[i + 1]
            node = ast.Binary(self.sp(node, right), c[i].value, node, right)
        return node

    or_expr = and_expr = comparison = coalesce = sum = product = _binary_chain

    def unary(self, c: list[Any]) -> ast.Unary:
        return ast.Unary(self.sp(c[0], c[1]), c[0].value, c[1])

    def start_call(self, c: list[Any]) -> ast.Expr:
        # The lexer makes `start` a keyword only before `name(`, so the operand holds a
        # call; `start f(x).y` marks that call, and the checker reports the step misplaced.
        operand: ast.Expr = c[1]
        inner = operand
        while isinstance(inner, ast.Field | ast.Index):
            inner = inner.obj
        if isinstance(inner, ast.Call):
            inner.detached = True
            if inner is operand:
                inner.span = self.sp(c[0], operand)
        return operand

    def field(self, c: list[Any]) -> ast.Field:
        return ast.Field(self.sp(c[0], c[2]), c[0], c[2])

    def index(self, c: list[Any]) -> ast.Index:
        return ast.Index(self.sp(c[0], c[3]), c[0], c[2])

    def call(self, c: list[Any]) -> ast.Call:
        args = [x for x in c[2:-1] if isinstance(x, ast.Expr)]
        return ast.Call(self.sp(c[0], c[-1]), c[0], args)

    def name(self, c: list[Token]) -> ast.Name:
        return ast.Name(self.tok_span(c[0]), c[0].value)

    def enum_member(self, c: list[Any]) -> ast.EnumMember:
        return ast.EnumMember(self.sp(c[0], c[2]), self.tok_ident(c[0]), c[2])

    def int_lit(self, c: list[Token]) -> ast.IntLit:
        span = self.tok_span(c[0])
        # Past 19 digits it is out of range anyway: do not make `int` read 5,000 of them.
        value = int(c[0].value) if len(c[0].value) <= _INT_DIGITS else _INT_MAX + 1
        if value > _INT_MAX:
            self.diags.add(
                "E014",
                span,
                f"integer {_quoted(c[0].value)} is too large: the limit is {_INT_MAX}",
                help="integers are 64-bit; use a float or a string for larger numbers",
            )
        return ast.IntLit(span, value)

    def float_lit(self, c: list[Token]) -> ast.FloatLit:
        return ast.FloatLit(self.tok_span(c[0]), float(c[0].value))

    def money_lit(self, c: list[Token]) -> ast.MoneyLit:
        return ast.MoneyLit(self.tok_span(c[0]), Decimal(c[0].value[1:]))

    def duration_lit(self, c: list[Token]) -> ast.DurationLit:
        text = c[0].value
        unit = "ms" if text.endswith("ms") else text[-1]
        digits = text[: -len(unit)]
        if len(digits) > _INT_DIGITS or int(digits) * _DURATION_UNITS[unit] > _INT_MAX:
            self.diags.add(
                "E014",
                self.tok_span(c[0]),
                f"duration {_quoted(text)} is too long: the limit is {_INT_MAX} ms",
                help="durations are 64-bit milliseconds (about 292 million years)",
            )
            return ast.DurationLit(self.tok_span(c[0]), 0, text)
        millis = int(digits) * _DURATION_UNITS[unit]
        return ast.DurationLit(self.tok_span(c[0]), millis, text)

    def bool_lit(self, c: list[Token]) -> ast.BoolLit:
        return ast.BoolLit(self.tok_span(c[0]), c[0].type == "TRUE")

    def null_lit(self, c: list[Token]) -> ast.NullLit:
        return ast.NullLit(self.tok_span(c[0]))

    def paren(self, c: list[Any]) -> ast.Paren:
        return ast.Paren(self.sp(c[0], c[2]), c[1])

    def list_lit(self, c: list[Any]) -> ast.ListLit:
        return ast.ListLit(self.sp(c[0], c[-1]), [x for x in c[1:-1] if isinstance(x, ast.Expr)])

    def error_name(self, c: list[Token]) -> ast.ErrorName:
        return ast.ErrorName(self.tok_span(c[0]), c[0].value)

    def record_lit(self, c: list[Any]) -> ast.RecordLit:
        obj: ast.ObjectLit = c[1]
        return ast.RecordLit(self.sp(c[0], obj), self.tok_ident(c[0]), obj.entries)

    def object(self, c: list[Any]) -> ast.ObjectLit:
        return ast.ObjectLit(self.sp(c[0], c[-1]), [x for x in c if isinstance(x, ast.Entry)])

    def entry(self, c: list[Any]) -> ast.Entry:
        return ast.Entry(self.sp(c[0], c[2]), c[0], c[2])

    def string_entry(self, c: list[Any]) -> ast.Entry:
        """`"seed": 42`: the key is the string's text, which must be plain (no `{...}`)."""
        key = self.string_lit(c[:1])
        if any(not isinstance(part, str) for part in key.parts):
            self.diags.add(
                "E230",
                key.span,
                "an object key must be plain text, not an interpolated string",
                help='write the key as it is: `"name": value`; build computed keys into a '
                "`map[T]` with a tool",
            )
        text = "".join(part for part in key.parts if isinstance(part, str))
        return ast.Entry(self.sp(c[0], c[2]), ast.Ident(key.span, text), c[2])

    def string_lit(self, c: list[Token]) -> ast.StrLit:
        tok = c[0]
        span = self.tok_span(tok)
        triple = tok.type == "LONG_STRING"
        try:
            segments = split_string(tok.value)
        except StringError as e:
            line, col = _advance(tok.value, e.index, tok.line, tok.column)
            at = tok.start_pos + e.index
            where = Span(self.file, line, col, line, col + e.length, at, at + e.length)
            self.diags.add("E003", where, e.message, help=e.help)
            return ast.StrLit(span, [""], triple=triple)
        parts: list[str | ast.Expr] = []
        for seg in segments:
            if not seg.is_expr:
                parts.append(seg.text)
                continue
            line, col = _advance(tok.value, seg.index, tok.line, tok.column)
            parts.append(self.interpolation(seg.text, line, col, tok.start_pos + seg.index))
        return ast.StrLit(span, parts, triple=triple)

    def interpolation(self, text: str, line: int, col: int, offset: int) -> ast.Expr:
        """Parse the expression inside `{...}` of a string, positioned where it stands."""
        try:
            result: ast.Expr = _driver().parse(
                tokenize(text, line, col, offset), "expr", end_token(text, line, col, offset)
            )
            return result
        except (ParseError, LexError) as e:
            from mnlang.syntax.syntax_errors import report_syntax_error

            report_syntax_error(self.diags, self.file, e, text, line, col, offset)
            end = offset + len(text)
            return ast.NullLit(Span(self.file, line, col, line, col + len(text), offset, end))


def _advance(text: str, index: int, line: int, col: int) -> tuple[int, int]:
    """The (line, col) of `text[index]` when `text` starts at (line, col)."""
    newlines = text.count("\n", 0, index)
    if not newlines:
        return line, col + index
    return line + newlines, index - text.rfind("\n", 0, index)


_BUILDER = _Builder()
# The builder holds the file and diagnostics of the parse in progress.
_LOCK = threading.RLock()


@lru_cache(maxsize=1)
def _driver() -> Driver:
    return Driver(load_tables(grammar_text(), cache_dir()), _BUILDER)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cycle collector: building an AST allocates many objects and no cycles, and
    the collector's passes over the growing heap would make parsing time quadratic."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def parse(text: str, file: str = "<string>") -> tuple[ast.Module | None, list[Diagnostic]]:
    """Parse a module. On a syntax error, keep parsing from the next declaration to report more."""
    with _LOCK, gc_paused():
        driver = _driver()
        builder = _BUILDER
        builder.file = file
        builder.diags = diags = Diagnostics()
        comments: list[Comment] = []
        decls: list[Any] = []
        ok = True
        line, start = 1, 0
        while True:
            chunk = text[start:] if start else text
            try:
                tokens = tokenize(chunk, line, 1, start, comments)
                decls.extend(driver.parse(tokens, "start", end_token(chunk, line, 1, start)))
                break
            except (ParseError, LexError) as e:
                from mnlang.syntax.syntax_errors import report_syntax_error

                ok = False
                reported = report_syntax_error(diags, file, e, chunk, line, 1, start)
                # An unclosed declaration ends where the next one starts: resume there.
                unclosed = reported.code == "E013"
                next_start = _next_decl_start(text, _error_pos(e), start if unclosed else None)
                if next_start is None:
                    break
                line = text.count("\n", 0, next_start) + 1
                start = next_start
        if not ok or diags.errors:
            return None, diags.items
        deep = too_deep(decls)
        if deep is not None:
            return None, [*diags.items, deep]
        imports = [d for d in decls if isinstance(d, ast.Import)]
        others = [d for d in decls if not isinstance(d, ast.Import)]
        end = end_token(text)
        span = Span(file, 1, 1, end.line, end.column, 0, len(text))
        return ast.Module(span, file, imports, others, comments, text), diags.items


def _error_pos(e: ParseError | LexError) -> int:
    if isinstance(e, LexError):
        return e.pos
    return int(e.token.start_pos)


_DECL_WORDS = (
    *("import ", "type ", "enum ", "tool ", "effect ", "agent ", "event ", "policy "),
    *("schedule ", "workflow ", "scenario "),
)


def _next_decl_start(text: str, error_at: int, after: int | None) -> int | None:
    """The offset of the next line after the error that starts a declaration in column 1;
    with `after`, the error's own line counts too, if it starts after `after`."""
    pos = text.rfind("\n", 0, error_at) + 1
    if after is not None and pos > after and text.startswith(_DECL_WORDS, pos):
        return pos
    pos = text.find("\n", error_at)
    while pos >= 0:
        pos += 1
        if text.startswith(_DECL_WORDS, pos):
            return pos
        pos = text.find("\n", pos)
    return None


def parse_expr(text: str, file: str = "<string>") -> ast.Expr:
    """Parse one expression (used by tests and tools); raises CompileError on a syntax error."""
    with _LOCK:
        driver = _driver()
        _BUILDER.file = file
        _BUILDER.diags = diags = Diagnostics()
        try:
            result: ast.Expr = driver.parse(tokenize(text), "expr", end_token(text))
        except (ParseError, LexError) as e:
            from mnlang.syntax.syntax_errors import report_syntax_error

            report_syntax_error(diags, file, e, text, 1, 1, 0)
            raise CompileError(diags.items) from None
        if diags.errors:
            raise CompileError(diags.items)
        return result
