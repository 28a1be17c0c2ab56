"""A `BenchResult` for people (`bench_lines`) and machines (`bench_json`), with the
targets of issue 7 checked beside the measured figures."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from mnlang.bench.duplicates import duplicate_costs
from mnlang.bench.runner import BenchResult, NaiveSummary, StormResult
from mnlang.metrics.compute import ALL_CLASSES, ClassMetrics, Ratio, per_success
from mnlang.metrics.facts import Cost
from mnlang.metrics.render import money
from mnlang.runtime.faults import FAULT_CLASSES

MIN_FAULTS: Final = 1000
MIN_RECOVERY: Final = 0.999
MIN_SAVING: Final = 0.3
"""Cost per successful workflow, people's time included: at least this much lower than
the naive chain's (issue 21: the seed's stated target)."""
MIN_SAVING_WITHOUT_PEOPLE: Final = 0.5
"""The same, without people's time (reviews and repairs people decided)."""
MAX_REPAIR_RATE: Final = 0.01
"""Unplanned repairs (a repair checkpoint or compensations): at most this share of runs."""
MAX_SECONDS: Final = 300.0
SEED_FIGURES: Final = (
    "completion 95.0% (19/20), recovery 99.2% (124/125), tool selection 96.7% (58/60), "
    "parameters 95.0% (57/60), unsafe 0/60, cost per success $0.0707 vs $0.1481 naive "
    "(52.3% lower), human intervention 5.0% (1/20)"
)
"""What the seed runtime reports for the same metrics (issue 7), for comparison."""


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    wanted: str
    measured: str
    met: bool


def saving(result: BenchResult, *, people: bool = True) -> float | None:
    """How much lower the runtime's cost per successful workflow is than the naive
    chain's (0.3: by 30%), over all classes: the headline figure, people's time included
    and side effects performed twice priced; with `people=False`, the machines' costs
    alone (no people's time, no duplicates, which the table prices in people's time and
    amounts paid)."""
    total = result.report.total
    naive = result.naive.get(ALL_CLASSES, NaiveSummary())
    if people:
        return lower_by(priced_per_success(result, total), naive.cost_per_successful_priced)
    return lower_by(
        total.cost_per_successful_without_people, naive.cost_per_successful_without_people
    )


def priced_per_success(result: BenchResult, m: ClassMetrics) -> Decimal | None:
    """The runtime's cost per successful workflow of a class, duplicates priced."""
    extra = result.duplicate_cost.get(m.workflow_class, Decimal(0))
    return per_success(m.cost.total + extra, m.successful)


def lower_by(ours: Decimal | None, theirs: Decimal | None) -> float | None:
    """How much lower `ours` is than `theirs` (0.5: half)."""
    if ours is None or theirs is None or theirs == 0:
        return None
    return float(1 - ours / theirs)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def targets(result: BenchResult) -> list[Target]:
    total = result.report.total
    recovery = total.fault_recovery
    covered = [c for c in FAULT_CLASSES if result.injected.get(c)]
    value = recovery.value
    lower = saving(result)
    lower_machine = saving(result, people=False)
    lost = total.journal_gaps
    duplicated = total.duplicate_commits + result.duplicates
    storms_held = all(s.held for s in result.storms)
    return [
        Target(
            "fault recovery",
            f">= {MIN_RECOVERY:.1%} over >= {MIN_FAULTS:,} faults of all 8 classes",
            f"{recovery} over {len(covered)} classes",
            value is not None
            and value >= MIN_RECOVERY
            and recovery.denominator >= MIN_FAULTS
            and len(covered) == len(FAULT_CLASSES),
        ),
        Target(
            "duplicated committed effects",
            "0",
            f"{total.duplicate_commits} in the journal, {result.duplicates} performed twice",
            duplicated == 0,
        ),
        Target("lost journal entries", "0", str(lost), lost == 0),
        Target(
            "unsafe action rate",
            "0",
            str(total.unsafe_actions),
            total.unsafe_actions.numerator == 0,
        ),
        Target(
            "completion, every class",
            "runtime >= naive chain, every difference listed",
            ", ".join(
                f"{m.workflow_class} {m.completion.numerator} vs "
                f"{result.naive.get(m.workflow_class, NaiveSummary()).successful}"
                for m in result.report.classes
            ),
            completion_held(result),
        ),
        Target(
            "unplanned repair rate",
            f"<= {MAX_REPAIR_RATE:.0%} of runs",
            f"{_cell(total.unplanned_repairs)}; {total.reconciled} reconciled",
            total.unplanned_repairs.value is not None
            and total.unplanned_repairs.value <= MAX_REPAIR_RATE,
        ),
        Target(
            "cost per successful workflow",
            f">= {MIN_SAVING:.0%} lower than the naive chain, duplicates priced",
            "n/a" if lower is None else f"{lower:.1%} lower",
            lower is not None and lower >= MIN_SAVING,
        ),
        Target(
            "cost per success w/o people's time",
            f">= {MIN_SAVING_WITHOUT_PEOPLE:.0%} lower than the naive chain",
            "n/a" if lower_machine is None else f"{lower_machine:.1%} lower",
            lower_machine is not None and lower_machine >= MIN_SAVING_WITHOUT_PEOPLE,
        ),
        Target(
            "tool limits under retry storms",
            "peak rate and concurrency within each tool's limit",
            f"{sum(s.held for s in result.storms)}/{len(result.storms)} storms held",
            storms_held,
        ),
        Target(
            "bench time",
            f"<= {MAX_SECONDS / 60:.0f} minutes",
            f"{result.seconds / 60:.1f} minutes",
            result.seconds <= MAX_SECONDS,
        ),
    ]


def completion_held(result: BenchResult) -> bool:
    """The runtime ended as expected at least as often as the naive chain, per class."""
    return all(
        m.completion.numerator >= result.naive.get(m.workflow_class, NaiveSummary()).successful
        for m in result.report.classes
    )


def difference_lines(result: BenchResult) -> list[str]:
    """Every run the runtime and the naive chain judged differently: a count per reason,
    then each run."""
    if not result.differences:
        return ["  none: both sides ended as expected in the same runs"]
    reasons = Counter(d.why for d in result.differences)
    lines = [f"  {n} runs: {why}" for why, n in reasons.most_common()]
    for d in result.differences:
        lines.append(
            f"  {d.run_id} ({d.workflow_class}; fault {d.fault}): runtime {d.runtime}, "
            f"naive {d.naive}"
        )
    return lines


def _price_table() -> str:
    """Which price table priced the bench, as of when, for the report's reader."""
    from mnlang.models.prices import load_prices

    table = load_prices()
    files = " + ".join(table.files)
    return f"{files}, as of {table.as_of or 'an undated table'}; sources in the file"


def _tokens(per_run: float | None) -> str:
    return "n/a" if per_run is None else f"{per_run:,.0f}"


def _cell(ratio: Ratio) -> str:
    return f"{ratio.percent()} ({ratio.numerator}/{ratio.denominator})"


def _table(rows: list[tuple[str, list[str]]], head: list[str]) -> list[str]:
    widths = [max(len(head[i]), *(len(r[1][i]) for r in rows)) for i in range(len(head))]
    label = max(len(r[0]) for r in rows)
    out = [
        "  " + " " * label + "  " + "  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True))
    ]
    for name, cells in rows:
        line = (
            "  "
            + name.ljust(label)
            + "  "
            + "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))
        )
        out.append(line)
    return out


def _classes(result: BenchResult) -> list[ClassMetrics]:
    return [*result.report.classes, result.report.total]


def bench_lines(result: BenchResult) -> list[str]:
    classes = _classes(result)
    head = [m.workflow_class for m in classes]
    faults = sum(result.injected.values())
    lines = [
        f"mnc bench {result.path}: seed {result.seed}, {result.repeat} repetitions, "
        f"{result.runs} runs, {faults} faults injected, {result.seconds:.0f}s",
        "agents answered by "
        + (
            "the scenarios' replies (priced as each agent's model)"
            if result.live is None
            else f"the `{result.live}` provider, live (the scenarios' replies unused)"
        )
        + (f"; {result.model_options}" if result.model_options else ""),
        "",
        "the five metrics, per class (numerator/denominator):",
    ]

    def per(name: str, pick: Any) -> tuple[str, list[str]]:
        return name, [pick(m) for m in classes]

    rows = [
        per("workflow completion", lambda m: _cell(m.completion)),
        per("fault recovery", lambda m: _cell(m.fault_recovery)),
        per("tool selection accuracy", lambda m: _cell(m.tool_selection)),
        per("tool parameter accuracy", lambda m: _cell(m.tool_parameters)),
        per("trajectory match", lambda m: _cell(m.trajectory_match)),
        per("unsafe action rate", lambda m: _cell(m.unsafe_actions)),
        per("cost per successful run", lambda m: money(m.cost_per_successful)),
        per("model tokens per run", lambda m: _tokens(m.tokens_per_run)),
        per("cached model replies", lambda m: str(m.cached_replies)),
        per("model fallbacks", lambda m: str(m.fallbacks)),
        per("human intervention", lambda m: _cell(m.human_intervention)),
        per("planned checkpoints", lambda m: _cell(m.planned_checkpoints)),
        per("unplanned repairs", lambda m: _cell(m.unplanned_repairs)),
        per("reconciled outcomes", lambda m: str(m.reconciled)),
        per("human overrides", lambda m: _cell(m.human_overrides)),
    ]
    lines += _table(rows, head)
    lines += [
        "",
        "the naive agent chain (docs/metrics.md): the same workflow, tools, replies,",
        "decisions and fault, run as plain calls with no journal; any failure restarts it",
        "from the first step, up to the largest retry.attempts of its calls; every model",
        "call, person and effect again, effects without keys; a late person late each time.",
        "",
        "on the same runs and faults; cost per",
        "successful workflow with people's time and side effects performed twice priced",
        f"(mnlang/bench/duplicate_costs.json, {duplicate_costs(Decimal(0)).date}), with",
        "people's time and duplicates unpriced, and without people's time:",
        f"(models, compute and people priced by {_price_table()})",
    ]
    naive_rows = []
    for m in classes:
        n = result.naive.get(m.workflow_class, NaiveSummary())
        naive_rows.append(
            (
                m.workflow_class,
                [
                    _cell(m.completion),
                    _cell(n.completion),
                    money(priced_per_success(result, m)),
                    money(n.cost_per_successful_priced),
                    _percent(lower_by(priced_per_success(result, m), n.cost_per_successful_priced)),
                    money(m.cost_per_successful),
                    money(n.cost_per_successful),
                    _percent(lower_by(m.cost_per_successful, n.cost_per_successful)),
                    money(m.cost_per_successful_without_people),
                    money(n.cost_per_successful_without_people),
                    _percent(
                        lower_by(
                            m.cost_per_successful_without_people,
                            n.cost_per_successful_without_people,
                        )
                    ),
                    str(m.duplicate_commits),
                    str(n.duplicates),
                    f"{n.attempts / n.chains:.2f}" if n.chains else "n/a",
                ],
            )
        )
    lines += _table(
        naive_rows,
        [
            "completion",
            "naive completion",
            "priced",
            "naive",
            "lower by",
            "unpriced",
            "naive",
            "lower by",
            "w/o people",
            "naive",
            "lower by",
            "duplicates",
            "naive duplicates",
            "naive attempts/run",
        ],
    )
    ours_ok = sum(1 for d in result.differences if d.runtime == "as expected")
    lines += [
        "",
        f"where the two outcomes differ ({ours_ok} as expected only for the runtime, "
        f"{len(result.differences) - ours_ok} only for the naive chain):",
    ]
    lines += difference_lines(result)
    lines += ["", "cost per attempted run (every run, successful or not), duplicates priced:"]
    attempted_rows = []
    for m in classes:
        n = result.naive.get(m.workflow_class, NaiveSummary())
        extra = result.duplicate_cost.get(m.workflow_class, Decimal(0))
        attempted_rows.append(
            (
                m.workflow_class,
                [
                    money(per_success(m.cost.total + extra, m.runs)),
                    money(per_success(n.cost.total + n.duplicate_cost, n.chains)),
                    money(per_success(m.cost.without_people, m.runs)),
                    money(per_success(n.cost.without_people, n.chains)),
                ],
            )
        )
    lines += _table(attempted_rows, ["cost/run", "naive", "w/o people", "naive w/o people"])
    lines += ["", "by kind of run (all classes):"]
    kinds = {
        "clean": "no fault",
        "targeted": "one fault each",
        "chaos": f"chaos at {result.chaos_rate:g}",
    }
    phase_rows = []
    for phase, (ours, theirs) in result.phases.items():
        ours_per, naive_per = ours.cost_per_successful, theirs.cost_per_successful
        ours_machine = ours.cost_per_successful_without_people
        naive_machine = theirs.cost_per_successful_without_people
        phase_rows.append(
            (
                kinds.get(phase, phase),
                [
                    str(ours.runs),
                    _cell(ours.completion),
                    _cell(theirs.completion),
                    _cell(ours.fault_recovery),
                    money(ours_per),
                    money(naive_per),
                    _percent(lower_by(ours_per, naive_per)),
                    money(ours_machine),
                    money(naive_machine),
                    _percent(lower_by(ours_machine, naive_machine)),
                ],
            )
        )
    if phase_rows:
        lines += _table(
            phase_rows,
            [
                "runs",
                "completion",
                "naive completion",
                "fault recovery",
                "cost/success",
                "naive",
                "lower by",
                "w/o people",
                "naive",
                "lower by",
            ],
        )
    total = result.report.total
    naive_all = result.naive.get(ALL_CLASSES, NaiveSummary())
    lines += ["", "cost per successful workflow by part, all classes (total cost / successes):"]
    lines += cost_table(total.cost, total.successful, naive_all.cost, naive_all.successful)
    lines += ["", "fault recovery by fault class:"]
    for fault in FAULT_CLASSES:
        ratio = _fault_ratio(result, fault)
        lines.append(f"  {fault:<18} {_cell(ratio)}")
    if result.storms:
        lines += ["", "retry storms (runs failing at once), per tool, as the tool saw the calls:"]
        lines += storm_lines(result)
    lines += [
        "",
        f"integrity: {total.duplicate_commits} effect keys committed twice, "
        f"{result.duplicates} side effects performed twice "
        f"({money(result.duplicate_cost.get(ALL_CLASSES, Decimal(0)), 2)}; the naive chain: "
        f"{naive_all.duplicates}, {money(naive_all.duplicate_cost, 2)}), {total.journal_gaps} journal "
        f"entries missing; {result.redeliveries} repeated effect calls recognised by their "
        "key and not performed again",
    ]
    if result.side_effects_recorded == 0:
        lines.append(
            "  no side effect was recorded by a receiving system: the suite's tools do not "
            "call mnlang.bench.world.perform, so effects performed twice are not measured "
            "(docs/metrics.md, your own suite)"
        )
    lines += ["", "targets:"]
    for t in targets(result):
        mark = "met" if t.met else "NOT MET"
        lines.append(f"  {t.name:<36} {t.wanted:<54} {t.measured}  [{mark}]")
    lines += ["", f"seed runtime, for comparison: {SEED_FIGURES}"]
    if result.errors:
        lines += ["", f"{len(result.errors)} runs could not be driven:"]
        lines += [f"  {e}" for e in result.errors[:20]]
    lines += ["", f"journal: {result.db} (`mnc metrics --db {result.db}` reads the same figures)"]
    return lines


def cost_table(ours: Cost, ours_successful: int, theirs: Cost, theirs_successful: int) -> list[str]:
    """Each cost part per successful workflow, the runtime's beside the naive chain's."""
    parts = [*Cost.PARTS, "repair by people", "without people", "total"]

    def amounts(cost: Cost, successful: int) -> list[Decimal | None]:
        values = [getattr(cost, part) for part in Cost.PARTS]
        values += [cost.repair_people, cost.without_people, cost.total]
        return [per_success(v, successful) for v in values]

    mine, naive = amounts(ours, ours_successful), amounts(theirs, theirs_successful)
    rows = [
        (
            f"runtime ({money(ours.total, 2)} / {ours_successful})",
            [money(v) for v in mine],
        ),
        (
            f"naive ({money(theirs.total, 2)} / {theirs_successful})",
            [money(v) for v in naive],
        ),
        ("lower by", [_percent(lower_by(a, b)) for a, b in zip(mine, naive, strict=True)]),
    ]
    return _table(rows, [part.replace("_", " ") for part in parts])


def storm_lines(result: BenchResult) -> list[str]:
    """Each tool's storms: runs, calls per run, and the highest peaks against its limit."""
    by_tool: dict[str, list[StormResult]] = {}
    for storm in result.storms:
        by_tool.setdefault(storm.tool, []).append(storm)
    lines = []
    for tool, storms in sorted(by_tool.items()):
        runs = sum(s.runs for s in storms)
        calls = sum(s.calls for s in storms)
        rate = max(s.peak_per_second for s in storms)
        slots = max(s.peak_concurrent for s in storms)
        limit = storms[0]
        rate_limit = "none" if limit.limit_per_second is None else f"{limit.limit_per_second:g}/s"
        slot_limit = "none" if limit.limit_concurrent is None else str(limit.limit_concurrent)
        held = sum(s.held for s in storms)
        lines.append(
            f"  `{tool}`: {len(storms)} storms, {runs} runs, {calls / runs:.1f} calls a run; "
            f"peak {rate}/s against {rate_limit}, {slots} at once against {slot_limit}; "
            f"held {held}/{len(storms)}"
        )
    return lines


def _fault_ratio(result: BenchResult, fault: str) -> Ratio:
    total = Ratio(0, 0)
    for m in result.report.classes:
        total += m.recovery_by_fault.get(fault, Ratio(0, 0))
    return total


def bench_json(result: BenchResult) -> dict[str, Any]:
    def naive(n: NaiveSummary) -> dict[str, Any]:
        per = n.cost_per_successful
        machine = n.cost_per_successful_without_people
        return {
            "chains": n.chains,
            "successful": n.successful,
            "workflow_completion_rate": n.completion.to_json(),
            "attempts": n.attempts,
            "model_calls": n.model_calls,
            "cost": n.cost.to_json(),
            "cost_per_successful_workflow": None if per is None else str(per),
            "cost_per_successful_workflow_without_people": (
                None if machine is None else str(machine)
            ),
            "duplicate_effects": n.duplicates,
            "duplicate_cost": str(n.duplicate_cost),
            "cost_per_successful_workflow_duplicates_priced": (
                None if n.cost_per_successful_priced is None else str(n.cost_per_successful_priced)
            ),
        }

    lower = saving(result)
    return {
        "path": result.path,
        "journal": result.db,
        "seed": result.seed,
        "repeat": result.repeat,
        "fault_classes": result.fault_classes,
        "runs": result.runs,
        "seconds": round(result.seconds, 3),
        "live_provider": result.live,
        "model_options": result.model_options,
        "faults_injected": dict(result.injected),
        "metrics": result.report.to_json(),
        "naive": {k: naive(v) for k, v in result.naive.items()},
        "cost_saving_vs_naive": lower,
        "cost_saving_vs_naive_without_people": saving(result, people=False),
        "chaos_rate": result.chaos_rate,
        "phases": {
            phase: {"runtime": ours.to_json(), "naive": naive(theirs)}
            for phase, (ours, theirs) in result.phases.items()
        },
        "storms": [
            {
                "case": s.case,
                "tool": s.tool,
                "runs": s.runs,
                "calls": s.calls,
                "peak_per_second": s.peak_per_second,
                "limit_per_second": s.limit_per_second,
                "peak_concurrent": s.peak_concurrent,
                "limit_concurrent": s.limit_concurrent,
                "held": s.held,
            }
            for s in result.storms
        ],
        "integrity": {
            "duplicate_effect_commits": result.report.total.duplicate_commits,
            "side_effects_performed_twice": result.duplicates,
            "duplicate_cost": {k: str(v) for k, v in result.duplicate_cost.items()},
            "journal_gaps": result.report.total.journal_gaps,
            "redeliveries": result.redeliveries,
        },
        "targets": [
            {"name": t.name, "wanted": t.wanted, "measured": t.measured, "met": t.met}
            for t in targets(result)
        ],
        "differences": [
            {
                "run_id": d.run_id,
                "class": d.workflow_class,
                "fault": d.fault,
                "runtime": d.runtime,
                "naive": d.naive,
                "why": d.why,
            }
            for d in result.differences
        ],
        "errors": result.errors,
    }
