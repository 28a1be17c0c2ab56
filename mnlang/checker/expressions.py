"""Typing expressions: names, fields, calls, operators, literals and narrowing facts.

`ExprChecker` gives every expression its `ty` (and names their `ref`, calls
their `target`) and reports what does not type. It knows no statements: the
flow checker (`flow.py`) subclasses it and supplies local variables,
definite assignment and narrowing through the `local`, `is_local`, `is_bound` and
`narrowed` hooks. An expression that cannot be typed gets `unknown`, which
fits everywhere, so one mistake is reported once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from mnlang.checker import types as T
from mnlang.checker.builtins import BUILTINS, CALLBACK_TOKEN, Builtin, Misuse
from mnlang.checker.declarations import Declarations, Resolver
from mnlang.checker.hoist import hoist_fix
from mnlang.checker.program import ModuleInfo, Symbol
from mnlang.checker.suggest import NO_SUGGESTION, suggest
from mnlang.checker.typerules import (
    NUMBERS,
    ORDERED,
    arithmetic,
    assignable,
    expr_path,
    join,
    money_mix,
    passes_to_code,
)
from mnlang.diagnostics import Diagnostics, Label
from mnlang.syntax import ast

_COMPARISONS = ("<", ">", "<=", ">=")
_VERBS = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide", "%": "take the remainder of"}
_DECISION_FIELDS = ("choice", "approved", "by", "comment", "at")
_ERROR_FIELDS = ("kind", "message", "step")
# What `fail Name { ... }` may set: the rest (kind, step) come from where it fails.
_ERROR_VALUE_FIELDS = {"message": T.STR, "cause": T.optional(T.ERROR)}
# `run.<field>`: the run itself, where no variable or declaration is called `run`.
RUN_FIELDS: dict[str, T.Type] = {
    "id": T.STR,
    "workflow": T.STR,
    "parent": T.optional(T.STR),
    "started_at": T.TIMESTAMP,
    "scheduled_at": T.optional(T.TIMESTAMP),
}

# Narrowing facts: expression paths (`x`, `x.note`) and the type they have when a condition holds.
Facts = dict[str, T.Type]


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


class ExprChecker:
    """Types expressions of one module; `params` are the names in scope of a declaration."""

    def __init__(
        self,
        decls: Declarations,
        resolver: Resolver,
        module: ModuleInfo,
        diags: Diagnostics,
        params: dict[str, T.Type] | None = None,
    ) -> None:
        self.decls = decls
        self.resolver = resolver
        self.module = module
        self.diags = diags
        self.params = params or {}
        self.facts: list[Facts] = []  # narrowing from the left side of `and` / `or`
        self.step_site: ast.Call | None = None  # the one call allowed to be a step
        # The statement being checked, where E213's fix may put a step before it.
        self.statement: ast.Stmt | None = None
        self.choices: dict[str, tuple[str, ...]] = {}  # checkpoint choice enums by name
        self.checkpoints: dict[str, tuple[str, ...]] = {}  # checkpoint options by name
        self.quiet_unknown = False  # key templates: names other than parameters are E303's
        self.to_code = False  # typing a tool's or effect's argument: a secret may stand for text
        self.references_ok = False  # a scenario's `run:`: `"env:NAME"` may stand for a secret

    # ---- hooks for the flow checker -------------------------------------------

    def local(self, node: ast.Name) -> T.Type | None:
        """The type of a local name (and mark it read), or None when it is not local."""
        t = self.params.get(node.name)
        if t is None:
            return None
        node.ref = "param"
        narrowed = self.narrowed(node.name)
        return narrowed if narrowed is not None else t

    def is_local(self, name: str) -> bool:
        """Whether `name` is a local anywhere in the body (assigned or not)."""
        return name in self.params

    def is_bound(self, name: str) -> bool:
        """Whether `name` is a local holding a value here, hiding a declaration of that name."""
        return name in self.params

    def local_names(self) -> Iterable[str]:
        return self.params

    def name_taken(self, name: str) -> bool:
        """Whether a new variable `name` would clash with a local, declaration or builtin."""
        return self.is_local(name) or name in self.module.scope or name in BUILTINS

    def narrowed(self, path: str) -> T.Type | None:
        for facts in reversed(self.facts):
            t = facts.get(path)
            if t is not None:
                return t
        return None

    # ---- entry points -----------------------------------------------------------

    def expr(self, e: ast.Expr, expected: T.Type | None = None) -> T.Type:
        """Type `e` (with `expected` guiding literals such as `[]` and `{...}`)."""
        t = _DISPATCH[type(e)](self, e, expected)
        e.ty = t
        return t

    def step_or_expr(self, e: ast.Expr) -> T.Type:
        """Type `e` where a step call may stand: the value of an assignment or a statement."""
        self.step_site = e if isinstance(e, ast.Call) else None
        try:
            return self.expr(e)
        finally:
            self.step_site = None

    def expect(self, e: ast.Expr, dst: T.Type, where: str = "") -> T.Type:
        """Type `e` and report when it does not fit `dst`."""
        t = self.expr(e, dst)
        if not assignable(t, dst):
            self.mismatch(e, t, dst, where)
        return t

    def condition(self, e: ast.Expr, what: str = "condition") -> None:
        t = self.expr(e, T.BOOL)
        if t.kind in ("bool", "unknown"):
            return
        if t.kind == "optional" and t.args[0].kind == "bool":
            self.optional_use(e, t)
            return
        hint = "compare it, e.g. `n > 0` or `x != null`"
        self.diags.add("E203", e, f"{what} must be `bool`, found `{t}`", help=hint)

    # ---- reporting --------------------------------------------------------------

    def show(self, node: ast.Node) -> str:
        """The source text of a short node, for messages (`order.total`), else `this value`."""
        span = node.span
        text = self.module.tree.source[span.start : span.end]
        if 0 < len(text) <= 40 and "\n" not in text:
            return f"`{text}`"
        return "this value"

    def mismatch(
        self,
        node: ast.Node,
        src: T.Type,
        dst: T.Type,
        where: str = "",
        labels: list[Label] | None = None,
        help: str | None = None,
    ) -> None:
        if src.kind == "optional" and assignable(src.args[0], dst):
            self.optional_use(node, src)
        elif money_mix(src, dst):
            self.diags.add(
                "E209",
                node,
                f"expected `{dst}`, found `{src}`{where}",
                help="money never mixes with numbers; write an amount such as `$1.50`"
                if dst.kind == "money"
                else "money stays money; convert explicitly if you must",
                labels=labels,
            )
        else:
            self.diags.add(
                "E201",
                node,
                f"expected `{dst}`, found `{src}`{where}",
                help=help or self._mismatch_help(src, dst),
                labels=labels,
            )

    @staticmethod
    def _mismatch_help(src: T.Type, dst: T.Type) -> str:
        if dst.kind == "str":
            return 'convert it with `to_str(...)`, or interpolate it: `"{...}"`'
        if src.kind == "str" and dst.kind in NUMBERS:
            return f"convert it with `parse_{dst.kind}(...)`"
        if src.kind == "float" and dst.kind == "int":
            return "convert it with `round(...)`"
        if src.kind == "null":
            return f"make the type optional: `{dst}?`"
        return f"give a value of type `{dst}`"

    def optional_use(self, node: ast.Node, t: T.Type) -> None:
        shown = self.show(node)
        if t.kind == "null":
            self.diags.add(
                "E206", node, f"{shown} is always `null` here", help="give it a value first"
            )
            return
        ref = shown if shown != "this value" else "x"
        self.diags.add(
            "E206",
            node,
            f"{shown} may be `null` here (its type is `{t}`)",
            help=f'check it first: `if {ref.strip("`")} == null {{ fail "..." }}`, '
            f"or give a default: `{ref.strip('`')} ?? ...`",
        )

    def unknown_name(self, node: ast.Name) -> T.Type:
        if self.quiet_unknown:
            return T.UNKNOWN
        name = node.name
        values = [n for n, s in self.module.scope.items() if s.kind not in ("type", "enum")]
        suggestion = suggest(node.span, name, [*self.local_names(), *values, *BUILTINS])
        hint = suggestion.help
        if hint is None:
            for enum_name, members in self.decls.enums.items():
                if name in members:
                    short = enum_name.rsplit(".", 1)[-1]
                    hint = f"outside `match`, enum members are written `{short}.{name}`"
                    break
        self.diags.add(
            "E101",
            node,
            f"unknown name `{name}`",
            help=hint or f"assign `{name}` first, or declare it",
            fix=suggestion.fix,
        )
        return T.UNKNOWN

    def not_a_value(self, node: ast.Node, sym: Symbol) -> None:
        name = sym.decl.name.name
        if sym.kind in ("tool", "effect", "agent", "workflow"):
            hint = f"call it: `{name}(...)`"
        elif sym.kind == "event":
            hint = f"wait for it: `x = wait {name} {{ timeout: 1h }}`"
        elif sym.kind == "policy":
            hint = f"use it in an option block: `retry: {name}`"
        else:
            hint = "it cannot be used in an expression"
        self.diags.add("E201", node, f"`{name}` is {_article(sym.kind)}, not a value", help=hint)

    # ---- names and members ----------------------------------------------------------

    def is_run(self, e: ast.Expr) -> bool:
        """`run` naming the run itself: no local and no declaration has that name."""
        return (
            isinstance(e, ast.Name)
            and e.name == "run"
            and not self.is_bound("run")
            and self.resolver.symbol(self.module, "run") is None
        )

    def _name(self, e: ast.Name, expected: T.Type | None) -> T.Type:
        t = self.local(e)
        if t is not None:
            return t
        if self.quiet_unknown:
            return T.UNKNOWN
        if self.is_run(e):
            self.diags.add(
                "E232",
                e,
                "`run` is read by its fields, not as a whole",
                help="write one of " + ", ".join(f"`run.{n}`" for n in RUN_FIELDS),
            )
            return T.UNKNOWN
        sym = self.resolver.symbol(self.module, e.name)
        if sym is not None:
            e.ref = sym
            self.not_a_value(e, sym)
            return T.UNKNOWN
        if self.resolver.alias(self.module, e.name) is not None:
            self.diags.add(
                "E201",
                e,
                f"`{e.name}` is a module, not a value",
                help=f"name one of its declarations: `{e.name}.name`",
            )
            return T.UNKNOWN
        builtin = BUILTINS.get(e.name)
        if builtin is not None:
            self.diags.add(
                "E201",
                e,
                f"`{e.name}` is a builtin function, not a value",
                help=f"call it: `{builtin.signature}`",
            )
            return T.UNKNOWN
        return self.unknown_name(e)

    def _module_member(self, e: ast.Field, target: ModuleInfo) -> Symbol | None:
        name = e.name.name
        sym = target.scope.get(name)
        if sym is None or sym.module is not target:
            own = [n for n, s in target.scope.items() if s.module is target]
            hint = suggest(e.name.span, name, own)
            self.diags.add(
                "E101",
                e.name,
                f"module `{target.dotted}` has no declaration `{name}`",
                help=hint.help or "its declarations: " + ", ".join(f"`{n}`" for n in own),
                fix=hint.fix,
            )
            return None
        return sym

    def _field(self, e: ast.Field, expected: T.Type | None) -> T.Type:
        obj = e.obj
        if self.is_run(obj):
            assert isinstance(obj, ast.Name)
            obj.ref = "run"
            found = RUN_FIELDS.get(e.name.name)
            if found is None:
                hint = suggest(e.name.span, e.name.name, list(RUN_FIELDS))
                self.diags.add(
                    "E107",
                    e.name,
                    f"`run` has no field `{e.name.name}`",
                    help=hint.help or "its fields: " + ", ".join(f"`{n}`" for n in RUN_FIELDS),
                    fix=hint.fix,
                )
                return T.UNKNOWN
            return found
        if isinstance(obj, ast.Name) and not self.is_bound(obj.name):
            target = self.resolver.alias(self.module, obj.name)
            if target is not None:
                obj.ty = T.UNKNOWN
                sym = self._module_member(e, target)
                if sym is not None:
                    self.not_a_value(e, sym)
                return T.UNKNOWN
        ot = self.expr(obj)
        path = expr_path(e)
        if path is not None:
            narrowed = self.narrowed(path)
            if narrowed is not None:
                return narrowed
        return self.field_type(e, ot)

    def field_type(self, e: ast.Field, ot: T.Type) -> T.Type:
        name = e.name.name
        if ot.kind in ("optional", "null"):
            self.optional_use(e.obj, ot)
            if ot.kind == "null":
                return T.UNKNOWN
            ot = ot.args[0]
        kind = ot.kind
        if kind in ("unknown", "json"):
            return ot
        if kind == "record":
            fields = self.decls.records.get(ot.name, {})
            info = fields.get(name)
            if info is not None:
                return info.type
            return self._no_field(e, ot, fields)
        if kind == "decision":
            return self._decision_field(e, ot)
        if kind == "error":
            if name == "cause":
                return T.optional(T.ERROR)
            if name in _ERROR_FIELDS:
                return T.STR
            return self._no_field(e, ot, (*_ERROR_FIELDS, "cause"))
        hint = (
            f"use `len({self.show(e.obj).strip('`')})`"
            if kind in ("list", "map", "str")
            else f"values of type `{ot}` have no fields"
        )
        self.diags.add("E107", e.name, f"`{ot}` has no field `{name}`", help=hint)
        return T.UNKNOWN

    def _no_field(self, e: ast.Field, ot: T.Type, fields: Iterable[str]) -> T.Type:
        names = list(fields)
        hint = suggest(e.name.span, e.name.name, names)
        self.diags.add(
            "E107",
            e.name,
            f"`{ot}` has no field `{e.name.name}`",
            help=hint.help or "its fields: " + ", ".join(f"`{n}`" for n in names),
            fix=hint.fix,
        )
        return T.UNKNOWN

    def _decision_field(self, e: ast.Field, ot: T.Type) -> T.Type:
        name = e.name.name
        options = self.checkpoints.get(ot.name, ("approve", "reject"))
        if name == "choice":
            return T.enum(f"{ot.name}.choice")
        if name == "approved":
            if "approve" in options:
                return T.BOOL
            self.diags.add(
                "E107",
                e.name,
                f"checkpoint `{ot.name}` has no `approve` option, so its decision has no `approved`",
                help="match on `.choice` instead",
            )
            return T.UNKNOWN
        if name == "by":
            return T.STR
        if name == "comment":
            return T.optional(T.STR)
        if name == "at":
            return T.TIMESTAMP
        return self._no_field(e, ot, _DECISION_FIELDS)

    def enum_members(self, t: T.Type) -> tuple[str, ...] | None:
        if t.kind != "enum":
            return None
        return self.decls.enums.get(t.name) or self.choices.get(t.name)

    def _enum_member(self, e: ast.EnumMember, expected: T.Type | None) -> T.Type:
        type_name = e.type_name.name
        sym = self.resolver.symbol(self.module, type_name)
        if sym is None:
            hint = suggest(e.type_name.span, type_name, self.resolver.type_names(self.module))
            self.diags.add(
                "E103",
                e.type_name,
                f"unknown type `{type_name}`",
                help=hint.help or f"declare it: `enum {type_name} {{ ... }}`",
                fix=hint.fix,
            )
            return T.UNKNOWN
        if sym.kind != "enum":
            self.diags.add(
                "E201",
                e,
                f"`{type_name}` is {_article(sym.kind)}, not an enum",
                help="`Type.member` names a member of an enum",
            )
            return T.UNKNOWN
        members = self.decls.enums.get(sym.name, ())
        if e.member.name not in members:
            hint = suggest(e.member.span, e.member.name, members)
            self.diags.add(
                "E108",
                e.member,
                f"enum `{type_name}` has no member `{e.member.name}`",
                help=hint.help or "its members: " + ", ".join(f"`{m}`" for m in members),
                fix=hint.fix,
            )
        return T.enum(sym.name)

    def _index(self, e: ast.Index, expected: T.Type | None) -> T.Type:
        ot = self.expr(e.obj)
        if ot.kind in ("optional", "null"):
            self.optional_use(e.obj, ot)
            ot = ot.unwrap() if ot.kind == "optional" else T.UNKNOWN
        if ot.kind == "list":
            self.expect(e.index, T.INT, " as a list index")
            return ot.args[0]
        if ot.kind == "map":
            self.expect(e.index, T.STR, " as a map key")
            return T.optional(ot.args[0])
        self.expr(e.index)
        if ot.kind in ("json", "unknown"):
            return ot
        self.diags.add(
            "E210", e, f"`{ot}` cannot be indexed", help="only lists and maps can be indexed"
        )
        return T.UNKNOWN

    # ---- calls ------------------------------------------------------------------------

    def _args(self, e: ast.Call) -> None:
        for arg in e.args:
            self.expr(arg)

    def _call(self, e: ast.Call, expected: T.Type | None) -> T.Type:
        t = self._callee_call(e)
        if not e.detached:
            return t
        sym = e.target
        if isinstance(sym, Symbol) and sym.kind == "workflow":
            return T.STR
        if t is not T.UNKNOWN or e.target is not None:
            what = self.show(e.callee)
            kind = f"{_article(sym.kind)}" if isinstance(sym, Symbol) else "a builtin"
            self.diags.add(
                "E234",
                e,
                f"`start` runs a workflow as a detached child run; {what} is {kind}",
                help="call it without `start`, or start a workflow that calls it",
            )
        return T.UNKNOWN

    def _callee_call(self, e: ast.Call) -> T.Type:
        callee = e.callee
        callee.ty = T.UNKNOWN
        if isinstance(callee, ast.Name) and not self.is_bound(callee.name):
            # A declaration or builtin, unless a local of that name holds a value here.
            sym = self.resolver.symbol(self.module, callee.name)
            if sym is not None:
                callee.ref = sym
                return self._step_call(e, sym)
            builtin = BUILTINS.get(callee.name)
            if builtin is not None:
                return self._builtin(e, builtin)
            if not self.is_local(callee.name):
                self.unknown_name(callee)
                self._args(e)
                return T.UNKNOWN
        elif isinstance(callee, ast.Field) and isinstance(callee.obj, ast.Name):
            target = None
            if not self.is_bound(callee.obj.name):
                target = self.resolver.alias(self.module, callee.obj.name)
            if target is not None:
                callee.obj.ty = T.UNKNOWN
                sym = self._module_member(callee, target)
                if sym is None:
                    self._args(e)
                    return T.UNKNOWN
                return self._step_call(e, sym)
        t = self.expr(callee)
        self.diags.add(
            "E214",
            callee,
            f"{self.show(callee)} is not a function (its type is `{t}`)",
            help="only tools, effects, agents, workflows and builtins can be called",
        )
        self._args(e)
        return T.UNKNOWN

    def _step_call(self, e: ast.Call, sym: Symbol) -> T.Type:
        name = sym.decl.name.name
        sig = self.decls.signatures.get(sym.name)
        if sig is None:
            self.diags.add(
                "E214",
                e.callee,
                f"`{name}` is {_article(sym.kind)}, not callable",
                labels=[Label(sym.decl.name.span, "declared here")],
                help="only tools, effects, agents, workflows and builtins can be called",
            )
            self._args(e)
            return T.UNKNOWN
        e.target = sym
        if e is not self.step_site:
            stmt = self.statement
            fix = (
                hoist_fix(self.module.tree.source, stmt, e, name, self.name_taken)
                if stmt is not None
                else None
            )
            self.diags.add(
                "E213",
                e,
                f"`{name}(...)` calls {_article(sym.kind)}: a step cannot stand inside an expression",
                help=f"assign it first: `x = {name}(...)`, then use `x`",
                fix=fix,
            )
        given, required, total = len(e.args), sig.required, len(sig.params)
        if not required <= given <= total:
            wanted = str(total) if required == total else f"{required} to {total}"
            shown = ", ".join(f"{p.name}: {p.type}" for p in sig.params)
            self.diags.add(
                "E202",
                e,
                f"`{name}` takes {wanted} argument{'s' if total != 1 else ''}, {given} given",
                help=f"`{name}({shown})`",
            )
        for arg, param in zip(e.args, sig.params):
            where = f" for parameter `{param.name}` of `{name}`"
            if sym.kind in ("tool", "effect"):
                self.to_code = True
                try:
                    t = self.expr(arg, param.type)
                finally:
                    self.to_code = False
                if not passes_to_code(t, param.type):
                    self.mismatch(arg, t, param.type, where)
            else:
                self.expect(arg, param.type, where)
        for arg in e.args[total:]:
            self.expr(arg)
        return sig.returns

    def token_waits(self, call: ast.Call) -> None:
        """Check that some wait takes the signal a `callback_token(...)` call is for; only
        a workflow body has waits."""

    def _token_event(self, arg: ast.Expr) -> bool:
        """The first argument of `callback_token` names an event, not a value."""
        if isinstance(arg, ast.Name):
            sym = self.resolver.symbol(self.module, arg.name)
            if sym is not None and sym.kind == "event":
                arg.ref = sym
                arg.ty = T.STR
                return True
        events = [n for n, s in self.module.scope.items() if s.kind == "event"]
        written = f"`{arg.name}`" if isinstance(arg, ast.Name) else "this"
        hint = suggest(arg.span, arg.name, events) if isinstance(arg, ast.Name) else NO_SUGGESTION
        self.diags.add(
            "E513",
            arg,
            f"{written} is not an event: `callback_token` names the event a wait takes",
            help=hint.help
            or "write `callback_token(done, item.id)` for a `wait done for item.id { ... }`",
            fix=hint.fix,
        )
        return False

    def _builtin(self, e: ast.Call, builtin: Builtin) -> T.Type:
        e.target = builtin.name
        if builtin.name == CALLBACK_TOKEN and e.args:
            if self._token_event(e.args[0]):
                self.token_waits(e)
            types = [T.STR, *(self.expr(a) for a in e.args[1:])]
        else:
            types = [self.expr(a) for a in e.args]
        if not builtin.min_args <= len(types) <= builtin.max_args:
            self.diags.add(
                "E202",
                e,
                f"`{builtin.name}` takes {_count(builtin)}, {len(types)} given",
                help=f"`{builtin.signature}`",
            )
            return T.UNKNOWN
        if not builtin.accepts_optional:
            for i, t in enumerate(types):
                if t.kind in ("optional", "null"):
                    self.optional_use(e.args[i], t)
                    types[i] = t.unwrap() if t.kind == "optional" else T.UNKNOWN
        result = builtin.rule(types)
        if builtin.name == "matches" and not isinstance(result, Misuse):
            self._regex(e.args[1])
        if isinstance(result, Misuse):
            arg = e.args[result.index]
            self.diags.add(
                result.code,
                arg,
                f"`{builtin.name}` takes {result.expected} here, found `{types[result.index]}`",
                help=f"`{builtin.signature}`",
            )
            return T.UNKNOWN
        return result

    def _regex(self, pattern: ast.Expr) -> None:
        """E233 for a literal pattern of `matches` that is no regular expression."""
        if not isinstance(pattern, ast.StrLit) or not all(
            isinstance(p, str) for p in pattern.parts
        ):
            return
        text = "".join(str(p) for p in pattern.parts)
        try:
            re.compile(text)
        except re.error as e:
            self.diags.add(
                "E233",
                pattern,
                f"`{text}` is not a regular expression: {e}",
                help="`matches` takes a Python regular expression that the whole text must "
                'match, e.g. `"[a-z]+-[0-9]+"`; escape special characters with `\\\\`',
            )

    # ---- operators ----------------------------------------------------------------------

    def _unary(self, e: ast.Unary, expected: T.Type | None) -> T.Type:
        t = self.expr(e.operand)
        if t.kind in ("optional", "null"):
            self.optional_use(e.operand, t)
            return T.BOOL if e.op == "not" else T.UNKNOWN
        if e.op == "not":
            if t.kind not in ("bool", "unknown"):
                self.diags.add(
                    "E210",
                    e,
                    f"`not` needs a `bool`, found `{t}`",
                    help="compare it, e.g. `x == 0`",
                )
            return T.BOOL
        if t.kind in ("int", "float", "money", "duration", "unknown"):
            return t
        self.diags.add(
            "E210", e, f"`-` is not defined for `{t}`", help="negate a number, money or a duration"
        )
        return T.UNKNOWN

    def facts_of(self, cond: ast.Expr) -> tuple[Facts, Facts]:
        """What a typed condition narrows: (when it is true, when it is false)."""
        if isinstance(cond, ast.Paren):
            return self.facts_of(cond.inner)
        if isinstance(cond, ast.Unary) and cond.op == "not":
            when_true, when_false = self.facts_of(cond.operand)
            return when_false, when_true
        if not isinstance(cond, ast.Binary):
            return {}, {}
        if cond.op == "and":
            lt, _ = self.facts_of(cond.left)
            rt, _ = self.facts_of(cond.right)
            return {**lt, **rt}, {}
        if cond.op == "or":
            _, lf = self.facts_of(cond.left)
            _, rf = self.facts_of(cond.right)
            return {}, {**lf, **rf}
        if cond.op in ("==", "!="):
            if isinstance(cond.right, ast.NullLit):
                subject = cond.left
            elif isinstance(cond.left, ast.NullLit):
                subject = cond.right
            else:
                return {}, {}
            path = expr_path(subject)
            ty = subject.ty
            if path is None or not isinstance(ty, T.Type) or ty.kind != "optional":
                return {}, {}
            facts = {path: ty.args[0]}
            return (facts, {}) if cond.op == "!=" else ({}, facts)
        return {}, {}

    def _logic_operand(self, e: ast.Expr, op: str) -> None:
        t = self.expr(e, T.BOOL)
        if t.kind in ("optional", "null"):
            self.optional_use(e, t)
        elif t.kind not in ("bool", "unknown"):
            self.diags.add(
                "E210",
                e,
                f"`{op}` needs `bool` operands, found `{t}`",
                help="compare it, e.g. `n > 0` or `x != null`",
            )

    def _binary(self, e: ast.Binary, expected: T.Type | None) -> T.Type:
        op = e.op
        if op in ("and", "or"):
            self._logic_operand(e.left, op)
            when_true, when_false = self.facts_of(e.left)
            self.facts.append(when_true if op == "and" else when_false)
            try:
                self._logic_operand(e.right, op)
            finally:
                self.facts.pop()
            return T.BOOL
        if op == "??":
            return self._coalesce(e)
        lt = self.expr(e.left)
        rt = self.expr(e.right)
        if op in ("==", "!="):
            return self._equality(e, lt, rt)
        if lt.kind in ("optional", "null"):
            self.optional_use(e.left, lt)
            lt = lt.unwrap() if lt.kind == "optional" else T.UNKNOWN
        if rt.kind in ("optional", "null"):
            self.optional_use(e.right, rt)
            rt = rt.unwrap() if rt.kind == "optional" else T.UNKNOWN
        if lt.kind == "unknown" or rt.kind == "unknown":
            return T.BOOL if op in _COMPARISONS else T.UNKNOWN
        if op in _COMPARISONS:
            return self._compare(e, lt, rt)
        result = arithmetic(op, lt, rt)
        if result is not None:
            return result
        if money_mix(lt, rt):
            self.diags.add(
                "E209",
                e,
                f"cannot {_VERBS[op]} `{lt}` and `{rt}`",
                help="money never mixes with numbers in `+` and `-`; write an amount such as `$5`",
            )
        else:
            self.diags.add(
                "E210",
                e,
                f"`{op}` is not defined for `{lt}` and `{rt}`",
                help=_operator_help(op, lt, rt),
            )
        return T.UNKNOWN

    def _compare(self, e: ast.Binary, lt: T.Type, rt: T.Type) -> T.Type:
        if lt.kind in NUMBERS and rt.kind in NUMBERS:
            return T.BOOL
        if lt.kind == rt.kind and lt.kind in ORDERED:
            return T.BOOL
        if money_mix(lt, rt):
            self.diags.add(
                "E209",
                e,
                f"cannot compare `{lt}` with `{rt}`",
                help="compare money with money, e.g. `total > $100`",
            )
        else:
            self.diags.add(
                "E210",
                e,
                f"`{e.op}` is not defined for `{lt}` and `{rt}`",
                help="order comparisons need two numbers, amounts, durations, timestamps or strings",
            )
        return T.BOOL

    def _equality(self, e: ast.Binary, lt: T.Type, rt: T.Type) -> T.Type:
        if "null" in (lt.kind, rt.kind):
            return T.BOOL
        a, b = lt.unwrap(), rt.unwrap()
        if assignable(a, b) or assignable(b, a):
            return T.BOOL
        if money_mix(a, b):
            self.diags.add(
                "E209",
                e,
                f"cannot compare `{lt}` with `{rt}`",
                help="compare money with money, e.g. `total == $0`",
            )
        else:
            self.diags.add(
                "E210",
                e,
                f"cannot compare `{lt}` with `{rt}`: they are never equal",
                help="compare values of the same type",
            )
        return T.BOOL

    def _coalesce(self, e: ast.Binary) -> T.Type:
        lt = self.expr(e.left)
        if lt.kind == "optional":
            inner = lt.args[0]
            rt = self.expr(e.right, inner)
            if assignable(rt, inner):
                return inner
            if rt.kind == "optional" and assignable(rt.args[0], inner):
                return lt
            self.mismatch(e.right, rt, inner, " as the default of `??`")
            return inner
        rt = self.expr(e.right)
        if lt.kind == "null":
            return rt
        if lt.kind not in ("unknown", "json"):
            self.diags.add(
                "E210",
                e,
                f"`??` needs an optional on its left, found `{lt}`",
                help="the value is never null; drop `?? ...`",
            )
        return lt

    # ---- literals ---------------------------------------------------------------------

    def _paren(self, e: ast.Paren, expected: T.Type | None) -> T.Type:
        return self.expr(e.inner, expected)

    def _str(self, e: ast.StrLit, expected: T.Type | None) -> T.Type:
        if self.references_ok and expected == T.SECRET:
            # Imported here: `mnlang.secrets` brings the runtime's redaction and `logging`
            # (about 7 ms of `mnc check`'s start-up) for this one pattern.
            from mnlang.secrets import is_reference

            if is_reference(e.constant or ""):
                return T.SECRET  # a scenario starts its run with a reference, as `--input` does
        secret = False
        for part in e.parts:
            if not isinstance(part, str):
                secret = self.expr(part).kind == "secret" or secret
        # `"Bearer {token}"` is a secret too: text around a secret does not reveal it.
        return T.SECRET if secret else T.STR

    def _list(self, e: ast.ListLit, expected: T.Type | None) -> T.Type:
        if expected is not None and expected.kind == "optional":
            expected = expected.args[0]
        if expected is not None and expected.kind == "json":
            for item in e.items:
                self.expr(item, T.JSON)
            return T.list_of(T.JSON)
        want = expected.args[0] if expected is not None and expected.kind == "list" else None
        item_type = want
        for item in e.items:
            t = self.expr(item, want or item_type)
            if want is not None:
                if not assignable(t, want) and not (self.to_code and passes_to_code(t, want)):
                    self.mismatch(item, t, want, " as a list item")
                continue
            if item_type is None:
                item_type = t
                continue
            joined = join(item_type, t)
            if joined is None:
                self.diags.add(
                    "E201",
                    item,
                    f"list items must agree: expected `{item_type}`, found `{t}`",
                    help="a list holds values of one type",
                )
            else:
                item_type = joined
        return T.list_of(item_type or T.UNKNOWN)

    def _object(self, e: ast.ObjectLit, expected: T.Type | None) -> T.Type:
        """`{ "seed": 42 }`: the record or `map[T]` expected here, else a `json` value."""
        if expected is not None and expected.kind == "optional":
            expected = expected.args[0]
        kind = expected.kind if expected is not None else None
        if expected is not None and kind == "record":
            self.record_entries(e, expected, e.entries)
            return expected
        self.duplicate_keys(e)
        if expected is not None and kind == "map":
            for entry in e.entries:
                self.expect(entry.value, expected.args[0], f" for key `{entry.key.name}`")
            return expected
        for entry in e.entries:
            self.expr(entry.value, T.JSON)
        return T.JSON

    def duplicate_keys(self, e: ast.ObjectLit) -> None:
        seen: set[str] = set()
        for entry in e.entries:
            if entry.key.name in seen:
                self.diags.add(
                    "E231",
                    entry.key,
                    f"key `{entry.key.name}` appears twice in this object",
                    help="keep one: a later value would silently replace the earlier one",
                )
            seen.add(entry.key.name)

    def _error_name(self, e: ast.ErrorName, expected: T.Type | None) -> T.Type:
        self.diags.add(
            "E321",
            e,
            f"the error name `{e.name}` is not a value",
            help=f'raise it with `fail {e.name} {{ message: "..." }}`; '
            "a bare error name stands only in `retry: { on: [...] }` and in a scenario",
        )
        return T.UNKNOWN

    def error_value(self, e: ast.RecordLit, sym: Symbol) -> T.Type:
        """`PaymentDeclined { message: "...", cause: e }`, the value a `fail` raises."""
        seen: set[str] = set()
        for entry in e.entries:
            key = entry.key.name
            if key in seen or key not in _ERROR_VALUE_FIELDS:
                self.diags.add(
                    "E216" if key in seen else "E107",
                    entry.key,
                    f"field `{key}` is given twice"
                    if key in seen
                    else f"an error has no field `{key}`",
                    help="an error takes `message: str` and, optionally, `cause: e` "
                    "(a caught error)",
                )
                self.expr(entry.value)
                continue
            seen.add(key)
            self.expect(entry.value, _ERROR_VALUE_FIELDS[key], f" for field `{key}`")
        if "message" not in seen:
            self.diags.add(
                "E216",
                e,
                f"`{sym.decl.name.name}` needs a `message`",
                help=f'write `{sym.decl.name.name} {{ message: "..." }}`',
            )
        return T.ERROR

    def _record(self, e: ast.RecordLit, expected: T.Type | None) -> T.Type:
        name = e.type_name.name
        sym = self.resolver.symbol(self.module, name)
        if sym is not None and sym.kind == "error":
            self.diags.add(
                "E321",
                e,
                f"`{name} {{ ... }}` raises an error; it stands only after `fail`",
                help=f"write `fail {name} {{ message: ... }}`",
            )
            self.error_value(e, sym)
            return T.UNKNOWN
        if sym is None or sym.kind != "type":
            if sym is None:
                hint = suggest(e.type_name.span, name, self.resolver.type_names(self.module))
                self.diags.add(
                    "E103",
                    e.type_name,
                    f"unknown type `{name}`",
                    help=hint.help or f"declare it: `type {name} {{ ... }}`",
                    fix=hint.fix,
                )
            else:
                self.diags.add(
                    "E201",
                    e.type_name,
                    f"`{name}` is {_article(sym.kind)}, not a record type",
                    help=f"write `{name}.member`"
                    if sym.kind == "enum"
                    else "a record literal names a `type`",
                )
            for entry in e.entries:
                self.expr(entry.value)
            return T.UNKNOWN
        t = T.record(sym.name)
        self.record_entries(e, t, e.entries)
        return t

    def record_entries(self, node: ast.Node, t: T.Type, entries: list[ast.Entry]) -> None:
        """Check the fields of a record literal: all known, none twice, none missing."""
        fields = self.decls.records.get(t.name, {})
        seen: dict[str, ast.Entry] = {}
        for entry in entries:
            key = entry.key.name
            first = seen.get(key)
            if first is not None:
                self.diags.add(
                    "E216",
                    entry.key,
                    f"field `{key}` is given twice",
                    labels=[Label(first.key.span, "first given here")],
                    help="keep one of them",
                )
                self.expr(entry.value)
                continue
            seen[key] = entry
            info = fields.get(key)
            if info is None:
                hint = suggest(entry.key.span, key, fields)
                self.diags.add(
                    "E107",
                    entry.key,
                    f"`{t}` has no field `{key}`",
                    help=hint.help or "its fields: " + ", ".join(f"`{n}`" for n in fields),
                    fix=hint.fix,
                )
                self.expr(entry.value)
                continue
            self.expect(entry.value, info.type, f" for field `{key}`")
        missing = [
            f.name
            for f in fields.values()
            if f.name not in seen and not f.has_default and f.type.kind != "optional"
        ]
        if missing:
            shown = ", ".join(f"`{m}`" for m in missing)
            self.diags.add(
                "E216",
                node,
                f"`{t}` literal is missing field{'s' if len(missing) > 1 else ''} {shown}",
                help="add " + ", ".join(f"`{m}: ...`" for m in missing),
            )


def _count(builtin: Builtin) -> str:
    lo, hi = builtin.min_args, builtin.max_args
    if lo == hi:
        return f"{lo} argument{'s' if lo != 1 else ''}"
    return f"{lo} to {hi} arguments"


def _operator_help(op: str, a: T.Type, b: T.Type) -> str:
    if op == "+" and "str" in (a.kind, b.kind):
        return 'join text by interpolation: `"{a}{b}"`, or convert with `to_str(...)`'
    return "arithmetic works on numbers, money (with numbers for `*` and `/`), durations and timestamps"


def _constant(result: T.Type) -> Callable[[ExprChecker, Any, T.Type | None], T.Type]:
    return lambda checker, e, expected: result


_DISPATCH: dict[type, Callable[[ExprChecker, Any, T.Type | None], T.Type]] = {
    ast.Name: ExprChecker._name,
    ast.Field: ExprChecker._field,
    ast.EnumMember: ExprChecker._enum_member,
    ast.Index: ExprChecker._index,
    ast.Call: ExprChecker._call,
    ast.Unary: ExprChecker._unary,
    ast.Binary: ExprChecker._binary,
    ast.Paren: ExprChecker._paren,
    ast.StrLit: ExprChecker._str,
    ast.ListLit: ExprChecker._list,
    ast.ObjectLit: ExprChecker._object,
    ast.RecordLit: ExprChecker._record,
    ast.ErrorName: ExprChecker._error_name,
    ast.IntLit: _constant(T.INT),
    ast.FloatLit: _constant(T.FLOAT),
    ast.MoneyLit: _constant(T.MONEY),
    ast.DurationLit: _constant(T.DURATION),
    ast.BoolLit: _constant(T.BOOL),
    ast.NullLit: _constant(T.NULL),
}
