"""Scenarios: golden tests of a workflow, run by `mnc test` (options, names and types).

```
scenario small_refund {
  run: refund("o-1", "the mug arrived broken")        # required: the workflow and its input
  tools: { fetch_order: [Order { ... }] }             # mocked results, one per call
  replies: { triage: [Triage { ... }] }               # scripted model replies, one per request
  decisions: { manager_review: approve }              # how people decide at checkpoints
  events: { payment_received: [Payment { ... }] }     # signals sent when the run waits
  faults: [{ kind: transient, at: fetch_order, times: 2 }]
  expect: { status: completed, output: Receipt { ... } }  # required
  expect_calls: [fetch_order("o-1"), triage, refund_payment, notify]
}
```

- `tools` maps tools and effects to lists of results typed as their return type; the n-th
  call gets the n-th result and the last one answers any further call. Tools not listed
  run for real. An entry `{ args: { order_id: "o-1" }, result: ... }` is an answer
  matched by arguments: it answers the calls whose named arguments equal these (the
  others match anything), whatever their order (E140 unknown parameter, E141 malformed
  answer, E142 a `secret` parameter matched); plain results answer the calls no answer
  matches, by their count.
- `replies` maps agents to lists of entries: a value of the agent's return type, a call
  of a tool (a turn in which the model calls it), `prompt_has("text", entry)` (the
  entry answers requests whose prompt contains the text), or `for_model("MODEL", entry)`
  (the entry answers requests to that model of the agent's list, E255 for a model it
  does not list). `replies: "file.json"` names a
  scripted replies file instead (`mnlang.models.scripted`).
- `decisions` maps checkpoint names (in the workflow or the workflows it calls, and the
  effects with `requires: approval` an agent may call) to a decision: an option, or
  `timeout` (the checkpoint's timeout decides), or `{ choice: approve, by: "ana",
  comment: "...", after: 2h }` (`after` past the timeout lets the timeout decide), or a
  list of them for successive decisions.
- `events` maps events to lists of payloads (`null` for an event without one); an entry
  `{ key: "o-1", payload: ... }` goes to the wait of that correlation key (E143 when it
  has no `key` or `payload`).
- `faults` lists `{ kind, at, times, message }`: `kind` is `timeout`, `transient`,
  `tool_error`, `rejected` or `malformed_output` (the first `times` attempts of calls of
  `at` fail so, with `message` when given),
  or `worker_crash` (the run stops right after the first call of `at` returns, before
  its commit, and is resumed from the journal).
- `expect` has `status` (`completed`, `failed`, `waiting`, `cancelled`), `output` (typed
  as the workflow's return type), `error` (the failure's error kind) and `message` (text
  the error message contains; a `fail` statement's failure is expected by its message).
- `expect_calls` lists the calls of tools and effects the run makes (its agents' and
  child workflows' too, when it names any), each a name (any arguments) or a call (these
  arguments); order is not compared, since parallel branches finish in any order, but
  each call must occur as often as listed.
- `under_faults` is for `mnc bench`, which injects one fault of `mnlang.runtime.faults`
  per run: it maps fault classes to the expected outcome under that fault, `same` (the
  expected result), `repair` (the same after a repair checkpoint) or `failed`, or to
  `{ expect, at, late }` (`at`: the tool, effect or agent it hits, or for
  `approval_delay` the checkpoint; `late`: `past` or `near` the timeout), or to a list.
- `model_error` says, in words, which scripted reply is wrong on purpose (a wrong tool
  or argument): `expect` and `expect_calls` stay the right answer, so the run does not
  meet them, and `mnc bench` measures the miss.

The resolved scenario goes into `program.options[name]` as a `ScenarioSpec` for the
compiler. Problems are the option codes: E208 unknown key, E211 missing option, E212
bad value, E101 unknown name, and the type checker's codes for values.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import msgspec

from mnlang.checker import types as T
from mnlang.checker.declarations import Declarations, Resolver, build_declarations
from mnlang.checker.errornames import resolve_error_name
from mnlang.checker.expressions import ExprChecker
from mnlang.checker.options import ERROR_KINDS, UNCATCHABLE_KINDS, report_unknown_key
from mnlang.checker.program import ModuleInfo, Program, Symbol, lookup
from mnlang.checker.steps import checkpoint_choices, nested_statement, step_call, walk
from mnlang.checker.suggest import did_you_mean
from mnlang.diagnostics import Diagnostics, Label
from mnlang.syntax import ast

SCENARIO_KEYS = (
    "run",
    "tools",
    "replies",
    "decisions",
    "events",
    "faults",
    "expect",
    "expect_calls",
    "under_faults",
    "model_error",
)
STATUSES = ("completed", "failed", "waiting", "cancelled")
CALL_FAULTS = ("timeout", "transient", "tool_error", "rejected", "malformed_output")
FAULT_KINDS = (*CALL_FAULTS, "worker_crash")
EXPECTED_ERRORS = (*ERROR_KINDS, *UNCATCHABLE_KINDS)
PROMPT_HAS = "prompt_has"
FOR_MODEL = "for_model"
TIMEOUT_DECISION = "timeout"
_DECISION_KEYS = ("choice", "by", "comment", "after")
_FAULT_KEYS = ("kind", "at", "times", "message")
_EXPECT_KEYS = ("status", "output", "error", "message")
_ANSWER_KEYS = ("args", "result")
_KEYED_KEYS = ("key", "payload")
BENCH_FAULTS = (
    "worker_crash",
    "network_failure",
    "tool_timeout",
    "malformed_output",
    "approval_delay",
    "node_failure",
    "retry_storm",
    "partial_effect",
)
"""The fault classes of `mnlang.runtime.faults` (kept equal to its `FAULT_CLASSES`)."""
FAULT_OUTCOMES = ("same", "repair", "failed")
LATENESS = ("past", "near")
_OUTCOME_KEYS = ("expect", "at", "late")


class ReplySpec(msgspec.Struct):
    """One scripted reply: an answer, or a turn of tool calls; `prompt_has` limits it to
    requests whose prompt contains the text, `model` to requests to that one of the
    agent's models (None: its first)."""

    value: ast.Expr | None = None
    tool: Symbol | None = None
    call: ast.Call | None = None
    prompt_has: str | None = None
    bound: frozenset[str] = frozenset()
    """The tool's parameters the agent binds: the call's arguments are the others."""
    model: str | None = None


class DecisionSpec(msgspec.Struct):
    choice: str
    by: str = "scenario"
    comment: str | None = None
    after_ms: int | None = None


class FaultSpec(msgspec.Struct):
    kind: str
    at: Symbol
    times: int = 1
    message: str | None = None


class FaultOutcome(msgspec.Struct):
    """`under_faults`: what a run should end with when `mnc bench` injects `fault`."""

    fault: str
    expect: str
    at: str | None = None
    """A qualified tool, effect or agent name, or a checkpoint's name (`approval_delay`)."""
    late: str | None = None


class AnswerSpec(msgspec.Struct):
    """A mocked result for the calls of a tool or effect whose named arguments equal
    `args` (the arguments not named match anything)."""

    args: dict[str, ast.Expr]
    result: ast.Expr


class KeyedPayload(msgspec.Struct):
    """An event's payload sent to the wait whose correlation key is `key`."""

    key: ast.Expr
    payload: ast.Expr


class ExpectedCall(msgspec.Struct):
    callee: Symbol
    call: ast.Call | None  # None: any arguments


class ScenarioSpec(msgspec.Struct):
    """A checked scenario, with AST values for the compiler to lower."""

    workflow: Symbol
    run: ast.Call
    module: ModuleInfo
    status: str = "completed"
    output: ast.Expr | None = None
    error: str | None = None
    message: str | None = None
    tools: dict[str, list[ast.Expr]] = msgspec.field(default_factory=dict)
    answers: dict[str, list[AnswerSpec]] = msgspec.field(default_factory=dict)
    replies: dict[str, list[ReplySpec]] = msgspec.field(default_factory=dict)
    replies_file: str | None = None
    decisions: dict[str, list[DecisionSpec]] = msgspec.field(default_factory=dict)
    events: dict[str, list[ast.Expr]] = msgspec.field(default_factory=dict)
    keyed_events: dict[str, list[KeyedPayload]] = msgspec.field(default_factory=dict)
    faults: list[FaultSpec] = msgspec.field(default_factory=list)
    expect_calls: list[ExpectedCall] | None = None
    under_faults: list[FaultOutcome] = msgspec.field(default_factory=list)
    model_error: str | None = None


SCENARIO = "scenario"
"""The key of `program.options[name]` holding a scenario's `ScenarioSpec`."""


def check_scenarios(program: Program, diags: Diagnostics) -> None:
    """Validate every scenario and keep its resolved form in `program.options`."""
    scenarios = program.symbols_of("scenario")
    if not scenarios:
        return
    resolver = Resolver(program, Diagnostics())
    decls = build_declarations(program, resolver, Diagnostics())
    for sym in scenarios:
        spec = _ScenarioChecker(program, decls, resolver, sym, diags).check()
        if spec is not None:
            program.options[sym.name] = {SCENARIO: spec}


def _is_answer(node: ast.Expr) -> bool:
    """An entry of `tools` that is an answer matched by arguments, not a plain result: an
    object with an `args` or `result` key (no value of a tool's type is written so)."""
    return isinstance(node, ast.ObjectLit) and any(e.key.name in _ANSWER_KEYS for e in node.entries)


def _is_keyed_payload(node: ast.Expr) -> bool:
    """An entry of `events` sent with a correlation key: an object with a `key` and (or
    only) a `payload` key."""
    return (
        isinstance(node, ast.ObjectLit)
        and bool(node.entries)
        and all(e.key.name in _KEYED_KEYS for e in node.entries)
    )


def _bound_params(agent: Symbol, tool: Symbol) -> frozenset[str]:
    """The parameters of `tool` that `agent`'s `tools:` binds (`book_hotel({ passenger: pid })`)."""
    entry = agent.decl.options.get("tools") if isinstance(agent.decl, ast.CallableDecl) else None
    if entry is None or not isinstance(entry.value, ast.ListLit):
        return frozenset()
    for item in entry.value.items:
        if (
            isinstance(item, ast.Call)
            and len(item.args) == 1
            and isinstance(item.args[0], ast.ObjectLit)
            and lookup(agent.module, item.callee) is tool
        ):
            return frozenset(e.key.name for e in item.args[0].entries)
    return frozenset()


def _names(names: frozenset[str]) -> str:
    return ", ".join(f"`{n}`" for n in sorted(names))


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


class _ScenarioChecker:
    def __init__(
        self,
        program: Program,
        decls: Declarations,
        resolver: Resolver,
        sym: Symbol,
        diags: Diagnostics,
    ) -> None:
        self.program = program
        self.decls = decls
        self.sym = sym
        self.module = sym.module
        self.diags = diags
        self.exprs = ExprChecker(decls, resolver, sym.module, diags)
        decl = sym.decl
        assert isinstance(decl, ast.ScenarioDecl)
        self.decl = decl

    # --- the block ----------------------------------------------------------------------

    def check(self) -> ScenarioSpec | None:
        entries = self._entries(self.decl.options.entries, SCENARIO_KEYS, "a scenario")
        name = self.decl.name.name
        for key, example in (
            ("run", "`run: workflow_name(args)`"),
            ("expect", "`expect: { status: completed }`"),
        ):
            if key not in entries:
                self.diags.add(
                    "E211",
                    self.decl.name,
                    f"scenario `{name}` has no `{key}` option",
                    help=f"add {example}",
                )
        run = entries.get("run")
        started = self._run(run) if run is not None else None
        if started is None:
            return None
        spec = ScenarioSpec(started[0], started[1], self.module)
        readers = {
            "tools": self._tools,
            "replies": self._replies,
            "decisions": self._decisions,
            "events": self._events,
            "faults": self._faults,
            "expect": self._expect,
            "expect_calls": self._expect_calls,
            "under_faults": self._under_faults,
            "model_error": self._model_error,
        }
        for key, entry in entries.items():
            reader = readers.get(key)
            if reader is not None:
                reader(entry, spec)
        return spec

    def _entries(
        self, entries: Sequence[ast.Entry], known: tuple[str, ...], what: str
    ) -> dict[str, ast.Entry]:
        """The entries by key; unknown (E208) and repeated (E212) keys are reported."""
        out: dict[str, ast.Entry] = {}
        for entry in entries:
            key = entry.key.name
            if key not in known:
                report_unknown_key(self.diags, entry.key, known, what)
            elif key in out:
                self.diags.add(
                    "E212",
                    entry.key,
                    f"option `{key}` is given twice",
                    labels=[Label(out[key].key.span, "first given here")],
                    help="keep one of them",
                )
            else:
                out[key] = entry
        return out

    def bad(self, node: ast.Node, message: str, help: str) -> None:
        self.diags.add("E212", node, message, help=help)

    def _block(self, entry: ast.Entry, what: str, example: str) -> list[ast.Entry] | None:
        if isinstance(entry.value, ast.ObjectLit):
            return entry.value.entries
        self.bad(entry.value, f"`{entry.key.name}` takes {what}", help=f"write {example}")
        return None

    def _list(self, node: ast.Expr) -> list[ast.Expr] | None:
        return list(node.items) if isinstance(node, ast.ListLit) else None

    def _symbol(
        self, node: ast.Node, name: str, kinds: tuple[str, ...], what: str
    ) -> Symbol | None:
        sym = self.module.scope.get(name)
        if sym is None or sym.kind not in kinds:
            candidates = [n for n, s in self.module.scope.items() if s.kind in kinds]
            if sym is None:
                self.diags.add(
                    "E101",
                    node,
                    f"unknown {what} `{name}`",
                    help=did_you_mean(name, candidates)
                    or f"name {_article(what)} this file declares or imports",
                )
            else:
                self.diags.add(
                    "E212",
                    node,
                    f"`{name}` is {_article(sym.kind)}, not {_article(what)}",
                    labels=[Label(sym.decl.name.span, "declared here")],
                    help=f"name {_article(what)} here",
                )
            return None
        return sym

    def _typed_call(self, call: ast.Call, kinds: tuple[str, ...], what: str) -> Symbol | None:
        """A call of a declaration of `kinds`, its arguments typed; None when it is not one."""
        if not isinstance(call.callee, ast.Name):
            self.bad(
                call.callee, f"expected the name of {_article(what)}", help="write `name(args)`"
            )
            return None
        sym = self._symbol(call.callee, call.callee.name, kinds, what)
        if sym is None:
            return None
        self.exprs.references_ok = True
        try:
            self.exprs.step_or_expr(call)
        finally:
            self.exprs.references_ok = False
        return sym

    # --- run and expect -------------------------------------------------------------------

    def _run(self, entry: ast.Entry) -> tuple[Symbol, ast.Call] | None:
        value = entry.value
        if not isinstance(value, ast.Call):
            self.bad(
                value, "`run` takes a call of a workflow", help="write `run: workflow_name(args)`"
            )
            return None
        sym = self._typed_call(value, ("workflow",), "workflow")
        return (sym, value) if sym is not None else None

    def _expect(self, entry: ast.Entry, spec: ScenarioSpec) -> None:
        entries = self._block(
            entry, "`{ status: ..., output: ... }`", "`expect: { status: completed }`"
        )
        if entries is None:
            return
        given = self._entries(entries, _EXPECT_KEYS, "`expect`")
        status = given.get("status")
        if status is not None:
            spec.status = self._word(status, STATUSES) or spec.status
        elif "error" in given or "message" in given:
            spec.status = "failed"
        output = given.get("output")
        if output is not None:
            returns = self.decls.signatures[spec.workflow.name].returns
            self.exprs.expect(output.value, returns, " as the workflow's output")
            spec.output = output.value
            if spec.status != "completed":
                self.bad(
                    output.key, "`output` goes with `status: completed`", help="remove one of them"
                )
        error = given.get("error")
        if error is not None:
            spec.error = self._word(error, EXPECTED_ERRORS)
        message = given.get("message")
        if message is not None:
            spec.message = self._text(message)
        if (error is not None or message is not None) and spec.status not in (
            "failed",
            "cancelled",
        ):
            self.bad(
                (error or message).key,  # type: ignore[union-attr]
                f"`{'error' if error is not None else 'message'}` goes with `status: failed`",
                help="remove it, or expect `status: failed`",
            )

    def _word(self, entry: ast.Entry, choices: tuple[str, ...]) -> str | None:
        value = entry.value
        if isinstance(value, ast.Name) and value.name in choices:
            return value.name
        if isinstance(value, ast.ErrorName) and "tool_error" in choices:
            # Where an error kind stands, a declared error name does too.
            return resolve_error_name(self.module, value, value.name, self.diags)
        word = value.name if isinstance(value, ast.Name) else None
        shown = ", ".join(f"`{c}`" for c in choices)
        self.bad(
            value,
            f"`{entry.key.name}` takes one of {shown}" + (f", not `{word}`" if word else ""),
            help=(did_you_mean(word, choices) if word else None) or f"write one of {shown}",
        )
        return None

    def _text(self, entry: ast.Entry) -> str | None:
        value = entry.value
        if isinstance(value, ast.StrLit) and value.constant is not None:
            return value.constant
        self.bad(value, f"`{entry.key.name}` takes a plain string", help='write e.g. `"declined"`')
        return None

    # --- mocked results -------------------------------------------------------------------

    def _tools(self, entry: ast.Entry, spec: ScenarioSpec) -> None:
        entries = self._block(entry, "`{ tool_name: [result, ...] }`", "`tools: { fetch: [...] }`")
        for item in entries or []:
            sym = self._symbol(item.key, item.key.name, ("tool", "effect"), "tool or effect")
            results = self._list(item.value)
            if sym is None:
                continue
            if results is None:
                self.bad(
                    item.value,
                    f"`{item.key.name}` takes a list of results, one per call",
                    help=f"write `{item.key.name}: [result]`",
                )
                continue
            returns = self.decls.signatures[sym.name].returns
            plain: list[ast.Expr] = []
            answers: list[AnswerSpec] = []
            for result in results:
                if _is_answer(result):
                    assert isinstance(result, ast.ObjectLit)
                    answer = self._answer(sym, result, returns)
                    if answer is not None:
                        answers.append(answer)
                    continue
                self.exprs.expect(result, returns, f" as a result of `{item.key.name}`")
                plain.append(result)
            if plain:
                spec.tools[sym.name] = plain
            if answers:
                spec.answers[sym.name] = answers

    def _answer(self, tool: Symbol, node: ast.ObjectLit, returns: T.Type) -> AnswerSpec | None:
        """`{ args: { param: value, ... }, result: value }`: a result for the calls of
        `tool` with these arguments."""
        name = tool.decl.name.name
        example = f"`{{ args: {{ ... }}, result: ... }}` in `{name}`"
        given = self._entries(node.entries, _ANSWER_KEYS, "an answer")
        args_entry, result_entry = given.get("args"), given.get("result")
        if args_entry is None or result_entry is None:
            missing = "args" if args_entry is None else "result"
            self.diags.add(
                "E141",
                node,
                f"an answer of `{name}` has no `{missing}`",
                help=f"write {example}",
            )
            return None
        if not isinstance(args_entry.value, ast.ObjectLit):
            self.diags.add(
                "E141",
                args_entry.value,
                "`args` takes the arguments by parameter name",
                help=f"write {example}",
            )
            return None
        self.exprs.expect(result_entry.value, returns, f" as a result of `{name}`")
        params = {p.name: p.type for p in self.decls.signatures[tool.name].params}
        args: dict[str, ast.Expr] = {}
        ok = True
        for arg in args_entry.value.entries:
            param = params.get(arg.key.name)
            if param is None:
                self.diags.add(
                    "E140",
                    arg.key,
                    f"`{name}` has no parameter `{arg.key.name}`",
                    labels=[Label(tool.decl.name.span, "declared here")],
                    help=did_you_mean(arg.key.name, list(params))
                    or "parameters: " + (", ".join(f"`{p}`" for p in params) or "none"),
                )
                ok = False
                continue
            if arg.key.name in args:
                self.bad(arg.key, f"`{arg.key.name}` is given twice", help="keep one of them")
                ok = False
                continue
            t = params[arg.key.name]
            if T.holds_secret(t):
                self.diags.add(
                    "E142",
                    arg.key,
                    f"parameter `{arg.key.name}` of `{name}` is a secret: a test never sees "
                    "its value, so an answer cannot match it",
                    help=f"leave `{arg.key.name}` out of `args`: it then matches any value",
                )
                ok = False
                continue
            self.exprs.expect(arg.value, t, f" as argument `{arg.key.name}` of `{name}`")
            args[arg.key.name] = arg.value
        return AnswerSpec(args, result_entry.value) if ok else None

    def _replies(self, entry: ast.Entry, spec: ScenarioSpec) -> None:
        value = entry.value
        if isinstance(value, ast.StrLit):
            path = self._text(entry)
            if path is not None:
                if not (self.module.path.parent / path).is_file():
                    self.bad(
                        value,
                        f"no replies file `{path}` beside this file",
                        help="name a JSON file of scripted replies",
                    )
                spec.replies_file = str(Path(path))
            return
        entries = self._block(
            entry, '`{ agent: [reply, ...] }` or `"replies.json"`', "`replies: { triage: [...] }`"
        )
        for item in entries or []:
            sym = self._symbol(item.key, item.key.name, ("agent",), "agent")
            replies = self._list(item.value)
            if sym is None:
                continue
            if replies is None:
                self.bad(
                    item.value,
                    f"`{item.key.name}` takes a list of replies, one per model request",
                    help=f"write `{item.key.name}: [reply]`",
                )
                continue
            spec.replies[sym.name] = [
                reply for reply in (self._reply(sym, r) for r in replies) if reply is not None
            ]

    def _reply(self, agent: Symbol, node: ast.Expr) -> ReplySpec | None:
        if isinstance(node, ast.Call) and isinstance(node.callee, ast.Name):
            name = node.callee.name
            if name == PROMPT_HAS and self.module.scope.get(name) is None:
                return self._prompt_has(agent, node)
            if name == FOR_MODEL and self.module.scope.get(name) is None:
                return self._for_model(agent, node)
            sym = self.module.scope.get(name)
            if sym is not None and sym.kind in ("tool", "effect"):
                bound = _bound_params(agent, sym)
                if bound:
                    self._model_call(node, sym, bound)
                else:
                    self._typed_call(node, ("tool", "effect"), "tool or effect")
                return ReplySpec(tool=sym, call=node, bound=bound)
        returns = self.decls.signatures[agent.name].returns
        self.exprs.expect(node, returns, f" as a reply of `{agent.decl.name.name}`")
        return ReplySpec(value=node)

    def _model_call(self, call: ast.Call, tool: Symbol, bound: frozenset[str]) -> None:
        """A turn calling a tool whose parameters `bound` the agent binds: the arguments
        are those the model sends, the others in order (as the model sees the tool)."""
        assert isinstance(call.callee, ast.Name)
        signature = self.decls.signatures[tool.name]
        call.callee.ref, call.target, call.ty = tool, tool, signature.returns
        name = tool.decl.name.name
        params = [p for p in signature.params if p.name not in bound]
        required = sum(1 for p in params if not p.has_default)
        if not required <= len(call.args) <= len(params):
            wanted = str(len(params)) if required == len(params) else f"{required} to {len(params)}"
            shown = ", ".join(f"{p.name}: {p.type}" for p in params)
            self.diags.add(
                "E202",
                call,
                f"`{name}` takes {wanted} argument{'s' if len(params) != 1 else ''} from the "
                f"model, {len(call.args)} given (the agent binds {_names(bound)})",
                help=f"`{name}({shown})`",
            )
        for arg, param in zip(call.args, params):
            self.exprs.expect(arg, param.type, f" for parameter `{param.name}` of `{name}`")
        for arg in call.args[len(params) :]:
            self.exprs.expr(arg)

    def _text_and_reply(self, node: ast.Call, what: str, example: str) -> str | None:
        """The constant text that a `prompt_has(...)` or `for_model(...)` wrapper names
        first, or None (reported) when the call is not `NAME("text", reply)`."""
        first = node.args[0] if len(node.args) == 2 else None
        if isinstance(first, ast.StrLit) and first.constant is not None:
            return first.constant
        self.bad(node, what, help=f"write `{example}`")
        return None

    def _prompt_has(self, agent: Symbol, node: ast.Call) -> ReplySpec | None:
        text = self._text_and_reply(
            node,
            "`prompt_has` takes a text and a reply",
            'prompt_has("words in the prompt", reply)',
        )
        if text is None:
            return None
        reply = self._reply(agent, node.args[1])
        if reply is None:
            return None
        reply.prompt_has = text
        return reply

    def _for_model(self, agent: Symbol, node: ast.Call) -> ReplySpec | None:
        """`for_model("gpt-5.4-mini", reply)`: a reply to the requests sent to that one of
        the agent's models (a fallback model is scripted on its own)."""
        model = self._text_and_reply(
            node, "`for_model` takes a model's name and a reply", 'for_model("gpt-5.4-mini", reply)'
        )
        if model is None:
            return None
        options = self.program.options.get(agent.name, {})
        models = [options.get("model"), *(options.get("fallback") or [])]
        if model not in models:
            shown = ", ".join(f"`{m}`" for m in models if m)
            self.diags.add(
                "E255",
                node.args[0],
                f"agent `{agent.decl.name.name}` is never asked model `{model}`: its "
                f"`model:` lists {shown or 'none'}",
                help=did_you_mean(model, [m for m in models if isinstance(m, str)])
                or "name one of the models of its `model:` list",
            )
            return None
        reply = self._reply(agent, node.args[1])
        if reply is None:
            return None
        if reply.model is not None:
            self.bad(
                node.args[1],
                "a reply names its model once",
                help="leave out the inner `for_model(...)`",
            )
            return None
        reply.model = model
        return reply

    # --- people and events ------------------------------------------------------------------

    def _checkpoints(self, workflow: Symbol) -> dict[str, tuple[str, ...]]:
        """The checkpoints a run of `workflow` may open, with their options: its own, those
        of the workflows it calls, and the approvals of effects its agents may call."""
        found: dict[str, tuple[str, ...]] = {}
        seen: set[str] = set()
        todo = [workflow]
        while todo:
            wf = todo.pop()
            if wf.name in seen:
                continue
            seen.add(wf.name)
            decl = wf.decl
            assert isinstance(decl, ast.WorkflowDecl)
            for stmt in (s for block in decl.blocks() for s in walk(block)):
                inner = nested_statement(stmt)
                if isinstance(inner, ast.Checkpoint):
                    found.setdefault(inner.name.name, tuple(checkpoint_choices(inner)))
                call = step_call(stmt)
                target = call.target if call is not None else None
                if isinstance(target, Symbol) and target.kind == "workflow":
                    todo.append(target)
                elif isinstance(target, Symbol) and target.kind == "agent":
                    for tool in self.program.options.get(target.name, {}).get("tools", []):
                        effect = self.program.symbols.get(tool)
                        requires = self.program.options.get(tool, {}).get("requires")
                        if effect is not None and requires == "approval":
                            found.setdefault(effect.decl.name.name, ("approve", "reject"))
        return found

    def _decisions(self, entry: ast.Entry, spec: ScenarioSpec) -> None:
        entries = self._block(entry, "`{ checkpoint: choice }`", "`decisions: { review: approve }`")
        checkpoints = self._checkpoints(spec.workflow)
        for item in entries or []:
            name = item.key.name
            options = checkpoints.get(name)
            if options is None:
                shown = spec.workflow.decl.name.name
                self.diags.add(
                    "E101",
                    item.key,
                    f"unknown checkpoint `{name}`: a run of `{shown}` opens no checkpoint of that name",
                    help=did_you_mean(name, list(checkpoints))
                    or "checkpoints: " + (", ".join(f"`{c}`" for c in checkpoints) or "none"),
                )
                continue
            values = self._list(item.value)
            if values is None:
                values = [item.value]
            decisions = [self._decision(name, v, options) for v in values]
            spec.decisions[name] = [d for d in decisions if d is not None]

    def _decision(self, name: str, node: ast.Expr, options: tuple[str, ...]) -> DecisionSpec | None:
        if isinstance(node, ast.Name):
            choice = self._choice(name, node, options)
            return DecisionSpec(choice) if choice is not None else None
        if not isinstance(node, ast.ObjectLit):
            self.bad(
                node,
                f"a decision at `{name}` is one of its options or `{{ choice: ..., by: ... }}`",
                help=f"write e.g. `{name}: {options[0]}`",
            )
            return None
        given = self._entries(node.entries, _DECISION_KEYS, "a decision")
        choice_entry = given.get("choice")
        if choice_entry is None:
            self.diags.add(
                "E211", node, "a decision has no `choice`", help=f"add `choice: {options[0]}`"
            )
            return None
        if not isinstance(choice_entry.value, ast.Name):
            self.bad(
                choice_entry.value,
                "`choice` takes an option name",
                help=f"write `choice: {options[0]}`",
            )
            return None
        choice = self._choice(name, choice_entry.value, options)
        decision = DecisionSpec(choice or options[0])
        by = given.get("by")
        if by is not None:
            decision.by = self._text(by) or decision.by
        comment = given.get("comment")
        if comment is not None:
            decision.comment = self._text(comment)
        after = given.get("after")
        if after is not None:
            if isinstance(after.value, ast.DurationLit):
                decision.after_ms = after.value.millis
            else:
                self.bad(after.value, "`after` takes a duration", help="write e.g. `after: 2h`")
        return decision if choice is not None else None

    def _choice(self, name: str, node: ast.Name, options: tuple[str, ...]) -> str | None:
        if node.name in options or node.name == TIMEOUT_DECISION:
            return node.name
        shown = ", ".join(f"`{o}`" for o in options)
        self.bad(
            node,
            f"`{node.name}` is not an option of checkpoint `{name}` (options: {shown})",
            help=did_you_mean(node.name, [*options, TIMEOUT_DECISION])
            or f"decide one of {shown}, or `timeout` to let its timeout decide",
        )
        return None

    def _events(self, entry: ast.Entry, spec: ScenarioSpec) -> None:
        entries = self._block(entry, "`{ event: [payload, ...] }`", "`events: { paid: [...] }`")
        for item in entries or []:
            sym = self._symbol(item.key, item.key.name, ("event",), "event")
            payloads = self._list(item.value)
            if sym is None or payloads is None:
                if sym is not None:
                    self.bad(
                        item.value,
                        f"`{item.key.name}` takes a list of payloads, one per signal",
                        help=f"write `{item.key.name}: [payload]`",
                    )
                continue
            payload = self.decls.events.get(sym.name) or T.NULL
            plain: list[ast.Expr] = []
            keyed: list[KeyedPayload] = []
            for value in payloads:
                if _is_keyed_payload(value):
                    assert isinstance(value, ast.ObjectLit)
                    sent = self._keyed_payload(item.key.name, value, payload)
                    if sent is not None:
                        keyed.append(sent)
                    continue
                self.exprs.expect(value, payload, f" as a payload of `{item.key.name}`")
                plain.append(value)
            spec.events[sym.name] = plain
            if keyed:
                spec.keyed_events[sym.name] = keyed

    def _keyed_payload(
        self, event: str, node: ast.ObjectLit, payload: T.Type
    ) -> KeyedPayload | None:
        given = self._entries(node.entries, _KEYED_KEYS, "a keyed payload")
        key, value = given.get("key"), given.get("payload")
        if key is None or value is None:
            missing = "key" if key is None else "payload"
            self.diags.add(
                "E143",
                node,
                f"a keyed payload of `{event}` has no `{missing}`",
                help='write `{ key: "o-1", payload: ... }` (`payload: null` for an event '
                "without one)",
            )
            return None
        self.exprs.expect(key.value, T.STR, f" as the correlation key of `{event}`")
        self.exprs.expect(value.value, payload, f" as a payload of `{event}`")
        return KeyedPayload(key.value, value.value)

    # --- faults and expected calls -----------------------------------------------------------

    def _faults(self, entry: ast.Entry, spec: ScenarioSpec) -> None:
        items = self._list(entry.value)
        if items is None:
            self.bad(
                entry.value,
                "`faults` takes a list of `{ kind, at, times }`",
                help="write `faults: [{ kind: transient, at: fetch }]`",
            )
            return
        for item in items:
            if not isinstance(item, ast.ObjectLit):
                self.bad(
                    item,
                    "a fault is `{ kind: ..., at: ... }`",
                    help="write `{ kind: transient, at: fetch }`",
                )
                continue
            given = self._entries(item.entries, _FAULT_KEYS, "a fault")
            kind_entry, at_entry = given.get("kind"), given.get("at")
            if kind_entry is None or at_entry is None:
                missing = "kind" if kind_entry is None else "at"
                self.diags.add(
                    "E211",
                    item,
                    f"a fault has no `{missing}`",
                    help="write `{ kind: transient, at: fetch }`",
                )
                continue
            kind = self._word(kind_entry, FAULT_KINDS)
            at = at_entry.value
            target = (
                self._symbol(at, at.name, ("tool", "effect", "agent"), "tool, effect or agent")
                if isinstance(at, ast.Name)
                else None
            )
            if not isinstance(at, ast.Name):
                self.bad(
                    at, "`at` names a tool, effect or agent", help="write e.g. `at: fetch_order`"
                )
            times = 1
            times_entry = given.get("times")
            if times_entry is not None:
                if isinstance(times_entry.value, ast.IntLit) and times_entry.value.value >= 1:
                    times = times_entry.value.value
                else:
                    self.bad(
                        times_entry.value,
                        "`times` takes a whole number of at least 1",
                        help="write e.g. `times: 2`",
                    )
            message_entry = given.get("message")
            message = self._text(message_entry) if message_entry is not None else None
            if kind is None or target is None:
                continue
            if kind == "malformed_output" and target.kind != "agent":
                self.bad(
                    kind_entry.value,
                    "`malformed_output` is a fault of agents",
                    help="inject `tool_error` into a tool",
                )
                continue
            spec.faults.append(FaultSpec(kind, target, times, message))

    def _model_error(self, entry: ast.Entry, spec: ScenarioSpec) -> None:
        text = entry.value.constant if isinstance(entry.value, ast.StrLit) else None
        if not isinstance(text, str) or not text:
            self.bad(
                entry.value,
                "`model_error` takes a string saying which reply is wrong",
                help='write e.g. `model_error: "triage picks `search_web`"`',
            )
            return
        spec.model_error = text

    def _under_faults(self, entry: ast.Entry, spec: ScenarioSpec) -> None:
        example = "`under_faults: { worker_crash: same }`"
        for item in self._block(entry, "`{ fault_class: outcome }`", example) or []:
            fault = item.key.name
            if fault not in BENCH_FAULTS:
                shown = ", ".join(f"`{f}`" for f in BENCH_FAULTS)
                self.bad(
                    item.key,
                    f"unknown fault class `{fault}`",
                    help=did_you_mean(fault, BENCH_FAULTS) or f"fault classes: {shown}",
                )
                continue
            values = list(item.value.items) if isinstance(item.value, ast.ListLit) else [item.value]
            for value in values:
                outcome = self._fault_outcome(fault, value, spec)
                if outcome is not None:
                    spec.under_faults.append(outcome)

    def _fault_outcome(
        self, fault: str, value: ast.Expr, spec: ScenarioSpec
    ) -> FaultOutcome | None:
        if isinstance(value, ast.Name) and value.name in FAULT_OUTCOMES:
            return FaultOutcome(fault, value.name)
        if isinstance(value, ast.Name):
            shown = ", ".join(f"`{o}`" for o in FAULT_OUTCOMES)
            self.bad(
                value,
                f"the outcome under `{fault}` is one of {shown}, not `{value.name}`",
                help=did_you_mean(value.name, FAULT_OUTCOMES) or f"write one of {shown}",
            )
            return None
        if not isinstance(value, ast.ObjectLit):
            self.bad(
                value,
                f"`{fault}` takes an outcome or `{{ expect, at, late }}`",
                help=f"write e.g. `{fault}: same` or `{fault}: {{ expect: failed, at: pay }}`",
            )
            return None
        given = self._entries(value.entries, _OUTCOME_KEYS, "a fault outcome")
        expect_entry = given.get("expect")
        if expect_entry is None:
            self.diags.add(
                "E211", value, "a fault outcome has no `expect`", help="add `expect: same`"
            )
            return None
        expect = self._word(expect_entry, FAULT_OUTCOMES)
        late_entry = given.get("late")
        late = self._word(late_entry, LATENESS) if late_entry is not None else None
        at = None
        at_entry = given.get("at")
        if at_entry is not None:
            at = self._fault_target(fault, at_entry.value, spec)
            if at is None:
                return None
        if expect is None or (late_entry is not None and late is None):
            return None
        return FaultOutcome(fault, expect, at, late)

    def _fault_target(self, fault: str, node: ast.Expr, spec: ScenarioSpec) -> str | None:
        if not isinstance(node, ast.Name):
            self.bad(node, "`at` takes a name", help="write e.g. `at: fetch_order`")
            return None
        if fault == "approval_delay":
            checkpoints = self._checkpoints(spec.workflow)
            if node.name in checkpoints:
                return node.name
            self.bad(
                node,
                f"`{node.name}` is not a checkpoint a run of this workflow may open",
                help=did_you_mean(node.name, list(checkpoints))
                or f"checkpoints: {', '.join(checkpoints) or 'none'}",
            )
            return None
        sym = self._symbol(node, node.name, ("tool", "effect", "agent"), "tool, effect or agent")
        return None if sym is None else sym.name

    def _expect_calls(self, entry: ast.Entry, spec: ScenarioSpec) -> None:
        items = self._list(entry.value)
        if items is None:
            self.bad(
                entry.value,
                "`expect_calls` takes a list of names or calls",
                help="write `expect_calls: [fetch, triage]`",
            )
            return
        kinds = ("tool", "effect", "agent", "workflow")
        what = "tool, effect, agent or workflow"
        calls: list[ExpectedCall] = []
        for item in items:
            if isinstance(item, ast.Name):
                sym = self._symbol(item, item.name, kinds, what)
                if sym is not None:
                    calls.append(ExpectedCall(sym, None))
            elif isinstance(item, ast.Call):
                sym = self._typed_call(item, kinds, what)
                if sym is not None:
                    calls.append(ExpectedCall(sym, item))
            else:
                self.bad(
                    item,
                    "an expected call is a name or a call",
                    help='write `fetch` or `fetch("o-1")`',
                )
        spec.expect_calls = calls
