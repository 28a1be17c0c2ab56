"""IR expressions and states as short source-like text, for graph labels and diffs."""

from __future__ import annotations

import json

from mnlang.ir.expr import (
    Binary,
    Builtin,
    EnumValue,
    Expr,
    FieldOf,
    IndexOf,
    ListOf,
    Lit,
    ObjectOf,
    RecordOf,
    Template,
    Unary,
    Var,
)
from mnlang.ir.states import (
    AssignState,
    BranchState,
    CallState,
    CheckpointState,
    ChildState,
    FailState,
    LogState,
    LoopState,
    MapState,
    MatchState,
    ParallelState,
    PublishState,
    ReturnState,
    SelectArm,
    SelectState,
    State,
    TryState,
    WaitState,
    YieldState,
)

_PRECEDENCE = {
    "or": 1,
    "and": 2,
    "==": 4,
    "!=": 4,
    "<": 4,
    ">": 4,
    "<=": 4,
    ">=": 4,
    "??": 5,
    "+": 6,
    "-": 6,
    "*": 7,
    "/": 7,
    "%": 7,
}


def show_duration(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def show(expr: Expr, outer: int = 0) -> str:
    """The expression as it would be written in source."""
    match expr:
        case Lit():
            return _literal(expr)
        case Var():
            return expr.name
        case FieldOf():
            return f"{show(expr.obj, 9)}.{expr.name}"
        case IndexOf():
            return f"{show(expr.obj, 9)}[{show(expr.index)}]"
        case Builtin():
            return f"{expr.fn}({', '.join(show(a) for a in expr.args)})"
        case Unary():
            text = (
                f"not {show(expr.operand, 3)}" if expr.op == "not" else f"-{show(expr.operand, 8)}"
            )
            return f"({text})" if outer > (3 if expr.op == "not" else 8) else text
        case Binary():
            prec = _PRECEDENCE[expr.op]
            text = f"{show(expr.left, prec)} {expr.op} {show(expr.right, prec + 1)}"
            return f"({text})" if outer > prec else text
        case Template():
            return json.dumps(
                "".join(
                    _escape(p) if isinstance(p, str) else "{" + show(p) + "}" for p in expr.parts
                ),
                ensure_ascii=False,
            )
        case ListOf():
            return f"[{', '.join(show(i) for i in expr.items)}]"
        case RecordOf():
            inner = ", ".join(f"{k}: {show(v)}" for k, v in expr.fields.items())
            return f"{expr.type.rsplit('.', 1)[-1]} {{ {inner} }}"
        case ObjectOf():
            return "{ " + ", ".join(f"{k}: {show(v)}" for k, v in expr.fields.items()) + " }"
        case EnumValue():
            return f"{expr.type.rsplit('.', 1)[-1]}.{expr.member}"


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _literal(lit: Lit) -> str:
    if lit.type == "money":
        return f"${lit.value}"
    if lit.type == "duration" and isinstance(lit.value, int):
        return show_duration(lit.value)
    if lit.type == "null":
        return "null"
    if lit.type == "bool":
        return "true" if lit.value else "false"
    if lit.type == "str":
        return json.dumps(lit.value, ensure_ascii=False)
    return str(lit.value)


def _call(name: str, args: dict[str, Expr], target: str | None) -> str:
    text = f"{name.rsplit('.', 1)[-1]}({', '.join(show(a) for a in args.values())})"
    return f"{target} = {text}" if target else text


def arm_text(arm: SelectArm) -> str:
    """A select arm as `mnc show` and `mnc graph` name it: `wait message for conv.id`."""
    if arm.kind == "event":
        key = f" for {show(arm.key)}" if arm.key is not None else ""
        return f"wait {str(arm.event).rsplit('.', 1)[-1]}{key}"
    if arm.kind == "checkpoint":
        return f"checkpoint {arm.name}"
    if arm.timeout is not None:
        return f"after {show(arm.timeout)}"
    return f"after {show_duration(arm.timeout_ms)}" if arm.timeout_ms is not None else "after never"


def summary(state: State) -> str:
    """One line saying what a state does, e.g. `order = fetch_order(order_id)`."""
    target = getattr(state, "target", None)
    assigned = f"{target} = " if target else ""
    match state:
        case CallState():
            return _call(state.callee, state.args, state.target)
        case ChildState() if state.detached:
            return _call(f"start {state.workflow}", state.args, state.target)
        case ChildState():
            return _call(state.workflow, state.args, state.target)
        case AssignState():
            return assigned + show(state.value)
        case BranchState():
            return f"if {show(state.cond)}"
        case MatchState():
            return f"match {show(state.subject)}"
        case CheckpointState():
            return f"{assigned}checkpoint {state.name}"
        case WaitState():
            if state.event is not None:
                key = f" for {show(state.key)}" if state.key is not None else ""
                return f"{assigned}wait {state.event.rsplit('.', 1)[-1]}{key}"
            return f"{assigned}wait {show(state.duration) if state.duration else ''}".rstrip()
        case SelectState():
            return f"select ({len(state.arms)} arms)"
        case ParallelState():
            return f"parallel ({len(state.branches)} branches)"
        case MapState():
            limit = f" limit {show(state.limit)}" if state.limit else ""
            limit += f" first {show(state.first)}" if state.first else ""
            return f"{assigned}parallel for {state.var} in {show(state.iterable)}{limit}"
        case LoopState():
            if state.mode == "while":
                cond = show(state.cond) if state.cond else ""
                return f"while {cond}, max: {show(state.max) if state.max else ''}"
            iterable = show(state.iterable) if state.iterable else ""
            return f"{assigned}for {state.var} in {iterable}"
        case TryState():
            return "try"
        case LogState():
            return f"log {show(state.message)}"
        case PublishState():
            return f"publish {state.name} = {show(state.value)}"
        case YieldState():
            return f"yield {show(state.value)}"
        case ReturnState():
            return f"return {show(state.value)}" if state.value else "return"
        case FailState():
            if state.error is None:
                return f"fail {show(state.message)}"
            cause = f", cause: {show(state.cause)}" if state.cause is not None else ""
            return f"fail {state.error} {{ message: {show(state.message)}{cause} }}"
