"""Compiling a workflow body into its state machine.

Each statement becomes exactly one state whose id comes from `mnlang.ir.ids`;
statements with bodies get their children's entry ids as transitions. While
compiling, a flow graph for the liveness analysis is built beside the IR: it
adds the edges the IR leaves implicit (a body's end returning to its frame,
a failure jumping to a `catch` or `finally`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import cast

import msgspec

from mnlang.checker.errornames import error_symbol
from mnlang.checker.program import ModuleInfo, Symbol
from mnlang.ir import ids
from mnlang.ir.base import SpanIR, TypeIR
from mnlang.ir.compile_decls import DeclCompiler
from mnlang.ir.compile_expr import CompilerBug
from mnlang.ir.compile_types import (
    ERROR,
    NULL,
    STR,
    UNKNOWN,
    element_type,
    expr_type,
    list_of,
    optional,
    type_from_ref,
)
from mnlang.ir.decl_options import declaration_options, duration_ms
from mnlang.ir.expr import Expr, free_vars
from mnlang.ir.liveness import Edge, live_in
from mnlang.ir.model import (
    AgentIR,
    EffectIR,
    EventIR,
    OnFailureIR,
    ToolIR,
    WorkflowIR,
    WorkflowOptionsIR,
)
from mnlang.ir.states import (
    AssignState,
    BranchState,
    CalleeKind,
    CallState,
    CatchIR,
    CheckpointState,
    ChildState,
    FailState,
    LogState,
    LoopState,
    MapState,
    MatchArm,
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
from mnlang.syntax import ast

_NONE: frozenset[str] = frozenset()
_STEP_KINDS = ("tool", "effect", "agent", "workflow")
_DEFAULT_CHECKPOINT_OPTIONS = ["approve", "reject"]


@dataclass
class _Context:
    """Where a body sits: its frame, where its end flows, and where a failure flows."""

    frame: str | None = None
    collector: str | None = None
    end: list[Edge] = field(default_factory=list)
    handlers: list[Edge] = field(default_factory=list)
    yields: list[TypeIR] = field(default_factory=list)


@dataclass
class Callables:
    """The compiled declarations a workflow's steps refer to."""

    tools: dict[str, ToolIR]
    effects: dict[str, EffectIR]
    agents: dict[str, AgentIR]
    events: dict[str, EventIR]


class WorkflowCompiler:
    def __init__(self, decls: DeclCompiler, callables: Callables, symbol: Symbol) -> None:
        self.decls = decls
        self.lowering = decls.lowering
        self.callables = callables
        self.symbol = symbol
        self.module: ModuleInfo = symbol.module
        self.order: list[str] = []
        self.states: dict[str, State] = {}
        self.scopes: dict[str, dict[str, TypeIR]] = {}
        self.published: dict[str, TypeIR] = {}
        self.uses: dict[str, set[str]] = {}
        self.edges: dict[str, list[Edge]] = {}

    # ---- entry point -----------------------------------------------------------

    def compile(self) -> WorkflowIR:
        decl = self.symbol.decl
        assert isinstance(decl, ast.WorkflowDecl)
        params = self.decls.params(decl.params, self.module)
        env = {p.name: p.type for p in params}
        start, _ = self.block(decl.body.stmts, "", None, _Context(), env)
        on_failure = None
        if decl.on_failure is not None:
            var = decl.on_failure.var.name if decl.on_failure.var else None
            cleanup_env = {**env, var: ERROR} if var else env
            stmts = decl.on_failure.body.stmts
            entry, _ = self.block(stmts, ids.ON_FAILURE, None, _Context(), cleanup_env)
            on_failure = OnFailureIR(var=var, entry=entry)
        live = live_in(self.order, self.uses, self.edges)
        states: dict[str, State] = {}
        for sid in self.order:
            scope = self.scopes[sid]
            typed = {name: scope[name] for name in sorted(live[sid]) if name in scope}
            states[sid] = msgspec.structs.replace(self.states[sid], live=typed)
        return WorkflowIR(
            name=self.symbol.name,
            params=params,
            returns=type_from_ref(decl.returns, self.module),
            options=self.options(),
            published=self.published or None,
            start=start,
            states=states,
            on_failure=on_failure,
            span=self.decls.span(decl),
        )

    def options(self) -> WorkflowOptionsIR:
        opts = declaration_options(self.decls.program, self.symbol)
        budget = opts.get("budget")
        limit = opts.get("limit")
        deadline = opts.get("deadline")
        return WorkflowOptionsIR(
            class_=opts.get("class"),
            budget=Decimal(budget) if budget is not None else None,
            deadline_ms=duration_ms(deadline),
            deadline=self.lower(deadline) if isinstance(deadline, ast.Expr) else None,
            limit=limit if isinstance(limit, int) else None,
        )

    # ---- bookkeeping -------------------------------------------------------------

    def reserve(self, sid: str) -> None:
        """Claim an id and its place in source order before its children are compiled."""
        if sid in self.scopes:
            raise CompilerBug(f"duplicate state id `{sid}` in workflow `{self.symbol.name}`")
        self.order.append(sid)
        self.scopes[sid] = {}

    def add(
        self,
        state: State,
        ctx: _Context,
        env: dict[str, TypeIR],
        exprs: list[Expr | None],
        flows: list[tuple[str | None, frozenset[str]]],
    ) -> None:
        """Record a state with the expressions it reads and where control flows from it."""
        sid = state.id
        if sid in self.states:
            raise CompilerBug(f"duplicate state id `{sid}` in workflow `{self.symbol.name}`")
        if sid not in self.scopes:
            self.reserve(sid)
        self.states[sid] = msgspec.structs.replace(state, frame=ctx.frame)
        self.scopes[sid] = dict(env)
        used: set[str] = set()
        for e in exprs:
            if e is not None:
                used |= free_vars(e)
        self.uses[sid] = used
        edges: list[Edge] = []
        for target, kill in flows:
            if target is not None:
                edges.append((target, kill))
            else:
                edges.extend((t, kill | k) for t, k in ctx.end)
        edges.extend(ctx.handlers)
        self.edges[sid] = edges

    def lower(self, expr: ast.Expr) -> Expr:
        return self.lowering.lower(expr, self.module)

    # ---- blocks ------------------------------------------------------------------

    def block(
        self,
        stmts: list[ast.Stmt],
        prefix: str,
        cont: str | None,
        ctx: _Context,
        env: dict[str, TypeIR],
        block_ids: list[str] | None = None,
    ) -> tuple[str | None, dict[str, TypeIR]]:
        """Compile statements in sequence; returns the entry id and the environment after."""
        sids = block_ids if block_ids is not None else ids.sibling_ids(stmts, prefix)
        env = dict(env)
        for i, stmt in enumerate(stmts):
            nxt = sids[i + 1] if i + 1 < len(stmts) else cont
            env = self.stmt(stmt, sids[i], nxt, ctx, env)
        return (sids[0] if stmts else cont), env

    def stmt(
        self, stmt: ast.Stmt, sid: str, nxt: str | None, ctx: _Context, env: dict[str, TypeIR]
    ) -> dict[str, TypeIR]:
        """Compile one statement into the state `sid`; returns the environment after it."""
        span = self.decls.span(stmt)
        match stmt:
            case ast.Assign():
                return self.assign(stmt.target.name, stmt.value, sid, nxt, ctx, env, span)
            case ast.ExprStmt():
                return self.assign(None, stmt.expr, sid, nxt, ctx, env, span)
            case ast.Checkpoint() | ast.Wait() | ast.For():
                return self.assign(None, stmt, sid, nxt, ctx, env, span)
            case ast.If():
                return self.if_(stmt, sid, nxt, ctx, env, span)
            case ast.Match():
                return self.match(stmt, sid, nxt, ctx, env, span)
            case ast.Select():
                return self.select(stmt, sid, nxt, ctx, env, span)
            case ast.While():
                return self.while_(stmt, sid, nxt, ctx, env, span)
            case ast.Parallel():
                return self.parallel(stmt, sid, nxt, ctx, env, span)
            case ast.Try():
                return self.try_(stmt, sid, nxt, ctx, env, span)
            case ast.Return():
                value = self.lower(stmt.value) if stmt.value is not None else None
                self.add(ReturnState(id=sid, span=span, value=value), ctx, env, [value], [])
                return env
            case ast.Fail():
                failure = self.fail(stmt, sid, span)
                self.add(failure, ctx, env, [failure.message, failure.cause], [])
                return env
            case ast.Log():
                message = self.lower(stmt.message)
                state = LogState(id=sid, span=span, message=message, next=nxt)
                self.add(state, ctx, env, [message], [(nxt, _NONE)])
                return env
            case ast.Publish():
                value = self.lower(stmt.value)
                self.published.setdefault(stmt.name.name, expr_type(stmt.value))
                published = PublishState(
                    id=sid, span=span, name=stmt.name.name, value=value, next=nxt
                )
                self.add(published, ctx, env, [value], [(nxt, _NONE)])
                return env
            case ast.Yield():
                return self.yield_(stmt, sid, nxt, ctx, env, span)
        raise CompilerBug(f"statement {type(stmt).__name__} cannot appear in a workflow body")

    def fail(self, stmt: ast.Fail, sid: str, span: SpanIR) -> FailState:
        """`fail "..."`, `fail e` or `fail Name { message: ..., cause: e }`."""
        value = stmt.message
        if not isinstance(value, ast.RecordLit):
            return FailState(id=sid, span=span, message=self.lower(value))
        error = error_symbol(self.module, value.type_name.name)
        if error is None:
            raise CompilerBug(f"`fail {value.type_name.name} {{...}}` names no declared error")
        fields = {entry.key.name: self.lower(entry.value) for entry in value.entries}
        return FailState(
            id=sid,
            span=span,
            message=fields["message"],
            error=error.name,
            cause=fields.get("cause"),
        )

    # ---- steps and assignments -----------------------------------------------------

    @staticmethod
    def step_of(expr: ast.Expr) -> Symbol | None:
        """The tool, effect, agent or workflow a call invokes, as the type checker resolved it."""
        if isinstance(expr, ast.Call) and isinstance(expr.target, Symbol):
            return expr.target if expr.target.kind in _STEP_KINDS else None
        return None

    def assign(
        self,
        target: str | None,
        value: ast.AssignValue,
        sid: str,
        nxt: str | None,
        ctx: _Context,
        env: dict[str, TypeIR],
        span: SpanIR,
    ) -> dict[str, TypeIR]:
        kill = frozenset({target}) if target else _NONE
        after = dict(env)
        if isinstance(value, ast.Checkpoint):
            state, ty = self.checkpoint(value, target, sid, nxt, span)
            exprs: list[Expr | None] = [state.ask, state.assignee, *state.show]
            self.add(state, ctx, env, exprs, [(nxt, kill)])
        elif isinstance(value, ast.Wait):
            wait, ty = self.wait(value, target, sid, nxt, span)
            self.add(wait, ctx, env, [wait.duration, wait.key], [(nxt, kill)])
        elif isinstance(value, ast.For):
            ty = self.for_(value, target, sid, nxt, ctx, env, span)
        elif (callee := self.step_of(value)) is not None:
            assert isinstance(value, ast.Call)
            state_, ty = self.call(value, callee, target, sid, nxt, span)
            self.add(state_, ctx, env, list(state_.args.values()), [(nxt, kill)])
        else:
            lowered = self.lower(value)
            ty = expr_type(value)
            assign = AssignState(id=sid, span=span, target=target, value=lowered, next=nxt)
            self.add(assign, ctx, env, [lowered], [(nxt, kill)])
        if target is not None:
            after[target] = ty
        return after

    def call(
        self,
        call: ast.Call,
        callee: Symbol,
        target: str | None,
        sid: str,
        nxt: str | None,
        span: SpanIR,
    ) -> tuple[CallState | ChildState, TypeIR]:
        args = self.decls.call_args(call, callee, self.module)
        decl = callee.decl
        assert isinstance(decl, ast.CallableDecl | ast.WorkflowDecl)
        returns = type_from_ref(decl.returns, callee.module)
        if callee.kind == "workflow":
            child = ChildState(
                id=sid,
                span=span,
                workflow=callee.name,
                args=args,
                target=target,
                next=nxt,
                detached=True if call.detached else None,
            )
            return child, STR if call.detached else returns
        compiled: ToolIR | AgentIR
        if callee.kind == "tool":
            compiled = self.callables.tools[callee.name]
        elif callee.kind == "effect":
            compiled = self.callables.effects[callee.name]
        else:
            compiled = self.callables.agents[callee.name]
        state = CallState(
            id=sid,
            span=span,
            callee=callee.name,
            callee_kind=cast(CalleeKind, callee.kind),
            args=args,
            target=target,
            retry=compiled.retry,
            timeout_ms=compiled.timeout_ms,
            next=nxt,
        )
        return state, returns

    def checkpoint(
        self, cp: ast.Checkpoint, target: str | None, sid: str, nxt: str | None, span: SpanIR
    ) -> tuple[CheckpointState, TypeIR]:
        entries = {e.key.name: e.value for e in cp.options.entries}
        options = _names(entries.get("options")) or list(_DEFAULT_CHECKPOINT_OPTIONS)
        show = entries.get("show")
        show_items = show.items if isinstance(show, ast.ListLit) else ([show] if show else [])
        on_timeout = _names(entries.get("on_timeout"))
        state = CheckpointState(
            id=sid,
            span=span,
            name=cp.name.name,
            target=target,
            ask=self._expr_option(entries.get("ask")),
            show=[self.lower(item) for item in show_items],
            options=options,
            assignee=self._expr_option(entries.get("assignee")),
            timeout_ms=_duration(entries.get("timeout")),
            timeout=self._computed_timeout(entries.get("timeout")),
            on_timeout=on_timeout[0] if on_timeout else None,
            next=nxt,
        )
        ty = TypeIR(kind="decision", name=cp.name.name, members=options)
        return state, ty

    def _expr_option(self, value: ast.Expr | None) -> Expr | None:
        return self.lower(value) if value is not None else None

    def _computed_timeout(self, value: ast.Expr | None) -> Expr | None:
        """A `timeout:` that is neither a literal duration nor `never`: evaluated at run time."""
        if value is None or isinstance(value, ast.DurationLit) or _is_never(value):
            return None
        return self.lower(value)

    def wait(
        self, wait: ast.Wait, target: str | None, sid: str, nxt: str | None, span: SpanIR
    ) -> tuple[WaitState, TypeIR]:
        if wait.event is None:
            duration = self.lower(wait.duration) if wait.duration is not None else None
            state = WaitState(id=sid, span=span, target=target, duration=duration, next=nxt)
            return state, NULL
        event = self.module.scope.get(wait.event.name)
        if event is None or event.name not in self.callables.events:
            raise CompilerBug(f"wait for unknown event `{wait.event.name}` at {wait.span}")
        payload = self.callables.events[event.name].payload
        entries = {e.key.name: e.value for e in wait.options.entries} if wait.options else {}
        timeout = entries.get("timeout")
        state = WaitState(
            id=sid,
            span=span,
            target=target,
            event=event.name,
            payload=payload,
            timeout_ms=_duration(timeout),
            timeout=self._computed_timeout(timeout),
            key=self.lower(wait.key) if wait.key is not None else None,
            next=nxt,
        )
        value = payload if payload is not None else NULL
        return state, optional(value) if timeout is not None and not _is_never(timeout) else value

    # ---- control flow ----------------------------------------------------------------

    def if_(
        self,
        stmt: ast.If,
        sid: str,
        nxt: str | None,
        ctx: _Context,
        env: dict[str, TypeIR],
        span: SpanIR,
    ) -> dict[str, TypeIR]:
        self.reserve(sid)
        then, then_env = self.block(stmt.then.stmts, ids.join(sid, ids.THEN), nxt, ctx, env)
        else_stmts: list[ast.Stmt] = []
        if isinstance(stmt.orelse, ast.Block):
            else_stmts = stmt.orelse.stmts
        elif isinstance(stmt.orelse, ast.If):
            else_stmts = [stmt.orelse]
        orelse, else_env = self.block(else_stmts, ids.join(sid, ids.ELSE), nxt, ctx, env)
        cond = self.lower(stmt.cond)
        state = BranchState(id=sid, span=span, cond=cond, then=then, else_=orelse)
        self.add(state, ctx, env, [cond], [(then, _NONE), (orelse, _NONE)])
        return {**env, **then_env, **else_env}

    def match(
        self,
        stmt: ast.Match,
        sid: str,
        nxt: str | None,
        ctx: _Context,
        env: dict[str, TypeIR],
        span: SpanIR,
    ) -> dict[str, TypeIR]:
        self.reserve(sid)
        arms: list[MatchArm] = []
        merged = dict(env)
        for arm in stmt.arms:
            members = [p.name for p in arm.patterns]
            prefix = ids.join(sid, members[0] if members else "_")
            entry, arm_env = self.block(arm.body.stmts, prefix, nxt, ctx, env)
            arms.append(MatchArm(members=members, target=entry))
            merged.update(arm_env)
        subject = self.lower(stmt.subject)
        state = MatchState(id=sid, span=span, subject=subject, arms=arms)
        self.add(state, ctx, env, [subject], [(arm.target, _NONE) for arm in arms])
        return merged

    def select(
        self,
        stmt: ast.Select,
        sid: str,
        nxt: str | None,
        ctx: _Context,
        env: dict[str, TypeIR],
        span: SpanIR,
    ) -> dict[str, TypeIR]:
        self.reserve(sid)
        arms: list[SelectArm] = []
        exprs: list[Expr | None] = []
        flows: list[tuple[str | None, frozenset[str]]] = []
        merged = dict(env)
        labels: set[str] = set()
        for index, arm in enumerate(stmt.arms):
            compiled, bound = self._select_arm(arm, sid, nxt, span)
            var = arm.var.name if arm.var is not None and bound is not None else None
            arm_env = {**env, var: bound} if var is not None and bound is not None else env
            label = str(compiled.name or compiled.event or "after").rsplit(".", 1)[-1]
            label = label if label not in labels else f"{label}#{index + 1}"
            labels.add(label)
            prefix = ids.join(sid, label)
            entry, after = self.block(arm.body.stmts, prefix, nxt, ctx, arm_env)
            arms.append(msgspec.structs.replace(compiled, entry=entry, var=var))
            exprs += [compiled.key, compiled.ask, compiled.assignee, *compiled.show]
            exprs.append(compiled.timeout)
            flows.append((entry, frozenset({var}) if var else _NONE))
            merged.update({k: v for k, v in after.items() if k != var})
        state = SelectState(id=sid, span=span, arms=arms, next=nxt)
        self.add(state, ctx, env, exprs, flows)
        return merged

    def _select_arm(
        self, arm: ast.SelectArm, sid: str, nxt: str | None, span: SpanIR
    ) -> tuple[SelectArm, TypeIR | None]:
        """An arm as the select's state holds it, and the type its `as` variable gets."""
        if arm.wait is not None:
            wait, _ = self.wait(arm.wait, None, sid, nxt, span)
            value = wait.payload if wait.payload is not None else NULL
            compiled = SelectArm(kind="event", event=wait.event, payload=wait.payload, key=wait.key)
            return compiled, value
        if arm.checkpoint is not None:
            cp, decision = self.checkpoint(arm.checkpoint, None, sid, nxt, span)
            compiled = SelectArm(
                kind="checkpoint",
                name=cp.name,
                ask=cp.ask,
                show=cp.show,
                options=cp.options,
                assignee=cp.assignee,
            )
            return compiled, decision
        after = arm.after
        assert after is not None
        return (
            SelectArm(
                kind="after",
                timeout_ms=after.millis if isinstance(after, ast.DurationLit) else None,
                timeout=self._computed_timeout(after),
            ),
            None,
        )

    def for_(
        self,
        loop: ast.For,
        target: str | None,
        sid: str,
        nxt: str | None,
        ctx: _Context,
        env: dict[str, TypeIR],
        span: SpanIR,
    ) -> TypeIR:
        """A `for` or `parallel for`; returns the type of the collected list."""
        self.reserve(sid)
        iterable = self.lower(loop.iterable)
        var = loop.var.name
        body_env = {**env, var: element_type(expr_type(loop.iterable))}
        inner = _Context(
            frame=sid,
            collector=sid if target is not None else ctx.collector,
            end=[(sid, _NONE)],
            handlers=ctx.handlers,
        )
        body, _ = self.block(loop.body.stmts, sid, None, inner, body_env)
        state: LoopState | MapState
        if loop.parallel:
            limit = self.lower(loop.limit) if loop.limit is not None else None
            first = self.lower(loop.first) if loop.first is not None else None
            state = MapState(
                id=sid,
                span=span,
                var=var,
                iterable=iterable,
                limit=limit,
                first=first,
                body=body,
                target=target,
                next=nxt,
            )
            exprs: list[Expr | None] = [iterable, limit, first]
        else:
            state = LoopState(
                id=sid,
                span=span,
                mode="for",
                var=var,
                iterable=iterable,
                body=body,
                target=target,
                next=nxt,
            )
            exprs = [iterable]
        kill = frozenset({target}) if target else _NONE
        flows: list[tuple[str | None, frozenset[str]]] = [(nxt, kill)]
        if body is not None:
            flows.append((body, frozenset({var})))
        self.add(state, ctx, env, exprs, flows)
        if target is None:
            ctx.yields.extend(inner.yields)
        return list_of(inner.yields[0] if inner.yields else UNKNOWN)

    def while_(
        self,
        stmt: ast.While,
        sid: str,
        nxt: str | None,
        ctx: _Context,
        env: dict[str, TypeIR],
        span: SpanIR,
    ) -> dict[str, TypeIR]:
        self.reserve(sid)
        inner = replace(ctx, frame=sid, end=[(sid, _NONE)], yields=[])
        body, _ = self.block(stmt.body.stmts, sid, None, inner, env)
        ctx.yields.extend(inner.yields)
        cond, limit = self.lower(stmt.cond), self.lower(stmt.max)
        state = LoopState(
            id=sid, span=span, mode="while", cond=cond, max=limit, body=body, next=nxt
        )
        flows: list[tuple[str | None, frozenset[str]]] = [(nxt, _NONE)]
        if body is not None:
            flows.append((body, _NONE))
        self.add(state, ctx, env, [cond, limit], flows)
        return env

    def parallel(
        self,
        stmt: ast.Parallel,
        sid: str,
        nxt: str | None,
        ctx: _Context,
        env: dict[str, TypeIR],
        span: SpanIR,
    ) -> dict[str, TypeIR]:
        self.reserve(sid)
        flat = [s for branch in stmt.branches for s in branch.stmts]
        flat_ids = ids.sibling_ids(flat, sid)
        after_join = [(nxt, _NONE)] if nxt is not None else ctx.end
        inner = replace(ctx, frame=sid, end=after_join, yields=[])
        entries: list[str] = []
        merged = dict(env)
        start = 0
        for branch in stmt.branches:
            count = len(branch.stmts)
            if count:
                branch_ids = flat_ids[start : start + count]
                entry, branch_env = self.block(branch.stmts, sid, None, inner, env, branch_ids)
                assert entry is not None
                entries.append(entry)
                merged.update(branch_env)
            start += count
        ctx.yields.extend(inner.yields)
        state = ParallelState(id=sid, span=span, branches=entries, next=nxt)
        self.add(state, ctx, env, [], [*((e, _NONE) for e in entries), (nxt, _NONE)])
        return merged

    def try_(
        self,
        stmt: ast.Try,
        sid: str,
        nxt: str | None,
        ctx: _Context,
        env: dict[str, TypeIR],
        span: SpanIR,
    ) -> dict[str, TypeIR]:
        self.reserve(sid)
        after = [(nxt, _NONE)] if nxt is not None else ctx.end
        final_ids = (
            ids.sibling_ids(stmt.final.stmts, ids.join(sid, ids.FINALLY)) if stmt.final else []
        )
        final_entry = final_ids[0] if final_ids else None
        to_final: list[Edge] = [(final_entry, _NONE)] if final_entry else []
        # Where a finished body or catch goes, and where a failure inside them goes.
        done = to_final or after
        catch_prefixes = ids.catch_prefixes(stmt.catches, sid)
        catch_entries: list[Edge] = []
        for clause, prefix in zip(stmt.catches, catch_prefixes):
            if clause.body.stmts:
                first = ids.sibling_ids(clause.body.stmts, prefix)[0]
                kill = frozenset({clause.var.name}) if clause.var else _NONE
                catch_entries.append((first, kill))
        body_ctx = replace(
            ctx, frame=sid, end=done, handlers=[*catch_entries, *to_final, *ctx.handlers], yields=[]
        )
        body, merged = self.block(stmt.body.stmts, ids.join(sid, ids.BODY), None, body_ctx, env)
        catch_ctx = replace(
            ctx, frame=sid, end=done, handlers=[*to_final, *ctx.handlers], yields=[]
        )
        catches: list[CatchIR] = []
        for clause, prefix in zip(stmt.catches, catch_prefixes):
            catch_env = {**env, clause.var.name: ERROR} if clause.var else env
            entry, _ = self.block(clause.body.stmts, prefix, None, catch_ctx, catch_env)
            catches.append(
                CatchIR(
                    kinds=[self.error_kind(k.name) for k in clause.kinds],
                    var=clause.var.name if clause.var else None,
                    entry=entry,
                )
            )
        final: str | None = None
        if stmt.final is not None:
            final_ctx = replace(ctx, frame=sid, end=after, yields=[])
            final, _ = self.block(stmt.final.stmts, "", None, final_ctx, env, final_ids)
            ctx.yields.extend(final_ctx.yields)
        ctx.yields.extend(body_ctx.yields + catch_ctx.yields)
        state = TryState(id=sid, span=span, body=body, catches=catches, finally_=final, next=nxt)
        flows: list[tuple[str | None, frozenset[str]]] = [(body, _NONE)] if body else []
        flows += catch_entries + to_final
        flows.append((nxt, _NONE))
        self.add(state, ctx, env, [], flows)
        return merged

    def error_kind(self, name: str) -> str:
        """A kind as the runtime sees it: a declared error name qualified, `timeout` as is."""
        sym = error_symbol(self.module, name)
        return sym.name if sym is not None else name

    def yield_(
        self,
        stmt: ast.Yield,
        sid: str,
        nxt: str | None,
        ctx: _Context,
        env: dict[str, TypeIR],
        span: SpanIR,
    ) -> dict[str, TypeIR]:
        if ctx.collector is None:
            raise CompilerBug(f"`yield` outside a collecting loop at {stmt.span}")
        value = self.lower(stmt.value)
        ctx.yields.append(expr_type(stmt.value))
        state = YieldState(id=sid, span=span, value=value, into=ctx.collector, next=nxt)
        self.add(state, ctx, env, [value], [(nxt, _NONE)])
        return env


def _names(value: ast.Expr | None) -> list[str]:
    """Bare names in an option: `reject` or `[approve, reject]`."""
    if isinstance(value, ast.Name):
        return [value.name]
    if isinstance(value, ast.ListLit):
        return [item.name for item in value.items if isinstance(item, ast.Name)]
    return []


def _is_never(value: ast.Expr) -> bool:
    return isinstance(value, ast.Name) and value.name == "never"


def _duration(value: ast.Expr | None) -> int | None:
    """A `timeout:` in milliseconds; None for `never` or when absent."""
    return duration_ms(value.millis) if isinstance(value, ast.DurationLit) else None
