"""Group commit: runs executing at once in one worker share fsyncs.

Run: `python benchmarks/group_commit.py [--effects 200] [--runs 16] [--rounds 3]
[--postgres] [--dir DIR]`. Prints figures beside their targets; asserts nothing. In one process, on
one disk, one worker (`mnlang.runtime.worker.Worker`, concurrency `--runs`) executes:

- a lone run of a chain of `--effects` no-op keyed effects (`benchmarks/step_throughput.py`'s
  `effect_chain`: one commit per effect, its result with the next intent), with group
  commit on and off: its rate and latency per effect (a lone run must not be slower with
  group commit on: a lone commit does not wait for companions);
- `--runs` such runs at once, with group commit on and off: the aggregate effect rate,
  the process's CPU time per effect, and how the commits went (transactions, batches per
  transaction, the largest group).

Figures on a shared, loaded machine are noisy: each is the median of `--rounds` rounds,
interleaved, after a warm-up.

Target (issue 23): the `--runs` runs' aggregate rate with group commit on at least 2x the
lone run's rate measured here (with group commit on). Each measurement has a journal of
its own (a new SQLite file, a new PostgreSQL schema), timed from the first event of the
runs to their last, in the journal's clock. `--postgres` also measures on a private
PostgreSQL server (`tests/pg.py`, fsync and synchronous_commit on).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from step_throughput import program  # noqa: E402

from mnlang.ir.model import IRProgram  # noqa: E402
from mnlang.runtime.run import start_run  # noqa: E402
from mnlang.runtime.worker import Worker  # noqa: E402
from mnlang.stores import open_store  # noqa: E402
from mnlang.stores.base import Store  # noqa: E402
from mnlang.stores.group_commit import GroupCommitter, GroupStats  # noqa: E402

TARGET = 2.0


@dataclass
class Measured:
    rate: float
    """Effects per second, all runs together."""
    cpu: float
    """The process's CPU seconds per effect."""
    stats: GroupStats | None


def process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(
    open_journal: Callable[[str], Store], ir: IRProgram, runs: int, effects: int, group: bool
) -> Measured:
    # The disk writes back what the measurement before left dirty, now rather than
    # during this one (it would slow whichever measurement follows a 16-run one).
    os.sync()
    tag = f"{'g' if group else 'n'}{runs}_{time.monotonic_ns()}"
    # A journal of its own: no measurement pays for the WAL another one left.
    with open_journal(tag) as store:
        ids = [f"{tag}-{n}" for n in range(runs)]
        for run_id in ids:
            start_run(
                store,
                ir,
                "effect_chain",
                {"items": list(range(effects))},
                run_id=run_id,
                detach=True,
            )
        committers: list[GroupCommitter] = []
        use = store.use_group_commit

        def kept(on: bool) -> GroupCommitter | None:
            committer = use(on)
            if committer is not None:
                committers.append(committer)
            return committer

        store.use_group_commit = kept  # type: ignore[method-assign]
        worker = Worker(store, concurrency=runs, idle_wait=0.01, group_commit=group)
        cpu = process_cpu()
        worker.run(until_idle=True)
        used = process_cpu() - cpu
        if worker.stats.ended != {"completed": runs}:
            raise SystemExit(f"the runs ended {worker.stats.ended}")
        first = last = None
        for run_id in ids:
            events = store.read_journal(run_id)
            first = min(events[0].at, first if first is not None else events[0].at)
            last = max(events[-1].at, last if last is not None else events[-1].at)
        assert first is not None and last is not None
        total = runs * effects
        return Measured(
            total / (last - first), used / total, committers[0].stats if committers else None
        )


def median(figures: list[Measured]) -> Measured:
    """The round with the median rate."""
    return sorted(figures, key=lambda m: m.rate)[len(figures) // 2]


def report(
    name: str,
    open_journal: Callable[[str], Store],
    ir: IRProgram,
    runs: int,
    effects: int,
    rounds: int,
) -> None:
    measure(open_journal, ir, 2, effects // 4, True)  # warm-up: imports, the journal's pages
    figures: dict[tuple[int, bool], list[Measured]] = {}
    for r in range(rounds):
        # Interleaved, in turns, so that a change of the machine's load spreads over all four.
        for many in (1, runs):
            for group in (True, False) if r % 2 == 0 else (False, True):
                figures.setdefault((many, group), []).append(
                    measure(open_journal, ir, many, effects, group)
                )
    lone_on, lone_off = median(figures[1, True]), median(figures[1, False])
    many_on, many_off = median(figures[runs, True]), median(figures[runs, False])
    print(
        f"{name}: chains of {effects} keyed no-op effects, one worker of concurrency {runs}, "
        f"median of {rounds} rounds"
    )

    def row(label: str, m: Measured) -> str:
        groups = ""
        if m.stats is not None and m.stats.transactions:
            s = m.stats
            groups = (
                f"; {s.transactions} transactions, {s.commits / s.transactions:.1f} batches each, "
                f"largest {s.largest}"
            )
        return (
            f"  {label:<30} {m.rate:>7.0f} effects/s {1e6 / m.rate:>8.0f} us/effect   "
            f"CPU {m.cpu * 1e6:>5.0f} us/effect{groups}"
        )

    print(row("1 run, group commit on", lone_on))
    print(row("1 run, group commit off", lone_off))
    print(row(f"{runs} runs, group commit on", many_on))
    print(row(f"{runs} runs, group commit off", many_off))
    ratio = many_on.rate / lone_on.rate
    verdict = "meets" if ratio >= TARGET else "below"
    print(
        f"  {runs} runs' aggregate / 1 run: {ratio:.2f}x   target >= {TARGET:.0f}x ({verdict}); "
        f"without group commit {many_off.rate / lone_off.rate:.2f}x"
    )
    slower = lone_on.rate / lone_off.rate
    print(
        f"  lone run with / without group commit: {slower:.2f}x the rate "
        "(target: no slower, within the noise)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--effects", type=int, default=200)
    parser.add_argument("--runs", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        ir = program(folder)
        sys.path.insert(0, str(folder))
        report(
            f"SQLite (WAL, synchronous=FULL) in {tmp}",
            lambda name: open_store(folder / f"{name}.db"),
            ir,
            args.runs,
            args.effects,
            args.rounds,
        )
        if args.postgres:
            from tests.pg import PostgresCluster, missing_reason

            reason = missing_reason()
            if reason is not None:
                print(f"PostgreSQL: not measured: {reason}")
                return
            cluster = PostgresCluster(settings={})
            cluster.start()
            try:
                report(
                    "PostgreSQL (fsync and synchronous_commit on)",
                    lambda name: open_store(cluster.url(name)),
                    ir,
                    args.runs,
                    args.effects,
                    args.rounds,
                )
            finally:
                cluster.stop()


if __name__ == "__main__":
    main()
