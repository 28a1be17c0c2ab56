"""`mnc fmt`: the canonical layout rule by rule, and the command line."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

from click.testing import CliRunner

from mnlang.cli import main
from mnlang.fmt import format_source

ROOT = Path(__file__).resolve().parent.parent


def fmt(text: str) -> str:
    result = format_source(dedent(text).lstrip("\n"))
    assert result.text is not None, [d.message for d in result.diagnostics]
    return result.text


def same(text: str) -> None:
    """`text` is already in the canonical layout."""
    expected = dedent(text).lstrip("\n")
    assert fmt(expected) == expected


# ---- layout ------------------------------------------------------------------------


def test_statements_are_indented_by_two_spaces_one_per_line() -> None:
    assert fmt(
        """
        workflow w(a:int)->int{
                x=a+1
          if x>2{return x}else{fail "small"}
        }
        """
    ) == dedent(
        """\
        workflow w(a: int) -> int {
          x = a + 1
          if x > 2 {
            return x
          } else {
            fail "small"
          }
        }
        """
    )


def test_declaration_options_go_one_per_line() -> None:
    assert fmt('tool f(id: str) -> str { impl: "tools:f", timeout: 5s }') == dedent(
        """\
        tool f(id: str) -> str {
          impl: "tools:f"
          timeout: 5s
        }
        """
    )


def test_short_option_values_stay_inline_and_long_ones_go_one_per_line() -> None:
    same(
        """
        tool f(id: str) -> str {
          impl: "tools:f"
          retry: { attempts: 3, on: [timeout, transient] }
        }
        """
    )
    long = (
        'tool f(id: str) -> str {\n  impl: "tools:f"\n  retry: { attempts: 5, backoff: 1s, '
        "factor: 2, max_delay: 30s, jitter: true, on: [timeout, transient] }\n}\n"
    )
    assert fmt(long) == dedent(
        """\
        tool f(id: str) -> str {
          impl: "tools:f"
          retry: {
            attempts: 5
            backoff: 1s
            factor: 2
            max_delay: 30s
            jitter: true
            on: [timeout, transient]
          }
        }
        """
    )


def test_lists_and_arguments_stay_inline_when_they_fit_else_one_per_line() -> None:
    same(
        """
        workflow w() -> list[str] {
          return ["a", "b"]
        }
        """
    )
    items = ", ".join(f'"item number {i}"' for i in range(8))
    assert fmt(f"workflow w() -> list[str] {{\n  return [{items}]\n}}\n") == (
        "workflow w() -> list[str] {\n  return [\n"
        + "".join(f'    "item number {i}",\n' for i in range(8))
        + "  ]\n}\n"
    )


def test_long_conditions_break_after_their_operators() -> None:
    names = [f"flag_number_{i}" for i in range(7)]
    params = ", ".join(f"{n}: bool" for n in names)
    text = f"workflow w({params}) -> bool {{\n  return {' and '.join(names)}\n}}\n"
    out = fmt(text)
    assert "  return flag_number_0 and\n    flag_number_1 and\n" in out
    assert all(len(line) <= 100 for line in out.split("\n"))


def test_blank_lines_between_declarations_and_statements_are_kept_as_at_most_one() -> None:
    assert fmt(
        """
        event a



        event b
        event c
        workflow w() -> int {

          x = 1


          return x

        }
        """
    ) == dedent(
        """\
        event a

        event b
        event c
        workflow w() -> int {
          x = 1

          return x
        }
        """
    )


def test_comments_keep_their_places() -> None:
    same(
        """
        # a module comment

        # about the enum
        enum Size { small, large }  # trailing

        workflow w(s: Size) -> int {  # after the brace
          class: "c"

          # before a statement
          x = 1   # after it
          y = 22  # aligned with the line above
          match s {
            small => { return x }
            large => { return y }
          }
          # at the end of the body
        }
        # at the end of the file
        """
    )


def test_a_comment_inside_a_list_puts_the_list_one_item_per_line() -> None:
    assert fmt(
        """
        workflow w() -> list[int] {
          return [1, 2,  # two
            3]
        }
        """
    ) == dedent(
        """\
        workflow w() -> list[int] {
          return [
            1,
            2,  # two
            3,
          ]
        }
        """
    )


def test_a_comment_inside_an_expression_moves_to_the_end_of_its_statement() -> None:
    assert fmt(
        """
        workflow w(a: int) -> int {
          b = a +  # why
            1
          return b
        }
        """
    ) == dedent(
        """\
        workflow w(a: int) -> int {
          b = a + 1  # why
          return b
        }
        """
    )


def test_triple_quoted_strings_are_kept_verbatim() -> None:
    prompt = '"""\n        Odd   spacing {x}\n   kept\n      """'
    text = f'agent a(x: str) -> str {{\n     model: "m"\n  prompt: {prompt}\n}}\n'
    assert fmt(text) == f'agent a(x: str) -> str {{\n  model: "m"\n  prompt: {prompt}\n}}\n'


def test_literals_are_printed_as_written() -> None:
    same(
        """
        workflow w() -> str {
          a = [1.5e3, $0.50, 500ms, "x\\ty {{z}}", true, null]
          return "done"
        }
        """
    )


def test_parentheses_are_kept_and_unary_operators_bind_tight() -> None:
    assert fmt("workflow w(a: int) -> int {\n  return - ( a-1 ) * -a\n}\n") == (
        "workflow w(a: int) -> int {\n  return -(a - 1) * -a\n}\n"
    )


def test_a_match_arm_of_one_short_statement_stays_on_its_line() -> None:
    assert fmt(
        """
        enum T { a, b }
        workflow w(t: T) -> int {
          match t {
            a => {
              return 1
            }
            b => { x = 2
              return x }
          }
        }
        """
    ) == dedent(
        """\
        enum T { a, b }
        workflow w(t: T) -> int {
          match t {
            a => { return 1 }
            b => {
              x = 2
              return x
            }
          }
        }
        """
    )


def test_a_parallel_branch_of_one_statement_needs_no_braces() -> None:
    assert fmt(
        """
        workflow w() -> int {
          parallel { { a = 1 }
            { b = 2
              c = 3 } }
          return a + b + c
        }
        """
    ) == dedent(
        """\
        workflow w() -> int {
          parallel {
            a = 1
            {
              b = 2
              c = 3
            }
          }
          return a + b + c
        }
        """
    )


def test_every_statement_form_is_laid_out() -> None:
    same(
        """
        import std.policies { standard_retry }
        import billing

        type P {
          n: int = 1
          tags: list[str]?
        }

        event done -> P

        policy p {
          attempts: 2
        }

        schedule s {
          run: w([1, 2])
          every: 1d
        }

        workflow w(xs: list[int], limit_: int = 3) -> int {
          budget: $1.00

          @first total = 0
          for x in xs {
            total = total + x
          }
          ys = parallel for x in xs limit 2 {
            yield x * 2
          }
          while total < 10, max: 5 {
            total = total + 1
          }
          d = checkpoint review {
            ask: "ok?"
            timeout: never
          }
          wait 1h
          e = wait done { timeout: 2d }
          try {
            log "t"
          } catch timeout, transient as err {
            log err.message
          } catch any {
            log "other"
          } finally {
            log "f"
          }
          r = P { n: 1, tags: null }
          return len(ys) + r.n + xs[0] ?? 0
        }

        scenario sc {
          run: w([1])
          expect: { status: completed }
        }
        """
    )


def test_a_syntax_error_gives_its_diagnostics_and_no_text() -> None:
    result = format_source("enum X { a,\n")
    assert result.text is None
    assert [d.code for d in result.diagnostics] == ["E013"]


def test_an_empty_file_stays_empty() -> None:
    assert fmt("\n\n") == ""
    assert fmt("# only a comment\n\n") == "# only a comment\n"


# ---- the command line ----------------------------------------------------------------


UGLY = "enum  Size {small,large}\n"
CLEAN = "enum Size { small, large }\n"


def test_fmt_rewrites_files_in_place_and_folders_recursively(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    a, b, hidden = tmp_path / "a.mn", tmp_path / "sub" / "b.mn", tmp_path / ".hidden" / "c.mn"
    for f in (a, b, hidden):
        f.write_text(UGLY)
    result = CliRunner().invoke(main, ["fmt", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert a.read_text() == CLEAN and b.read_text() == CLEAN
    assert hidden.read_text() == UGLY
    assert "2 files reformatted" in result.output


def test_fmt_check_lists_files_that_would_change_and_exits_1(tmp_path: Path) -> None:
    ugly, clean = tmp_path / "ugly.mn", tmp_path / "clean.mn"
    ugly.write_text(UGLY)
    clean.write_text(CLEAN)
    result = CliRunner().invoke(main, ["fmt", "--check", str(ugly), str(clean)])
    assert result.exit_code == 1
    assert f"would reformat {ugly}" in result.output
    assert str(clean) not in result.output.replace(str(ugly), "")
    assert ugly.read_text() == UGLY
    assert CliRunner().invoke(main, ["fmt", "--check", str(clean)]).exit_code == 0


def test_fmt_diff_prints_a_unified_diff_and_writes_nothing(tmp_path: Path) -> None:
    ugly = tmp_path / "ugly.mn"
    ugly.write_text(UGLY)
    result = CliRunner().invoke(main, ["fmt", "--diff", str(ugly)])
    assert result.exit_code == 0
    assert f"-{UGLY}+{CLEAN}" in result.output
    assert ugly.read_text() == UGLY


def test_fmt_reads_standard_input_for_a_dash() -> None:
    result = CliRunner().invoke(main, ["fmt", "-"], input=UGLY)
    assert result.exit_code == 0
    assert result.output == CLEAN


def test_fmt_reports_a_syntax_error_and_leaves_the_file_alone(tmp_path: Path) -> None:
    broken = tmp_path / "broken.mn"
    broken.write_text("workflow w() -> int {\n  x = \n}\n")
    result = CliRunner().invoke(main, ["fmt", str(broken)])
    assert result.exit_code == 1
    assert "error[E010]" in result.output
    assert broken.read_text() == "workflow w() -> int {\n  x = \n}\n"


def test_fmt_reports_a_missing_file() -> None:
    result = CliRunner().invoke(main, ["fmt", "no/such/file.mn"])
    assert result.exit_code == 1
    assert "error[E090]" in result.output


def test_the_examples_and_the_standard_library_are_formatted() -> None:
    result = CliRunner().invoke(
        main, ["fmt", "--check", str(ROOT / "examples"), str(ROOT / "stdlib")]
    )
    assert result.exit_code == 0, result.output
