"""Retries: how many tries a policy can make at worst, and E240 for one with no bound.

`attempts: unlimited` stops when the next try would start after the entry's
`max_elapsed` (time since the call's first try), or at the run's deadline. Either bound,
with the least delay between tries (`backoff`, halved by `jitter`, growing by `factor`,
capped by `max_delay`), bounds the number of tries, which the cost pass prices. A call
whose policy has neither bound is E240: in a workflow without a literal `deadline`, in
`on_failure` (it runs after the deadline), and as a `compensate` or `reconcile` (they run
when the run is failing, after the deadline too).
"""

from __future__ import annotations

import math

from mnlang.checker.options import RetryPolicy
from mnlang.checker.program import Program, Symbol
from mnlang.checker.steps import called_symbol, options_of, step_call, walk, workflows
from mnlang.diagnostics import Diagnostics, Label
from mnlang.syntax import ast


def worst_case_tries(policy: RetryPolicy | None, deadline_ms: int | None) -> int | None:
    """The most tries one call makes, the first included (None: no bound).

    Each entry adds the retries its failures can get; an unlimited one as many as its
    shortest delays fit in its `max_elapsed`, else in the run's deadline."""
    if policy is None:
        return 1
    tries = 1
    for entry in policy.entries:
        limit = entry.max_elapsed_ms if entry.max_elapsed_ms is not None else deadline_ms
        if isinstance(entry.attempts, int):
            retries = entry.attempts - 1
            if entry.max_elapsed_ms is not None:
                retries = min(retries, _delays_within(entry, entry.max_elapsed_ms))
        elif limit is None:
            return None
        else:
            retries = _delays_within(entry, limit)
        tries += retries
    return tries


def _delays_within(entry: RetryPolicy, limit_ms: int) -> int:
    """How many of the entry's delays, each at its shortest, add up to at most `limit_ms`
    (a retry starts only when its delay ends within the limit)."""
    scale = 0.5 if entry.jitter else 1.0
    cap = entry.max_delay_ms
    delay = float(entry.backoff_ms)
    elapsed = 0
    count = 0
    while True:
        capped = min(delay, cap) if cap is not None else delay
        shortest = max(1, math.floor(capped * scale))
        if entry.factor == 1 or (cap is not None and delay >= cap):
            # Every further delay is this one: the rest of the limit holds a whole number.
            return count + (limit_ms - elapsed) // shortest
        if elapsed + shortest > limit_ms:
            return count
        elapsed += shortest
        count += 1
        delay *= entry.factor


def check_retry_bounds(program: Program, diags: Diagnostics) -> None:
    """E240 for every call of a callee whose retries nothing bounds."""
    for wf in workflows(program):
        decl = wf.decl
        assert isinstance(decl, ast.WorkflowDecl)
        deadline = options_of(program, wf).get("deadline")
        why = (
            None
            if isinstance(deadline, int)
            else f"workflow `{decl.name.name}` has no literal `deadline`"
        )
        for stmt in walk(decl.body):
            _check_call(program, wf, stmt, why, diags)
        if decl.on_failure is not None:
            for stmt in walk(decl.on_failure.body):
                _check_call(program, wf, stmt, "`on_failure` runs after the deadline too", diags)
    for effect in program.symbols_of("effect"):
        for option in ("compensate", "reconcile"):
            call = options_of(program, effect).get(option)
            if isinstance(call, ast.Call):
                callee = called_symbol(effect.module, call)
                if callee is not None and _unbounded(program, callee):
                    why = f"a `{option}` call may run while the run fails, after its deadline"
                    _report(diags, call, callee, why, deadline_helps=False)


def _check_call(
    program: Program, wf: Symbol, stmt: ast.Stmt, why: str | None, diags: Diagnostics
) -> None:
    """E240 for the call `stmt` makes when `why` says that the run's deadline is no bound."""
    call = step_call(stmt)
    callee = called_symbol(wf.module, call) if call is not None else None
    if why is None or call is None or callee is None or callee.kind == "workflow":
        return
    if _unbounded(program, callee):
        _report(diags, call, callee, why)
    if callee.kind != "agent":
        return
    for name in options_of(program, callee).get("tools", []):
        tool = program.symbols.get(name)
        if tool is not None and _unbounded(program, tool):
            _report(diags, call, tool, f"{why}, and agent `{callee.decl.name.name}` calls it")


def _unbounded(program: Program, sym: Symbol) -> bool:
    policy = options_of(program, sym).get("retry")
    return isinstance(policy, RetryPolicy) and policy.unbounded


def _report(
    diags: Diagnostics, call: ast.Call, callee: Symbol, why: str, *, deadline_helps: bool = True
) -> None:
    name = callee.decl.name.name
    retry = callee.decl.options.get("retry") if isinstance(callee.decl, ast.CallableDecl) else None
    diags.add(
        "E240",
        call,
        f"`{name}` retries without limit and nothing bounds it here: {why}",
        labels=[Label(retry.span, "`attempts: unlimited` without `max_elapsed`")]
        if retry is not None
        else [],
        help=f"add `max_elapsed: 1h` (or another bound) beside `attempts: unlimited` in the "
        f"retry of `{name}`" + (", or give the workflow a `deadline`" if deadline_helps else ""),
    )
