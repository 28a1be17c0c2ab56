"""The metrics page's data: the metrics report of a period, and its runs per day.

Every figure is `mnlang.metrics.compute_metrics`'s (formulas: docs/metrics.md), the same
as `mnc metrics --since` prints; this module only picks the period, counts the runs per
day for the page's column charts, and keeps the last few views, so that reloading the
page over a journal where no run started or ended reads no journal again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mnlang.metrics import MetricsReport, compute_metrics
from mnlang.metrics.compute import RUN_LIMIT, UNCLASSED
from mnlang.stores.base import TERMINAL_STATUSES, Json, RunCount, Store

PERIODS: dict[str, float | None] = {
    "1d": 86400.0,
    "7d": 7 * 86400.0,
    "30d": 30 * 86400.0,
    "all": None,
}
_STEP = 60.0
"""A period starts on a whole minute, so views computed within a minute are shared."""
_KEEP = 16


@dataclass(frozen=True)
class Period:
    since: float | None
    """Start (seconds since the epoch, store clock); `None`: since the first run."""
    label: str


def period_of(label: str, now: float) -> Period:
    """A period ending now, named as in `PERIODS` (an unknown name means `7d`), starting
    on the minute."""
    if label not in PERIODS:
        label = "7d"
    span = PERIODS[label]
    return Period(None if span is None else (now - span) // _STEP * _STEP, label)


@dataclass
class DayCounts:
    day: str
    """`YYYY-MM-DD` (UTC) of the runs' start."""
    completed: int = 0
    failed: int = 0
    cancelled: int = 0


@dataclass
class MetricsView:
    period: Period
    report: MetricsReport
    daily: dict[str, list[DayCounts]] = field(default_factory=dict)
    """Per class (as the report names it): the runs that ended, by the day they started."""

    @property
    def fault_classes(self) -> list[str]:
        """The fault classes injected into any run of the period."""
        return sorted(self.report.total.recovery_by_fault)

    def to_json(self) -> dict[str, Json]:
        return {"period": self.period.label, **self.report.to_json()}


def runs_per_day(store: Store, since: float | None) -> dict[str, list[DayCounts]]:
    """Top-level runs started since `since` that ended, per class and day, by status (the
    runs the report counts: a child run is part of its parent's)."""
    days: dict[str, dict[str, DayCounts]] = {}
    for run in store.list_runs(limit=RUN_LIMIT):
        if run.parent_run_id is not None or run.status not in TERMINAL_STATUSES:
            continue
        if since is not None and run.created_at < since:
            continue
        day = datetime.fromtimestamp(run.created_at, tz=UTC).strftime("%Y-%m-%d")
        per_day = days.setdefault(run.workflow_class or UNCLASSED, {})
        counts = per_day.setdefault(day, DayCounts(day))
        setattr(counts, run.status, getattr(counts, run.status) + 1)
    return {name: [per_day[d] for d in sorted(per_day)] for name, per_day in days.items()}


class ConsoleMetrics:
    """The metrics views of one store, kept while the runs per status stay the same (an
    ended run's figures never change; runs in flight are in no figure)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._views: OrderedDict[tuple[Period, tuple[RunCount, ...]], MetricsView] = OrderedDict()

    def view(self, store: Store, label: str) -> MetricsView:
        period = period_of(label, store.now())
        key = (period, tuple(store.run_counts()))
        with self._lock:
            found = self._views.get(key)
            if found is not None:
                self._views.move_to_end(key)
                return found
        report = compute_metrics(store, since=period.since)
        view = MetricsView(period, report, runs_per_day(store, period.since))
        with self._lock:
            self._views[key] = view
            while len(self._views) > _KEEP:
                self._views.popitem(last=False)
        return view
