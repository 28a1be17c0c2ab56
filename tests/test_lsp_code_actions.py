"""Quick fixes: `mnc lsp` offers each diagnostic's fix (the edit its `help:` describes) as a
`textDocument/codeAction` of kind `quickfix`, and applying it makes the diagnostic go away.

Driven over stdio with the JSON-RPC client of test_lsp.py, on the checker's case files;
`test_every_fix_of_the_cases_applies_cleanly` checks every fix the checker makes for the
case files in-process, so a new fix is covered as soon as a case exercises it."""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest

from mnlang.checker import check
from mnlang.diagnostics import Edit
from tests.test_cases import CASES, case_entries
from tests.test_lsp import Client, Message, diagnostics_of, open_document, session

# The codes whose fixes are mechanical, each with a case file that has one to offer.
FIXED = [
    ("E011", "syntax_missing_colon.mn"),
    ("E011", "syntax_workflow_option_missing_colon.mn"),
    ("E012", "syntax_equals_for_colon.mn"),
    ("E010", "syntax_lowercase_type.mn"),
    ("E010", "syntax_misspelt_keyword.mn"),
    ("E101", "names_unknown.mn"),
    ("E103", "names_unknown_type.mn"),
    ("E107", "names_fields.mn"),
    ("E108", "names_enum_member.mn"),
    ("E208", "options_unknown_key.mn"),
    ("E212", "options_retry.mn"),
    ("E301", "durability_effect_no_key.mn"),
    ("E302", "durability_once_retry.mn"),
    ("E501", "human_no_timeout.mn"),
    ("E502", "human_no_on_timeout.mn"),
    ("E106", "imports_unknown_name/main.mn"),
    ("W104", "imports_unused/main.mn"),
    ("E213", "types_steps_in_expressions.mn"),
    ("E213", "flow_loops.mn"),
    ("E320", "errors_named_bad.mn"),
    ("E513", "signals_token_not_event.mn"),
]


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with session() as c:
        yield c


def utf16_offset(text: str, position: Message) -> int:
    """The offset into `text` of an LSP position (columns in UTF-16 code units)."""
    lines = text.split("\n")
    start = sum(len(line) + 1 for line in lines[: position["line"]])
    line, units, column = lines[position["line"]], 0, 0
    while units < position["character"]:
        units += len(line[column].encode("utf-16-le")) // 2
        column += 1
    return start + column


def apply_lsp(text: str, edits: list[Message]) -> str:
    """The text with LSP text edits applied (their ranges are of the original text)."""
    spans = sorted(
        (
            (utf16_offset(text, e["range"]["start"]), utf16_offset(text, e["range"]["end"]))
            for e in edits
        ),
    )
    for (_, end), (start, _) in pairwise(spans):
        assert end <= start, f"overlapping edits: {edits}"
    ordered = sorted(edits, key=lambda e: utf16_offset(text, e["range"]["start"]), reverse=True)
    for e in ordered:
        start = utf16_offset(text, e["range"]["start"])
        end = utf16_offset(text, e["range"]["end"])
        text = text[:start] + e["newText"] + text[end:]
    return text


def code_actions(
    client: Client, uri: str, diagnostic: Message, only: list[str] | None = None
) -> list[Message]:
    context: Message = {"diagnostics": [diagnostic]}
    if only is not None:
        context["only"] = only
    result = client.request(
        "textDocument/codeAction",
        {"textDocument": {"uri": uri}, "range": diagnostic["range"], "context": context},
    )
    return result or []


def change(client: Client, uri: str, version: int, text: str) -> list[Message]:
    """Replace the document's text and return the diagnostics published for that version."""
    client.notify(
        "textDocument/didChange",
        {"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": text}]},
    )
    params = client.notification(
        "textDocument/publishDiagnostics",
        lambda p: p["uri"] == uri and p.get("version") == version,
    )
    items: list[Message] = params["diagnostics"]
    return items


def test_initialize_announces_quick_fixes(client: Client) -> None:
    provider = client.capabilities.get("codeActionProvider")
    assert isinstance(provider, dict), provider
    assert provider["codeActionKinds"] == ["quickfix"]


@pytest.mark.parametrize(("code", "case"), FIXED, ids=[f"{c}-{f}" for c, f in FIXED])
def test_the_quick_fix_is_offered_and_removes_the_diagnostic(
    tmp_path: Path, client: Client, code: str, case: str
) -> None:
    if "/" in case:  # a program of several files: copy them all
        shutil.copytree((CASES / case).parent, tmp_path / "case")
        path = tmp_path / "case" / Path(case).name
    else:
        path = tmp_path / case
        shutil.copy(CASES / case, path)
    text = path.read_text("utf-8")
    uri = open_document(client, path)
    published = diagnostics_of(client, uri)
    targets = [d for d in published if d["code"] == code]
    assert targets, published
    fixed_one = False
    for target in targets:
        actions = code_actions(client, uri, target)
        if not actions:
            continue
        action = next(a for a in actions if a["diagnostics"][0]["range"] == target["range"])
        assert action["kind"] == "quickfix"
        assert action["diagnostics"] == [target]  # the very diagnostic the editor shows
        assert action["title"]
        assert set(action["edit"]["changes"]) == {uri}
        edited = apply_lsp(text, action["edit"]["changes"][uri])
        assert edited != text
        after = change(client, uri, 2, edited)
        count = Counter(d["code"] for d in after)
        assert count[code] < len(targets), (action["title"], after)
        # The same text, checked by `mnc check`'s checker, agrees.
        assert Counter(d.code for d in check(path, edited).diagnostics) == count
        fixed_one = True
        break
    assert fixed_one, f"no quick fix for any {code} in {case}"


def test_no_quick_fix_outside_the_diagnostic_or_for_other_kinds(
    tmp_path: Path, client: Client
) -> None:
    path = tmp_path / "colon.mn"
    shutil.copy(CASES / "syntax_equals_for_colon.mn", path)
    uri = open_document(client, path)
    target = next(d for d in diagnostics_of(client, uri) if d["code"] == "E012")
    assert code_actions(client, uri, target, only=["refactor"]) == []
    assert code_actions(client, uri, target, only=["quickfix"])
    assert target["range"]["start"]["line"] > 0
    far = {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}
    result = client.request(
        "textDocument/codeAction",
        {"textDocument": {"uri": uri}, "range": far, "context": {"diagnostics": []}},
    )
    assert not result


def test_a_hoisted_step_keeps_its_indentation_and_a_fresh_name(
    tmp_path: Path, client: Client
) -> None:
    source = (
        "type Score { value: float }\n"
        "tool score(text: str) -> Score {\n"
        '  impl: "tools:score"\n'
        "}\n"
        "workflow w(text: str, score_result: int) -> float {\n"
        "  if score_result > 0 {\n"
        "    return score(text).value * 2.0\n"
        "  }\n"
        "  return 0.0\n"
        "}\n"
    )
    path = tmp_path / "hoist.mn"
    path.write_text(source, "utf-8")
    uri = open_document(client, path)
    target = next(d for d in diagnostics_of(client, uri) if d["code"] == "E213")
    (action,) = code_actions(client, uri, target)
    edited = apply_lsp(source, action["edit"]["changes"][uri])
    assert "    score_result2 = score(text)\n    return score_result2.value * 2.0\n" in edited
    assert [d["code"] for d in change(client, uri, 2, edited)] == []


def test_a_step_on_the_right_of_and_is_not_hoisted(tmp_path: Path, client: Client) -> None:
    source = (
        "tool ok(text: str) -> bool {\n"
        '  impl: "tools:ok"\n'
        "}\n"
        "workflow w(text: str, quick: bool) -> bool {\n"
        "  if quick and ok(text) {\n"
        "    return true\n"
        "  }\n"
        "  return false\n"
        "}\n"
    )
    path = tmp_path / "and.mn"
    path.write_text(source, "utf-8")
    uri = open_document(client, path)
    target = next(d for d in diagnostics_of(client, uri) if d["code"] == "E213")
    assert code_actions(client, uri, target) == []  # it would call `ok` when `quick` is false


def test_an_unused_import_goes_with_its_line_or_its_comma(tmp_path: Path) -> None:
    def tool(name: str) -> str:
        return f'tool {name}(x: str) -> str {{\n  impl: "tools:{name}"\n}}\n'

    (tmp_path / "lib.mn").write_text(tool("a"), "utf-8")
    (tmp_path / "more.mn").write_text(tool("b") + tool("c"), "utf-8")
    main = tmp_path / "main.mn"
    source = (
        "import lib { a }\n"
        "import more { b, c }  # both\n"
        "workflow w(x: str) -> str {\n"
        "  y = c(x)\n"
        "  return y\n"
        "}\n"
    )
    main.write_text(source, "utf-8")
    fixes = {d.fix.title: d.fix for d in check(main).diagnostics if d.fix is not None}
    assert set(fixes) == {"Remove the import of `a`", "Remove the import of `b`"}
    assert apply(source, fixes["Remove the import of `a`"].edits).startswith(
        "import more { b, c }  # both\nworkflow"
    )
    assert "\nimport more { c }  # both\n" in apply(source, fixes["Remove the import of `b`"].edits)


# ---- every fix the checker makes for the case files ---------------------------------


def apply(text: str, edits: tuple[Edit, ...]) -> str:
    for edit in sorted(edits, key=lambda e: e.span.start, reverse=True):
        text = text[: edit.span.start] + edit.text + text[edit.span.end :]
    return text


@pytest.mark.parametrize("entry", case_entries(), ids=lambda p: str(p.relative_to(CASES)))
def test_every_fix_of_the_cases_applies_cleanly(tmp_path: Path, entry: Path) -> None:
    """Each fix's edits lie in one file, in order and apart, their spans' lines and columns
    agree with their offsets, and the program with the fixed file has fewer diagnostics of
    that code (checked in a copy of the case)."""
    single = entry.parent == CASES
    home = entry.parent.resolve()
    copy = tmp_path / ("case" if single else entry.parent.name)
    if single:
        copy.mkdir()
        shutil.copy(entry, copy / entry.name)
    else:
        shutil.copytree(entry.parent, copy)
    copied_entry = copy / entry.name
    before = Counter(d.code for d in check(copied_entry).diagnostics)
    for d in check(entry).diagnostics:
        if d.fix is None:
            continue
        assert d.fix.title
        (file,) = {Path(e.span.file).resolve() for e in d.fix.edits}
        text = file.read_text("utf-8")
        starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]
        spans = sorted((e.span for e in d.fix.edits), key=lambda s: s.start)
        for span in spans:
            assert 0 <= span.start <= span.end <= len(text)
            assert starts[span.line - 1] + span.col - 1 == span.start, span
            assert starts[span.end_line - 1] + span.end_col - 1 == span.end, span
        for a, b in pairwise(spans):
            assert a.end <= b.start
        fixed = apply(text, d.fix.edits)
        assert fixed != text
        target = copy / file.relative_to(home)
        target.write_text(fixed, "utf-8")
        try:
            after = Counter(x.code for x in check(copied_entry).diagnostics)
        finally:
            target.write_text(text, "utf-8")
        assert after[d.code] < before[d.code], (d.code, d.message, d.fix)
