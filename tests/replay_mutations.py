"""Mutations of the example workflows, generated from their syntax, for the replay tests.

`mutations(source, executed)` reads a workflow file and returns edits of six kinds, each
with the line `mnc replay` must report the first divergence at, taken from the edit:

- `argument`: a call of a tool or effect gets another value for its first parameter of
  type `str`, `int`, `float` or `money` (`x + "!"`, `x + 1`, `x + 1.0`, `x + $1`): at
  the call;
- `reorder`: a call moves up before the call statement that precedes it in its block
  (when it uses nothing assigned in between): at the line it moved to;
- `branch`: a new branch `if true { fail "..." }` before a statement of the workflow's
  body: at the `fail`;
- `prompt`: an agent's prompt gets a word more: at the first statement calling it;
- `checkpoint`: the `if` around a checkpoint becomes `if false`: at the next call after
  the `if` (the run now goes there instead of to the checkpoint);
- `effect`: a new call of an effect, with another first argument, before a call of it:
  at the new call.

`executed` is the set of source lines whose steps the recorded run took (see
`executed_lines`): only those are mutated, since an edit where the run never went
changes nothing it did. Run as a script, it prints the mutations of every workflow file
under `examples/` as if every statement had run.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mnlang.syntax import ast
from mnlang.syntax.parser import parse

KINDS = ("argument", "reorder", "branch", "prompt", "checkpoint", "effect")
Test = Callable[[ast.Stmt], bool]
CHANGES = {"str": ' + "!"', "int": " + 1", "float": " + 1.0", "money": " + $1"}


@dataclass(frozen=True)
class Mutation:
    kind: str
    what: str
    text: str
    """The whole mutated source."""
    line: int
    """Where `mnc replay` must report the divergence (in the mutated source)."""

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.what}"


STEP_STATES = ("CallState", "ChildState", "CheckpointState", "WaitState")


def executed_lines(program: object, events: Iterable[object]) -> set[int]:
    """The lines of the steps (calls, child runs, checkpoints, waits) the journal `events`
    took, in the root file of the IR `program`."""
    lines: set[int] = set()
    workflows = getattr(program, "workflows", {})
    root = getattr(getattr(program, "source", None), "file", None)
    for e in events:
        state = getattr(e, "state", None)
        for wf in workflows.values():
            found = wf.states.get(state) if state else None
            span = getattr(found, "span", None)
            if span is not None and span.file == root and type(found).__name__ in STEP_STATES:
                lines.add(span.line)
    return lines


@dataclass
class _Stmt:
    stmt: ast.Stmt
    block: ast.Block
    place: str
    """`body` (the workflow's own), `nested` (an `if`, a sequential loop, `try`, a match
    arm) or `parallel` (a branch or a `parallel for` body)."""


class _Source:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.text = path.read_text("utf-8")
        module, diags = parse(self.text, path.name)
        if module is None:
            raise ValueError(f"{path}: {diags}")
        self.module = module
        self.decls = {d.name.name: d for d in module.decls}

    def of(self, node: ast.Node) -> str:
        return self.text[node.span.start : node.span.end]

    def line_at(self, offset: int) -> int:
        return self.text.count("\n", 0, offset) + 1

    def callee(self, stmt: ast.Stmt) -> ast.CallableDecl | None:
        call = _step_call(stmt)
        if call is None or not isinstance(call.callee, ast.Name):
            return None
        decl = self.decls.get(call.callee.name)
        return decl if isinstance(decl, ast.CallableDecl) else None

    def statements(self) -> Iterator[_Stmt]:
        for decl in self.module.decls:
            if isinstance(decl, ast.WorkflowDecl):
                yield from _walk(decl.body, "body")

    def indent(self, stmt: ast.Stmt) -> str:
        start = self.text.rfind("\n", 0, stmt.span.start) + 1
        return self.text[start : stmt.span.start]


def _step_call(stmt: ast.Stmt) -> ast.Call | None:
    value = stmt.value if isinstance(stmt, ast.Assign) else getattr(stmt, "expr", None)
    return value if isinstance(value, ast.Call) else None


def _walk(block: ast.Block, place: str) -> Iterator[_Stmt]:
    for stmt in block.stmts:
        yield _Stmt(stmt, block, place)
        inner = stmt.value if isinstance(stmt, ast.Assign) else stmt
        inside = "parallel" if place == "parallel" else "nested"
        if isinstance(inner, ast.If):
            yield from _walk(inner.then, inside)
            if isinstance(inner.orelse, ast.Block):
                yield from _walk(inner.orelse, inside)
        elif isinstance(inner, ast.For):
            yield from _walk(inner.body, "parallel" if inner.parallel else inside)
        elif isinstance(inner, ast.While | ast.Try):
            yield from _walk(inner.body, inside)
        elif isinstance(inner, ast.Match):
            for arm in inner.arms:
                yield from _walk(arm.body, inside)
        elif isinstance(inner, ast.Parallel):
            for branch in inner.branches:
                yield from _walk(branch, "parallel")


def _lines(node: ast.Node) -> range:
    return range(node.span.line, node.span.end_line + 1)


def _changed_call(src: _Source, call: ast.Call, decl: ast.CallableDecl) -> str | None:
    """The call's text with its first argument of a simple type changed."""
    for arg, param in zip(call.args, decl.params, strict=False):
        change = CHANGES.get(param.type.name) if not param.type.args else None
        if change is not None and not param.type.optional:
            start, end = call.span.start, call.span.end
            a, b = arg.span.start, arg.span.end
            return src.text[start:a] + "(" + src.of(arg) + change + ")" + src.text[b:end]
    return None


def mutations(source: Path, executed: set[int] | None = None, most: int = 2) -> list[Mutation]:
    """The mutations of the workflows in `source` that touch lines in `executed` (all
    lines when None), at most `most` of each kind."""
    src = _Source(source)
    stmts = list(src.statements())

    def ran(stmt: ast.Stmt) -> bool:
        return executed is None or any(line in executed for line in _lines(stmt))

    def runs_a_step(stmt: ast.Stmt) -> bool:
        """A call of a tool, effect or agent the run made at this statement."""
        return src.callee(stmt) is not None and (executed is None or stmt.span.line in executed)

    out: list[Mutation] = []
    out += _arguments(src, [s for s in stmts if runs_a_step(s.stmt)])
    out += _reorders(src, stmts, runs_a_step, ran)
    out += _branches(src, [s for s in stmts if s.place == "body" and ran(s.stmt)])
    out += _prompts(src, [s for s in stmts if runs_a_step(s.stmt)])
    out += _checkpoints(src, stmts, runs_a_step, ran)
    out += _effects(src, [s for s in stmts if s.place != "parallel" and runs_a_step(s.stmt)])
    kept: list[Mutation] = []
    for kind in KINDS:
        kept += [m for m in out if m.kind == kind][:most]
    return kept


def _replace(src: _Source, start: int, end: int, new: str) -> str:
    return src.text[:start] + new + src.text[end:]


def _arguments(src: _Source, stmts: list[_Stmt]) -> list[Mutation]:
    out = []
    for s in stmts:
        decl, call = src.callee(s.stmt), _step_call(s.stmt)
        if decl is None or call is None or decl.kind == "agent":
            continue
        changed = _changed_call(src, call, decl)
        if changed is not None:
            text = _replace(src, call.span.start, call.span.end, changed)
            out.append(Mutation("argument", changed, text, s.stmt.span.line))
    return out


def _assigned(stmt: ast.Stmt) -> set[str]:
    names = {stmt.target.name} if isinstance(stmt, ast.Assign) else set()
    for inner in _walk(ast.Block(stmt.span, [stmt]), "body"):
        if isinstance(inner.stmt, ast.Assign):
            names.add(inner.stmt.target.name)
    return names


def _mentions(src: _Source, stmt: ast.Stmt, names: set[str]) -> bool:
    return any(re.search(rf"\b{re.escape(n)}\b", src.of(stmt)) for n in names)


def _reorders(src: _Source, stmts: list[_Stmt], runs_a_step: Test, ran: Test) -> list[Mutation]:
    out = []
    for s in stmts:
        if s.place == "parallel" or not runs_a_step(s.stmt):
            continue
        block = s.block.stmts
        k = block.index(s.stmt)
        between: set[str] = set()
        for before in reversed(block[:k]):
            between |= _assigned(before)
            if runs_a_step(before):
                if not _mentions(src, s.stmt, between):
                    moved = src.of(s.stmt)
                    indent = src.indent(s.stmt)
                    # Cut the statement (with its line), then put it before `before`.
                    cut_from = src.text.rfind("\n", 0, s.stmt.span.start)
                    text = src.text[:cut_from] + src.text[s.stmt.span.end :]
                    at = before.span.start
                    text = text[:at] + moved + "\n" + indent + text[at:]
                    out.append(Mutation("reorder", moved, text, before.span.line))
                break
            if ran(before):  # a statement where the run took steps of another kind
                break
    return out


def _branches(src: _Source, stmts: list[_Stmt]) -> list[Mutation]:
    out = []
    for s in stmts:
        if _step_call(s.stmt) is None:
            continue
        indent = src.indent(s.stmt)
        line = s.stmt.span.line
        branch = (
            f'if true {{\n{indent}  fail "a new branch before line {line}"\n{indent}}}\n{indent}'
        )
        text = _replace(src, s.stmt.span.start, s.stmt.span.start, branch)
        out.append(Mutation("branch", f"before line {line}", text, line + 1))
    return out


def _prompts(src: _Source, stmts: list[_Stmt]) -> list[Mutation]:
    out = []
    seen: set[str] = set()
    for s in stmts:
        decl = src.callee(s.stmt)
        if decl is None or decl.kind != "agent" or decl.name.name in seen:
            continue
        seen.add(decl.name.name)
        prompt = decl.options.get("prompt")
        if prompt is None or not isinstance(prompt.value, ast.StrLit):
            continue
        opening = 3 if prompt.value.triple else 1
        at = prompt.value.span.start + opening
        if prompt.value.triple:  # the text starts on the next line, after its indent
            newline = src.text.index("\n", at) + 1
            at = newline + len(src.text[newline:]) - len(src.text[newline:].lstrip(" "))
        text = _replace(src, at, at, "Please. ")
        out.append(Mutation("prompt", decl.name.name, text, s.stmt.span.line))
    return out


def _checkpoints(src: _Source, stmts: list[_Stmt], runs_a_step: Test, ran: Test) -> list[Mutation]:
    out = []
    for s in stmts:
        if s.place == "parallel" or not isinstance(s.stmt, ast.If) or not ran(s.stmt):
            continue
        inner = [getattr(t, "value", t) for t in s.stmt.then.stmts]
        if not any(isinstance(t, ast.Checkpoint) for t in inner):
            continue
        block = s.block.stmts
        after = next((t for t in block[block.index(s.stmt) + 1 :] if runs_a_step(t)), None)
        if after is None:
            continue
        cond = s.stmt.cond
        text = _replace(src, cond.span.start, cond.span.end, "false")
        # The condition sits on one line, so no line after it moves.
        out.append(Mutation("checkpoint", src.of(cond), text, after.span.line))
    return out


def _effects(src: _Source, stmts: list[_Stmt]) -> list[Mutation]:
    out = []
    for s in stmts:
        decl, call = src.callee(s.stmt), _step_call(s.stmt)
        if decl is None or call is None or decl.kind != "effect":
            continue
        changed = _changed_call(src, call, decl)
        if changed is None:
            continue
        indent = src.indent(s.stmt)
        text = _replace(src, s.stmt.span.start, s.stmt.span.start, changed + "\n" + indent)
        out.append(Mutation("effect", changed, text, s.stmt.span.line))
    return out


def main(folder: Path) -> None:
    for source in sorted(folder.glob("*/*.mn")):
        found = mutations(source)
        print(f"{source}: {len(found)} mutations")
        for m in found:
            print(f"  {m.kind:<10} line {m.line:<4} {m.what.splitlines()[0]}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent.parent / "examples")
