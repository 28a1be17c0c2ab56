"""What the console's pages show, read from the journal store: plain data, no HTML.

Each page (and its JSON twin) gets one of these views. A view also has a fingerprint:
a short digest of what would change the page, so live parts can ask "anything new?"
cheaply and get nothing back when nothing changed.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from typing import get_args

import msgspec

from mnlang.graph.overlay import RunOverlay, build_overlay
from mnlang.ir.load import IRLoadError, parse_ir
from mnlang.ir.model import IRProgram
from mnlang.ir.show import summary
from mnlang.ir.states import transitions
from mnlang.runtime.views import RunDetails, run_details
from mnlang.stores.base import (
    TERMINAL_STATUSES,
    Checkpoint,
    Event,
    Json,
    RunCount,
    RunRecord,
    RunStatus,
    Store,
)

STATUSES: tuple[str, ...] = get_args(RunStatus)


def _digest(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


# ---- runs ------------------------------------------------------------------------------


@dataclass
class RunFilters:
    status: RunStatus | None = None
    workflow: str | None = None
    workflow_class: str | None = None

    def to_json(self) -> dict[str, Json]:
        return {"status": self.status, "workflow": self.workflow, "class": self.workflow_class}


@dataclass
class RunsView:
    filters: RunFilters
    runs: list[RunRecord]
    counts: dict[str, int]
    """Runs per status among those matching the workflow and class filters."""
    workflows: list[str]
    classes: list[str]
    limit: int

    @property
    def fingerprint(self) -> str:
        return _digest(
            sorted(self.counts.items()),
            [(r.run_id, r.status, r.last_seq, r.updated_at, r.quarantine) for r in self.runs],
        )

    def to_json(self) -> dict[str, Json]:
        return {
            "filters": self.filters.to_json(),
            "counts": self.counts,
            "runs": [run_json(r) for r in self.runs],
        }


def run_json(run: RunRecord) -> dict[str, Json]:
    record: dict[str, Json] = msgspec.to_builtins(run)
    return record


def runs_view(
    store: Store,
    filters: RunFilters,
    limit: int = 100,
    run_counts: list[RunCount] | None = None,
) -> RunsView:
    """The runs page; `run_counts` when the caller already read them (once for many)."""
    counts = dict.fromkeys(STATUSES, 0)
    workflows: set[str] = set()
    classes: set[str] = set()
    for row in store.run_counts() if run_counts is None else run_counts:
        workflows.add(row.workflow)
        if row.workflow_class:
            classes.add(row.workflow_class)
        if filters.workflow not in (None, row.workflow):
            continue
        if filters.workflow_class not in (None, row.workflow_class):
            continue
        counts[row.status] = counts.get(row.status, 0) + row.count
    runs = store.list_runs(
        status=filters.status,
        workflow=filters.workflow,
        workflow_class=filters.workflow_class,
        limit=limit,
    )
    return RunsView(filters, runs, counts, sorted(workflows), sorted(classes), limit)


# ---- one run ---------------------------------------------------------------------------


@dataclass
class Step:
    """Where a branch of the run stands, and where it can go from there."""

    branch: str
    state: str | None
    what: str
    waiting_for: Json
    next: list[tuple[str, str]]
    """(transition label, what the target state does)."""


@dataclass
class CostLine:
    category: str
    """`model`, `tool`, `effect` or `human review`."""
    name: str
    calls: int
    cost: Decimal


@dataclass
class Pending:
    """A checkpoint waiting for a person, and when its timeout decides instead."""

    checkpoint: Checkpoint
    run: RunRecord | None
    deadline: float | None

    @property
    def request(self) -> dict[str, Json]:
        request = self.checkpoint.request
        return request if isinstance(request, dict) else {}

    @property
    def assignee(self) -> str | None:
        assignee = self.request.get("assignee")
        return assignee if isinstance(assignee, str) and assignee else None

    @property
    def options(self) -> list[str]:
        options = self.request.get("options")
        return [str(o) for o in options] if isinstance(options, list) else []

    @property
    def is_repair(self) -> bool:
        return self.request.get("kind") == "repair"

    def to_json(self) -> dict[str, Json]:
        return {
            **msgspec.to_builtins(self.checkpoint),
            "workflow": self.run.workflow if self.run else None,
            "assignee": self.assignee,
            "deadline": self.deadline,
        }


def pending(checkpoint: Checkpoint, run: RunRecord | None) -> Pending:
    request = checkpoint.request if isinstance(checkpoint.request, dict) else {}
    timeout_ms = request.get("timeout_ms")
    deadline = checkpoint.opened_at + timeout_ms / 1000 if isinstance(timeout_ms, int) else None
    return Pending(checkpoint, run, deadline)


@dataclass
class RunView:
    details: RunDetails
    journal: list[Event]
    program: IRProgram | None
    program_problem: str | None
    overlay: RunOverlay
    steps: list[Step]
    costs: list[CostLine]
    pending: list[Pending]
    children: list[RunRecord]
    events: list[str] = field(default_factory=list)
    """Names of the events the program declares (what a signal can be)."""
    fingerprint: str = ""

    @property
    def run(self) -> RunRecord:
        return self.details.run

    @property
    def live(self) -> bool:
        return self.run.status not in TERMINAL_STATUSES

    @property
    def total_cost(self) -> Decimal:
        return sum((c.cost for c in self.costs), Decimal(0))

    @property
    def decisions(self) -> list[Event]:
        """The decisions the run received (checkpoints and repairs), oldest first."""
        return [e for e in self.journal if e.kind == "decided"]

    def to_json(self) -> dict[str, Json]:
        return {
            **self.details.to_json(),
            "journal": msgspec.to_builtins(self.journal),
            "overlay": self.overlay.model_dump(),
            "steps_now": [asdict(s) for s in self.steps],
            "cost_breakdown": [{**asdict(c), "cost": str(c.cost)} for c in self.costs],
            "total_cost": str(self.total_cost),
            "pending": [p.to_json() for p in self.pending],
            "children": [c.run_id for c in self.children],
            "fingerprint": self.fingerprint,
        }


def run_fingerprint(store: Store, run: RunRecord) -> str:
    """Changes whenever the run page would: a new event, a status, a decision recorded."""
    return _run_digest(run, store.open_checkpoints(run.run_id))


def _run_digest(run: RunRecord, open_checkpoints: list[Checkpoint]) -> str:
    checkpoints = sorted((c.checkpoint_id, c.status) for c in open_checkpoints)
    return _digest(
        run.last_seq,
        run.status,
        run.cancel_requested,
        run.lease_owner is not None,
        run.quarantine,
        checkpoints,
    )


def load_run_program(store: Store, run: RunRecord) -> tuple[IRProgram | None, str | None]:
    """The compiled program a run executes, or why it cannot be shown."""
    text = store.get_program(run.ir_hash) if run.ir_hash else None
    if text is None:
        return None, "the journal does not keep this run's program"
    try:
        return parse_ir(text, f"program {run.ir_hash[:12]}"), None
    except IRLoadError as e:
        return None, e.message


def _cost(data: dict[str, Json]) -> Decimal:
    try:
        return Decimal(str(data.get("cost") or 0))
    except InvalidOperation:
        return Decimal(0)


def cost_lines(journal: list[Event], program: IRProgram | None) -> list[CostLine]:
    """What each model, tool and effect cost the run, costliest first. Models are charged
    per reply (`model_reply`), failed and repaired replies included; the `agent` event
    repeats its replies' total, so it is not counted again."""
    calls: Counter[tuple[str, str]] = Counter()
    costs: dict[tuple[str, str], Decimal] = {}
    for event in journal:
        data = event.data if isinstance(event.data, dict) else {}
        if event.kind == "model_reply":
            agent = str(data.get("agent"))
            decl = program.agents.get(agent) if program else None
            key = ("model", str(data.get("model") or (decl.model if decl else agent)))
        elif event.kind in ("tool", "effect", "compensated"):
            key = ("tool" if event.kind == "tool" else "effect", str(data.get(event.kind)))
        elif event.kind == "decided" and data.get("by") not in (None, "", "timeout"):
            key = ("human review", str(data.get("by")))
        else:
            continue
        calls[key] += 1
        costs[key] = costs.get(key, Decimal(0)) + _cost(data)
    lines = [CostLine(cat, name, calls[(cat, name)], costs[(cat, name)]) for cat, name in calls]
    return sorted(lines, key=lambda c: (-c.cost, c.category, c.name))


def _steps(details: RunDetails, program: IRProgram | None) -> list[Step]:
    workflow = program.workflows.get(details.run.workflow) if program else None
    steps: list[Step] = []
    for position in details.positions:
        state = workflow.states.get(position.state) if workflow and position.state else None
        what = summary(state) if state is not None else ""
        after: list[tuple[str, str]] = []
        if state is not None and workflow is not None:
            for label, target in transitions(state):
                target_state = workflow.states.get(target) if target else None
                shown = summary(target_state) if target_state else "end of the enclosing block"
                after.append((label, shown))
        steps.append(Step(position.branch, position.state, what, position.waiting_for, after))
    return steps


def run_view(store: Store, run_id: str) -> RunView:
    """Everything the run page shows; `RunNotFound` for an unknown id."""
    details = run_details(store, run_id)
    run = details.run
    journal = store.read_journal(run_id)
    program, problem = load_run_program(store, run)
    overlay = build_overlay(run, journal, [p.state for p in details.positions])
    return RunView(
        details=details,
        journal=journal,
        program=program,
        program_problem=problem,
        overlay=overlay,
        steps=_steps(details, program),
        costs=cost_lines(journal, program),
        pending=[pending(c, run) for c in details.checkpoints],
        children=store.list_runs(parent_run_id=run_id, limit=200),
        events=sorted(program.events) if program else [],
        fingerprint=run_fingerprint(store, run),
    )


# ---- approvals inbox -------------------------------------------------------------------


@dataclass
class InboxView:
    items: list[Pending]

    @property
    def by_assignee(self) -> list[tuple[str | None, list[Pending]]]:
        """Unassigned checkpoints first, then per assignee; oldest first within each."""
        groups: dict[str | None, list[Pending]] = {}
        for item in self.items:
            groups.setdefault(item.assignee, []).append(item)
        return sorted(groups.items(), key=lambda g: (g[0] is not None, g[0] or ""))

    @property
    def fingerprint(self) -> str:
        return _inbox_digest([p.checkpoint for p in self.items])

    def to_json(self) -> dict[str, Json]:
        return {"pending": [p.to_json() for p in self.items]}


def _inbox_digest(open_checkpoints: list[Checkpoint]) -> str:
    return _digest([(c.run_id, c.checkpoint_id) for c in open_checkpoints])


def inbox_view(store: Store) -> InboxView:
    items: list[Pending] = []
    runs: dict[str, RunRecord | None] = {}
    for checkpoint in store.open_checkpoints():
        if checkpoint.run_id not in runs:
            runs[checkpoint.run_id] = store.get_run(checkpoint.run_id)
        items.append(pending(checkpoint, runs[checkpoint.run_id]))
    return InboxView(items)


# ---- workflows -------------------------------------------------------------------------


@dataclass
class WorkflowSummary:
    name: str
    workflow_class: str
    counts: dict[str, int]
    latest: RunRecord | None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_json(self) -> dict[str, Json]:
        return {
            "workflow": self.name,
            "class": self.workflow_class,
            "counts": self.counts,
            "runs": self.total,
            "ir_hash": self.latest.ir_hash if self.latest else None,
            "latest_run": self.latest.run_id if self.latest else None,
        }


def workflow_summaries(store: Store) -> list[WorkflowSummary]:
    """Every workflow the journal has runs of, with its runs per status."""
    found: dict[str, WorkflowSummary] = {}
    for row in store.run_counts():
        entry = found.setdefault(
            row.workflow, WorkflowSummary(row.workflow, row.workflow_class, {}, None)
        )
        entry.counts[row.status] = entry.counts.get(row.status, 0) + row.count
    for entry in found.values():
        latest = store.list_runs(workflow=entry.name, limit=1)
        entry.latest = latest[0] if latest else None
    return sorted(found.values(), key=lambda w: w.name)


@dataclass
class WorkflowView:
    summary: WorkflowSummary
    program: IRProgram | None
    program_problem: str | None
    runs: list[RunRecord]

    def to_json(self) -> dict[str, Json]:
        return {**self.summary.to_json(), "recent_runs": [run_json(r) for r in self.runs]}


def workflow_view(store: Store, name: str, limit: int = 25) -> WorkflowView | None:
    """A workflow's latest compiled program and recent runs; `None` if it never ran."""
    summary_ = next((w for w in workflow_summaries(store) if w.name == name), None)
    if summary_ is None or summary_.latest is None:
        return None
    program, problem = load_run_program(store, summary_.latest)
    runs = store.list_runs(workflow=name, limit=limit)
    return WorkflowView(summary_, program, problem, runs)


# ---- live parts ------------------------------------------------------------------------


@dataclass(frozen=True)
class RunsTopic:
    """The runs page under its filters."""

    status: RunStatus | None = None
    workflow: str | None = None
    workflow_class: str | None = None

    @property
    def filters(self) -> RunFilters:
        return RunFilters(self.status, self.workflow, self.workflow_class)


@dataclass(frozen=True)
class RunTopic:
    """One run's page."""

    run_id: str


@dataclass(frozen=True)
class InboxTopic:
    """The approvals inbox."""


Topic = RunsTopic | RunTopic | InboxTopic
"""What a live part follows."""

GONE = "gone"
"""The fingerprint of a run that is no longer in the journal."""


def live_fingerprints(store: Store, topics: Sequence[Topic]) -> dict[Topic, str]:
    """The fingerprint of each live part's topic, as its fragment route computes it.

    Queries the topics share are made once: the run counts (every runs page, whatever
    its filters) and, when the inbox is followed, all open checkpoints (the inbox and
    every run page then take theirs from those).
    """
    every_open: list[Checkpoint] | None = None
    by_run: dict[str, list[Checkpoint]] = {}
    if InboxTopic() in topics:
        every_open = store.open_checkpoints()
        for checkpoint in every_open:
            by_run.setdefault(checkpoint.run_id, []).append(checkpoint)
    run_counts: list[RunCount] | None = None
    found: dict[Topic, str] = {}
    for topic in topics:
        if isinstance(topic, InboxTopic):
            found[topic] = _inbox_digest(every_open or [])
        elif isinstance(topic, RunTopic):
            run = store.get_run(topic.run_id)
            if run is None:
                found[topic] = GONE
            elif every_open is None:
                found[topic] = run_fingerprint(store, run)
            else:
                found[topic] = _run_digest(run, by_run.get(run.run_id, []))
        else:
            if run_counts is None:
                run_counts = store.run_counts()
            found[topic] = runs_view(store, topic.filters, run_counts=run_counts).fingerprint
    return found
