"""The bench's HTML report: one file, no scripts, charts drawn as inline SVG
(`mnlang.metrics.charts`, which the console's metrics page draws with too).

Charts: the rates per class (completion, fault recovery, tool selection and parameter
accuracy), the cost per successful workflow per class broken into its parts beside the
naive chain's, and fault recovery per fault class. Every chart has its figures in a
table next to it, numerators and denominators included.
"""

from __future__ import annotations

from html import escape
from typing import Final

from mnlang.bench.report import SEED_FIGURES, bench_lines, priced_per_success, targets
from mnlang.bench.runner import BenchResult, NaiveSummary
from mnlang.metrics.charts import cost_bars, grouped_bars
from mnlang.metrics.compute import ClassMetrics, Ratio
from mnlang.metrics.render import money
from mnlang.runtime.faults import FAULT_CLASSES

_STYLE: Final = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; margin: .6em 0; }
td, th { border-bottom: 1px solid #ddd; padding: .25em .7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.met { color: #1b7f3b; font-weight: 600; } .missed { color: #b3261e; font-weight: 600; }
svg text { font: 12px system-ui, sans-serif; fill: #333; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 12px; }
.legend span { display: inline-block; margin-right: 1.2em; }
.legend i { display: inline-block; width: .9em; height: .9em; margin-right: .3em; vertical-align: -1px; }
"""


def _ratio(r: Ratio) -> str:
    return f"{r.percent()} ({r.numerator}/{r.denominator})"


def _rows_table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def bench_html(result: BenchResult) -> str:
    classes: list[ClassMetrics] = [*result.report.classes, result.report.total]
    names = [m.workflow_class for m in classes]
    rates = grouped_bars(
        names,
        [
            ("workflow completion", [m.completion.value for m in classes]),
            ("fault recovery", [m.fault_recovery.value for m in classes]),
            ("tool selection", [m.tool_selection.value for m in classes]),
            ("tool parameters", [m.tool_parameters.value for m in classes]),
        ],
        "rates per class",
    )
    rate_table = _rows_table(
        [
            "class",
            "completion",
            "fault recovery",
            "tool selection",
            "parameters",
            "unsafe",
            "unplanned repairs",
            "reconciled outcomes",
            "model tokens per run",
        ],
        [
            [
                m.workflow_class,
                _ratio(m.completion),
                _ratio(m.fault_recovery),
                _ratio(m.tool_selection),
                _ratio(m.tool_parameters),
                _ratio(m.unsafe_actions),
                _ratio(m.unplanned_repairs),
                str(m.reconciled),
                "n/a" if m.tokens_per_run is None else f"{m.tokens_per_run:,.0f}",
            ]
            for m in classes
        ],
    )
    cost_rows = []
    for m in classes:
        naive = result.naive.get(m.workflow_class, NaiveSummary()).cost_per_successful
        per = m.cost_per_successful
        cost_rows.append(
            (
                m.workflow_class,
                m.cost,
                None if per is None else float(per),
                None if naive is None else float(naive),
            )
        )
    cost_table = _rows_table(
        [
            "class",
            "cost per success, duplicates priced",
            "naive, duplicates priced",
            "cost per success",
            "total",
            "successes",
            "naive cost per success",
            "without people's time",
            "naive without people's time",
        ],
        [
            [
                m.workflow_class,
                money(priced_per_success(result, m)),
                money(
                    result.naive.get(m.workflow_class, NaiveSummary()).cost_per_successful_priced
                ),
                money(m.cost_per_successful),
                money(m.cost.total),
                str(m.successful),
                money(result.naive.get(m.workflow_class, NaiveSummary()).cost_per_successful),
                money(m.cost_per_successful_without_people),
                money(
                    result.naive.get(
                        m.workflow_class, NaiveSummary()
                    ).cost_per_successful_without_people
                ),
            ]
            for m in classes
        ],
    )
    recovery = []
    for fault in FAULT_CLASSES:
        total = Ratio(0, 0)
        for m in result.report.classes:
            total += m.recovery_by_fault.get(fault, Ratio(0, 0))
        recovery.append((fault, total))
    fault_chart = grouped_bars(
        [f for f, _ in recovery],
        [("recovered", [r.value for _, r in recovery])],
        "fault recovery by fault class",
    )
    fault_table = _rows_table(["fault class", "recovered"], [[f, _ratio(r)] for f, r in recovery])
    storm_table = _rows_table(
        ["scenario", "tool", "runs", "calls", "peak per second", "limit", "peak at once", "limit"],
        [
            [
                st.case,
                st.tool,
                str(st.runs),
                str(st.calls),
                str(st.peak_per_second),
                "none" if st.limit_per_second is None else f"{st.limit_per_second:g}",
                str(st.peak_concurrent),
                "none" if st.limit_concurrent is None else str(st.limit_concurrent),
            ]
            for st in result.storms
        ],
    )
    difference_table = _rows_table(
        ["run", "class", "fault: stated outcome", "runtime", "naive chain", "why"],
        [
            [d.run_id, d.workflow_class, d.fault, d.runtime, d.naive, d.why]
            for d in result.differences
        ],
    )
    target_rows = "".join(
        f"<tr><td>{escape(t.name)}</td><td>{escape(t.wanted)}</td><td>{escape(t.measured)}</td>"
        f'<td class="{"met" if t.met else "missed"}">{"met" if t.met else "not met"}</td></tr>'
        for t in targets(result)
    )
    text = escape("\n".join(bench_lines(result)))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mnc bench: {escape(result.path)}</title>
<style>{_STYLE}</style></head><body>
<h1>mnc bench: {escape(result.path)}</h1>
<p>Seed {result.seed}, {result.repeat} repetitions, {result.runs} runs,
{sum(result.injected.values())} injected faults, {result.seconds:.0f} seconds.
Formulas and the naive chain's definition: docs/metrics.md.</p>
<h2>Targets</h2>
<table><tr><th>target</th><th>wanted</th><th>measured</th><th></th></tr>{target_rows}</table>
<p>Seed runtime, for comparison: {escape(SEED_FIGURES)}</p>
<h2>Rates per class</h2>{rates}{rate_table}
<h2>Cost per successful workflow</h2>{cost_bars(cost_rows, "cost per successful workflow")}{cost_table}
<h2>Where the runtime's and the naive chain's outcomes differ</h2>
<p>Success is the same on both sides: the run ended as the scenario's <code>expect</code>
says. {len(result.differences)} runs were judged differently.</p>{difference_table}
<h2>Fault recovery by fault class</h2>{fault_chart}{fault_table}
<h2>Retry storms</h2>{storm_table}
<h2>Full report</h2><pre>{text}</pre>
</body></html>
"""
