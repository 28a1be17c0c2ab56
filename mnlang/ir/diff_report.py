"""`mnc diff` for people: what changed per workflow, and where a paused run may move."""

from __future__ import annotations

from mnlang.ir.diff import ProgramDiff, WorkflowDiff


def diff_lines(diff: ProgramDiff) -> list[str]:
    """The diff as lines of text."""
    if diff.same:
        return [f"no change in meaning (hash {diff.new_hash[:12]})"]
    lines = [f"hash {diff.old_hash[:12]} -> {diff.new_hash[:12]}"]
    for wf in diff.workflows:
        lines.append("")
        lines += _workflow_lines(wf)
    return lines


def _workflow_lines(wf: WorkflowDiff) -> list[str]:
    if wf.status in ("added", "removed"):
        return [f"workflow {wf.name}: {wf.status} ({len(wf.added or wf.removed)} states)"]
    if wf.status == "same":
        return [f"workflow {wf.name}: unchanged"]
    lines = [f"workflow {wf.name}: changed"]
    lines += [f"  + {sid}" for sid in wf.added]
    lines += [f"  - {sid}" for sid in wf.removed]
    lines += [f"  ~ {c.id} ({c.kind}): {', '.join(c.fields)}" for c in wf.changed]
    safe = [v.state for v in wf.resume if v.safe]
    unsafe = [v for v in wf.resume if not v.safe]
    lines.append("  a run paused at one of these old states can move to the new version:")
    lines.append("    " + (", ".join(safe) if safe else "(none)"))
    if unsafe:
        lines.append("  a run paused here cannot:")
        for verdict in unsafe:
            lines.append(f"    {verdict.state}: {'; '.join(verdict.problems)}")
    return lines
