"""Re-executing a recorded run and finding its first divergence.

The run is started again, with its recorded input and run id, on a throwaway in-memory
journal whose tools, effects, agents, `now()` and `uuid()` are answered from the
recording (`answers.RecordedAnswers`); whenever it waits, the driver does what the world
did: it takes the recorded decision at each open checkpoint (or lets its timeout fire),
sends the recorded event payloads, and moves the journal's clock to the next timer.

Then the two trajectories are compared, fiber by fiber (each branch of a `parallel`, each
item of a `parallel for`): the calls a fiber made (callee and arguments; an agent's
prompt), the checkpoints it opened, the events it waited for, the child runs it started,
and how the run ended. State ids take no part, so edits that do not change what the run
does replay "same". Of the fibers that differ, the one whose difference comes first in
the old run's journal order is reported, at the statement of the new program (or of the
old one, when the new program stopped short).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from mnlang.ir.load import IRLoadError, parse_ir
from mnlang.ir.model import IRProgram
from mnlang.replay.answers import RecordedAnswers, canonical
from mnlang.replay.recording import (
    RecordedRun,
    Recording,
    checkpoint_name,
    raced_quorum,
    recording_from_store,
)
from mnlang.stores.base import Event, Json, Store, split_address

MAX_RESUMES = 500
_CALLS = ("tool", "effect", "compensated")


class ReplayError(Exception):
    """A run that cannot be replayed; the message says why."""

    def __init__(self, message: str, *, help: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.help = help


@dataclass(frozen=True)
class Step:
    """One thing a fiber did that replay compares."""

    kind: str
    what: str
    args: Json
    detail: str
    state: str | None
    order: int

    @property
    def signature(self) -> tuple[str, str, str, str]:
        return (self.kind, self.what, canonical(self.args), self.detail)

    def describe(self) -> str:
        short = self.what.rsplit(".", 1)[-1]
        if self.kind in ("call", "agent", "child", "failed call"):
            shown = ", ".join(canonical(v) for v in (self.args or {}).values())
            text = f"{'starts child run of' if self.kind == 'child' else 'calls'} {short}({shown})"
            if self.kind == "failed call":
                text += f", which failed: {self.detail}"
            elif self.kind == "agent":
                text += f" with the prompt {self.detail!r}"
            return text
        if self.kind == "checkpoint":
            return f"opens checkpoint `{short}` ({self.detail})"
        if self.kind == "wait":
            return f"waits for event `{short}`" + (f" for {self.detail}" if self.detail else "")
        if self.kind == "end":
            return f"ends `{short}`" + (f": {self.detail}" if self.detail else "")
        return f"{self.kind} {short}"


@dataclass
class Divergence:
    run_id: str
    workflow: str
    branch: str
    where: str
    """`file:line` of the statement, in the new program (or the old one when the new
    program made no step there)."""
    statement: str
    old: str
    new: str
    reason: str

    def to_json(self) -> dict[str, Json]:
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "branch": self.branch,
            "where": self.where,
            "statement": self.statement,
            "old": self.old,
            "new": self.new,
            "reason": self.reason,
        }

    @property
    def line(self) -> int:
        return int(self.where.rsplit(":", 1)[-1]) if ":" in self.where else 0


@dataclass
class ReplayReport:
    run_id: str
    workflow: str
    status: str
    """The replayed run's status."""
    old_status: str
    divergence: Divergence | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return self.divergence is None

    def to_json(self) -> dict[str, Json]:
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "verdict": "same" if self.same else "diverged",
            "old_status": self.old_status,
            "status": self.status,
            "divergence": self.divergence.to_json() if self.divergence else None,
            "notes": self.notes,
        }


def replay_run(store: Store, run_id: str, program: IRProgram | None = None) -> ReplayReport:
    """Replay run `run_id` of `store` against `program` (default: its own program)."""
    return replay_recording(recording_from_store(store, run_id), program)


def recorded_program(recording: Recording, ir_hash: str) -> IRProgram:
    text = recording.programs.get(ir_hash)
    if text is None:
        raise ReplayError(
            f"the program {ir_hash[:12]} of the run is not in the journal",
            help="give the program to replay against with --program",
        )
    try:
        return _parse(ir_hash, text)
    except IRLoadError as e:
        raise ReplayError(f"the run's program: {e.message}", help=e.help) from None


@lru_cache(maxsize=32)
def _parse(ir_hash: str, text: str) -> IRProgram:
    """Programs are parsed once per process: `--all` replays many runs of few programs."""
    return parse_ir(text, f"program {ir_hash[:12]}")


def replay_recording(recording: Recording, program: IRProgram | None = None) -> ReplayReport:
    from mnlang.models.setup import ModelSetup
    from mnlang.runtime.clock import VirtualClock
    from mnlang.runtime.config import RuntimeConfig
    from mnlang.runtime.run import RunError, resume_run, start_run
    from mnlang.stores.base import StoreError
    from mnlang.testing.runner import ScenarioClockStore

    root = recording.root.record
    old_program = recorded_program(recording, root.ir_hash)
    new_program = program or old_program
    notes = _upgrade_notes(recording.root, program)
    if root.status not in ("completed", "failed", "cancelled"):
        notes.append(
            f"the run is `{root.status}`: replayed as far as it went, then compared up to there"
        )
    if root.workflow not in new_program.workflows:
        raise ReplayError(
            f"the program has no workflow `{root.workflow}`, which the run executed",
            help="give the program that holds it with --program",
        )
    raced = raced_quorum(recording)
    if raced is not None:
        raise ReplayError(
            f"run `{raced}` raced a quorum join (`parallel for ... first N`): which items won "
            "came from the timing of their calls, which recorded answers do not keep",
            help="its journal says which won (`quorum` events); compare runs with `mnc log`",
        )
    answers = RecordedAnswers(recording, new_program, old_program)
    config = RuntimeConfig(
        models=ModelSetup(spec="replay", override=answers),
        doubles=answers,
        externals=answers,
        workers=4,
        commit_ms=0,
        clock=VirtualClock(),
    )
    with ScenarioClockStore() as store:
        driver = Driver(store, answers)
        try:
            outcome = start_run(
                store, new_program, root.workflow, root.args, run_id=root.run_id, config=config
            )
            for _ in range(MAX_RESUMES):
                if outcome.status != "waiting" or not driver.act():
                    break
                outcome = resume_run(store, root.run_id, program=new_program, config=config)
        except (RunError, StoreError) as e:
            raise ReplayError(f"the run could not be re-executed: {e}") from None
        replayed = recording_from_store(store, root.run_id).root
    report = ReplayReport(root.run_id, root.workflow, outcome.status, root.status, notes=notes)
    report.divergence = _compare(recording.root, replayed, old_program, new_program)
    if report.divergence is None and outcome.status == "waiting" and root.status != "waiting":
        report.notes.append("the replay stopped waiting for something the recording lacks")
    return report


def _upgrade_notes(root: RecordedRun, program: IRProgram | None) -> list[str]:
    upgrades = [e for e in root.events if e.kind == "upgraded"]
    if not upgrades:
        return []
    first = upgrades[0].data if isinstance(upgrades[0].data, dict) else {}
    started = str(first.get("from", "?"))[:12]
    now = root.record.ir_hash[:12]
    if program is None:
        return [
            f"the run was upgraded mid-way (program {started} to {now}): replayed on {now} "
            "from its start"
        ]
    return [
        f"the run was upgraded mid-way (program {started} to {now}): --program replaces "
        "both, and the whole run is replayed on it"
    ]


class Driver:
    """Does for a waiting replay what the world did for the recorded run."""

    def __init__(
        self, store: Any, answers: RecordedAnswers, *, move_clock: bool = True, only: str = ""
    ) -> None:
        self.store = store
        self.answers = answers
        self.move_clock = move_clock
        self.only = only
        """Act only for runs whose id starts so (a fork in a shared journal)."""

    def act(self) -> bool:
        store = self.store
        acted = False
        timeouts: list[float] = []
        for checkpoint in store.open_checkpoints():
            if not checkpoint.run_id.startswith(self.only):
                continue
            record = store.get_run(checkpoint.run_id, args=False)
            workflow = record.workflow if record is not None else ""
            queue = self.answers.decisions.get((workflow, checkpoint.name))
            if not queue:
                continue
            decision = queue.popleft()
            acted = True
            by = str(decision.get("by", ""))
            request = checkpoint.request if isinstance(checkpoint.request, dict) else {}
            if by == "timeout" and isinstance(request.get("timeout_ms"), int):
                timeouts.append(request["timeout_ms"] / 1000)
                continue
            body = {k: v for k, v in decision.items() if k in ("choice", "comment")}
            store.decide_checkpoint(checkpoint.run_id, checkpoint.checkpoint_id, body, by=by)
        for record in store.list_runs(id_prefix=self.only or None, limit=100_000):
            for address in record.waiting_for or []:
                name, key = split_address(address)
                queue = self.answers.signals.get((record.workflow, name, key))
                if queue:
                    store.send_signal(record.run_id, name, queue.popleft(), key=key)
                    acted = True
        if not self.move_clock:
            return acted
        if timeouts:
            store.skew += max(timeouts) + 1.0
            return True
        return acted or bool(store.skip_to_next_timer())


# --- comparing trajectories ----------------------------------------------------------------


def _steps(run: RecordedRun, program: IRProgram) -> dict[str, list[Step]]:
    """What each fiber of a run did, by branch, in journal order."""
    fibers: dict[str, list[Step]] = defaultdict(list)
    intents: dict[str, Json] = {}
    for order, e in enumerate(run.events):
        data = e.data if isinstance(e.data, dict) else {}
        step = _step(e, data, order, intents)
        if step is not None and step.kind == "checkpoint":
            name = checkpoint_name(program, run.record.workflow, e.state)
            step = Step("checkpoint", name, None, step.detail, e.state, order)
        if step is not None:
            fibers[e.branch].append(step)
    end = run.record
    detail = canonical(end.result) if end.status == "completed" else _error_text(end.error)
    # A failure names the statement that failed: the divergence is placed there.
    at = end.error.get("step") if isinstance(end.error, dict) else None
    state = at if isinstance(at, str) else None
    fibers[""].append(Step("end", end.status, None, detail, state, len(run.events)))
    return fibers


def _step(e: Event, data: dict[str, Any], order: int, intents: dict[str, Json]) -> Step | None:
    if e.kind == "intent":
        intents[str(data.get("key"))] = data.get("args")
    if e.kind in _CALLS:
        callee = str(data.get("effect") or data.get("tool"))
        return Step("call", callee, data.get("args"), "", e.state, order)
    if e.kind == "replayed":
        args = intents.get(str(data.get("key")))
        return Step("call", str(data.get("effect")), args, "", e.state, order)
    if e.kind == "call_failed":
        kind = "agent" if data.get("kind_of_call") == "agent" else "failed call"
        detail = str(data.get("message", "")) if kind == "failed call" else ""
        return Step(kind, str(data.get("callee")), data.get("args"), detail, e.state, order)
    if e.kind == "agent":
        prompt = str(data.get("prompt", ""))
        return Step("agent", str(data.get("agent")), data.get("args"), prompt, e.state, order)
    if e.kind == "checkpoint":
        detail = f"ask {data.get('ask')!r}, options {data.get('options')}"
        return Step("checkpoint", "", None, detail, e.state, order)
    if e.kind == "wait" and "event" in data:
        return Step("wait", str(data["event"]), None, str(data.get("key") or ""), e.state, order)
    if e.kind == "child":
        return Step("child", str(data.get("workflow")), None, "", e.state, order)
    return None


def _error_text(error: Json) -> str:
    if isinstance(error, dict):
        return f"{error.get('kind')}: {error.get('message')}"
    return "" if error is None else str(error)


def _compare(
    old: RecordedRun, new: RecordedRun, old_program: IRProgram, new_program: IRProgram
) -> Divergence | None:
    """The first divergence between two runs (and, when they agree, their children)."""
    old_fibers, new_fibers = _steps(old, old_program), _steps(new, new_program)
    found: tuple[int, Divergence] | None = None
    for branch in dict.fromkeys([*old_fibers, *new_fibers]):
        was, now = old_fibers.get(branch, []), new_fibers.get(branch, [])
        i = next(
            (k for k in range(max(len(was), len(now))) if _differ(was, now, k)),
            None,
        )
        if i is None:
            continue
        position = was[i].order if i < len(was) else len(old.events) + now[i].order
        if found is None or position < found[0]:
            found = (position, _divergence(old, branch, was, now, i, old_program, new_program))
    # A child that started before the parent's first difference and differs itself is
    # where things went apart first (the parent's difference is often the child's result).
    started = {
        str(e.data.get("run")): order
        for order, e in enumerate(old.events)
        if e.kind == "child" and isinstance(e.data, dict)
    }
    pairs = sorted(
        _pairs(old.children, new.children),
        key=lambda pair: started.get(pair[0].record.run_id, len(old.events)),
    )
    for child, twin in pairs:
        if found is not None and started.get(child.record.run_id, len(old.events)) > found[0]:
            break
        divergence = _compare(child, twin, old_program, new_program)
        if divergence is not None:
            return divergence
    return found[1] if found is not None else None


def _pairs(old: list[RecordedRun], new: list[RecordedRun]) -> list[tuple[RecordedRun, RecordedRun]]:
    """Old and new children side by side: by run id (derived from the place that started
    them), else, when an edit moved that place, by order of start within each workflow."""
    by_id = {c.record.run_id: c for c in new}
    paired = [(c, by_id[c.record.run_id]) for c in old if c.record.run_id in by_id]
    taken = {id(n) for _, n in paired}
    left_old = [c for c in old if c.record.run_id not in by_id]
    left_new = [c for c in new if id(c) not in taken]
    for child in left_old:
        twin = next((c for c in left_new if c.record.workflow == child.record.workflow), None)
        if twin is not None:
            left_new.remove(twin)
            paired.append((child, twin))
    return paired


def _differ(was: list[Step], now: list[Step], k: int) -> bool:
    if k >= len(was) or k >= len(now):
        return True
    return was[k].signature != now[k].signature


def _divergence(
    old: RecordedRun,
    branch: str,
    was: list[Step],
    now: list[Step],
    i: int,
    old_program: IRProgram,
    new_program: IRProgram,
) -> Divergence:
    workflow = old.record.workflow
    before = was[i] if i < len(was) else None
    after = now[i] if i < len(now) else None
    if after is not None and after.state is not None:
        where, statement = _place(new_program, workflow, after.state)
    elif before is not None and before.state is not None:
        where, statement = _place(old_program, workflow, before.state)
    else:
        where, statement = _place(new_program, workflow, None)
    return Divergence(
        run_id=old.record.run_id,
        workflow=workflow,
        branch=branch,
        where=where,
        statement=statement,
        old=before.describe() if before else "nothing more: the fiber had ended",
        new=after.describe() if after else "nothing more: the fiber ends here",
        reason=_reason(before, after),
    )


def _reason(before: Step | None, after: Step | None) -> str:
    if before is None:
        return "the new program does more than the run did"
    if after is None:
        return "the new program stops short of what the run did"
    if after.kind == "failed call" and after.detail.startswith("replay: no recorded"):
        return "a call with no recording"
    if before.kind == after.kind and before.what == after.what:
        if canonical(before.args) != canonical(after.args):
            return "other arguments"
        if before.kind == "agent":
            return "another prompt"
        return "another outcome" if before.kind == "end" else "another detail"
    if before.state != after.state:
        return "another call or branch"
    return "another step"


def _place(program: IRProgram, workflow: str, state: str | None) -> tuple[str, str]:
    wf = program.workflows.get(workflow)
    if wf is None:
        return ("?", "")
    span = wf.states[state].span if state is not None and state in wf.states else wf.span
    file = Path(program.source.dir) / span.file
    try:
        text = file.read_text("utf-8").splitlines()[span.line - 1].strip()
    except (OSError, IndexError, UnicodeDecodeError):
        text = ""
    return (f"{span.file}:{span.line}", text)
