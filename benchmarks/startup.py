"""How long the everyday `mnc` commands take as whole processes, almost all of it
start-up (imports): `mnc --help`, `mnc runs`, `mnc show RUN`, `mnc check` of the refund
example, and `mnc run` of the refund example with `demo.sh`'s `o-1002` input up to its
checkpoint (from the `.mn` source, and from its IR compiled by `mnc compile`, which skips
the parser and the checker), each beside its target and `python -c pass`; then the largest
entries of `python -X importtime` for each command.

Run: `python benchmarks/startup.py [--runs 7] [--top 12]`. Prints figures; asserts
nothing. Each row is the median wall time and the median CPU time (user + system) of the
process over `--runs` runs after one warm-up; on a shared machine the CPU time is the
steadier figure. Modules are byte-compiled as in an installed package.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from check_speed import Timing, median_times, mnc_command

ROOT = Path(__file__).resolve().parent.parent
REFUND = ROOT / "examples" / "refund" / "refund.mn"
# Scripted replies only when asked for (as in demo.sh), never a silent default.
REPLIES = ROOT / "examples" / "refund" / "replies.json"
O_1002 = {"order_id": "o-1002", "complaint": "The mug arrived with a crack along the handle."}
TARGETS_MS = {
    "python -c pass": None,
    "mnc --help": 50,
    "mnc runs": 60,
    "mnc show RUN": 60,
    "mnc check refund.mn": 100,
    "mnc run refund (o-1002)": 200,
    "mnc run refund.json (o-1002)": 200,
}


def import_times(argv: list[str], env: dict[str, str], top: int) -> list[tuple[int, str]]:
    """The `top` largest cumulative import times (microseconds) of top-level modules, of
    every package (`click`, `pydantic`) wherever it is first imported, and of mnlang's own
    modules, from `python -X importtime`."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *argv],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    found: dict[str, int] = {}
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if m is None:
            continue
        cumulative, indent, name = int(m[1]), len(m[2]), m[3]
        if indent <= 1 or "." not in name or name.startswith("mnlang"):
            found[name] = max(found.get(name, 0), cumulative)
    return sorted(((us, name) for name, us in found.items()), reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    mnc = mnc_command()
    # `-X importtime` runs the program the rows time: the installed `mnc` script (whose
    # `--help` does not import click: `mnlang.mnc`), else the CLI module.
    traced = [mnc[0]] if len(mnc) == 1 else ["-m", "mnlang.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MNC_")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.update(
            PYTHONPYCACHEPREFIX=str(work / "pycache"),
            MNC_DB=str(work / "journal.db"),
            MNC_EXAMPLE_LEDGER=str(work / "ledger.jsonl"),
        )
        ids = (f"refund-o-1002-{n}" for n in itertools.count())
        first = next(ids)
        compiled = work / "refund.json"
        subprocess.run(
            [*mnc, "compile", str(REFUND), "-o", str(compiled)], env=env, check=True, cwd=ROOT
        )
        models = ["--models", f"scripted:{REPLIES}"]
        run = [*mnc, "run", str(REFUND), *models, "--input", json.dumps(O_1002), "--id"]
        run_ir = [*mnc, "run", str(compiled), *models, "--input", json.dumps(O_1002), "--id"]
        for argv in ([*run, first], [*run_ir, next(ids)]):
            started = subprocess.run(argv, env=env, capture_output=True, text=True)
            if started.returncode != 3:
                raise SystemExit(
                    f"the refund run did not wait (exit {started.returncode}):\n"
                    f"{started.stderr[-2000:]}"
                )
        rows: list[tuple[str, Callable[[], list[str]]]] = [
            ("python -c pass", lambda: [sys.executable, "-c", "pass"]),
            ("mnc --help", lambda: [*mnc, "--help"]),
            ("mnc runs", lambda: [*mnc, "runs"]),
            ("mnc show RUN", lambda: [*mnc, "show", first]),
            ("mnc check refund.mn", lambda: [*mnc, "check", str(REFUND)]),
        ]
        print(f"median of {args.runs} whole-process runs ({' '.join(mnc)}): wall, CPU, target")
        base: Timing | None = None
        for label, argv in rows:
            timing = median_times(argv(), args.runs, ROOT, env)
            base = base or timing
            show(label, timing)
        # A new run id each time: `mnc run` of an existing id would resume it instead.
        timing = median_runs(lambda: [*run, next(ids)], args.runs, env)
        show("mnc run refund (o-1002)", timing)
        timing = median_runs(lambda: [*run_ir, next(ids)], args.runs, env)
        show("mnc run refund.json (o-1002)", timing)
        assert base is not None
        print(f"  (python -c pass: {base.wall * 1000:.0f} ms wall on this machine now)")
        commands = {
            "mnc --help": ["--help"],
            "mnc runs": ["runs"],
            "mnc show RUN": ["show", first],
            "mnc check refund.mn": ["check", str(REFUND)],
            "mnc run refund (o-1002)": [
                "run",
                str(REFUND),
                *models,
                "--input",
                json.dumps(O_1002),
                "--id",
                next(ids),
            ],
            "mnc run refund.json (o-1002)": [
                "run",
                str(compiled),
                *models,
                "--input",
                json.dumps(O_1002),
                "--id",
                next(ids),
            ],
        }
        for label, rest in commands.items():
            print(f"\n{label}: largest imports (cumulative, -X importtime)")
            for us, name in import_times([*traced, *rest], env, args.top):
                print(f"  {us / 1000:8.1f} ms  {name}")


def median_runs(argv: Callable[[], list[str]], runs: int, env: dict[str, str]) -> Timing:
    """`median_times` for a command whose arguments change from run to run (no warm-up:
    the earlier rows warmed the same modules)."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(argv(), cwd=ROOT, env=env, capture_output=True, check=False)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return Timing(statistics.median(walls), statistics.median(cpus))


def show(label: str, timing: Timing) -> None:
    target = TARGETS_MS[label]
    goal = f"target <= {target} ms" if target is not None else "reference"
    print(f"  {label:<29} {timing.wall * 1000:7.0f} ms {timing.cpu * 1000:7.0f} ms   {goal}")


if __name__ == "__main__":
    main()
