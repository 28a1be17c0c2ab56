"""Hostile input: every command answers any input with exit 0, 1 or 2 and a coded
message, never a Python traceback (issue 15).

Generated families: programs nested or chained to and past the limits (E015) through
`check`, `fmt`, `compile`, `run` and the language server; truncations and byte
mutations of the examples through every command and through the language server (every
file gets its diagnostics, every request an answer); JSON in through the CLI and the
console (E096); imports that cannot be looked up; files that are not regular files.
The big sweeps are marked slow.
"""

from __future__ import annotations

import json
import os
import queue
import random
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from test_lsp import Client as LspClient
from test_lsp import diagnostics_of, open_document, session

from mnlang.cli import main
from mnlang.deep import MAX_DEPTH
from mnlang.jsonin import JSONInputError, decode_json
from mnlang.syntax.limits import MAX_NESTING

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*/*.mn"))


# ---- generated programs ----------------------------------------------------------------


def nested(kind: str, n: int) -> str:
    """A workflow with one construct nested `n` levels (or a chain of `n` terms)."""
    if kind == "chain":
        body = "  x = " + " + ".join(["1"] * n) + "\n  return x\n"
    elif kind == "parens":
        body = "  x = " + "(" * n + "1" + ")" * n + "\n  return x\n"
    elif kind == "minus":
        body = "  x = " + "-" * n + "1\n  return x\n"
    elif kind == "lists":
        body = "  x = " + "[" * n + "1" + "]" * n + "\n  return 1\n"
    elif kind == "ifs":
        opens = "".join("  " * (i + 1) + "if true {\n" for i in range(n))
        closes = "".join("  " * (i + 1) + "}\n" for i in reversed(range(n)))
        body = opens + "  " * (n + 1) + "y = 1\n" + closes + "  return 1\n"
    else:
        raise AssertionError(kind)
    return "workflow main() -> int {\n" + body + "}\n"


def mnc(*args: str, input: str | None = None) -> Result:
    """`mnc ARGS` in this process: exit 0, 1 or 2 (3: a run waits), never an exception."""
    result = CliRunner().invoke(main, list(args), input=input)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"mnc {' '.join(args)} raised") from result.exception
    assert result.exit_code in (0, 1, 2, 3), result.output
    assert "Traceback" not in result.output
    return result


KINDS = ["parens", "minus", "lists", "ifs"]


@pytest.mark.parametrize("kind", KINDS)
def test_nesting_just_past_the_limit_is_e015_in_every_command(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "deep.mn"
    path.write_text(nested(kind, MAX_NESTING + 5))
    for command in ("check", "fmt", "compile"):
        result = mnc(command, str(path))
        assert result.exit_code == 1 and "error[E015]" in result.output, (command, result.output)
    assert "--> " + str(path) + ":" in mnc("check", str(path)).output


@pytest.mark.parametrize("kind", KINDS)
def test_nesting_of_hundreds_checks_formats_compiles_and_runs(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "deep.mn"
    path.write_text(nested(kind, 600))
    assert mnc("check", str(path)).exit_code == 0
    assert mnc("fmt", "--check", str(path)).exit_code in (0, 1)
    ir = tmp_path / "deep.json"
    assert mnc("compile", str(path), "-o", str(ir)).exit_code == 0
    result = mnc("run", str(ir), "--db", str(tmp_path / "j.db"))
    assert result.exit_code == 0 and "completed" in result.output


def test_a_chain_of_thousands_of_terms_compiles_and_runs_and_one_past_the_limit_is_e015(
    tmp_path: Path,
) -> None:
    path = tmp_path / "chain.mn"
    path.write_text(nested("chain", 3000))
    result = mnc("run", str(path), "--db", str(tmp_path / "j.db"))
    assert result.exit_code == 0 and result.output.rstrip().endswith("3000")
    path.write_text(nested("chain", MAX_DEPTH + 2))
    result = mnc("check", str(path))
    assert result.exit_code == 1 and "error[E015]" in result.output


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_a_thousand_levels_of_nesting_work_through_run(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "deep.mn"
    path.write_text(nested(kind, 1000))
    for command in ("check", "fmt"):
        assert mnc(command, str(path)).exit_code == 0
    result = mnc("run", str(path), "--db", str(tmp_path / "j.db"))
    assert result.exit_code == 0 and "completed" in result.output


@pytest.mark.slow
def test_a_chain_of_ten_thousand_terms_works_through_run(tmp_path: Path) -> None:
    path = tmp_path / "chain.mn"
    path.write_text(nested("chain", 10_000))
    assert mnc("check", str(path)).exit_code == 0
    assert mnc("fmt", str(path)).exit_code == 0
    ir = tmp_path / "chain.json"
    assert mnc("compile", str(path), "-o", str(ir)).exit_code == 0
    result = mnc("run", str(ir), "--db", str(tmp_path / "j.db"))
    assert result.exit_code == 0 and result.output.rstrip().endswith("10000")


@pytest.mark.slow
@pytest.mark.parametrize("n", [5_000, 50_000])
def test_parens_far_past_the_limit_are_e015_not_a_crash(n: int, tmp_path: Path) -> None:
    path = tmp_path / "deep.mn"
    path.write_text(nested("parens", n))
    for command in ("check", "fmt", "compile"):
        assert "error[E015]" in mnc(command, str(path)).output


def test_the_language_server_publishes_e015_and_formats_nothing(tmp_path: Path) -> None:
    path = tmp_path / "deep.mn"
    text = nested("parens", MAX_NESTING + 5)
    path.write_text(text)
    with session() as client:
        uri = open_document(client, path, text)
        assert [d["code"] for d in diagnostics_of(client, uri)] == ["E015"]
        edits = client.request(
            "textDocument/formatting",
            {"textDocument": {"uri": uri}, "options": {"tabSize": 2, "insertSpaces": True}},
        )
        assert not edits
        deep_ok = nested("lists", 500)
        client.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": uri, "version": 2},
                "contentChanges": [{"text": deep_ok}],
            },
        )
        assert [d["code"] for d in diagnostics_of(client, uri)] == ["W101"]  # x unread
        hover = client.request(
            "textDocument/hover",
            {"textDocument": {"uri": uri}, "position": {"line": 1, "character": 300}},
        )
        assert hover is None or "contents" in hover


# ---- truncations and mutations of the examples ------------------------------------------


def mutants(count: int, seed: int) -> list[tuple[str, str]]:
    """(name, text): truncations and byte edits of the examples, reproducible by seed."""
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    texts = [(p.name, p.read_text("utf-8")) for p in EXAMPLES]
    noise = ["(", ")", "{", "}", "[", "]", '"', "{x}", "9" * 5000, "\n", "$", "1e999", "é"]
    for i in range(count):
        name, text = rng.choice(texts)
        at = rng.randrange(len(text))
        how = i % 3
        if how == 0:
            text = text[:at]
        elif how == 1:
            text = text[:at] + rng.choice(noise) + text[at:]
        else:
            text = text[:at] + text[at + rng.randrange(1, 40) :]
        out.append((f"{name}#{i}", text))
    return out


def copy_beside_examples(folder: Path) -> None:
    """The files beside the examples (the modules they import, their tools), so that a
    mutant written or opened in `folder` finds them."""
    for example in EXAMPLES:
        for sibling in example.parent.iterdir():
            if sibling.is_file():
                shutil.copy(sibling, folder / sibling.name)


def sweep(tmp_path: Path, count: int, seed: int) -> None:
    from mnlang.checker import check
    from mnlang.fmt import format_source
    from mnlang.ir.compile import compile_program

    copy_beside_examples(tmp_path)
    for name, text in mutants(count, seed):
        path = tmp_path / name.split("#")[0]
        try:
            checked = check(path, text)
            format_source(text, str(path))
            if checked.ok and checked.program is not None:
                compile_program(checked.program)
        except Exception as e:
            raise AssertionError(f"{name}: {type(e).__name__}: {e}\n{text}") from e


def test_truncated_and_mutated_examples_never_raise(tmp_path: Path) -> None:
    sweep(tmp_path, 150, seed=15)


@pytest.mark.slow
def test_ten_thousand_truncations_and_mutations_never_raise(tmp_path: Path) -> None:
    sweep(tmp_path, 10_000, seed=1015)


def lsp_position(text: str, offset: int) -> dict[str, int]:
    """The LSP position (UTF-16 code units) of a character offset in `text`."""
    line = text.count("\n", 0, offset)
    start = text.rfind("\n", 0, offset) + 1
    return {"line": line, "character": len(text[start:offset].encode("utf-16-le")) // 2}


def lsp_sweep(tmp_path: Path, count: int, seed: int) -> None:
    """The language server (`mnc lsp`, a real process) over the sweep's mutants: each one
    opened, its diagnostics published (for that version), then asked for symbols,
    formatting, and a hover, definition, completion and references at a random place;
    every request answered without a JSON-RPC error, no error shown to the person, no
    traceback on the server's stderr."""
    copy_beside_examples(tmp_path)
    rng = random.Random(seed)
    client = LspClient()
    stderr: list[bytes] = []
    server_stderr = client.process.stderr
    assert server_stderr is not None
    drain = threading.Thread(target=lambda: stderr.append(server_stderr.read()))
    drain.start()
    try:
        client.request(
            "initialize", {"processId": None, "rootUri": tmp_path.as_uri(), "capabilities": {}}
        )
        client.notify("initialized", {})
        for version, (name, text) in enumerate(mutants(count, seed), 1):
            uri = (tmp_path / name.split("#")[0]).as_uri()
            document = {"uri": uri, "languageId": "mn", "version": version, "text": text}
            client.notify("textDocument/didOpen", {"textDocument": document})
            try:
                published = client.notification(
                    "textDocument/publishDiagnostics",
                    lambda p, uri=uri, version=version: (
                        p["uri"] == uri and p.get("version") == version
                    ),
                )
            except queue.Empty:
                raise AssertionError(f"{name}: no diagnostics published\n{text}") from None
            assert all(d.get("source") == "mnc" for d in published["diagnostics"]), name
            doc = {"textDocument": {"uri": uri}}
            at = {**doc, "position": lsp_position(text, rng.randrange(len(text) + 1))}
            for method, params in (
                ("textDocument/documentSymbol", doc),
                (
                    "textDocument/formatting",
                    {**doc, "options": {"tabSize": 2, "insertSpaces": True}},
                ),
                ("textDocument/hover", at),
                ("textDocument/definition", at),
                ("textDocument/completion", at),
                ("textDocument/references", {**at, "context": {"includeDeclaration": True}}),
            ):
                try:
                    client.request(method, params)
                except AssertionError as e:  # answered with a JSON-RPC error
                    raise AssertionError(f"{name}: {method}: {e}\n{text}") from None
            client.notify("textDocument/didClose", doc)
        shown = client.quiet_notifications("window/showMessage", 0) + client.quiet_notifications(
            "window/logMessage", 0
        )
        assert not [m for m in shown if m.get("type") == 1], shown  # 1: Error
        client.request("shutdown", None)
        client.notify("exit", None)
        assert client.process.wait(timeout=60) == 0
    finally:
        if client.process.poll() is None:
            client.process.kill()
            client.process.wait()
        drain.join(timeout=60)
        for stream in (client.process.stdin, client.process.stdout, client.process.stderr):
            if stream is not None:
                stream.close()
    errors = b"".join(stderr).decode("utf-8", "replace")
    assert "Traceback" not in errors and "Error" not in errors, errors


def test_the_language_server_answers_truncated_and_mutated_examples(tmp_path: Path) -> None:
    lsp_sweep(tmp_path, 30, seed=1515)


@pytest.mark.slow
def test_the_language_server_answers_hundreds_of_truncations_and_mutations(
    tmp_path: Path,
) -> None:
    lsp_sweep(tmp_path, 400, seed=11015)


def test_mutants_through_the_command_line_exit_0_1_or_2(tmp_path: Path) -> None:
    for _name, text in mutants(12, seed=7):
        path = tmp_path / "m.mn"
        path.write_text(text)
        for command in ("check", "fmt", "compile"):
            mnc(command, str(path))
        mnc("fmt", "-", input=text)


# ---- literals and imports ----------------------------------------------------------------


@pytest.mark.parametrize(
    "literal", ["7" * 5000, "9" * 5000 + "s", "9999999999999999d", "$" + "9" * 5000]
)
def test_literals_of_thousands_of_digits(literal: str, tmp_path: Path) -> None:
    path = tmp_path / "big.mn"
    path.write_text(f'workflow main() -> str {{\n  x = {literal}\n  return "{{x}}"\n}}\n')
    for command in ("check", "fmt", "compile"):
        mnc(command, str(path))


def test_imports_that_cannot_be_looked_up_are_e104(tmp_path: Path) -> None:
    body = "\nworkflow main() -> int {\n  return 1\n}\n"
    long_name = tmp_path / "long.mn"
    long_name.write_text("import " + "a" * 300 + body)
    result = mnc("check", str(long_name))
    assert result.exit_code == 1 and "error[E104]" in result.output
    assert "file name too long" in result.output
    (tmp_path / "self.mn").symlink_to("self.mn")
    uses = tmp_path / "uses.mn"
    uses.write_text("import self" + body)
    result = mnc("check", str(uses))
    assert result.exit_code == 1 and "a loop of symbolic links" in result.output
    result = mnc("check", str(tmp_path / "self.mn"))
    assert result.exit_code == 1 and "error[E091]" in result.output


# ---- JSON in ---------------------------------------------------------------------------

HOSTILE_JSON = {
    "long number": ('{"n": ' + "1" * 5000 + "}", "a number of 5,000 characters"),
    "float out of range": ('{"x": 1e400}', "out of a float's range"),
    "NaN": ('{"x": NaN}', "`NaN`, which is not JSON"),
    "lone surrogate": ('{"s": "\\ud800"}', "lone surrogate"),
    "deep": ("[" * 5000 + "]" * 5000, "nests deeper than 1,000 levels"),
    "very deep": ("[" * 200_000 + "]" * 200_000, "nests deeper than 1,000 levels"),
    "not JSON": ('{"a": ', "is not JSON"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_JSON))
def test_the_decoder_refuses_with_e096(case: str) -> None:
    text, says = HOSTILE_JSON[case]
    with pytest.raises(JSONInputError) as caught:
        decode_json(text, "--input")
    assert says in caught.value.message and caught.value.code == "E096"


def test_the_decoder_refuses_bytes_that_are_not_utf8() -> None:
    with pytest.raises(JSONInputError, match="is not UTF-8"):
        decode_json(b'{"a": "\xff"}', "`x.json`")
    assert decode_json('{"a": [1, 2.5, "\\ud83d\\ude00", null]}', "x") == {
        "a": [1, 2.5, "\U0001f600", None]
    }


@pytest.fixture
def waiter(tmp_path: Path) -> Path:
    path = tmp_path / "w.mn"
    path.write_text(
        "event nudge -> str\n\n"
        "workflow main(n: int, f: float) -> str {\n"
        "  got = wait nudge { timeout: 1h }\n"
        '  return got ?? "none"\n'
        "}\n"
    )
    return path


@pytest.mark.parametrize("case", sorted(HOSTILE_JSON))
def test_run_input_and_input_file_refuse_with_e096(case: str, waiter: Path, tmp_path: Path) -> None:
    text, says = HOSTILE_JSON[case]
    db = str(tmp_path / "j.db")
    result = mnc("run", str(waiter), "--input", text, "--db", db)
    assert result.exit_code == 2 and "error[E096]" in result.output and says in result.output
    given = tmp_path / "input.json"
    given.write_text(text, "utf-8", errors="surrogatepass")
    result = mnc("run", str(waiter), "--input-file", str(given), "--db", db)
    assert result.exit_code == 2 and "error[E096]" in result.output
    assert not (tmp_path / "j.db").exists() or "no runs" in mnc("runs", "--db", db).output


def test_input_file_and_ir_file_that_are_fifos_are_refused(waiter: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "input.fifo"
    os.mkfifo(fifo)
    # A subprocess with a timeout: a command that opened the FIFO for reading would hang.
    args = [sys.executable, "-m", "mnlang.cli", "run", str(waiter), "--db", str(tmp_path / "j")]
    done = subprocess.run([*args, "--input-file", str(fifo)], capture_output=True, timeout=60)
    assert done.returncode == 2 and b"not a regular file" in done.stderr
    ir_fifo = tmp_path / "program.json"
    os.mkfifo(ir_fifo)
    done = subprocess.run(
        [sys.executable, "-m", "mnlang.cli", "run", str(ir_fifo)], capture_output=True, timeout=60
    )
    assert done.returncode == 2 and b"not a regular file" in done.stderr


def test_signal_payload_and_result_refuse_with_e096(waiter: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "j.db")
    started = mnc("run", str(waiter), "--input", '{"n": 1, "f": 1.5}', "--db", db, "--json")
    run_id = json.loads(started.output)["run_id"]
    for text, says in HOSTILE_JSON.values():
        result = mnc("signal", run_id, "nudge", text, "--db", db)
        assert result.exit_code == 2 and "error[E096]" in result.output, result.output
        assert says in result.output
    result = mnc("show", run_id, "--db", db)
    assert result.exit_code == 0 and "waiting" in result.output


def test_the_console_answers_hostile_payloads_with_400(waiter: Path, tmp_path: Path) -> None:
    from test_ui import console, csrf

    from mnlang import api
    from mnlang.stores import open_store

    program = api.load_program(waiter)
    store = open_store(tmp_path / "j.db")
    try:
        api.start_run(program, {"n": 1, "f": 1.0}, run_id="r1", db=tmp_path / "j.db")
        client = console(store)
        token = csrf(client)
        for text, says in HOSTILE_JSON.values():
            form = {"run": "r1", "event": "nudge", "payload": text, "csrf": token}
            response = client.post(
                "/actions/signal", data=form, headers={"accept": "application/json"}
            )
            assert response.status_code == 400, response.text
            if len(text) < 100_000:  # larger forms are refused by Starlette before us
                assert says in response.json()["error"] and "E096" in response.json()["error"]
    finally:
        store.close()


# ---- the token file on a read-only folder -----------------------------------------------


def test_token_add_where_nothing_can_be_written_is_an_error_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # /proc/self takes no new files, even from root: a folder that is read-only for all.
    monkeypatch.setenv("MNC_UI_TOKENS", "/proc/self/ui-tokens.json")
    result = mnc("ui", "token", "add", "alice")
    assert result.exit_code == 2 and "cannot write token file" in result.output


# ---- secrets on this machine -------------------------------------------------------------


def test_the_journal_and_its_folder_are_created_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MNC_DB", raising=False)
    old = os.umask(0o022)
    try:
        program = tmp_path / "p.mn"
        program.write_text(nested("parens", 3))
        assert mnc("run", str(program)).exit_code == 0
    finally:
        os.umask(old)
    assert (tmp_path / ".mnc").stat().st_mode & 0o777 == 0o700
    for f in (tmp_path / ".mnc").iterdir():
        assert f.stat().st_mode & 0o077 == 0, f


@pytest.mark.parametrize(("command", "module"), [("ui", "ui.server"), ("serve", "server.serve")])
def test_token_on_the_command_line_warns(
    command: str, module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    served: list[object] = []
    monkeypatch.setattr(
        importlib.import_module(f"mnlang.{module}"), "serve", lambda *a, **_: served.append(a)
    )
    result = CliRunner().invoke(main, [command, "--token", "0123456789abcdef-secret"])
    assert served and "warning: --token on the command line" in result.output
    monkeypatch.setenv("MNC_UI_TOKEN", "0123456789abcdef-secret")
    result = CliRunner().invoke(main, [command])
    assert len(served) == 2 and "warning" not in result.output


# ---- input values ------------------------------------------------------------------------

VALUES = {
    "money": (
        ["12.50", "$12.50", "1e3", 7, "0.000000000001", "999999999999999999.99"],
        ["1e9999", "1E-999999999", "0E-999999", "0.0000000000001", "1e18", 1.5, "ten"],
    ),
    "duration": ([0, 1, "1h30m", "PT1H"], [1.5, "1 fortnight", "P1M"]),
    "timestamp": (
        ["2024-01-01T09:30:00Z", "2024-01-01T10:30:00+01:00", "2024-02-29T00:00:00.123z"],
        ["2024-01-01", "2024-01-01T09:30:00", "yesterday", 0],
    ),
}


@pytest.mark.parametrize("kind", sorted(VALUES))
def test_values_from_outside_in_their_documented_forms(kind: str) -> None:
    from mnlang.ir.base import TypeIR
    from mnlang.runtime.convert import ConversionError, Converter

    accepted, refused = VALUES[kind]
    converter = Converter({})
    for value in accepted:
        converter.inbound(value, TypeIR(kind=kind), "x")
    for value in refused:
        with pytest.raises(ConversionError):
            converter.inbound(value, TypeIR(kind=kind), "x")
    if kind == "money":
        assert str(converter.inbound("1e3", TypeIR(kind=kind), "x")) == "1000"
