"""Document symbols: the outline of a module (declarations, their fields, members and
options, a workflow's checkpoints)."""

from __future__ import annotations

from lsprotocol import types
from pygls.workspace import PositionCodec

from mnlang.lsp.analysis import walk
from mnlang.lsp.positions import SourceLines, to_range
from mnlang.syntax import ast

K = types.SymbolKind
_KINDS: dict[type, K] = {
    ast.TypeDecl: K.Struct,
    ast.EnumDecl: K.Enum,
    ast.EventDecl: K.Event,
    ast.PolicyDecl: K.Object,
    ast.ScheduleDecl: K.Object,
    ast.ScenarioDecl: K.Object,
    ast.WorkflowDecl: K.Function,
}


def document_symbols(
    module: ast.Module, lines: SourceLines, codec: PositionCodec
) -> list[types.DocumentSymbol]:
    def symbol(
        name: str,
        detail: str,
        kind: K,
        whole: ast.Node,
        named: ast.Node,
        inner: list[types.DocumentSymbol] | None = None,
    ) -> types.DocumentSymbol:
        return types.DocumentSymbol(
            name=name,
            detail=detail,
            kind=kind,
            range=to_range(whole.span, lines, codec),
            selection_range=to_range(named.span, lines, codec),
            children=inner or None,
        )

    out = [symbol(imp.dotted, "import", K.Module, imp, imp.path[-1]) for imp in module.imports]
    for decl in module.decls:
        inner: list[types.DocumentSymbol] = []
        if isinstance(decl, ast.TypeDecl):
            inner = [symbol(f.name.name, "", K.Field, f, f.name) for f in decl.fields]
        elif isinstance(decl, ast.EnumDecl):
            inner = [symbol(m.name, "", K.EnumMember, m, m) for m in decl.members]
        elif isinstance(decl, ast.WorkflowDecl):
            inner = [
                symbol(n.name.name, "checkpoint", K.Event, n, n.name)
                for n in walk(decl.body)
                if isinstance(n, ast.Checkpoint)
            ]
        if isinstance(decl, ast.CallableDecl):
            kind, detail = K.Function, decl.kind
        else:
            kind = _KINDS.get(type(decl), K.Object)
            detail = type(decl).__name__.removesuffix("Decl").lower()
        out.append(symbol(decl.name.name, detail, kind, decl, decl.name, inner))
    return out
