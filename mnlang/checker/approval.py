"""Approval: an effect with `requires: approval` runs only where a person said yes (E401).

The pass follows each workflow's structured control flow with one fact per
path: "an approving decision was tested true". A checkpoint `d = checkpoint
...` makes `d` a decision; `if d.approved { ... }`, the rest of a block after
`if not d.approved { fail ... }` and the `approve` arm of `match d.choice`
establish the fact. Since `d` is definitely assigned wherever it is tested
(the type checker proves that), a tested decision also means that the
checkpoint dominates the call. A call on a path without the fact is E401.

Effects that an agent may call through its `tools:` are not checked here: the
model chooses the call at run time, so no path in the source reaches it, and
the runtime asks a person before committing such an effect instead.
"""

from __future__ import annotations

from mnlang.checker.program import Program, Symbol
from mnlang.checker.steps import (
    as_block,
    called_symbol,
    checkpoint_choices,
    nested_statement,
    options_of,
    step_call,
    walk,
    workflows,
    written_option,
)
from mnlang.diagnostics import Diagnostics, Label
from mnlang.syntax import ast

# A path's state: True when approval was established on it, None when the path ended.
_State = bool | None


def check_approval(program: Program, diags: Diagnostics) -> None:
    """Report E401 for each call of an approval-requiring effect on an unapproved path."""
    for wf in workflows(program):
        _ApprovalFlow(program, wf, diags).run()


class _ApprovalFlow:
    def __init__(self, program: Program, wf: Symbol, diags: Diagnostics) -> None:
        decl = wf.decl
        assert isinstance(decl, ast.WorkflowDecl)
        self.program = program
        self.wf = wf
        self.decl = decl
        self.diags = diags
        self.decisions = {
            stmt.target.name
            for block in decl.blocks()
            for stmt in walk(block)
            if isinstance(stmt, ast.Assign)
            and isinstance(stmt.value, ast.Checkpoint)
            and "approve" in checkpoint_choices(stmt.value)
        }

    def run(self) -> None:
        for block in self.decl.blocks():  # `on_failure` needs its own approval
            self._block(block, False)

    def _block(self, block: ast.Block, approved: bool) -> _State:
        state: _State = approved
        for stmt in block.stmts:
            if state is None:
                break
            state = self._stmt(stmt, state)
        return state

    def _stmt(self, stmt: ast.Stmt, approved: bool) -> _State:
        call = step_call(stmt)
        if call is not None:
            self._call(call, approved)
            return approved
        if isinstance(stmt, ast.Fail | ast.Return):
            return None
        if isinstance(stmt, ast.If):
            when_true, when_false = self._test(stmt.cond)
            then = self._block(stmt.then, approved or when_true)
            orelse = stmt.orelse
            if orelse is None:
                return _join([then, approved or when_false])
            other = as_block(orelse) if isinstance(orelse, ast.If) else orelse
            return _join([then, self._block(other, approved or when_false)])
        if isinstance(stmt, ast.Match):
            return self._match(stmt, approved)
        if isinstance(stmt, ast.Select):
            # One arm runs; a checkpoint arm's decision proves approval only where a test
            # of it (`if d.approved`) says so inside the arm.
            return _join([self._block(arm.body, approved) for arm in stmt.arms])
        loop = nested_statement(stmt)
        if isinstance(loop, ast.For):
            self._block(loop.body, approved)
            return approved
        if isinstance(stmt, ast.While):
            # The condition holds on entry to the body; after the loop it may still hold
            # (the loop can stop at `max`), so it proves nothing there.
            self._block(stmt.body, approved or self._test(stmt.cond)[0])
            return approved
        if isinstance(stmt, ast.Parallel):
            # Every branch runs, so approval from any branch holds after the block; inside
            # it the sibling branches run concurrently and get nothing from each other.
            ends = [self._block(branch, approved) for branch in stmt.branches]
            if any(end is None for end in ends):
                return None
            return approved or any(ends)
        if isinstance(stmt, ast.Try):
            # A failure can leave the body anywhere, so handlers and `finally` start from the
            # state before the `try`.
            ends = [self._block(stmt.body, approved)]
            ends += [self._block(c.body, approved) for c in stmt.catches]
            if stmt.final is not None and self._block(stmt.final, approved) is None:
                return None
            return _join(ends)
        return approved

    def _match(self, stmt: ast.Match, approved: bool) -> _State:
        subject = stmt.subject
        on_choice = (
            isinstance(subject, ast.Field)
            and subject.name.name == "choice"
            and isinstance(subject.obj, ast.Name)
            and subject.obj.name in self.decisions
        )
        ends: list[_State] = []
        for arm in stmt.arms:
            approving = on_choice and all(p.name == "approve" for p in arm.patterns)
            ends.append(self._block(arm.body, approved or approving))
        return _join(ends) if ends else approved

    def _test(self, cond: ast.Expr) -> tuple[bool, bool]:
        """Whether approval holds when `cond` is true, and when it is false."""
        if isinstance(cond, ast.Paren):
            return self._test(cond.inner)
        if isinstance(cond, ast.Unary) and cond.op == "not":
            when_true, when_false = self._test(cond.operand)
            return when_false, when_true
        if isinstance(cond, ast.Binary):
            if cond.op in ("and", "or"):
                left, right = self._test(cond.left), self._test(cond.right)
                if cond.op == "and":
                    return left[0] or right[0], left[1] and right[1]
                return left[0] and right[0], left[1] or right[1]
            if cond.op in ("==", "!=") and isinstance(cond.right, ast.BoolLit):
                when_true, when_false = self._test(cond.left)
                if (cond.op == "==") != cond.right.value:
                    return when_false, when_true
                return when_true, when_false
        if self._is_approved_field(cond):
            return True, False
        return False, False

    def _is_approved_field(self, expr: ast.Expr) -> bool:
        return (
            isinstance(expr, ast.Field)
            and expr.name.name == "approved"
            and isinstance(expr.obj, ast.Name)
            and expr.obj.name in self.decisions
        )

    def _call(self, call: ast.Call, approved: bool) -> None:
        # A child workflow's own calls are checked in that workflow, with its own checkpoints.
        sym = called_symbol(self.wf.module, call)
        if approved or sym is None or sym.kind != "effect":
            return
        if options_of(self.program, sym).get("requires") != "approval":
            return
        requires = written_option(sym, "requires")
        name = sym.decl.name.name
        labels = [Label(requires.span, "approval required here")] if requires is not None else []
        if self.decisions:
            decision = sorted(self.decisions)[0]
            fix = (
                f"call it inside `if {decision}.approved {{ ... }}`, or after "
                f"`if not {decision}.approved {{ fail ... }}`"
            )
        else:
            fix = (
                'ask first: `d = checkpoint approve_it { ask: "...", timeout: 24h, '
                "on_timeout: reject }`, then call it inside `if d.approved { ... }`"
            )
        self.diags.add(
            "E401",
            call,
            f"`{name}` requires approval, but no approving checkpoint decision "
            "is tested on this path",
            labels=labels,
            help=fix,
        )


def _join(states: list[_State]) -> _State:
    """Approval after paths meet: it must hold on every path that did not end."""
    live = [s for s in states if s is not None]
    if not live:
        return None
    return all(live)
