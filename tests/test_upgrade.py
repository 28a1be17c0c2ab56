"""Upgrades: a waiting run moves to a new version of its program when `mnc diff`'s rule
allows it (`mnc resume --upgrade`), is refused with the reason otherwise, and
`mnc upgrade --check FILE` gives every waiting run its verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mnlang import api
from mnlang.runtime.upgrade import UpgradeRefused
from tests.human.harness import mnc, mnc_env

V1 = """\
workflow review(tag: str) -> str {
  d = checkpoint ok {
    ask: "Ship {tag}?"
    timeout: never
  }
  return "v1 {d.choice}"
}
"""
# Compatible: new work after the checkpoint, the checkpoint itself unchanged.
V2 = V1.replace('  return "v1 {d.choice}"', '  log "reviewed"\n  return "v2 {d.choice}"')
# Not compatible: the checkpoint offers other options.
V3 = V1.replace("    timeout: never", "    options: [approve, reject, defer]\n    timeout: never")


def write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "review.mn"
    path.write_text(text, "utf-8")
    return path


def test_a_compatible_version_takes_the_run_over(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    old = write(tmp_path / "old", V1)
    api.start_run(old, {"tag": "a"}, run_id="a", db=db)
    new = write(tmp_path / "new", V2)
    [verdict] = api.check_upgrades(new, db=db)
    assert (verdict.run_id, verdict.ok, verdict.current) == ("a", True, False)
    moved = api.upgrade_run("a", source=new, resume=False, db=db)
    assert moved.verdict.to_hash == api.load_program(new).hash
    assert api.check_upgrades(new, db=db)[0].current
    api.approve("a", "ok", by="ann", resume=False, db=db)
    outcome = api.resume_run("a", db=db)
    assert outcome.status == "completed" and outcome.result == "v2 approve"
    kinds = [e.kind for e in api.run_journal("a", db=db)]
    assert "upgraded" in kinds and "log" in kinds


def test_an_incompatible_version_is_refused_with_the_reason(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    api.start_run(write(tmp_path / "old", V1), {"tag": "b"}, run_id="b", db=db)
    new = write(tmp_path / "new", V3)
    with pytest.raises(UpgradeRefused) as refused:
        api.upgrade_run("b", source=new, db=db)
    assert "at `d`: its `options` changed" in refused.value.message
    [verdict] = api.check_upgrades(new, db=db)
    assert not verdict.ok and verdict.reasons() == ["at `d`: its `options` changed"]
    api.approve("b", "ok", db=db)  # the run goes on, on its own version
    assert api.get_run("b", db=db).run.result == "v1 approve"


def test_only_a_waiting_run_moves(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    api.start_run(write(tmp_path / "old", V1), {"tag": "c"}, run_id="c", db=db, detach=True)
    with pytest.raises(UpgradeRefused, match=r"the run is running; only a waiting run can move"):
        api.upgrade_run("c", source=write(tmp_path / "new", V2), db=db)


def test_upgrading_by_default_reads_the_runs_own_source_file(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    source = write(tmp_path, V1)
    api.start_run(source, {"tag": "d"}, run_id="d", db=db)
    source.write_text(V2, "utf-8")  # edited in place, as people do
    outcome = api.upgrade_run("d", resume=False, db=db)
    assert outcome.verdict.ok and not outcome.verdict.current


def test_mnc_upgrade_and_resume_upgrade(tmp_path: Path) -> None:
    env = mnc_env(tmp_path)
    old = write(tmp_path / "old", V1)
    for run in ("m1", "m2"):
        started = mnc(["run", str(old), "--id", run, "--input", '{"tag": "x"}'], env)
        assert started.returncode == 3, started.stderr
    bad = write(tmp_path / "bad", V3)
    checked = mnc(["upgrade", "--check", str(bad)], env)
    assert checked.returncode == 1
    assert checked.stdout.splitlines() == [
        "m1  cannot move:",
        "  - at `d`: its `options` changed",
        "m2  cannot move:",
        "  - at `d`: its `options` changed",
    ]
    good = write(tmp_path / "good", V2)
    checked = mnc(["upgrade", "--check", "--json", str(good)], env)
    assert checked.returncode == 0
    assert [(v["run_id"], v["ok"]) for v in json.loads(checked.stdout)] == [
        ("m1", True),
        ("m2", True),
    ]
    resumed = mnc(["resume", "m1", "--upgrade", "--source", str(good)], env)
    assert resumed.returncode == 3, resumed.stderr  # moved, and still waiting for the person
    assert resumed.stdout.startswith("upgraded: run m1 from program ")
    moved = mnc(["upgrade", str(good)], env)
    assert moved.returncode == 0
    assert moved.stdout.splitlines()[0].startswith("m1  current")
    assert moved.stdout.splitlines()[1].startswith("m2  moved from ")
    done = mnc(["approve", "m2", "ok"], env)
    assert done.returncode == 0 and '"v2 approve"' in done.stdout
