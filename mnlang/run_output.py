"""How the run commands (`mnc run`, `resume`, `runs`, `show`, `log`, `cancel`) print for
people: live step lines while a run executes, its outcome, the runs table, a run's
details and its journal. `--json` output does not pass through here.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mnlang.runtime.run import RunOutcome
    from mnlang.runtime.views import RunDetails
    from mnlang.stores.base import Event, NewEvent, Quarantine, RunRecord

_STATUS_STYLE = {
    "completed": "green",
    "failed": "red",
    "cancelled": "yellow",
    "waiting": "cyan",
    "running": "blue",
}


def _select_lines(run_id: str, wait: dict[str, Any]) -> list[str]:
    """What a waiting select waits for, one line each, with the command that answers it."""
    lines: list[str] = []
    for address in wait.get("events") or []:
        name, _, key = str(address).partition("#")
        keyed = f" --key {shlex.quote(key)}" if key else ""
        lines.append(f"    event {address}: mnc signal {run_id} {name}{keyed} [JSON]")
    for checkpoint in wait.get("checkpoints") or []:
        lines.append(f"    checkpoint {checkpoint}: mnc approve {run_id} {checkpoint}")
    if wait.get("timer"):
        lines.append(f"    timer {wait['timer']} (below)")
    return lines


def _short(value: Any, width: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def event_summary(kind: str, data: Any, names: Mapping[str, str] | None = None) -> str:
    """One line about a journal event; `names` are checkpoint names by checkpoint id."""
    d = data if isinstance(data, dict) else {}
    if kind in ("tool", "effect", "agent", "compensated"):
        name = d.get(kind) or d.get("effect") or d.get("tool") or ""
        tries = f", try {d['attempt']}" if d.get("attempt", 1) > 1 else ""
        return f"{name} -> {_short(d.get('result'), 60)} ({d.get('ms', 0):.1f} ms{tries})"
    if kind == "intent":
        return f"{d.get('effect')} key {_short(d.get('key'), 60)}"
    if kind == "replayed":
        return f"{d.get('effect')} key {_short(d.get('key'), 50)}: committed before, not called"
    if kind in ("retry", "call_failed", "attempt_failed"):
        delay = f", again in {d['delay_ms']} ms" if "delay_ms" in d else ""
        raised = f" ({d['exception']})" if d.get("exception") else ""
        return (
            f"{d.get('callee')} try {d.get('attempt')}: {d.get('kind')}{raised}: "
            f"{_short(d.get('message'), 60)}{delay}"
        )
    if kind == "log":
        return str(d.get("message", ""))
    if kind in ("caught", "failed", "cancelled", "aborting", "compensation_failed"):
        error = d.get("error", d)
        by = f" (by {d['by']})" if d.get("by") else ""
        return f"{error.get('kind')}: {_short(error.get('message'), 70)}{by}"
    if kind == "completed":
        return _short(d.get("result"), 80)
    if kind == "checkpoint":
        name = (names or {}).get(str(d.get("id")))
        shown = f"{name} ({d.get('id')})" if name else str(d.get("id"))
        return f"{shown}: {_short(d.get('ask') or '', 60)} {d.get('options')}"
    if kind == "signal":
        key = f" for {d['key']}" if d.get("key") is not None else ""
        by = f" (by {d['by']})" if d.get("by") else ""
        return f"{d.get('event')}{key}: {_short(d.get('payload'), 50)}{by}"
    if kind == "decided" and d.get("by"):
        choice = d.get("choice") or ("approved" if d.get("approved") else "rejected")
        return f"{choice} by {d['by']}" + (
            f": {_short(d['comment'], 50)}" if d.get("comment") else ""
        )
    if kind == "repair_opened":
        return f"{d.get('effect')} key {_short(d.get('key'), 40)}: outcome unknown, needs a repair"
    if kind == "waiting":
        return ", ".join(
            _short({k: v for k, v in w.items() if k != "branch"}, 60) for w in d.get("for", [])
        )
    return _short(d, 80) if d else ""


def step_printer(stream: IO[str]) -> Callable[[NewEvent], None]:
    """An observer printing a line per step as the run goes (for a terminal)."""
    from rich.console import Console
    from rich.text import Text

    console = Console(file=stream, highlight=False, soft_wrap=True)
    marks = {
        "tool": ("✓", "green"),
        "effect": ("✓", "green"),
        "agent": ("✓", "green"),
        "replayed": ("=", "green"),
        "retry": ("↻", "yellow"),
        "call_failed": ("✗", "red"),
        "caught": ("⤷", "yellow"),
        "log": ("·", "dim"),
        "checkpoint": ("⏸", "cyan"),
        "wait": ("⏸", "cyan"),
        "repair_opened": ("!", "red"),
        "compensated": ("↺", "yellow"),
        "child_ended": ("✓", "green"),
    }

    def observe(event: NewEvent) -> None:
        mark = marks.get(event.kind)
        if mark is None:
            return
        symbol, style = mark
        line = Text(f"{symbol} ", style=style)
        line.append(f"{event.state or ''}", style="bold")
        if event.branch:
            line.append(f" [{event.branch}]", style="dim")
        line.append(f"  {event_summary(event.kind, event.data)}")
        console.print(line)

    return observe


def outcome_lines(outcome: RunOutcome) -> list[str]:
    lines = [f"{outcome.status}: run {outcome.run_id} ({outcome.workflow})"]
    lines += [f"warning: {w}" for w in outcome.warnings]
    if outcome.status == "completed":
        lines.append(json.dumps(outcome.result, ensure_ascii=False, indent=2))
    elif outcome.error:
        lines.append(
            f"{outcome.error.get('kind')} at {outcome.error.get('step') or '-'}: "
            f"{outcome.error.get('message')}"
        )
    elif outcome.status == "waiting":
        lines.append(f"see `mnc show {outcome.run_id}` for what it waits for")
    return lines


def runs_lines(records: Sequence[RunRecord]) -> list[str]:
    if not records:
        return ["no runs"]
    rows = [("RUN", "WORKFLOW", "STATUS", "CREATED", "UPDATED")]
    rows += [
        (
            r.run_id,
            r.workflow,
            _status_cell(r),
            _when(r.created_at),
            _when(r.updated_at),
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    damaged = [r.damaged for r in records if r.damaged]
    if damaged:
        lines += ["", *damaged, "restore the journal from a backup; `mnc db check` lists them all"]
    quarantined = [quarantine_line(r.run_id, r.quarantine) for r in records if r.quarantine]
    if quarantined:
        lines += ["", *quarantined, RELEASE_HINT]
    return lines


RELEASE_HINT = "repair a quarantined run, then `mnc db release RUN` lets workers take it again"


def _status_cell(r: RunRecord) -> str:
    marks = [m for m, on in (("damaged", r.damaged), ("quarantined", r.quarantine)) if on]
    return f"{r.status} ({', '.join(marks)})" if marks else r.status


def quarantine_help(run_id: str, quarantine: Quarantine) -> str:
    """What to do about a quarantined run, after the error that quarantined it."""
    return (
        f"worker {quarantine.by} quarantined it at {_when(quarantine.at)}; once it is "
        f"repaired, `mnc db release {run_id}` lets workers take it again"
    )


def quarantine_line(run_id: str, quarantine: Quarantine) -> str:
    """When, by which worker and why a run was quarantined."""
    return (
        f"run {run_id} quarantined {_when(quarantine.at)} by worker {quarantine.by}: "
        f"{quarantine.reason}"
    )


def _cancel_note(run: RunRecord) -> str:
    if not run.cancel_requested:
        return ""
    by = f" by {run.cancel_requested_by}" if run.cancel_requested_by else ""
    return f"  (cancel requested{by})"


def show_lines(details: RunDetails) -> list[str]:
    run = details.run
    lines = [
        f"run       {run.run_id}",
        f"workflow  {run.workflow}"
        + (f" (class {run.workflow_class})" if run.workflow_class else ""),
        f"status    {run.status}" + _cancel_note(run),
        f"created   {_when(run.created_at)}",
        f"cost      ${details.cost}",
    ]
    if run.quarantine:
        lines += [
            f"quarantined {_when(run.quarantine.at)} by worker {run.quarantine.by}: "
            f"{run.quarantine.reason}",
            f"    release: mnc db release {run.run_id} (once it is repaired)",
        ]
    if run.parent_run_id:
        lines.append(f"parent    {run.parent_run_id}")
    if details.unserved:
        lines.append(f"worker    {details.unserved}")
    if run.result is not None:
        lines.append(f"result    {_short(run.result, 100)}")
    if run.error:
        lines.append(
            f"error     {run.error.get('kind')} at {run.error.get('step')}: {run.error.get('message')}"
        )
    names = {c.checkpoint_id: c.name for c in details.checkpoints}
    if details.positions:
        lines.append("position")
        for p in details.positions:
            wait = p.waiting_for if isinstance(p.waiting_for, dict) else {}
            note = f"  waiting: {_short(p.waiting_for, 70)}" if p.waiting_for else ""
            if "select" in wait:
                note = "  select: waiting for the first of"
            at = f"checkpoint {names[p.state]} ({p.state})" if p.state in names else p.state
            lines.append(f"  {p.branch}: {at}{note}")
            if "select" in wait:
                lines += _select_lines(run.run_id, wait)
            if "event" in wait:
                event = str(wait["event"]).rsplit(".", 1)[-1]
                keyed = f" --key {shlex.quote(str(wait['key']))}" if "key" in wait else ""
                lines.append(f"    signal: mnc signal {run.run_id} {event}{keyed} [JSON]")
    if details.checkpoints:
        lines.append("pending")
        for c in details.checkpoints:
            request = c.request if isinstance(c.request, dict) else {}
            if c.name == "repair":
                lines.append(
                    f"  repair {c.checkpoint_id}: `{request.get('effect')}` key "
                    f"{request.get('key')} has an unknown outcome; options {request.get('options')}"
                )
                lines.append(
                    f"    decide: mnc approve {run.run_id} {c.checkpoint_id} --choice "
                    "mark_done --result JSON | --choice retry; mnc reject fails the step"
                )
            else:
                lines.append(
                    f"  checkpoint {c.name} ({c.checkpoint_id}): {request.get('ask')} "
                    f"{request.get('options')}"
                )
                lines.append(f"    {_times_out(request)}")
                lines.append(
                    f"    decide: mnc approve {run.run_id} {c.name} [--choice OPTION], "
                    f"or mnc reject {run.run_id} {c.name}"
                )
    for t in details.timers:
        lines.append(f"  timer {t.timer_id} due {_when(t.due_at)}")
    if details.unread:
        lines.append(f"unread signals ({len(details.unread)}: no wait has taken them yet)")
        for sig in details.unread:
            keyed = f" key {sig.key}" if sig.key is not None else ""
            lines.append(
                f"  {sig.name.rsplit('.', 1)[-1]}{keyed}  sent {_when(sig.sent_at)}  "
                f"{_short(sig.payload, 60)}"
            )
    if details.steps:
        lines.append(f"steps ({len(details.steps)})")
        for e in details.steps:
            d = e.data if isinstance(e.data, dict) else {}
            lines.append(f"  {e.state}  {event_summary(e.kind, e.data)}")
            if "args" in d:
                lines.append(f"      in:  {_short(d['args'], 100)}")
    if details.retries:
        lines.append(f"retries ({len(details.retries)})")
        lines += [f"  {e.state}  {event_summary(e.kind, e.data)}" for e in details.retries]
    if details.failures:
        lines.append(f"failures ({len(details.failures)})")
        for e in details.failures:
            lines.append(f"  {e.state or '-'}  {e.kind}: {event_summary(e.kind, e.data)}")
            lines += _traceback_lines(e.data)
    return lines


def _traceback_lines(data: Any) -> list[str]:
    """A failed call's trimmed traceback (`mnlang.runtime.failures.trimmed_traceback`),
    indented under its line."""
    text = data.get("traceback") if isinstance(data, dict) else None
    return [f"      | {line}" for line in text.splitlines()] if isinstance(text, str) else []


def log_lines(events: Sequence[Event], names: Mapping[str, str] | None = None) -> list[str]:
    """The journal, a line per event; `names` are checkpoint names by checkpoint id."""
    lines = []
    for e in events:
        lines.append(
            f"{e.seq:>5}  {_when(e.at)}  {e.kind:<14} {(e.state or '-'):<28} "
            f"{('[' + e.branch + '] ') if e.branch else ''}"
            f"{event_summary(e.kind, e.data, names)}".rstrip()
        )
        if e.kind == "call_failed":
            lines += _traceback_lines(e.data)
    return lines


def _times_out(request: dict[str, Any]) -> str:
    """When a checkpoint decides itself (an agent's approval has a timeout by default)."""
    timeout_ms = request.get("timeout_ms")
    if timeout_ms is None:
        return "timeout: never (waits for a person)"
    return f"timeout: {_duration(int(timeout_ms))}, then {request.get('on_timeout')}"


def _duration(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"
