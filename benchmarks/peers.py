"""mnlang beside DBOS and LangGraph: the same 1,000-step durable chain on each, in one run.

Run: `python benchmarks/peers.py [--steps 1000] [--rounds 3] [--dir DIR]`, after
`pip install '.[peers]'` (dbos, langgraph, langgraph-checkpoint-sqlite). Prints figures
and ratios beside their targets; asserts nothing. A peer that is not installed, or that
cannot run here (offline), is reported with the reason and skipped.

- mnlang: a `for` loop over `--steps` items calling (a) a no-op tool, (b) a no-op keyed
  effect; the journal in SQLite (WAL, synchronous=FULL).
- DBOS: a `@DBOS.workflow` looping over `@DBOS.step` calls, SQLite system database. DBOS
  checkpoints every step the same way, so its (a) and (b) are one figure.
- LangGraph: a one-node graph looping on itself, `SqliteSaver` checkpointer (a checkpoint
  per super-step), also one figure for (a) and (b).

Targets (DESIGN.md, "The runtime"): mnlang at least 10x both peers on the tool chain and
at least 4x on the effect chain.
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from step_throughput import program, workflow_rate  # noqa: E402

Rate = Callable[[Path, int, int], float]
"""A peer's steps per second for one round: (folder, steps, round)."""


def dbos_rate() -> Rate:
    from dbos import DBOS

    def rate(folder: Path, steps: int, round_: int) -> float:
        DBOS(
            config={
                "name": f"mnbench{round_}",
                "system_database_url": f"sqlite:///{folder / f'dbos-{round_}.sqlite'}",
                "log_level": "WARNING",
            }
        )

        @DBOS.step()
        def noop(i: int) -> int:
            return i

        @DBOS.workflow()
        def chain(items: list[int]) -> int:
            total = 0
            for i in items:
                total += noop(i)
            return total

        DBOS.launch()
        try:
            start = time.perf_counter()
            chain(list(range(steps)))
            return steps / (time.perf_counter() - start)
        finally:
            DBOS.destroy(destroy_registry=True)

    return rate


def langgraph_rate() -> Rate:
    from typing import TypedDict

    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.graph import END, StateGraph

    class State(TypedDict):
        i: int
        n: int
        total: int

    def step(state: State) -> dict[str, int]:
        return {"i": state["i"] + 1, "total": state["total"] + state["i"]}

    graph = StateGraph(State)
    graph.add_node("step", step)
    graph.set_entry_point("step")
    graph.add_conditional_edges("step", lambda s: "step" if s["i"] < s["n"] else END)

    def rate(folder: Path, steps: int, round_: int) -> float:
        conn = sqlite3.connect(folder / f"langgraph-{round_}.sqlite", check_same_thread=False)
        conn.execute("PRAGMA synchronous = FULL")
        app = graph.compile(checkpointer=SqliteSaver(conn))
        config = {"configurable": {"thread_id": "bench"}, "recursion_limit": steps + 10}
        start = time.perf_counter()
        app.invoke({"i": 0, "n": steps, "total": 0}, config)  # type: ignore[arg-type]
        elapsed = time.perf_counter() - start
        conn.close()
        return steps / elapsed

    return rate


PEERS: dict[str, Callable[[], Rate]] = {"DBOS": dbos_rate, "LangGraph": langgraph_rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    logging.getLogger("dbos").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        ir = program(folder)
        peers: dict[str, Rate] = {}
        for name, make in PEERS.items():
            try:
                peers[name] = make()
            except ImportError as e:
                print(f"{name}: not installed ({e}); `pip install '.[peers]'` adds it")
        rates: dict[str, list[float]] = {"tools": [], "effects": []}
        peer_rates: dict[str, list[float]] = {name: [] for name in peers}
        for r in range(args.rounds):
            rates["tools"].append(
                workflow_rate(ir, folder / "journal.db", "tool_chain", args.steps, r)
            )
            rates["effects"].append(
                workflow_rate(ir, folder / "journal.db", "effect_chain", args.steps, r)
            )
            for name, rate in list(peers.items()):
                try:
                    peer_rates[name].append(rate(folder, args.steps, r))
                except Exception as e:  # a peer that cannot run here is skipped, not fatal
                    print(f"{name}: cannot run here ({type(e).__name__}: {e}); skipped")
                    del peers[name]
                    del peer_rates[name]
        tools = statistics.median(rates["tools"])
        effects = statistics.median(rates["effects"])
        print(f"{args.steps}-step chains, median of {args.rounds} rounds, in {tmp}")
        print(f"  mnlang (a) tool chain    {tools:>8.0f} steps/s")
        print(f"  mnlang (b) effect chain  {effects:>8.0f} steps/s")
        for name, values in peer_rates.items():
            peer = statistics.median(values)
            verdict_a = "meets" if tools / peer >= 10 else "below"
            verdict_b = "meets" if effects / peer >= 4 else "below"
            print(
                f"  {name:<10} {peer:>8.0f} steps/s   mnlang/{name}: "
                f"tools {tools / peer:>5.1f}x (target >= 10x, {verdict_a}), "
                f"effects {effects / peer:>5.1f}x (target >= 4x, {verdict_b})"
            )


if __name__ == "__main__":
    main()
