"""The bench's HTML report: one file, no scripts, charts drawn as inline SVG.

Charts: the rates per class (completion, fault recovery, tool selection and parameter
accuracy), the cost per successful workflow per class broken into its parts beside the
naive chain's, and fault recovery per fault class. Every chart has its figures in a
table next to it, numerators and denominators included.
"""

from __future__ import annotations

from html import escape
from typing import Final

from mnlang.bench.report import SEED_FIGURES, bench_lines, targets
from mnlang.bench.runner import BenchResult, NaiveSummary
from mnlang.metrics.compute import ClassMetrics, Ratio
from mnlang.metrics.facts import Cost
from mnlang.metrics.render import money
from mnlang.runtime.faults import FAULT_CLASSES

COLOURS: Final = ("#3867d6", "#20bf6b", "#f7b731", "#eb3b5a", "#8854d0", "#4b6584")
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


def _legend(names: list[str]) -> str:
    items = "".join(
        f'<span><i style="background:{COLOURS[i % len(COLOURS)]}"></i>{escape(n)}</span>'
        for i, n in enumerate(names)
    )
    return f'<p class="legend">{items}</p>'


def grouped_bars(groups: list[str], series: list[tuple[str, list[float | None]]]) -> str:
    """Bars from 0 to 100% per group, one colour per series."""
    width, height, top, left = 900, 260, 20, 50
    plot = height - top - 40
    group_w = (width - left) / max(1, len(groups))
    bar_w = group_w * 0.8 / max(1, len(series))
    parts = [f'<svg width="{width}" height="{height}" role="img">']
    for pct in (0, 25, 50, 75, 100):
        y = top + plot * (1 - pct / 100)
        parts.append(f'<line x1="{left}" x2="{width}" y1="{y}" y2="{y}" stroke="#eee"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4}" text-anchor="end">{pct}%</text>')
    for g, group in enumerate(groups):
        x0 = left + g * group_w + group_w * 0.1
        for s, (_, values) in enumerate(series):
            value = values[g]
            if value is None:
                continue
            h = plot * value
            x = x0 + s * bar_w
            colour = COLOURS[s % len(COLOURS)]
            parts.append(
                f'<rect x="{x:.1f}" y="{top + plot - h:.1f}" width="{bar_w - 2:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{value:.1%}</title></rect>'
            )
        parts.append(
            f'<text x="{x0 + group_w * 0.4:.1f}" y="{height - 15}" text-anchor="middle">'
            f"{escape(group)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts) + _legend([name for name, _ in series])


def cost_bars(rows: list[tuple[str, Cost, float | None, float | None]]) -> str:
    """Per row: the cost per success split into its parts, and the naive chain's."""
    width, row_h, left = 900, 30, 190
    most = max([r[3] or 0.0 for r in rows] + [r[2] or 0.0 for r in rows] + [1e-9])
    scale = (width - left - 90) / most
    height = row_h * 2 * len(rows) + 10
    parts = [f'<svg width="{width}" height="{height}" role="img">']
    y = 5
    for name, cost, per_success, naive in rows:
        total = float(cost.total) or 1.0
        x = float(left)
        parts.append(f'<text x="{left - 8}" y="{y + 16}" text-anchor="end">{escape(name)}</text>')
        for i, part in enumerate(Cost.PARTS):
            share = float(getattr(cost, part)) / total * (per_success or 0.0)
            w = share * scale
            if w > 0:
                parts.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row_h - 8}" '
                    f'fill="{COLOURS[i]}"><title>{part}: ${share:.4f}</title></rect>'
                )
                x += w
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 16}">${per_success or 0:.4f}</text>')
        y += row_h
        parts.append(f'<text x="{left - 8}" y="{y + 16}" text-anchor="end">naive chain</text>')
        w = (naive or 0.0) * scale
        parts.append(
            f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{row_h - 8}" fill="#a5b1c2">'
            f"<title>naive: ${naive or 0:.4f}</title></rect>"
        )
        parts.append(f'<text x="{left + w + 6:.1f}" y="{y + 16}">${naive or 0:.4f}</text>')
        y += row_h
    parts.append("</svg>")
    names = [p.replace("_", " ") for p in Cost.PARTS]
    return "".join(parts) + _legend(names)


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
    )
    rate_table = _rows_table(
        ["class", "completion", "fault recovery", "tool selection", "parameters", "unsafe"],
        [
            [
                m.workflow_class,
                _ratio(m.completion),
                _ratio(m.fault_recovery),
                _ratio(m.tool_selection),
                _ratio(m.tool_parameters),
                _ratio(m.unsafe_actions),
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
        [f for f, _ in recovery], [("recovered", [r.value for _, r in recovery])]
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
<h2>Cost per successful workflow</h2>{cost_bars(cost_rows)}{cost_table}
<h2>Fault recovery by fault class</h2>{fault_chart}{fault_table}
<h2>Retry storms</h2>{storm_table}
<h2>Full report</h2><pre>{text}</pre>
</body></html>
"""
