"""A workflow's state machine as a Graphviz graph.

One node per state, shaped and coloured by kind, labelled with what it does,
its policies (retry, timeout, idempotency key) and its id. Edges carry their
condition (`then`, `else`, a match arm, `catch ...`). The bodies of `loop`,
`map`, `parallel` and `try` states are clusters; a `parallel` gets a fork and a
join bar, and the end of a loop body goes back to the loop. An optional
`RunOverlay` marks each state done, failed, waiting or running.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import graphviz

from mnlang.graph.overlay import RunOverlay
from mnlang.ir.base import RetryIR
from mnlang.ir.model import IRProgram, WorkflowIR
from mnlang.ir.show import arm_text, show, show_duration, summary
from mnlang.ir.states import (
    BranchState,
    CallState,
    CheckpointState,
    ChildState,
    FailState,
    LoopState,
    MapState,
    MatchState,
    ParallelState,
    ReturnState,
    SelectState,
    State,
    TryState,
    WaitState,
    transitions,
)

_MAX_LINE = 56
_END = "end"  # the node for the end of the workflow's body
_FONT = "Helvetica"


@dataclass(frozen=True)
class _Style:
    shape: str
    fill: str
    extra: str = ""  # added to `style` (e.g. "bold")


_STYLES: dict[str, _Style] = {
    "tool": _Style("box", "#dbeafe"),
    "effect": _Style("box", "#fed7aa", "bold"),
    "agent": _Style("box", "#e9d5ff"),
    "child": _Style("box3d", "#e0e7ff"),
    "detached": _Style("box3d", "#e0e7ff", "dashed"),
    "assign": _Style("box", "#f3f4f6"),
    "parallel": _Style("box", "#1f2937"),
    "branch": _Style("diamond", "#fef9c3"),
    "match": _Style("hexagon", "#fef9c3"),
    "checkpoint": _Style("house", "#fde047", "bold"),
    "wait": _Style("ellipse", "#cffafe"),
    "select": _Style("doubleoctagon", "#cffafe"),
    "map": _Style("trapezium", "#d1fae5"),
    "loop": _Style("trapezium", "#d1fae5"),
    "try": _Style("box", "#f5f5f4", "dashed"),
    "log": _Style("note", "#ffffff"),
    "publish": _Style("note", "#e8f4ff"),
    "yield": _Style("cds", "#d1fae5"),
    "return": _Style("box", "#bbf7d0", "rounded,bold"),
    "fail": _Style("octagon", "#fecaca"),
}
_CLUSTER_COLORS = {"loop": "#059669", "map": "#059669", "parallel": "#2563eb", "try": "#78716c"}
_STATUS_COLORS = {
    "done": "#16a34a",
    "failed": "#dc2626",
    "waiting": "#d97706",
    "running": "#2563eb",
    "cancelled": "#6b7280",
}


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_LINE else text[: _MAX_LINE - 1] + "…"


def _label(lines: list[str]) -> str:
    """A multi-line Graphviz label; backslashes in the text are kept literal."""
    return "\\n".join(_clip(line).replace("\\", "\\\\") for line in lines)


def _cluster_title(state: State) -> str:
    """A frame cluster's title; its header node says the rest."""
    if isinstance(state, MapState):
        return f"parallel for, first {show(state.first)}" if state.first else "parallel for"
    if isinstance(state, LoopState):
        return state.mode
    return state.kind


def _style_key(state: State) -> str:
    if isinstance(state, CallState):
        return state.callee_kind
    if isinstance(state, ChildState) and state.detached:
        return "detached"  # dashed: nothing waits for it
    return state.kind


def _retry_line(entry: RetryIR) -> str:
    """One retry entry: `retry 3x on timeout, backoff 1s`, `retry unlimited ..., within 1h`."""
    times = f"{entry.attempts}x" if isinstance(entry.attempts, int) else "unlimited"
    backoff = f", backoff {show_duration(entry.backoff_ms)}" if entry.backoff_ms else ""
    within = (
        f", within {show_duration(entry.max_elapsed_ms)}"
        if entry.max_elapsed_ms is not None
        else ""
    )
    return f"retry {times} on {', '.join(entry.on)}{backoff}{within}"


def _policy_lines(program: IRProgram, state: State) -> list[str]:
    """The policies worth seeing on a node: retry, timeout, idempotency key, human timeout."""
    lines: list[str] = []
    if isinstance(state, CallState):
        lines += [_retry_line(entry) for entry in state.retry.entries if entry.attempts != 1]
        if state.timeout_ms is not None:
            lines.append(f"timeout {show_duration(state.timeout_ms)}")
        effect = program.effects.get(state.callee)
        if effect is not None:
            if effect.key is not None:
                scope = " (global)" if effect.scope == "global" else ""
                lines.append(f"key {show(effect.key)}{scope}")
            elif effect.once:
                lines.append("once")
            if effect.requires:
                lines.append("requires " + ", ".join(effect.requires))
        agent = program.agents.get(state.callee)
        if agent is not None:
            lines.append(f"model {agent.model}")
    elif isinstance(state, CheckpointState):
        lines.append("options " + ", ".join(state.options))
        if state.timeout is not None:
            lines.append(f"timeout {show(state.timeout)} -> {state.on_timeout}")
        elif state.timeout_ms is None:
            lines.append("no timeout")
        else:
            lines.append(f"timeout {show_duration(state.timeout_ms)} -> {state.on_timeout}")
    elif isinstance(state, SelectState):
        lines += [arm_text(arm) for arm in state.arms]
    elif isinstance(state, WaitState) and state.event is not None:
        timeout = "never" if state.timeout_ms is None else show_duration(state.timeout_ms)
        lines.append(f"timeout {show(state.timeout) if state.timeout is not None else timeout}")
    return lines


class _Builder:
    def __init__(self, program: IRProgram, workflow: WorkflowIR, overlay: RunOverlay | None):
        self.program = program
        self.wf = workflow
        self.overlay = overlay
        self.names = {sid: f"s{i}" for i, sid in enumerate(workflow.states)}
        self.region = self._regions()
        self.end_used = False

    def join_node(self, parallel_id: str) -> str:
        return self.names[parallel_id] + "_join"

    # ---- where a body's end goes ------------------------------------------------------

    def _regions(self) -> dict[str, str]:
        """For each state inside a `try`: which part it is in (`body`, `catch` or `finally`)."""
        region: dict[str, str] = {}
        for state in self.wf.states.values():
            if not isinstance(state, TryState):
                continue
            starts = [(state.body, "body"), *((c.entry, "catch") for c in state.catches)]
            starts.append((state.finally_, "finally"))
            for entry, part in starts:
                todo = deque([entry] if entry else [])
                while todo:
                    sid = todo.popleft()
                    if sid in region or self.wf.states[sid].frame != state.id:
                        continue
                    region[sid] = part
                    todo.extend(t for _, t in _successors(self.wf.states[sid]) if t)
        return region

    def after(self, state: State) -> tuple[str, str]:
        """The node that a `None` transition of `state` leads to, and the edge label."""
        frame_id = state.frame
        if frame_id is None:
            self.end_used = True
            return _END, ""
        frame = self.wf.states[frame_id]
        if isinstance(frame, MapState):
            return self.names[frame_id], "item done"
        if isinstance(frame, LoopState):
            return self.names[frame_id], "again" if frame.mode == "while" else "next"
        if isinstance(frame, ParallelState):
            return self.join_node(frame_id), ""
        assert isinstance(frame, TryState)
        if self.region.get(state.id) != "finally" and frame.finally_ is not None:
            return self.names[frame.finally_], "finally"
        return self.continuation(frame)

    def continuation(self, state: State) -> tuple[str, str]:
        """Where control goes once `state` (a frame state) is done."""
        nxt = getattr(state, "next", None)
        if nxt is not None:
            return self.names[nxt], ""
        return self.after(state)

    def target(self, state: State, sid: str | None) -> tuple[str, str]:
        if sid is not None:
            return self.names[sid], ""
        return self.after(state)

    # ---- nodes and edges ------------------------------------------------------------------

    def node(self, g: graphviz.Digraph, state: State) -> None:
        style = _STYLES[_style_key(state)]
        lines = [summary(state), *_policy_lines(self.program, state), f"[{state.id}]"]
        attrs = {
            "shape": style.shape,
            "style": ",".join(p for p in ("filled", style.extra) if p),
            "fillcolor": style.fill,
        }
        run = self.overlay.states.get(state.id) if self.overlay else None
        if isinstance(state, ParallelState):
            attrs["fontcolor"] = "white"
        if run is not None:
            attrs["color"] = _STATUS_COLORS[run.status]
            attrs["penwidth"] = "3"
            lines.append(run.status + (f", {run.attempts} attempts" if run.attempts > 1 else ""))
        g.node(self.names[state.id], _label(lines), **attrs)
        if isinstance(state, ParallelState):
            g.node(
                self.join_node(state.id),
                "",
                shape="box",
                style="filled",
                fillcolor="#1f2937",
                height="0.08",
                width="1.2",
                fixedsize="true",
            )

    def edges(self, g: graphviz.Digraph, state: State) -> None:
        src = self.names[state.id]
        for label, sid in _successors(state):
            if isinstance(state, ParallelState) and label == "join":
                dst, _ = self.target(state, sid)
                g.edge(self.join_node(state.id), dst)
                continue
            if isinstance(state, TryState) and label == "next":
                continue  # a try is left through the end of its body, drawn from there
            if isinstance(state, TryState) and label == "body" and sid is None:
                dst, _ = (
                    self.target(state, state.finally_)
                    if state.finally_
                    else self.continuation(state)
                )
                g.edge(src, dst)
                continue
            body = label == "body" or label.startswith("each ")
            if isinstance(state, LoopState | MapState) and sid is None and body:
                continue
            dst, implied = self.target(state, sid)
            text = implied if label == "next" else label
            dashed = label.startswith(("catch", "finally"))
            g.edge(src, dst, label=text, **({"style": "dashed"} if dashed else {}))

    def cluster(self, g: graphviz.Digraph, frame: State | None) -> None:
        """Draw the states whose frame is `frame` (None: top level), nesting frame clusters."""
        frame_id = frame.id if frame else None
        for state in self.wf.states.values():
            if state.frame != frame_id:
                continue
            if isinstance(state, LoopState | MapState | ParallelState | TryState):
                color = _CLUSTER_COLORS[state.kind]
                with g.subgraph(name=f"cluster_{self.names[state.id]}") as sub:
                    sub.attr(
                        label=_cluster_title(state),
                        style="rounded,dashed",
                        color=color,
                        fontcolor=color,
                        fontname=_FONT,
                    )
                    self.node(sub, state)
                    self.cluster(sub, state)
            else:
                self.node(g, state)

    def build(self, g: graphviz.Digraph) -> None:
        dark = {"style": "filled", "fillcolor": "#111827", "fontcolor": "white"}
        g.node("start", self.wf.name.rsplit(".", 1)[-1], shape="circle", **dark)
        self.cluster(g, None)
        if self.wf.start is not None:
            g.edge("start", self.names[self.wf.start])
        for state in self.wf.states.values():
            self.edges(g, state)
        if self.end_used or self.wf.start is None:
            g.node(_END, "end", shape="doublecircle", **dark)
            if self.wf.start is None:
                g.edge("start", _END)


def _successors(state: State) -> list[tuple[str, str | None]]:
    """Transitions with graph labels (`each x` into a loop body, `a | b` for a match arm)."""
    if isinstance(state, ReturnState | FailState):
        return []
    if isinstance(state, BranchState):
        return [("then", state.then), ("else", state.else_)]
    if isinstance(state, MatchState):
        return [(" | ".join(arm.members), arm.target) for arm in state.arms]
    if isinstance(state, LoopState | MapState):
        each = f"each {state.var}" if state.var else "body"
        # A quorum's join goes on when its first N items have won, not when all are done.
        done = f"{show(state.first)} won" if isinstance(state, MapState) and state.first else "done"
        return [(each, state.body), (done, state.next)]
    return transitions(state)


def workflow_graph(
    program: IRProgram, workflow: str, overlay: RunOverlay | None = None
) -> graphviz.Digraph:
    """The graph of one workflow of a compiled program."""
    wf = program.workflows[workflow]
    g = graphviz.Digraph(name=wf.name)
    g.attr(rankdir="TB", fontname=_FONT, nodesep="0.3", ranksep="0.35")
    g.attr("node", fontname=_FONT, fontsize="11", margin="0.12,0.06")
    g.attr("edge", fontname=_FONT, fontsize="10")
    _Builder(program, wf, overlay).build(g)
    return g


def workflow_dot(program: IRProgram, workflow: str, overlay: RunOverlay | None = None) -> str:
    """DOT source of one workflow; needs no Graphviz binary."""
    return str(workflow_graph(program, workflow, overlay).source)
