"""Exporting the journal's spans over OTLP/HTTP, each once, behind a delivery cursor.

The cursor is kept in the journal (`Store.export_cursor`, one per exporter name): for each
run, the journal sequence number up to which its spans were accepted by the receiver. A
pass reads what each run journaled past its cursor, exports the spans those events
finish, and only after the receiver accepted them moves the cursor, in one transaction. A
crash before that commit sends the same spans again, with the same ids (a backend keeps
one span per id); a crash of the run itself loses nothing, since spans are built from
committed events only.

OpenTelemetry is imported here only, when an exporter is made: the exporter reads the
standard `OTEL_EXPORTER_OTLP_*` variables and the resource `OTEL_SERVICE_NAME` and
`OTEL_RESOURCE_ATTRIBUTES`; no tracer provider is set or replaced.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mnlang.stores.base import Store
from mnlang.telemetry.spans import JournalSpan, journal_spans, run_trace

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter

DEFAULT_CURSOR = "traces"
"""The name of `mnc export traces`'s cursor unless `--cursor` names another (one per
receiver: two backends fed from one journal each have their own)."""


def otlp_exporter() -> SpanExporter:
    """The OTLP/HTTP span exporter, configured by the `OTEL_EXPORTER_OTLP_*` variables."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def readable(spans: Sequence[JournalSpan]) -> list[ReadableSpan]:
    """The spans as the OpenTelemetry SDK hands them to exporters."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

    from mnlang import __version__

    resource = Resource.create({"service.name": "mnlang"})
    scope = InstrumentationScope("mnlang", __version__)
    sampled = TraceFlags(TraceFlags.SAMPLED)
    out: list[ReadableSpan] = []
    for span in spans:
        context = SpanContext(span.trace_id, span.span_id, is_remote=False, trace_flags=sampled)
        parent = (
            None
            if span.parent_id is None
            else SpanContext(span.trace_id, span.parent_id, is_remote=False, trace_flags=sampled)
        )
        status = (
            Status(StatusCode.ERROR, span.error)
            if span.error is not None
            else Status(StatusCode.OK)
        )
        out.append(
            ReadableSpan(
                name=span.name,
                context=context,
                parent=parent,
                resource=resource,
                attributes=span.attributes,
                kind=SpanKind.INTERNAL,
                status=status,
                start_time=int(span.start * 1e9),
                end_time=int(span.end * 1e9),
                instrumentation_scope=scope,
            )
        )
    return out


class JournalExporter:
    """Exports the spans of every run in a store past the cursor; `export_once` is a pass."""

    def __init__(
        self,
        store: Store,
        cursor: str = DEFAULT_CURSOR,
        exporter: SpanExporter | None = None,
    ) -> None:
        self.store = store
        self.cursor = cursor
        self.exporter = exporter if exporter is not None else otlp_exporter()

    def pending(self, cursor: dict[str, int]) -> tuple[list[JournalSpan], dict[str, int]]:
        """The spans past the cursor and the cursor that follows them."""
        moved = dict(cursor)
        spans: list[JournalSpan] = []
        traces: dict[str, int] = {}
        runs = self.store.list_runs(limit=1_000_000)
        by_id = {run.run_id: run for run in runs}
        # Parents before children, so a child finds its parent's trace.
        for run in sorted(runs, key=lambda r: (r.created_at, r.run_id)):
            parent = by_id.get(run.parent_run_id) if run.parent_run_id else None
            parent_trace = traces.get(parent.run_id) if parent is not None else None
            traces[run.run_id] = run_trace(run, parent_trace)[0]
            done = cursor.get(run.run_id, 0)
            if run.last_seq <= done:
                continue
            events = self.store.read_journal(run.run_id)
            if not events:
                continue
            spans += [
                s for s in journal_spans(run, events, parent_trace=parent_trace) if s.seq > done
            ]
            moved[run.run_id] = events[-1].seq
        return spans, moved

    def export_once(self) -> int:
        """One pass: export what is new and move the cursor; the number of spans sent."""
        from opentelemetry.sdk.trace.export import SpanExportResult

        cursor = self.store.export_cursor(self.cursor)
        spans, moved = self.pending(cursor)
        if moved == cursor:
            return 0
        if spans and self.exporter.export(readable(spans)) != SpanExportResult.SUCCESS:
            raise ExportFailed(f"the receiver refused {len(spans)} spans; the cursor stays")
        self.store.move_export_cursor(
            self.cursor, {run_id: seq for run_id, seq in moved.items() if cursor.get(run_id) != seq}
        )
        return len(spans)

    def follow(self, interval: float, stop: Any = None) -> None:
        """Export pass after pass until `stop()` is true (never, without one)."""
        while stop is None or not stop():
            # A refused pass leaves the cursor: the next pass sends the same spans.
            with contextlib.suppress(ExportFailed):
                self.export_once()
            time.sleep(interval)

    def close(self) -> None:
        self.exporter.shutdown()


class ExportFailed(Exception):
    """The receiver did not accept a pass's spans."""
