"""People deciding a run's checkpoints: `mnc approve`, `mnc reject`, repairs and timeouts.

A decision is one conditional write (`Store.decide_checkpoint`): the first decision
committed wins and every later one is refused. A checkpoint's timeout takes part in the
same race: once its timer is due by the store's clock the timeout has decided, whether
or not a worker has woken the run yet, so a person deciding after that moment first
commits the timeout's decision (`by: "timeout"`) and is then refused with it.

A repair checkpoint (a `once` effect whose outcome is unknown) is decided the same way
with its own options: `mark_done` with the effect's result (checked against the effect's
return type here, before it is recorded), `retry`, or `fail`.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mnlang.ir.model import IRProgram
from mnlang.ir.states import CheckpointState, SelectState
from mnlang.runtime.convert import ConversionError, Converter
from mnlang.runtime.pauses import (
    TIMEOUT_BY,
    checkpoint_timer,
    decide_timeout_if_due,
    select_checkpoint,
    select_winner,
)
from mnlang.runtime.run import RunError, load_program
from mnlang.stores.base import (
    TERMINAL_STATUSES,
    Checkpoint,
    Json,
    RunNotFound,
    RunRecord,
    Store,
    TimedDecision,
)

REPAIR = "repair"
"""The name of every repair checkpoint."""
MARK_DONE, RETRY, FAIL = "mark_done", "retry", "fail"


class DecisionRefused(RunError):
    """The checkpoint was decided before (by a person or its timeout), or is not open."""


class DecisionError(RunError):
    """The decision does not fit the checkpoint (an unknown choice, a missing result)."""


def default_decider() -> str:
    """Who decides when nobody says: the operating system's user."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER") or "unknown"


def decide_due_timeouts(store: Store, *, limit: int) -> int:
    """Commit the timeout's decision of up to `limit` open checkpoints whose timer is due,
    all in one transaction (one fsync for them all, where the run that meets its due timer
    pays one of its own); returns how many were decided.

    The decision is the one the run would record itself on resuming (its `on_timeout`,
    `by: "timeout"`): by the race rule above the timeout decided when its timer fell due,
    so recording it early changes nothing a run or a person can see, and the run then
    resumes on a decided checkpoint. A person's decision committed first wins, as always.
    """
    prefix = checkpoint_timer("")
    decisions = []
    for timer in store.due_timers(limit=limit, prefix=prefix):
        checkpoint_id = timer.timer_id.removeprefix(prefix)
        payload = timer.payload if isinstance(timer.payload, dict) else {}
        if "on_timeout" in payload:
            on_timeout = payload["on_timeout"]
        else:  # a timer set before its choice rode with it: read the checkpoint
            checkpoint = store.get_checkpoint(timer.run_id, checkpoint_id)
            request = checkpoint.request if checkpoint is not None else None
            on_timeout = request.get("on_timeout") if isinstance(request, dict) else None
        if on_timeout is not None:
            # Only an open checkpoint is decided (`decide_timeouts` checks).
            decisions.append(
                TimedDecision(timer.run_id, checkpoint_id, timer.timer_id, {"choice": on_timeout})
            )
    return store.decide_timeouts(decisions, by=TIMEOUT_BY) if decisions else 0


@dataclass(frozen=True, slots=True)
class Decided:
    """A decision that was recorded."""

    run_id: str
    checkpoint_id: str
    name: str
    choice: str
    by: str
    comment: str | None

    def to_json(self) -> dict[str, Json]:
        return {
            "run_id": self.run_id,
            "checkpoint": self.checkpoint_id,
            "name": self.name,
            "choice": self.choice,
            "by": self.by,
            "comment": self.comment,
        }


def find_checkpoint(store: Store, run_id: str, ref: str) -> tuple[RunRecord, Checkpoint]:
    """A run's checkpoint by its id (`if#2/then/decision`) or its name (`manager_review`);
    a name must name one open checkpoint of the run."""
    record = store.get_run(run_id)
    if record is None:
        raise RunNotFound(f"no run `{run_id}`", help="`mnc runs` lists the runs of this journal")
    found = store.get_checkpoint(run_id, ref)
    if found is not None:
        return record, found
    open_ = store.open_checkpoints(run_id)
    named = [c for c in open_ if c.name == ref]
    if len(named) == 1:
        return record, named[0]
    listed = ", ".join(f"`{c.name}` (id `{c.checkpoint_id}`)" for c in open_)
    if len(named) > 1:
        raise DecisionError(
            f"run `{run_id}` has {len(named)} open checkpoints named `{ref}`",
            help=f"name one by its id: {listed}",
        )
    if not named:
        # A decided checkpoint of the main line has its state's id: find it for the message.
        for state in load_program(store, record).workflows[record.workflow].states.values():
            if isinstance(state, CheckpointState) and state.name == ref:
                found = store.get_checkpoint(run_id, state.id)
                if found is not None:
                    return record, found
            if isinstance(state, SelectState) and any(a.name == ref for a in state.arms):
                found = store.get_checkpoint(run_id, select_checkpoint(state.id, ref))
                if found is not None:
                    return record, found
    if record.status in TERMINAL_STATUSES:
        raise DecisionRefused(
            f"run `{run_id}` has ended ({record.status}); it has no checkpoint `{ref}` to decide"
        )
    raise DecisionError(
        f"run `{run_id}` has no checkpoint `{ref}`",
        help=f"its open checkpoints: {listed}" if open_ else _elsewhere(store, run_id),
    )


def _elsewhere(store: Store, run_id: str) -> str:
    """Where a run that waits for no decision itself may wait for one: its child runs."""
    waiting = [
        f"`mnc approve {child.run_id} {checkpoint.name}`"
        for child in store.list_runs(parent_run_id=run_id, status="waiting")
        for checkpoint in store.open_checkpoints(child.run_id)
    ]
    if waiting:
        return "it waits for a child run; decide there: " + ", ".join(waiting)
    return "the run waits for no decision now"


def decide(
    store: Store,
    run_id: str,
    ref: str,
    *,
    approve: bool,
    choice: str | None = None,
    by: str | None = None,
    comment: str | None = None,
    result: Any = None,
) -> Decided:
    """Record a person's decision on checkpoint `ref` of run `run_id`.

    `approve` with no `choice` means `approve`; `approve=False` means `reject` (`fail` for
    a repair). `choice` names another option. `result` is the effect's result when a
    repair is marked done. Raises `DecisionRefused` when a decision was committed first
    and `DecisionError` when this one does not fit the checkpoint.
    """
    record, checkpoint = find_checkpoint(store, run_id, ref)
    request = checkpoint.request if isinstance(checkpoint.request, dict) else {}
    options = [str(o) for o in request.get("options") or []]
    is_repair = request.get("kind") == REPAIR
    picked = _choice(checkpoint, options, is_repair, approve=approve, choice=choice)
    decision: dict[str, Json] = {"choice": picked, "comment": comment}
    if is_repair and picked == MARK_DONE:
        decision["result"] = _repair_result(store, record, request, result)
    elif result is not None:
        raise DecisionError(
            "only a repair marked done takes a result",
            help="leave out the result, or decide a repair with `--choice mark_done`",
        )
    who = by or default_decider()
    if who == TIMEOUT_BY:
        raise DecisionError(
            f"`{TIMEOUT_BY}` is the name of a checkpoint's timeout, not of a person",
            help="give your own name with `--by`",
        )
    checkpoint = decide_timeout_if_due(store, run_id, checkpoint)
    if checkpoint.status == "open":
        outcome = store.decide_checkpoint(run_id, checkpoint.checkpoint_id, decision, by=who)
        if outcome.accepted:
            return Decided(run_id, checkpoint.checkpoint_id, checkpoint.name, picked, who, comment)
        checkpoint = outcome.checkpoint
    raise DecisionRefused(
        _already(run_id, checkpoint), help=f"`mnc show {run_id}` says where it stands"
    )


def _choice(
    checkpoint: Checkpoint,
    options: list[str],
    is_repair: bool,
    *,
    approve: bool,
    choice: str | None,
) -> str:
    name = checkpoint.name if not is_repair else f"repair `{checkpoint.checkpoint_id}`"
    listed = ", ".join(f"`{o}`" for o in options)
    if choice is None:
        if is_repair and approve:
            raise DecisionError(
                f"{_what(checkpoint)} needs a choice: `{MARK_DONE}` (with the effect's result) "
                f"or `{RETRY}`",
                help=f"pass `--choice {MARK_DONE} --result JSON` if the effect happened, "
                f"`--choice {RETRY}` to call it again; `mnc reject` fails the step",
            )
        choice = (FAIL if is_repair else "reject") if not approve else "approve"
        if choice not in options:
            raise DecisionError(
                f"{_what(checkpoint)} has no `{choice}` option (its options: {listed})",
                help=f"decide with `mnc approve RUN {name} --choice OPTION`",
            )
    if choice not in options:
        raise DecisionError(
            f"`{choice}` is not an option of {_what(checkpoint)}",
            help=f"its options: {listed}",
        )
    return choice


def _what(checkpoint: Checkpoint) -> str:
    if checkpoint.name == REPAIR:
        return f"repair checkpoint `{checkpoint.checkpoint_id}`"
    return f"checkpoint `{checkpoint.name}`"


def _repair_result(store: Store, record: RunRecord, request: dict[str, Any], result: Any) -> Json:
    """The result a person gives for an effect marked done, checked against its type."""
    effect_name = request.get("effect")
    type_text = request.get("result_type", "its return type")
    if result is None:
        raise DecisionError(
            f"marking `{effect_name}` done needs its result (a {type_text})",
            help="pass the result as JSON with `--result`, e.g. `--result true`",
        )
    program: IRProgram = load_program(store, record)
    effect = program.effects.get(str(effect_name))
    if effect is None:
        raise DecisionError(f"the program of run `{record.run_id}` has no effect `{effect_name}`")
    try:
        Converter(program.types).inbound(result, effect.returns, "result")
    except ConversionError as e:
        raise DecisionError(
            f"the result is not a {effect.returns}: {e}",
            help=f"give what `{effect_name}` would have returned",
        ) from None
    return result


def _already(run_id: str, checkpoint: Checkpoint) -> str:
    what = _what(checkpoint)
    lost_to = checkpoint.decision.get("lost_to") if isinstance(checkpoint.decision, dict) else None
    if checkpoint.decided_by is None and isinstance(lost_to, dict):
        return (
            f"refused: {what} of run `{run_id}` was closed because another arm of its select "
            "won: "
            f"{select_winner(lost_to)}"
        )
    if checkpoint.decided_by is None:
        return f"{what} of run `{run_id}` is closed without a decision (the run moved on)"
    decision = checkpoint.decision
    choice = decision.get("choice") if isinstance(decision, dict) else decision
    when = (
        datetime.fromtimestamp(checkpoint.decided_at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        if checkpoint.decided_at is not None
        else "an unknown time"
    )
    who = "its timeout" if checkpoint.decided_by == TIMEOUT_BY else f"`{checkpoint.decided_by}`"
    return f"{what} of run `{run_id}` was already decided: `{choice}` by {who} at {when}"
