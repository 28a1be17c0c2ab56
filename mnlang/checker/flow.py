"""Checking a workflow body in one walk: statements, flow and hygiene.

The walk carries a flow state: the variables assigned on every path so far,
the optionals narrowed on every path, and whether the path has ended (`return`
or `fail`). Branches walk copies of the state and join them after; a path
that ended does not count at a join. Variables live for the whole workflow;
loop and `catch` variables only inside their block.

Reported here: E201 (assignments, returns, yields), E203, E204, E205, E207,
E208 and E212 for checkpoint and wait option blocks, E215, E217, and the
hygiene warnings W101 (assigned, never read), W102 (unreachable), W103
(shadowing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from mnlang.checker import types as T
from mnlang.checker.declarations import Declarations, Resolver, Signature
from mnlang.checker.errornames import is_error_name, resolve_error_name
from mnlang.checker.expressions import ExprChecker
from mnlang.checker.options import (
    CHECKPOINT_OPTIONS,
    ERROR_KINDS,
    UNCATCHABLE_KINDS,
    WAIT_OPTIONS,
    report_unknown_key,
)
from mnlang.checker.program import ModuleInfo
from mnlang.checker.secrets import published_secret
from mnlang.checker.steps import nested_statement, walk
from mnlang.checker.suggest import suggest
from mnlang.checker.typerules import assignable, has_unknown, join
from mnlang.diagnostics import Diagnostics, Label
from mnlang.syntax import ast

_DEFAULT_CHOICES = ("approve", "reject")


class _Var(msgspec.Struct):
    name: str
    type: T.Type
    kind: str  # "var", "param" or "loop" (the `Name.ref` of its uses)
    decl: ast.Ident
    reads: int = 0


class _State(msgspec.Struct):
    assigned: set[str]
    narrow: dict[str, T.Type]
    ended: bool = False

    def copy(self) -> _State:
        return _State(set(self.assigned), dict(self.narrow), self.ended)

    def forget(self, names: Iterable[str]) -> None:
        """Drop what is known about the values of `names` (they were assigned)."""
        for name in names:
            if not self.narrow:
                return
            prefix = name + "."
            for path in [p for p in self.narrow if p == name or p.startswith(prefix)]:
                del self.narrow[path]


def _join(states: list[_State]) -> _State:
    """The state after branches: assigned and narrowed on every path that did not end."""
    live = [s for s in states if not s.ended]
    if not live:
        ended = states[0].copy()
        ended.ended = True
        return ended
    first = live[0]
    assigned = set(first.assigned)
    narrow = dict(first.narrow)
    for s in live[1:]:
        assigned &= s.assigned
        narrow = {k: v for k, v in narrow.items() if s.narrow.get(k) == v}
    return _State(assigned, narrow)


class _Loop(msgspec.Struct):
    """An enclosing loop; `collects` when it stands on the right of `=` (so `yield` is allowed)."""

    collects: bool
    item: T.Type | None = None


class _Assigned(msgspec.Struct):
    """Names assigned anywhere in the body, and per loop body and parallel branch."""

    everywhere: set[str] = msgspec.field(default_factory=set)
    within: dict[int, set[str]] = msgspec.field(default_factory=dict)


def _collect_assigned(block: ast.Block, out: _Assigned) -> set[str]:
    names: set[str] = set()
    for stmt in block.stmts:
        names |= _collect_stmt(stmt, out)
    return names


def _collect_stmt(s: ast.Stmt, out: _Assigned) -> set[str]:
    if isinstance(s, ast.Assign):
        out.everywhere.add(s.target.name)
        inner = _collect_stmt(s.value, out) if isinstance(s.value, ast.For) else set()
        return {s.target.name, *inner}
    if isinstance(s, ast.If):
        names = _collect_assigned(s.then, out)
        if isinstance(s.orelse, ast.Block):
            names |= _collect_assigned(s.orelse, out)
        elif isinstance(s.orelse, ast.If):
            names |= _collect_stmt(s.orelse, out)
        return names
    if isinstance(s, ast.For | ast.While):
        names = _collect_assigned(s.body, out)
        out.within[id(s)] = names
        return names
    if isinstance(s, ast.Match | ast.Select):
        names = set()
        for arm in s.arms:
            names |= _collect_assigned(arm.body, out)
        return names
    if isinstance(s, ast.Parallel):
        names = set()
        for branch in s.branches:
            inner = _collect_assigned(branch, out)
            out.within[id(branch)] = inner
            names |= inner
        return names
    if isinstance(s, ast.Try):
        names = _collect_assigned(s.body, out)
        for c in s.catches:
            names |= _collect_assigned(c.body, out)
        if s.final is not None:
            names |= _collect_assigned(s.final, out)
        return names
    return set()


class BodyChecker(ExprChecker):
    """Checks one workflow body; construct it, then call `check()`."""

    def __init__(
        self,
        decls: Declarations,
        resolver: Resolver,
        module: ModuleInfo,
        diags: Diagnostics,
        workflow: ast.WorkflowDecl,
        signature: Signature,
    ) -> None:
        super().__init__(decls, resolver, module, diags)
        self.workflow = workflow
        self.signature = signature
        self.vars: dict[str, _Var] = {}
        self.state = _State(set(), {})
        self.loops: list[_Loop] = []
        self.in_parallel = 0
        self.siblings: list[set[str]] = []  # names assigned by sibling parallel branches
        self.assigned = _Assigned()
        self.scoped: list[_Var] = []  # loop and catch variables, for W101
        self.read_early: set[str] = set()  # read before their first assignment (E207 reported)
        self.in_on_failure = False
        self.published: dict[str, tuple[T.Type, ast.Publish]] = {}  # name -> its type, first

    # ---- hooks ---------------------------------------------------------------------

    def is_local(self, name: str) -> bool:
        return name in self.vars or name in self.assigned.everywhere

    def is_bound(self, name: str) -> bool:
        var = self.vars.get(name)
        return var is not None and (var.kind != "var" or name in self.state.assigned)

    def local_names(self) -> Iterable[str]:
        return self.vars

    def narrowed(self, path: str) -> T.Type | None:
        t = super().narrowed(path)
        return t if t is not None else self.state.narrow.get(path)

    def _from_sibling(self, name: str) -> bool:
        # Reading what a sibling branch assigns is a dependency between branches (E306),
        # reported by the durability pass, not a possibly unassigned variable.
        return any(name in names for names in self.siblings)

    def local(self, node: ast.Name) -> T.Type | None:
        name = node.name
        var = self.vars.get(name)
        if var is None:
            if name not in self.assigned.everywhere:
                return None
            node.ref = "var"
            self.read_early.add(name)
            if not self._from_sibling(name):
                self.diags.add(
                    "E207",
                    node,
                    f"`{name}` is used before it is assigned",
                    help=f"assign `{name}` before this line",
                )
            return T.UNKNOWN
        var.reads += 1
        node.ref = var.kind
        if var.kind == "var" and name not in self.state.assigned:
            if not self._from_sibling(name):
                self.diags.add(
                    "E207",
                    node,
                    f"`{name}` may be unassigned here",
                    labels=[Label(var.decl.span, "assigned here")],
                    help=f"assign `{name}` on every path that reaches this line "
                    "(a path ending in `fail` or `return` does not count)",
                )
            self.state.assigned.add(name)  # report each variable once per path
        narrowed = self.narrowed(name)
        return narrowed if narrowed is not None else var.type

    # ---- the workflow --------------------------------------------------------------

    def check(self) -> None:
        for p in self.signature.params:
            self._shadowing(p.decl.name, declarations_only=True)
            self.vars[p.name] = _Var(p.name, p.type, "param", p.decl.name)
        _collect_assigned(self.workflow.body, self.assigned)
        self.block(self.workflow.body)
        if not self.state.ended:
            name = self.workflow.name.name
            self.diags.add(
                "E204",
                self.workflow.name,
                f"workflow `{name}` does not return a `{self.signature.returns}` on every path",
                help='end every path with `return <value>` or `fail "..."`',
            )
        if self.workflow.on_failure is not None:
            self._on_failure(self.workflow.on_failure)
        for var in [*self.vars.values(), *self.scoped]:
            if var.kind != "param" and var.reads == 0 and not var.name.startswith("_"):
                self.diags.add(
                    "W101",
                    var.decl,
                    f"`{var.name}` is assigned but never read",
                    help=f"remove it, or name it `_{var.name}` to keep it unread",
                )

    def _on_failure(self, clause: ast.OnFailure) -> None:
        """The cleanup after a failed run's compensations: it sees the parameters and the
        failure, not the body's variables (the body may have stopped anywhere)."""
        body_vars = self.vars
        self.vars = {name: var for name, var in body_vars.items() if var.kind == "param"}
        self.assigned = _Assigned()
        _collect_assigned(clause.body, self.assigned)
        self.state = _State(set(), {})
        self.in_on_failure = True
        if clause.var is not None:
            self._shadowing(clause.var)
            var = _Var(clause.var.name, T.ERROR, "var", clause.var)
            self.vars[clause.var.name] = var
            self.state.assigned.add(clause.var.name)
        self.block(clause.body)
        self.in_on_failure = False
        self.scoped.extend(v for v in self.vars.values() if v.kind == "var")
        self.vars = body_vars

    def _shadowing(self, ident: ast.Ident, declarations_only: bool = False) -> None:
        name = ident.name
        prior = None if declarations_only else self.vars.get(name)
        # A variable that may be unassigned here cannot be read, so hiding it hides nothing.
        if prior is not None and (prior.kind != "var" or name in self.state.assigned):
            what = {"param": "parameter", "loop": "loop variable"}.get(prior.kind, "variable")
            self.diags.add(
                "W103",
                ident,
                f"`{name}` shadows the {what} `{name}`",
                labels=[Label(prior.decl.span, "declared here")],
                help="give it another name",
            )
            return
        sym = self.module.scope.get(name)
        if sym is not None:
            self.diags.add(
                "W103",
                ident,
                f"`{name}` shadows the {sym.kind} `{name}`",
                labels=[Label(sym.decl.name.span, "declared here")],
                help="give it another name",
            )

    # ---- blocks and statements ----------------------------------------------------------

    def block(self, block: ast.Block) -> None:
        revived = False
        for stmt in block.stmts:
            if self.state.ended and not revived:
                self.diags.add(
                    "W102",
                    stmt,
                    "unreachable code: every path before it ends in `return` or `fail`",
                    help="remove it, or move it before the `return` or `fail`",
                )
                # Check the rest as if reachable, so its mistakes are still reported.
                self.state.ended = False
                revived = True
            outer, self.statement = self.statement, None if self.in_parallel else stmt
            _STATEMENTS[type(stmt)](self, stmt)
            self.statement = outer
        if revived:
            self.state.ended = True

    def _assign(self, s: ast.Assign) -> None:
        value = s.value
        if isinstance(value, ast.Checkpoint):
            t = self._checkpoint(value)
        elif isinstance(value, ast.Wait):
            t = self._wait(value, assigned=True)
        elif isinstance(value, ast.For):
            t = self._for(value, collects=True)
        else:
            t = self.step_or_expr(value)
        self._bind(s.target, t, value)

    def _bind(self, target: ast.Ident, t: T.Type, value: ast.Node) -> None:
        name = target.name
        var = self.vars.get(name)
        if var is None:
            self._shadowing(target, declarations_only=True)
            var = _Var(name, t, "var", target, reads=int(name in self.read_early))
            self.vars[name] = var
        elif var.type.kind == "null" and t.kind not in ("null", "unknown"):
            var.type = T.optional(t)
        elif has_unknown(var.type) and assignable(t, var.type):
            var.type = t
        elif not assignable(t, var.type):
            widen = var.type.kind == "int" and t.kind == "float"
            self.mismatch(
                value,
                t,
                var.type,
                f" for `{name}`",
                labels=[Label(var.decl.span, f"`{name}` first assigned here")],
                help=f"`{name}` is an `int` from its first assignment; assign a float there "
                "(e.g. `0.0`) to make it a `float`"
                if widen
                else None,
            )
        self.state.assigned.add(name)
        self.state.forget((name,))
        if var.type.kind == "optional" and t.kind not in ("optional", "null", "unknown"):
            self.state.narrow[name] = t

    def _expr_stmt(self, s: ast.ExprStmt) -> None:
        e = s.expr
        self.step_or_expr(e)
        if isinstance(e, ast.Call):
            if isinstance(e.target, str):
                self.diags.add(
                    "W101",
                    e,
                    f"the result of `{e.target}(...)` is unused",
                    help="assign it to a variable, or remove the call",
                )
            return
        self.diags.add(
            "W101", e, "the value of this expression is unused", help="assign it, or remove it"
        )

    def _option(self, s: ast.OptionStmt) -> None:
        top = s in self.workflow.body.stmts
        self.diags.add(
            "E217",
            s,
            f"option `{s.key.name}` must come before the first statement of the workflow",
            help="move it to the top of the workflow body"
            if top
            else "options belong at the top of the workflow body, not inside a block",
        )

    def _if(self, s: ast.If) -> None:
        self.condition(s.cond)
        when_true, when_false = self.facts_of(s.cond)
        before = self.state
        self.state = before.copy()
        self.state.narrow.update(when_true)
        self.block(s.then)
        then_end = self.state
        self.state = before
        before.narrow.update(when_false)
        if isinstance(s.orelse, ast.Block):
            self.block(s.orelse)
        elif isinstance(s.orelse, ast.If):
            self._if(s.orelse)
        self.state = _join([then_end, self.state])

    def _match(self, s: ast.Match) -> None:
        t = self.expr(s.subject)
        if t.kind == "optional":
            self.optional_use(s.subject, t)
            t = t.args[0]
        members = self.enum_members(t)
        if members is None and t.kind != "unknown":
            self.diags.add(
                "E201",
                s.subject,
                f"`match` needs an enum value, found `{t}`",
                help="use `if` / `else` to branch on other values",
            )
        covered: set[str] = set()
        wildcard = False
        before = self.state
        ends: list[_State] = []
        for arm in s.arms:
            for pattern in arm.patterns:
                self._pattern(pattern, t, members, covered, wildcard)
                if pattern.name == "_":
                    wildcard = True
                else:
                    covered.add(pattern.name)
            self.state = before.copy()
            self.block(arm.body)
            ends.append(self.state)
        if members is not None and not wildcard:
            missing = [m for m in members if m not in covered]
            if missing:
                shown = ", ".join(f"`{m}`" for m in missing)
                self.diags.add(
                    "E205",
                    s,
                    f"`match` does not cover {shown}",
                    help="add an arm for "
                    + ("it" if len(missing) == 1 else "them")
                    + ", or a `_ => { ... }` arm",
                )
                ends.append(before)
        self.state = _join(ends or [before])

    def _pattern(
        self,
        pattern: ast.Ident,
        t: T.Type,
        members: tuple[str, ...] | None,
        covered: set[str],
        wildcard: bool,
    ) -> None:
        name = pattern.name
        everything = wildcard or (members is not None and covered >= set(members))
        if name == "_":
            if everything:
                self.diags.add(
                    "W102",
                    pattern,
                    "unreachable arm: every member is already matched above",
                    help="remove this arm",
                )
            return
        if members is None:
            return
        if name not in members:
            checkpoint = t.name.removesuffix(".choice") if t.name in self.choices else None
            what = f"an option of checkpoint `{checkpoint}`" if checkpoint else f"a member of `{t}`"
            hint = suggest(pattern.span, name, members)
            self.diags.add(
                "E108",
                pattern,
                f"`{name}` is not {what}",
                help=hint.help or "it has: " + ", ".join(f"`{m}`" for m in members),
                fix=hint.fix,
            )
        elif name in covered or wildcard:
            self.diags.add(
                "W102",
                pattern,
                f"unreachable arm: `{name}` is already matched above",
                help="remove it from this arm",
            )

    def _loop_body(
        self, loop: ast.For | ast.While, body: ast.Block, facts: dict[str, T.Type] | None = None
    ) -> None:
        """Walk a loop body that may run any number of times, then join with skipping it.

        What the body assigns is not narrowed at its start (a later iteration sees the new
        value); `facts` are what the loop condition, checked before each iteration, narrows.
        """
        before = self.state
        before.forget(self.assigned.within.get(id(loop), ()))
        self.state = before.copy()
        self.state.narrow.update(facts or {})
        self.block(body)
        self.state = _join([before, self.state]) if not self.state.ended else before

    def _for(self, s: ast.For, collects: bool = False) -> T.Type:
        it = self.expr(s.iterable)
        if it.kind == "optional":
            self.optional_use(s.iterable, it)
            it = it.args[0]
        if it.kind == "list":
            item = it.args[0]
        elif it.kind in ("json", "unknown"):
            item = it
        else:
            item = T.UNKNOWN
            hint = (
                f"iterate over its keys: `for k in keys({self.show(s.iterable).strip('`')})`"
                if it.kind == "map"
                else "loops run over lists"
            )
            self.diags.add("E201", s.iterable, f"`for` needs a list, found `{it}`", help=hint)
        if s.limit is not None:
            self.expect(s.limit, T.INT, " as the loop limit")
        if s.first is not None:
            self._quorum(s, s.first)
        loop = _Loop(collects)
        self.loops.append(loop)
        self.in_parallel += s.parallel
        outer = self.vars.get(s.var.name)
        self._shadowing(s.var)
        var = _Var(s.var.name, item, "loop", s.var)
        self.vars[s.var.name] = var
        self._loop_body(s, s.body)
        self._unbind(var, outer)
        self.in_parallel -= s.parallel
        self.loops.pop()
        return T.list_of(loop.item or T.UNKNOWN)

    def _quorum(self, s: ast.For, first: ast.Expr) -> None:
        """`first N`: a whole number of at least 1, and no more than a literal list's items."""
        self.expect(first, T.INT, " as the quorum")
        if not isinstance(first, ast.IntLit):
            return
        if first.value < 1:
            self.diags.add(
                "E540",
                first,
                f"`first {first.value}` waits for no item",
                help="write `first 1` for the first result, or drop `first` to wait for all",
            )
        elif isinstance(s.iterable, ast.ListLit) and first.value > len(s.iterable.items):
            n = len(s.iterable.items)
            self.diags.add(
                "E541",
                first,
                f"`first {first.value}` can never be reached: the list has {n} item"
                + ("s" if n != 1 else ""),
                help=f"write at most `first {n}`, or add items",
            )

    def _unbind(self, var: _Var, outer: _Var | None) -> None:
        self.scoped.append(var)
        if outer is not None:
            self.vars[var.name] = outer
        else:
            del self.vars[var.name]

    def _for_stmt(self, s: ast.For) -> None:
        self._for(s)

    def _while(self, s: ast.While) -> None:
        # The condition is checked again after each iteration: what the body assigns is not
        # narrowed when it is evaluated.
        self.state.forget(self.assigned.within.get(id(s), ()))
        self.condition(s.cond)
        when_true, _ = self.facts_of(s.cond)
        if s.max_key.name != "max":
            report_unknown_key(self.diags, s.max_key, ("max",), "a `while` loop")
        self.expect(s.max, T.INT, " as the loop bound")
        self.loops.append(_Loop(collects=False))
        self._loop_body(s, s.body, when_true)
        self.loops.pop()

    def _parallel(self, s: ast.Parallel) -> None:
        before = self.state
        names = [self.assigned.within.get(id(b), set()) for b in s.branches]
        self.in_parallel += 1
        ends: list[_State] = []
        for i, branch in enumerate(s.branches):
            others: set[str] = set()
            for j, branch_names in enumerate(names):
                if j != i:
                    others |= branch_names
            self.siblings.append(others)
            self.state = before.copy()
            self.block(branch)
            ends.append(self.state)
            self.siblings.pop()
        self.in_parallel -= 1
        after = before.copy()
        for branch_names in names:
            after.forget(branch_names)
        for end in ends:
            after.assigned |= end.assigned
            after.ended = after.ended or end.ended
        self.state = after

    def _try(self, s: ast.Try) -> None:
        before = self.state
        self.state = before.copy()
        self.block(s.body)
        ends = [self.state]
        for c in s.catches:
            self._catch_kinds(c)
            self.state = before.copy()
            outer = None
            var = None
            if c.var is not None:
                outer = self.vars.get(c.var.name)
                self._shadowing(c.var)
                var = _Var(c.var.name, T.ERROR, "var", c.var)
                self.vars[c.var.name] = var
                self.state.assigned.add(c.var.name)
            self.block(c.body)
            if var is not None:
                self._unbind(var, outer)
                if var.name not in before.assigned:
                    self.state.assigned.discard(var.name)
            ends.append(self.state)
        joined = _join(ends)
        if s.final is not None:
            self.state = before.copy()
            self.block(s.final)
            final = self.state
            added = final.assigned - before.assigned
            joined.assigned |= added
            joined.forget(added)
            joined.ended = joined.ended or final.ended
        self.state = joined

    def _select(self, s: ast.Select) -> None:
        """Each arm runs from the state before the select, with its `as` variable bound to
        the event's payload (not optional: the arm runs only when the signal came) or the
        checkpoint's decision; the arms' ends join as `match` arms do."""
        before = self.state
        ends: list[_State] = []
        for arm in s.arms:
            self.state = before.copy()
            bound: T.Type | None = None
            if arm.wait is not None:
                t = self._wait(arm.wait, assigned=True)
                bound = t.args[0] if t.kind == "optional" else t
            elif arm.checkpoint is not None:
                bound = self._checkpoint(arm.checkpoint)
            elif arm.after is not None:
                if isinstance(arm.after, ast.Name) and arm.after.name == "never":
                    arm.after.ty = T.DURATION
                else:
                    self.expect(arm.after, T.DURATION, " for `after`")
            outer = var = None
            if arm.var is not None and bound is not None:
                outer = self.vars.get(arm.var.name)
                self._shadowing(arm.var)
                var = _Var(arm.var.name, bound, "var", arm.var)
                self.vars[arm.var.name] = var
                self.state.assigned.add(arm.var.name)
            self.block(arm.body)
            if var is not None:
                self._unbind(var, outer)
                if var.name not in before.assigned:
                    self.state.assigned.discard(var.name)
            ends.append(self.state)
        self.state = _join(ends or [before])

    def _catch_kinds(self, c: ast.Catch) -> None:
        for kind in c.kinds:
            name = kind.name
            if name == "any" or name in ERROR_KINDS:
                continue
            if is_error_name(name):
                self.resolver.symbol(self.module, name)  # marks an imported name used
                resolve_error_name(self.module, kind, name, self.diags)
                continue
            if name in UNCATCHABLE_KINDS:
                self.diags.add(
                    "E212",
                    kind,
                    f"`{name}` is enforced by the runtime and cannot be caught",
                    help="clean up in a `finally` block instead; it still runs",
                )
                continue
            hint = suggest(kind.span, name, [*ERROR_KINDS, "any"])
            self.diags.add(
                "E212",
                kind,
                f"`{name}` is not an error kind",
                help=hint.help or "error kinds: any, " + ", ".join(ERROR_KINDS),
                fix=hint.fix,
            )

    def _return(self, s: ast.Return) -> None:
        name = self.workflow.name.name
        if self.in_on_failure:
            self.diags.add(
                "E322",
                s,
                "`return` cannot stand in `on_failure`: the run has failed",
                help="end the cleanup, or `fail` with another error; "
                "to recover from a failure, `catch` it in the body",
            )
        elif self.in_parallel:
            self.diags.add(
                "E217",
                s,
                "`return` cannot stand inside a `parallel` branch",
                help="assign a variable in the branch and return after the `parallel` block",
            )
        else:
            self.state.ended = True
        returns = self.signature.returns
        if s.value is None:
            self.diags.add(
                "E201",
                s,
                f"workflow `{name}` returns `{returns}`, but this `return` has no value",
                help=f"return a `{returns}`: `return <value>`",
            )
        else:
            self.expect(s.value, returns, f" as the result of `{name}`")

    def _fail(self, s: ast.Fail) -> None:
        self.state.ended = True
        value = s.message
        if isinstance(value, ast.RecordLit):
            sym = self.resolver.symbol(self.module, value.type_name.name)
            if sym is not None and sym.kind == "error":
                value.ty = self.error_value(value, sym)
                return
            if sym is None:  # `fail Name { ... }` raises an error: say so, not "unknown type"
                resolve_error_name(self.module, value.type_name, value.type_name.name, self.diags)
                for entry in value.entries:
                    self.expr(entry.value)
                return
        t = self.expr(value, T.STR)
        if t.kind not in ("str", "error", "unknown"):
            self.diags.add(
                "E201",
                value,
                f"`fail` takes a message, an error or a caught error, not `{t}`",
                help='write `fail "..."`, `fail Name { message: "..." }` (a declared '
                "`error Name`) or `fail e` to raise a caught error again",
            )

    def _log(self, s: ast.Log) -> None:
        self.expect(s.message, T.STR, " for `log`")

    def _publish(self, s: ast.Publish) -> None:
        """A published name keeps one type: readers outside the run rely on it."""
        name = s.name.name
        first = self.published.get(name)
        if first is None:
            t = self.expr(s.value)
            if T.holds_secret(t):
                published_secret(self.diags, s.value, f"published value `{name}`")
            self.published[name] = (t, s)
            return
        t = self.expect(s.value, first[0], f" for `publish {name}`")
        if not assignable(t, first[0]):
            return
        joined = join(first[0], t)
        if joined is not None:
            self.published[name] = (joined, first[1])

    def _yield(self, s: ast.Yield) -> None:
        loop = self.loops[-1] if self.loops else None
        t = self.expr(s.value)
        if loop is None or not loop.collects:
            self.diags.add(
                "E215",
                s,
                "`yield` outside a collecting loop",
                help="collect with a loop on the right of `=`: `xs = for x in items { yield ... }`",
            )
            return
        if loop.item is None:
            loop.item = t
            return
        joined = join(loop.item, t)
        if joined is None:
            self.mismatch(s.value, t, loop.item, " for `yield` (the loop yields one type)")
        else:
            loop.item = joined

    # ---- checkpoints and waits ----------------------------------------------------------

    def _option_entries(
        self, block: ast.ObjectLit, known: tuple[str, ...], what: str
    ) -> dict[str, ast.Entry]:
        entries: dict[str, ast.Entry] = {}
        for entry in block.entries:
            key = entry.key.name
            if key not in known:
                report_unknown_key(self.diags, entry.key, known, what)
                continue
            if key in entries:
                self.diags.add(
                    "E212",
                    entry.key,
                    f"option `{key}` is given twice",
                    labels=[Label(entries[key].key.span, "first given here")],
                    help="keep one of them",
                )
                continue
            entries[key] = entry
        return entries

    def _timeout(self, entry: ast.Entry | None) -> str | None:
        """`"never"`, `"duration"` (a literal or an expression of type `duration`, checked
        for being zero or more when the step starts), or None when absent or wrong."""
        if entry is None:
            return None
        value = entry.value
        if isinstance(value, ast.Name) and value.name == "never":
            value.ty = T.DURATION
            return "never"
        if isinstance(value, ast.ObjectLit):
            self.diags.add(
                "E212",
                value,
                "`timeout` takes a duration or `never`, not an object",
                help="write e.g. `timeout: 24h`, `timeout: review_time` (a `duration` value), "
                "or `timeout: never` to wait without limit",
            )
            return None
        t = self.expr(value, T.DURATION)
        if t.kind in ("duration", "unknown"):
            return "duration"
        if t.kind == "optional" and t.args[0].kind == "duration":
            self.optional_use(value, t)
            return None
        self.diags.add(
            "E212",
            value,
            f"`timeout` takes a duration or `never`, found `{t}`",
            help="write e.g. `timeout: 24h`, `timeout: review_time` (a `duration` value), "
            "or `timeout: never` to wait without limit",
        )
        return None

    def _checkpoint(self, c: ast.Checkpoint) -> T.Type:
        name = c.name.name
        entries = self._option_entries(c.options, CHECKPOINT_OPTIONS, "a checkpoint")
        choices = self._choices(entries.get("options"))
        choice = T.enum(f"{name}.choice")
        self.choices[choice.name] = choices
        self.checkpoints[name] = choices
        for key, entry in entries.items():
            value = entry.value
            if key in ("ask", "assignee"):
                self._expect_value(entry, T.STR)
            elif key == "show":
                items = value.items if isinstance(value, ast.ListLit) else [value]
                for item in items:
                    self.expr(item, T.JSON)
                if isinstance(value, ast.ListLit):
                    value.ty = T.list_of(T.JSON)
            elif key == "timeout":
                self._timeout(entry)
            elif key == "on_timeout":
                if isinstance(value, ast.Name):
                    value.ty, value.ref = choice, "enum"
                else:
                    self.diags.add(
                        "E212",
                        value,
                        "`on_timeout` takes one of the checkpoint's options",
                        help="write e.g. `on_timeout: reject`",
                    )
            elif key == "options" and isinstance(value, ast.ListLit):
                value.ty = T.list_of(choice)
                for item in value.items:
                    if isinstance(item, ast.Name):
                        item.ty, item.ref = choice, "enum"
        return T.decision(name)

    def _expect_value(self, entry: ast.Entry, t: T.Type) -> None:
        if isinstance(entry.value, ast.ObjectLit):
            self.diags.add(
                "E212", entry.value, f"`{entry.key.name}` takes a `{t}`", help="write a value"
            )
            return
        self.expect(entry.value, t, f" for `{entry.key.name}`")

    def _choices(self, entry: ast.Entry | None) -> tuple[str, ...]:
        if entry is None:
            return _DEFAULT_CHOICES
        value = entry.value
        names: list[str] = []
        items = value.items if isinstance(value, ast.ListLit) else None
        if items is None or not items:
            self.diags.add(
                "E212",
                value,
                "`options` takes a list of choice names",
                help="write e.g. `options: [approve, reject, escalate]`",
            )
            return _DEFAULT_CHOICES
        for item in items:
            if not isinstance(item, ast.Name):
                self.diags.add(
                    "E212", item, "a checkpoint option is a bare name", help="write e.g. `approve`"
                )
            elif item.name in names:
                self.diags.add(
                    "E212", item, f"option `{item.name}` is listed twice", help="remove one"
                )
            else:
                names.append(item.name)
        return tuple(names) or _DEFAULT_CHOICES

    def _wait(self, w: ast.Wait, assigned: bool) -> T.Type:
        if w.event is None and isinstance(w.duration, ast.Name):
            sym = self.resolver.symbol(self.module, w.duration.name)
            if sym is not None and sym.kind == "event":
                # `wait ev` without braces parses as a timer; it is an event wait that lacks
                # its timeout, which the checkpoint pass reports (E504).
                w.event = ast.Ident(w.duration.span, w.duration.name)
                w.duration = None
        if w.event is None:
            if w.duration is not None:
                self.expect(w.duration, T.DURATION, " for `wait`")
            if assigned:
                self.diags.add(
                    "E201",
                    w,
                    "`wait` for a duration has no value",
                    help="write `wait 2h` on its own line; wait for an event to get a value",
                )
            return T.UNKNOWN
        event = w.event
        sym = self.resolver.symbol(self.module, event.name)
        payload: T.Type | None = T.UNKNOWN
        if sym is None:
            events = [n for n, s in self.module.scope.items() if s.kind == "event"]
            hint = suggest(event.span, event.name, events)
            self.diags.add(
                "E101",
                event,
                f"unknown event `{event.name}`",
                help=hint.help or f"declare it: `event {event.name} -> PayloadType`",
                fix=hint.fix,
            )
        elif sym.kind != "event":
            self.diags.add(
                "E201",
                event,
                f"`{event.name}` is {'an' if sym.kind[0] in 'aeiou' else 'a'} {sym.kind}, not an event",
                labels=[Label(sym.decl.name.span, "declared here")],
                help="`wait` takes an event declared with `event name -> Type`",
            )
        else:
            payload = self.decls.events.get(sym.name)
        if w.key is not None:
            self._correlation(w.key, event.name)
        timeout = None
        if w.options is not None:
            entries = self._option_entries(w.options, WAIT_OPTIONS, "a wait")
            timeout = self._timeout(entries.get("timeout"))
        # An event without a payload gives `true` when it arrives.
        value = payload if payload is not None else T.BOOL
        return value if timeout == "never" else T.optional(value)

    def _correlation(self, key: ast.Expr, event: str) -> None:
        t = self.expr(key)
        if t.kind in ("str", "int", "unknown"):
            return
        self.diags.add(
            "E512",
            key,
            f"the correlation key of `wait {event}` is a `{t}`, not a `str` or `int`",
            help="correlate by a value that names the item, e.g. `for o.id`, "
            'or write it as text: `for "{o.bucket}/{o.key}"`',
            notes=["a signal carries its key as text (`mnc signal RUN EVENT --key K`)"],
        )

    def token_waits(self, call: ast.Call) -> None:
        event = call.args[0]
        assert isinstance(event, ast.Name)
        keyed = len(call.args) > 1
        waits = [
            inner
            for stmt in walk(self.workflow.body)
            if isinstance(inner := nested_statement(stmt), ast.Wait)
            and inner.event is not None
            and inner.event.name == event.name
        ]
        if any((w.key is not None) == keyed for w in waits):
            return
        if not waits:
            said = f"workflow `{self.workflow.name.name}` never waits for `{event.name}`"
        elif keyed:
            said = f"the waits for `{event.name}` in this workflow take no key"
        else:
            said = f"the waits for `{event.name}` in this workflow are correlated by a key"
        self.diags.add(
            "E513",
            call,
            f"{said}: nothing would take the signal this token is for",
            labels=[Label(w.event.span, "a wait for it") for w in waits if w.event],
            help=f"hand out the token of a wait of this workflow: `callback_token"
            f"({event.name}, KEY)` for `wait {event.name} for KEY {{ ... }}`, "
            f"`callback_token({event.name})` for `wait {event.name} {{ ... }}`",
            notes=["a child workflow's waits belong to its own run: make the token there"],
        )

    def _wait_stmt(self, w: ast.Wait) -> None:
        self._wait(w, assigned=False)

    def _checkpoint_stmt(self, c: ast.Checkpoint) -> None:
        self._checkpoint(c)


_STATEMENTS: dict[type, Callable[[BodyChecker, Any], None]] = {
    ast.Assign: BodyChecker._assign,
    ast.ExprStmt: BodyChecker._expr_stmt,
    ast.OptionStmt: BodyChecker._option,
    ast.If: BodyChecker._if,
    ast.Match: BodyChecker._match,
    ast.For: BodyChecker._for_stmt,
    ast.While: BodyChecker._while,
    ast.Parallel: BodyChecker._parallel,
    ast.Checkpoint: BodyChecker._checkpoint_stmt,
    ast.Wait: BodyChecker._wait_stmt,
    ast.Try: BodyChecker._try,
    ast.Select: BodyChecker._select,
    ast.Return: BodyChecker._return,
    ast.Fail: BodyChecker._fail,
    ast.Log: BodyChecker._log,
    ast.Publish: BodyChecker._publish,
    ast.Yield: BodyChecker._yield,
}
