"""References and renaming: every place a program names what the name at the cursor names.

A name's identity is where it is defined (`definition_span`, the resolver behind
go to definition): the references of a declaration, enum member, parameter or
variable are the names in the program's modules whose definition is the same
place. Renaming edits them all, after checking that the new name is a valid
name of its kind that collides with nothing in scope.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from mnlang.checker.builtins import BUILTINS
from mnlang.checker.program import ModuleInfo, Program, Symbol
from mnlang.lsp.analysis import children, definition_span, nodes_at, walk
from mnlang.span import Span
from mnlang.syntax import ast
from mnlang.syntax.lexer import LexError, tokenize
from mnlang.syntax.tokens import KEYWORDS

_CAPITALISED = ("type", "enum")  # declarations whose names start with a capital letter


class RenameRefused(Exception):
    """Why a name cannot be renamed (to this new name); the message is shown as it is."""


@dataclass(frozen=True)
class Target:
    """A name that can be referenced: where it is defined and what it is."""

    name: str
    definition: Span
    module: ModuleInfo  # the module that defines it
    kind: str  # "declaration", "member" or "local"
    symbol: Symbol | None  # the declaration, or the enum of a member
    owner: ast.Decl | None  # the workflow or tool a local belongs to


@dataclass(frozen=True)
class Occurrence:
    span: Span  # the name itself, nothing around it
    module: ModuleInfo


def name_span(node: ast.Node) -> Span:
    """The span of the name a node writes (a type's name without its `[...]` or `?`)."""
    span = node.span
    if isinstance(node, ast.TypeRef):
        end = span.start + len(node.name)
        return Span(
            span.file, span.line, span.col, span.line, span.col + len(node.name), span.start, end
        )
    return span


def target_at(program: Program, module: ModuleInfo, path: list[ast.Node]) -> Target | None:
    """What the innermost node of `path` (in `module`) names, when it is something that
    has references."""
    if not isinstance(path[-1], ast.Ident | ast.Name | ast.TypeRef):
        return None
    span = definition_span(module, path)
    return _target_defined_at(program, span) if span is not None else None


def _target_defined_at(program: Program, span: Span) -> Target | None:
    owner = module_of(program, span.file)
    if owner is None:
        return None
    path = nodes_at(owner.tree, span.start)
    ident, parent = path[-1], path[-2] if len(path) > 1 else None
    if not isinstance(ident, ast.Ident) or ident.span.end != span.end:
        return None  # the start of an imported file, not a name
    if isinstance(parent, ast.Decl) and parent.name is ident:
        sym = owner.scope.get(ident.name)
        if sym is None or sym.decl is not parent:
            return None
        return Target(ident.name, span, owner, "declaration", sym, None)
    if isinstance(parent, ast.EnumDecl):
        return Target(ident.name, span, owner, "member", owner.scope.get(parent.name.name), None)
    decl = next((n for n in reversed(path) if isinstance(n, ast.Decl)), None)
    return Target(ident.name, span, owner, "local", None, decl)


def module_of(program: Program, file: str) -> ModuleInfo | None:
    return next((m for m in program.modules.values() if str(m.path) == file), None)


def references(programs: Iterable[Program], target: Target) -> list[Occurrence]:
    """The names in the programs' modules that name `target`, its definition included, in
    file and source order, each once."""
    found: dict[tuple[str, int], Occurrence] = {}
    wanted = target.definition
    for program in programs:
        for module in program.modules.values():
            for path in _name_paths(module.tree, [module.tree], target.name):
                span = definition_span(module, path)
                if span is None or (span.file, span.start, span.end) != (
                    wanted.file,
                    wanted.start,
                    wanted.end,
                ):
                    continue
                occurrence = Occurrence(name_span(path[-1]), module)
                found.setdefault((occurrence.span.file, occurrence.span.start), occurrence)
    return [found[key] for key in sorted(found)]


def _name_paths(node: ast.Node, path: list[ast.Node], name: str) -> Iterator[list[ast.Node]]:
    """The path from the root to each name under `node` spelt `name` (a name is only ever
    referred to by itself: imports bring names in unchanged)."""
    if isinstance(node, ast.Ident | ast.Name | ast.TypeRef) and node.name == name:
        yield path
    for child in children(node):
        yield from _name_paths(child, [*path, child], name)


def check_rename(target: Target, new_name: str, occurrences: list[Occurrence]) -> None:
    """Raise RenameRefused when `target` may not be renamed to `new_name`."""
    check_writable(target)
    _check_spelling(target, new_name)
    if new_name == target.name:
        return
    if target.kind == "member":
        _check_member(target, new_name)
    elif target.kind == "local":
        _check_local(target, new_name)
    else:
        for module in {id(o.module): o.module for o in occurrences}.values():
            _check_declaration(target, new_name, module)


def check_writable(target: Target) -> None:
    """Raise RenameRefused when `target` may not be renamed at all."""
    if target.module.dotted.split(".")[0] == "std":
        raise RenameRefused(
            f"`{target.name}` is declared in the standard library (`{target.module.dotted}`), "
            "which is read-only"
        )


def _check_spelling(target: Target, new_name: str) -> None:
    if new_name in KEYWORDS:
        raise RenameRefused(f"`{new_name}` is a reserved word")
    try:
        tokens = [t for t in tokenize(new_name) if t.type != "$END"]
    except LexError:
        tokens = []
    if (
        len(tokens) != 1
        or tokens[0].value != new_name
        or tokens[0].type
        not in (
            "NAME",
            "TYPE_NAME",
        )
    ):
        raise RenameRefused(f"`{new_name}` is not a name: use letters, digits and `_`")
    what = {"member": "enum member", "local": "variable and parameter"}.get(target.kind)
    what = what or (target.symbol.kind if target.symbol is not None else "declaration")
    capital = what in _CAPITALISED
    if tokens[0].type != ("TYPE_NAME" if capital else "NAME"):
        letter = "a capital" if capital else "a small"
        raise RenameRefused(f"{what} names start with {letter} letter, and `{new_name}` does not")


def _check_member(target: Target, new_name: str) -> None:
    enum = target.symbol
    if enum is None or not isinstance(enum.decl, ast.EnumDecl):
        return
    if any(m.name == new_name for m in enum.decl.members):
        raise RenameRefused(f"`{enum.decl.name.name}` already has a member `{new_name}`")


def _check_local(target: Target, new_name: str) -> None:
    owner = target.owner
    if owner is not None and new_name in local_names(owner):
        raise RenameRefused(f"`{owner.name.name}` already has a variable or parameter `{new_name}`")
    _check_global(new_name, target.module)


def _check_declaration(target: Target, new_name: str, module: ModuleInfo) -> None:
    _check_global(new_name, module)
    for decl in module.tree.decls:
        if new_name in local_names(decl):
            raise RenameRefused(
                f"`{decl.name.name}` in `{module.path.name}` has a variable or parameter "
                f"`{new_name}`"
            )


def _check_global(new_name: str, module: ModuleInfo) -> None:
    """Refuse a name that a module already gives a meaning."""
    where = f"`{module.path.name}`"
    if new_name in module.scope:
        sym = module.scope[new_name]
        how = "declared" if sym.module is module else "imported"
        raise RenameRefused(f"`{new_name}` is already {how} in {where}")
    if new_name in module.aliases:
        raise RenameRefused(f"`{new_name}` is the name of a module imported in {where}")
    if new_name in BUILTINS:
        raise RenameRefused(f"`{new_name}` is a builtin function")


def local_names(decl: ast.Decl) -> set[str]:
    """The parameters and variables of a workflow, tool, effect or agent."""
    if not isinstance(decl, ast.WorkflowDecl | ast.CallableDecl):
        return set()
    names = {p.name.name for p in decl.params}
    if isinstance(decl, ast.WorkflowDecl):
        for node in walk(decl.body):
            if isinstance(node, ast.Assign):
                names.add(node.target.name)
            elif isinstance(node, ast.For | ast.Catch) and node.var is not None:
                names.add(node.var.name)
    return names
