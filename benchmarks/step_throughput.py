"""Durable step throughput: tool and effect chains beside the database's commit rate.

Run: `python benchmarks/step_throughput.py [--steps 1000] [--rounds 3] [--dir DIR]`.
Prints figures beside their targets; asserts nothing. In one run, on one disk:

- raw: a `sqlite3` loop of `BEGIN IMMEDIATE` / one INSERT / `COMMIT` per step, WAL and
  synchronous=FULL (the journal's settings): the rate at which this disk commits;
- (a) a workflow whose `for` loop over a list of `--steps` items calls a no-op tool;
- (b) the same loop calling a no-op keyed effect: one commit per effect, its result with
  the next effect's intent (docs/runtime.md, "An intent rides in the result commit").

Targets (DESIGN.md, "The runtime"): the tool chain at least 1.0x the raw commit rate,
the effect chain at least 0.4x.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mnlang.ir.compile import compile_file  # noqa: E402
from mnlang.ir.model import IRProgram  # noqa: E402
from mnlang.runtime.config import RuntimeConfig  # noqa: E402
from mnlang.runtime.run import start_run  # noqa: E402
from mnlang.stores.sqlite import SQLiteStore  # noqa: E402

SOURCE = """
tool noop(i: int) -> int {
  impl: "bench_tools:noop"
}

effect noop_effect(i: int) -> int {
  impl: "bench_tools:noop"
  key: "noop:{i}"
}

workflow tool_chain(items: list[int]) -> int {
  total = 0
  for i in items {
    x = noop(i)
    total = total + x
  }
  return total
}

workflow effect_chain(items: list[int]) -> int {
  total = 0
  for i in items {
    x = noop_effect(i)
    total = total + x
  }
  return total
}
"""

TOOLS = """
def noop(i):
    return i
"""


def program(folder: Path) -> IRProgram:
    (folder / "bench.mn").write_text(SOURCE, "utf-8")
    (folder / "bench_tools.py").write_text(TOOLS, "utf-8")
    ir, diagnostics = compile_file(folder / "bench.mn")
    if ir is None:
        raise SystemExit("\n".join(str(d) for d in diagnostics))
    return ir


def raw_rate(path: Path, steps: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, data TEXT)")
    start = time.perf_counter()
    for i in range(steps):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO events (data) VALUES (?)", (f'{{"i":{i}}}',))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return steps / elapsed


def workflow_rate(ir: IRProgram, db: Path, workflow: str, steps: int, round_: int) -> float:
    store = SQLiteStore(db)
    config = RuntimeConfig()
    start = time.perf_counter()
    outcome = start_run(
        store,
        ir,
        workflow,
        {"items": list(range(steps))},
        run_id=f"{workflow}-{round_}",
        config=config,
    )
    elapsed = time.perf_counter() - start
    store.close()
    if outcome.status != "completed":
        raise SystemExit(f"{workflow} ended {outcome.status}: {outcome.error}")
    return steps / elapsed


def line(name: str, rate: float, raw: float, target: float) -> str:
    ratio = rate / raw
    verdict = "meets" if ratio >= target else "below"
    return (
        f"  {name:<22} {rate:>8.0f} steps/s  {1e6 / rate:>7.1f} us/step   "
        f"{ratio:>5.2f}x raw   target >= {target:.1f}x ({verdict})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        ir = program(folder)
        raw, tools, effects = [], [], []
        for r in range(args.rounds):
            raw.append(raw_rate(folder / "raw.db", args.steps))
            tools.append(workflow_rate(ir, folder / "journal.db", "tool_chain", args.steps, r))
            effects.append(workflow_rate(ir, folder / "journal.db", "effect_chain", args.steps, r))
        raw_rate_ = statistics.median(raw)
        print(
            f"{args.steps} steps, median of {args.rounds} rounds, WAL + synchronous=FULL, in {tmp}"
        )
        print(
            f"  {'raw commit loop':<22} {raw_rate_:>8.0f} commits/s {1e6 / raw_rate_:>6.1f} us/commit"
        )
        print(line("(a) tool chain", statistics.median(tools), raw_rate_, 1.0))
        print(line("(b) effect chain", statistics.median(effects), raw_rate_, 0.4))


if __name__ == "__main__":
    main()
