"""The worker's `/metrics` for Prometheus (`mnc worker --metrics-port`), through
prometheus-client: the journal's runs by workflow, class and status and the queue, read
from the store at each scrape, and what this worker did (claims, ends, lease losses)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from mnlang.stores.base import Store

if TYPE_CHECKING:
    from mnlang.runtime.worker import WorkerStats


class JournalCollector:
    """A prometheus-client collector that reads the journal and the worker's counters when
    scraped, so the figures are current without the worker keeping copies."""

    def __init__(self, store: Store, stats: Callable[[], WorkerStats | None]) -> None:
        self.store = store
        self.stats = stats

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        runs = GaugeMetricFamily(
            "mnlang_runs",
            "Runs in the journal by workflow, workflow class and status.",
            labels=["workflow", "workflow_class", "status"],
        )
        waiting = 0
        for count in self.store.run_counts():
            runs.add_metric([count.workflow, count.workflow_class, count.status], count.count)
            if count.status == "waiting":
                waiting += count.count
        yield runs
        queue = GaugeMetricFamily(
            "mnlang_queue_depth", "Runs a worker could move now, or waiting.", labels=["state"]
        )
        queue.add_metric(["runnable"], len(self.store.runnable_runs(limit=100_000)))
        queue.add_metric(["waiting"], waiting)
        yield queue
        stats = self.stats()
        if stats is None:
            return
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
            "mnlang_worker_scheduled_runs",
            "Runs this worker started on schedule.",
            value=stats.scheduled,
        )


def serve_metrics(
    store: Store, stats: Callable[[], WorkerStats | None], port: int, host: str = "127.0.0.1"
) -> tuple[int, Callable[[], None]]:
    """Serve `/metrics` on a thread; the port bound (for port 0) and a function to stop."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    registry.register(JournalCollector(store, stats))  # type: ignore[arg-type]
    server, thread = start_http_server(port, host, registry=registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join()

    return server.server_port, stop
