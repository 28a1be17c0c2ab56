"""The states of a workflow's state machine, one model per kind.

Transitions are explicit state ids. A transition that is `None` means "the end
of the enclosing body": control returns to the state named by `frame` (a
`loop`, `map`, `parallel` or `try`), or, at the top level (`frame` is None),
the workflow ends. `docs/ir.md` gives the full execution semantics.
"""

from typing import Annotated, ClassVar, Literal

import msgspec

from mnlang.ir.base import HASH_OMITS_NONE, IRModel, RetryIR, SpanIR, TypeIR
from mnlang.ir.expr import Expr


class StateBase(IRModel, kw_only=True):
    """What every state has: its stable id, source span, frame and live variables.

    `live` maps each variable that may be read at or after this state, and is
    assigned before it, to its type: the part of a run's variables that must
    survive a pause here (and that `mnc diff` compares across versions).
    """

    kind: ClassVar[str]
    id: str
    span: SpanIR
    frame: str | None = None
    live: dict[str, TypeIR] = {}


CalleeKind = Literal["tool", "effect", "agent"]


class CallState(StateBase, kw_only=True, tag_field="kind", tag="call"):
    """A step calling a tool, an effect or an agent, with its policies attached."""

    kind: ClassVar[Literal["call"]] = "call"
    callee: str
    callee_kind: CalleeKind
    args: dict[str, Expr]
    target: str | None = None
    retry: RetryIR
    timeout_ms: int | None = None
    next: str | None = None


class ChildState(StateBase, kw_only=True, tag_field="kind", tag="child"):
    """A call of another workflow: runs as a child run; its failure is `child_failed`."""

    kind: ClassVar[Literal["child"]] = "child"
    workflow: str
    args: dict[str, Expr]
    target: str | None = None
    next: str | None = None
    detached: Annotated[bool | None, HASH_OMITS_NONE] = None
    """`start child(...)`: the child runs on its own; `target` gets its run id at once."""


class AssignState(StateBase, kw_only=True, tag_field="kind", tag="assign"):
    """A pure computation; `target` is None for an expression evaluated for nothing."""

    kind: ClassVar[Literal["assign"]] = "assign"
    target: str | None = None
    value: Expr
    next: str | None = None


class BranchState(StateBase, kw_only=True, tag_field="kind", tag="branch"):
    """`if`: go to `then` when `cond` is true, else to `else`."""

    kind: ClassVar[Literal["branch"]] = "branch"
    cond: Expr
    then: str | None = None
    else_: str | None = msgspec.field(default=None, name="else")


class MatchArm(IRModel, kw_only=True):
    """The members that select this arm (`_` matches any), and where it goes."""

    members: list[str]
    target: str | None = None


class MatchState(StateBase, kw_only=True, tag_field="kind", tag="match"):
    """`match` over an enum value: the first arm naming the value's member is taken."""

    kind: ClassVar[Literal["match"]] = "match"
    subject: Expr
    arms: list[MatchArm]


class CheckpointState(StateBase, kw_only=True, tag_field="kind", tag="checkpoint"):
    """A human decision: the run waits until it is decided or `timeout_ms` passes.

    On timeout the decision is `on_timeout` with `by` = "timeout". `timeout_ms`
    is a literal timeout; `timeout` one computed when the checkpoint opens (`timeout:
    review_time`); with neither the checkpoint waits forever (`timeout: never`).
    """

    kind: ClassVar[Literal["checkpoint"]] = "checkpoint"
    name: str
    target: str | None = None
    ask: Expr | None = None
    show: list[Expr] = []
    options: list[str]
    assignee: Expr | None = None
    timeout_ms: int | None = None
    timeout: Annotated[Expr | None, HASH_OMITS_NONE] = None
    on_timeout: str | None = None
    next: str | None = None


class WaitState(StateBase, kw_only=True, tag_field="kind", tag="wait"):
    """A durable timer (`duration`) or a wait for an event (`event`, with `timeout_ms`).

    An event wait with a timeout yields the payload, or null when the timeout fired;
    `timeout_ms` is a literal timeout, `timeout` one computed when the wait starts. With
    a correlation `key` it takes only a signal sent with that key (as text).
    """

    kind: ClassVar[Literal["wait"]] = "wait"
    target: str | None = None
    duration: Expr | None = None
    event: str | None = None
    payload: TypeIR | None = None
    timeout_ms: int | None = None
    timeout: Annotated[Expr | None, HASH_OMITS_NONE] = None
    key: Annotated[Expr | None, HASH_OMITS_NONE] = None
    next: str | None = None


class SelectArm(IRModel, kw_only=True):
    """One arm of a `select`: what it waits for and where its body starts (`entry`; None
    is the end of the enclosing body). `var` gets the payload or the decision.

    `kind` "event": a signal of `event` (with `key`, evaluated when the select starts);
    "checkpoint": a checkpoint named `name` opened by the select, asking as a checkpoint
    state does; "after": the select's timer (`timeout_ms` a literal, `timeout` computed
    when the select starts, neither: `after never`).
    """

    kind: Literal["event", "checkpoint", "after"]
    entry: str | None = None
    var: Annotated[str | None, HASH_OMITS_NONE] = None
    event: Annotated[str | None, HASH_OMITS_NONE] = None
    payload: Annotated[TypeIR | None, HASH_OMITS_NONE] = None
    key: Annotated[Expr | None, HASH_OMITS_NONE] = None
    name: Annotated[str | None, HASH_OMITS_NONE] = None
    ask: Annotated[Expr | None, HASH_OMITS_NONE] = None
    show: list[Expr] = []
    options: list[str] = []
    assignee: Annotated[Expr | None, HASH_OMITS_NONE] = None
    timeout_ms: Annotated[int | None, HASH_OMITS_NONE] = None
    timeout: Annotated[Expr | None, HASH_OMITS_NONE] = None


class SelectState(StateBase, kw_only=True, tag_field="kind", tag="select"):
    """Wait for the first of several things: signals, decisions of checkpoints it opens,
    its timer. The winner is decided once (a checkpoint's decision and the closing of
    the select's checkpoints by a signal or the timer are conditional writes of the
    same rows); the losers' checkpoints are closed and the run goes on in the winning
    arm's body, then at `next`."""

    kind: ClassVar[Literal["select"]] = "select"
    arms: list[SelectArm]
    next: str | None = None


class ParallelState(StateBase, kw_only=True, tag_field="kind", tag="parallel"):
    """Fork one cursor per branch entry; when all branches end, continue at `next`.

    The first uncaught failure in a branch cancels its siblings and propagates.
    """

    kind: ClassVar[Literal["parallel"]] = "parallel"
    branches: list[str]
    next: str | None = None


class MapState(StateBase, kw_only=True, tag_field="kind", tag="map"):
    """`parallel for var in iterable limit N`: one cursor per item, at most `limit` at once.

    With a `target`, what each item's body yields is collected into a list in
    input order. With `first` (a quorum join), the block ends when that many items
    have ended normally: the others are cancelled (an effect in flight first finishes,
    see `Interpreter._lose`) and the list holds the winners' yields in the order they
    ended, as committed.
    """

    kind: ClassVar[Literal["map"]] = "map"
    var: str
    iterable: Expr
    limit: Expr | None = None
    first: Annotated[Expr | None, HASH_OMITS_NONE] = None
    body: str | None = None
    target: str | None = None
    next: str | None = None


class LoopState(StateBase, kw_only=True, tag_field="kind", tag="loop"):
    """A sequential loop: `for var in iterable`, or `while cond` at most `max` times.

    Each time the body ends, control returns here for the next item or test.
    With a `target`, yields are collected into a list.
    """

    kind: ClassVar[Literal["loop"]] = "loop"
    mode: Literal["for", "while"]
    var: str | None = None
    iterable: Expr | None = None
    cond: Expr | None = None
    max: Expr | None = None
    body: str | None = None
    target: str | None = None
    next: str | None = None


class CatchIR(IRModel, kw_only=True):
    """A `catch` clause: the error kinds it takes (`any` for all catchable) and its body."""

    kinds: list[str]
    var: str | None = None
    entry: str | None = None


class TryState(StateBase, kw_only=True, tag_field="kind", tag="try"):
    """Run `body`; a failure of a listed kind runs that catch; `finally` always runs last."""

    kind: ClassVar[Literal["try"]] = "try"
    body: str | None = None
    catches: list[CatchIR]
    finally_: str | None = msgspec.field(default=None, name="finally")
    next: str | None = None


class LogState(StateBase, kw_only=True, tag_field="kind", tag="log"):
    kind: ClassVar[Literal["log"]] = "log"
    message: Expr
    next: str | None = None


class PublishState(StateBase, kw_only=True, tag_field="kind", tag="publish"):
    """Set the run's published value `name` (readable outside once committed)."""

    kind: ClassVar[Literal["publish"]] = "publish"
    name: str
    value: Expr
    next: str | None = None


class YieldState(StateBase, kw_only=True, tag_field="kind", tag="yield"):
    """Append `value` to the list collected by the loop or map state `into`."""

    kind: ClassVar[Literal["yield"]] = "yield"
    value: Expr
    into: str
    next: str | None = None


class ReturnState(StateBase, kw_only=True, tag_field="kind", tag="return"):
    """End the workflow with `value`; pending `finally` bodies run first."""

    kind: ClassVar[Literal["return"]] = "return"
    value: Expr | None = None


class FailState(StateBase, kw_only=True, tag_field="kind", tag="fail"):
    """End the workflow as failed.

    With `error` unset, `message` is a `str` (a plain `fail`, kind `fail`, not catchable)
    or a caught error (`fail e`: raised again with its kind, message and step). With
    `error` set, the failure has that declared name, `message` and `cause` (a caught
    error or null), and is catchable by that name.
    """

    kind: ClassVar[Literal["fail"]] = "fail"
    message: Expr
    error: Annotated[str | None, HASH_OMITS_NONE] = None
    cause: Annotated[Expr | None, HASH_OMITS_NONE] = None


State = (
    CallState
    | ChildState
    | AssignState
    | BranchState
    | MatchState
    | CheckpointState
    | WaitState
    | SelectState
    | ParallelState
    | MapState
    | LoopState
    | TryState
    | LogState
    | PublishState
    | YieldState
    | ReturnState
    | FailState
)
"""A state, told apart by its `kind` tag (written first in JSON)."""

STATE_KINDS = (
    "call",
    "child",
    "assign",
    "branch",
    "match",
    "checkpoint",
    "wait",
    "select",
    "parallel",
    "map",
    "loop",
    "try",
    "log",
    "publish",
    "yield",
    "return",
    "fail",
)

FRAME_KINDS = ("parallel", "map", "loop", "try")


def transitions(state: State) -> list[tuple[str, str | None]]:
    """Every outgoing transition of a state as (label, target); targets may be None (body end)."""
    out: list[tuple[str, str | None]]
    match state:
        case BranchState():
            return [("then", state.then), ("else", state.else_)]
        case MatchState():
            return [(", ".join(arm.members), arm.target) for arm in state.arms]
        case ReturnState() | FailState():
            return []
        case SelectState():
            return [(_arm_label(arm), arm.entry) for arm in state.arms]
        case ParallelState():
            out = [(f"branch {i + 1}", entry) for i, entry in enumerate(state.branches)]
            return [*out, ("join", state.next)]
        case MapState() | LoopState():
            return [("body", state.body), ("done", state.next)]
        case TryState():
            out = [("body", state.body)]
            out += [("catch " + ", ".join(c.kinds), c.entry) for c in state.catches]
            if state.finally_ is not None:
                out.append(("finally", state.finally_))
            return [*out, ("next", state.next)]
        case _:
            return [("next", state.next)]


def _arm_label(arm: SelectArm) -> str:
    """How `mnc graph` labels a select arm's edge: `message`, `checkpoint approve`, `after`."""
    if arm.kind == "event":
        return str(arm.event).rsplit(".", 1)[-1]
    if arm.kind == "checkpoint":
        return f"checkpoint {arm.name}"
    return "after"
