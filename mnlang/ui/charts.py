"""Small charts drawn as inline SVG on the server: no chart library, no script.

Every text is escaped; colours come from the stylesheet's classes (`c-done`,
`c-failed`, ...), so the charts follow the page's palette.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from mnlang.ui.metrics import ClassMetrics

_ROW = 22
_LABEL_W = 150
_BAR_W = 320
_VALUE_W = 110


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


def metric_charts(classes: list[ClassMetrics]) -> dict[str, Markup]:
    """The metrics page's charts, drawn from the per-class figures."""
    rows_completion = [
        Row(
            c.workflow_class or "(no class)",
            [
                Segment(c.completion.numerator, "c-done", "completed"),
                Segment(
                    c.completion.denominator - c.completion.numerator, "c-failed", "not completed"
                ),
            ],
            _ratio_text(c.completion.numerator, c.completion.denominator),
        )
        for c in classes
    ]
    recovery: list[Row] = []
    for c in classes:
        by_fault = c.recovery_by_fault or c.recovery_by_error_kind
        for kind, ratio in by_fault.items():
            recovery.append(
                Row(
                    f"{c.workflow_class or '-'}: {kind}",
                    [
                        Segment(ratio.numerator, "c-done", "recovered"),
                        Segment(ratio.denominator - ratio.numerator, "c-failed", "not recovered"),
                    ],
                    _ratio_text(ratio.numerator, ratio.denominator),
                )
            )
    cost_rows = [
        Row(
            c.workflow_class or "(no class)",
            [
                Segment(float(c.cost.model), "c-model", f"model ${c.cost.model}"),
                Segment(float(c.cost.tool), "c-tool", f"tools ${c.cost.tool}"),
                Segment(float(c.cost.repair), "c-repair", f"repair ${c.cost.repair}"),
            ],
            f"${c.cost.total}",
        )
        for c in classes
    ]
    intervention: list[Row] = []
    for c in classes:
        for label, ratio, css in (
            ("checkpoints", c.planned_checkpoints, "c-waiting"),
            ("repairs", c.unplanned_repairs, "c-failed"),
        ):
            intervention.append(
                Row(
                    f"{c.workflow_class or '-'}: {label}",
                    [Segment(ratio.numerator, css, label)],
                    _ratio_text(ratio.numerator, ratio.denominator),
                )
            )
    out = {
        "completion": bar_rows(rows_completion, "completion per class"),
        "recovery": bar_rows(recovery, "recovery"),
        "cost": bar_rows(cost_rows, "cost per class"),
        "intervention": bar_rows(
            intervention, "human intervention", scale=max((c.runs for c in classes), default=1)
        ),
    }
    for c in classes:
        days = [
            (
                d.day,
                [
                    Segment(d.completed, "c-done", f"{d.completed} completed"),
                    Segment(d.failed, "c-failed", f"{d.failed} failed"),
                    Segment(d.cancelled, "c-cancelled", f"{d.cancelled} cancelled"),
                ],
            )
            for d in c.daily
        ]
        out["daily:" + c.workflow_class] = columns(days, "runs per day")
    return out


def _ratio_text(numerator: int, denominator: int) -> str:
    if not denominator:
        return "-"
    return f"{100 * numerator / denominator:.1f}% ({numerator}/{denominator})"
