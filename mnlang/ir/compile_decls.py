"""Compiling declarations: types, tools, effects, agents, events and schedules."""

from __future__ import annotations

import hashlib
import os
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from mnlang.checker.program import ModuleInfo, Program, Symbol, lookup
from mnlang.ir.base import SpanIR
from mnlang.ir.compile_expr import CompilerBug, ExprLowering
from mnlang.ir.compile_types import type_from_ref
from mnlang.ir.decl_options import declaration_options, duration_ms, names, retry_policy
from mnlang.ir.expr import Expr, Template
from mnlang.ir.model import (
    AgentIR,
    ApprovalIR,
    CompensateIR,
    EffectIR,
    EnumTypeIR,
    EventIR,
    FieldIR,
    LimitIR,
    ParamIR,
    ReconcileIR,
    RecordTypeIR,
    ScheduleIR,
    ToolIR,
    ToolModuleIR,
    TypeDeclIR,
)
from mnlang.ir.schema import output_schema
from mnlang.mcp.lock import IMPL_PREFIX as MCP_IMPL_PREFIX
from mnlang.modulepath import module_file
from mnlang.span import Span
from mnlang.syntax import ast


@lru_cache(maxsize=256)
def _relative_file(file: str, root_dir: Path) -> str:
    path = Path(file)
    try:
        return path.resolve().relative_to(root_dir).as_posix()
    except ValueError:
        return path.as_posix()


def span_ir(span: Span, root_dir: Path) -> SpanIR:
    """A span whose file is relative to the root source's folder (absolute when outside it)."""
    return SpanIR(
        file=_relative_file(span.file, root_dir),
        line=span.line,
        col=span.col,
        end_line=span.end_line,
        end_col=span.end_col,
    )


def relative_dir(folder: Path, root_dir: Path) -> str:
    return Path(os.path.relpath(folder.resolve(), root_dir)).as_posix()


class DeclCompiler:
    def __init__(self, program: Program, root_dir: Path, lowering: ExprLowering) -> None:
        self.program = program
        self.root_dir = root_dir
        self.lowering = lowering

    def span(self, node: ast.Node) -> SpanIR:
        return span_ir(node.span, self.root_dir)

    def params(self, params: list[ast.Param], module: ModuleInfo) -> list[ParamIR]:
        return [
            ParamIR(
                name=p.name.name,
                type=type_from_ref(p.type, module),
                default=self.lowering.lower(p.default, module) if p.default is not None else None,
                description=p.description.constant if p.description is not None else None,
            )
            for p in params
        ]

    def call_args(
        self,
        call: ast.Call,
        callee: Symbol,
        caller: ModuleInfo,
        skip: frozenset[str] = frozenset(),
    ) -> dict[str, Expr]:
        """Arguments by parameter name, declared defaults filled in for omitted ones; the
        parameters in `skip` (bound by an agent) take no argument."""
        decl = callee.decl
        params = [p for p in getattr(decl, "params", []) if p.name.name not in skip]
        args: dict[str, Expr] = {}
        for i, param in enumerate(params):
            if i < len(call.args):
                args[param.name.name] = self.lowering.lower(call.args[i], caller)
            elif param.default is not None:
                args[param.name.name] = self.lowering.lower(param.default, callee.module)
        return args

    # ---- types -------------------------------------------------------------

    def type_decl(self, symbol: Symbol) -> TypeDeclIR:
        decl = symbol.decl
        if isinstance(decl, ast.EnumDecl):
            return EnumTypeIR(
                name=symbol.name, members=[m.name for m in decl.members], span=self.span(decl)
            )
        assert isinstance(decl, ast.TypeDecl)
        fields = [
            FieldIR(
                name=f.name.name,
                type=type_from_ref(f.type, symbol.module),
                default=self.lowering.lower(f.default, symbol.module) if f.default else None,
            )
            for f in decl.fields
        ]
        return RecordTypeIR(name=symbol.name, fields=fields, span=self.span(decl))

    # ---- tools, effects, agents ----------------------------------------------

    def _template(self, value: Any, module: ModuleInfo) -> Template | None:
        if value is None:
            return None
        if isinstance(value, str):
            return Template(parts=[value] if value else [])
        if isinstance(value, ast.StrLit):
            return self.lowering.template(value, module)
        raise CompilerBug(f"expected a string template, got {value!r}")

    def _tool_fields(self, symbol: Symbol, opts: dict[str, Any]) -> dict[str, Any]:
        decl = symbol.decl
        assert isinstance(decl, ast.CallableDecl)
        limit = opts.get("limit")
        cost = opts.get("cost")
        return {
            "name": symbol.name,
            "params": self.params(decl.params, symbol.module),
            "returns": type_from_ref(decl.returns, symbol.module),
            "impl": str(opts.get("impl", "")),
            "impl_dir": relative_dir(symbol.module.path.parent, self.root_dir),
            "timeout_ms": duration_ms(opts.get("timeout")),
            "timeout": self._computed_timeout(opts.get("timeout"), symbol.module),
            "retry": retry_policy(opts.get("retry")),
            "limit": (
                LimitIR(concurrent=limit.get("concurrent"), per_second=limit.get("per_second"))
                if isinstance(limit, dict)
                else None
            ),
            "cost": Decimal(str(cost)) if cost is not None else None,
            "isolation": "process" if opts.get("isolation") == "process" else "thread",
            "span": self.span(decl),
            "description": opts.get("description"),
        }

    def _computed_timeout(self, value: Any, module: ModuleInfo) -> Expr | None:
        """A `timeout:` written as an expression over the parameters."""
        return self.lowering.lower(value, module) if isinstance(value, ast.Expr) else None

    def tool(self, symbol: Symbol) -> ToolIR:
        return ToolIR(**self._tool_fields(symbol, declaration_options(self.program, symbol)))

    def effect(self, symbol: Symbol) -> EffectIR:
        opts = declaration_options(self.program, symbol)
        compensate = opts.get("compensate")
        return EffectIR(
            **self._tool_fields(symbol, opts),
            key=self._template(opts.get("key"), symbol.module),
            once=bool(opts.get("once", False)),
            scope="global" if opts.get("scope") == "global" else "run",
            requires=names(opts.get("requires")),
            compensate=self._compensate(compensate, symbol) if compensate is not None else None,
            approval=_approval(opts.get("approval")),
            reconcile=self._reconcile(opts, symbol),
        )

    def _reconcile(self, opts: dict[str, Any], effect: Symbol) -> ReconcileIR | None:
        call = opts.get("reconcile")
        if call is None:
            return None
        target = lookup(effect.module, call.callee) if isinstance(call, ast.Call) else None
        if target is None:
            raise CompilerBug(f"`reconcile` of `{effect.name}` names no tool")
        return ReconcileIR(
            tool=target.name,
            args=self.call_args(call, target, effect.module),
            settle_ms=duration_ms(opts.get("settle")),
        )

    def _compensate(self, call: Any, effect: Symbol) -> CompensateIR:
        if not isinstance(call, ast.Call):
            raise CompilerBug(f"`compensate` of `{effect.name}` is not a call")
        target = lookup(effect.module, call.callee)
        if target is None:
            raise CompilerBug(f"`compensate` of `{effect.name}` names no effect")
        return CompensateIR(effect=target.name, args=self.call_args(call, target, effect.module))

    def agent(self, symbol: Symbol, types: dict[str, TypeDeclIR]) -> AgentIR:
        decl = symbol.decl
        assert isinstance(decl, ast.CallableDecl)
        opts = declaration_options(self.program, symbol)
        returns = type_from_ref(decl.returns, symbol.module)
        prompt = self._template(opts.get("prompt"), symbol.module)
        temperature = opts.get("temperature")
        return AgentIR(
            name=symbol.name,
            params=self.params(decl.params, symbol.module),
            returns=returns,
            model=str(opts.get("model", "")),
            provider=opts.get("provider"),
            prompt=prompt if prompt is not None else Template(parts=[]),
            max_tokens=opts.get("max_tokens"),
            temperature=float(temperature) if temperature is not None else None,
            timeout_ms=duration_ms(opts.get("timeout")),
            retry=retry_policy(opts.get("retry")),
            tools=names(opts.get("tools")),
            max_turns=opts.get("max_turns"),
            approval=_approval(opts.get("approval")),
            output_schema=output_schema(returns, types),
            span=self.span(decl),
            system=self._template(opts.get("system"), symbol.module),
            description=opts.get("description"),
            bound=self._bound(decl, symbol.module),
            fallback=opts.get("fallback") or None,
            cache_ms=opts.get("cache"),
            conversation=opts.get("conversation"),
        )

    def _bound(
        self, decl: ast.CallableDecl, module: ModuleInfo
    ) -> dict[str, dict[str, Expr]] | None:
        """The parameters `tools:` binds, by tool: `book_hotel({ passenger: pid })`."""
        entry = decl.options.get("tools")
        if entry is None or not isinstance(entry.value, ast.ListLit):
            return None
        bound: dict[str, dict[str, Expr]] = {}
        for item in entry.value.items:
            if not isinstance(item, ast.Call) or not isinstance(item.args[0], ast.ObjectLit):
                continue
            target = lookup(module, item.callee)
            if target is None:
                raise CompilerBug("a `tools:` entry names no tool")
            bound[target.name] = {
                e.key.name: self.lowering.lower(e.value, module) for e in item.args[0].entries
            }
        return bound or None

    # ---- events and schedules ------------------------------------------------

    def event(self, symbol: Symbol) -> EventIR:
        decl = symbol.decl
        assert isinstance(decl, ast.EventDecl)
        payload = type_from_ref(decl.payload, symbol.module) if decl.payload else None
        return EventIR(name=symbol.name, payload=payload, span=self.span(decl))

    def schedule(self, symbol: Symbol) -> ScheduleIR:
        opts = declaration_options(self.program, symbol)
        run = opts.get("run")
        if not isinstance(run, ast.Call):
            raise CompilerBug(f"schedule `{symbol.name}` has no `run:` call")
        workflow = lookup(symbol.module, run.callee)
        if workflow is None:
            raise CompilerBug(f"schedule `{symbol.name}` runs an unknown workflow")
        return ScheduleIR(
            name=symbol.name,
            workflow=workflow.name,
            args=self.call_args(run, workflow, symbol.module),
            every_ms=duration_ms(opts.get("every")),
            cron=opts.get("cron"),
            timezone=opts.get("timezone"),
            span=self.span(symbol.decl),
        )


def tool_modules(impls: list[tuple[str, str]], root_dir: Path) -> list[ToolModuleIR]:
    """The Python modules named by `(impl_dir, impl)` pairs, with a sha256 of each file found.
    An MCP server's tool (`mcp:SERVER/TOOL`) has none: its schema is checked against the
    lock at run time (`mnlang.mcp.sessions`)."""
    seen: dict[tuple[str, str], ToolModuleIR] = {}
    for impl_dir, impl in impls:
        module = impl.partition(":")[0]
        if not module or impl.startswith(MCP_IMPL_PREFIX) or (impl_dir, module) in seen:
            continue
        base = root_dir / impl_dir
        found = module_file(base, module)
        chosen = found or base.joinpath(*module.split(".")).with_suffix(".py")
        seen[(impl_dir, module)] = ToolModuleIR(
            impl_dir=impl_dir,
            module=module,
            path=Path(os.path.relpath(chosen, root_dir)).as_posix(),
            sha256=hashlib.sha256(found.read_bytes()).hexdigest() if found else None,
        )
    return sorted(seen.values(), key=lambda m: (m.impl_dir, m.module))


def _approval(values: dict[str, Any] | None) -> ApprovalIR | None:
    if values is None:
        return None
    timeout = values.get("timeout")
    return ApprovalIR(
        timeout_ms=None if timeout == "never" else duration_ms(timeout),
        on_timeout=values.get("on_timeout", "reject") if timeout != "never" else None,
    )
