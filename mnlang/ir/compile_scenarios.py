"""Compiling the root file's scenarios (checked by `mnlang.checker.scenarios`) to `ScenarioIR`."""

from __future__ import annotations

from typing import cast

from mnlang.checker.program import Program, Symbol
from mnlang.checker.scenarios import SCENARIO, ExpectedCall, ReplySpec, ScenarioSpec
from mnlang.ir.compile_decls import DeclCompiler
from mnlang.ir.compile_expr import CompilerBug
from mnlang.ir.expr import Expr
from mnlang.ir.scenarios import (
    FaultExpectation,
    FaultLateness,
    ScenarioAnswerIR,
    ScenarioCallIR,
    ScenarioDecisionIR,
    ScenarioExpectIR,
    ScenarioFaultIR,
    ScenarioFaultOutcomeIR,
    ScenarioIR,
    ScenarioKeyedPayloadIR,
    ScenarioReplyIR,
    ScenarioStatus,
)
from mnlang.syntax import ast


def compile_scenarios(program: Program, decls: DeclCompiler) -> dict[str, ScenarioIR]:
    out: dict[str, ScenarioIR] = {}
    for sym in program.symbols_of("scenario"):
        if sym.module is program.root:
            out[sym.name] = _ScenarioCompiler(decls, sym).compile()
    return out


class _ScenarioCompiler:
    def __init__(self, decls: DeclCompiler, sym: Symbol) -> None:
        spec = decls.program.options.get(sym.name, {}).get(SCENARIO)
        if not isinstance(spec, ScenarioSpec):
            raise CompilerBug(f"scenario `{sym.name}` was not checked")
        self.decls = decls
        self.sym = sym
        self.spec = spec
        self.module = sym.module

    def compile(self) -> ScenarioIR:
        spec, lowering, module = self.spec, self.decls.lowering, self.module

        def value(expr: ast.Expr) -> Expr:
            return lowering.lower(expr, module)

        return ScenarioIR(
            name=self.sym.name,
            workflow=spec.workflow.name,
            args=self.decls.call_args(spec.run, spec.workflow, module),
            tools={name: [value(r) for r in results] for name, results in spec.tools.items()},
            answers={
                name: [
                    ScenarioAnswerIR(
                        args={k: value(v) for k, v in a.args.items()}, result=value(a.result)
                    )
                    for a in answers
                ]
                for name, answers in spec.answers.items()
            }
            or None,
            replies={
                name: [self._reply(r) for r in replies] for name, replies in spec.replies.items()
            },
            replies_file=spec.replies_file,
            decisions={
                name: [
                    ScenarioDecisionIR(
                        choice=d.choice, by=d.by, comment=d.comment, after_ms=d.after_ms
                    )
                    for d in decisions
                ]
                for name, decisions in spec.decisions.items()
            },
            events={name: [value(p) for p in payloads] for name, payloads in spec.events.items()},
            keyed_events={
                name: [
                    ScenarioKeyedPayloadIR(key=value(k.key), payload=value(k.payload))
                    for k in keyed
                ]
                for name, keyed in spec.keyed_events.items()
            }
            or None,
            faults=[
                ScenarioFaultIR(kind=f.kind, at=f.at.name, times=f.times, message=f.message)
                for f in spec.faults
            ],
            expect=ScenarioExpectIR(
                status=cast(ScenarioStatus, spec.status),
                output=value(spec.output) if spec.output is not None else None,
                error=spec.error,
                message=spec.message,
            ),
            expect_calls=(
                [self._call(c) for c in spec.expect_calls]
                if spec.expect_calls is not None
                else None
            ),
            under_faults=[
                ScenarioFaultOutcomeIR(
                    fault=f.fault,
                    expect=cast(FaultExpectation, f.expect),
                    at=f.at,
                    late=cast(FaultLateness | None, f.late),
                )
                for f in spec.under_faults
            ],
            model_error=spec.model_error,
            span=self.decls.span(self.sym.decl),
        )

    def _call(self, expected: ExpectedCall) -> ScenarioCallIR:
        if expected.call is None:
            return ScenarioCallIR(callee=expected.callee.name)
        args = self.decls.call_args(expected.call, expected.callee, self.module)
        return ScenarioCallIR(callee=expected.callee.name, args=args)

    def _reply(self, reply: ReplySpec) -> ScenarioReplyIR:
        if reply.tool is not None and reply.call is not None:
            if reply.bound:
                args = self.decls.call_args(reply.call, reply.tool, self.module, skip=reply.bound)
                model_call = ScenarioCallIR(callee=reply.tool.name, args=args)
                return ScenarioReplyIR(
                    tool_call=model_call, prompt_has=reply.prompt_has, model=reply.model
                )
            call = ExpectedCall(reply.tool, reply.call)
            return ScenarioReplyIR(
                tool_call=self._call(call), prompt_has=reply.prompt_has, model=reply.model
            )
        if reply.value is None:
            raise CompilerBug(f"a reply of scenario `{self.sym.name}` has no value")
        lowered = self.decls.lowering.lower(reply.value, self.module)
        return ScenarioReplyIR(value=lowered, prompt_has=reply.prompt_has, model=reply.model)
