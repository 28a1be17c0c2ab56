"""Declaration options: validate each option block against its kind's table and resolve it.

The result, `program.options[qualified_name]`, is what later passes and the
compiler read: durations in milliseconds, money as `Decimal`, retry as a
`RetryPolicy`, templates and calls as their AST nodes.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, Literal

import msgspec

from mnlang.checker.errornames import resolve_error_name
from mnlang.checker.program import ModuleInfo, Program, Symbol, lookup
from mnlang.checker.suggest import NO_SUGGESTION, did_you_mean, suggest
from mnlang.cron import CronError, check_cron
from mnlang.diagnostics import Diagnostics, Fix, Label
from mnlang.impls import IMPL, MCP_IMPL, impl_problem
from mnlang.syntax import ast

# Error kinds a `retry.on` or a `catch` may name.
ERROR_KINDS = (
    "timeout",
    "transient",
    "tool_error",
    "malformed_output",
    "rejected",
    "value_error",
    "key_conflict",
    "child_failed",
)
# Enforced by the runtime, so never caught or retried (a `finally` still runs).
UNCATCHABLE_KINDS = ("cancelled", "budget_exceeded", "deadline_exceeded")


# `attempts: unlimited` (the IR's word too): tries until `max_elapsed` or the run's deadline.
UNLIMITED = "unlimited"
# The least `backoff` of unlimited attempts (Temporal's default first interval, Step
# Functions' least `IntervalSeconds`): it also bounds how many tries fit in the time allowed.
MIN_UNLIMITED_BACKOFF_MS = 1000


class RetryPolicy(msgspec.Struct, frozen=True):
    """How often and how patiently a call is tried; `attempts` counts the first try.

    `more` are the further entries of `retry: [ {...}, ... ]`: a failure is retried by the
    first entry whose `on` names its kind, which counts its own attempts."""

    attempts: int | Literal["unlimited"] = 1
    backoff_ms: int = 0
    factor: float = 2.0
    max_delay_ms: int | None = None
    jitter: bool = False
    on: tuple[str, ...] = ("timeout", "transient")
    max_elapsed_ms: int | None = None
    more: tuple[RetryPolicy, ...] = ()

    @property
    def entries(self) -> tuple[RetryPolicy, ...]:
        return (self, *self.more)

    @property
    def unbounded(self) -> bool:
        """An entry tries without limit and no `max_elapsed` of its own bounds it: only the
        run's deadline does."""
        return any(e.attempts == UNLIMITED and e.max_elapsed_ms is None for e in self.entries)


# An option entry: a key in an `{ ... }` block or an option line in a workflow body.
OptionEntry = ast.Entry | ast.OptionStmt
# Reads one option value; returns None when the value is invalid (already reported).
_Reader = Callable[["_OptionReader", OptionEntry], Any]


class _OptionReader:
    """Reads option values of the declarations of one module, reporting E101/E208/E211/E212."""

    def __init__(self, program: Program, module: ModuleInfo, diags: Diagnostics) -> None:
        self.program = program
        self.module = module
        self.diags = diags

    # ---- blocks ------------------------------------------------------------

    def read_block(
        self, entries: Sequence[OptionEntry], table: dict[str, _Reader], what: str
    ) -> dict[str, Any]:
        """Read every entry with its reader; unknown and repeated keys are reported."""
        seen: dict[str, OptionEntry] = {}
        values: dict[str, Any] = {}
        for entry in entries:
            key = entry.key.name
            reader = table.get(key)
            if reader is None:
                report_unknown_key(self.diags, entry.key, table, what)
                continue
            first = seen.get(key)
            if first is not None:
                self.diags.add(
                    "E212",
                    entry.key,
                    f"option `{key}` is given twice",
                    labels=[Label(first.key.span, "first given here")],
                    help="keep one of them",
                )
                continue
            seen[key] = entry
            value = reader(self, entry)
            if value is not None:
                values[key] = value
        return values

    def bad(
        self, entry: OptionEntry, message: str, help: str | None = None, fix: Fix | None = None
    ) -> None:
        self.diags.add("E212", entry.value, message, help=help, fix=fix)

    # ---- value shapes ------------------------------------------------------

    def duration(self, entry: OptionEntry) -> int | None:
        if isinstance(entry.value, ast.DurationLit):
            return entry.value.millis
        self.bad(
            entry,
            f"`{entry.key.name}` takes a duration",
            help=f"write a duration such as `{entry.key.name}: 30s` (units ms s m h d)",
        )
        return None

    def timeout(self, entry: OptionEntry) -> int | str | None:
        if isinstance(entry.value, ast.Name) and entry.value.name == "never":
            return "never"
        if isinstance(entry.value, ast.DurationLit):
            return entry.value.millis
        self.bad(
            entry,
            "`timeout` takes a duration or `never`",
            help="write e.g. `timeout: 30s`, `timeout: never` to wait without limit, or (for a "
            "tool or an effect) a `duration` expression over its parameters",
        )
        return None

    def call_timeout(self, entry: OptionEntry) -> int | str | ast.Expr | None:
        """A tool's or effect's `timeout`: a literal, `never`, or an expression over the
        parameters (typed as a `duration` by the type checker, evaluated per call)."""
        value = entry.value
        if isinstance(value, ast.DurationLit) or (
            isinstance(value, ast.Name) and value.name == "never"
        ):
            return self.timeout(entry)
        if isinstance(value, ast.ObjectLit):
            return self.timeout(entry)
        return value

    def deadline(self, entry: OptionEntry) -> int | ast.Expr | None:
        """A workflow's `deadline`: a literal, or an expression over its parameters (typed as
        a `duration` by the type checker, evaluated when the run starts)."""
        value = entry.value
        if isinstance(value, ast.DurationLit | ast.ObjectLit):
            return self.duration(entry)
        return value

    def money(self, entry: OptionEntry) -> Decimal | None:
        if isinstance(entry.value, ast.MoneyLit):
            return entry.value.value
        self.bad(entry, f"`{entry.key.name}` takes an amount of money", help="write e.g. `$0.50`")
        return None

    def template(self, entry: OptionEntry) -> ast.StrLit | None:
        if isinstance(entry.value, ast.StrLit):
            return entry.value
        self.bad(entry, f"`{entry.key.name}` takes a string", help='write e.g. `"text {name}"`')
        return None

    def parameter(self, entry: OptionEntry) -> str | None:
        """The name of one of the declaration's parameters (its type is the type checker's)."""
        if isinstance(entry.value, ast.Name):
            return entry.value.name
        self.bad(
            entry,
            f"`{entry.key.name}` takes the name of a parameter",
            help=f"write `{entry.key.name}: history`, naming a `list[Turn]` parameter",
        )
        return None

    def text(self, entry: OptionEntry) -> str | None:
        if isinstance(entry.value, ast.StrLit):
            constant = entry.value.constant
            if constant is not None:
                return constant
            self.bad(
                entry,
                f"`{entry.key.name}` takes a plain string without `{{...}}`",
                help="write the value out; interpolation is only for templates such as `key`",
            )
            return None
        self.bad(
            entry, f"`{entry.key.name}` takes a string", help=f'write `{entry.key.name}: "..."`'
        )
        return None

    def models(self, entry: OptionEntry) -> str | list[str] | None:
        """`model: "gpt-4o"`, or models tried in order: `model: ["gpt-4o", "gpt-4o-mini"]`."""
        value = entry.value
        if not isinstance(value, ast.ListLit):
            return self.text(entry)
        names: list[str] = []
        for item in value.items:
            constant = item.constant if isinstance(item, ast.StrLit) else None
            if not constant:
                self.diags.add(
                    "E253",
                    item,
                    "each model in `model:` is a plain, non-empty string",
                    help='write `model: ["gpt-4o", "gpt-4o-mini"]`',
                )
                return None
            if constant in names:
                self.diags.add(
                    "E253",
                    item,
                    f"model `{constant}` is listed twice",
                    help="each model is tried once, in order: keep the first",
                )
                return None
            names.append(constant)
        if not names:
            self.diags.add(
                "E253",
                value,
                "`model:` lists no model",
                help='name at least one: `model: ["gpt-4o", "gpt-4o-mini"]`',
            )
            return None
        return names

    def boolean(self, entry: OptionEntry) -> bool | None:
        if isinstance(entry.value, ast.BoolLit):
            return entry.value.value
        self.bad(
            entry,
            f"`{entry.key.name}` takes `true` or `false`",
            help=f"write `{entry.key.name}: true`",
        )
        return None

    def positive_int(self, entry: OptionEntry) -> int | None:
        if isinstance(entry.value, ast.IntLit) and entry.value.value >= 1:
            return entry.value.value
        self.bad(
            entry,
            f"`{entry.key.name}` takes a whole number of at least 1",
            help=f"write e.g. `{entry.key.name}: 3`",
        )
        return None

    def attempts(self, entry: OptionEntry) -> int | str | None:
        if isinstance(entry.value, ast.Name) and entry.value.name == UNLIMITED:
            return UNLIMITED
        if isinstance(entry.value, ast.IntLit) and entry.value.value >= 1:
            return entry.value.value
        self.bad(
            entry,
            "`attempts` takes a whole number of at least 1, or `unlimited`",
            help="write e.g. `attempts: 3`, or `attempts: unlimited` with a `backoff` and a "
            "`max_elapsed`",
        )
        return None

    def positive_duration(self, entry: OptionEntry) -> int | None:
        millis = self.duration(entry)
        if millis is not None and millis <= 0:
            self.bad(
                entry,
                f"`{entry.key.name}` must be longer than 0",
                help=f"write e.g. `{entry.key.name}: 1h`",
            )
            return None
        return millis

    def number(self, entry: OptionEntry) -> float | None:
        if isinstance(entry.value, ast.IntLit | ast.FloatLit):
            return float(entry.value.value)
        self.bad(
            entry, f"`{entry.key.name}` takes a number", help=f"write e.g. `{entry.key.name}: 2`"
        )
        return None

    def word(self, entry: OptionEntry, choices: tuple[str, ...]) -> str | None:
        value = entry.value
        if isinstance(value, ast.Name) and value.name in choices:
            return value.name
        shown = " or ".join(f"`{c}`" for c in choices)
        got = f"`{value.name}`" if isinstance(value, ast.Name) else "this value"
        hint = (
            suggest(value.span, value.name, choices)
            if isinstance(value, ast.Name)
            else NO_SUGGESTION
        )
        self.bad(
            entry,
            f"`{entry.key.name}` takes {shown}, not {got}",
            help=hint.help or f"write {shown}",
            fix=hint.fix,
        )
        return None

    # ---- values that name declarations ---------------------------------------

    def symbol(self, node: ast.Expr, kinds: tuple[str, ...], what: str) -> Symbol | None:
        """The declaration that `node` names, which must be of one of `kinds`."""
        if not isinstance(node, ast.Name | ast.Field):
            self.diags.add("E212", node, f"expected the name of {what}", help=f"name {what} here")
            return None
        sym = lookup(self.module, node)
        if sym is None:
            shown = node.name if isinstance(node, ast.Name) else node.name.name
            candidates = [n for n, s in self.module.scope.items() if s.kind in kinds]
            # Only a plain name: a qualified one's fix would be a name of another module.
            hint = suggest(node.span, shown, candidates if isinstance(node, ast.Name) else ())
            self.diags.add(
                "E101",
                node,
                f"unknown name `{shown}`",
                help=did_you_mean(shown, candidates) or f"declare {what} named `{shown}`",
                fix=hint.fix,
            )
            return None
        if sym.kind not in kinds:
            self.diags.add(
                "E212",
                node,
                f"`{sym.decl.name.name}` is {_article(sym.kind)}, not {what}",
                labels=[Label(sym.decl.name.span, "declared here")],
                help=f"name {what} here",
            )
            return None
        return sym

    def step_call(self, entry: OptionEntry, kinds: tuple[str, ...], what: str) -> ast.Call | None:
        value = entry.value
        if not isinstance(value, ast.Call):
            self.bad(
                entry, f"`{entry.key.name}` takes a call of {what}", help="write e.g. `name(arg)`"
            )
            return None
        if self.symbol(value.callee, kinds, what) is None:
            return None
        return value

    def tools(self, entry: OptionEntry) -> list[str] | None:
        value = entry.value
        if not isinstance(value, ast.ListLit):
            self.bad(
                entry, "`tools` takes a list of tools and effects", help="write `tools: [a, b]`"
            )
            return None
        names: list[str] = []
        for item in value.items:
            if isinstance(item, ast.ObjectLit):
                self.diags.add(
                    "E212",
                    item,
                    "expected the name of a tool or effect",
                    help="write `tools: [a, b]`",
                )
                continue
            named = item.callee if isinstance(item, ast.Call) else item
            sym = self.symbol(named, ("tool", "effect"), "a tool or effect")
            if sym is None:
                continue
            if isinstance(item, ast.Call) and not self._bindings(item, sym):
                continue
            names.append(sym.name)
        return names

    def _bindings(self, call: ast.Call, sym: Symbol) -> bool:
        """`book_hotel({ passenger: pid })`: parameters the workflow fixes, by name.

        Their values are typed by the type checker against the agent's parameters."""
        shown = sym.decl.name.name
        if len(call.args) != 1 or not isinstance(call.args[0], ast.ObjectLit):
            self.diags.add(
                "E250",
                call,
                f"`{shown}` in `tools:` binds its parameters by name",
                help=f"write `{shown}({{ param: value }})`, or `{shown}` to let the model "
                "choose every argument",
            )
            return False
        decl = sym.decl
        params = [p.name.name for p in decl.params] if isinstance(decl, ast.CallableDecl) else []
        ok = True
        for entry in call.args[0].entries:
            if entry.key.name not in params:
                self.diags.add(
                    "E251",
                    entry.key,
                    f"`{shown}` has no parameter `{entry.key.name}` to bind",
                    help=did_you_mean(entry.key.name, params)
                    or f"its parameters: {', '.join(f'`{p}`' for p in params) or 'none'}",
                )
                ok = False
        return ok

    # ---- composite values ------------------------------------------------------

    def impl(self, entry: OptionEntry) -> str | None:
        text = self.text(entry)
        if text is None:
            return None
        if not IMPL.fullmatch(text) and not MCP_IMPL.fullmatch(text):
            self.bad(
                entry,
                f'`impl` must be `"module:function"` or `"mcp:SERVER/TOOL"`, not `"{text}"`',
                help='name a Python module beside the `.mn` file and a function in it, e.g. `"tools:fetch"`',
            )
            return None
        problem = impl_problem(text)
        if problem is not None:
            self.diags.add(
                "E115",
                entry.value,
                problem,
                help="write a function of your own that does the one thing the tool is for",
            )
            return None
        return text

    def retry(self, entry: OptionEntry) -> RetryPolicy | None:
        value = entry.value
        if isinstance(value, ast.ObjectLit):
            return self.retry_entry(value, in_list=False)
        if isinstance(value, ast.Name | ast.Field):
            return self.named_policy(value)
        if isinstance(value, ast.ListLit) and value.items:
            return self.retry_list(value)
        self.bad(
            entry,
            "`retry` takes a policy name, `{ attempts: N, ... }`, or a list of them, one per "
            "error kind",
            help="write e.g. `retry: { attempts: 3, backoff: 1s }`, or `retry: [ { on: "
            "[timeout], attempts: 5 }, { on: [rejected], attempts: 2 } ]`",
        )
        return None

    def named_policy(self, node: ast.Name | ast.Field) -> RetryPolicy | None:
        sym = self.symbol(node, ("policy",), "a policy")
        if sym is None:
            return None
        policy: RetryPolicy = self.program.options[sym.name]["retry"]
        return policy

    def retry_entry(self, block: ast.ObjectLit, *, in_list: bool) -> RetryPolicy | None:
        """One `{ ... }` of retry options; in a list it must say which kinds it retries."""
        policy = retry_policy(self.read_block(block.entries, RETRY_OPTIONS, "a retry policy"))
        check_unlimited(self.diags, block.entries, policy)
        if in_list and block.get("on") is None:
            self.diags.add(
                "E242",
                block,
                "an entry of a `retry` list does not say which error kinds it retries",
                help="add `on: [...]`, e.g. `on: [timeout, transient]`: a failure is retried "
                "by the first entry whose `on` names its kind",
            )
            return None
        return policy

    def retry_list(self, value: ast.ListLit) -> RetryPolicy | None:
        """`[ entry, ... ]`: the first entry whose `on` has a failure's kind retries it."""
        policies: list[RetryPolicy] = []
        retried_by: dict[str, ast.Node] = {}
        complete = True
        for item in value.items:
            policy: RetryPolicy | None = None
            if isinstance(item, ast.ObjectLit):
                policy = self.retry_entry(item, in_list=True)
            elif isinstance(item, ast.Name | ast.Field):
                policy = self.named_policy(item)
            else:
                self.diags.add(
                    "E212",
                    item,
                    "expected `{ on: [...], attempts: N, ... }` or the name of a policy",
                    help="each entry of a `retry` list is a retry policy for some error kinds",
                )
            if policy is None:
                complete = False
                continue
            for kind in policy.on:
                first = retried_by.setdefault(kind, item)
                if first is not item:
                    self.diags.add(
                        "E243",
                        item,
                        f"`{kind}` is already retried by an earlier entry: this entry never "
                        f"sees a `{kind}` failure",
                        labels=[Label(first.span, f"`{kind}` is retried here")],
                        help=f"remove `{kind}` from one of the entries (the first entry whose "
                        "`on` names a failure's kind retries it)",
                    )
            policies.append(policy)
        if not complete:
            return None
        return msgspec.structs.replace(policies[0], more=tuple(policies[1:]))

    def approval(self, entry: OptionEntry) -> dict[str, Any] | None:
        """The checkpoint an agent opens before an effect that requires approval."""
        value = entry.value
        if not isinstance(value, ast.ObjectLit):
            self.bad(
                entry,
                "`approval` takes `{ timeout: D, on_timeout: approve | reject }`",
                help="write e.g. `approval: { timeout: 24h, on_timeout: reject }`",
            )
            return None
        values = self.read_block(value.entries, APPROVAL_OPTIONS, "an approval")
        if "timeout" not in {e.key.name for e in value.entries}:
            self.bad(
                entry,
                "`approval` needs a `timeout`",
                help="write e.g. `approval: { timeout: 24h, on_timeout: reject }`, "
                "or `timeout: never` to wait for a person without limit",
            )
            return None
        return values

    def error_kinds(self, entry: OptionEntry) -> tuple[str, ...] | None:
        value = entry.value
        items = value.items if isinstance(value, ast.ListLit) else [value]
        kinds: list[str] = []
        ok = True
        for item in items:
            if isinstance(item, ast.Name) and item.name in ERROR_KINDS:
                kinds.append(item.name)
                continue
            if isinstance(item, ast.ErrorName):
                name = resolve_error_name(self.module, item, item.name, self.diags)
                if name is not None:
                    kinds.append(name)
                else:
                    ok = False
                continue
            ok = False
            if isinstance(item, ast.Name) and item.name in UNCATCHABLE_KINDS:
                self.diags.add(
                    "E212",
                    item,
                    f"`{item.name}` is enforced by the runtime and cannot be retried",
                    help="remove it from `on`",
                )
                continue
            word = item.name if isinstance(item, ast.Name) else None
            hint = suggest(item.span, word, ERROR_KINDS) if word else NO_SUGGESTION
            self.diags.add(
                "E212",
                item,
                f"`{word}` is not an error kind" if word else "expected an error kind",
                help=hint.help or "error kinds: " + ", ".join(ERROR_KINDS),
                fix=hint.fix,
            )
        return tuple(kinds) if ok else None

    def tool_limit(self, entry: OptionEntry) -> dict[str, Any] | None:
        value = entry.value
        if not isinstance(value, ast.ObjectLit):
            self.bad(
                entry,
                "a tool's `limit` takes `{ concurrent: N, per_second: R }`",
                help="write e.g. `limit: { concurrent: 4 }`",
            )
            return None
        return self.read_block(value.entries, _TOOL_LIMIT_OPTIONS, "a tool limit")

    def positive_number(self, entry: OptionEntry) -> float | None:
        number = self.number(entry)
        if number is not None and number <= 0:
            self.bad(
                entry, f"`{entry.key.name}` must be more than 0", help="give a positive number"
            )
            return None
        return number

    def factor(self, entry: OptionEntry) -> float | None:
        number = self.number(entry)
        if number is not None and number < 1:
            self.bad(entry, "`factor` must be at least 1", help="the delay is multiplied by it")
            return None
        return number

    def temperature(self, entry: OptionEntry) -> float | None:
        number = self.number(entry)
        if number is not None and not 0 <= number <= 2:
            self.bad(
                entry, "`temperature` must be between 0 and 2", help="write e.g. `temperature: 0.2`"
            )
            return None
        return number

    def cron(self, entry: OptionEntry) -> str | None:
        text = self.text(entry)
        if text is None:
            return None
        try:
            check_cron(text)
        except CronError as e:
            self.bad(
                entry,
                f"`cron`: {e}",
                help='write five fields, minute hour day month weekday (e.g. `cron: "0 9 * * 1"`), '
                "or `@daily`, `@hourly`, `@weekly`, `@monthly`, `@yearly`",
            )
            return None
        return text

    def timezone(self, entry: OptionEntry) -> str | None:
        text = self.text(entry)
        if text is None:
            return None
        try:
            zoneinfo.ZoneInfo(text)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            self.bad(
                entry, f"`{text}` is not a known time zone", help='write e.g. `"Europe/Paris"`'
            )
            return None
        return text


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def report_unknown_key(
    diags: Diagnostics, key: ast.Ident, known: dict[str, Any] | tuple[str, ...], what: str
) -> None:
    """E208 for an option key that `what` does not have, with a did-you-mean."""
    names = tuple(known)
    hint = suggest(key.span, key.name, names)
    diags.add(
        "E208",
        key,
        f"unknown option `{key.name}` for {what}",
        help=hint.help or "options: " + ", ".join(f"`{n}`" for n in names),
        fix=hint.fix,
    )


def retry_policy(values: dict[str, Any]) -> RetryPolicy:
    """A `RetryPolicy` from read retry options; absent ones keep their defaults."""
    policy = RetryPolicy()
    return RetryPolicy(
        attempts=values.get("attempts", policy.attempts),
        backoff_ms=values.get("backoff", policy.backoff_ms),
        factor=values.get("factor", policy.factor),
        max_delay_ms=values.get("max_delay", policy.max_delay_ms),
        jitter=values.get("jitter", policy.jitter),
        on=values.get("on", policy.on),
        max_elapsed_ms=values.get("max_elapsed"),
    )


def check_unlimited(
    diags: Diagnostics, entries: Sequence[OptionEntry], policy: RetryPolicy
) -> None:
    """E241: unlimited attempts need a pause between tries (`backoff`) of at least a second."""
    if policy.attempts != UNLIMITED or policy.backoff_ms >= MIN_UNLIMITED_BACKOFF_MS:
        return
    attempts = next(e for e in entries if e.key.name == "attempts")
    backoff = next((e for e in entries if e.key.name == "backoff"), None)
    diags.add(
        "E241",
        attempts.value,
        "`attempts: unlimited` needs a `backoff` of at least 1s",
        labels=[Label(backoff.value.span, "too short")] if backoff is not None else [],
        help="add `backoff: 1s` (or longer): unlimited tries pause between them, which also "
        "bounds how many fit in `max_elapsed` or the run's deadline, and so their cost",
    )


def _choice(*choices: str) -> _Reader:
    return lambda reader, entry: reader.word(entry, choices)


_R = _OptionReader

RETRY_OPTIONS: dict[str, _Reader] = {
    "attempts": _R.attempts,
    "max_elapsed": _R.positive_duration,
    "backoff": _R.duration,
    "factor": _R.factor,
    "max_delay": _R.duration,
    "jitter": _R.boolean,
    "on": _R.error_kinds,
}

_TOOL_LIMIT_OPTIONS: dict[str, _Reader] = {
    "concurrent": _R.positive_int,
    "per_second": _R.positive_number,
}

TOOL_OPTIONS: dict[str, _Reader] = {
    "impl": _R.impl,
    "description": _R.text,
    "timeout": _R.call_timeout,
    "retry": _R.retry,
    "limit": _R.tool_limit,
    "cost": _R.money,
    "isolation": _choice("thread", "process"),
}

APPROVAL_OPTIONS: dict[str, _Reader] = {
    "timeout": _R.timeout,
    "on_timeout": _choice("approve", "reject"),
}

EFFECT_OPTIONS: dict[str, _Reader] = {
    **TOOL_OPTIONS,
    "approval": _R.approval,
    "key": _R.template,
    "once": _R.boolean,
    "scope": _choice("run", "global"),
    "requires": _choice("approval"),
    "compensate": lambda reader, entry: reader.step_call(entry, ("effect",), "an effect"),
    "reconcile": lambda reader, entry: reader.step_call(entry, ("tool",), "a tool"),
    "settle": _R.duration,
}

AGENT_OPTIONS: dict[str, _Reader] = {
    "model": _R.models,
    "prompt": _R.template,
    "system": _R.template,
    "description": _R.text,
    "provider": _R.text,
    "max_tokens": _R.positive_int,
    "temperature": _R.temperature,
    "retry": _R.retry,
    "timeout": _R.timeout,
    "tools": _R.tools,
    "max_turns": _R.positive_int,
    "approval": _R.approval,
    "cache": _R.duration,
    "conversation": _R.parameter,
}

WORKFLOW_OPTIONS: dict[str, _Reader] = {
    "class": _R.text,
    "budget": _R.money,
    "deadline": _R.deadline,
    "limit": _R.positive_int,
}

SCHEDULE_OPTIONS: dict[str, _Reader] = {
    "run": lambda reader, entry: reader.step_call(entry, ("workflow",), "a workflow"),
    "every": _R.duration,
    "cron": _R.cron,
    "timezone": _R.timezone,
}

# Statement option blocks: their keys are validated here, their values typed by the type checker.
CHECKPOINT_OPTIONS = ("ask", "show", "options", "assignee", "timeout", "on_timeout")
WAIT_OPTIONS = ("timeout",)

_TABLES: dict[str, tuple[dict[str, _Reader], str]] = {
    "tool": (TOOL_OPTIONS, "a tool"),
    "effect": (EFFECT_OPTIONS, "an effect"),
    "agent": (AGENT_OPTIONS, "an agent"),
    "workflow": (WORKFLOW_OPTIONS, "a workflow"),
    "schedule": (SCHEDULE_OPTIONS, "a schedule"),
    "policy": (RETRY_OPTIONS, "a retry policy"),
}

_REQUIRED: dict[str, tuple[tuple[str, str], ...]] = {
    "tool": (("impl", '`impl: "module:function"` or `"mcp:SERVER/TOOL"`'),),
    "effect": (("impl", '`impl: "module:function"` or `"mcp:SERVER/TOOL"`'),),
    "agent": (("model", '`model: "model-name"`'), ("prompt", '`prompt: """..."""`')),
    "schedule": (("run", "`run: workflow_name(args)`"),),
}


def _entries(sym: Symbol) -> Sequence[OptionEntry]:
    decl = sym.decl
    if isinstance(decl, ast.WorkflowDecl):
        return decl.options
    if isinstance(decl, ast.CallableDecl | ast.PolicyDecl | ast.ScheduleDecl):
        return decl.options.entries
    return ()


def _read(program: Program, sym: Symbol, diags: Diagnostics) -> dict[str, Any]:
    table, what = _TABLES[sym.kind]
    reader = _OptionReader(program, sym.module, diags)
    values = reader.read_block(_entries(sym), table, what)
    given = {entry.key.name for entry in _entries(sym)}
    for key, example in _REQUIRED.get(sym.kind, ()):
        if key not in given:
            _missing(diags, sym, key, example)
    if sym.kind == "agent" and "tools" in given and "max_turns" not in given:
        _missing(diags, sym, "max_turns", "`max_turns: 5` to bound the tool-calling loop")
    if sym.kind == "agent" and "cache" in given:
        effects = [n for n in values.get("tools") or () if program.symbols[n].kind == "effect"]
        if effects:
            entry = next(e for e in _entries(sym) if e.key.name == "cache")
            diags.add(
                "E260",
                entry.key,
                f"agent `{sym.decl.name.name}` caches its replies but may call the effect "
                f"`{effects[0].rsplit('.', 1)[-1]}`",
                help="remove `cache`: a cached reply is another run's answer, and acting on "
                "it would repeat that run's actions",
            )
    if sym.kind == "schedule":
        if "every" not in given and "cron" not in given:
            _missing(diags, sym, "every", '`every: 1d` or `cron: "0 9 * * *"`')
        elif "every" in given and "cron" in given:
            diags.add(
                "E212",
                sym.decl.name,
                f"schedule `{sym.decl.name.name}` has both `every` and `cron`",
                help="keep one of them",
            )
    if sym.kind == "policy":
        values["retry"] = retry_policy(values)
        check_unlimited(diags, _entries(sym), values["retry"])
    if sym.kind == "agent" and isinstance(values.get("model"), list):
        # The first model answers; the others are tried in order when it fails.
        first, *fallback = values["model"]
        values["model"] = first
        values["fallback"] = fallback
    if sym.kind in ("tool", "effect", "agent"):
        values.setdefault("retry", RetryPolicy())
    if sym.kind in ("tool", "effect"):
        values.setdefault("isolation", "thread")
    if sym.kind == "effect":
        values.setdefault("scope", "run")
        if "approval" in given and values.get("requires") != "approval":
            entry = next(e for e in _entries(sym) if e.key.name == "approval")
            diags.add(
                "E506",
                entry.key,
                f"effect `{sym.decl.name.name}` has `approval` but does not require approval",
                help="add `requires: approval`, or remove `approval`: "
                "it sets the timeout of the approval an agent asks for",
            )
    return values


def _missing(diags: Diagnostics, sym: Symbol, key: str, example: str) -> None:
    diags.add(
        "E211",
        sym.decl.name,
        f"{sym.kind} `{sym.decl.name.name}` has no `{key}` option",
        help=f"add {example}",
    )


def check_options(program: Program, diags: Diagnostics) -> None:
    """Validate every declaration's options and store them resolved in `program.options`."""
    # Policies first: tools, effects and agents copy the retry policy they name.
    ordered = sorted(program.symbols.values(), key=lambda s: s.kind != "policy")
    for sym in ordered:
        if sym.kind in _TABLES:
            program.options[sym.name] = _read(program, sym, diags)
