"""Prometheus `/metrics`, through prometheus-client, in two places that never overlap:

- **`mnc serve`** exports the journal: runs by workflow, class and status, the queue
  (runnable, waiting, leased: one aggregate query), the product metrics of the runs that
  ended (docs/metrics.md, from facts kept between scrapes: `metrics.compute.KeptFacts`)
  and the checkpoint wait time. One server's figures are the journal's, so they are never
  summed over several processes.
- **`mnc worker --metrics-port`** exports what this worker did: runs claimed, ended, lost
  and taken over, retries, step and model request latencies, tokens and cost. Summed over
  workers, they are the fleet's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from mnlang.stores.base import NewEvent, Store

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from mnlang.metrics.compute import KeptFacts
    from mnlang.runtime.worker import WorkerStats

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
"""Seconds: a step or a model request, from a cached lookup to a slow model's answer."""
WAIT_BUCKETS = (1, 10, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400)
"""Seconds: a checkpoint's wait for a person, from a second to a week."""


class WorkerMetrics:
    """What one worker does, counted as its runs journal it (`observe` sees every event
    before its commit: a batch a crash lost is counted by the worker that did the work and
    again by the one that does it over, as work done twice)."""

    def __init__(self, registry: CollectorRegistry, stats: Callable[[], WorkerStats]) -> None:
        from prometheus_client import Counter, Histogram

        registry.register(_WorkerCollector(stats))  # type: ignore[arg-type]
        self.step_seconds = Histogram(
            "mnlang_worker_step_duration_seconds",
            "Tool and effect calls that succeeded, by kind: the call's own duration.",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.model_seconds = Histogram(
            "mnlang_worker_model_request_duration_seconds",
            "Model requests, answered or failed, by provider.",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.retries = Counter(
            "mnlang_worker_retries",
            "Call attempts that failed and were retried, by error kind.",
            ["error_kind"],
            registry=registry,
        )
        self.tokens = Counter(
            "mnlang_worker_model_tokens",
            "Tokens of model requests, by type (input, output).",
            ["type"],
            registry=registry,
        )
        self.cost = Counter(
            "mnlang_worker_cost_dollars",
            "Cost of the model requests and priced calls this worker made, by source.",
            ["source"],
            registry=registry,
        )

    def observe(self, event: NewEvent) -> None:
        data: dict[str, Any] = event.data if isinstance(event.data, dict) else {}
        if event.kind in ("tool", "effect", "compensated"):
            kind = "tool" if event.kind == "tool" else "effect"
            self.step_seconds.labels(kind).observe(_number(data.get("ms")) / 1000)
            self._cost("tool", data.get("cost"))
        elif event.kind == "model_reply":
            provider = str(data.get("provider") or "")
            self.model_seconds.labels(provider).observe(_number(data.get("ms")) / 1000)
            usage = data.get("usage")
            if isinstance(usage, dict):
                for kind in ("input", "output"):
                    used = usage.get(f"{kind}_tokens")
                    if isinstance(used, int) and used > 0:
                        self.tokens.labels(kind).inc(used)
            self._cost("model", data.get("cost"))
        elif event.kind == "retry":
            self.retries.labels(str(data.get("kind") or "")).inc()

    def _cost(self, source: str, amount: Any) -> None:
        try:
            value = Decimal(str(amount)) if amount is not None else Decimal(0)
        except ArithmeticError:
            return
        if value > 0:
            self.cost.labels(source).inc(float(value))


class _WorkerCollector:
    """The worker's own counters (`WorkerStats`), read when scraped."""

    def __init__(self, stats: Callable[[], WorkerStats]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily

        stats = self.stats()
        yield CounterMetricFamily(
            "mnlang_worker_runs_claimed", "Runs this worker claimed.", value=stats.claimed
        )
        ended = CounterMetricFamily(
            "mnlang_worker_runs_ended",
            "Runs this worker left, by the status it left them in.",
            labels=["status"],
        )
        for status, n in sorted(stats.ended.items()):
            ended.add_metric([status], n)
        yield ended
        yield CounterMetricFamily(
            "mnlang_worker_lease_losses",
            "Runs whose lease this worker lost to another.",
            value=stats.lost,
        )
        yield CounterMetricFamily(
            "mnlang_worker_takeovers",
            "Runs this worker resumed mid-execution: left running by a worker that died, "
            "lost its lease or stopped.",
            value=stats.taken_over,
        )
        yield CounterMetricFamily(
            "mnlang_worker_scheduled_runs",
            "Runs this worker started on schedule.",
            value=stats.scheduled,
        )


def serve_worker_metrics(
    metrics: Callable[[CollectorRegistry], None], port: int, host: str = "127.0.0.1"
) -> tuple[int, Callable[[], None]]:
    """Serve `/metrics` on a thread with the metrics `metrics` registers; the port bound
    (for port 0) and a function to stop."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    metrics(registry)
    server, thread = start_http_server(port, host, registry=registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join()

    return server.server_port, stop


class JournalCollector:
    """The journal's figures for `mnc serve`'s `/metrics`, computed when scraped: two
    aggregate queries (runs by status, the queue) and the product metrics from facts kept
    between scrapes (only the journals of runs that moved are read again)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._facts: KeptFacts | None = None
        self._lock = threading.Lock()
        """Two scrapes at once take turns over the kept facts."""

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        runs = GaugeMetricFamily(
            "mnlang_runs",
            "Runs in the journal by workflow, workflow class and status.",
            labels=["workflow", "workflow_class", "status"],
        )
        for count in self.store.run_counts():
            runs.add_metric([count.workflow, count.workflow_class, count.status], count.count)
        yield runs
        depth = self.store.queue_depth()
        queue = GaugeMetricFamily(
            "mnlang_queue_depth",
            "Runs a worker could take now (runnable), runs waiting, runs under a live lease.",
            labels=["state"],
        )
        queue.add_metric(["runnable"], depth.runnable)
        queue.add_metric(["waiting"], depth.waiting)
        queue.add_metric(["leased"], depth.leased)
        yield queue
        yield from self._product()

    def _product(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        from mnlang.metrics.compute import KeptFacts, report_of
        from mnlang.metrics.facts import Cost
        from mnlang.metrics.render import COUNTERS, counter_values

        with self._lock:
            if self._facts is None:
                self._facts = KeptFacts(self.store)
            report = report_of(self._facts.facts())
        values = {m.workflow_class: counter_values(m) for m in report.classes}
        for name, field_name, help_text in COUNTERS:
            family = CounterMetricFamily(name, help_text, labels=["class"])
            for workflow_class, counts in values.items():
                family.add_metric([workflow_class], counts[field_name])
            yield family
        in_flight = GaugeMetricFamily(
            "mnlang_workflow_runs_in_flight", "Runs running or waiting.", labels=["class"]
        )
        injected = CounterMetricFamily(
            "mnlang_faults_injected", "Faults injected, per fault class.", labels=["class", "fault"]
        )
        recovered = CounterMetricFamily(
            "mnlang_faults_recovered",
            "Injected faults the run recovered from.",
            labels=["class", "fault"],
        )
        cost = CounterMetricFamily(
            "mnlang_cost_dollars",
            "Cost of the runs that ended, per part.",
            labels=["class", "part"],
        )
        waits = HistogramMetricFamily(
            "mnlang_checkpoint_wait_seconds",
            "Time from a checkpoint opening to a person's decision, in runs that ended.",
            labels=["class"],
        )
        for m in report.classes:
            in_flight.add_metric([m.workflow_class], m.in_flight)
            for fault, ratio in sorted(m.recovery_by_fault.items()):
                injected.add_metric([m.workflow_class, fault], ratio.denominator)
                recovered.add_metric([m.workflow_class, fault], ratio.numerator)
            for part in Cost.PARTS:
                cost.add_metric([m.workflow_class, part], float(getattr(m.cost, part)))
            buckets = [
                (str(float(bound)), sum(1 for s in m.approval_seconds if s <= bound))
                for bound in WAIT_BUCKETS
            ]
            buckets.append(("+Inf", len(m.approval_seconds)))
            waits.add_metric([m.workflow_class], buckets, sum(m.approval_seconds))
        yield from (in_flight, injected, recovered, cost, waits)


def metrics_response_body(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The exposition text of `registry` and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(registry), CONTENT_TYPE_LATEST


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0
