"""Properties of `mnc fmt` over the examples, the standard library, the docs and the case
files, and over variants of them with whitespace, line breaks and comments changed:

- canonical: changing only whitespace (indentation, spaces, line breaks where the
  lexer ignores them, the number of blank lines beyond one) does not change the output;
- idempotent: `fmt(fmt(x)) == fmt(x)`;
- meaning-preserving: the formatted text parses to the same AST (positions aside)
  and, for the examples, compiles to IR with the same content hash;
- comments preserved: the same comment texts, in the same order.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnlang.fmt import format_source
from mnlang.fmt.equivalence import shape
from mnlang.ir.compile import compile_file
from mnlang.syntax.lexer import Comment, LexError, Token, tokenize
from mnlang.syntax.parser import parse

ROOT = Path(__file__).resolve().parent.parent
_FENCE = re.compile(r"^```(mn|mn-error|mn-fragment)\s*$")


def _docs_blocks() -> list[tuple[str, str]]:
    out = []
    for doc in sorted((ROOT / "docs").glob("*.md")):
        lines = doc.read_text("utf-8").split("\n")
        i = 0
        while i < len(lines):
            if _FENCE.match(lines[i]):
                j = i + 1
                while not lines[j].startswith("```"):
                    j += 1
                out.append((f"{doc.name}:{i + 1}", "\n".join(lines[i + 1 : j]) + "\n"))
                i = j
            i += 1
    return out


_DEEP_CASES = {"syntax_deep_ok.mn", "syntax_too_deep.mn"}


def _corpus() -> dict[str, str]:
    """Every parsable `.mn` text of the repository, by a name."""
    texts: dict[str, str] = {}
    files = [
        *sorted((ROOT / "examples").glob("*/*.mn")),
        *sorted((ROOT / "stdlib").glob("*.mn")),
        *sorted((ROOT / "tests" / "cases").rglob("*.mn")),
    ]
    for path in files:
        # 1,000 nested parentheses make one 2,000-character line: the formatter at depth
        # is tested by tests/test_hostile_input.py.
        if path.name not in _DEEP_CASES:
            texts[str(path.relative_to(ROOT))] = path.read_text("utf-8")
    texts.update(_docs_blocks())
    return {name: text for name, text in texts.items() if parse(text, name)[0] is not None}


CORPUS = _corpus()
EXAMPLES = sorted(n for n in CORPUS if n.startswith("examples/"))
# The variants are drawn from the larger texts, where there is most to vary.
VARIED = sorted(CORPUS, key=lambda n: -len(CORPUS[n]))[:40]


def fmt(text: str, name: str = "<test>") -> str:
    result = format_source(text, name)
    assert result.text is not None, [d.message for d in result.diagnostics]
    return result.text


def comment_texts(text: str) -> list[str]:
    comments: list[Comment] = []
    for _ in tokenize(text, comments=comments):
        pass
    return [c.text.rstrip() for c in comments]


def token_values(text: str) -> list[tuple[str, str]] | None:
    """The tokens of a text, None when it does not lex."""
    try:
        return [(t.type, t.value) for t in tokenize(text)]
    except LexError:
        return None


# ---- the text between tokens ----------------------------------------------------------


@dataclass(frozen=True)
class Gap:
    """The blanks between two tokens or comments, and what may be done with them."""

    start: int
    end: int
    newlines: int
    after_comment: bool
    before_comment: bool
    line_has_comment: bool  # a comment stands on the line where the gap starts or ends
    may_break: bool  # a line break here is ignored by the lexer
    may_glue: bool  # the tokens on both sides stay apart with no blank between them


@dataclass(frozen=True)
class Item:
    """A token or a comment (`token` None) of a text."""

    start: int
    end: int
    token: Token | None


@cache
def gaps(name: str) -> tuple[Gap, ...]:
    text = CORPUS[name]
    comments: list[Comment] = []
    tokens = [t for t in tokenize(text, comments=comments) if t.type not in ("_NL", "$END")]
    items = [Item(t.start_pos, t.end_pos, t) for t in tokens]
    items += [Item(c.pos, c.pos + len(c.text), None) for c in comments]
    items.sort(key=lambda item: item.start)
    comment_lines = {text.count("\n", 0, c.pos) for c in comments}
    pairs = list(pairwise(items))
    significant = _significant_breaks(text, pairs)
    out = []
    for (prev, next_), kept in zip(pairs, significant, strict=True):
        blanks = text[prev.end : next_.start]
        lines = {text.count("\n", 0, prev.end), text.count("\n", 0, next_.start)}
        glue = (
            prev.token is not None
            and next_.token is not None
            and "\n" not in blanks
            and _stay_apart(prev.token, next_.token)
        )
        out.append(
            Gap(
                start=prev.end,
                end=next_.start,
                newlines=blanks.count("\n"),
                after_comment=prev.token is None,
                before_comment=next_.token is None,
                line_has_comment=bool(lines & comment_lines),
                may_break=prev.token is not None and next_.token is not None and not kept,
                may_glue=glue,
            )
        )
    return tuple(out)


def _significant_breaks(text: str, pairs: list[tuple[Item, Item]]) -> list[bool]:
    """For each gap, whether a line break there ends something (the lexer keeps it).

    Whether the lexer keeps a line break depends only on the tokens around it and the
    brackets open there, not on other line breaks, so one pass with a line break in
    every gap answers for all gaps at once.
    """
    parts: list[str] = []
    spans: list[tuple[int, int]] = []
    at = length = 0
    for prev, next_ in pairs:
        parts.append(text[at : prev.end])
        length += prev.end - at
        blanks = text[prev.end : next_.start]
        if "\n" not in blanks:
            blanks = "\n"
        spans.append((length, length + len(blanks)))
        parts.append(blanks)
        length += len(blanks)
        at = next_.start
    parts.append(text[at:])
    breaks = sorted(t.start_pos for t in tokenize("".join(parts)) if t.type == "_NL")
    kept = []
    for a, b in spans:
        i = bisect_left(breaks, a)
        kept.append(i < len(breaks) and breaks[i] < b)
    return kept


def _stay_apart(prev: Token, next_: Token) -> bool:
    """Whether two tokens written with nothing between them still lex as the same two."""
    glued = token_values(prev.value + next_.value)
    return glued == [(prev.type, prev.value), (next_.type, next_.value)]


def _indent(choice: int) -> str:
    return ("", "  ", "    ", "\t", "        ", " ")[choice % 6]


def blank_variant(gap: Gap, choice: int) -> str | None:
    """Other blanks for a gap that lay the text out the same, or None to keep it."""
    if gap.newlines == 0:
        if gap.before_comment:
            return " " * (choice % 4)
        if gap.may_break and not gap.line_has_comment and choice % 3 == 0:
            return "\n" + _indent(choice)
        if gap.may_glue and choice % 3 == 1:
            return ""
        return " " * (1 + choice % 3)
    if gap.newlines == 1:
        if gap.may_break and not gap.line_has_comment and choice % 3 == 0:
            return " "
        return " " * (choice % 2) + "\n" + _indent(choice)
    return "\n" * (2 + choice % 3) + _indent(choice)


def comment_variant(gap: Gap, choice: int, text: str) -> str | None:
    """The gap's blanks with a comment added, or None where no comment may go."""
    blanks = text[gap.start : gap.end]
    first_newline = blanks.find("\n")
    if first_newline >= 0:
        if choice % 2 and not gap.after_comment:
            return blanks[:first_newline] + f"  # trailing {choice}" + blanks[first_newline:]
        return blanks[: first_newline + 1] + f"# own line {choice}\n" + blanks[first_newline + 1 :]
    if gap.may_break and not gap.before_comment:
        return f"  # inside {choice}\n" + _indent(choice)
    return None


def apply(text: str, name: str, edits: list[tuple[int, int]], with_comments: bool) -> str:
    all_gaps = gaps(name)
    replaced: dict[int, str] = {}
    for index, choice in edits:
        gap = all_gaps[index % len(all_gaps)]
        if with_comments and choice % 4 == 0:
            new = comment_variant(gap, choice, text)
        else:
            new = blank_variant(gap, choice)
        if new is not None:
            replaced[index % len(all_gaps)] = new
    out = []
    at = 0
    for index in sorted(replaced):
        gap = all_gaps[index]
        out.append(text[at : gap.start])
        out.append(replaced[index])
        at = gap.end
    out.append(text[at:])
    return "".join(out)


edits = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 1_000)), max_size=60)


# ---- properties ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_every_corpus_text_formats_idempotently_to_the_same_meaning(name: str) -> None:
    text = CORPUS[name]
    once = fmt(text, name)
    assert fmt(once, name) == once
    assert shape(parse(once, name)[0]) == shape(parse(text, name)[0])
    assert comment_texts(once) == comment_texts(text)
    assert all(len(line) <= 100 or "#" in line or '"' in line for line in once.split("\n"))


@pytest.mark.parametrize("name", EXAMPLES)
def test_formatting_an_example_keeps_its_ir_hash(name: str) -> None:
    path = ROOT / name
    before, _ = compile_file(path, CORPUS[name])
    after, _ = compile_file(path, fmt(CORPUS[name], name))
    assert before is not None and after is not None
    assert after.hash == before.hash


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(VARIED), edits=edits)
def test_whitespace_changes_do_not_change_the_output(
    name: str, edits: list[tuple[int, int]]
) -> None:
    text = CORPUS[name]
    varied = apply(text, name, edits, with_comments=False)
    assert token_values(varied) == token_values(text)
    assert fmt(varied, name) == fmt(text, name)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(VARIED), edits=edits)
def test_variants_with_comments_format_idempotently_keeping_meaning_and_comments(
    name: str, edits: list[tuple[int, int]]
) -> None:
    text = CORPUS[name]
    varied = apply(text, name, edits, with_comments=True)
    assert token_values(varied) == token_values(text)
    once = fmt(varied, name)
    assert fmt(once, name) == once
    assert shape(parse(once, name)[0]) == shape(parse(text, name)[0])
    assert comment_texts(once) == comment_texts(varied)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(EXAMPLES), edits=edits)
def test_variants_of_examples_keep_the_ir_hash(name: str, edits: list[tuple[int, int]]) -> None:
    text = CORPUS[name]
    path = ROOT / name
    varied = apply(text, name, edits, with_comments=True)
    before, _ = compile_file(path, text)
    after, _ = compile_file(path, fmt(varied, name))
    assert before is not None and after is not None
    assert after.hash == before.hash
