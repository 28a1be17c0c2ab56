"""Comparing two versions of a program, and whether a paused run can move between them.

`resume_problems(old, new, workflow, state_id)` is the compatibility rule of
the design brief, reused by the runtime when it upgrades waiting runs: a run
paused at state S of OLD can continue on NEW when

- S exists in NEW, is of the same kind, does the same thing (the state's own
  fields, transitions aside) and sits in the same frame;
- every enclosing frame (loop, map, parallel, try) of S exists in NEW and does
  the same thing, so the run's frames (iteration, collected items) still fit;
- every variable live at S in NEW was live at S in OLD with a type whose
  values are valid in NEW's type (a run keeps only its live variables);
- the pending work is unchanged: for a call, the callee's signature and (for
  an effect) its key, scope and `once`; for a child run, the child workflow's
  signature; for a wait, the event's payload type; for a checkpoint, its
  options and timeout (these are fields of the state, compared above).

A run with several cursors (parallel branches, map items) can move when every
cursor's state can.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from mnlang.ir.base import TypeIR
from mnlang.ir.hashing import canonical
from mnlang.ir.model import AgentIR, EnumTypeIR, IRProgram, RecordTypeIR, ToolIR, WorkflowIR
from mnlang.ir.states import CallState, ChildState, SelectState, State, WaitState

# Fields that say where control goes or what is derived, not what a state does.
_TRANSITION_FIELDS = frozenset(
    {"next", "then", "else", "arms", "body", "branches", "catches", "finally", "live"}
)
_ARM_FIELDS = ("arms", "catches")


class StateChange(BaseModel):
    id: str
    kind: str
    fields: list[str]


class ResumeVerdict(BaseModel):
    """Whether a run paused at `state` of the old version can continue on the new one."""

    state: str
    safe: bool
    problems: list[str]


class WorkflowDiff(BaseModel):
    name: str
    status: Literal["added", "removed", "changed", "same"]
    added: list[str] = []
    removed: list[str] = []
    changed: list[StateChange] = []
    resume: list[ResumeVerdict] = []


class ProgramDiff(BaseModel):
    old_hash: str
    new_hash: str
    workflows: list[WorkflowDiff]

    @property
    def same(self) -> bool:
        return self.old_hash == self.new_hash


# ---- what a state does ---------------------------------------------------------------


def _own_fields(state: State) -> dict[str, Any]:
    """The state's fields without spans and transitions; arm lists keep their members only."""
    data: dict[str, Any] = canonical(state)
    out = {k: v for k, v in data.items() if k not in _TRANSITION_FIELDS and k != "frame"}
    for key in _ARM_FIELDS:
        if key in data:
            out[key] = [
                {k: v for k, v in arm.items() if k not in ("target", "entry")} for arm in data[key]
            ]
    return out


def _pending_contract(program: IRProgram, state: State) -> dict[str, Any]:
    """What the work outstanding at a state depends on outside the state itself."""
    if isinstance(state, CallState):
        decl: ToolIR | AgentIR | None = (
            program.tools.get(state.callee)
            or program.effects.get(state.callee)
            or program.agents.get(state.callee)
        )
        if decl is None:
            return {}
        fields = ["params", "returns", "key", "scope", "once"]
        data = canonical(decl)
        return {f"the `{k}` of `{state.callee}`": data[k] for k in fields if k in data}
    if isinstance(state, ChildState):
        child = program.workflows.get(state.workflow)
        if child is None:
            return {}
        data = canonical(child)
        return {
            f"the `params` of `{state.workflow}`": data["params"],
            f"the `returns` of `{state.workflow}`": data["returns"],
        }
    if isinstance(state, WaitState) and state.event is not None:
        event = program.events.get(state.event)
        payload = canonical(event.payload) if event else None
        return {f"the payload of `{state.event}`": payload}
    if isinstance(state, SelectState):
        events = [str(arm.event) for arm in state.arms if arm.event is not None]
        found = {name: program.events.get(name) for name in events}
        return {
            f"the payload of `{name}`": canonical(e.payload) if e else None
            for name, e in found.items()
        }
    return {}


def _meaning(program: IRProgram, state: State) -> dict[str, Any]:
    own = {f"its `{k}`": v for k, v in _own_fields(state).items()}
    return {**own, **_pending_contract(program, state)}


def _differing(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


# ---- types -------------------------------------------------------------------------------


def type_compatible(
    old: TypeIR,
    new: TypeIR,
    old_program: IRProgram,
    new_program: IRProgram,
    _seen: frozenset[tuple[str, str]] = frozenset(),
) -> bool:
    """Whether every value of `old` (as typed in OLD) is a valid value of `new` (in NEW).

    `unknown` on either side is accepted: the type was not determined statically,
    and the runtime validates restored values against NEW's types anyway.
    """
    if "unknown" in (old.kind, new.kind) or new.kind == "json":
        return True
    if new.kind == "optional":
        if old.kind == "null":
            return True
        inner_old = old.args[0] if old.kind == "optional" else old
        return type_compatible(inner_old, new.args[0], old_program, new_program, _seen)
    if old.kind != new.kind:
        return old.kind == "int" and new.kind == "float"
    if old.kind in ("list", "map"):
        return type_compatible(old.args[0], new.args[0], old_program, new_program, _seen)
    if old.kind == "decision":
        return old.name == new.name and set(old.members or ()) <= set(new.members or ())
    if old.kind in ("record", "enum"):
        return _declared_compatible(old.name or "", new.name or "", old_program, new_program, _seen)
    return True


def _declared_compatible(
    old_name: str,
    new_name: str,
    old_program: IRProgram,
    new_program: IRProgram,
    seen: frozenset[tuple[str, str]],
) -> bool:
    if (old_name, new_name) in seen:
        return True
    seen = seen | {(old_name, new_name)}
    old_decl = old_program.types.get(old_name)
    new_decl = new_program.types.get(new_name)
    if isinstance(old_decl, EnumTypeIR) and isinstance(new_decl, EnumTypeIR):
        return set(old_decl.members) <= set(new_decl.members)
    if isinstance(old_decl, RecordTypeIR) and isinstance(new_decl, RecordTypeIR):
        old_fields = {f.name: f for f in old_decl.fields}
        for f in new_decl.fields:
            before = old_fields.get(f.name)
            if before is None:
                if f.default is None and f.type.kind != "optional":
                    return False
            elif not type_compatible(before.type, f.type, old_program, new_program, seen):
                return False
        return True
    return False


# ---- resuming ------------------------------------------------------------------------------


def _frames(workflow: WorkflowIR, state_id: str) -> list[str]:
    """The enclosing frame states of a state, innermost first."""
    chain: list[str] = []
    frame = workflow.states[state_id].frame
    while frame is not None:
        chain.append(frame)
        frame = workflow.states[frame].frame
    return chain


def resume_problems(old: IRProgram, new: IRProgram, workflow: str, state_id: str) -> list[str]:
    """Why a run of `workflow` paused at `state_id` in `old` cannot continue on `new` (empty: it can)."""
    old_wf = old.workflows.get(workflow)
    new_wf = new.workflows.get(workflow)
    if old_wf is None or state_id not in old_wf.states:
        return [f"`{state_id}` is not a state of `{workflow}` in the old version"]
    if new_wf is None:
        return [f"workflow `{workflow}` no longer exists"]
    before = old_wf.states[state_id]
    after = new_wf.states.get(state_id)
    if after is None:
        return [f"state `{state_id}` no longer exists"]
    if before.kind != after.kind:
        return [f"state `{state_id}` was a {before.kind} and is now a {after.kind}"]
    problems = [
        f"{field} changed" for field in _differing(_meaning(old, before), _meaning(new, after))
    ]
    if before.frame != after.frame:
        problems.append(f"`{state_id}` moved from {_where(before.frame)} to {_where(after.frame)}")
    else:
        for frame in _frames(old_wf, state_id):
            outer_new = new_wf.states.get(frame)
            if outer_new is None or _meaning(old, old_wf.states[frame]) != _meaning(new, outer_new):
                problems.append(f"the enclosing `{frame}` changed")
    for name, new_type in after.live.items():
        old_type = before.live.get(name)
        if old_type is None:
            problems.append(f"variable `{name}` is needed here but the old run does not keep it")
        elif not type_compatible(old_type, new_type, old, new):
            if str(old_type) == str(new_type):
                problems.append(
                    f"variable `{name}`: its type {new_type} changed and old values do not fit"
                )
            else:
                problems.append(f"variable `{name}` changes type from {old_type} to {new_type}")
    return problems


def _where(frame: str | None) -> str:
    return f"the body of `{frame}`" if frame is not None else "the top level"


# ---- whole programs ------------------------------------------------------------------------


def _workflow_diff(old: IRProgram, new: IRProgram, name: str) -> WorkflowDiff:
    old_wf, new_wf = old.workflows.get(name), new.workflows.get(name)
    if old_wf is None:
        assert new_wf is not None
        return WorkflowDiff(name=name, status="added", added=list(new_wf.states))
    if new_wf is None:
        resume = [
            ResumeVerdict(state=sid, safe=False, problems=[f"workflow `{name}` no longer exists"])
            for sid in old_wf.states
        ]
        return WorkflowDiff(name=name, status="removed", removed=list(old_wf.states), resume=resume)
    added = [sid for sid in new_wf.states if sid not in old_wf.states]
    removed = [sid for sid in old_wf.states if sid not in new_wf.states]
    changed: list[StateChange] = []
    for sid, before in old_wf.states.items():
        after = new_wf.states.get(sid)
        if after is None:
            continue
        fields = _differing(canonical(before), canonical(after))
        fields += _differing(_pending_contract(old, before), _pending_contract(new, after))
        if fields:
            changed.append(StateChange(id=sid, kind=after.kind, fields=fields))
    resume = []
    for sid in old_wf.states:
        problems = resume_problems(old, new, name, sid)
        resume.append(ResumeVerdict(state=sid, safe=not problems, problems=problems))
    signature_same = canonical(old_wf, frozenset({"states", "start"})) == canonical(
        new_wf, frozenset({"states", "start"})
    )
    same = not (added or removed or changed) and signature_same and old_wf.start == new_wf.start
    return WorkflowDiff(
        name=name,
        status="same" if same else "changed",
        added=added,
        removed=removed,
        changed=changed,
        resume=resume,
    )


def diff_programs(old: IRProgram, new: IRProgram, workflow: str | None = None) -> ProgramDiff:
    """States added, removed and changed per workflow, and a resume verdict per old state."""
    names = [workflow] if workflow else list(dict.fromkeys([*old.workflows, *new.workflows]))
    return ProgramDiff(
        old_hash=old.hash,
        new_hash=new.hash,
        workflows=[_workflow_diff(old, new, name) for name in names],
    )
