"""Figures over several seeds (`mnc bench --seeds N`): each figure's mean with a 95%
confidence interval (Student's t over the seeds' values)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from mnlang.bench.report import completion_held, saving
from mnlang.bench.runner import BenchResult, NaiveSummary
from mnlang.metrics.compute import ALL_CLASSES

T_975: Final = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)
"""Student's t, two-sided 95%, for 1 to 10 degrees of freedom (any statistics table)."""
Z_975: Final = 1.96
"""The normal quantile, used past 10 degrees of freedom (a slight understatement)."""


@dataclass(frozen=True, slots=True)
class Interval:
    mean: float
    half_width: float | None
    """None with one seed: no interval."""

    def show(self, percent: bool) -> str:
        def fmt(v: float) -> str:
            return f"{v:.1%}" if percent else f"${v:.4f}"

        if self.half_width is None:
            return fmt(self.mean)
        return f"{fmt(self.mean)} ± {fmt(self.half_width)}"


def interval(values: list[float]) -> Interval:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return Interval(mean, None)
    df = len(values) - 1
    t = T_975[df - 1] if df <= len(T_975) else Z_975
    return Interval(mean, t * statistics.stdev(values) / math.sqrt(len(values)))


FIGURES: Final[list[tuple[str, bool, Callable[[BenchResult], float | None]]]] = [
    ("completion (runtime)", True, lambda r: r.report.total.completion.value),
    (
        "completion (naive chain)",
        True,
        lambda r: r.naive.get(ALL_CLASSES, NaiveSummary()).completion.value,
    ),
    ("fault recovery", True, lambda r: r.report.total.fault_recovery.value),
    ("unplanned repair rate", True, lambda r: r.report.total.unplanned_repairs.value),
    ("cost/success lower by (duplicates priced)", True, lambda r: saving(r)),
    ("cost/success lower by, w/o people's time", True, lambda r: saving(r, people=False)),
    (
        "runtime completion >= chain, every class (share of seeds)",
        True,
        lambda r: float(completion_held(r)),
    ),
]


def seed_lines(results: list[BenchResult]) -> list[str]:
    seeds = ", ".join(str(r.seed) for r in results)
    lines = [f"over {len(results)} seeds ({seeds}): mean ± 95% confidence interval"]
    for name, percent, pick in FIGURES:
        values = [v for v in (pick(r) for r in results) if v is not None]
        shown = interval(values).show(percent) if values else "n/a"
        lines.append(f"  {name:<58} {shown}")
    return lines


def seed_json(results: list[BenchResult]) -> dict[str, object]:
    out: dict[str, object] = {"seeds": [r.seed for r in results]}
    for name, _, pick in FIGURES:
        values = [v for v in (pick(r) for r in results) if v is not None]
        if values:
            i = interval(values)
            out[name] = {"values": values, "mean": i.mean, "half_width_95": i.half_width}
    return out
