"""Resume time does not grow with a run's history.

Run: `python benchmarks/resume.py [--rounds 5] [--dir DIR]`. Prints figures beside the
target; asserts nothing. Each run is paused at a checkpoint; resuming it (`resume_run`:
lease, load the last commit, rebuild the fibers, find the checkpoint still open, commit
`waiting`) is timed, median (and best) of `--rounds`:

- runs whose journals hold about 1k, 10k and 100k events (nested loops of tool calls)
  and whose state is small;
- a run whose state holds a 100k-item list as a variable, and one paused in the middle
  of a collecting loop, whose 100k collected items are stored one row each (and read
  back as one text the store joins).

Target (DESIGN.md, "The runtime"): at most 50 ms at every size.
"""

from __future__ import annotations

import argparse
import math
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
from mnlang.runtime.run import resume_run, start_run  # noqa: E402
from mnlang.stores.sqlite import SQLiteStore  # noqa: E402

SOURCE = """
tool noop(i: int) -> int {
  impl: "bench_tools:noop"
}

workflow history(xs: list[int]) -> int {
  total = 0
  for a in xs {
    for b in xs {
      x = noop(b)
      total = total + x
    }
  }
  d = checkpoint hold {
    timeout: never
  }
  return total
}

workflow big_list(xs: list[int]) -> int {
  ys = for x in xs {
    yield x * 2
  }
  d = checkpoint hold {
    timeout: never
  }
  return len(ys)
}

workflow mid_loop(xs: list[int]) -> int {
  ys = for x in xs {
    yield x
    if x == len(xs) - 1 {
      d = checkpoint hold {
        timeout: never
      }
    }
  }
  return len(ys)
}
"""

TOOLS = "def noop(i):\n    return i\n"
TARGET_MS = 50.0


def compile_bench(folder: Path) -> IRProgram:
    (folder / "bench.mn").write_text(SOURCE, "utf-8")
    (folder / "bench_tools.py").write_text(TOOLS, "utf-8")
    ir, diagnostics = compile_file(folder / "bench.mn")
    if ir is None:
        raise SystemExit("\n".join(str(d) for d in diagnostics))
    return ir


def prepare(store: SQLiteStore, ir: IRProgram, workflow: str, xs: list[int], run_id: str) -> int:
    """Run until the checkpoint; the number of journal events."""
    outcome = start_run(store, ir, workflow, {"xs": xs}, run_id=run_id, config=RuntimeConfig())
    if outcome.status != "waiting":
        raise SystemExit(f"{run_id} ended {outcome.status}: {outcome.error}")
    record = store.get_run(run_id)
    assert record is not None
    return record.last_seq


def time_resume(store: SQLiteStore, ir: IRProgram, run_id: str, rounds: int) -> list[float]:
    """Milliseconds of each round's resume."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        outcome = resume_run(store, run_id, program=ir)
        times.append((time.perf_counter() - start) * 1000)
        if outcome.status != "waiting":
            raise SystemExit(f"{run_id} resumed to {outcome.status}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        ir = compile_bench(folder)
        store = SQLiteStore(folder / "journal.db")
        cases: list[tuple[str, str, list[int]]] = []
        for events in (1_000, 10_000, 100_000):
            side = math.isqrt(events)
            cases.append((f"{events // 1000}k events", "history", list(range(side))))
        cases.append(("100k-item list variable", "big_list", list(range(100_000))))
        cases.append(("100k items mid-collection", "mid_loop", list(range(100_000))))
        print(f"resume time, median (best) of {args.rounds}, target <= {TARGET_MS:.0f} ms")
        for i, (label, workflow, xs) in enumerate(cases):
            run_id = f"run-{i}"
            events = prepare(store, ir, workflow, xs, run_id)
            times = time_resume(store, ir, run_id, args.rounds)
            ms = statistics.median(times)
            verdict = "meets" if ms <= TARGET_MS else "above"
            print(
                f"  {label:<28} {events:>7} events  {ms:>7.1f} ms ({min(times):>5.1f})  ({verdict})"
            )
        store.close()


if __name__ == "__main__":
    main()
