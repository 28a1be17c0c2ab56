"""The compiler's entry points: a checked program to an `IRProgram`.

Only programs that check without errors are compiled: the compiler trusts
the checker's guarantees (names resolve, steps stand as statements, every
loop is bounded) and raises `CompilerBug` if one is broken.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from mnlang.checker import check
from mnlang.checker.program import Program
from mnlang.deep import call_deep
from mnlang.diagnostics import Diagnostic
from mnlang.ir.base import IR_VERSION
from mnlang.ir.compile_decls import DeclCompiler, tool_modules
from mnlang.ir.compile_expr import ExprLowering
from mnlang.ir.compile_scenarios import compile_scenarios
from mnlang.ir.compile_workflow import Callables, WorkflowCompiler
from mnlang.ir.hashing import program_hash
from mnlang.ir.model import IRProgram, SourceIR, TypeDeclIR
from mnlang.ir.states import ChildState


def compile_program(program: Program) -> IRProgram:
    """Compile every declaration of a checked program (the root module and its imports)."""
    return call_deep(_compile_program, program)


def _compile_program(program: Program) -> IRProgram:
    root_dir = program.root.path.parent.resolve()
    lowering = ExprLowering(program)
    decls = DeclCompiler(program, root_dir, lowering)

    def of(kind: str) -> list[str]:
        return [name for name, s in program.symbols.items() if s.kind == kind]

    symbols = program.symbols
    types: dict[str, TypeDeclIR] = {
        name: decls.type_decl(s) for name, s in symbols.items() if s.kind in ("type", "enum")
    }
    tools = {name: decls.tool(symbols[name]) for name in of("tool")}
    effects = {name: decls.effect(symbols[name]) for name in of("effect")}
    agents = {name: decls.agent(symbols[name], types) for name in of("agent")}
    events = {name: decls.event(symbols[name]) for name in of("event")}
    schedules = {name: decls.schedule(symbols[name]) for name in of("schedule")}
    callables = Callables(tools, effects, agents, events)
    workflows = {
        name: WorkflowCompiler(decls, callables, symbols[name]).compile() for name in of("workflow")
    }
    impls = [(t.impl_dir, t.impl) for t in [*tools.values(), *effects.values()]]
    ir = IRProgram(
        ir_version=IR_VERSION,
        source=SourceIR(
            file=program.root.path.name,
            dir=str(root_dir),
            tool_modules=tool_modules(impls, root_dir),
        ),
        types=types,
        tools=tools,
        effects=effects,
        agents=agents,
        events=events,
        schedules=schedules,
        workflows=workflows,
        errors=of("error") or None,
        scenarios=compile_scenarios(program, decls),
    )
    return msgspec.structs.replace(ir, hash=program_hash(ir))


def compile_file(
    path: Path | str, text: str | None = None
) -> tuple[IRProgram | None, list[Diagnostic]]:
    """Check and compile a `.mn` file; the IR is None when the check found errors."""
    result = check(path, text)
    if not result.ok or result.program is None:
        return None, result.diagnostics
    return compile_program(result.program), result.diagnostics


def select_workflow(ir: IRProgram, name: str) -> IRProgram:
    """The program cut down to one workflow, the workflows it calls and their schedules."""
    keep: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in keep:
            continue
        keep.add(current)
        for state in ir.workflows[current].states.values():
            if isinstance(state, ChildState):
                todo.append(state.workflow)
    cut = msgspec.structs.replace(
        ir,
        workflows={n: w for n, w in ir.workflows.items() if n in keep},
        schedules={n: s for n, s in ir.schedules.items() if s.workflow in keep},
        scenarios={n: s for n, s in ir.scenarios.items() if s.workflow in keep},
    )
    return msgspec.structs.replace(cut, hash=call_deep(program_hash, cut))
