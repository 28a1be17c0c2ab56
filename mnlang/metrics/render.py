"""A `MetricsReport` for people (`metrics_lines`) and for Prometheus (`prometheus_text`).

The Prometheus exposition keeps numerators and denominators as separate counters (a
ratio is computed in the query, so it can be summed over time and classes), names follow
Prometheus' conventions (`mnlang_..._total`, `_seconds`, `_dollars`), and the only labels
are the class, the fault class and the cost part: never a run id.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from mnlang.metrics.compute import ClassMetrics, MetricsReport, Ratio
from mnlang.metrics.facts import Cost


def money(amount: Decimal | None, digits: int = 4) -> str:
    return "n/a" if amount is None else f"${amount:.{digits}f}"


def cost_parts(cost: Cost) -> str:
    return ", ".join(
        f"{part.replace('_', ' ')} {money(getattr(cost, part))}" for part in Cost.PARTS
    )


def _row(label: str, value: str, detail: str = "") -> str:
    line = f"  {label:<30}{value}"
    return f"{line:<54}{detail}".rstrip()


def _ratio_row(label: str, ratio: Ratio, detail: str = "") -> str:
    return _row(label, f"{ratio.percent():>6}  ({ratio.numerator}/{ratio.denominator})", detail)


def class_lines(metrics: ClassMetrics) -> Iterator[str]:
    yield f"{metrics.workflow_class}: {metrics.runs} runs ended, {metrics.in_flight} in flight"
    yield _ratio_row("workflow completion", metrics.completion)
    by_fault = ", ".join(f"{k} {v}" for k, v in sorted(metrics.recovery_by_fault.items()))
    yield _ratio_row("fault recovery", metrics.fault_recovery)
    if by_fault:
        yield f"    by fault: {by_fault}"
    yield _ratio_row("tool selection accuracy", metrics.tool_selection)
    yield _ratio_row("tool parameter accuracy", metrics.tool_parameters)
    yield _ratio_row("tool arguments valid, first try", metrics.arguments_first_try)
    yield _ratio_row("tool arguments valid, after repair", metrics.arguments_after_repair)
    yield _ratio_row("trajectory match", metrics.trajectory_match)
    refused = f"{metrics.unsafe_attempts} refused attempts" if metrics.unsafe_attempts else ""
    yield _ratio_row("unsafe action rate", metrics.unsafe_actions, refused)
    per_success = metrics.cost_per_successful
    yield _row(
        "cost per successful workflow",
        f"{money(per_success):>7}  ({money(metrics.cost.total)}/{metrics.successful})",
    )
    yield f"    {cost_parts(metrics.cost)}"
    yield _ratio_row("planned checkpoints", metrics.planned_checkpoints)
    yield _ratio_row("unplanned repairs", metrics.unplanned_repairs)
    if metrics.reconciled:
        yield _row("reconciled outcomes", str(metrics.reconciled), "(settled without a person)")
    yield _ratio_row("human intervention", metrics.human_intervention)
    yield _ratio_row("human overrides", metrics.human_overrides)
    median = metrics.approval_median_s
    decisions = len(metrics.approval_seconds)
    yield _row(
        "approval completion time",
        "n/a" if median is None else f"median {median:.3g}s ({decisions} decisions)",
    )
    if metrics.duplicate_commits or metrics.journal_gaps:
        yield (
            f"  integrity: {metrics.duplicate_commits} duplicate effect commits, "
            f"{metrics.journal_gaps} journal gaps"
        )


def metrics_lines(report: MetricsReport) -> list[str]:
    removed = (
        f" ({report.removed_runs} ended runs removed by `mnc gc` are not counted)"
        if report.removed_runs
        else ""
    )
    if not report.classes:
        mine = "" if report.workflow_class is None else " of this class"
        return [f"no runs{mine}{removed}"]
    lines: list[str] = [f"covers runs started from {_utc(report.earliest)} to now{removed}"]
    blocks = list(report.classes)
    if len(blocks) > 1:
        blocks.append(report.total)
    for metrics in blocks:
        if lines:
            lines.append("")
        lines.extend(class_lines(metrics))
    return lines


def _utc(at: float | None) -> str:
    from datetime import UTC, datetime

    if at is None:
        return "n/a"
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, labels: dict[str, str], value: float | int | Decimal) -> None:
        text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        self.lines.append(f"{name}{{{text}}} {value}")


COUNTERS: list[tuple[str, str, str]] = [
    ("mnlang_workflow_runs_total", "runs", "Runs that ended."),
    ("mnlang_workflow_successful_runs_total", "successful", "Runs that did what was expected."),
    ("mnlang_tool_calls_compared_total", "compared", "Tool calls compared with expectations."),
    ("mnlang_tool_calls_selected_correctly_total", "selected", "Calls of the expected tool."),
    (
        "mnlang_tool_calls_parameters_correct_total",
        "parameters",
        "Calls of the expected tool with the expected arguments.",
    ),
    ("mnlang_tool_call_first_tries_total", "first_tries", "Agent tool calls, repairs aside."),
    (
        "mnlang_tool_call_arguments_valid_first_try_total",
        "valid_first",
        "First tries whose arguments fitted the parameters.",
    ),
    (
        "mnlang_tool_call_arguments_valid_after_repair_total",
        "valid_after_repair",
        "First tries whose arguments fitted at once or after a repair.",
    ),
    ("mnlang_trajectories_total", "trajectories", "Runs with an expected tool trajectory."),
    ("mnlang_trajectories_matched_total", "matched", "Runs whose trajectory matched exactly."),
    ("mnlang_actions_total", "actions", "Tool and effect calls made."),
    ("mnlang_unsafe_actions_total", "unsafe", "Unsafe actions (docs/metrics.md)."),
    ("mnlang_unsafe_attempts_refused_total", "refused", "Agent calls outside its tools, refused."),
    ("mnlang_runs_with_checkpoint_total", "checkpoints", "Runs that opened a checkpoint."),
    ("mnlang_runs_with_repair_total", "repairs", "Runs that needed a repair or compensation."),
    (
        "mnlang_reconciled_outcomes_total",
        "reconciled",
        "Uncertain effect outcomes a reconcile tool settled without a person.",
    ),
    ("mnlang_runs_with_human_decision_total", "intervened", "Runs a person decided in."),
    ("mnlang_human_decisions_total", "decisions", "Decisions made by people."),
    ("mnlang_human_overrides_total", "overrides", "Decisions against the proposed option."),
    ("mnlang_duplicate_effect_commits_total", "duplicates", "Effect keys committed again."),
    ("mnlang_journal_gaps_total", "gaps", "Missing journal sequence numbers."),
]


def counter_values(m: ClassMetrics) -> dict[str, int]:
    return {
        "runs": m.runs,
        "successful": m.successful,
        "compared": m.tool_selection.denominator,
        "selected": m.tool_selection.numerator,
        "parameters": m.tool_parameters.numerator,
        "first_tries": m.arguments_first_try.denominator,
        "valid_first": m.arguments_first_try.numerator,
        "valid_after_repair": m.arguments_after_repair.numerator,
        "trajectories": m.trajectory_match.denominator,
        "matched": m.trajectory_match.numerator,
        "actions": m.unsafe_actions.denominator,
        "unsafe": m.unsafe_actions.numerator,
        "refused": m.unsafe_attempts,
        "checkpoints": m.planned_checkpoints.numerator,
        "repairs": m.unplanned_repairs.numerator,
        "reconciled": m.reconciled,
        "intervened": m.human_intervention.numerator,
        "decisions": m.human_overrides.denominator,
        "overrides": m.human_overrides.numerator,
        "duplicates": m.duplicate_commits,
        "gaps": m.journal_gaps,
    }


def prometheus_text(report: MetricsReport) -> str:
    out = _Exposition()
    values = {m.workflow_class: counter_values(m) for m in report.classes}
    for name, field_name, help_text in COUNTERS:
        out.family(name, "counter", help_text)
        for workflow_class, counts in values.items():
            out.sample(name, {"class": workflow_class}, counts[field_name])
    out.family("mnlang_workflow_runs_in_flight", "gauge", "Runs running or waiting.")
    for m in report.classes:
        out.sample("mnlang_workflow_runs_in_flight", {"class": m.workflow_class}, m.in_flight)
    out.family("mnlang_faults_injected_total", "counter", "Faults injected, per fault class.")
    for m in report.classes:
        for fault, ratio in sorted(m.recovery_by_fault.items()):
            labels = {"class": m.workflow_class, "fault": fault}
            out.sample("mnlang_faults_injected_total", labels, ratio.denominator)
    out.family(
        "mnlang_faults_recovered_total", "counter", "Injected faults the run recovered from."
    )
    for m in report.classes:
        for fault, ratio in sorted(m.recovery_by_fault.items()):
            labels = {"class": m.workflow_class, "fault": fault}
            out.sample("mnlang_faults_recovered_total", labels, ratio.numerator)
    out.family("mnlang_cost_dollars_total", "counter", "Cost of the runs that ended, per part.")
    for m in report.classes:
        for part in Cost.PARTS:
            labels = {"class": m.workflow_class, "part": part}
            out.sample("mnlang_cost_dollars_total", labels, getattr(m.cost, part))
    out.family(
        "mnlang_approval_completion_seconds",
        "summary",
        "Time from a checkpoint opening to a person's decision.",
    )
    for m in report.classes:
        labels = {"class": m.workflow_class}
        median = m.approval_median_s
        if median is not None:
            out.sample("mnlang_approval_completion_seconds", {**labels, "quantile": "0.5"}, median)
        out.sample(
            "mnlang_approval_completion_seconds_sum", labels, round(sum(m.approval_seconds), 6)
        )
        out.sample("mnlang_approval_completion_seconds_count", labels, len(m.approval_seconds))
    return "\n".join(out.lines) + "\n"
