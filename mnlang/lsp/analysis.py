"""One analysis of an open document: the checker's result and the way from a position to
the AST nodes, declarations and variables there.

The checker annotates the AST it returns (expression types, what names refer
to), so hover and go-to-definition read that tree; nothing is re-checked per
request.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mnlang.checker import CheckResult, check
from mnlang.checker.program import ModuleInfo, Symbol, lookup
from mnlang.checker.types import Type
from mnlang.span import Span
from mnlang.syntax import ast


@dataclass
class Analysis:
    path: Path
    text: str
    result: CheckResult
    version: int | None = None  # the editor's version of the text that was checked

    @property
    def module(self) -> ModuleInfo | None:
        """The document's module, when it parsed."""
        program = self.result.program
        return program.root if program is not None else None


def analyse(path: Path, text: str, version: int | None = None) -> Analysis:
    return Analysis(path, text, check(path, text), version)


def children(node: ast.Node) -> Iterator[ast.Node]:
    """The nodes directly inside `node`, in source order."""
    found: list[ast.Node] = []
    for name in ast.field_names(type(node)):
        value = getattr(node, name)
        items = value if isinstance(value, list) else [value]
        found.extend(item for item in items if isinstance(item, ast.Node))
    found.sort(key=lambda n: n.span.start)
    yield from found


def nodes_at(root: ast.Node, offset: int) -> list[ast.Node]:
    """The nodes whose span holds `offset` (or ends right at it), outermost first."""
    path = [root]
    node = root
    while True:
        inner = [c for c in children(node) if c.span.start <= offset <= c.span.end]
        if not inner:
            return path
        # A position between two nodes (`a|.b`) belongs to the one that starts there.
        node = inner[-1]
        path.append(node)


def resolve(module: ModuleInfo, path: list[ast.Node]) -> Symbol | None:
    """The declaration the innermost node names, if it names one."""
    node = path[-1]
    parent = path[-2] if len(path) > 1 else None
    if isinstance(node, ast.Name):
        if isinstance(node.ref, Symbol):
            return node.ref
        if node.ref is None:
            return module.scope.get(node.name)
        return None
    if isinstance(node, ast.Field):
        return lookup(module, node)
    if isinstance(node, ast.TypeRef):
        return module.scope.get(node.name)
    if not isinstance(node, ast.Ident):
        return None
    if isinstance(parent, ast.Field):
        return lookup(module, parent)
    if isinstance(parent, ast.Decl) and parent.name is node:
        return module.scope.get(node.name)
    if isinstance(parent, ast.RecordLit | ast.EnumMember) and parent.type_name is node:
        return module.scope.get(node.name)
    if isinstance(parent, ast.Wait) and parent.event is node:
        return module.scope.get(node.name)
    if isinstance(parent, ast.Import):
        return _imported(module, parent, node)
    if isinstance(parent, ast.Entry) and parent.key is node and _names_a_declaration(path):
        return module.scope.get(node.name)
    return None


# A scenario's blocks keyed by tools, effects, agents and events: `tools: { fetch: [...] }`.
_SCENARIO_KEYED = ("tools", "replies", "events")


def _names_a_declaration(path: list[ast.Node]) -> bool:
    """Whether the entry key at the end of `path` names a declaration: a key of a
    scenario's `tools`, `replies` or `events` block."""
    if len(path) < 6:
        return False
    block, scenario = path[-4], path[-6]
    return (
        isinstance(scenario, ast.ScenarioDecl)
        and isinstance(block, ast.Entry)
        and block.key.name in _SCENARIO_KEYED
    )


def _imported(module: ModuleInfo, imp: ast.Import, ident: ast.Ident) -> Symbol | None:
    if ident in imp.names:
        return module.scope.get(ident.name)
    return None


def imported_module(module: ModuleInfo, imp: ast.Import) -> ModuleInfo | None:
    """The module an import statement loads."""
    target = module.aliases.get(imp.path[-1].name)
    if target is not None:
        return target
    for ident in imp.names:
        sym = module.scope.get(ident.name)
        if sym is not None:
            return sym.module
    return None


def local_definition(path: list[ast.Node]) -> ast.Ident | None:
    """Where the local variable, parameter, loop variable or caught error named by the
    innermost node is defined: its first assignment, its parameter, its `for` or `catch`.
    The name may be a use or a definition (a parameter, an assignment's target)."""
    node = path[-1]
    parent = path[-2] if len(path) > 1 else None
    if isinstance(node, ast.Ident):
        if isinstance(parent, ast.Param):
            return node if node is parent.name else None
        if isinstance(parent, ast.For | ast.Catch | ast.SelectArm):
            return node if node is parent.var else None
        if not (isinstance(parent, ast.Assign) and node is parent.target):
            return None
    elif not isinstance(node, ast.Name) or node.ref not in ("var", "param", "loop"):
        return None
    name = node.name
    for outer in reversed(path):
        if isinstance(outer, ast.CallableDecl):  # a parameter in a key template or prompt
            return next((p.name for p in outer.params if p.name.name == name), None)
        if isinstance(outer, ast.For) and outer.var.name == name:
            return outer.var
        if isinstance(outer, ast.Catch) and outer.var is not None and outer.var.name == name:
            return outer.var
        if isinstance(outer, ast.SelectArm) and outer.var is not None and outer.var.name == name:
            return outer.var
        if isinstance(outer, ast.WorkflowDecl):
            for param in outer.params:
                if param.name.name == name:
                    return param.name
            return first_assignment(outer.body, name)
    return None


def first_assignment(block: ast.Block, name: str) -> ast.Ident | None:
    """The target of the first assignment to `name` in a block, nested blocks included."""
    for node in walk(block):
        if isinstance(node, ast.Assign) and node.target.name == name:
            return node.target
    return None


def walk(node: ast.Node) -> Iterator[ast.Node]:
    """Every node under `node` (itself included), in source order."""
    yield node
    for child in children(node):
        yield from walk(child)


def definition_span(module: ModuleInfo, path: list[ast.Node]) -> Span | None:
    """Where the innermost node's name is defined: a declaration (in any module, the
    standard library included), a local, or the file an import loads."""
    node = path[-1]
    parent = path[-2] if len(path) > 1 else None
    local = local_definition(path)
    if local is not None:
        return local.span
    if isinstance(node, ast.Ident) and isinstance(parent, ast.EnumMember):
        enum = module.scope.get(parent.type_name.name)
        if enum is not None and isinstance(enum.decl, ast.EnumDecl) and node is parent.member:
            return _member_span(enum, node.name)
    if isinstance(node, ast.Ident) and isinstance(parent, ast.EnumDecl) and node in parent.members:
        return node.span
    if isinstance(node, ast.Ident) and isinstance(parent, ast.MatchArm) and len(path) > 2:
        match = path[-3]
        assert isinstance(match, ast.Match)
        enum = _enum_of(module, match.subject)
        return _member_span(enum, node.name) if enum is not None else None
    if isinstance(node, ast.Ident) and isinstance(parent, ast.Import) and node in parent.path:
        target = imported_module(module, parent)
        if target is not None:
            return Span(str(target.path), 1, 1, 1, 1)
    if isinstance(node, ast.Name) and node.name in module.aliases:  # `billing` in `billing.x`
        return Span(str(module.aliases[node.name].path), 1, 1, 1, 1)
    sym = resolve(module, path)
    if sym is None:
        return None
    return sym.decl.name.span


def _enum_of(module: ModuleInfo, subject: ast.Expr) -> Symbol | None:
    """The enum declaration of a `match` subject's type, if it is an enum."""
    ty = subject.ty
    if not isinstance(ty, Type) or ty.unwrap().kind != "enum":
        return None
    qualified = ty.unwrap().name
    for scope in (module.scope, *(m.scope for m in module.aliases.values())):
        for sym in scope.values():
            if sym.name == qualified:
                return sym
    return None


def _member_span(enum: Symbol, member: str) -> Span | None:
    assert isinstance(enum.decl, ast.EnumDecl)
    for ident in enum.decl.members:
        if ident.name == member:
            return ident.span
    return None
