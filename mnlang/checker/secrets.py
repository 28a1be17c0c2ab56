"""Where a `secret` may not go (E130-E132).

A secret's value is revealed only to a tool's or an effect's code, at call time. The
type rules keep it out of text and `json` (a secret is not a `str`); this pass keeps it
out of the places a value leaves the run by design: an effect's `key` (journaled and sent
to the receiving system, E130), an agent (its inputs are sent to a model, and a model must
not pick which secret a tool reveals, E131), and a declared result, record field, event
payload or `publish`ed value (shown by `mnc show`, read from outside, E132; the flow
checker reports the last through `published_secret`).
"""

from __future__ import annotations

from mnlang.checker import types as T
from mnlang.checker.declarations import Declarations, FieldInfo, Signature
from mnlang.checker.program import Program
from mnlang.diagnostics import Diagnostics
from mnlang.syntax import ast

_SECRET_HELP = (
    "a secret reaches only the code of a tool or an effect; pass it as an argument to one"
)


def check_secrets(program: Program, decls: Declarations, diags: Diagnostics) -> None:
    for module in program.modules.values():
        for decl in module.tree.decls:
            sym = module.scope.get(decl.name.name)
            if sym is None or sym.decl is not decl:
                continue
            if isinstance(decl, ast.TypeDecl):
                _record_fields(decl, decls.records.get(sym.name, {}), diags)
            elif isinstance(decl, ast.EventDecl):
                payload = decls.events.get(sym.name)
                if decl.payload is not None and payload is not None:
                    _published(decl.payload, payload, f"event `{decl.name.name}`'s payload", diags)
            elif isinstance(decl, ast.CallableDecl | ast.WorkflowDecl):
                sig = decls.signatures[sym.name]
                what = f"{_kind(decl)} `{decl.name.name}`'s result"
                _published(decl.returns, sig.returns, what, diags)
                if isinstance(decl, ast.CallableDecl) and decl.kind == "agent":
                    _agent(decl, sig, decls, diags)
                if isinstance(decl, ast.CallableDecl):
                    _key(decl, diags)


def _kind(decl: ast.CallableDecl | ast.WorkflowDecl) -> str:
    return decl.kind if isinstance(decl, ast.CallableDecl) else "workflow"


def _record_fields(decl: ast.TypeDecl, fields: dict[str, FieldInfo], diags: Diagnostics) -> None:
    for f in decl.fields:
        info = fields.get(f.name.name)
        if info is not None and info.decl is f:
            _published(f.type, info.type, f"field `{f.name.name}` of `{decl.name.name}`", diags)


def _published(ref: ast.TypeRef, t: T.Type, what: str, diags: Diagnostics) -> None:
    if T.holds_secret(t):
        published_secret(diags, ref, what)


def published_secret(diags: Diagnostics, at: ast.Node, what: str) -> None:
    """E132 at `at`: `what` (a result, a field, a payload, a `publish`ed value) would
    show a secret to whoever reads it."""
    diags.add(
        "E132",
        at,
        f"{what} cannot hold a `secret`",
        notes=[
            "results, record fields, event payloads and published values are journaled, "
            "shown and sent on"
        ],
        help=_SECRET_HELP,
    )


def _agent(decl: ast.CallableDecl, own: Signature, decls: Declarations, diags: Diagnostics) -> None:
    for p in decl.params:
        info = next((i for i in own.params if i.decl is p), None)
        if info is not None and T.holds_secret(info.type):
            diags.add(
                "E131",
                p.type,
                f"agent `{decl.name.name}` cannot take a `secret`: its inputs are sent to a model",
                help=_SECRET_HELP,
            )
    tools = decl.options.get("tools")
    if tools is None or not isinstance(tools.value, ast.ListLit):
        return
    for item in tools.value.items:
        named = item.callee if isinstance(item, ast.Call) else item
        sym = named.ref if isinstance(named, ast.Name) else None
        sig = decls.signatures.get(sym.name) if sym is not None else None
        # A parameter the workflow binds is not the model's to choose.
        bound = _bound_names(item)
        chosen = [p for p in sig.params if p.name not in bound] if sig is not None else []
        if sig is not None and any(T.holds_secret(p.type) for p in chosen):
            diags.add(
                "E131",
                item,
                f"agent `{decl.name.name}` cannot call `{sig.symbol.decl.name.name}`, "
                "which takes a `secret`: the model would choose which secret it reveals",
                help="call the tool from the workflow, or give it the secret some other way",
            )


def _bound_names(item: ast.Expr) -> set[str]:
    if isinstance(item, ast.Call) and len(item.args) == 1:
        bound = item.args[0]
        if isinstance(bound, ast.ObjectLit):
            return {entry.key.name for entry in bound.entries}
    return set()


def _key(decl: ast.CallableDecl, diags: Diagnostics) -> None:
    key = decl.options.get("key")
    if key is None or not isinstance(key.value, ast.StrLit):
        return
    for part in key.value.parts:
        if isinstance(part, ast.Expr) and part.ty is not None and T.holds_secret(part.ty):
            diags.add(
                "E130",
                part,
                f"effect `{decl.name.name}`'s key reads a `secret`",
                notes=[
                    "a key is journaled, shown and sent to the receiving system; a secret's "
                    "value may change (rotation) while the call stays the same"
                ],
                help="build the key from the other arguments, e.g. an order or request id",
            )
