"""`mnc replay`: recorded example runs replay "same"; mutations are flagged at the
statement they touch; behaviour-preserving edits replay "same"; replay never calls a tool."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mnlang import api
from mnlang.replay.engine import replay_run
from mnlang.stores.sqlite import SQLiteStore
from tests.replay_mutations import KINDS, Mutation, executed_lines, mutations

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SOURCES = {"refund": "refund.mn", "pipeline": "pipeline.mn", "digest": "digest.mn"}
LARGE_REFUND = {"order_id": "o-1002", "complaint": "The blender never arrived."}
PAYMENT = {"sponsor": "acme", "amount": "150.00"}
RUNS = ("refund", "refund-large", "pipeline", "digest")


def _answer_world(run_id: str, db: Path) -> None:
    """Do what a person or another system did while the recorded run waited."""
    if run_id == "digest":
        api.signal("digest", "payment_received", PAYMENT, db=db)
    elif run_id == "refund-large":
        api.approve("refund-large", "manager_review", by="maria", db=db)


def _record(tmp_path: Path, run_id: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Copy an example, run it with its sample input and scripted replies (answering what
    it waits for); the copy's folder and the journal."""
    example = run_id.split("-")[0]
    folder = tmp_path / example
    shutil.copytree(EXAMPLES / example, folder)
    monkeypatch.setenv("MNC_EXAMPLE_LEDGER", str(tmp_path / "ledger.jsonl"))
    db = tmp_path / "journal.db"
    given = json.loads((folder / "input.json").read_text())
    if run_id == "refund-large":
        given = LARGE_REFUND
    program = api.load_program(folder / SOURCES[example])
    api.start_run(program, given, run_id=run_id, db=db, models="scripted")
    _answer_world(run_id, db)
    assert api.get_run(run_id, db=db).run.status == "completed"
    return folder, db


def _replay(db: Path, run_id: str, source: Path | None = None) -> dict:
    program = api.load_program(source) if source is not None else None
    return api.replay_run(run_id, program=program, db=db).to_json()


@pytest.mark.parametrize("example", ["refund", "refund-large", "pipeline", "digest"])
def test_example_runs_replay_same(
    tmp_path: Path, example: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _folder, db = _record(tmp_path, example, monkeypatch)
    report = _replay(db, example)
    assert report["verdict"] == "same", report


def test_replay_never_calls_a_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, db = _record(tmp_path, "refund", monkeypatch)
    raising = "def _called(*a, **k):\n    raise RuntimeError('replay called a tool')\n\n"
    raising += "fetch_order = refund_payment = send_email = _called\n"
    (folder / "tools.py").write_text(raising)
    (folder / "replies.json").write_text("{}")  # no scripted replies either
    before = (tmp_path / "ledger.jsonl").read_text()
    assert _replay(db, "refund")["verdict"] == "same"
    assert _replay(db, "refund", folder / "refund.mn")["verdict"] == "same"
    assert (tmp_path / "ledger.jsonl").read_text() == before


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        for example in RUNS:
            out[example] = _record(tmp_path_factory.mktemp(example), example, mp)
    return out


def _mutate(folder: Path, example: str, old: str, new: str, tmp: Path) -> Path:
    copy = tmp / f"{example}-mutated"
    shutil.copytree(folder, copy)
    source = copy / SOURCES[example.split("-")[0]]
    text = source.read_text()
    assert old in text, old
    source.write_text(text.replace(old, new, 1))
    return source


def _line_of(source: Path, piece: str) -> int:
    text = source.read_text()
    workflow_at = text.index("\nworkflow ")
    at = text.index(piece, workflow_at)
    return text.count("\n", 0, at) + 1


def _mutations(folder: Path, db: Path, example: str) -> list[Mutation]:
    """The generated mutations of an example, of the statements its recorded run took."""
    source = folder / SOURCES[example.split("-")[0]]
    with SQLiteStore(db) as store:
        events = store.read_journal(example)
    return mutations(source, executed_lines(api.load_program(source), events))


@pytest.mark.parametrize("example", RUNS)
def test_generated_mutations_are_flagged_at_their_statement(
    recorded: dict[str, tuple[Path, Path]], tmp_path: Path, example: str
) -> None:
    """Each mutation `tests/replay_mutations.py` makes of the statements the run took is a
    divergence at the line the mutation says."""
    folder, db = recorded[example]
    wrong = []
    for k, mutation in enumerate(_mutations(folder, db, example)):
        copy = tmp_path / f"m{k}"
        shutil.copytree(folder, copy)
        source = copy / SOURCES[example.split("-")[0]]
        source.write_text(mutation.text)
        report = _replay(db, example, source)
        where = (report.get("divergence") or {}).get("where")
        if report["verdict"] != "diverged" or where != f"{source.name}:{mutation.line}":
            wrong.append((mutation.id, mutation.line, report))
    assert not wrong, wrong


def test_the_generated_mutations_cover_every_kind(recorded: dict[str, tuple[Path, Path]]) -> None:
    found = [m for example in RUNS for m in _mutations(*recorded[example], example)]
    assert len(found) >= 20, [m.id for m in found]
    assert {m.kind for m in found} == set(KINDS), [m.id for m in found]


FALSE_POSITIVES = [
    (
        "refund",
        "  t = triage(complaint, order)\n",
        "  # a comment\n  t = triage(complaint, order)\n",
    ),
    (
        "refund",
        "  order = fetch_order(order_id)\n",
        '  log "starting"\n  order = fetch_order(order_id)\n',
    ),
    (
        "refund",
        "  receipt = refund_payment(order.id, order.total)\n",
        "  unused = 1 + 2\n  receipt = refund_payment(order.id, order.total)\n",
    ),
    ("refund", "fetch_order(order_id)", 'fetch_order(order_id + "")'),
    ("pipeline", "  written = 0\n", '  log "writing"\n  written = 0\n'),
]


@pytest.mark.parametrize(("example", "old", "new"), FALSE_POSITIVES)
def test_edits_that_keep_behaviour_replay_same(
    recorded: dict[str, tuple[Path, Path]], tmp_path: Path, example: str, old: str, new: str
) -> None:
    folder, db = recorded[example]
    source = _mutate(folder, example, old, new, tmp_path)
    report = _replay(db, example, source)
    assert report["verdict"] == "same", report


def test_renamed_local_replays_same(recorded: dict[str, tuple[Path, Path]], tmp_path: Path) -> None:
    folder, db = recorded["refund"]
    source = _mutate(folder, "refund", "  t = triage(", "  tri = triage(", tmp_path)
    text = source.read_text()
    text = text.replace("t.confidence", "tri.confidence").replace("t.category", "tri.category")
    source.write_text(text.replace("show: [order, t]", "show: [order, tri]"))
    assert _replay(db, "refund", source)["verdict"] == "same"


def test_fmt_output_replays_same(recorded: dict[str, tuple[Path, Path]], tmp_path: Path) -> None:
    folder, db = recorded["pipeline"]
    source = _mutate(folder, "pipeline", "limit 3", "limit   3", tmp_path)
    mnc = [sys.executable, "-m", "mnlang.cli"]
    subprocess.run([*mnc, "fmt", str(source)], check=True, capture_output=True)
    assert "limit   3" not in source.read_text()
    assert _replay(db, "pipeline", source)["verdict"] == "same"


def test_cli_reports_the_divergence(recorded: dict[str, tuple[Path, Path]], tmp_path: Path) -> None:
    folder, db = recorded["refund"]
    source = _mutate(folder, "refund", "Refunded {receipt", "Paid {receipt", tmp_path)
    mnc = [sys.executable, "-m", "mnlang.cli", "replay", "refund", "--db", str(db)]
    same = subprocess.run(mnc, capture_output=True, text=True)
    assert same.returncode == 0 and same.stdout.startswith("same"), same
    diverged = subprocess.run([*mnc, "--program", str(source)], capture_output=True, text=True)
    assert diverged.returncode == 1, diverged
    assert f"{source.name}:{_line_of(source, 'Paid {receipt')}" in diverged.stdout
    assert 'the run:         calls notify("ana@example.com", "Refunded $42.50.")' in diverged.stdout
    nope = [sys.executable, "-m", "mnlang.cli", "replay", "nope", "--db", str(db)]
    missing = subprocess.run(nope, capture_output=True, text=True)
    assert missing.returncode == 2 and "no run `nope`" in missing.stderr


def test_store_reader(recorded: dict[str, tuple[Path, Path]]) -> None:
    _folder, db = recorded["pipeline"]
    with SQLiteStore(str(db)) as store:
        assert replay_run(store, "pipeline").same


# --- many runs, archives, the committed journal ---------------------------------------------

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "replay" / "journal.db"


def test_committed_journal_replays_same_after_migrations(tmp_path: Path) -> None:
    """A journal written by an older mnlang (schema 7) is migrated on opening; its runs
    still replay "same" on the programs it keeps."""
    db = tmp_path / "journal.db"
    shutil.copy(FIXTURE, db)
    items = api.replay_runs(db=db)
    assert sorted(i.run_id for i in items) == ["digest", "pipeline", "refund", "refund-large"]
    assert [i.verdict for i in items] == ["same"] * 4, [i.problem or i.report for i in items]


def test_replay_all_table_ci_and_junit(
    recorded: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    folder, db = recorded["refund"]
    mnc = [sys.executable, "-m", "mnlang.cli", "replay", "--all", "--db", str(db)]
    same = subprocess.run([*mnc, "--ci", "--status", "completed"], capture_output=True, text=True)
    assert same.returncode == 0, same
    assert "1 runs: 1 same, 0 diverged" in same.stdout
    source = _mutate(folder, "refund", "Refunded {receipt", "Paid {receipt", tmp_path)
    junit = tmp_path / "replay.xml"
    args = [*mnc, "--program", str(source), "--junit", str(junit)]
    diverged = subprocess.run([*args, "--ci"], capture_output=True, text=True)
    assert diverged.returncode == 1, diverged
    assert "diverged" in diverged.stdout and "refund.mn:" in diverged.stdout
    assert subprocess.run(args, capture_output=True).returncode == 0  # no --ci: a report only
    from xml.etree import ElementTree as ET

    suite = ET.parse(junit).getroot()
    assert suite.get("tests") == "1" and suite.get("failures") == "1"
    assert "Paid" in (suite.find("testcase/failure").text or "")
    none = subprocess.run([*mnc, "--since", "0s", "--ci"], capture_output=True, text=True)
    assert none.returncode == 0 and "0 runs" in none.stdout
    bad = subprocess.run([*mnc, "--since", "soon"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--since" in bad.stderr


def test_archive_round_trip(tmp_path: Path) -> None:
    """Runs written as archive lines (children included) replay from the file alone."""
    from mnlang.replay.archive import read_archive, write_archive
    from mnlang.replay.recording import recording_from_store

    db = tmp_path / "journal.db"
    shutil.copy(FIXTURE, db)
    archive = tmp_path / "runs.jsonl"
    with SQLiteStore(str(db)) as store, archive.open("w") as out:
        write_archive([recording_from_store(store, r) for r in ("pipeline", "digest")], out)
    recordings = read_archive(archive)
    assert [r.root.record.run_id for r in recordings] == ["pipeline", "digest"]
    assert len(recordings[0].root.children) == 3
    db.unlink()  # the archive is all there is
    items = api.replay_runs(archives=[archive], workflow="pipeline")
    assert [(i.run_id, i.verdict) for i in items] == [("pipeline", "same")]
    assert api.replay_run("digest", archives=[archive]).same
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"type": "run", "run": {}}\n')
    from mnlang.replay.archive import ArchiveError

    with pytest.raises(ArchiveError, match=r"broken\.jsonl:1"):
        read_archive(broken)


def run_docs_session(
    tmp_path: Path, *headings: str
) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run the first `sh` block under `headings` (each found after the one before) of
    docs/testing.md in a copy of the examples, as a user's shell would; the process and
    the `text` block the page shows for it."""
    import os
    import re

    section = (Path(__file__).resolve().parent.parent / "docs" / "testing.md").read_text()
    for heading in headings:
        section = section[section.index(heading) :]
    script = re.search(r"```sh\n(.*?)```", section, re.S)
    shown = re.search(r"```text\n(.*?)```", section, re.S)
    assert script is not None and shown is not None
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MNC_EXAMPLE_LEDGER": str(tmp_path / "ledger.jsonl"),
    }
    env.pop("MNC_DB", None)
    done = subprocess.run(
        ["bash", "-c", "set -e\n" + script.group(1)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    return done, shown.group(1)


def test_docs_worked_example(tmp_path: Path) -> None:
    """The session of docs/testing.md's worked example prints what the page shows."""
    done, shown = run_docs_session(tmp_path, "### A worked example")
    assert done.returncode == 1, done.stderr  # the last replay diverged
    assert done.stdout == shown, done.stdout


# --- fork -------------------------------------------------------------------------------------


def _fork(db: Path, into: Path, *args: str) -> subprocess.CompletedProcess[str]:
    mnc = [sys.executable, "-m", "mnlang.cli", "replay", "refund", "--db", str(db)]
    return subprocess.run([*mnc, "--into", str(into), *args], capture_output=True, text=True)


def test_fork_goes_live_with_other_models(
    recorded: dict[str, tuple[Path, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forked at the triage, the agent asks the live models (here another replies file);
    the effects after the fork point come from the source run's ledger, not the world."""
    _folder, db = recorded["refund"]
    ledger = tmp_path / "world.jsonl"
    monkeypatch.setenv("MNC_EXAMPLE_LEDGER", str(ledger))
    replies = tmp_path / "other.json"
    replies.write_text(
        json.dumps({"triage": [{"category": "late", "confidence": 0.97, "summary": "live"}]})
    )
    into = tmp_path / "fork.db"
    done = _fork(db, into, "--live-from", "t", "--models", f"scripted:{replies}", "--id", "f-1")
    assert done.returncode == 0, done.stderr
    assert "answered from the source run's ledger, or refused" in done.stderr
    assert "effect refund_payment: answered from the source run's ledger" in done.stdout
    with SQLiteStore(str(into)) as store:
        triage = next(e for e in store.read_journal("f-1") if e.kind == "agent")
        assert triage.data["result"]["summary"] == "live"
        assert store.get_run("f-1").status == "completed"
    assert not ledger.exists()  # no effect reached the world


def test_fork_refuses_new_effects_unless_live(
    recorded: dict[str, tuple[Path, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, db = recorded["refund"]
    source = _mutate(folder, "refund", "Refunded {receipt", "Paid {receipt", tmp_path)
    line = str(_line_of(source, "Paid {receipt"))
    refused = _fork(db, tmp_path / "a.db", "--live-from", line, "--program", str(source))
    assert refused.returncode == 1
    assert "effect notify: REFUSED" in refused.stdout and "--live-effects" in refused.stdout
    ledger = tmp_path / "world.jsonl"
    monkeypatch.setenv("MNC_EXAMPLE_LEDGER", str(ledger))
    args = ["--live-from", line, "--program", str(source), "--live-effects"]
    live = _fork(db, tmp_path / "b.db", *args)
    assert live.returncode == 0, live.stdout + live.stderr
    assert "LIVE EFFECTS" in live.stderr
    sent = [json.loads(x) for x in ledger.read_text().splitlines()]
    assert [s["args"]["text"] for s in sent] == ["Paid $42.50."], sent
    never = _fork(db, tmp_path / "c.db", "--live-from", "no_such_state")
    assert never.returncode == 2 and "never reached" in never.stderr
    assert _fork(db, tmp_path / "d.db", "--models", "x").returncode == 2


# --- the golden suite: failures, retries, parallel branches, children ----------------------


def test_every_example_scenario_run_replays_same() -> None:
    """Each scenario's run of examples/ (the golden suite included) (faults and retries, parallel branches, children,
    decisions, events included) replays "same" from its journal."""
    from mnlang.ir.compile import compile_file
    from mnlang.replay.engine import ReplayError, replay_recording
    from mnlang.replay.recording import recording_from_store
    from mnlang.testing.runner import run_scenario

    recordings = []
    for file in sorted(EXAMPLES.rglob("*.mn")):
        program, _ = compile_file(file)
        assert program is not None, file
        for scenario in program.scenarios.values():
            run_scenario(
                program,
                scenario,
                file.name,
                lambda store, run_id: recordings.append(recording_from_store(store, run_id)),
            )
    kinds = {e.kind for r in recordings for run in r.root.walk() for e in run.events}
    assert {"retry", "call_failed", "child", "decided", "signal"} <= kinds, kinds
    assert any(e.branch for r in recordings for e in r.root.events)  # parallel branches
    verdicts, refused = {}, []
    for recording in recordings:
        try:
            report = replay_recording(recording)
        except ReplayError as e:
            refused.append(e.message)  # only a run whose quorum join raced (below)
            continue
        verdicts[recording.root.record.run_id] = report.to_json()
    diverged = {k: v for k, v in verdicts.items() if v["verdict"] != "same"}
    assert len(verdicts) >= 90 and not diverged, diverged
    # examples/first_greeting: three runs decided a race, which replay does not redo.
    assert len(refused) == 3 and all("raced a quorum join" in r for r in refused), refused


def test_what_cannot_be_replayed_says_why(
    recorded: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    _folder, db = recorded["refund"]
    other = tmp_path / "other.mn"
    other.write_text("workflow other() -> int {\n  return 1\n}\n")
    mnc = [sys.executable, "-m", "mnlang.cli", "replay", "refund", "--db", str(db)]
    missing = subprocess.run([*mnc, "--program", str(other)], capture_output=True, text=True)
    assert missing.returncode == 2
    assert "no workflow `refund`" in missing.stderr and "help:" in missing.stderr
    usage = subprocess.run([*mnc, "--all"], capture_output=True, text=True)
    assert usage.returncode == 2 and "RUN_ID or --all" in usage.stderr
    as_json = subprocess.run([*mnc, "--json"], capture_output=True, text=True)
    assert json.loads(as_json.stdout)["verdict"] == "same"


def test_upgraded_run_says_which_program_replays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run upgraded while it waited replays on the program it was upgraded to, and
    `--program` is said to replace that one for the whole run."""
    folder = tmp_path / "refund"
    shutil.copytree(EXAMPLES / "refund", folder)
    monkeypatch.setenv("MNC_EXAMPLE_LEDGER", str(tmp_path / "ledger.jsonl"))
    db = tmp_path / "journal.db"
    source = folder / "refund.mn"
    api.start_run(source, LARGE_REFUND, run_id="up", db=db, models="scripted")
    text = source.read_text()
    source.write_text(text.replace("  return receipt\n", '  log "paid"\n  return receipt\n'))
    verdict = api.upgrade_run("up", source=source, resume=False, db=db).verdict
    assert not verdict.current
    api.approve("up", "manager_review", by="maria", db=db)
    report = api.replay_run("up", db=db)
    assert report.same, report
    assert any("upgraded mid-way" in n and "replayed on" in n for n in report.notes)
    again = api.replay_run("up", program=api.load_program(source), db=db)
    assert any("--program replaces both" in n for n in again.notes)


def test_divergence_inside_a_child_run(
    recorded: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    """An edit of the child workflow (another module) is found in the child run, at the
    child's statement."""
    folder, db = recorded["pipeline"]
    copy = tmp_path / "pipeline-mutated"
    shutil.copytree(folder, copy)
    cleaning = copy / "cleaning.mn"
    text = cleaning.read_text()
    old = "quarantine_row(dataset, row.id, check.reason)"
    cleaning.write_text(text.replace(old, 'quarantine_row(dataset, row.id, "bad")'))
    report = _replay(db, "pipeline", copy / "pipeline.mn")
    divergence = report["divergence"]
    assert divergence is not None, report
    line = _line_of(cleaning, '"bad"')
    assert divergence["where"] == f"cleaning.mn:{line}", divergence
    assert divergence["workflow"] == "cleaning.clean_batch"
    assert divergence["run_id"].startswith("pipeline.")
