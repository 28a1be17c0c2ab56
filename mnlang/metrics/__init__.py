"""The product metrics of a journal, per workflow class (docs/metrics.md).

`compute_metrics(store, workflow_class=None, since=None) -> MetricsReport` reads the
runs and their journals; `mnc metrics` prints the report (`render`), and `mnc bench` and
the web console read the same figures.
"""

from mnlang.metrics.compute import (
    ALL_CLASSES,
    ClassMetrics,
    MetricsReport,
    Ratio,
    compute_metrics,
    report_of,
)
from mnlang.metrics.expect import EXPECT_META, Expectation, ExpectedCall
from mnlang.metrics.facts import Cost

__all__ = [
    "ALL_CLASSES",
    "EXPECT_META",
    "ClassMetrics",
    "Cost",
    "Expectation",
    "ExpectedCall",
    "MetricsReport",
    "Ratio",
    "compute_metrics",
    "report_of",
]
