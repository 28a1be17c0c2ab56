"""Lowering checked AST expressions to IR expression trees."""

from __future__ import annotations

from typing import cast

from mnlang.checker.builtins import CALLBACK_TOKEN
from mnlang.checker.program import ModuleInfo, Program
from mnlang.ir.expr import (
    Binary,
    BinaryOpName,
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
    UnaryOpName,
    Var,
)
from mnlang.syntax import ast


class CompilerBug(Exception):
    """A construct the checker should have rejected reached the compiler."""


def qualified_type_name(module: ModuleInfo, name: str) -> str:
    """The qualified name of a record or enum as seen from `module`."""
    symbol = module.scope.get(name)
    return symbol.name if symbol is not None else name


class ExprLowering:
    """Turns `ast.Expr` into IR `Expr`, resolving type names and filling record defaults."""

    def __init__(self, program: Program) -> None:
        self.program = program

    def lower(self, expr: ast.Expr, module: ModuleInfo) -> Expr:
        match expr:
            case ast.Paren():
                return self.lower(expr.inner, module)
            case ast.IntLit():
                return Lit(type="int", value=expr.value)
            case ast.FloatLit():
                return Lit(type="float", value=expr.value)
            case ast.MoneyLit():
                return Lit(type="money", value=str(expr.value))
            case ast.DurationLit():
                return Lit(type="duration", value=expr.millis)
            case ast.BoolLit():
                return Lit(type="bool", value=expr.value)
            case ast.NullLit():
                return Lit(type="null", value=None)
            case ast.StrLit():
                text = expr.constant
                return (
                    Lit(type="str", value=text) if text is not None else self.template(expr, module)
                )
            case ast.Name():
                return Var(name=expr.name)
            case ast.Field():
                if isinstance(expr.obj, ast.Name) and expr.obj.ref == "run":
                    # `run.id`: a field of the run itself, answered by the runtime.
                    return FieldOf(obj=Builtin(fn="run", args=[]), name=expr.name.name)
                return FieldOf(obj=self.lower(expr.obj, module), name=expr.name.name)
            case ast.Index():
                return IndexOf(
                    obj=self.lower(expr.obj, module), index=self.lower(expr.index, module)
                )
            case ast.Unary():
                op: UnaryOpName = "not" if expr.op == "not" else "-"
                return Unary(op=op, operand=self.lower(expr.operand, module))
            case ast.Binary():
                return Binary(
                    op=cast(BinaryOpName, expr.op),
                    left=self.lower(expr.left, module),
                    right=self.lower(expr.right, module),
                )
            case ast.ListLit():
                return ListOf(items=[self.lower(item, module) for item in expr.items])
            case ast.ObjectLit():
                return ObjectOf(
                    fields={e.key.name: self.lower(e.value, module) for e in expr.entries}
                )
            case ast.EnumMember():
                return EnumValue(
                    type=qualified_type_name(module, expr.type_name.name), member=expr.member.name
                )
            case ast.RecordLit():
                return self.record(expr, module)
            case ast.Call():
                return self.builtin(expr, module)
        raise CompilerBug(f"cannot lower {type(expr).__name__} at {expr.span}")

    def template(self, text: ast.StrLit, module: ModuleInfo) -> Template:
        """A string as a template, even when it has no interpolation (keys, prompts)."""
        parts: list[str | Expr] = []
        for part in text.parts:
            if isinstance(part, str):
                if part:
                    parts.append(part)
            else:
                parts.append(self.lower(part, module))
        return Template(parts=parts)

    def builtin(self, call: ast.Call, module: ModuleInfo) -> Builtin:
        target = call.target
        if target is not None and not isinstance(target, str):
            raise CompilerBug(f"step call inside an expression at {call.span}")
        if isinstance(target, str):
            fn = target
        elif isinstance(call.callee, ast.Name):
            fn = call.callee.name
        else:
            raise CompilerBug(f"call of a non-name at {call.span}")
        args = call.args
        if fn == CALLBACK_TOKEN and args and isinstance(args[0], ast.Name):
            # The event, by its qualified name: the checker resolved it.
            event = args[0].ref
            rest = [self.lower(a, module) for a in args[1:]]
            return Builtin(fn=fn, args=[Lit(type="str", value=event.name), *rest])
        return Builtin(fn=fn, args=[self.lower(a, module) for a in args])

    def record(self, lit: ast.RecordLit, module: ModuleInfo) -> RecordOf:
        name = qualified_type_name(module, lit.type_name.name)
        given = {e.key.name: self.lower(e.value, module) for e in lit.entries}
        symbol = self.program.symbols.get(name)
        if symbol is None or not isinstance(symbol.decl, ast.TypeDecl):
            return RecordOf(type=name, fields=given)
        fields: dict[str, Expr] = {}
        for decl_field in symbol.decl.fields:
            key = decl_field.name.name
            if key in given:
                fields[key] = given[key]
            elif decl_field.default is not None:
                fields[key] = self.lower(decl_field.default, symbol.module)
            elif decl_field.type.optional:
                fields[key] = Lit(type="null", value=None)
        return RecordOf(type=name, fields=fields)
