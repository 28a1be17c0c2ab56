"""The names-and-types pass: resolve every declaration, type every expression, check flow.

It annotates the AST in place for the compiler: `Expr.ty`, `Name.ref` and
`Call.target`. Declarations are resolved first (`declarations.py`), then each
module's expressions outside bodies (field and parameter defaults, prompt and
key templates, `compensate` and schedule `run` calls) and each workflow body
(`flow.py`). Unused imports (W104) are reported last, once every use is known.
"""

from __future__ import annotations

from mnlang.checker import types as T
from mnlang.checker.declarations import Declarations, Resolver, Signature, build_declarations
from mnlang.checker.expressions import ExprChecker
from mnlang.checker.fixes import removal
from mnlang.checker.flow import BodyChecker
from mnlang.checker.program import ModuleInfo, Program
from mnlang.checker.secrets import check_secrets
from mnlang.diagnostics import Diagnostics, Fix, Label
from mnlang.syntax import ast


def check_types(program: Program, diags: Diagnostics) -> None:
    """Resolve and type the whole program, reporting E1xx, E2xx and W10x diagnostics."""
    resolver = Resolver(program, diags)
    decls = build_declarations(program, resolver, diags)
    for module in program.modules.values():
        _check_module(module, decls, resolver, diags)
    check_secrets(program, decls, diags)
    for module in program.modules.values():
        for ident in resolver.unused_imports(module):
            diags.add(
                "W104",
                ident,
                f"`{ident.name}` is imported but never used",
                help="remove it from the import",
                fix=_unused_import_fix(module, ident),
            )


def _unused_import_fix(module: ModuleInfo, ident: ast.Ident) -> Fix | None:
    """Remove the name from its import, or the whole import when it is the only name."""
    for imp in module.tree.imports:
        if any(name is ident for name in imp.names):
            whole = len(imp.names) == 1
            title = f"Remove the import of `{ident.name}`"
            return removal(module.tree.source, imp if whole else ident, title)
    return None


def _check_module(
    module: ModuleInfo, decls: Declarations, resolver: Resolver, diags: Diagnostics
) -> None:
    for decl in module.tree.decls:
        sym = module.scope.get(decl.name.name)
        if sym is None or sym.decl is not decl:
            continue  # a duplicate declaration, already reported by the loader
        if isinstance(decl, ast.TypeDecl):
            _field_defaults(module, decl, decls, resolver, diags)
        elif isinstance(decl, ast.CallableDecl):
            sig = decls.signatures[sym.name]
            _param_defaults(module, sig, decls, resolver, diags)
            _callable_options(module, decl, sig, decls, resolver, diags)
        elif isinstance(decl, ast.WorkflowDecl):
            sig = decls.signatures[sym.name]
            _param_defaults(module, sig, decls, resolver, diags)
            _workflow_deadline(module, decl, sig, decls, resolver, diags)
            BodyChecker(decls, resolver, module, diags, decl, sig).check()
        elif isinstance(decl, ast.ScheduleDecl):
            run = decl.options.get("run")
            if run is not None and isinstance(run.value, ast.Call):
                _option_call(ExprChecker(decls, resolver, module, diags), run.value, "workflow")
        elif isinstance(decl, ast.ScenarioDecl):
            _mark_used(decl.options, module, resolver)
            _mark_keys_used(decl.options, module, resolver)


def _field_defaults(
    module: ModuleInfo,
    decl: ast.TypeDecl,
    decls: Declarations,
    resolver: Resolver,
    diags: Diagnostics,
) -> None:
    fields = decls.records.get(module.qualify(decl.name.name), {})
    checker = ExprChecker(decls, resolver, module, diags)
    for f in decl.fields:
        info = fields.get(f.name.name)
        if f.default is not None and info is not None and info.decl is f:
            checker.expect(f.default, info.type, f" as the default of `{f.name.name}`")


def _param_defaults(
    module: ModuleInfo, sig: Signature, decls: Declarations, resolver: Resolver, diags: Diagnostics
) -> None:
    checker = ExprChecker(decls, resolver, module, diags)
    for p in sig.params:
        if p.decl.default is not None:
            checker.expect(p.decl.default, p.type, f" as the default of `{p.name}`")
        described = p.decl.description
        if described is not None and described.constant is None:
            diags.add(
                "E252",
                described,
                f"the description of `{p.name}` is plain text, without `{{...}}`",
                help="write the text out; it is told to the model as it is written",
            )


def _callable_options(
    module: ModuleInfo,
    decl: ast.CallableDecl,
    sig: Signature,
    decls: Declarations,
    resolver: Resolver,
    diags: Diagnostics,
) -> None:
    """Type the expressions inside a tool's, effect's or agent's options against its parameters.

    Option shapes and unknown policy or tool names are the options pass's (E208-E212);
    names in a `key` other than parameters are the durability pass's (E303).
    """
    params = {p.name: p.type for p in sig.params}
    checker = ExprChecker(decls, resolver, module, diags, params)
    for entry in decl.options.entries:
        key, value = entry.key.name, entry.value
        if key in ("prompt", "system") and isinstance(value, ast.StrLit):
            checker.expr(value)
        elif key == "key" and isinstance(value, ast.StrLit):
            checker.quiet_unknown = True
            checker.expr(value)
            checker.quiet_unknown = False
        elif key == "timeout" and decl.kind in ("tool", "effect") and _computed(value):
            _expect_duration(checker, value, diags, "timeout")
        elif key == "compensate" and isinstance(value, ast.Call):
            _option_call(checker, value, "effect")
        elif key == "reconcile" and isinstance(value, ast.Call):
            _option_call(checker, value, "tool")
            _reconcile_returns(decls, resolver, module, sig, value, diags)
        elif key == "tools" and isinstance(value, ast.ListLit):
            _mark_used(value, module, resolver)
            _bound_arguments(checker, value)
        elif key in ("retry", "tools"):
            _mark_used(value, module, resolver)
        elif key == "conversation" and isinstance(value, ast.Name):
            _conversation(value, params, diags)
    settle = decl.options.get("settle")
    if settle is not None and decl.options.get("reconcile") is None:
        diags.add(
            "E324",
            settle.key,
            "`settle` without `reconcile`: there is no question to wait for",
            help="add `reconcile: lookup(...)`, a tool that tells whether the action happened",
        )


def _bound_arguments(checker: ExprChecker, tools: ast.ListLit) -> None:
    """Type each value a `tools:` entry binds (`book_hotel({ passenger: pid })`) against
    the tool's parameter; it reads the agent's parameters. Shapes are the options pass's."""
    for item in tools.items:
        if not isinstance(item, ast.Call) or len(item.args) != 1:
            continue
        bound = item.args[0]
        sym = checker.resolver.qualified(checker.module, item.callee)
        if (
            sym is None
            or sym.kind not in ("tool", "effect")
            or not isinstance(bound, ast.ObjectLit)
        ):
            continue
        params = {p.name: p.type for p in checker.decls.signatures[sym.name].params}
        for entry in bound.entries:
            wanted = params.get(entry.key.name)
            if wanted is not None:
                checker.expect(
                    entry.value, wanted, f" as `{entry.key.name}` of `{sym.decl.name.name}`"
                )


def _reconcile_returns(
    decls: Declarations,
    resolver: Resolver,
    module: ModuleInfo,
    sig: Signature,
    call: ast.Call,
    diags: Diagnostics,
) -> None:
    """A `reconcile` tool answers with the effect's result or null: it returns `R?`."""
    sym = resolver.qualified(module, call.callee)
    if sym is None or sym.kind != "tool":
        return
    returns = decls.signatures[sym.name].returns
    wanted = T.optional(sig.returns)
    if returns != wanted:
        diags.add(
            "E323",
            call,
            f"`{sym.decl.name.name}` returns `{returns}`; a `reconcile` tool returns "
            f"`{wanted}`: the effect's result when the action happened, null when it did not",
            labels=[Label(sym.decl.name.span, "declared here")],
            help=f"declare `tool {sym.decl.name.name}(...) -> {wanted}`; "
            "let it fail when it cannot tell (unknown)",
        )


def _workflow_deadline(
    module: ModuleInfo,
    decl: ast.WorkflowDecl,
    sig: Signature,
    decls: Declarations,
    resolver: Resolver,
    diags: Diagnostics,
) -> None:
    """Type a `deadline:` written as an expression against the workflow's parameters."""
    for option in decl.options:
        if option.key.name == "deadline" and _computed(option.value):
            params = {p.name: p.type for p in sig.params}
            checker = ExprChecker(decls, resolver, module, diags, params)
            _expect_duration(checker, option.value, diags, "deadline")


def _expect_duration(checker: ExprChecker, value: ast.Expr, diags: Diagnostics, what: str) -> None:
    found = checker.expr(value, T.DURATION)
    if found.kind == "optional":
        checker.optional_use(value, found)
    elif found.kind not in ("duration", "unknown"):
        diags.add(
            "E212",
            value,
            f"`{what}` takes a duration{' or `never`' if what == 'timeout' else ''}, "
            f"found `{found}`",
            help=f"write e.g. `{what}: 30s`, or a `duration` expression over the parameters: "
            f"`{what}: sla * 2`",
        )


TURNS = T.list_of(T.record("std.chat.Turn"))
"""The type of an agent's `conversation:` parameter."""


def _conversation(value: ast.Name, params: dict[str, T.Type], diags: Diagnostics) -> None:
    found = params.get(value.name)
    if found is None or found.kind == "unknown" or found == TURNS:
        if found is None:
            diags.add(
                "E261",
                value,
                f"`conversation` names `{value.name}`, which is not a parameter",
                help="name a `list[Turn]` parameter (`import std.chat { Turn }`)",
            )
        return
    diags.add(
        "E261",
        value,
        f"`conversation` takes a `list[Turn]` parameter; `{value.name}` is a `{found}`",
        help="declare it `list[Turn]` with `import std.chat { Turn }`: each turn is sent "
        "as a message with its role",
    )


def _computed(value: ast.Expr) -> bool:
    """A `timeout:` that is an expression, not a literal duration or `never`."""
    never = isinstance(value, ast.Name) and value.name == "never"
    return not (never or isinstance(value, ast.DurationLit | ast.ObjectLit))


def _option_call(checker: ExprChecker, call: ast.Call, kind: str) -> None:
    """Type a step call written as an option value (`compensate:`, `run:`).

    Only when it names a declaration of the right kind: otherwise the options pass reports it.
    """
    sym = checker.resolver.qualified(checker.module, call.callee)
    if sym is None or sym.kind != kind:
        return
    checker.step_or_expr(call)


def _mark_keys_used(block: ast.ObjectLit, module: ModuleInfo, resolver: Resolver) -> None:
    """A scenario names tools, agents and events as keys (`tools: { fetch: [...] }`)."""
    for entry in block.entries:
        if isinstance(entry.value, ast.ObjectLit):
            for inner in entry.value.entries:
                resolver.symbol(module, inner.key.name)


def _mark_used(node: ast.Node, module: ModuleInfo, resolver: Resolver) -> None:
    """Record the declarations an option value names (for W104), without typing it."""
    if isinstance(node, ast.Name):
        sym = resolver.symbol(module, node.name)
        if sym is not None:
            node.ref = sym
    elif isinstance(node, ast.Field):
        sym = resolver.qualified(module, node)
        if sym is None:
            _mark_used(node.obj, module, resolver)
    elif isinstance(node, ast.RecordLit | ast.EnumMember):
        resolver.symbol(module, node.type_name.name)
        for entry in node.entries if isinstance(node, ast.RecordLit) else ():
            _mark_used(entry.value, module, resolver)
    elif isinstance(node, ast.ObjectLit):
        for entry in node.entries:
            _mark_used(entry.value, module, resolver)
    elif isinstance(node, ast.ListLit):
        for item in node.items:
            _mark_used(item, module, resolver)
    elif isinstance(node, ast.Call):
        _mark_used(node.callee, module, resolver)
        for arg in node.args:
            _mark_used(arg, module, resolver)
    elif isinstance(node, ast.StrLit):
        for part in node.parts:
            if isinstance(part, ast.Expr):
                _mark_used(part, module, resolver)
    elif isinstance(node, ast.Binary):
        _mark_used(node.left, module, resolver)
        _mark_used(node.right, module, resolver)
    elif isinstance(node, ast.Unary | ast.Paren):
        _mark_used(node.operand if isinstance(node, ast.Unary) else node.inner, module, resolver)
    elif isinstance(node, ast.Index):
        _mark_used(node.obj, module, resolver)
        _mark_used(node.index, module, resolver)
