"""Durable step throughput: tool and effect chains beside the database's commit rate.

Run: `python benchmarks/step_throughput.py [--steps 1000] [--rounds 3] [--top 15]
[--dir DIR]`. Prints figures beside their targets; asserts nothing. In one run, on one
disk:

- raw: a `sqlite3` loop of `BEGIN IMMEDIATE` / one INSERT / `COMMIT` per step, WAL and
  synchronous=FULL (the journal's settings): the rate at which this disk commits;
- (a) a workflow whose `for` loop over a list of `--steps` items calls a no-op tool;
- (b) the same loop calling a no-op keyed effect: one commit per effect, its result with
  the next effect's intent (docs/runtime.md, "An intent rides in the result commit").

Targets (DESIGN.md, "The runtime"; issue 23): the tool chain at least 1.0x the raw
commit rate, the effect chain at least 0.6x. Each chain's CPU time per step (the whole
process's) is printed beside it: on a loaded machine it is the steadier figure.

Then a profile of one more effect chain: where an effect's CPU goes, as CPU time of the
run's own thread (`time.thread_time`, so waiting for the disk or for other processes
counts nothing) per effect, grouped by area (SQLite's statements, JSON, the store's
Python, the interpreter, ...) and by function. The tool itself runs on a thread of the
call pool, outside this profile; the process's CPU time beside it says how much that and
the other threads add.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
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


def process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def workflow_rate(
    ir: IRProgram, db: Path, workflow: str, steps: int, round_: int
) -> tuple[float, float]:
    """Steps per second, and the process's CPU seconds per step."""
    store = SQLiteStore(db)
    config = RuntimeConfig()
    cpu = process_cpu()
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
    used = process_cpu() - cpu
    store.close()
    if outcome.status != "completed":
        raise SystemExit(f"{workflow} ended {outcome.status}: {outcome.error}")
    return steps / elapsed, used / steps


def line(name: str, rate: float, cpu: float, raw: float, target: float) -> str:
    ratio = rate / raw
    verdict = "meets" if ratio >= target else "below"
    return (
        f"  {name:<22} {rate:>8.0f} steps/s  {1e6 / rate:>7.1f} us/step   "
        f"{ratio:>5.2f}x raw   target >= {target:.1f}x ({verdict}); CPU {cpu * 1e6:.0f} us/step"
    )


_AREAS = (
    ("sqlite3", "SQLite statements (C)"),
    ("mnlang/stores/", "the store's Python"),
    ("json/", "JSON"),
    ("mnlang/runtime/call_state", "tool and effect calls"),
    ("mnlang/runtime/call_threads", "tool and effect calls"),
    ("mnlang/runtime/effects", "tool and effect calls"),
    ("mnlang/runtime/tools", "tool and effect calls"),
    ("mnlang/runtime/journal", "the journal's batches"),
    ("mnlang/runtime/", "the interpreter"),
    ("concurrent/futures", "the call pool's hand-off"),
    ("threading", "the call pool's hand-off"),
)


def area(where: str) -> str:
    for needle, name in _AREAS:
        if needle in where:
            return name
    return "other"


def profile_effects(ir: IRProgram, db: Path, steps: int, top: int) -> None:
    """Where an effect's CPU goes, in the run's own thread."""
    profiler = cProfile.Profile(time.thread_time)
    thread_cpu, cpu = time.thread_time(), process_cpu()
    profiler.enable()
    rate, _ = workflow_rate(ir, db, "effect_chain", steps, -1)
    profiler.disable()
    thread_cpu, cpu = time.thread_time() - thread_cpu, process_cpu() - cpu
    print(
        f"\nprofile of one more effect chain ({rate:.0f} steps/s under the profiler): "
        f"{thread_cpu / steps * 1e6:.0f} us of the run's thread's CPU per effect, "
        f"{cpu / steps * 1e6:.0f} us of the process's (the profiler's own cost included: "
        "compare the shares, not the sums, with the CPU figure above)"
    )
    stats = pstats.Stats(profiler)
    by_area: dict[str, float] = {}
    rows = []
    for (file, number, function), entry in stats.stats.items():  # type: ignore[attr-defined]
        own = entry[2]
        where = f"{file}:{number}({function})"
        by_area[area(where if file != "~" else function)] = (
            by_area.get(area(where if file != "~" else function), 0.0) + own
        )
        rows.append((own, where.replace(str(ROOT) + "/", "")))
    total = sum(by_area.values()) or 1.0
    print("  by area (own time):")
    for name, own in sorted(by_area.items(), key=lambda kv: -kv[1]):
        print(f"    {own / steps * 1e6:7.1f} us/effect  {own / total:5.1%}  {name}")
    print(f"  top {top} functions (own time):")
    for own, where in sorted(rows, reverse=True)[:top]:
        print(f"    {own / steps * 1e6:7.1f} us/effect  {where[-100:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--top", type=int, default=15)
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

        def median(figures: list[tuple[float, float]]) -> tuple[float, float]:
            return statistics.median(f[0] for f in figures), statistics.median(
                f[1] for f in figures
            )

        print(
            f"{args.steps} steps, median of {args.rounds} rounds, WAL + synchronous=FULL, in {tmp}"
        )
        print(
            f"  {'raw commit loop':<22} {raw_rate_:>8.0f} commits/s {1e6 / raw_rate_:>6.1f} us/commit"
        )
        print(line("(a) tool chain", *median(tools), raw_rate_, 1.0))
        print(line("(b) effect chain", *median(effects), raw_rate_, 0.6))
        profile_effects(ir, folder / "journal.db", args.steps, args.top)


if __name__ == "__main__":
    main()
