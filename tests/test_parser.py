"""The parser: the grammar and its tables, the driver against Lark's own LALR parser,
spans, newline rules, strings, syntax-error messages and recovery."""

from __future__ import annotations

import operator
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from mnlang.deep import call_deep
from mnlang.diagnostics import CompileError, Diagnostics
from mnlang.syntax import ast, lalr
from mnlang.syntax import parser as mn_parser
from mnlang.syntax.lexer import LexError, Token, tokenize
from mnlang.syntax.parser import grammar_text, parse, parse_expr
from mnlang.syntax.tokens import DISPLAY, KEYWORDS, PUNCTUATION

ROOT = Path(__file__).resolve().parent.parent
REFUND = ROOT / "examples" / "refund" / "refund.mn"


def parse_ok(text: str) -> ast.Module:
    module, diags = parse(text, "t.mn")
    assert module is not None, [(d.code, str(d.span), d.message) for d in diags]
    assert not diags
    return module


def errors(text: str) -> list[tuple[str, int, int, str]]:
    module, diags = parse(text, "t.mn")
    assert module is None
    return [(d.code, d.span.line, d.span.col, d.message) for d in diags if d.span]


def workflow_body(text: str) -> list[ast.Stmt]:
    module = parse_ok("workflow w() -> int {\n" + text + "\n}\n")
    decl = module.decls[0]
    assert isinstance(decl, ast.WorkflowDecl)
    return decl.body.stmts


# ---- the grammar and its tables ----------------------------------------------------


def test_grammar_builds_under_lark_strict_mode() -> None:
    pytest.importorskip("interegular")  # Lark's strict mode needs it
    tables = lalr.build_tables(grammar_text(), strict=True)
    assert set(tables.start_states) == {"start", "expr"}


def declared_terminals() -> set[str]:
    names: set[str] = set()
    for line in grammar_text().splitlines():
        if line.startswith("%declare"):
            names.update(line.split()[1:])
    return names


def test_every_declared_terminal_has_a_display_name() -> None:
    missing = sorted(t for t in declared_terminals() if t not in DISPLAY)
    assert not missing, f"add these to mnlang/syntax/tokens.py DISPLAY: {missing}"


def test_the_lexer_only_produces_declared_terminals() -> None:
    declared = declared_terminals()
    produced = set(KEYWORDS.values()) | set(PUNCTUATION.values())
    produced |= {"NAME", "TYPE_NAME", "INT", "FLOAT", "MONEY", "DURATION", "STRING"}
    produced |= {"LONG_STRING", "AT_ID", "_NL"}
    assert produced <= declared, sorted(produced - declared)
    kinds = {t.type for t in tokenize(REFUND.read_text("utf-8"))}
    assert kinds <= declared


def test_every_grammar_rule_has_a_builder_method() -> None:
    tables = lalr.build_tables(grammar_text())
    lalr.Driver(tables, mn_parser._Builder())  # raises TypeError naming a missing method


def test_tables_are_cached_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    grammar = grammar_text()
    first = lalr.load_tables(grammar, tmp_path)
    assert len(list(tmp_path.iterdir())) == 1

    def no_rebuild(grammar: str, *, strict: bool = False) -> lalr.Tables:
        raise AssertionError("the cached tables should have been used")

    monkeypatch.setattr(lalr, "build_tables", no_rebuild)
    second = lalr.load_tables(grammar, tmp_path)
    assert second == first


def test_a_changed_grammar_gets_new_tables(tmp_path: Path) -> None:
    grammar = grammar_text()
    lalr.load_tables(grammar, tmp_path)
    lalr.load_tables(grammar + "\n// a comment changes the checksum\n", tmp_path)
    assert len(list(tmp_path.iterdir())) == 2


def test_a_corrupt_cache_file_is_rebuilt(tmp_path: Path) -> None:
    grammar = grammar_text()
    lalr.load_tables(grammar, tmp_path)
    (cached,) = tmp_path.iterdir()
    cached.write_bytes(b"\x00garbage")
    tables = lalr.load_tables(grammar, tmp_path)
    assert tables.start_states
    assert cached.read_bytes() != b"\x00garbage"


def test_an_unwritable_cache_falls_back_to_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    tables = lalr.load_tables(grammar_text(), blocker / "cache")
    assert tables.start_states
    assert not list(tmp_path.glob("**/*.marshal"))


def test_no_home_means_no_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MNC_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)

    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    assert lalr.cache_dir() is None
    assert lalr.load_tables(grammar_text(), None).start_states


def test_cache_dir_honours_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNC_CACHE_DIR", "/somewhere/else")
    assert lalr.cache_dir() == Path("/somewhere/else")
    monkeypatch.delenv("MNC_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", "/xdg")
    assert lalr.cache_dir() == Path("/xdg/mnlang")


def test_the_parser_is_built_once() -> None:
    assert mn_parser._driver() is mn_parser._driver()


# ---- the driver agrees with Lark's own LALR parser ------------------------------------


def lark_reference() -> Any:
    """Lark's parser over the same grammar, tokens and builder: the oracle for our driver."""
    from lark import Lark
    from lark.lexer import Lexer

    class OurTokens(Lexer):
        def __init__(self, conf: Any) -> None:
            pass

        def lex(self, text: Any) -> Any:  # type: ignore[override]
            return tokenize(text)

    return Lark(
        grammar_text(),
        parser="lalr",
        lexer=OurTokens,
        start=["start", "expr"],
        transformer=mn_parser._BUILDER,
        maybe_placeholders=False,
    )


_LARK: list[Any] = []


def parse_with_lark(text: str) -> list[Any] | None:
    """The declarations Lark's parser builds for `text`, or None on a syntax error."""
    from lark.exceptions import UnexpectedInput

    if not _LARK:
        _LARK.append(lark_reference())
    with mn_parser._LOCK:
        mn_parser._BUILDER.file = "t.mn"
        mn_parser._BUILDER.diags = Diagnostics()
        try:
            decls: list[Any] = _LARK[0].parse(text, start="start")
        except (UnexpectedInput, LexError):
            return None
        if mn_parser._BUILDER.diags.errors:
            return None
    return decls


def assert_same_as_lark(text: str) -> None:
    expected = parse_with_lark(text)
    module, diagnostics = parse(text, "t.mn")
    if expected is None:
        assert module is None
        return
    if module is None:  # Lark builds any depth; `parse` refuses past the limits (E015)
        assert [d.code for d in diagnostics] == ["E015"]
        return
    ours = module.imports + module.decls
    # Comparing dataclasses recurses: a 1,000-level case needs the deep stack too.
    assert call_deep(
        operator.eq, ours, sorted(expected, key=lambda d: not isinstance(d, ast.Import))
    )


def corpus() -> list[Path]:
    files = [REFUND, *sorted((ROOT / "stdlib").glob("*.mn"))]
    files += sorted((ROOT / "examples").glob("*/*.mn"))
    files += sorted((ROOT / "tests" / "cases").glob("**/*.mn"))
    return sorted(set(files))


@pytest.mark.parametrize("path", corpus(), ids=lambda p: str(p.relative_to(ROOT)))
def test_driver_builds_the_same_ast_as_lark(path: Path) -> None:
    assert_same_as_lark(path.read_text("utf-8"))


# ---- spans ---------------------------------------------------------------------------


def span_of(node: ast.Node) -> tuple[int, int, int, int]:
    s = node.span
    return (s.line, s.col, s.end_line, s.end_col)


def test_spans_of_declarations_and_statements() -> None:
    text = REFUND.read_text("utf-8")
    module = parse_ok(text)
    imp = module.imports[0]
    assert span_of(imp) == (2, 1, 2, 39)
    assert [n.name for n in imp.names] == ["standard_retry"]
    assert span_of(imp.names[0]) == (2, 23, 2, 37)
    decls = {d.name.name: d for d in module.decls}
    assert span_of(decls["Category"]) == (4, 1, 4, 51)
    order = decls["Order"]
    assert isinstance(order, ast.TypeDecl)
    assert span_of(order) == (6, 1, 11, 2)
    assert span_of(order.fields[2]) == (9, 3, 9, 15)  # `total: money`
    assert span_of(order.fields[2].type) == (9, 10, 9, 15)
    workflow = decls["refund"]
    assert isinstance(workflow, ast.WorkflowDecl)
    assert [o.key.name for o in workflow.options] == ["class", "budget", "deadline"]
    first = workflow.body.stmts[0]
    assert isinstance(first, ast.Assign)
    assert text[first.span.start : first.span.end] == "order = fetch_order(order_id)"


def test_spans_of_expressions() -> None:
    (stmt,) = workflow_body("  x = order.total > $100 or not t.ok")
    assert isinstance(stmt, ast.Assign)
    assert span_of(stmt) == (2, 3, 2, 37)
    value = stmt.value
    assert isinstance(value, ast.Binary) and value.op == "or"
    assert span_of(value) == (2, 7, 2, 37)
    assert isinstance(value.left, ast.Binary) and span_of(value.left) == (2, 7, 2, 25)
    assert isinstance(value.left.right, ast.MoneyLit) and span_of(value.left.right) == (
        2,
        21,
        2,
        25,
    )
    assert isinstance(value.right, ast.Unary) and span_of(value.right) == (2, 29, 2, 37)


def test_span_of_a_labelled_statement_starts_at_the_label() -> None:
    (stmt,) = workflow_body("  @pay r = pay(x)")
    assert stmt.label is not None and stmt.label.name == "pay"
    assert span_of(stmt.label) == (2, 3, 2, 7)
    assert span_of(stmt) == (2, 3, 2, 18)


def test_interpolated_expressions_have_spans_in_the_file() -> None:
    (stmt,) = workflow_body('  log "total {order.total} for {name}"')
    assert isinstance(stmt, ast.Log) and isinstance(stmt.message, ast.StrLit)
    field = stmt.message.parts[1]
    assert isinstance(field, ast.Field)
    assert span_of(field) == (2, 15, 2, 26)
    assert field.span.file == "t.mn"


def test_spans_inside_a_multi_line_string() -> None:
    module = parse_ok('agent a(x: str) -> str {\n  prompt: """\n    one {x}\n  """\n}\n')
    decl = module.decls[0]
    assert isinstance(decl, ast.CallableDecl)
    entry = decl.options.entries[0]
    assert isinstance(entry.value, ast.StrLit)
    name = entry.value.parts[1]
    assert isinstance(name, ast.Name) and span_of(name) == (3, 10, 3, 11)


# ---- newline rules ---------------------------------------------------------------------


def test_calls_and_lists_may_span_lines() -> None:
    stmts = workflow_body("  x = f(\n    a,\n    b,\n  )\n  ys = [\n    1,\n    2,\n  ]")
    call = stmts[0]
    assert isinstance(call, ast.Assign) and isinstance(call.value, ast.Call)
    assert len(call.value.args) == 2
    lst = stmts[1]
    assert isinstance(lst, ast.Assign) and isinstance(lst.value, ast.ListLit)
    assert len(lst.value.items) == 2


def test_else_may_start_a_new_line() -> None:
    (stmt,) = workflow_body(
        '  if a {\n    log "a"\n  }\n  else if b {\n    log "b"\n  }\n  else {\n  }'
    )
    assert isinstance(stmt, ast.If) and isinstance(stmt.orelse, ast.If)
    assert isinstance(stmt.orelse.orelse, ast.Block)


def test_catch_and_finally_may_start_a_new_line() -> None:
    (stmt,) = workflow_body("  try {\n    f()\n  }\n  catch timeout as e {\n  }\n  finally {\n  }")
    assert isinstance(stmt, ast.Try) and stmt.final is not None
    assert [k.name for k in stmt.catches[0].kinds] == ["timeout"]


def test_an_operator_at_the_end_of_a_line_continues_the_expression() -> None:
    (stmt,) = workflow_body("  x = a and\n    b")
    assert isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Binary)


def test_option_blocks_take_commas_newlines_and_trailing_commas() -> None:
    module = parse_ok(
        "tool t(x: str) -> str {\n"
        '  impl: "m:f", timeout: 10s\n'
        "  retry: { attempts: 3,\n    backoff: 1s, }\n"
        "  limit: { concurrent: 2 }\n"
        "}\n"
    )
    decl = module.decls[0]
    assert isinstance(decl, ast.CallableDecl)
    assert [e.key.name for e in decl.options.entries] == ["impl", "timeout", "retry", "limit"]
    retry = decl.options.get("retry")
    assert retry is not None and isinstance(retry.value, ast.ObjectLit)
    assert [e.key.name for e in retry.value.entries] == ["attempts", "backoff"]


def test_trailing_commas_in_params_imports_and_enums() -> None:
    module = parse_ok(
        "import std.policies { standard_retry, }\n"
        "enum E { a, b, }\n"
        "enum F {\n  c\n  d\n}\n"
        'tool t(a: str, b: int,) -> str { impl: "m:f" }\n'
    )
    enums = [d for d in module.decls if isinstance(d, ast.EnumDecl)]
    assert [[m.name for m in e.members] for e in enums] == [["a", "b"], ["c", "d"]]
    tool = module.decls[-1]
    assert isinstance(tool, ast.CallableDecl) and len(tool.params) == 2


def test_a_new_line_ends_a_statement() -> None:
    stmts = workflow_body("  x = f(a)\n  (b)")
    assert len(stmts) == 2


def test_blank_lines_and_comments_between_statements() -> None:
    stmts = workflow_body("\n  # a comment\n  x = 1  # trailing\n\n\n  y = 2\n")
    assert len(stmts) == 2


def test_comments_are_kept_with_their_position() -> None:
    module = parse_ok("# top\ntype A {\n  x: int  # after\n}\n")
    assert [(c.text, c.line, c.col, c.own_line) for c in module.comments] == [
        ("# top", 1, 1, True),
        ("# after", 3, 11, False),
    ]


def test_windows_line_endings() -> None:
    module = parse_ok("type A {\r\n  x: int\r\n}\r\nenum B { c }\r\n")
    assert [d.name.name for d in module.decls] == ["A", "B"]


# ---- strings -------------------------------------------------------------------------


def string_parts(source: str) -> list[Any]:
    expr = parse_expr(source)
    assert isinstance(expr, ast.StrLit)
    return [p if isinstance(p, str) else type(p).__name__ for p in expr.parts]


def test_interpolation() -> None:
    assert string_parts('"a {x} b {y.z + 1}"') == ["a ", "Name", " b ", "Binary"]


def test_double_braces_are_literal() -> None:
    assert string_parts('"{{\\"k\\": {v}}}"') == ['{"k": ', "Name", "}"]


def test_escapes() -> None:
    assert string_parts('"tab\\tnew\\nquote\\" brace\\{"') == ['tab\tnew\nquote" brace{']


def test_triple_quoted_strings_are_dedented() -> None:
    parts = string_parts('"""\n    first\n      second {x}\n    third\n  """')
    assert parts == ["first\n  second ", "Name", "\nthird"]


def test_string_errors() -> None:
    for source, message in [
        ('"a {"', "unclosed `{` in string interpolation"),
        ('"a }"', "a lone `}` in a string"),
        ('"a {}"', "empty `{}` in a string"),
        ('"\\q"', "unknown escape `\\q`"),
    ]:
        with pytest.raises(CompileError) as info:
            parse_expr(source)
        (diag,) = info.value.diagnostics
        assert (diag.code, diag.message) == ("E003", message)
        assert diag.help


def test_a_syntax_error_inside_an_interpolation_points_into_the_string() -> None:
    assert errors('workflow w() -> int {\n  log "x {a +} y"\n}\n') == [
        ("E010", 2, 14, "expected an expression, found the end of the text")
    ]


# ---- literals ------------------------------------------------------------------------


def test_literal_values() -> None:
    money = parse_expr("$0.50")
    assert isinstance(money, ast.MoneyLit) and str(money.value) == "0.50"
    duration = parse_expr("90s")
    assert isinstance(duration, ast.DurationLit) and duration.millis == 90_000
    assert isinstance(parse_expr("1.5e3"), ast.FloatLit)
    member = parse_expr("Category.damaged")
    assert isinstance(member, ast.EnumMember) and member.member.name == "damaged"
    record = parse_expr('Order { id: "x", total: $1 }')
    assert isinstance(record, ast.RecordLit) and len(record.entries) == 2


def test_bad_numbers() -> None:
    for source, help_part in [
        ("1.5s", "write `1500ms`"),
        ("5min", "`min` is not a duration unit"),
        ("1e5", "`1.0e5`"),
        ("$5k", "money is written"),
    ]:
        with pytest.raises(CompileError) as info:
            parse_expr(source)
        (diag,) = info.value.diagnostics
        assert diag.code == "E014" and diag.help and help_part in diag.help


def test_an_integer_over_64_bits() -> None:
    with pytest.raises(CompileError) as info:
        parse_expr("9223372036854775808")
    assert info.value.diagnostics[0].code == "E014"
    assert isinstance(parse_expr("9223372036854775807"), ast.IntLit)


# ---- syntax errors -----------------------------------------------------------------------


def test_expected_tokens_are_said_in_words() -> None:
    ((code, line, col, message),) = errors("type A {\n  x: int\n  y: int)\n}\n")
    assert (code, line, col) == ("E010", 3, 9)
    assert message.startswith("expected ") and message.endswith(", found `)`")
    assert "`}`" in message and "a new line" in message


def test_missing_colon_and_equals_for_colon() -> None:
    assert errors('tool t(x: str) -> str {\n  impl "m:f"\n}\n') == [
        ("E011", 2, 3, "missing `:` after `impl`")
    ]
    assert errors("policy p {\n  attempts = 3\n}\n") == [
        ("E012", 2, 12, "expected `:` after `attempts`, found `=`")
    ]


def test_unclosed_brace_points_at_the_opener() -> None:
    text = 'workflow w() -> int {\n  if x {\n    log "a"\n  return 1\n}\n'
    ((code, line, col, message),) = errors(text)
    assert (code, line, col) == ("E013", 2, 8)
    assert message == "unclosed `{`: the file ends before its `}`"


def test_unclosed_brace_before_the_next_declaration() -> None:
    text = "workflow w() -> int {\n  return 1\n\ntype A {\n  x: int\n}\n"
    assert errors(text) == [
        ("E013", 1, 21, "unclosed `{`: `type` starts on line 4 before its `}`"),
    ]


def test_parsing_resumes_at_the_declaration_that_ended_an_unclosed_one() -> None:
    text = "workflow w() -> int {\n  return 1\n\ntype A {\n  x = int\n}\n"
    assert [(c, line) for c, line, _, _ in errors(text)] == [("E013", 1), ("E012", 5)]


def test_unclosed_paren_is_labelled() -> None:
    _, diags = parse("workflow w() -> int {\n  x = f(a, b\n  return x\n}\n", "t.mn")
    (diag,) = diags
    assert diag.code == "E010" and diag.span is not None and diag.span.line == 3
    assert [(lb.span.line, lb.span.col, lb.message) for lb in diag.labels] == [
        (2, 8, "this `(` is not closed")
    ]


def test_unterminated_string() -> None:
    assert errors('workflow w() -> int {\n  log "oops\n}\n') == [
        ("E001", 2, 7, 'unterminated string: `"` has no closing `"` on this line')
    ]


def test_capitalised_value_names_and_lowercase_type_names() -> None:
    assert errors('tool Fetch(x: str) -> str { impl: "m:f" }\n') == [
        ("E010", 1, 6, "expected a name, found the type name `Fetch`")
    ]
    assert errors("workflow w() -> int {\n  Order = 1\n}\n") == [
        ("E010", 2, 3, "`Order` starts with a capital letter, so it names a type, not a value")
    ]
    assert errors("type order { x: int }\n") == [
        ("E010", 1, 6, "expected a type name, found `order`")
    ]


def test_misspelt_declaration_keyword() -> None:
    _, diags = parse("workflw w() -> int { return 1 }\n", "t.mn")
    assert diags[0].message == "expected a declaration, found `workflw`"
    assert diags[0].help == "did you mean `workflow`?"


def test_reserved_word_as_a_name() -> None:
    _, diags = parse("workflow w() -> int {\n  match = 1\n}\n", "t.mn")
    assert diags[0].code == "E010"
    _, diags = parse('tool match(x: str) -> str { impl: "m:f" }\n', "t.mn")
    assert diags[0].help == "`match` is a reserved word; choose another name"


def test_unexpected_characters() -> None:
    assert errors("workflow w() -> int {\n  x = a && b\n}\n") == [("E002", 2, 9, "unexpected `&`")]
    assert errors("type A { x: int }\n\x01\n")[0][:3] == ("E002", 2, 1)


def test_parsing_resumes_at_the_next_declaration() -> None:
    text = (
        "type A {\n  x = int\n}\n"
        'tool t(x: str) -> str {\n  impl "m:f"\n}\n'
        "workflow ok() -> int {\n  return 1\n}\n"
        "enum E { a b }\n"
    )
    assert [(c, line) for c, line, _, _ in errors(text)] == [("E012", 2), ("E011", 5), ("E010", 10)]


def test_parse_expr_raises_compile_error() -> None:
    with pytest.raises(CompileError):
        parse_expr("1 +")


def test_end_of_file_errors_point_after_the_text() -> None:
    ((code, line, col, _),) = errors("type A {\n  x: int")
    assert code == "E013" and (line, col) == (1, 8)
    ((code, line, col, message),) = errors("tool t(x: str) -> ")
    assert (code, line, col) == ("E010", 1, 19) and message.endswith("found the end of the file")


def test_the_parser_does_not_import_lark_when_its_tables_are_cached(tmp_path: Path) -> None:
    import subprocess

    env = {"MNC_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    program = (
        "import sys\n"
        "from mnlang.syntax.parser import parse\n"
        f"parse(open({str(REFUND)!r}).read())\n"
        "print('lark' in sys.modules)\n"
    )
    runs = [
        subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True)
        for _ in range(2)
    ]
    assert [r.stdout.strip() for r in runs] == ["True", "False"], [r.stderr for r in runs]


def test_tokens_print_as_their_text() -> None:
    tok = Token("NAME", "order", 0, 1, 1, 1, 6, 5)
    assert f"`{tok}`" == "`order`"
    assert re.fullmatch(r"Token\(NAME, 'order', 1:1\)", repr(tok))


def test_an_interpolation_may_hold_a_string() -> None:
    expr = parse_expr('"tags: {join(tags, ", ")}!"')
    assert isinstance(expr, ast.StrLit)
    call = expr.parts[1]
    assert isinstance(call, ast.Call)
    sep = call.args[1]
    assert isinstance(sep, ast.StrLit) and sep.constant == ", "
    assert expr.parts[2] == "!"


def test_limit_is_a_keyword_only_in_a_parallel_for_header() -> None:
    source = (
        "tool fetch(limit: int) -> list[str] {\n"
        '  impl: "tools:fetch"\n'
        "  limit: { concurrent: 2 }\n"
        "}\n"
        "workflow w(limit: int) -> list[str] {\n"
        "  xs = fetch(limit)\n"
        "  out = parallel for x in xs limit limit {\n"
        "    yield x\n"
        "  }\n"
        "  return out\n"
        "}\n"
    )
    module, diags = parse(source, "limit.mn")
    assert module is not None, diags
    workflow = module.decls[1]
    assert isinstance(workflow, ast.WorkflowDecl)
    assert workflow.params[0].name.name == "limit"
    loop = workflow.body.stmts[1]
    assert isinstance(loop, ast.Assign) and isinstance(loop.value, ast.For)
    assert isinstance(loop.value.limit, ast.Name) and loop.value.limit.name == "limit"


@pytest.mark.parametrize("lists", [0, 3, 6, 9])
@pytest.mark.parametrize("links", [0, 4, 8, 12])
@pytest.mark.parametrize("blocks", [0, 2, 5])
def test_the_quick_depth_walk_agrees_with_the_ordered_one(
    lists: int, links: int, blocks: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`too_deep` first walks the tree in any order and walks it again in source order
    only when a node is past a limit: with small limits, both walks judge every mix of
    nesting (lists, blocks) and chains (`+` links) the same, and E015 names the first
    construct past a limit."""
    from mnlang.syntax import limits

    monkeypatch.setattr(limits, "MAX_NESTING", 6)
    monkeypatch.setattr(limits, "MAX_DEPTH", 10)
    value = "[" * lists + "1" + "]" * lists
    chain = " + ".join(["x"] * (links + 1))
    body = f"y = {value}\nz = {chain}\n"
    for _ in range(blocks):
        body = f"if x > 0 {{\n{body}}}\n"
    text = f"workflow w(x: int) -> int {{\n{body}return x\n}}\n"
    module, diagnostics = parse(text, "t.mn")
    if lists == links == blocks == 0:
        assert module is not None
    if lists == 9 or links == 12:
        assert module is None and [d.code for d in diagnostics] == ["E015"]
    monkeypatch.setattr(limits, "_within_limits", lambda roots: False)
    module_ordered, diagnostics_ordered = parse(text, "t.mn")
    assert (module is None) == (module_ordered is None)
    assert [(d.code, str(d.span)) for d in diagnostics] == [
        (d.code, str(d.span)) for d in diagnostics_ordered
    ]
