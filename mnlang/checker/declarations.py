"""The typed view of the declarations: records, enums, call signatures and events.

`Resolver` looks names up in a module's scope and remembers which imported
names were used (for W104); `Declarations` resolves every type written in a
declaration once, so that bodies only look types up.
"""

from __future__ import annotations

import msgspec

from mnlang.checker import types as T
from mnlang.checker.program import ModuleInfo, Program, Symbol
from mnlang.checker.suggest import suggest
from mnlang.diagnostics import Diagnostics, Label
from mnlang.syntax import ast

_GENERIC = ("list", "map")


class Resolver:
    """Name lookup in a module's scope, recording the imported names and aliases in use."""

    def __init__(self, program: Program, diags: Diagnostics) -> None:
        self.program = program
        self.diags = diags
        self.used: dict[int, set[str]] = {}

    def _use(self, module: ModuleInfo, name: str) -> None:
        self.used.setdefault(id(module), set()).add(name)

    def symbol(self, module: ModuleInfo, name: str) -> Symbol | None:
        sym = module.scope.get(name)
        if sym is not None and sym.module is not module:
            self._use(module, name)
        return sym

    def alias(self, module: ModuleInfo, name: str) -> ModuleInfo | None:
        target = module.aliases.get(name)
        if target is not None:
            self._use(module, name)
        return target

    def qualified(self, module: ModuleInfo, expr: ast.Expr) -> Symbol | None:
        """The declaration `name` or `alias.name` refers to (without reporting)."""
        if isinstance(expr, ast.Name):
            return self.symbol(module, expr.name)
        if isinstance(expr, ast.Field) and isinstance(expr.obj, ast.Name):
            target = self.alias(module, expr.obj.name)
            if target is not None:
                sym = target.scope.get(expr.name.name)
                return sym if sym is not None and sym.module is target else None
        return None

    def unused_imports(self, module: ModuleInfo) -> list[ast.Ident]:
        used = self.used.get(id(module), set())
        return [ident for name, ident in module.imported_by_name.items() if name not in used]

    def type_names(self, module: ModuleInfo) -> list[str]:
        names = [n for n, s in module.scope.items() if s.kind in ("type", "enum")]
        return [*T.PRIMITIVES, *_GENERIC, *names]

    def resolve_type(self, module: ModuleInfo, ref: ast.TypeRef) -> T.Type:
        """The type a written type names; E103 (and `unknown`) when it names none."""
        t = self._resolve_base(module, ref)
        return T.optional(t) if ref.optional else t

    def _resolve_base(self, module: ModuleInfo, ref: ast.TypeRef) -> T.Type:
        name = ref.name
        if name in _GENERIC:
            if len(ref.args) != 1:
                self.diags.add(
                    "E103",
                    ref,
                    f"`{name}` needs an item type",
                    help=f"write e.g. `{name}[str]`",
                )
                return T.UNKNOWN
            inner = self.resolve_type(module, ref.args[0])
            return T.list_of(inner) if name == "list" else T.map_of(inner)
        if ref.args:
            self.diags.add(
                "E103",
                ref,
                f"`{name}` takes no type arguments",
                help="only `list[T]` and `map[T]` take an item type",
            )
            return T.UNKNOWN
        if name in T.PRIMITIVES:
            return T.Type(name)
        sym = self.symbol(module, name)
        if sym is not None and sym.kind == "type":
            return T.record(sym.name)
        if sym is not None and sym.kind == "enum":
            return T.enum(sym.name)
        if sym is not None:
            self.diags.add(
                "E103",
                ref,
                f"`{name}` is {_article(sym.kind)}, not a type",
                labels=[Label(sym.decl.name.span, "declared here")],
                help="name a type: a primitive such as `str`, a `type` or an `enum`",
            )
            return T.UNKNOWN
        hint = suggest(ref.span, name, self.type_names(module))
        self.diags.add(
            "E103",
            ref,
            f"unknown type `{name}`",
            help=hint.help or f"declare it with `type {name} {{ ... }}` or `enum {name} {{ ... }}`",
            fix=hint.fix,
        )
        return T.UNKNOWN


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


class FieldInfo(msgspec.Struct):
    name: str
    type: T.Type
    has_default: bool
    decl: ast.FieldDecl


class ParamInfo(msgspec.Struct):
    name: str
    type: T.Type
    has_default: bool
    decl: ast.Param


class Signature(msgspec.Struct):
    """A tool, effect, agent or workflow: what it takes and what it returns."""

    symbol: Symbol
    params: list[ParamInfo]
    returns: T.Type

    @property
    def required(self) -> int:
        return sum(1 for p in self.params if not p.has_default)


class Declarations(msgspec.Struct):
    records: dict[str, dict[str, FieldInfo]] = msgspec.field(default_factory=dict)
    enums: dict[str, tuple[str, ...]] = msgspec.field(default_factory=dict)
    signatures: dict[str, Signature] = msgspec.field(default_factory=dict)
    events: dict[str, T.Type | None] = msgspec.field(default_factory=dict)


def build_declarations(program: Program, resolver: Resolver, diags: Diagnostics) -> Declarations:
    """Resolve the types of every declaration in the program (E102 for repeated members)."""
    decls = Declarations()
    for module in program.modules.values():
        for decl in module.tree.decls:
            sym = module.scope.get(decl.name.name)
            if sym is None or sym.decl is not decl:
                continue  # a duplicate declaration, already reported by the loader
            if isinstance(decl, ast.TypeDecl):
                decls.records[sym.name] = _fields(module, decl, resolver, diags)
            elif isinstance(decl, ast.EnumDecl):
                decls.enums[sym.name] = _members(decl, diags)
            elif isinstance(decl, ast.CallableDecl | ast.WorkflowDecl):
                params = _params(module, decl.params, resolver, diags)
                returns = resolver.resolve_type(module, decl.returns)
                decls.signatures[sym.name] = Signature(sym, params, returns)
            elif isinstance(decl, ast.EventDecl):
                payload = decl.payload
                decls.events[sym.name] = (
                    resolver.resolve_type(module, payload) if payload is not None else None
                )
    return decls


def _repeated(diags: Diagnostics, ident: ast.Ident, first: ast.Ident, what: str) -> None:
    diags.add(
        "E102",
        ident,
        f"{what} `{ident.name}` is declared twice",
        labels=[Label(first.span, "first declared here")],
        help="rename or remove one of them",
    )


def _fields(
    module: ModuleInfo, decl: ast.TypeDecl, resolver: Resolver, diags: Diagnostics
) -> dict[str, FieldInfo]:
    fields: dict[str, FieldInfo] = {}
    for f in decl.fields:
        t = resolver.resolve_type(module, f.type)
        prior = fields.get(f.name.name)
        if prior is not None:
            _repeated(diags, f.name, prior.decl.name, "field")
            continue
        fields[f.name.name] = FieldInfo(f.name.name, t, f.default is not None, f)
    return fields


def _members(decl: ast.EnumDecl, diags: Diagnostics) -> tuple[str, ...]:
    seen: dict[str, ast.Ident] = {}
    for member in decl.members:
        if member.name in seen:
            _repeated(diags, member, seen[member.name], "member")
            continue
        seen[member.name] = member
    return tuple(seen)


def _params(
    module: ModuleInfo, params: list[ast.Param], resolver: Resolver, diags: Diagnostics
) -> list[ParamInfo]:
    result: list[ParamInfo] = []
    seen: dict[str, ast.Ident] = {}
    for p in params:
        t = resolver.resolve_type(module, p.type)
        if p.name.name in seen:
            _repeated(diags, p.name, seen[p.name.name], "parameter")
            continue
        seen[p.name.name] = p.name
        result.append(ParamInfo(p.name.name, t, p.default is not None, p))
    return result
