"""The charts of the metrics, drawn as inline SVG: no chart library, no script.

One module for every page that draws them: the console's metrics page
(`mnlang.ui.charts`) and the bench's report (`mnlang.bench.html`).
Every text is escaped. The console's charts take their colours from its stylesheet's
classes (`c-done`, `c-failed`, ...), so they follow its palette; the bench's report is
one file with its own palette (`COLOURS`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from markupsafe import Markup, escape

from mnlang.metrics.facts import Cost

_ROW = 22
_LABEL_W = 210
_BAR_W = 320
_VALUE_W = 120


@dataclass(frozen=True)
class Segment:
    value: float
    css: str
    """Class of the segment's colour, e.g. `c-done`; empty when `fill` says it."""
    title: str
    fill: str = ""
    """The segment's colour itself, for a page without the console's stylesheet."""

    def paint(self) -> str:
        return f'class="{escape(self.css)}"' if self.css else f'fill="{escape(self.fill)}"'


@dataclass(frozen=True)
class Row:
    label: str
    segments: Sequence[Segment]
    text: str
    """Shown after the bar (e.g. `95.0% (19/20)`)."""


def svg(width: int, height: int, body: list[str], title: str) -> Markup:
    head = (
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>"
    )
    return Markup(head + "".join(body) + "</svg>")


def _stacked(
    segments: Sequence[Segment], x: float, y: int, unit: float, height: int
) -> tuple[list[str], float]:
    """A horizontal bar stacked from its segments, `unit` pixels wide per unit of value,
    starting at `x`; and where it ends."""
    body: list[str] = []
    for segment in segments:
        w = unit * max(segment.value, 0)
        if w > 0:
            body.append(
                f'<rect {segment.paint()} x="{x:.1f}" y="{y}" width="{w:.1f}" '
                f'height="{height}"><title>{escape(segment.title)}</title></rect>'
            )
            x += w
    return body, x


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
        body += _stacked(row.segments, _LABEL_W, y + 4, _BAR_W / full, 14)[0]
        body.append(f'<text x="{_LABEL_W + _BAR_W + 6}" y="{y + 15}">{escape(row.text)}</text>')
    return svg(width, max(len(rows), 1) * _ROW + 4, body, title)


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
    return svg(width, height, body, title)


# ---- the bench report's charts: one palette, a legend below each -----------------------

COLOURS: Final = ("#3867d6", "#20bf6b", "#f7b731", "#eb3b5a", "#8854d0", "#4b6584")


def _legend(names: list[str]) -> Markup:
    items = "".join(
        f'<span><i style="background:{COLOURS[i % len(COLOURS)]}"></i>{escape(n)}</span>'
        for i, n in enumerate(names)
    )
    return Markup(f'<p class="legend">{items}</p>')


def grouped_bars(
    groups: list[str], series: list[tuple[str, list[float | None]]], title: str
) -> Markup:
    """Bars from 0 to 100% per group, one colour per series."""
    width, height, top, left = 900, 260, 20, 50
    plot = height - top - 40
    group_w = (width - left) / max(1, len(groups))
    bar_w = group_w * 0.8 / max(1, len(series))
    parts: list[str] = []
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
    return svg(width, height, parts, title) + _legend([name for name, _ in series])


def cost_bars(rows: list[tuple[str, Cost, float | None, float | None]], title: str) -> Markup:
    """Per row: the cost per success split into its parts, and the naive chain's."""
    width, row_h, left = 900, 30, 190
    most = max([r[3] or 0.0 for r in rows] + [r[2] or 0.0 for r in rows] + [1e-9])
    scale = (width - left - 90) / most
    height = row_h * 2 * len(rows) + 10
    parts: list[str] = []
    y = 5
    for name, cost, per_success, naive in rows:
        total = float(cost.total) or 1.0
        parts.append(f'<text x="{left - 8}" y="{y + 16}" text-anchor="end">{escape(name)}</text>')
        shares = [float(getattr(cost, part)) / total * (per_success or 0.0) for part in Cost.PARTS]
        segments = [
            Segment(share, "", f"{part}: ${share:.4f}", COLOURS[i])
            for i, (part, share) in enumerate(zip(Cost.PARTS, shares))
        ]
        bar, x = _stacked(segments, left, y, scale, row_h - 8)
        parts += bar
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
    names = [p.replace("_", " ") for p in Cost.PARTS]
    return svg(width, height, parts, title) + _legend(names)
