"""The metrics of a journal, per workflow class: `compute_metrics(store) -> MetricsReport`.

The formulas are in docs/metrics.md; each ratio keeps its numerator and denominator.
Runs that have not ended (running, waiting) are counted as in flight and left out of
every figure; a child run's cost is added to its top-level run's, and the child is not
counted as a run of its own.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Final

from mnlang.metrics.facts import (
    NO_PROGRAM,
    Cost,
    ProgramFacts,
    Rates,
    RunFacts,
    argument_accuracy,
    run_facts,
)
from mnlang.stores.base import Json, RunRecord, Store

if TYPE_CHECKING:
    from mnlang.ir.model import IRProgram

ALL_CLASSES: Final = "all"
"""The class name of the report's totals."""
UNCLASSED: Final = "(none)"
"""The class shown for runs of a workflow without `class:`."""
DEFAULT_REVIEW_MINUTES: Final = Decimal(2)
"""Human time charged per decision made by a person (docs/metrics.md, "Cost")."""
RUN_LIMIT: Final = 10_000_000


@dataclass(frozen=True, slots=True)
class Ratio:
    numerator: int
    denominator: int

    @property
    def value(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None

    def percent(self, digits: int = 1) -> str:
        value = self.value
        return "n/a" if value is None else f"{value * 100:.{digits}f}%"

    def __str__(self) -> str:
        return f"{self.percent()} ({self.numerator}/{self.denominator})"

    def __add__(self, other: Ratio) -> Ratio:
        return Ratio(self.numerator + other.numerator, self.denominator + other.denominator)

    def to_json(self) -> dict[str, Json]:
        return {"numerator": self.numerator, "denominator": self.denominator, "value": self.value}


ZERO = Ratio(0, 0)


def per_success(amount: Decimal, successful: int) -> Decimal | None:
    """A cost per successful workflow: `amount` over the successes (None without any)."""
    if not successful:
        return None
    return (amount / successful).quantize(Decimal("0.000001"))


@dataclass
class ClassMetrics:
    """The metrics of one workflow class (or of all, `ALL_CLASSES`)."""

    workflow_class: str
    runs: int = 0
    """Runs that ended: the denominator of the run rates."""
    in_flight: int = 0
    completion: Ratio = ZERO
    fault_recovery: Ratio = ZERO
    """Injected faults whose run ended as the fault's expectation says / injected faults."""
    recovery_by_fault: dict[str, Ratio] = field(default_factory=dict)
    runs_with_faults: Ratio = ZERO
    """Runs whose every fault was recovered / runs with injected faults."""
    tool_selection: Ratio = ZERO
    tool_parameters: Ratio = ZERO
    arguments_first_try: Ratio = ZERO
    """Agent tool calls whose arguments fitted the parameters at once / first tries."""
    arguments_after_repair: Ratio = ZERO
    """The same, counting a call the model repaired after `tool_call_invalid` / first tries."""
    trajectory_match: Ratio = ZERO
    unsafe_actions: Ratio = ZERO
    unsafe_attempts: int = 0
    """Agent tool calls refused as outside the agent's `tools:` (not run, so not unsafe)."""
    cost: Cost = field(default_factory=Cost)
    successful: int = 0
    planned_checkpoints: Ratio = ZERO
    unplanned_repairs: Ratio = ZERO
    reconciled: int = 0
    """Uncertain effect outcomes settled by a `reconcile:` tool instead of a repair."""
    tokens: int = 0
    """Model tokens (input and output) of every run counted."""
    cached_replies: int = 0
    fallbacks: int = 0
    human_intervention: Ratio = ZERO
    human_overrides: Ratio = ZERO
    approval_seconds: list[float] = field(default_factory=list)
    duplicate_commits: int = 0
    """Effect keys committed more than once (the extra commits)."""
    journal_gaps: int = 0

    @property
    def cost_per_successful(self) -> Decimal | None:
        return per_success(self.cost.total, self.successful)

    @property
    def cost_per_successful_without_people(self) -> Decimal | None:
        return per_success(self.cost.without_people, self.successful)

    @property
    def tokens_per_run(self) -> float | None:
        return self.tokens / self.runs if self.runs else None

    @property
    def approval_median_s(self) -> float | None:
        return statistics.median(self.approval_seconds) if self.approval_seconds else None

    def to_json(self) -> dict[str, Json]:
        per_success = self.cost_per_successful
        without_people = self.cost_per_successful_without_people
        return {
            "class": self.workflow_class,
            "runs": self.runs,
            "in_flight": self.in_flight,
            "workflow_completion_rate": self.completion.to_json(),
            "fault_recovery_rate": self.fault_recovery.to_json(),
            "recovery_by_fault": {
                k: v.to_json() for k, v in sorted(self.recovery_by_fault.items())
            },
            "runs_with_faults_recovered": self.runs_with_faults.to_json(),
            "tool_selection_accuracy": self.tool_selection.to_json(),
            "tool_parameter_accuracy": self.tool_parameters.to_json(),
            "tool_arguments_valid_first_try": self.arguments_first_try.to_json(),
            "tool_arguments_valid_after_repair": self.arguments_after_repair.to_json(),
            "trajectory_match_rate": self.trajectory_match.to_json(),
            "unsafe_action_rate": self.unsafe_actions.to_json(),
            "unsafe_attempts_refused": self.unsafe_attempts,
            "cost": self.cost.to_json(),
            "successful_runs": self.successful,
            "cost_per_successful_workflow": None if per_success is None else str(per_success),
            "cost_per_successful_workflow_without_people": (
                None if without_people is None else str(without_people)
            ),
            "planned_checkpoint_rate": self.planned_checkpoints.to_json(),
            "unplanned_repair_rate": self.unplanned_repairs.to_json(),
            "reconciled_outcomes": self.reconciled,
            "tokens": self.tokens,
            "tokens_per_run": self.tokens_per_run,
            "cached_model_replies": self.cached_replies,
            "model_fallbacks": self.fallbacks,
            "human_intervention_rate": self.human_intervention.to_json(),
            "human_override_rate": self.human_overrides.to_json(),
            "approval_completion_seconds": {
                "median": self.approval_median_s,
                "count": len(self.approval_seconds),
                "sum": round(sum(self.approval_seconds), 6),
            },
            "duplicate_effect_commits": self.duplicate_commits,
            "journal_gaps": self.journal_gaps,
        }


@dataclass
class MetricsReport:
    classes: list[ClassMetrics]
    total: ClassMetrics
    since: float | None = None
    workflow_class: str | None = None
    earliest: float | None = None
    """When the earliest run counted started (store clock): the period covered runs from
    then to now (`mnc gc` removes older ended runs)."""
    removed_runs: int = 0
    """Runs `mnc gc` removed from the journal (their tombstones): not counted."""

    def by_class(self, name: str) -> ClassMetrics | None:
        return next((c for c in self.classes if c.workflow_class == name), None)

    def to_json(self) -> dict[str, Json]:
        return {
            "since": self.since,
            "class": self.workflow_class,
            "earliest_run_at": self.earliest,
            "removed_runs": self.removed_runs,
            "classes": [c.to_json() for c in self.classes],
            "total": self.total.to_json(),
        }


def compute_metrics(
    store: Store,
    workflow_class: str | None = None,
    since: float | None = None,
    *,
    review_minutes: Decimal = DEFAULT_REVIEW_MINUTES,
) -> MetricsReport:
    """The metrics of the runs started at or after `since` (store clock, seconds since the
    epoch), of one class or of every class."""
    facts = journal_facts(store, since, review_minutes=review_minutes)
    wanted = [f for f in facts if workflow_class is None or _class(f) == workflow_class]
    report = report_of(wanted, since=since, workflow_class=workflow_class)
    report.removed_runs = store.tombstone_count()
    return report


def journal_facts(
    store: Store, since: float | None = None, *, review_minutes: Decimal = DEFAULT_REVIEW_MINUTES
) -> list[RunFacts]:
    """The facts of every top-level run started at or after `since`, oldest first."""
    return KeptFacts(store, review_minutes=review_minutes).facts(since)


class KeptFacts:
    """`journal_facts`, kept between calls (`mnc serve`'s `/metrics`): a run's journal is
    read again only when its row changed since the last call (its last sequence number,
    status or update time), so a call costs one read of the runs table and the journals of
    the runs that moved."""

    def __init__(self, store: Store, *, review_minutes: Decimal = DEFAULT_REVIEW_MINUTES) -> None:
        from mnlang.models.prices import load_prices

        prices = load_prices()
        self.store = store
        self.rates = Rates(prices.compute_per_cpu_second, prices.human_per_minute, review_minutes)
        self.programs = _ProgramCache(store)
        self._runs: dict[str, tuple[tuple[int, str, float], RunFacts]] = {}

    def facts(self, since: float | None = None) -> list[RunFacts]:
        """The facts of every top-level run started at or after `since`, oldest first."""
        records = [
            r
            for r in self.store.list_runs(limit=RUN_LIMIT)
            if since is None or r.created_at >= since
        ]
        kept: dict[str, tuple[tuple[int, str, float], RunFacts]] = {}
        for r in records:
            mark = (r.last_seq, r.status, r.updated_at)
            found = self._runs.get(r.run_id)
            if found is None or found[0] != mark:
                events = self.store.read_journal(r.run_id)
                found = (mark, run_facts(r, events, self.programs.facts(r.ir_hash), self.rates))
            kept[r.run_id] = found
        self._runs = kept
        # Folding children and counting duplicates change the facts: they work on copies.
        facts = {
            run_id: replace(f, cost=replace(f.cost), committed_keys=Counter(f.committed_keys))
            for run_id, (_, f) in kept.items()
        }
        roots = _fold_children(records, facts)
        _cross_run_duplicates(roots)
        return roots


def report_of(
    facts: Iterable[RunFacts], *, since: float | None = None, workflow_class: str | None = None
) -> MetricsReport:
    """Aggregate per-run facts per class, and over all of them."""
    per_class: dict[str, ClassMetrics] = {}
    total = ClassMetrics(ALL_CLASSES)
    earliest: float | None = None
    for run in facts:
        earliest = run.created_at if earliest is None else min(earliest, run.created_at)
        name = _class(run)
        metrics = per_class.setdefault(name, ClassMetrics(name))
        _add(metrics, run)
        _add(total, run)
    classes = [per_class[name] for name in sorted(per_class)]
    return MetricsReport(classes, total, since, workflow_class, earliest)


def _class(facts: RunFacts) -> str:
    return facts.workflow_class or UNCLASSED


def _add(metrics: ClassMetrics, run: RunFacts) -> None:
    if not run.ended:
        metrics.in_flight += 1
        return
    one = Ratio(1, 1)
    none = Ratio(0, 1)
    metrics.runs += 1
    metrics.completion += one if run.successful else none
    metrics.successful += run.successful
    metrics.cost.add(run.cost)
    clean = run.duplicate_commits == 0
    all_recovered = True
    for fault in run.faults:
        ok = clean and _recovered(run, fault.expect)
        all_recovered = all_recovered and ok
        metrics.fault_recovery += one if ok else none
        before = metrics.recovery_by_fault.get(fault.fault, ZERO)
        metrics.recovery_by_fault[fault.fault] = before + (one if ok else none)
    if run.faults:
        metrics.runs_with_faults += one if all_recovered else none
    if run.score is not None and not run.faults:
        # Accuracy is the model's and the workflow's: measured on runs without faults.
        score = run.score
        metrics.tool_selection += Ratio(score.selected, score.compared)
        metrics.tool_parameters += Ratio(score.parameters, score.compared)
        metrics.trajectory_match += one if score.exact else none
    if not run.faults:
        tries = argument_accuracy(run.argument_tries)
        metrics.arguments_first_try += Ratio(tries.valid_first, tries.first_tries)
        metrics.arguments_after_repair += Ratio(tries.valid_after_repair, tries.first_tries)
    metrics.unsafe_actions += Ratio(run.unsafe_actions, run.actions)
    metrics.unsafe_attempts += run.unsafe_attempts
    metrics.planned_checkpoints += one if run.planned_checkpoint else none
    metrics.unplanned_repairs += one if run.repair else none
    metrics.reconciled += run.reconciled
    metrics.tokens += run.tokens
    metrics.cached_replies += run.cached_replies
    metrics.fallbacks += run.fallbacks
    metrics.human_intervention += one if run.human_decisions else none
    metrics.human_overrides += Ratio(run.human_overrides, run.human_decisions)
    metrics.approval_seconds.extend(run.approval_seconds)
    metrics.duplicate_commits += run.duplicate_commits
    metrics.journal_gaps += run.journal_gaps


def _recovered(run: RunFacts, expect: str) -> bool:
    """Whether a run ended as a fault's expected outcome says."""
    if expect == "failed":
        return run.status == "failed"
    if expect == "repair":
        return run.successful and run.repair
    return run.successful


def _fold_children(records: list[RunRecord], facts: dict[str, RunFacts]) -> list[RunFacts]:
    """Top-level runs, each carrying its child runs' cost."""
    parents = {r.run_id: r.parent_run_id for r in records}
    roots: list[RunFacts] = []
    for record in sorted(records, key=lambda r: (r.created_at, r.run_id)):
        if record.parent_run_id is None:
            roots.append(facts[record.run_id])
            continue
        top = record.run_id
        parent = parents.get(top)
        while parent is not None and parent in facts:
            top, parent = parent, parents.get(parent)
        if top != record.run_id:
            facts[top].cost.add(facts[record.run_id].cost)
    return roots


def _cross_run_duplicates(runs: list[RunFacts]) -> None:
    """A global key committed by two runs is a duplicate of the later one."""
    seen: set[str] = set()
    for run in runs:
        for key in list(run.committed_keys):
            if key.startswith(f"{run.run_id}/"):
                continue  # scoped to the run
            if key in seen:
                run.committed_keys[key] += 1
            seen.add(key)


class _ProgramCache:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._facts: dict[str, ProgramFacts] = {}

    def facts(self, ir_hash: str) -> ProgramFacts:
        found = self._facts.get(ir_hash)
        if found is None:
            found = self._facts[ir_hash] = self._load(ir_hash)
        return found

    def _load(self, ir_hash: str) -> ProgramFacts:
        from mnlang.ir.load import IRLoadError, parse_ir

        text = self.store.get_program(ir_hash) if ir_hash else None
        if text is None:
            return NO_PROGRAM
        try:
            program = parse_ir(text, f"program {ir_hash[:12]}")
        except IRLoadError:
            return NO_PROGRAM
        return program_facts(program)


def program_facts(program: IRProgram) -> ProgramFacts:
    from mnlang.ir.states import CallState

    def short(name: str) -> str:
        return name.rsplit(".", 1)[-1]

    steps: dict[tuple[str, str], frozenset[str]] = {}
    for workflow in program.workflows.values():
        for state in workflow.states.values():
            if isinstance(state, CallState) and state.callee_kind == "agent":
                tools = program.agents[state.callee].tools
                steps[(workflow.name, state.id)] = frozenset(short(t) for t in tools)
    return ProgramFacts(
        needs_approval=frozenset(
            short(e.name) for e in program.effects.values() if "approval" in e.requires
        ),
        agent_steps=steps,
        global_effects=frozenset(
            short(e.name) for e in program.effects.values() if e.scope == "global"
        ),
    )


_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def since_of(text: str, now: float) -> float:
    """`--since`: a span back from `now` (`30m`, `24h`, `7d`, `2w`), a date or time in ISO
    8601 (UTC unless it says), or seconds since the epoch; `ValueError` otherwise."""
    from datetime import UTC, datetime

    value = text.strip()
    unit = _UNITS.get(value[-1:]) if value else None
    if unit is not None and value[:-1].replace(".", "", 1).isdigit():
        return now - float(value[:-1]) * unit
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"`{text}` is not a span (`24h`, `7d`), an ISO date or time, or epoch seconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
