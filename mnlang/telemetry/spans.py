"""Spans from a run's journal, with deterministic ids.

A span is built from committed events only, so a call whose result a crash lost never
appears; the call run again after the crash is journaled once and becomes one span. Its id
is derived from the run, the state, the branch, the attempt, the execution segment (how many
times the run was started or resumed before it: the incarnation) and the journal sequence
number of the event that finished it, so reading the same journal twice yields the same ids.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mnlang.stores.base import Event, RunRecord, Store

AttributeValue = str | int | float | bool

ENDED = frozenset({"completed", "failed", "cancelled"})
"""Event kinds that end a run, and with it the run's span."""


@dataclass(frozen=True, slots=True)
class TraceParent:
    """A W3C `traceparent` (version 00): the trace a run joins and its parent span."""

    trace_id: int
    span_id: int
    sampled: bool

    @classmethod
    def parse(cls, header: str) -> TraceParent | None:
        """The header's ids, or `None` when it is not a valid version-00 `traceparent`."""
        parts = header.strip().split("-")
        if len(parts) != 4 or parts[0] != "00":
            return None
        trace, span, flags = parts[1:]
        if len(trace) != 32 or len(span) != 16 or len(flags) != 2:
            return None
        try:
            trace_id, span_id, bits = int(trace, 16), int(span, 16), int(flags, 16)
        except ValueError:
            return None
        if trace_id == 0 or span_id == 0:
            return None
        return cls(trace_id, span_id, bool(bits & 1))

    def header(self) -> str:
        return f"00-{self.trace_id:032x}-{self.span_id:016x}-{'01' if self.sampled else '00'}"


@dataclass(frozen=True, slots=True)
class JournalSpan:
    """One span as the journal knows it; times in seconds since the epoch."""

    trace_id: int
    span_id: int
    parent_id: int | None
    name: str
    start: float
    end: float
    seq: int
    """The journal sequence number of the event that finished the span: it is exported
    when the delivery cursor passes this number, and only then."""
    error: str | None = None
    attributes: dict[str, AttributeValue] = field(default_factory=dict)


def derived_id(bits: int, *parts: object) -> int:
    """A non-zero id of `bits` bits, a hash of the parts."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=bits // 8)
    return int.from_bytes(digest.digest(), "big") or 1


def run_trace(run: RunRecord, parent_trace: int | None) -> tuple[int, int | None]:
    """The run's trace id and the parent of its run span.

    A `traceparent` given at start wins; a child run is in its parent's trace (passed as
    `parent_trace`); any other run is the root of a trace of its own, derived from its id.
    """
    header = run.meta.get("traceparent")
    if isinstance(header, str) and (given := TraceParent.parse(header)) is not None:
        return given.trace_id, given.span_id
    if run.parent_run_id is not None:
        return parent_trace or derived_id(128, "trace", run.parent_run_id), run_span_id(
            run.parent_run_id
        )
    return derived_id(128, "trace", run.run_id), None


def run_span_id(run_id: str) -> int:
    return derived_id(64, "run", run_id)


SPAN_DATA = "span"
"""The key of a call attempt's span id (16 hex digits) in its journal event's data."""


class AttemptSpans:
    """The span ids of a run's call attempts in one execution segment, and the
    `traceparent` a tool receives for its attempt (`ToolContext.traceparent`).

    An attempt's id is derived from the run, the incarnation (a nonce of this execution
    segment: a pure tool run again after a crash is a second execution, with an id of its
    own) and the count of the attempts begun in it. It is journaled with the attempt's
    outcome (`SPAN_DATA`), and the exported span takes it from there: the tool's
    downstream spans find their parent among the exported ones.
    """

    def __init__(self, store: Store, record: RunRecord) -> None:
        self.store = store
        self.record = record
        self.begun = 0
        self._trace: TraceParent | None = None
        self._base = 0
        """Set with `_header` at the first attempt: a run that calls nothing (one resumed
        only to take its decided checkpoint, say) draws no nonce and hashes nothing."""
        self._header: tuple[str, str] | None = None
        """The `traceparent` around the span id: `00-<trace id>-` and `-<flags>`."""

    def run_context(self) -> TraceParent:
        """The run's trace and its run span (read from the store once, for a child run)."""
        if self._trace is None:
            record = self.record
            parent_trace = (
                trace_id_of(self.store, record.parent_run_id) if record.parent_run_id else None
            )
            header = record.meta.get("traceparent")
            given = TraceParent.parse(header) if isinstance(header, str) else None
            trace_id = run_trace(record, parent_trace)[0]
            sampled = given.sampled if given is not None else True
            self._trace = TraceParent(trace_id, run_span_id(record.run_id), sampled)
        return self._trace

    def begin(self) -> tuple[int, str]:
        """A new attempt's span id and its `traceparent` header. On every call attempt's
        path, so no hash: the segment's base id (a hash of the run and the incarnation)
        plus the count of attempts begun times an odd constant, modulo 2**64, which is
        distinct for each count."""
        self.begun += 1
        if self._header is None:
            incarnation = uuid.uuid4().hex
            self._base = derived_id(64, "attempt", self.record.run_id, incarnation)
            run = self.run_context()
            self._header = (f"00-{run.trace_id:032x}-", "-01" if run.sampled else "-00")
        span_id = (self._base + self.begun * _SPREAD) & _MASK64 or 1
        before, after = self._header
        return span_id, f"{before}{span_id:016x}{after}"


_SPREAD = 0x9E3779B97F4A7C15
"""An odd constant (2**64 over the golden ratio): consecutive counts give ids far apart."""
_MASK64 = (1 << 64) - 1


def journaled_span_id(data: dict[str, Any]) -> int | None:
    """The span id an attempt was given when it began (`AttemptSpans`), if journaled."""
    text = data.get(SPAN_DATA)
    if not isinstance(text, str) or len(text) != 16:
        return None
    try:
        return int(text, 16) or None
    except ValueError:
        return None


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def journal_spans(
    run: RunRecord, events: Iterable[Event], *, parent_trace: int | None = None
) -> list[JournalSpan]:
    """Every span the run's journal holds so far, ordered by the event that ends each."""
    trace_id, run_parent = run_trace(run, parent_trace)
    root = run_span_id(run.run_id)
    spans: list[JournalSpan] = []
    segment = 0
    started_at: float | None = None
    open_checkpoints: dict[tuple[str | None, str], Event] = {}
    attempt_spans: set[int] = set()

    def step(event: Event, name: str, attempt: Any, attrs: dict[str, AttributeValue]) -> None:
        data = event.data if isinstance(event.data, dict) else {}
        ms = _number(data.get("ms"))
        journaled = journaled_span_id(data)
        if journaled in attempt_spans:
            return  # the attempt's second entry (a retry decided after a reconcile lookup)
        if journaled is not None:
            attempt_spans.add(journaled)
        span_id = journaled or derived_id(
            64, "step", run.run_id, event.state, event.branch, attempt, segment, event.seq
        )
        attributes: dict[str, AttributeValue] = {
            "mnlang.run.id": run.run_id,
            "mnlang.state": event.state or "",
            "mnlang.branch": event.branch,
            "mnlang.attempt": int(attempt) if isinstance(attempt, int) else 1,
            "mnlang.segment": segment,
            "mnlang.seq": event.seq,
            **attrs,
        }
        error = None
        if isinstance(data.get("error"), dict):
            error = str(data["error"].get("message", "error"))
        elif event.kind in ("retry", "attempt_failed", "call_failed"):
            error = str(data.get("message", event.kind))
        spans.append(
            JournalSpan(
                trace_id,
                span_id,
                root,
                name,
                event.at - ms / 1000,
                event.at,
                event.seq,
                error,
                attributes,
            )
        )

    for event in events:
        data: dict[str, Any] = event.data if isinstance(event.data, dict) else {}
        if event.kind in ("started", "resumed"):
            segment += 1
            if started_at is None:
                started_at = event.at
        elif event.kind == "tool":
            step(
                event,
                f"tool {data.get('tool')}",
                data.get("attempt"),
                {"mnlang.tool": str(data.get("tool"))},
            )
        elif event.kind == "effect":
            step(
                event,
                f"effect {data.get('effect')}",
                data.get("attempt"),
                {
                    "mnlang.effect": str(data.get("effect")),
                    "mnlang.effect.key": str(data.get("key")),
                },
            )
        elif event.kind in ("retry", "attempt_failed", "call_failed"):
            callee = data.get("callee") or data.get("tool") or data.get("effect") or event.kind
            step(
                event,
                f"attempt {callee}",
                data.get("attempt"),
                {"mnlang.call.kind": str(data.get("kind", ""))},
            )
        elif event.kind == "model_reply":
            usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
            model = str(data.get("model", ""))
            attrs: dict[str, AttributeValue] = {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": str(data.get("provider", "")),
                "gen_ai.agent.name": str(data.get("agent", "")),
                "gen_ai.response.model": model,
                "gen_ai.request.model": model,
                "mnlang.cost": str(data.get("cost", "0")),
            }
            assert isinstance(usage, dict)
            for key in ("input_tokens", "output_tokens"):
                if isinstance(usage.get(key), int):
                    attrs[f"gen_ai.usage.{key}"] = usage[key]
            step(event, f"chat {model}".rstrip(), data.get("attempt"), attrs)
        elif event.kind in ("intent", "reattempt"):
            # An effect's intent is committed before its call: the call is in flight from
            # here, and a short span says so at once; the attempt's span follows when its
            # outcome is committed (a crash in between: a `reattempt`, another short span).
            effect = str(data.get("effect"))
            spans.append(
                JournalSpan(
                    trace_id,
                    derived_id(64, "started", run.run_id, event.state, event.branch, event.seq),
                    root,
                    f"attempt started {effect}",
                    event.at,
                    event.at,
                    event.seq,
                    None,
                    {
                        "mnlang.run.id": run.run_id,
                        "mnlang.state": event.state or "",
                        "mnlang.branch": event.branch,
                        "mnlang.effect": effect,
                        "mnlang.effect.key": str(data.get("key")),
                        "mnlang.segment": segment,
                        "mnlang.seq": event.seq,
                    },
                )
            )
        elif event.kind == "checkpoint":
            open_checkpoints[(event.state, event.branch)] = event
        elif event.kind == "decided" and (
            opened := open_checkpoints.pop((event.state, event.branch), None)
        ):
            choice = event.data.get("choice") if isinstance(event.data, dict) else None
            spans.append(
                JournalSpan(
                    trace_id,
                    derived_id(64, "checkpoint", run.run_id, event.state, event.branch, event.seq),
                    root,
                    f"checkpoint {event.state}",
                    opened.at,
                    event.at,
                    event.seq,
                    None,
                    {
                        "mnlang.run.id": run.run_id,
                        "mnlang.state": event.state or "",
                        "mnlang.decision.choice": str(choice),
                        "mnlang.seq": event.seq,
                    },
                )
            )
        elif event.kind in ENDED:
            error = None if event.kind == "completed" else str(data.get("error", event.kind))
            spans.append(
                JournalSpan(
                    trace_id,
                    root,
                    run_parent,
                    f"run {run.workflow}",
                    started_at if started_at is not None else event.at,
                    event.at,
                    event.seq,
                    error,
                    {
                        "mnlang.run.id": run.run_id,
                        "mnlang.workflow": run.workflow,
                        "mnlang.workflow.class": run.workflow_class,
                        "mnlang.status": event.kind,
                        "mnlang.segments": segment,
                    },
                )
            )
    return spans


def trace_id_of(store: Store, run_id: str) -> int | None:
    """The trace id of a run's spans, as `journal_spans` gives them; None for no such run."""
    run = store.get_run(run_id, args=False)
    if run is None:
        return None
    parent_trace = trace_id_of(store, run.parent_run_id) if run.parent_run_id else None
    return run_trace(run, parent_trace)[0]
