"""`mnc lsp` over stdio: checks put off while the text changes, references and renaming
(with `prepareRename`) across the files of a program, and the renames it refuses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mnlang.checker import check
from tests.test_lsp import Client, Message, diagnostics_of, open_document, position, session

HELPER = """\
enum Tone { calm, angry }

type Reply {
  text: str
  tone: Tone
}

tool answer(question: str) -> Reply {
  impl: "tools:answer"
  timeout: 5s
}
"""

MAIN = """\
import std.policies { standard_retry }
import helper { Tone, answer }

tool lookup(id: str) -> str {
  impl: "tools:lookup"
  timeout: 5s
  retry: standard_retry
}

workflow support(question: str) -> str {
  reply = answer(question)
  note = lookup(question)
  if reply.tone == Tone.angry {
    return "sorry: {note}"
  }
  match reply.tone {
    calm => { return reply.text }
    angry => { return "sorry again: {note}" }
  }
}
"""

RENAME_CAPABILITIES = {"textDocument": {"rename": {"prepareSupport": True}}}


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with session(RENAME_CAPABILITIES) as c:
        yield c


@pytest.fixture
def program(tmp_path: Path) -> tuple[Path, Path]:
    """A program of two files: main.mn imports helper.mn."""
    main, helper = tmp_path / "main.mn", tmp_path / "helper.mn"
    main.write_text(MAIN)
    helper.write_text(HELPER)
    assert check(main).diagnostics == []
    return main, helper


def at(uri: str, text: str, needle: str, shift: int = 0) -> dict[str, Any]:
    return {"textDocument": {"uri": uri}, "position": position(text, needle, shift)}


def spots(locations: list[Message]) -> list[tuple[str, int, int]]:
    """Each location as (file name, 1-based line, 1-based column), sorted."""
    return sorted(
        (
            Path(loc["uri"]).name,
            loc["range"]["start"]["line"] + 1,
            loc["range"]["start"]["character"] + 1,
        )
        for loc in locations
    )


def apply(text: str, edits: list[Message]) -> str:
    """The text with LSP edits (on one line each, ASCII) applied."""
    lines = text.split("\n")
    for edit in sorted(
        edits,
        key=lambda e: (e["range"]["start"]["line"], e["range"]["start"]["character"]),
        reverse=True,
    ):
        start, end = edit["range"]["start"], edit["range"]["end"]
        assert start["line"] == end["line"]
        line = lines[start["line"]]
        lines[start["line"]] = (
            line[: start["character"]] + edit["newText"] + line[end["character"] :]
        )
    return "\n".join(lines)


# ---- debouncing ------------------------------------------------------------------------


def change(client: Client, uri: str, version: int, text: str) -> None:
    client.notify(
        "textDocument/didChange",
        {"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": text}]},
    )


def publications(client: Client, uri: str, quiet: float) -> list[Message]:
    """The next diagnostics published for `uri` (waited for) and any more that come before
    `quiet` seconds pass without one."""
    found = [client.notification("textDocument/publishDiagnostics", lambda p: p["uri"] == uri)]
    while more := client.quiet_notifications("textDocument/publishDiagnostics", quiet):
        found.extend(more)
    return found


def test_quick_changes_are_checked_once_from_the_last_text(tmp_path: Path) -> None:
    path = tmp_path / "typing.mn"
    texts = [f'workflow w() -> int {{\n  return "{"x" * n}"\n}}\n' for n in range(1, 5)]
    last = "workflow w() -> int {\n  return missing\n}\n"
    debounce = 0.4
    with session(options={"debounceMs": debounce * 1000}) as client:
        uri = open_document(client, path, texts[0])
        (opened,) = publications(client, uri, 0)  # at once on open
        assert opened["version"] == 1
        assert [d["code"] for d in opened["diagnostics"]] == ["E201"]
        for version, text in enumerate([*texts[1:], last], start=2):
            change(client, uri, version, text)
        (final,) = publications(client, uri, 2 * debounce)
        assert final["version"] == 5
        expected = check(path, last).diagnostics
        assert [d["code"] for d in final["diagnostics"]] == [d.code for d in expected] == ["E101"]
        assert final["diagnostics"][0]["range"]["start"] == position(last, "missing")

        # A save checks at once and drops the check a change put off.
        change(client, uri, 6, texts[0])
        client.notify("textDocument/didSave", {"textDocument": {"uri": uri}})
        published = publications(client, uri, 2 * debounce)
        assert [(p["version"], [d["code"] for d in p["diagnostics"]]) for p in published] == [
            (6, ["E201"])
        ]


def test_a_request_during_the_quiet_time_sees_the_new_text(tmp_path: Path) -> None:
    path = tmp_path / "hover.mn"
    text = "workflow w(count: int) -> int {\n  return count\n}\n"
    with session(options={"debounceMs": 5000}) as client:
        uri = open_document(client, path, "workflow w() -> int {\n  return 1\n}\n")
        assert diagnostics_of(client, uri) == []
        change(client, uri, 2, text)
        hover = client.request("textDocument/hover", at(uri, text, "count\n"))
        assert hover["contents"]["value"] == "```mn\nparameter count: int\n```"
        published = client.quiet_notifications("textDocument/publishDiagnostics", 0.3)
        assert [p["version"] for p in published] == [2]  # published with the new analysis


# ---- references ------------------------------------------------------------------------


def test_references_of_a_declaration_span_the_files_of_the_program(
    client: Client, program: tuple[Path, Path]
) -> None:
    main, _ = program
    uri = open_document(client, main)
    assert diagnostics_of(client, uri) == []
    found = client.request(
        "textDocument/references",
        {**at(uri, MAIN, "answer(question)"), "context": {"includeDeclaration": True}},
    )
    assert spots(found) == [("helper.mn", 8, 6), ("main.mn", 2, 23), ("main.mn", 11, 11)]
    without = client.request(
        "textDocument/references",
        {**at(uri, MAIN, "answer(question)"), "context": {"includeDeclaration": False}},
    )
    assert spots(without) == [("main.mn", 2, 23), ("main.mn", 11, 11)]


def test_references_of_members_types_parameters_and_variables(
    client: Client, program: tuple[Path, Path]
) -> None:
    main, _ = program
    uri = open_document(client, main)
    diagnostics_of(client, uri)

    def refs(needle: str, shift: int = 0) -> list[tuple[str, int, int]]:
        context = {"context": {"includeDeclaration": True}}
        return spots(
            client.request("textDocument/references", {**at(uri, MAIN, needle, shift), **context})
        )

    # `Tone.angry` and the `angry` arm of a match on a `Tone`
    assert refs("angry {", 5) == [("helper.mn", 1, 19), ("main.mn", 13, 25), ("main.mn", 18, 5)]
    assert refs("Tone, answer") == [
        ("helper.mn", 1, 6),
        ("helper.mn", 5, 9),
        ("main.mn", 2, 17),
        ("main.mn", 13, 20),
    ]
    assert refs("question: str") == [("main.mn", 10, 18), ("main.mn", 11, 18), ("main.mn", 12, 17)]
    assert refs("note}", 0) == [("main.mn", 12, 3), ("main.mn", 14, 21), ("main.mn", 18, 38)]
    assert (
        client.request(
            "textDocument/references",
            {**at(uri, MAIN, '"sorry'), "context": {"includeDeclaration": True}},
        )
        is None
    )


# ---- renaming --------------------------------------------------------------------------


def test_rename_edits_every_use_and_the_declaration_across_files(
    client: Client, program: tuple[Path, Path]
) -> None:
    main, helper = program
    uri = open_document(client, main)
    diagnostics_of(client, uri)
    prepared = client.request("textDocument/prepareRename", at(uri, MAIN, "answer(question)", 3))
    assert prepared == {
        "range": {"start": position(MAIN, "answer(question)"), "end": position(MAIN, "(question)")},
        "placeholder": "answer",
    }
    edit = client.request(
        "textDocument/rename", {**at(uri, MAIN, "answer(question)"), "newName": "reply_to"}
    )
    changes = edit["changes"]
    assert sorted(Path(u).name for u in changes) == ["helper.mn", "main.mn"]
    new_main = apply(MAIN, changes[main.as_uri()])
    new_helper = apply(HELPER, changes[helper.as_uri()])
    assert "import helper { Tone, reply_to }" in new_main
    assert "reply = reply_to(question)" in new_main
    assert "tool reply_to(question: str) -> Reply {" in new_helper
    main.write_text(new_main)
    helper.write_text(new_helper)
    assert check(main).diagnostics == []


def test_rename_of_a_member_a_type_and_a_variable_keeps_the_program_checking(
    client: Client, program: tuple[Path, Path]
) -> None:
    main, helper = program
    for needle, shift, new_name in (
        ("angry =>", 0, "furious"),
        ("Tone.", 0, "Mood"),
        ("note =", 0, "hint"),
    ):
        main_text, helper_text = main.read_text(), helper.read_text()
        uri = open_document(client, main, main_text)
        diagnostics_of(client, uri)
        edit = client.request(
            "textDocument/rename", {**at(uri, main_text, needle, shift), "newName": new_name}
        )
        changes = edit["changes"]
        main.write_text(apply(main_text, changes.get(main.as_uri(), [])))
        helper.write_text(apply(helper_text, changes.get(helper.as_uri(), [])))
        assert check(main).diagnostics == [], (new_name, main.read_text())
    assert "enum Mood { calm, furious }" in helper.read_text()
    assert 'return "sorry: {hint}"' in main.read_text()


@pytest.mark.parametrize(
    ("needle", "new_name", "message"),
    [
        ("answer(question)", "if", "`if` is a reserved word"),
        ("answer(question)", "2fast", "`2fast` is not a name"),
        (
            "answer(question)",
            "Answer",
            "tool names start with a small letter, and `Answer` does not",
        ),
        ("Tone.", "tone", "enum names start with a capital letter, and `tone` does not"),
        ("answer(question)", "lookup", "`lookup` is already declared in `main.mn`"),
        ("answer(question)", "note", "`support` in `main.mn` has a variable or parameter `note`"),
        ("answer(question)", "len", "`len` is a builtin function"),
        ("lookup(question)", "answer", "`answer` is already imported in `main.mn`"),
        ("note =", "reply", "`support` already has a variable or parameter `reply`"),
        ("note =", "question", "`support` already has a variable or parameter `question`"),
        ("angry {", "calm", "`Tone` already has a member `calm`"),
        ("standard_retry\n", "my_retry", "`standard_retry` is declared in the standard library"),
    ],
)
def test_renames_that_would_break_the_program_are_refused(
    client: Client, program: tuple[Path, Path], needle: str, new_name: str, message: str
) -> None:
    main, _ = program
    uri = open_document(client, main)
    diagnostics_of(client, uri)
    shift = 5 if needle == "angry {" else 0
    error = client.request_error(
        "textDocument/rename", {**at(uri, MAIN, needle, shift), "newName": new_name}
    )
    assert error["code"] == -32803
    assert error["message"].startswith(message), error["message"]


def test_prepare_rename_refuses_the_standard_library_and_what_is_not_a_name(
    client: Client, program: tuple[Path, Path]
) -> None:
    main, _ = program
    uri = open_document(client, main)
    diagnostics_of(client, uri)
    std = client.request_error("textDocument/prepareRename", at(uri, MAIN, "standard_retry\n"))
    assert std["message"] == (
        "`standard_retry` is declared in the standard library (`std.policies`), which is read-only"
    )
    literal = client.request_error("textDocument/prepareRename", at(uri, MAIN, '"sorry', 2))
    assert "can be renamed" in literal["message"]
    keyword = client.request_error("textDocument/prepareRename", at(uri, MAIN, "return reply"))
    assert "can be renamed" in keyword["message"]
    module = client.request_error("textDocument/prepareRename", at(uri, MAIN, "policies {"))
    assert "can be renamed" in module["message"]
    broken = MAIN.replace("note = lookup", "note = = lookup")
    broken_uri = open_document(client, main.with_name("broken.mn"), broken)
    assert diagnostics_of(client, broken_uri)
    unparsed = client.request_error("textDocument/prepareRename", at(broken_uri, broken, "reply ="))
    assert unparsed["message"] == "this file does not parse: fix its syntax errors, then rename"


def test_rename_refuses_a_file_changed_in_the_editor_since_it_was_checked(
    client: Client, program: tuple[Path, Path]
) -> None:
    main, helper = program
    uri = open_document(client, main)
    diagnostics_of(client, uri)
    helper_uri = open_document(client, helper, "# unsaved\n" + HELPER)
    diagnostics_of(client, helper_uri)
    error = client.request_error(
        "textDocument/rename", {**at(uri, MAIN, "answer(question)"), "newName": "ask"}
    )
    assert error["message"] == "`helper.mn` changed since it was checked: save it and try again"
    client.notify("textDocument/didClose", {"textDocument": {"uri": helper_uri}})


def test_references_include_other_open_files_that_import_this_one(
    client: Client, program: tuple[Path, Path]
) -> None:
    main, helper = program
    main_uri = open_document(client, main)
    diagnostics_of(client, main_uri)
    helper_uri = open_document(client, helper)
    diagnostics_of(client, helper_uri)
    found = client.request(
        "textDocument/references",
        {**at(helper_uri, HELPER, "answer("), "context": {"includeDeclaration": True}},
    )
    assert spots(found) == [("helper.mn", 8, 6), ("main.mn", 2, 23), ("main.mn", 11, 11)]
