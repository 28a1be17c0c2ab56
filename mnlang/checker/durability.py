"""Durability: what makes a workflow safe to retry, resume and run in parallel.

E510-E511 check that each event wait a run can reach more than once has a correlation
key that tells its signals apart.

E301-E303 check each effect's declaration (a key or `once`, no retry on a
`once` effect, a key template over the effect's parameters). E304-E307 check
workflow bodies: keys that vary in loops, distinct keys and no data flow
between `parallel` branches, `while` loops bounded by `max: N` (that a `for`
runs over a list is a type rule, checked with the types). E308 finds
workflows that call themselves, directly or through others.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

import msgspec

from mnlang.checker.fixes import add_options, removal
from mnlang.checker.program import Program, Symbol
from mnlang.checker.steps import (
    assigned_names,
    called_symbol,
    child_blocks,
    expr_reads,
    loop_header,
    nested_statement,
    options_of,
    select_waits,
    step_call,
    stmt_reads,
    walk,
    workflows,
    written_option,
)
from mnlang.checker.suggest import did_you_mean
from mnlang.diagnostics import Diagnostics, Label
from mnlang.span import Span
from mnlang.syntax import ast


def check_durability(program: Program, diags: Diagnostics) -> None:
    """Report E301-E308 and E510-E511 over every effect and workflow of the program."""
    keys: dict[str, _Key] = {}
    for sym in program.symbols_of("effect"):
        key = _check_effect(program, sym, diags)
        if key is not None:
            keys[sym.name] = key
    for wf in workflows(program):
        _WorkflowChecker(wf, keys, diags).run()
    _check_recursion(program, diags)


# ---- effect declarations -------------------------------------------------------


class _Key(msgspec.Struct, frozen=True):
    """An effect's key template and the indexes of the parameters it names."""

    template: ast.StrLit
    params: tuple[int, ...]


def _check_effect(program: Program, sym: Symbol, diags: Diagnostics) -> _Key | None:
    decl = sym.decl
    assert isinstance(decl, ast.CallableDecl)
    opts = options_of(program, sym)
    name = decl.name.name
    template = opts.get("key")
    once = opts.get("once") is True
    if template is None and not once:
        first = decl.params[0].name.name if decl.params else None
        option = f'key: "{name}:{{{first}}}"' if first else "once: true"
        diags.add(
            "E301",
            decl.name,
            f"effect `{name}` has neither `key` nor `once: true`",
            help=(
                f'add `key: "{name}:{{{first}}}"` so a retried call is committed once, '
                "or `once: true` if it must never be called twice"
                if first
                else "add `once: true`: without parameters no key can tell its calls apart"
            ),
            notes=[
                "a side effect is retried after a crash or a timeout; the key tells the "
                "runtime (and the receiving system) that the second call is the same one"
            ],
            fix=add_options(sym.module.tree.source, decl.options, [option]),
        )
    retry = written_option(sym, "retry")
    # With a reconciler, a `once` effect may retry: each new attempt waits for the receiver
    # to say it has not got the failed one (docs/language.md, Reconciliation).
    if once and retry is not None and "reconcile" not in opts:
        attempts = opts["retry"].attempts
        tries = f" of {attempts} attempts" if attempts != 1 else ""
        diags.add(
            "E302",
            retry.key,
            f"effect `{name}` is `once` but has a `retry`{tries}",
            labels=[Label(_once_span(sym), "declared `once` here")],
            help="remove `retry`: a `once` effect is tried exactly once, and a call whose "
            "outcome is unknown opens a repair checkpoint instead",
            fix=removal(sym.module.tree.source, retry, "Remove `retry`"),
        )
    if not isinstance(template, ast.StrLit):
        return None
    return _check_key_template(decl, template, diags)


def _once_span(sym: Symbol) -> Span:
    entry = written_option(sym, "once")
    assert entry is not None
    return entry.span


def _check_key_template(
    decl: ast.CallableDecl, template: ast.StrLit, diags: Diagnostics
) -> _Key | None:
    params = [p.name.name for p in decl.params]
    named: list[int] = []
    unknown = False
    for part in template.parts:
        if isinstance(part, str):
            continue
        for ref in expr_reads(part):
            if ref.name in params:
                index = params.index(ref.name)
                if index not in named:
                    named.append(index)
                continue
            unknown = True
            shown = ", ".join(f"`{p}`" for p in params) or "none"
            diags.add(
                "E303",
                ref,
                f"the key of `{decl.name.name}` names `{ref.name}`, "
                f"which is not one of its parameters",
                help=did_you_mean(ref.name, params)
                or f"a key may name only the effect's parameters ({shown})",
            )
    if not named and not unknown:
        example = f'"{decl.name.name}:{{{params[0]}}}"' if params else None
        diags.add(
            "E303",
            template,
            f"the key of `{decl.name.name}` names none of its parameters, "
            "so every call has the same key",
            help=f"name the parameters that identify one call, e.g. `key: {example}`"
            if example
            else "use `once: true` instead: an effect without parameters has one key",
        )
    return _Key(template, tuple(named)) if named else None


# ---- workflow bodies -----------------------------------------------------------

_Arms = tuple[tuple[int, int], ...]
"""Where a statement sits: (id of an `if` or `match`, which arm) for each one around it."""


def _event_waits(block: ast.Block, arms: _Arms) -> Iterator[tuple[ast.Wait, _Arms]]:
    """The event waits outside loops (E510 covers those in loops), with their arms."""
    for stmt in block.stmts:
        inner = nested_statement(stmt)
        if isinstance(inner, ast.Wait) and inner.event is not None:
            yield inner, arms
        if isinstance(stmt, ast.Select):
            # The arms of one select on one event are E521's; across statements they
            # count as any wait does.
            for index, arm in enumerate(stmt.arms):
                if arm.wait is not None:
                    yield arm.wait, (*arms, (id(stmt), index))
        if isinstance(inner, ast.For) or isinstance(stmt, ast.While):
            continue
        exclusive = isinstance(stmt, ast.If | ast.Match | ast.Select)
        for index, child in enumerate(child_blocks(stmt)):
            where = (*arms, (id(stmt), index)) if exclusive else arms
            yield from _event_waits(child, where)


def _exclusive(a: _Arms, b: _Arms) -> bool:
    """Whether two statements sit in different arms of one `if` or `match`."""
    arms = dict(a)
    return any(stmt in arms and arms[stmt] != index for stmt, index in b)


class _Loop(msgspec.Struct):
    stmt: ast.For | ast.While
    varying: set[str]  # variables whose value can differ from one iteration to the next


class _WorkflowChecker:
    def __init__(self, wf: Symbol, keys: dict[str, _Key], diags: Diagnostics) -> None:
        decl = wf.decl
        assert isinstance(decl, ast.WorkflowDecl)
        self.wf = wf
        self.decl = decl
        self.keys = keys
        self.diags = diags
        self.params = {p.name.name for p in decl.params}

    def run(self) -> None:
        for block in self.decl.blocks():
            self._block(block, [])
        self._waits_once()
        for stmt in (s for block in self.decl.blocks() for s in walk(block)):
            if isinstance(stmt, ast.Parallel):
                self._parallel_reads(stmt)
                self._parallel_keys(stmt)

    def _block(self, block: ast.Block, loops: list[_Loop]) -> None:
        for stmt in block.stmts:
            call = step_call(stmt)
            if call is not None and loops:
                self._key_varies(call, loops)
            inner = nested_statement(stmt)
            if isinstance(inner, ast.Wait) and inner.event is not None and loops:
                self._wait_varies(inner, inner.event, loops)
            if isinstance(stmt, ast.Select) and loops:
                for wait in select_waits(stmt):
                    assert wait.event is not None
                    self._wait_varies(wait, wait.event, loops)
            if isinstance(inner, ast.For):
                self._block(inner.body, [*loops, _Loop(inner, self._varying(inner))])
            elif isinstance(stmt, ast.While):
                self._while_bounded(stmt)
                self._block(stmt.body, [*loops, _Loop(stmt, self._varying(stmt))])
            else:
                for child in child_blocks(stmt):
                    self._block(child, loops)

    # -- E307 ------------------------------------------------------------------

    def _while_bounded(self, loop: ast.While) -> None:
        # The key itself (`max`) is checked with the other statement options.
        bound = loop.max
        if isinstance(bound, ast.IntLit) and bound.value >= 1:
            return
        what = f"`{bound.value}`" if isinstance(bound, ast.IntLit) else "not a number literal"
        self.diags.add(
            "E307",
            bound,
            f"`max` of a `while` loop must be a whole number of at least 1, and this is {what}",
            help="write the bound in the source, e.g. `max: 50`: "
            "the checker and the cost estimate rely on it",
        )

    # -- E304 ------------------------------------------------------------------

    def _varying(self, loop: ast.For | ast.While) -> set[str]:
        """Variables that can change between iterations: the loop variable, variables carried
        from one iteration to the next, checkpoint and wait results, and whatever is computed
        from those inside the body."""
        body = loop.body
        inside = {id(s) for s in walk(body)}
        outside = set(self.params)
        outside |= {
            s.target.name
            for s in walk(self.decl.body)
            if isinstance(s, ast.Assign) and id(s) not in inside
        }
        varying: set[str] = {loop.var.name} if isinstance(loop, ast.For) else set()
        flows: list[tuple[str, set[str]]] = []
        for stmt in walk(body):
            inner = nested_statement(stmt)
            if isinstance(inner, ast.For):
                flows.append((inner.var.name, {n.name for n in expr_reads(inner.iterable)}))
            if not isinstance(stmt, ast.Assign):
                continue
            target = stmt.target.name
            if target in outside or isinstance(inner, ast.Checkpoint | ast.Wait):
                varying.add(target)
            deps = {n.name for n in stmt_reads(stmt)}
            if isinstance(inner, ast.For):
                deps |= {
                    n.name
                    for s in walk(inner.body)
                    if isinstance(s, ast.Yield)
                    for n in stmt_reads(s)
                }
            flows.append((target, deps))
        changed = True
        while changed:
            changed = False
            for target, deps in flows:
                if target not in varying and deps & varying:
                    varying.add(target)
                    changed = True
        return varying

    def _key_varies(self, call: ast.Call, loops: list[_Loop]) -> None:
        sym = called_symbol(self.wf.module, call)
        if sym is None or sym.kind != "effect" or sym.name not in self.keys:
            return
        key = self.keys[sym.name]
        feeding = {n.name for arg in self._key_args(sym, key, call) for n in expr_reads(arg)}
        for loop in reversed(loops):
            if feeding & loop.varying:
                continue
            what = (
                f"for each `{loop.stmt.var.name}`"
                if isinstance(loop.stmt, ast.For)
                else "up to `max` times"
            )
            template = _template_text(key.template)
            self.diags.add(
                "E304",
                call,
                f"the key of `{sym.decl.name.name}` is the same in every iteration of this loop",
                labels=[
                    Label(loop_header(loop.stmt), f"this loop calls it {what}"),
                    Label(key.template.span, f"the key is `{template}`"),
                ],
                help=(
                    f"pass a value that depends on `{loop.stmt.var.name}` to a parameter the key "
                    "names (or add such a parameter to the key)"
                    if isinstance(loop.stmt, ast.For)
                    else "make the key name a parameter that changes from one iteration to the next"
                ),
                notes=[
                    "a call whose key was already committed is not made again: the later "
                    "iterations would silently reuse the first result"
                ],
            )
            return

    # -- E510, E511 ----------------------------------------------------------------

    def _wait_varies(self, wait: ast.Wait, event: ast.Ident, loops: list[_Loop]) -> None:
        """A wait in a loop is reached once per iteration: each needs its own correlation
        key, or the first signal would wake whichever iteration waits first."""
        feeding = {n.name for n in expr_reads(wait.key)} if wait.key is not None else set()
        for loop in reversed(loops):
            if feeding & loop.varying:
                continue
            var = loop.stmt.var.name if isinstance(loop.stmt, ast.For) else None
            what = f"for each `{var}`" if var else "up to `max` times"
            said = (
                f"`wait {event.name}` has no correlation key"
                if wait.key is None
                else f"the correlation key of `wait {event.name}` is the same in every iteration"
            )
            example = f"{var}.id" if var else "a value that changes per iteration"
            self.diags.add(
                "E510",
                wait.key if wait.key is not None else event,
                f"{said}, and this loop reaches it {what}",
                labels=[Label(loop_header(loop.stmt), f"this loop waits {what}")],
                help=f"name the value this wait is for: `wait {event.name} for {example} "
                "{ ... }`, and send each signal with its key (`mnc signal RUN "
                f"{event.name} --key K`)",
                notes=[
                    "signals are taken in arrival order: without a key, the first signal "
                    "wakes whichever iteration waits first"
                ],
            )
            return

    def _waits_once(self) -> None:
        """Two waits for one event in one run, one of them without a key (E511)."""
        seen: dict[str, list[tuple[ast.Wait, tuple[tuple[int, int], ...]]]] = {}
        for wait, arms in _event_waits(self.decl.body, ()):
            assert wait.event is not None
            name = wait.event.name
            earlier = seen.setdefault(name, [])
            for first, first_arms in earlier:
                if _exclusive(arms, first_arms) or (wait.key and first.key):
                    continue
                self.diags.add(
                    "E511",
                    wait.event,
                    f"this run can wait for `{name}` twice, and "
                    + ("neither wait has" if not (wait.key or first.key) else "one wait has no")
                    + " correlation key",
                    labels=[Label(first.event.span if first.event else first.span, "first wait")],
                    help=f'give each wait its own key: `wait {name} for "first" {{ ... }}` '
                    f'and `wait {name} for "second" {{ ... }}`, or declare a second event',
                    notes=["an unkeyed signal wakes whichever of the two waits is reached first"],
                )
                break
            earlier.append((wait, arms))

    def _key_args(self, sym: Symbol, key: _Key, call: ast.Call) -> list[ast.Expr]:
        """The argument expressions that feed the parameters a key names."""
        decl = sym.decl
        assert isinstance(decl, ast.CallableDecl)
        args: list[ast.Expr] = []
        for index in key.params:
            if index < len(call.args):
                args.append(call.args[index])
            else:
                default = decl.params[index].default
                if default is not None:
                    args.append(default)
        return args

    # -- E306 ------------------------------------------------------------------

    def _parallel_reads(self, par: ast.Parallel) -> None:
        assigned = [assigned_names(b) for b in par.branches]
        for j, branch in enumerate(par.branches):
            for name, target in assigned[j].items():
                first = next((a[name] for a in assigned[:j] if name in a), None)
                if first is not None:
                    self.diags.add(
                        "E306",
                        target,
                        f"`{name}` is assigned in two branches of this `parallel` block",
                        labels=[Label(first.span, "also assigned here")],
                        help="use a different name in each branch: "
                        "the branches run in no fixed order",
                    )
            local = set(assigned[j]) | _bound_names(branch)
            reported: set[str] = set()
            for stmt in walk(branch):
                for ref in stmt_reads(stmt):
                    if ref.name in local or ref.name in reported:
                        continue
                    source = next((a[ref.name] for a in assigned if ref.name in a), None)
                    if source is None:
                        continue
                    reported.add(ref.name)
                    self.diags.add(
                        "E306",
                        ref,
                        f"this branch reads `{ref.name}`, which another branch of the "
                        "`parallel` block assigns",
                        labels=[Label(source.span, "assigned in another branch")],
                        help="put both statements in one `{ ... }` group so they run in order, "
                        "or move this one after the `parallel` block",
                    )

    # -- E305 ------------------------------------------------------------------

    def _parallel_keys(self, par: ast.Parallel) -> None:
        seen: list[tuple[int, Symbol, ast.Call, set[str]]] = []
        for j, branch in enumerate(par.branches):
            local = set(assigned_names(branch)) | _bound_names(branch)
            for call in _calls(branch):
                sym = called_symbol(self.wf.module, call)
                if sym is None or sym.name not in self.keys:
                    continue
                key = self.keys[sym.name]
                args = self._key_args(sym, key, call)
                deps = {n.name for a in args for n in expr_reads(a)}
                clash = next(
                    (
                        other
                        for i, other_sym, other, other_local in seen
                        if i != j
                        and other_sym is sym
                        and not deps & (local | other_local)
                        and _same_exprs(self._key_args(sym, key, other), args)
                    ),
                    None,
                )
                if clash is not None:
                    self.diags.add(
                        "E305",
                        call,
                        f"this call of `{sym.decl.name.name}` has the same key as a call "
                        "in another branch",
                        labels=[
                            Label(clash.span, "same key here"),
                            Label(
                                key.template.span, f"the key is `{_template_text(key.template)}`"
                            ),
                        ],
                        help="the second call would be skipped as already committed: pass "
                        "different values to the parameters the key names, or make one call "
                        "before the `parallel` block",
                    )
                seen.append((j, sym, call, local))


def _calls(block: ast.Block) -> Iterator[ast.Call]:
    for stmt in walk(block):
        call = step_call(stmt)
        if call is not None:
            yield call


def _bound_names(block: ast.Block) -> set[str]:
    """Loop and catch variables bound inside a block (local to it)."""
    names: set[str] = set()
    for stmt in walk(block):
        inner = nested_statement(stmt)
        if isinstance(inner, ast.For):
            names.add(inner.var.name)
        if isinstance(stmt, ast.Try):
            names |= {c.var.name for c in stmt.catches if c.var is not None}
        if isinstance(stmt, ast.Select):
            names |= {arm.var.name for arm in stmt.arms if arm.var is not None}
    return names


def _template_text(template: ast.StrLit) -> str:
    """A key template as written, for messages."""
    out: list[str] = []
    for part in template.parts:
        if isinstance(part, str):
            out.append(part)
        else:
            out.append("{" + ".".join(_dotted(part)) + "}")
    return "".join(out)


def _dotted(expr: ast.Expr) -> list[str]:
    if isinstance(expr, ast.Name):
        return [expr.name]
    if isinstance(expr, ast.Field):
        return [*_dotted(expr.obj), expr.name.name]
    return ["..."]


def _same_exprs(a: list[ast.Expr], b: list[ast.Expr]) -> bool:
    return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))


def _same(a: object, b: object) -> bool:
    """Structural equality of AST values, ignoring spans and checker annotations."""
    if type(a) is not type(b):
        return False
    if isinstance(a, ast.Node):
        return all(
            _same(getattr(a, name), getattr(b, name))
            for name in ast.field_names(type(a))
            if name not in ast.ANNOTATIONS and name != "span"
        )
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


# ---- E308 ----------------------------------------------------------------------


def _check_recursion(program: Program, diags: Diagnostics) -> None:
    edges: dict[str, dict[str, ast.Call]] = {}
    by_name: dict[str, Symbol] = {}
    for wf in workflows(program):
        by_name[wf.name] = wf
        decl = wf.decl
        assert isinstance(decl, ast.WorkflowDecl)
        calls: dict[str, ast.Call] = {}
        for call in (c for block in decl.blocks() for c in _calls(block)):
            sym = called_symbol(wf.module, call)
            if sym is not None and sym.kind == "workflow":
                calls.setdefault(sym.name, call)
        edges[wf.name] = calls
    reported: set[frozenset[str]] = set()
    for start in edges:
        cycle = _shortest_cycle(start, edges)
        if cycle is None or frozenset(cycle) in reported:
            continue
        reported.add(frozenset(cycle))
        names = [by_name[n].decl.name.name for n in cycle]
        first = edges[cycle[0]][cycle[1 % len(cycle)]]
        if len(cycle) == 1:
            message = f"workflow `{names[0]}` calls itself"
        else:
            chain = " -> ".join([*names, names[0]])
            message = f"workflow `{names[0]}` calls itself through `{names[1]}`: {chain}"
        labels = [
            Label(
                edges[a][b].span,
                f"`{by_name[a].decl.name.name}` calls `{by_name[b].decl.name.name}` here",
            )
            for a, b in zip(cycle[1:], [*cycle[2:], cycle[0]])
        ]
        diags.add(
            "E308",
            first,
            message,
            labels=labels,
            help="a workflow may not recurse, or its child runs would nest without end: "
            "repeat work with `while ..., max: N` or a `for` loop, or start new runs "
            "from a `schedule`",
        )


def _shortest_cycle(start: str, edges: dict[str, dict[str, ast.Call]]) -> list[str] | None:
    """The shortest path of workflow calls from `start` back to itself, without the repeat."""
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for succ in edges.get(node, {}):
            if succ == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return list(reversed(path))
            if succ not in previous:
                previous[succ] = node
                queue.append(succ)
    return None
