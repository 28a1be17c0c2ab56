"""Hover text: the type of a name or expression, a declaration as written, and what the
checker resolved for it (a call's retry policy, an effect's key and scope)."""

from __future__ import annotations

from typing import Any

from mnlang.checker.impls import impl_docstring
from mnlang.checker.options import ERROR_KINDS, UNCATCHABLE_KINDS, UNLIMITED, RetryPolicy
from mnlang.checker.program import ModuleInfo, Program, Symbol
from mnlang.checker.types import PRIMITIVES, Type
from mnlang.lsp.analysis import resolve, walk
from mnlang.syntax import ast

_MAX_LINES = 25  # of a declaration shown in a hover
_LOCAL_KINDS = {"var": "variable", "param": "parameter", "loop": "loop variable"}


def hover_markdown(program: Program, module: ModuleInfo, path: list[ast.Node]) -> str | None:
    """What to show for the innermost node of `path`, or None."""
    node = path[-1]
    parent = path[-2] if len(path) > 1 else None
    if not (isinstance(node, ast.Name) and node.ref in _LOCAL_KINDS):
        sym = resolve(module, path)
        if sym is not None:
            return describe(program, sym)
    if isinstance(node, ast.Name) and node.ty is not None:
        kind = _LOCAL_KINDS.get(node.ref, "value") if isinstance(node.ref, str) else "value"
        return _typed(f"{kind} {node.name}", node.ty)
    if isinstance(node, ast.Ident):
        return _ident(node, parent, path)
    if isinstance(node, ast.TypeRef) and node.name in (*PRIMITIVES, "list", "map"):
        return f"builtin type `{node.name}`"
    if isinstance(node, ast.Expr) and node.ty is not None:
        text = module.tree.source[node.span.start : node.span.end]
        return _typed(text if len(text) <= 60 and "\n" not in text else "expression", node.ty)
    return None


def _typed(what: str, ty: Type) -> str:
    return f"```mn\n{what}: {ty}\n```"


def _ident(node: ast.Ident, parent: ast.Node | None, path: list[ast.Node]) -> str | None:
    if isinstance(parent, ast.Field) and parent.ty is not None:
        return _typed(f"field {node.name}", parent.ty)
    if isinstance(parent, ast.Param | ast.FieldDecl) and parent.name is node:
        kind = "parameter" if isinstance(parent, ast.Param) else "field"
        shown = f"```mn\n{kind} {node.name}: {_type_text(parent.type)}\n```"
        described = parent.description if isinstance(parent, ast.Param) else None
        if described is not None and described.constant:
            shown += f"\n\n{described.constant}"
        return shown
    if isinstance(parent, ast.Catch):
        if node is parent.var:
            return "```mn\nerror: { kind: str, message: str, step: str }\n```"
        return _error_kind(node.name)
    if isinstance(parent, ast.SelectArm) and node is parent.var:
        # The arm's variable: typed where the checker typed its uses in the arm's body.
        uses = (n for n in walk(parent.body) if isinstance(n, ast.Name) and n.name == node.name)
        ty = next((n.ty for n in uses if n.ty is not None), None)
        return _typed(f"variable {node.name}", ty) if ty is not None else None
    assigned = isinstance(parent, ast.Assign) and parent.target is node
    if assigned or (isinstance(parent, ast.For) and parent.var is node):
        ty = _local_type(node.name, path)
        return _typed(f"variable {node.name}", ty) if ty is not None else None
    if isinstance(parent, ast.Entry | ast.OptionStmt) and parent.key is node and node.name == "on":
        return "error kinds to retry: " + ", ".join(f"`{k}`" for k in ERROR_KINDS)
    return None


def _error_kind(name: str) -> str:
    if name == "any":
        return "`any`: every catchable error kind"
    if name in UNCATCHABLE_KINDS:
        return f"`{name}`: enforced by the runtime, never caught"
    return f"error kind `{name}`"


def _local_type(name: str, path: list[ast.Node]) -> Type | None:
    """The type of a local, read from a use of it in its workflow."""
    workflow = next((n for n in reversed(path) if isinstance(n, ast.WorkflowDecl)), None)
    if workflow is None:
        return None
    for node in walk(workflow.body):
        if isinstance(node, ast.Name) and node.name == name and node.ty is not None:
            ty: Type = node.ty
            return ty
    return None


def _type_text(t: ast.TypeRef) -> str:
    args = f"[{', '.join(_type_text(a) for a in t.args)}]" if t.args else ""
    return t.name + args + ("?" if t.optional else "")


def describe(program: Program, sym: Symbol) -> str:
    """A declaration as written (up to a few lines) and what the checker resolved for it."""
    decl = sym.decl
    text = sym.module.tree.source[decl.span.start : decl.span.end]
    lines = text.split("\n")
    if len(lines) > _MAX_LINES:
        lines = [*lines[:_MAX_LINES], "  ..."]
    parts = ["```mn\n" + "\n".join(lines) + "\n```"]
    options = program.options.get(sym.name, {})
    if sym.kind in ("tool", "effect", "agent"):
        parts.append(_description(sym, options))
        parts.append(_retry_text(options.get("retry")))
    if sym.kind == "effect":
        parts.append(_effect_text(sym.module.tree.source, decl, options))
    if sym.kind == "policy":
        parts.append(_retry_text(options.get("retry")))
    if sym.module.dotted:
        parts.append(f"declared in `{sym.module.dotted}`")
    return "\n\n".join(p for p in parts if p)


def _description(sym: Symbol, options: dict[str, Any]) -> str:
    """What the model is told the declaration does: `description:`, else the impl's docstring."""
    given = options.get("description")
    if isinstance(given, str):
        return given
    impl = options.get("impl")
    if not isinstance(impl, str):
        return ""
    return impl_docstring(sym.module.path.parent, impl) or ""


def _retry_text(policy: RetryPolicy | None) -> str:
    if policy is None:
        return ""
    if not policy.more:
        return f"**retry**: {_retry_entry_text(policy)}"
    entries = "\n".join(f"- {_retry_entry_text(entry)}" for entry in policy.entries)
    return f"**retry**, by the first entry whose kinds match, each counting its own:\n{entries}"


def _retry_entry_text(policy: RetryPolicy) -> str:
    if policy.attempts == 1:
        return "one attempt, no retry"
    delay = ""
    if policy.backoff_ms:
        delay = f", first delay {_duration(policy.backoff_ms)}, times {policy.factor:g} after each"
        if policy.max_delay_ms is not None:
            delay += f" (at most {_duration(policy.max_delay_ms)})"
    jitter = ", with jitter" if policy.jitter else ""
    kinds = ", ".join(f"`{k}`" for k in policy.on)
    within = ""
    if policy.max_elapsed_ms is not None:
        within = f", within {_duration(policy.max_elapsed_ms)} of the first"
    elif policy.attempts == UNLIMITED:
        within = ", until the run's deadline"
    return f"{policy.attempts} attempts{delay}{jitter}{within}, on {kinds}"


def _effect_text(source: str, decl: ast.Decl, options: dict[str, Any]) -> str:
    lines = []
    key = options.get("key")
    if isinstance(key, ast.StrLit) and isinstance(decl, ast.CallableDecl):
        entry = decl.options.get("key")
        shown = entry.value.span if entry is not None else key.span
        written = source[shown.start : shown.end]
        scope = "across all runs" if options.get("scope") == "global" else "within a run"
        lines.append(f"**key**: `{written}`, unique {scope}")
    elif options.get("once"):
        lines.append("**once**: called at most once, never retried")
    if options.get("requires") == "approval":
        lines.append("**requires** an approving checkpoint on every path to it")
    return "\n\n".join(lines)


def _duration(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"
