"""The metrics page's figures: the five metrics per workflow class over a period.

The page asks a `MetricsSource`, any callable `(store, period) -> list[ClassMetrics]`.
`JournalMetrics` is the one used until the metrics module of `mnc metrics` exists; it
computes from the journal what the journal holds today and says, in
`ClassMetrics.notes`, where its formula is not yet the final one (those figures are
marked "interim" on the page) and why a figure is missing (`None`):

- completion: completed runs / runs that ended in the period (final formula);
- fault recovery: runs with a journaled `fault_injected` event that completed / all of
  them (interim: the final formula also checks the scenario's expected output and that
  no effect key was committed twice); per error kind, failed calls that a retry
  recovered / calls that failed an attempt;
- tool selection, tool parameters, trajectory match, unsafe actions: `None` (they need
  scenario expectations);
- cost: model, tool and repair (compensation) cost from the journal; compute and human
  review are `None` until the price file has their rates;
- human intervention: runs that opened a checkpoint / runs, runs that needed a repair /
  runs, the median time from a checkpoint opening to a person's decision; overrides are
  `None` (no formula yet).
"""

from __future__ import annotations

import statistics
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from mnlang.stores.base import TERMINAL_STATUSES, Event, Json, RunRecord, Store

PERIODS: dict[str, float | None] = {
    "1d": 86400.0,
    "7d": 7 * 86400.0,
    "30d": 30 * 86400.0,
    "all": None,
}
RUN_CAP = 5000
"""Runs read per class and period by `JournalMetrics` (the newest ones)."""


@dataclass(frozen=True)
class Period:
    since: float | None
    """Start (seconds since the epoch, store clock); `None`: since the first run."""
    until: float
    label: str


def period_of(label: str, now: float) -> Period:
    """A period ending now, named as in `PERIODS` (an unknown name means `7d`)."""
    if label not in PERIODS:
        label = "7d"
    span = PERIODS[label]
    return Period(None if span is None else now - span, now, label)


@dataclass(frozen=True)
class Ratio:
    numerator: int
    denominator: int

    @property
    def value(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None

    def to_json(self) -> dict[str, Json]:
        return {"numerator": self.numerator, "denominator": self.denominator, "value": self.value}


@dataclass
class CostParts:
    model: Decimal = Decimal(0)
    tool: Decimal = Decimal(0)
    repair: Decimal = Decimal(0)
    compute: Decimal | None = None
    human_review: Decimal | None = None

    @property
    def total(self) -> Decimal:
        parts = (self.model, self.tool, self.repair, self.compute, self.human_review)
        return sum((p for p in parts if p is not None), Decimal(0))

    def to_json(self) -> dict[str, Json]:
        return {k: None if v is None else str(v) for k, v in asdict(self).items()}


@dataclass
class DayCounts:
    day: str
    """`YYYY-MM-DD` (UTC) of the runs' start."""
    completed: int = 0
    failed: int = 0
    cancelled: int = 0


@dataclass
class ClassMetrics:
    """The five metrics of one workflow class; `None` where not computed."""

    workflow_class: str
    runs: int
    """Runs started in the period (ended or not)."""
    completion: Ratio
    fault_recovery: Ratio | None
    recovery_by_fault: dict[str, Ratio]
    """Per injected fault class (from `fault_injected` events)."""
    recovery_by_error_kind: dict[str, Ratio]
    """Per error kind: calls that failed an attempt and then succeeded / those calls."""
    cost: CostParts
    cost_per_successful: Decimal | None
    planned_checkpoints: Ratio
    unplanned_repairs: Ratio
    approval_seconds: float | None
    """Median time from a checkpoint opening to a person's decision."""
    human_overrides: Ratio | None = None
    tool_selection_accuracy: Ratio | None = None
    tool_parameter_accuracy: Ratio | None = None
    trajectory_match: Ratio | None = None
    unsafe_actions: Ratio | None = None
    daily: list[DayCounts] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)
    """Figure name to how it is computed (when interim) or why it is missing."""

    def to_json(self) -> dict[str, Json]:
        def ratio(r: Ratio | None) -> Json:
            return None if r is None else r.to_json()

        return {
            "class": self.workflow_class,
            "runs": self.runs,
            "workflow_completion_rate": ratio(self.completion),
            "fault_recovery_rate": ratio(self.fault_recovery),
            "recovery_by_fault": {k: v.to_json() for k, v in self.recovery_by_fault.items()},
            "recovery_by_error_kind": {
                k: v.to_json() for k, v in self.recovery_by_error_kind.items()
            },
            "tool_selection_accuracy": ratio(self.tool_selection_accuracy),
            "tool_parameter_accuracy": ratio(self.tool_parameter_accuracy),
            "trajectory_match_rate": ratio(self.trajectory_match),
            "unsafe_action_rate": ratio(self.unsafe_actions),
            "cost": self.cost.to_json(),
            "cost_per_successful_workflow": (
                None if self.cost_per_successful is None else str(self.cost_per_successful)
            ),
            "planned_checkpoint_rate": ratio(self.planned_checkpoints),
            "unplanned_repair_rate": ratio(self.unplanned_repairs),
            "human_override_rate": ratio(self.human_overrides),
            "approval_completion_seconds": self.approval_seconds,
            "daily": [asdict(d) for d in self.daily],
            "notes": self.notes,
        }


MetricsSource = Callable[[Store, Period], list[ClassMetrics]]


# ---- the interim source: what the journal holds today ----------------------------------

_NOTES = {
    "fault_recovery_rate": "interim: runs with an injected fault that completed, without "
    "checking the scenario's expected output or duplicate effect keys",
    "recovery_by_error_kind": "interim: calls recovered by a retry, per error kind",
    "tool_selection_accuracy": "needs scenario expectations (mnc metrics)",
    "tool_parameter_accuracy": "needs scenario expectations (mnc metrics)",
    "trajectory_match_rate": "needs scenario expectations (mnc metrics)",
    "unsafe_action_rate": "needs the approval and agent-tool audit (mnc metrics)",
    "human_override_rate": "no formula yet (mnc metrics)",
    "cost.compute": "needs a per-CPU-second rate in the price file",
    "cost.human_review": "needs a per-human-minute rate in the price file",
}


@dataclass
class _RunFacts:
    """What one run's journal contributes to the metrics."""

    cost: CostParts
    faults: set[str]
    checkpoint: bool
    repair: bool
    approval_seconds: list[float]
    failed_calls: dict[str, tuple[int, int]]
    """Per error kind: (calls that failed an attempt, those of them that then succeeded)."""


def _money(data: dict[str, Json]) -> Decimal:
    try:
        return Decimal(str(data.get("cost") or 0))
    except InvalidOperation:
        return Decimal(0)


def run_facts(events: Iterable[Event]) -> _RunFacts:
    facts = _RunFacts(CostParts(), set(), False, False, [], {})
    opened: dict[tuple[str | None, str], float] = {}
    failing: dict[tuple[str | None, str], set[str]] = {}
    recovered: dict[tuple[str | None, str], bool] = {}
    for event in events:
        data = event.data if isinstance(event.data, dict) else {}
        where = (event.state, event.branch)
        if event.kind == "model_reply":  # each reply is paid once; `agent` repeats the sum
            facts.cost.model += _money(data)
        elif event.kind in ("tool", "effect"):
            facts.cost.tool += _money(data)
        elif event.kind == "compensated":
            facts.cost.repair += _money(data)
        elif event.kind == "fault_injected":
            facts.faults.add(str(data.get("fault") or data.get("kind") or "unknown"))
        elif event.kind == "checkpoint":
            facts.checkpoint = True
            opened[where] = event.at
        elif event.kind == "repair_opened":
            facts.repair = True
        elif event.kind == "decided" and where in opened:
            if data.get("by") not in (None, "", "timeout"):
                facts.approval_seconds.append(event.at - opened[where])
            del opened[where]
        if event.kind in ("retry", "attempt_failed", "call_failed"):
            failing.setdefault(where, set()).add(str(data.get("kind")))
            recovered[where] = False
        elif event.kind in ("tool", "effect", "agent") and where in failing:
            recovered[where] = True
    for where, kinds in failing.items():
        for kind in kinds:
            calls, ok = facts.failed_calls.get(kind, (0, 0))
            facts.failed_calls[kind] = (calls + 1, ok + int(recovered[where]))
    return facts


class JournalMetrics:
    """The interim `MetricsSource`; it keeps each ended run's facts, which never change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._facts: dict[str, _RunFacts] = {}

    def facts(self, store: Store, run: RunRecord) -> _RunFacts:
        with self._lock:
            found = self._facts.get(run.run_id)
        if found is not None:
            return found
        facts = run_facts(store.read_journal(run.run_id))
        if run.status in TERMINAL_STATUSES:
            with self._lock:
                self._facts[run.run_id] = facts
        return facts

    def __call__(self, store: Store, period: Period) -> list[ClassMetrics]:
        classes = sorted({row.workflow_class for row in store.run_counts()})
        out: list[ClassMetrics] = []
        for workflow_class in classes:
            runs = store.list_runs(workflow_class=workflow_class, limit=RUN_CAP)
            notes = dict(_NOTES)
            if len(runs) == RUN_CAP and (
                period.since is None or runs[-1].created_at >= period.since
            ):
                notes["runs"] = f"the newest {RUN_CAP} runs of the period only"
            chosen = [
                r
                for r in runs
                if (period.since is None or r.created_at >= period.since)
                and r.created_at <= period.until
            ]
            if chosen:
                out.append(self._class_metrics(store, workflow_class, chosen, notes))
        return out

    def _class_metrics(
        self, store: Store, workflow_class: str, runs: list[RunRecord], notes: dict[str, str]
    ) -> ClassMetrics:
        completed = sum(1 for r in runs if r.status == "completed")
        ended = sum(1 for r in runs if r.status in TERMINAL_STATUSES)
        cost = CostParts()
        faulted: dict[str, list[bool]] = {}
        error_kinds: dict[str, tuple[int, int]] = {}
        approvals: list[float] = []
        checkpoints = repairs = 0
        days: dict[str, DayCounts] = {}
        for run in runs:
            facts = self.facts(store, run)
            cost.model += facts.cost.model
            cost.tool += facts.cost.tool
            cost.repair += facts.cost.repair
            for fault in facts.faults:
                faulted.setdefault(fault, []).append(run.status == "completed")
            for kind, (calls, ok) in facts.failed_calls.items():
                before = error_kinds.get(kind, (0, 0))
                error_kinds[kind] = (before[0] + calls, before[1] + ok)
            approvals += facts.approval_seconds
            checkpoints += facts.checkpoint
            repairs += facts.repair
            if run.status in TERMINAL_STATUSES:
                day = datetime.fromtimestamp(run.created_at, tz=UTC).strftime("%Y-%m-%d")
                counts = days.setdefault(day, DayCounts(day))
                setattr(counts, run.status, getattr(counts, run.status) + 1)
        with_faults = [ok for oks in faulted.values() for ok in oks]
        return ClassMetrics(
            workflow_class=workflow_class,
            runs=len(runs),
            completion=Ratio(completed, ended),
            fault_recovery=Ratio(sum(with_faults), len(with_faults)) if with_faults else None,
            recovery_by_fault={k: Ratio(sum(v), len(v)) for k, v in sorted(faulted.items())},
            recovery_by_error_kind={
                k: Ratio(ok, calls) for k, (calls, ok) in sorted(error_kinds.items())
            },
            cost=cost,
            cost_per_successful=(cost.total / completed).quantize(Decimal("0.0001"))
            if completed
            else None,
            planned_checkpoints=Ratio(checkpoints, len(runs)),
            unplanned_repairs=Ratio(repairs, len(runs)),
            approval_seconds=statistics.median(approvals) if approvals else None,
            daily=[days[d] for d in sorted(days)],
            notes=notes,
        )
