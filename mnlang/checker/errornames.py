"""Declared error names (`error PaymentDeclined`) where `catch`, `retry.on` and `fail` use them.

A declared name is a failure kind of its own: its runtime kind is the declaration's
qualified name (`PaymentDeclined` in the root module, `payments.Declined` imported), it
is catchable and retryable, and it is written capitalised, so it never collides with a
built-in kind (`timeout`, `transient`, ...), which are lower case.
"""

from __future__ import annotations

from mnlang.checker.program import ModuleInfo, Symbol
from mnlang.checker.suggest import suggest
from mnlang.diagnostics import Diagnostics, Label
from mnlang.syntax import ast


def is_error_name(name: str) -> bool:
    """Whether `name` is written as a declared error name (capitalised), not a built-in kind."""
    return name[:1].isupper()


def error_names(module: ModuleInfo) -> list[str]:
    return [n for n, s in module.scope.items() if s.kind == "error"]


def error_symbol(module: ModuleInfo, name: str) -> Symbol | None:
    sym = module.scope.get(name)
    return sym if sym is not None and sym.kind == "error" else None


def resolve_error_name(
    module: ModuleInfo, node: ast.Node, name: str, diags: Diagnostics
) -> str | None:
    """The qualified name of the error `name` declares, or None after E320."""
    sym = module.scope.get(name)
    if sym is not None and sym.kind == "error":
        return sym.name
    if sym is None:
        hint = suggest(node.span, name, error_names(module))
        diags.add(
            "E320",
            node,
            f"`{name}` is not a declared error name",
            help=hint.help or f"declare it: `error {name}`",
            fix=hint.fix,
        )
    else:
        diags.add(
            "E320",
            node,
            f"`{name}` is a {sym.kind}, not an error name",
            labels=[Label(sym.decl.name.span, "declared here")],
            help=f"declare an error with its own name: `error {name}Failed`",
        )
    return None
