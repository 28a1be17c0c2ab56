"""`mnc test --from-run RUN -o FILE`: every recorded example run becomes a scenario that
`mnc test` passes without calling the world; a changed program fails it at the change; a
run that used a secret writes no secret bytes; `--omit` leaves arguments out."""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnlang import api
from mnlang.stores.sqlite import SQLiteStore
from mnlang.syntax import ast
from mnlang.syntax.parser import parse_expr
from mnlang.testing import run_tests
from mnlang.testing.from_run import FromRunError, _float, _string
from mnlang.testing.report import render
from tests.replay_mutations import executed_lines, mutations
from tests.test_replay import EXAMPLES, SOURCES, _record, run_docs_session

MNC = [sys.executable, "-m", "mnlang.cli"]
EXAMPLE_RUNS = ["refund", "refund-large", "pipeline", "digest"]


def _test(path: Path) -> tuple[bool, str]:
    report = run_tests([path])
    assert not report.problems, [d.message for p in report.problems for d in p.diagnostics]
    return report.ok, "\n".join(render(report))


@pytest.mark.parametrize("example", EXAMPLE_RUNS)
def test_every_example_run_becomes_a_passing_scenario(
    tmp_path: Path, example: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, db = _record(tmp_path, example, monkeypatch)
    written = api.scenario_from_run(example, folder / "from_run.mn", db=db)
    assert not written.appended
    ledger = tmp_path / "ledger.jsonl"
    before = ledger.read_text()
    ok, text = _test(written.path)
    assert ok, text + "\n" + written.text
    assert ledger.read_text() == before  # every tool and effect was answered, none called


@pytest.mark.parametrize("example", EXAMPLE_RUNS)
def test_a_changed_program_fails_the_scenario_where_expected(
    tmp_path: Path, example: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mutations of `tests/replay_mutations.py` that change what the run does to the
    world (another argument, a new effect call, a new branch that fails) each fail the
    scenario written from the run, naming the call or the branch. (A reordered call, a
    changed prompt and a removed checkpoint keep what a scenario compares: those are for
    `mnc replay`.)"""
    folder, db = _record(tmp_path, example, monkeypatch)
    written = api.scenario_from_run(example, folder / "from_run.mn", db=db)
    source = folder / SOURCES[example.split("-")[0]]
    original = source.read_text()
    with SQLiteStore(str(db)) as store:
        events = store.read_journal(example)
    found = mutations(source, executed_lines(api.load_program(source), events))
    checked = [m for m in found if m.kind in ("argument", "effect", "branch")]
    assert checked
    missed = []
    for mutation in checked:
        source.write_text(mutation.text)
        ok, report = _test(written.path)
        if mutation.kind == "branch":
            expected = f"a new branch {mutation.what}"
        else:
            expected = f"`{mutation.what.split('(', 1)[0]}`"
        if ok or expected not in report:
            missed.append((mutation.id, expected, report))
    source.write_text(original)
    assert not missed, missed


SECRET_PROGRAM = """
type Page {
  status: int
  body: str
}

tool fetch(url: str, token: secret) -> Page {
  impl: "tools:fetch"
}

workflow read(url: str, token: secret) -> str {
  page = fetch(url, token)
  return page.body
}
"""

SECRET_TOOLS = """
def fetch(url, token, *, ctx=None):
    return {"status": 200, "body": "seen with " + token}
"""

TOKEN = "tok-5ecret-value-93"


def test_a_run_that_used_a_secret_writes_no_secret_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "read.mn").write_text(SECRET_PROGRAM)
    (tmp_path / "tools.py").write_text(SECRET_TOOLS)
    monkeypatch.setenv("SHOP_TOKEN", TOKEN)
    db = tmp_path / "journal.db"
    program = api.load_program(tmp_path / "read.mn")
    given = {"url": "https://shop.example/o-1", "token": "env:SHOP_TOKEN"}
    api.start_run(program, given, run_id="r-1", db=db)
    out = tmp_path / "read_test.mn"
    # A fresh process: its redaction knows no secret, so only the journal's keeps it out.
    done = subprocess.run(
        [*MNC, "test", "--from-run", "r-1", "-o", str(out), "--db", str(db)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    data = out.read_bytes()
    for form in (TOKEN, base64.b64encode(TOKEN.encode()).decode()):
        assert form.encode() not in data
    text = data.decode()
    assert '"env:SHOP_TOKEN"' in text  # the input is the reference
    assert "[secret]" in text  # the echoed token, as the journal holds it
    assert "token:" not in text.split("expect")[0].split("tools:")[1]  # never matched (E142)
    (tmp_path / "tools.py").write_text(
        "def fetch(url, token, *, ctx=None):\n    raise RuntimeError\n"
    )
    ok, report = _test(out)
    assert ok, report


def test_omit_leaves_arguments_out_and_still_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, db = _record(tmp_path, "refund", monkeypatch)
    out = folder / "omitted.mn"
    written = api.scenario_from_run("refund", out, db=db, omit=["notify.text", "order_id"])
    assert "Refunded $" not in written.text.split("replies:")[0]  # no `text` argument
    assert "order_id:" not in written.text
    assert "expect_calls: [fetch_order, refund_payment, notify]" in written.text  # by name
    ok, report = _test(out)
    assert ok, report


def test_refusals_create_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, db = _record(tmp_path, "refund", monkeypatch)
    with pytest.raises(FromRunError, match="--omit names no argument"):
        api.scenario_from_run("refund", folder / "a.mn", db=db, omit=["nonsense"])
    assert not (folder / "a.mn").exists()
    (folder / "b.mn").write_text("# mine\n")
    with pytest.raises(FromRunError, match="exists"):
        api.scenario_from_run("refund", folder / "b.mn", db=db)
    assert (folder / "b.mn").read_text() == "# mine\n"
    elsewhere = tmp_path / "other" / "c.mn"
    elsewhere.parent.mkdir()
    with pytest.raises(FromRunError, match="cannot import"):
        api.scenario_from_run("refund", elsewhere, db=db)
    assert not elsewhere.exists()
    done = subprocess.run(
        [*MNC, "test", "--from-run", "nope", "-o", "x.mn", "--db", str(db)],
        capture_output=True,
        text=True,
        cwd=folder,
    )
    assert done.returncode == 2 and "nope" in done.stderr
    assert not (folder / "x.mn").exists()


def test_appended_to_the_workflows_own_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, db = _record(tmp_path, "refund-large", monkeypatch)
    source = folder / "refund.mn"
    before = source.read_text()
    written = api.scenario_from_run("refund-large", source, db=db, name="big_refund")
    assert written.appended and source.read_text().startswith(before.rstrip("\n"))
    report = run_tests([source], select="big_refund")
    assert report.ok and len(report.results) == 1, "\n".join(render(report))
    with pytest.raises(FromRunError, match="already has a scenario `big_refund`"):
        api.scenario_from_run("refund-large", source, db=db, name="big_refund")


def test_a_cancelled_run_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "refund"
    shutil.copytree(EXAMPLES / "refund", folder)
    monkeypatch.setenv("MNC_EXAMPLE_LEDGER", str(tmp_path / "ledger.jsonl"))
    db = tmp_path / "journal.db"
    program = api.load_program(folder / "refund.mn")
    given = {"order_id": "o-1002", "complaint": "The blender never arrived."}
    api.start_run(program, given, run_id="r-9", db=db, models="scripted")  # waits for review
    api.cancel_run("r-9", db=db)
    with pytest.raises(FromRunError, match="is cancelled"):
        api.scenario_from_run("r-9", folder / "c.mn", db=db)
    assert not (folder / "c.mn").exists()


def test_a_child_run_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, db = _record(tmp_path, "pipeline", monkeypatch)
    child = next(r for r in api.list_runs(db=db) if r.parent_run_id)
    with pytest.raises(FromRunError, match="child run"):
        api.scenario_from_run(child.run_id, folder / "c.mn", db=db)


def test_docs_worked_example(tmp_path: Path) -> None:
    """The session of docs/testing.md's run-to-scenario example prints what the page
    shows (seconds aside)."""
    import re

    done, shown = run_docs_session(tmp_path, "## A run as a scenario", "### A worked example")
    assert done.returncode == 1, done.stderr  # the last test failed, as the page says
    seconds = re.compile(r" in \d+\.\d+s ")
    assert seconds.sub(" in 0.01s ", done.stdout) == shown, done.stdout


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_a_written_string_reads_back_as_the_same_text(text: str) -> None:
    """Escapes and braces: any text (prompts, e-mails, JSON in a result) round-trips."""
    literal = parse_expr(_string(text))
    assert isinstance(literal, ast.StrLit) and literal.constant == text


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=0, allow_nan=False, allow_infinity=False))
def test_a_written_float_reads_back_as_the_same_number(x: float) -> None:
    literal = parse_expr(_float(x))
    assert isinstance(literal, ast.FloatLit) and literal.value == x


def test_every_example_scenario_run_becomes_a_passing_scenario(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each scenario's run of examples/ (the golden suite included: faults and retries,
    reconciled effects, compensations, parallel branches, children, decisions, events)
    written back as a scenario passes; what cannot be written says why."""
    from mnlang.ir.compile import compile_file
    from mnlang.replay.recording import Recording, recording_from_store
    from mnlang.testing.from_run import write_scenario
    from mnlang.testing.runner import run_scenario

    shutil.copytree(EXAMPLES, tmp_path / "examples")
    monkeypatch.setenv("MNC_EXAMPLE_LEDGER", str(tmp_path / "ledger.jsonl"))
    passed, failed, refused = 0, [], []
    recordings: list[Recording] = []
    for file in sorted((tmp_path / "examples").rglob("*.mn")):
        program, _ = compile_file(file)
        assert program is not None, file
        for scenario in program.scenarios.values():
            recordings.clear()
            run_scenario(
                program,
                scenario,
                file.name,
                lambda store, run_id: recordings.append(recording_from_store(store, run_id)),
            )
            target = file.parent / f"from_{scenario.name.rsplit('.', 1)[-1]}.mn"
            try:
                write_scenario(recordings[0], program, target)
            except FromRunError as e:
                refused.append(e.message)
                continue
            ok, report = _test(target)
            target.unlink()
            if ok:
                passed += 1
            else:
                failed.append(report)
    assert not failed, failed
    assert passed >= 100, (passed, refused)
    # What it cannot write: a failure on a tool's second call (faults count calls), and the
    # runs of examples/first_greeting, whose quorum joins are decided by timing.
    raced = [r for r in refused if "raced a quorum join" in r]
    assert len(raced) == 3, refused
    others = [r for r in refused if r not in raced]
    assert len(others) <= 1 and all("call 2 of `search`" in r for r in others), refused


def test_from_an_archive_file_with_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run kept only in an archive file is written as a scenario (`--archive`, `--json`)."""
    import json

    from mnlang.replay.archive import write_archive
    from mnlang.replay.recording import recording_from_store
    from mnlang.stores.sqlite import SQLiteStore

    folder, db = _record(tmp_path, "digest", monkeypatch)
    archive = tmp_path / "runs.jsonl"
    with SQLiteStore(str(db)) as store, archive.open("w") as out:
        write_archive([recording_from_store(store, "digest")], out)
    db.unlink()  # the archive is all there is
    done = subprocess.run(
        [
            *MNC,
            "test",
            "--from-run",
            "digest",
            "-o",
            "kept.mn",
            "--archive",
            str(archive),
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=folder,
    )
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout)
    assert said["scenario"] == "from_digest" and not said["appended"]
    ok, report = _test(folder / "kept.mn")
    assert ok, report
