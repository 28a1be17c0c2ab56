"""Loading a program: the root module, its imports (recursively) and the symbol tables.

A declaration's qualified name is its plain name in the root module and
`module.name` in an imported module (`std.policies.standard_retry`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from mnlang.checker.suggest import did_you_mean, suggest
from mnlang.diagnostics import Diagnostics, Label
from mnlang.modulepath import find_module
from mnlang.resources import data_path
from mnlang.sources import read_source
from mnlang.syntax import ast
from mnlang.syntax.parser import parse

DECL_KINDS: dict[type, str] = {
    ast.TypeDecl: "type",
    ast.EnumDecl: "enum",
    ast.EventDecl: "event",
    ast.PolicyDecl: "policy",
    ast.ScheduleDecl: "schedule",
    ast.WorkflowDecl: "workflow",
    ast.ScenarioDecl: "scenario",
    ast.ErrorDecl: "error",
}


class Symbol(msgspec.Struct, eq=False):
    kind: str  # type enum tool effect agent event policy schedule workflow scenario error
    name: str  # qualified name
    decl: ast.Decl
    module: ModuleInfo


class ModuleInfo(msgspec.Struct, eq=False):
    dotted: str  # "" for the root module
    path: Path
    tree: ast.Module
    # own decls + names brought in
    scope: dict[str, Symbol] = msgspec.field(default_factory=dict)
    # `import a.b` -> "b"
    aliases: dict[str, ModuleInfo] = msgspec.field(default_factory=dict)
    # for unused-import checks
    imported_by_name: dict[str, ast.Ident] = msgspec.field(default_factory=dict)

    def qualify(self, name: str) -> str:
        return f"{self.dotted}.{name}" if self.dotted else name


class Program(msgspec.Struct, eq=False):
    root: ModuleInfo
    modules: dict[str, ModuleInfo]
    symbols: dict[str, Symbol]  # every declaration by qualified name
    # resolved, per declaration
    options: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)

    def symbols_of(self, kind: str) -> list[Symbol]:
        return [s for s in self.symbols.values() if s.kind == kind]


def _kind_of(decl: ast.Decl) -> str:
    if isinstance(decl, ast.CallableDecl):
        return decl.kind
    return DECL_KINDS[type(decl)]


def module_file(dotted: str, importer: Path) -> tuple[Path, list[str]]:
    """Where `import dotted` is (stdlib for `std.*`, else the module search path of
    `mnlang.modulepath`), and the places looked at; the first place when none holds it."""
    parts = dotted.split(".")
    if parts[0] == "std" and len(parts) > 1:
        path = data_path("stdlib").joinpath(*parts[1:]).with_suffix(".mn")
        return path, [str(path)]
    found, looked = find_module(dotted, importer)
    return found or importer.parent.joinpath(*parts).with_suffix(".mn"), looked


class _Loader:
    def __init__(self, diags: Diagnostics) -> None:
        self.diags = diags
        self.modules: dict[str, ModuleInfo] = {}
        self.by_path: dict[Path, ModuleInfo] = {}
        self.loading: list[Path] = []
        self.symbols: dict[str, Symbol] = {}
        self.failed = False

    def load(self, path: Path, dotted: str, text: str | None = None) -> ModuleInfo | None:
        try:
            path = path.resolve()
        except (OSError, RuntimeError) as e:  # a loop of links (RuntimeError before 3.13)
            self.diags.add(
                "E091", None, f"cannot read `{path}`: {_reason(e)}", help="check the path"
            )
            self.failed = True
            return None
        if path in self.by_path:
            return self.by_path[path]
        if text is None:
            text, problem = read_source(path)
            if problem is not None:
                self.diags.items.append(problem)
                self.failed = True
                return None
        assert text is not None
        tree, parse_diags = parse(text, str(path))
        self.diags.items.extend(parse_diags)
        if tree is None:
            self.failed = True
            return None
        info = ModuleInfo(dotted, path, tree)
        self.by_path[path] = info
        self.modules[dotted] = info
        self.loading.append(path)
        for decl in tree.decls:
            self._declare(info, decl)
        for imp in tree.imports:
            self._import(info, imp)
        self.loading.pop()
        return info

    def _declare(self, info: ModuleInfo, decl: ast.Decl) -> None:
        name = decl.name.name
        prior = info.scope.get(name)
        if prior is not None:
            self.diags.add(
                "E102",
                decl.name,
                f"`{name}` is declared twice",
                labels=[Label(prior.decl.name.span, "first declared here")],
                help="rename one of them",
            )
            return
        sym = Symbol(_kind_of(decl), info.qualify(name), decl, info)
        info.scope[name] = sym
        self.symbols[sym.name] = sym

    def _import(self, info: ModuleInfo, imp: ast.Import) -> None:
        dotted = imp.dotted
        try:
            path, looked = module_file(dotted, info.path)
            target_path = path.resolve()
            found = target_path.is_file()
        except (OSError, RuntimeError) as e:  # a name too long, a loop of links
            self.diags.add(
                "E104",
                imp,
                f"module `{_shortened(dotted)}` cannot be looked up: {_reason(e)}",
                help="fix the import, or the links where the module should be",
            )
            return
        if target_path in self.loading:
            chain = " -> ".join(p.stem for p in self.loading[self.loading.index(target_path) :])
            self.diags.add(
                "E105",
                imp,
                f"import cycle: {chain} -> {target_path.stem}",
                help="move the shared declarations into a module that both import",
            )
            return
        if not found:
            where = (
                "the standard library" if dotted.startswith("std.") else f"`{target_path.parent}`"
            )
            hint = None
            if dotted.startswith("std."):
                stdlib = data_path("stdlib")
                names = [f"std.{p.stem}" for p in stdlib.glob("*.mn")]
                hint = did_you_mean(dotted, names)
            notes = [] if dotted.startswith("std.") else ["looked at: " + "; ".join(looked)]
            self.diags.add(
                "E104",
                imp,
                f"module `{dotted}` not found in {where}",
                help=hint or f"create `{target_path.name}` there, set MNC_PATH, or fix the import",
                notes=notes,
            )
            return
        module_dotted = dotted
        target = self.load(target_path, module_dotted)
        if target is None:
            return
        if not imp.names:
            info.aliases[imp.path[-1].name] = target
            info.imported_by_name[imp.path[-1].name] = imp.path[-1]
            return
        for ident in imp.names:
            sym = target.scope.get(ident.name)
            if sym is None or sym.module is not target:
                own = [n for n, s in target.scope.items() if s.module is target]
                suggestion = suggest(ident.span, ident.name, own)
                self.diags.add(
                    "E106",
                    ident,
                    f"module `{dotted}` has no declaration `{ident.name}`",
                    help=suggestion.help,
                    fix=suggestion.fix,
                )
                continue
            prior = info.scope.get(ident.name)
            if prior is not None:
                self.diags.add(
                    "E102",
                    ident,
                    f"`{ident.name}` is imported but also declared in this module",
                    labels=[Label(prior.decl.name.span, "declared here")],
                )
                continue
            info.scope[ident.name] = sym
            info.imported_by_name[ident.name] = ident


def _reason(e: OSError | RuntimeError) -> str:
    if isinstance(e, OSError):
        return (e.strerror or str(e)).lower()
    return "a loop of symbolic links"


def _shortened(dotted: str) -> str:
    return dotted if len(dotted) <= 60 else f"{dotted[:40]}...{dotted[-12:]}"


def load_program(path: Path | str, diags: Diagnostics, text: str | None = None) -> Program | None:
    """Parse a root module and everything it imports; None when a module cannot be parsed."""
    loader = _Loader(diags)
    root = loader.load(Path(path), "", text)
    if root is None or loader.failed:
        return None
    return Program(root, loader.modules, loader.symbols)


def lookup(module: ModuleInfo, expr: ast.Expr) -> Symbol | None:
    """The declaration a name (`fetch`) or qualified name (`payments.refund`) refers to."""
    if isinstance(expr, ast.Name):
        return module.scope.get(expr.name)
    if isinstance(expr, ast.Field) and isinstance(expr.obj, ast.Name):
        target = module.aliases.get(expr.obj.name)
        if target is not None:
            sym = target.scope.get(expr.name.name)
            return sym if sym is not None and sym.module is target else None
    return None
