"""What one run's journal contributes to the metrics: `RunFacts`, read once per run.

Everything here comes from the run's record and its events (docs/metrics.md says which
event each figure reads), plus three facts of its compiled program: which effects need
an approval, which tools each agent may call, and which effect keys are global.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from mnlang.metrics.expect import EXPECT_META, ActualCall, CallScore, Expectation, score_calls
from mnlang.stores.base import TERMINAL_STATUSES, Event, Json, RunRecord

REPAIR_CHECKPOINT = "repair"
FAILED_ATTEMPTS = frozenset({"retry", "attempt_failed", "call_failed"})
"""Events of a call attempt that failed: its time was spent all the same."""
TIMEOUT_BY = "timeout"
MCP_BY = "mcp:"
"""How a decision made through `mnc mcp serve` is signed (`mcp:CLIENT`): a program's, not
a person's, so not counted among people's decisions."""


@dataclass(frozen=True, slots=True)
class ProgramFacts:
    """What the metrics need to know of a compiled program."""

    needs_approval: frozenset[str]
    """Short names of the effects with `requires: approval`."""
    agent_steps: dict[tuple[str, str], frozenset[str]]
    """(workflow, state id) of each agent call -> the short names of the agent's `tools:`."""
    global_effects: frozenset[str]
    """Short names of the effects whose key is `scope: global`."""


NO_PROGRAM = ProgramFacts(frozenset(), {}, frozenset())
"""For a run whose program is not in the journal."""


@dataclass
class Cost:
    model: Decimal = Decimal(0)
    tool: Decimal = Decimal(0)
    compute: Decimal = Decimal(0)
    human_review: Decimal = Decimal(0)
    repair: Decimal = Decimal(0)
    repair_people: Decimal = Decimal(0)
    """The people's time within `repair` (repairs decided by a person), not a part of its
    own: with `human_review`, what the assumed minutes per decision weigh."""

    PARTS = ("model", "tool", "compute", "human_review", "repair")

    @property
    def total(self) -> Decimal:
        return self.model + self.tool + self.compute + self.human_review + self.repair

    @property
    def without_people(self) -> Decimal:
        """The total less people's time (the human-review part and the repairs people
        decided): what the machines cost, independent of the minutes a decision is
        charged."""
        return self.total - self.human_review - self.repair_people

    def add(self, other: Cost) -> None:
        for part in (*self.PARTS, "repair_people"):
            setattr(self, part, getattr(self, part) + getattr(other, part))

    def to_json(self) -> dict[str, str]:
        parts = (*self.PARTS, "total", "repair_people", "without_people")
        return {part: str(getattr(self, part)) for part in parts}


@dataclass(frozen=True, slots=True)
class Rates:
    """How time is priced (from the price table)."""

    compute_per_cpu_second: Decimal
    human_per_minute: Decimal
    review_minutes: Decimal
    """Human time a person's decision is charged: the journal has no record of it."""


@dataclass
class FaultFact:
    fault: str
    expect: str
    mode: str


@dataclass
class ArgumentTry:
    where: tuple[str, str]
    """The agent's step and the tool: a later try of the same pair repairs an invalid one."""
    valid: bool = True


@dataclass(frozen=True, slots=True)
class ArgumentAccuracy:
    """Tool calls an agent made, counted by first tries: a first try is a call not made to
    repair an invalid one (the model was told what was wrong and called the same tool
    again in the same agent step)."""

    first_tries: int = 0
    valid_first: int = 0
    """First tries whose arguments fitted at once."""
    valid_after_repair: int = 0
    """First tries whose arguments fitted at once or on a repair."""


def argument_accuracy(tries: list[ArgumentTry]) -> ArgumentAccuracy:
    first_tries = valid_first = repaired = 0
    unrepaired: set[tuple[str, str]] = set()
    for attempt in tries:
        if attempt.where in unrepaired:
            if attempt.valid:
                repaired += 1
                unrepaired.discard(attempt.where)
            continue
        first_tries += 1
        if attempt.valid:
            valid_first += 1
        else:
            unrepaired.add(attempt.where)
    return ArgumentAccuracy(first_tries, valid_first, valid_first + repaired)


@dataclass
class RunFacts:
    run_id: str
    workflow: str
    workflow_class: str
    status: str
    created_at: float
    expectation: Expectation | None
    successful: bool
    cost: Cost
    faults: list[FaultFact] = field(default_factory=list)
    calls: list[ActualCall] = field(default_factory=list)
    score: CallScore | None = None
    actions: int = 0
    unsafe_actions: int = 0
    unsafe_attempts: int = 0
    planned_checkpoint: bool = False
    repair: bool = False
    reconciled: int = 0
    tokens: int = 0
    cached_replies: int = 0
    """Model replies answered from the reply cache (`cache:`), at no cost."""
    fallbacks: int = 0
    """Requests an agent sent to its next model after one failed (`model_fallback`)."""
    """Input and output tokens of every model request the run made (as the provider, or the
    estimator for scripted replies, counted them)."""
    """Uncertain effect outcomes a `reconcile:` tool settled (done or not done), so no
    person was asked."""
    human_decisions: int = 0
    human_overrides: int = 0
    approval_seconds: list[float] = field(default_factory=list)
    committed_keys: Counter[str] = field(default_factory=Counter)
    """Effect keys this run committed (`effect` events), scoped keys prefixed by the run."""
    journal_gaps: int = 0
    """Sequence numbers missing from the journal (a lost entry would show here)."""
    argument_tries: list[ArgumentTry] = field(default_factory=list)
    """Each call an agent made of one of its tools, in journal order, and whether its
    arguments fitted (no `tool_call_invalid` answered it)."""

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def duplicate_commits(self) -> int:
        return sum(n - 1 for n in self.committed_keys.values() if n > 1)


def _money(value: Json) -> Decimal:
    try:
        return Decimal(str(value or 0))
    except InvalidOperation:
        return Decimal(0)


def _short(name: Json) -> str:
    return str(name or "").rsplit(".", 1)[-1]


def run_facts(
    record: RunRecord, events: list[Event], program: ProgramFacts, rates: Rates
) -> RunFacts:
    expectation = Expectation.from_json(record.meta.get(EXPECT_META))
    ended = record.status in TERMINAL_STATUSES
    if expectation is not None:
        successful = ended and expectation.met_by(record.status, record.result, record.error)
    else:
        successful = record.status == "completed"
    facts = RunFacts(
        record.run_id,
        record.workflow,
        record.workflow_class,
        record.status,
        record.created_at,
        expectation,
        successful,
        Cost(),
    )
    _read(facts, events, program, rates)
    if expectation is not None and expectation.calls is not None and ended:
        facts.score = score_calls(expectation.calls, facts.calls)
    return facts


def _read(facts: RunFacts, events: list[Event], program: ProgramFacts, rates: Rates) -> None:
    cost = facts.cost
    opened: dict[str, tuple[float, str | None]] = {}
    approved = False
    tool_ms = 0.0
    expected_seq = 1
    for event in events:
        if event.seq != expected_seq:
            facts.journal_gaps += max(0, event.seq - expected_seq)
        expected_seq = event.seq + 1
        data: dict[str, Any] = event.data if isinstance(event.data, dict) else {}
        kind = event.kind
        if kind in FAILED_ATTEMPTS:
            tool_ms += float(data.get("ms") or 0)
        if kind == "model_reply":
            cost.model += _money(data.get("cost"))
            facts.cached_replies += data.get("cached") is True
            usage = data.get("usage")
            if isinstance(usage, dict):
                facts.tokens += sum(
                    int(usage.get(k) or 0) for k in ("input_tokens", "output_tokens")
                )
        elif kind in ("tool", "effect"):
            facts.actions += 1
            cost.tool += _money(data.get("cost"))
            tool_ms += float(data.get("ms") or 0)
            name = _short(data.get(kind))
            if kind == "tool":
                if ">" not in (event.state or ""):
                    facts.calls.append(ActualCall(name, data.get("args")))
            else:
                key = str(data.get("key") or "")
                scope = "" if name in program.global_effects else f"{facts.run_id}/"
                facts.committed_keys[scope + key] += 1
                if name in program.needs_approval and not approved:
                    facts.unsafe_actions += 1
            if _outside_tools(facts.workflow, event.state, name, program):
                facts.unsafe_actions += 1
        elif kind == "intent" and not _agent_or_compensation(event.state):
            facts.calls.append(ActualCall(_short(data.get("effect")), data.get("args")))
        elif kind == "call_failed" and data.get("kind_of_call") == "tool":
            if ">" not in (event.state or ""):
                facts.calls.append(ActualCall(_short(data.get("callee")), data.get("args")))
        elif kind == "replayed":
            facts.actions += 1
        elif kind == "compensated":
            cost.repair += _money(data.get("cost"))
            tool_ms += float(data.get("ms") or 0)
        elif kind == "fault_injected":
            facts.faults.append(
                FaultFact(
                    str(data.get("fault")), str(data.get("expect") or "same"), str(data.get("mode"))
                )
            )
        elif kind == "checkpoint":
            facts.planned_checkpoint = True
            opened[str(data.get("id"))] = (event.at, _first_option(data))
        elif kind == "repair_opened":
            facts.repair = True
        elif kind == "reconciled" and data.get("answer") in ("done", "not_done"):
            facts.reconciled += 1
        elif kind == "model_fallback":
            facts.fallbacks += 1
        elif kind == "decided":
            approved = approved or data.get("approved") is True
            by = data.get("by")
            person = by not in (None, "", TIMEOUT_BY) and not str(by).startswith(MCP_BY)
            if "repair" in data:
                if person:
                    facts.human_decisions += 1
                    cost.repair += rates.review_minutes * rates.human_per_minute
                    cost.repair_people += rates.review_minutes * rates.human_per_minute
                continue
            where = _checkpoint_of(event, data, opened)
            if person:
                facts.human_decisions += 1
                cost.human_review += rates.review_minutes * rates.human_per_minute
                if where is not None:
                    at, proposed = opened[where]
                    facts.approval_seconds.append(max(0.0, event.at - at))
                    if proposed is not None and data.get("choice") != proposed:
                        facts.human_overrides += 1
            if where is not None:
                del opened[where]
        elif kind == "tool_decision":
            refused = data.get("allowed") is False
            facts.calls.append(ActualCall(_short(data.get("tool")), data.get("arguments"), refused))
            if not refused:
                tried = (event.state or "", str(data.get("tool")))
                facts.argument_tries.append(ArgumentTry(tried))
        elif kind == "tool_call_invalid":
            tried = (event.state or "", str(data.get("tool")))
            last = next((t for t in reversed(facts.argument_tries) if t.where == tried), None)
            if last is not None:
                last.valid = False
        elif kind == "unsafe_tool_call":
            facts.unsafe_attempts += 1
        elif kind == "compensating":
            facts.repair = True
        elif kind == "retried":
            # A person fixed the cause and retried the failed run: a repair the workflow
            # did not plan, and a person's intervention.
            facts.repair = True
            facts.human_decisions += 1
    cost.compute += Decimal(str(round(tool_ms / 1000, 6))) * rates.compute_per_cpu_second


def _agent_or_compensation(state: str | None) -> bool:
    """A step an agent's tool call runs as (`agent_step>tool:n`: its `tool_decision`
    stands for it), or a compensation."""
    step = state or ""
    return ">" in step or step.startswith("compensate:")


def _first_option(data: dict[str, Any]) -> str | None:
    options = data.get("options")
    return str(options[0]) if isinstance(options, list) and options else None


def _checkpoint_of(
    event: Event, data: dict[str, Any], opened: dict[str, tuple[float, str | None]]
) -> str | None:
    """The open checkpoint a `decided` event closes: the one it names (an agent's approval)
    or the one opened at its state."""
    named = data.get("approval")
    if isinstance(named, str) and named in opened:
        return named
    state = event.state or ""
    for checkpoint_id in opened:
        if checkpoint_id == state or checkpoint_id.startswith(f"{state}@"):
            return checkpoint_id
    return None


def _outside_tools(workflow: str, state: str | None, name: str, program: ProgramFacts) -> bool:
    """A call an agent made (step `agent_step>tool:n`) of a tool not in its `tools:`."""
    step = state or ""
    if ">" not in step:
        return False
    allowed = program.agent_steps.get((workflow, step.split(">", 1)[0]))
    return allowed is not None and name not in allowed
