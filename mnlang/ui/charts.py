"""The console's charts: which figures each chart of the metrics page shows.

`mnlang.metrics.charts` draws them (inline SVG, no script, every text escaped); colours
come from the stylesheet's classes (`c-done`, `c-failed`, ...), so the charts follow the
page's palette.
"""

from __future__ import annotations

from markupsafe import Markup

from mnlang.metrics import Ratio
from mnlang.metrics.charts import Row, Segment, bar_rows, columns
from mnlang.metrics.facts import Cost
from mnlang.ui.metrics import MetricsView

# ---- the metrics page's charts ---------------------------------------------------------

COST_PARTS: tuple[tuple[str, str, str], ...] = (
    ("model", "c-model", "model"),
    ("tool", "c-tool", "tools"),
    ("compute", "c-compute", "compute"),
    ("human_review", "c-human", "human review"),
    ("repair", "c-repair", "repair"),
)
"""Each `Cost` part: its attribute, colour class and legend text."""


def _ratio_row(
    label: str, ratio: Ratio, yes: str, no: str, css: str = "c-done", rest: str = "c-failed"
) -> Row:
    """A rate as a full-width bar: its numerator's share in `css`, the rest in `rest`."""
    if not ratio.denominator:
        return Row(label, [], _ratio_text(ratio))
    share = ratio.numerator / ratio.denominator
    missed = ratio.denominator - ratio.numerator
    return Row(
        label,
        [
            Segment(share, css, f"{ratio.numerator} {yes}"),
            Segment(1 - share, rest, f"{missed} {no}"),
        ],
        _ratio_text(ratio),
    )


def _cost_row(label: str, cost: Cost, successful: int) -> Row:
    """Cost per successful workflow, stacked by part."""
    segments = [
        Segment(
            float(getattr(cost, part)) / successful,
            css,
            f"{text} ${getattr(cost, part) / successful:.4f} per success",
        )
        for part, css, text in COST_PARTS
    ]
    return Row(label, segments, f"${cost.total / successful:.4f}")


def metric_charts(view: MetricsView) -> dict[str, Markup]:
    """The metrics page's charts, drawn from the report's per-class figures."""
    classes = view.report.classes
    completion = [
        _ratio_row(c.workflow_class, c.completion, "successful", "not successful") for c in classes
    ]
    recovery = [
        _ratio_row(f"{c.workflow_class}: {fault}", ratio, "recovered", "not recovered")
        for c in classes
        for fault, ratio in sorted(c.recovery_by_fault.items())
    ]
    accuracy = [
        _ratio_row(f"{c.workflow_class}: {name}", ratio, yes, "missed")
        for c in classes
        for name, ratio, yes in (
            ("tool selection", c.tool_selection, "right tools"),
            ("parameters", c.tool_parameters, "right arguments"),
            ("arguments, first try", c.arguments_first_try, "valid at once"),
            ("arguments, after repair", c.arguments_after_repair, "valid after repair"),
            ("trajectory", c.trajectory_match, "runs matched"),
        )
        if ratio.denominator
    ]
    cost = [_cost_row(c.workflow_class, c.cost, c.successful) for c in classes if c.successful]
    intervention = [
        _ratio_row(f"{c.workflow_class}: {label}", ratio, yes, no, css, "c-rest")
        for c in classes
        for label, ratio, yes, no, css in (
            ("a person decided", c.human_intervention, "runs", "without", "c-human"),
            ("checkpoints", c.planned_checkpoints, "runs", "without", "c-running"),
            ("repairs", c.unplanned_repairs, "runs", "without", "c-repair"),
            ("overrides", c.human_overrides, "overridden", "as proposed", "c-failed"),
        )
    ]
    out = {
        "completion": bar_rows(completion, "workflow completion per class", scale=1.0),
        "recovery": bar_rows(recovery, "fault recovery by fault class", scale=1.0),
        "accuracy": bar_rows(accuracy, "tool accuracy per class", scale=1.0),
        "cost": bar_rows(cost, "cost per successful workflow, by part"),
        "intervention": bar_rows(intervention, "human intervention", scale=1.0),
    }
    for name, days in view.daily.items():
        out["daily:" + name] = columns(
            [
                (
                    d.day,
                    [
                        Segment(d.completed, "c-done", f"{d.completed} completed"),
                        Segment(d.failed, "c-failed", f"{d.failed} failed"),
                        Segment(d.cancelled, "c-cancelled", f"{d.cancelled} cancelled"),
                    ],
                )
                for d in days
            ],
            "runs per day",
        )
    return out


def _ratio_text(ratio: Ratio) -> str:
    return "-" if not ratio.denominator else str(ratio)
