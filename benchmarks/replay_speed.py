"""Replaying recorded runs is fast enough to gate CI on a day of production.

Run: `python benchmarks/replay_speed.py [--runs 1000] [--suite examples/golden]`. Prints
figures beside the target; asserts nothing. Each scenario of the golden suite is run
live (`mnc test`'s runner: a fresh in-memory journal, the scenario's mocked tools,
scripted replies and decisions) and its journal kept as a recording; scenarios are run
round-robin until `--runs` recordings exist. Then every recording is replayed
(`mnlang.replay.engine.replay_recording`: a throwaway in-memory journal, every answer
from the recording) and the verdicts counted.

Target (issue 20): 1,000 replays in at most 60 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mnlang.ir.compile import compile_file  # noqa: E402
from mnlang.replay.engine import ReplayError, replay_recording  # noqa: E402
from mnlang.replay.recording import Recording, recording_from_store  # noqa: E402
from mnlang.stores.base import Store  # noqa: E402
from mnlang.testing.runner import run_scenario  # noqa: E402

TARGET_S = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--suite", default=str(ROOT / "examples" / "golden"))
    options = parser.parse_args()
    scenarios = []
    for file in sorted(Path(options.suite).rglob("*.mn")):
        program, _ = compile_file(file)
        if program is not None:
            scenarios += [(program, s, file.name) for s in program.scenarios.values()]
    recordings: list[Recording] = []

    def keep(store: Store, run_id: str) -> None:
        recordings.append(recording_from_store(store, run_id))

    live_started = time.perf_counter()
    while len(recordings) < options.runs:
        for program, scenario, name in scenarios:
            if len(recordings) >= options.runs:
                break
            run_scenario(program, scenario, name, keep)
    live_s = time.perf_counter() - live_started

    verdicts = {"same": 0, "diverged": 0, "error": 0}
    replay_started = time.perf_counter()
    for recording in recordings:
        try:
            report = replay_recording(recording)
        except ReplayError:
            verdicts["error"] += 1
            continue
        verdicts["same" if report.same else "diverged"] += 1
    replay_s = time.perf_counter() - replay_started

    n = len(recordings)
    print(f"golden suite: {len(scenarios)} scenarios, {n} recorded runs")
    print(f"live (mnc test runner):  {live_s:7.2f} s  ({live_s / n * 1000:.1f} ms a run)")
    print(f"replay:                  {replay_s:7.2f} s  ({replay_s / n * 1000:.1f} ms a run)")
    print(f"target: {n} replays <= {TARGET_S:.0f} s (scaled: {TARGET_S * n / 1000:.0f} s)")
    print(f"verdicts: {verdicts}")


if __name__ == "__main__":
    main()
