"""Forking a recorded run: replay it up to a state, then go on live as a new run.

`fork_run` starts a new run (new id, in the journal the caller names) with the recorded
run's input. Everything the recorded run did before the first step at the fork state is
answered from its recording, as a replay would; from there on the new run is live: tools
are called, agents ask the models the caller names, `now()` reads the clock, and
checkpoints and events wait for real people and systems.

Effects are the exception. A fork is a new run with new wire keys, so an effect it
performs is performed again in the real world. Unless `live_effects` is set, an effect
after the fork point is answered from the source run's ledger (its recorded result for
the same arguments), and one the source run never made is refused: the call fails with
a `tool_error` naming `--live-effects`. The outcome lists each effect so answered or
refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mnlang.errors import TOOL_ERROR, MnError
from mnlang.ir.model import IRProgram, ToolIR
from mnlang.models.base import ModelReply, ModelRequest
from mnlang.models.setup import ModelSetup
from mnlang.replay.answers import RecordedAnswers
from mnlang.replay.engine import Driver, ReplayError, recorded_program
from mnlang.replay.recording import RecordedRun, Recording
from mnlang.runtime.run import RunOutcome
from mnlang.stores.base import Store

MAX_RESUMES = 500


@dataclass
class ForkOutcome:
    source_run_id: str
    outcome: RunOutcome
    fork_state: str
    replayed_steps: int
    """Journal events of the source run before the fork point."""
    effects_from_ledger: list[str] = field(default_factory=list)
    effects_refused: list[str] = field(default_factory=list)
    live_effects: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "source_run_id": self.source_run_id,
            "fork_state": self.fork_state,
            "replayed_steps": self.replayed_steps,
            "live_effects": self.live_effects,
            "effects_from_ledger": self.effects_from_ledger,
            "effects_refused": self.effects_refused,
            **self.outcome.to_json(),
        }


def fork_point(recording: Recording, program: IRProgram, live_from: str) -> tuple[str, int]:
    """The state the fork goes live at and the index of its first journal event in the
    root run; `live_from` is a state id (as `mnc log` shows) or a source line number."""
    root = recording.root
    workflow = program.workflows.get(root.record.workflow)
    states = workflow.states if workflow is not None else {}
    wanted = {live_from}
    if live_from.isdigit() or ":" in live_from:
        line = int(live_from.rsplit(":", 1)[-1]) if live_from.rsplit(":", 1)[-1].isdigit() else -1
        wanted = {sid for sid, state in states.items() if state.span.line == line}
    for index, event in enumerate(root.events):
        if event.state in wanted:
            return (str(event.state), index)
    raise ReplayError(
        f"run `{root.record.run_id}` never reached `{live_from}`",
        help="give a state id from `mnc log RUN` or the line of a statement the run executed",
    )


def _cut(recording: Recording, index: int) -> Recording:
    root = recording.root
    events = root.events[:index]
    started = {
        str(e.data.get("run")) for e in events if e.kind == "child" and isinstance(e.data, dict)
    }
    children = [c for c in root.children if c.record.run_id in started]
    return Recording(RecordedRun(root.record, events, children), recording.programs)


class ForkAnswers(RecordedAnswers):
    """Recorded answers up to the fork point, live ones after it, effects guarded."""

    def __init__(
        self,
        before: Recording,
        whole: Recording,
        program: IRProgram,
        old: IRProgram,
        live: ModelSetup,
        live_effects: bool,
    ) -> None:
        super().__init__(before, program, old)
        self.ledger = RecordedAnswers(whole, program, old)
        self.live = live
        self.live_effects = live_effects
        self.from_ledger: list[str] = []
        self.refused: list[str] = []

    def stand_in(
        self, tool: ToolIR, args: dict[str, Any], attempt: int
    ) -> Callable[[], Any] | None:
        misses = len(self.misses)
        recorded = super().stand_in(tool, args, attempt)
        if len(self.misses) == misses:
            return recorded
        del self.misses[misses:]  # after the fork point: not a miss, a live call
        if tool.name not in self.program.effects or self.live_effects:
            return None
        from_ledger = self.ledger.stand_in(tool, args, attempt)
        if len(self.ledger.misses) == 0:
            self.from_ledger.append(tool.name)
            return from_ledger
        del self.ledger.misses[:]
        self.refused.append(tool.name)

        def refuse() -> Any:
            raise MnError(
                TOOL_ERROR,
                f"fork: effect `{tool.name}` was not made by the source run and would happen "
                "again in the real world; give --live-effects to perform it",
            )

        return refuse

    def complete(self, request: ModelRequest) -> ModelReply:
        misses = len(self.misses)
        try:
            return super().complete(request)
        except MnError:
            if len(self.misses) == misses:
                raise  # a recorded failure
            del self.misses[misses:]
        agent = self.program.agents[request.agent]
        return self.live.provider_for(agent).complete(request)

    def external(self, workflow: str, name: str, branch: str) -> Any:
        misses = len(self.misses)
        value = super().external(workflow, name, branch)
        del self.misses[misses:]
        return value


def fork_run(
    recording: Recording,
    live_from: str,
    target: Store,
    *,
    program: IRProgram | None = None,
    models: str | None = None,
    live_effects: bool = False,
    run_id: str | None = None,
) -> ForkOutcome:
    """Replay `recording` up to `live_from`, then run on live as a new run in `target`."""
    from mnlang.runtime.config import RuntimeConfig
    from mnlang.runtime.run import resume_run, start_run

    root = recording.root.record
    old = recorded_program(recording, root.ir_hash)
    new = program or old
    if root.workflow not in new.workflows:
        raise ReplayError(f"the program has no workflow `{root.workflow}`")
    state, index = fork_point(recording, old, live_from)
    live = ModelSetup.from_spec(models, new.source.dir)
    answers = ForkAnswers(_cut(recording, index), recording, new, old, live, live_effects)
    config = RuntimeConfig(
        models=ModelSetup(spec=f"fork:{live.spec}", override=answers),
        doubles=answers,
        externals=answers,
    )
    fork_id = run_id or f"{root.run_id}-fork-{uuid.uuid4().hex[:8]}"
    outcome = start_run(target, new, root.workflow, root.args, run_id=fork_id, config=config)
    driver = Driver(target, answers, move_clock=False, only=fork_id)
    for _ in range(MAX_RESUMES):
        if outcome.status != "waiting" or not driver.act():
            break
        outcome = resume_run(target, fork_id, program=new, config=config)
    return ForkOutcome(
        root.run_id,
        outcome,
        state,
        index,
        answers.from_ledger,
        answers.refused,
        live_effects,
    )
