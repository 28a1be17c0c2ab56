"""Crash safety under real `kill -9`: `mnc run` and every `mnc resume` after it are killed
at random (seeded) moments until the run gets through, over and over, at least 200 kills
in all. The checks are those of `test_crash.py`: the same output as an uninterrupted run,
every key committed once, and no effect called more often than the kills that caught it
between its intent and its result allow.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import test_crash as crash

from mnlang.stores.sqlite import SQLiteStore

KILLS = 200
RUNS = 8
ITEMS = 24


def big_scenario(folder: Path) -> crash.Scenario:
    items = [{"id": f"i{n}{n % 5}", "qty": n % 4 + 1} for n in range(ITEMS)]
    path = folder / "input.json"
    path.write_text(json.dumps({"order": "o-kill", "items": items}), "utf-8")
    return crash.Scenario("crashflow-big", crash.CRASH / "crash.mn", path)


def start_process(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mnlang.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.serial
def test_kill_9_at_random_moments(tmp_path: Path) -> None:
    scenario = big_scenario(tmp_path)
    ir = crash.ir_file(scenario, tmp_path)
    reference, ref_calls = crash.reference_run(scenario, tmp_path, ir)
    rng = random.Random(20240502)
    kills = 0
    run = 0
    while kills < KILLS or run < RUNS:
        run += 1
        folder = tmp_path / f"run-{run}"
        folder.mkdir()
        env = crash.base_env(folder, scenario.commit_every)
        args = ["run", str(ir), "--id", crash.RUN_ID, "--input-file", str(scenario.input), "--json"]
        crashes: list[crash.Crash] = []
        created = False
        for process in range(400):
            # A process killed while starting up may not have created the run yet.
            proc = start_process(["resume", crash.RUN_ID, "--json"] if created else args, env)
            # Past a few kills, let processes live longer so that every run gets through.
            delay = rng.uniform(0.2, 0.7 + 0.05 * process)
            try:
                out, err = proc.communicate(timeout=delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.communicate()
                kills += 1
                if not (folder / "journal.db").exists():
                    continue
                with SQLiteStore(folder / "journal.db") as store:
                    crashes.append(crash.crash_point(store, folder / "ledger.jsonl"))
                    record = store.get_run(crash.RUN_ID)
                    created = record is not None
                    if record is not None and record.status == "waiting":
                        crash.answer_waits(store, crash.RUN_ID, scenario, folder / "ledger.jsonl")
                continue
            if proc.returncode == 3:
                created = True
                with SQLiteStore(folder / "journal.db") as store:
                    crash.answer_waits(store, crash.RUN_ID, scenario, folder / "ledger.jsonl")
                continue
            assert proc.returncode in (0, 1), err
            outcome = json.loads(out)
            report = crash.Report(outcome["status"], outcome["result"], crashes, process + 1)
            crash.check_run(reference, report, folder, scenario, ref_calls)
            break
        else:
            pytest.fail("the run never got through")
    print(f"{kills} kills over {run} runs")
    assert kills >= KILLS
