"""Small charts drawn as inline SVG on the server: no chart library, no script.

Every text is escaped; colours come from the stylesheet's classes (`c-done`,
`c-failed`, ...), so the charts follow the page's palette.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from mnlang.metrics import Ratio
from mnlang.metrics.facts import Cost
from mnlang.ui.metrics import MetricsView

_ROW = 22
_LABEL_W = 210
_BAR_W = 320
_VALUE_W = 120


@dataclass(frozen=True)
class Segment:
    value: float
    css: str
    """Class of the segment's colour, e.g. `c-done`."""
    title: str


@dataclass(frozen=True)
class Row:
    label: str
    segments: Sequence[Segment]
    text: str
    """Shown after the bar (e.g. `95.0% (19/20)`)."""


def _svg(width: int, height: int, body: list[str], title: str) -> Markup:
    head = (
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>"
    )
    return Markup(head + "".join(body) + "</svg>")


def bar_rows(rows: Sequence[Row], title: str, scale: float | None = None) -> Markup:
    """Horizontal bars, one per row, each stacked from its segments.

    `scale` is the value of a full-width bar (default: the largest row total)."""
    full = scale or max((sum(s.value for s in r.segments) for r in rows), default=0) or 1
    width = _LABEL_W + _BAR_W + _VALUE_W
    body: list[str] = []
    if not rows:
        body.append('<text class="tick" x="6" y="15">nothing to show for this period</text>')
    for i, row in enumerate(rows):
        y = i * _ROW
        body.append(
            f'<text x="{_LABEL_W - 6}" y="{y + 15}" text-anchor="end">{escape(row.label)}</text>'
        )
        body.append(
            f'<rect class="track" x="{_LABEL_W}" y="{y + 4}" width="{_BAR_W}" height="14"/>'
        )
        x = float(_LABEL_W)
        for segment in row.segments:
            w = _BAR_W * max(segment.value, 0) / full
            if w > 0:
                body.append(
                    f'<rect class="{escape(segment.css)}" x="{x:.1f}" y="{y + 4}" '
                    f'width="{w:.1f}" height="14"><title>{escape(segment.title)}</title></rect>'
                )
            x += w
        body.append(f'<text x="{_LABEL_W + _BAR_W + 6}" y="{y + 15}">{escape(row.text)}</text>')
    return _svg(width, max(len(rows), 1) * _ROW + 4, body, title)


def columns(days: Sequence[tuple[str, Sequence[Segment]]], title: str) -> Markup:
    """Stacked columns, one per day, labelled with the day's month and day."""
    height, top, bottom, step = 120, 8, 18, 22
    tallest = max((sum(s.value for s in segs) for _, segs in days), default=0) or 1
    width = max(len(days), 1) * step + 40
    body: list[str] = [
        f'<line class="axis" x1="30" y1="{height - bottom}" x2="{width}" y2="{height - bottom}"/>',
        f'<text x="26" y="{top + 8}" text-anchor="end">{tallest:g}</text>',
    ]
    usable = height - top - bottom
    for i, (day, segments) in enumerate(days):
        x = 34 + i * step
        y = float(height - bottom)
        for segment in segments:
            h = usable * max(segment.value, 0) / tallest
            if h > 0:
                y -= h
                body.append(
                    f'<rect class="{escape(segment.css)}" x="{x}" y="{y:.1f}" width="{step - 6}" '
                    f'height="{h:.1f}"><title>{escape(day)}: {escape(segment.title)}</title></rect>'
                )
        if len(days) <= 14 or i % max(len(days) // 10, 1) == 0:
            body.append(
                f'<text class="tick" x="{x + (step - 6) / 2}" y="{height - 4}" '
                f'text-anchor="middle">{escape(day[5:])}</text>'
            )
    return _svg(width, height, body, title)


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
