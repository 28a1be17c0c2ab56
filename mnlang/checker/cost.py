"""Cost: the static worst-case cost of one run, warned about when it is over `budget:` (W601).

The worst case counts every retry attempt of every step (`attempts: unlimited` as
many tries as its shortest delays fit in its `max_elapsed` or the workflow's deadline,
`mnlang.checker.retries`): for an agent,
attempts x turns x (`max_tokens` output tokens + an estimate of the prompt's
input tokens) at the model's prices; for a tool or effect, attempts x its
declared `cost`; for a child workflow, its own worst case (capped by its own
`budget`, which the runtime enforces). A loop multiplies its body by the
length of a literal list, by `limit` for a `parallel for` over a list of
unknown length, by `DEFAULT_ITEMS` otherwise, and a `while` by its `max`;
an `if` or `match` counts its costliest branch; `parallel` branches add up.
An agent whose model has no price is counted as $0 and warned about (W602).
"""

from __future__ import annotations

from decimal import ROUND_UP, Decimal

import msgspec

from mnlang.checker.options import UNLIMITED, RetryPolicy
from mnlang.checker.program import ModuleInfo, Program, Symbol
from mnlang.checker.retries import worst_case_tries
from mnlang.checker.steps import (
    called_symbol,
    nested_statement,
    options_of,
    step_call,
    walk,
    workflows,
    written_option,
)
from mnlang.checker.suggest import did_you_mean
from mnlang.diagnostics import Diagnostics, Label
from mnlang.models.estimate import (
    DEFAULT_MAX_TOKENS,
    PROMPT_OVERHEAD_TOKENS,
    conversation_worst_case,
    template_tokens,
)
from mnlang.models.prices import (
    PRICES_ENV,
    PriceTable,
    PriceTableError,
    load_prices,
    priced_as,
)
from mnlang.span import Span
from mnlang.syntax import ast

# Items assumed for a loop over a list whose length the checker cannot know.
DEFAULT_ITEMS = 100
_TIMES = "\N{MULTIPLICATION SIGN}"


def check_cost(program: Program, diags: Diagnostics) -> None:
    """Report W602 for unpriced models and W601 for workflows whose worst case is over budget."""
    try:
        prices = load_prices()
    except PriceTableError as exc:
        diags.add(
            "E094",
            Span(exc.path, exc.line, exc.col, exc.line, exc.col + 1),
            f"bad price table: {exc.message}",
            help=f"fix the file, or unset `{PRICES_ENV}` to use the default prices",
        )
        return
    estimator = _Estimator(program, prices)
    for agent in program.symbols_of("agent"):
        _check_model_price(program, agent, prices, diags)
    for wf in workflows(program):
        budget = options_of(program, wf).get("budget")
        if not isinstance(budget, Decimal):
            continue
        estimate = estimator.workflow(wf)
        if estimate.total > budget:
            _report_over_budget(wf, budget, estimate, diags)


def _price_entries(options: dict[str, object]) -> list[str]:
    """The price-table entries an agent's calls are priced by: its model's, then each
    fallback model's (`model: ["gpt-4o", "gpt-4o-mini"]`)."""
    model = options.get("model")
    if not isinstance(model, str):
        return []
    fallback = options.get("fallback")
    models = [model, *(fallback if isinstance(fallback, list) else [])]
    provider = options.get("provider")
    return [priced_as(m, provider if isinstance(provider, str) else None) for m in models]


def _check_model_price(
    program: Program, agent: Symbol, prices: PriceTable, diags: Diagnostics
) -> None:
    entry = written_option(agent, "model")
    if entry is None:
        return
    items = entry.value.items if isinstance(entry.value, ast.ListLit) else [entry.value]
    for name, item in zip(_price_entries(options_of(program, agent)), items, strict=False):
        if prices.model(name) is not None:
            continue
        diags.add(
            "W602",
            item,
            f"no price for model `{name}`: agent `{agent.decl.name.name}` is counted as $0 "
            "for it in cost estimates",
            help=did_you_mean(name, list(prices.models))
            or f"add the model to a price file and point `{PRICES_ENV}` at it",
        )


def _report_over_budget(
    wf: Symbol, budget: Decimal, estimate: _Estimate, diags: Diagnostics
) -> None:
    at = written_option(wf, "budget")
    labels: list[Label] = []
    help_line = None
    top = estimate.costliest
    if top is not None:
        labels.append(Label(top.span, f"costliest step: {money(top.total)}"))
        times = f"{top.times} runs {_TIMES} " if top.times > 1 else ""
        help_line = f"the costliest step is `{top.name}` ({times}{top.detail})"
    diags.add(
        "W601",
        at if at is not None else wf.decl.name,
        f"worst-case cost {money(estimate.total)} exceeds `budget: {money(budget)}`",
        labels=labels,
        help=help_line,
        notes=[
            *estimate.notes,
            "the worst case counts every retry attempt, every loop iteration and the "
            "costliest branch of each `if` and `match`; the runtime stops a run at its budget",
        ],
    )


def money(amount: Decimal) -> str:
    """An amount for people: cents from $1 up, up to four decimals below, rounded up."""
    if amount == 0:
        return "$0"
    places = Decimal("0.01") if amount >= 1 else Decimal("0.0001")
    text = format(amount.quantize(places, rounding=ROUND_UP), "f")
    whole, _, cents = text.partition(".")
    return f"${whole}.{cents.rstrip('0').ljust(2, '0')}"


class _StepCost(msgspec.Struct, frozen=True):
    span: Span
    name: str
    each: Decimal  # the worst case of one execution of the step
    detail: str  # how `each` was reckoned, for the help line
    times: int = 1  # how often loops around it run it

    @property
    def total(self) -> Decimal:
        return self.each * self.times


class _Estimate(msgspec.Struct, frozen=True):
    total: Decimal = Decimal(0)
    costliest: _StepCost | None = None
    notes: tuple[str, ...] = ()

    def then(self, other: _Estimate) -> _Estimate:
        """This, followed by `other` (or running alongside it)."""
        top = self.costliest
        if other.costliest is not None and (top is None or other.costliest.total > top.total):
            top = other.costliest
        return _Estimate(self.total + other.total, top, self.notes + other.notes)

    def times(self, n: int, note: str | None) -> _Estimate:
        top = self.costliest
        scaled = msgspec.structs.replace(top, times=top.times * n) if top is not None else None
        notes = self.notes + ((note,) if note is not None and self.total > 0 else ())
        return _Estimate(self.total * n, scaled, notes)


def _costliest(options: list[_Estimate]) -> _Estimate:
    """The branch with the highest worst case (the first of equals)."""
    return max(options, key=lambda e: e.total) if options else _Estimate()


class _Estimator:
    def __init__(self, program: Program, prices: PriceTable) -> None:
        self.program = program
        self.prices = prices
        self.done: dict[str, _Estimate] = {}
        # Workflows being estimated: a recursive call (E308) counts as nothing.
        self.active: set[str] = set()
        # The literal deadline of the workflow being estimated: it bounds unlimited retries.
        self.deadline_ms: int | None = None

    def workflow(self, wf: Symbol) -> _Estimate:
        known = self.done.get(wf.name)
        if known is not None:
            return known
        if wf.name in self.active:
            return _Estimate()
        decl = wf.decl
        assert isinstance(decl, ast.WorkflowDecl)
        self.active.add(wf.name)
        outer = self.deadline_ms
        deadline = options_of(self.program, wf).get("deadline")
        self.deadline_ms = deadline if isinstance(deadline, int) else None
        lists = _list_lengths(decl.body)
        estimate = self._block(wf.module, decl.body, lists)
        if decl.on_failure is not None:  # a failed run pays for its cleanup too
            estimate = estimate.then(self._block(wf.module, decl.on_failure.body, lists))
        self.deadline_ms = outer
        self.active.discard(wf.name)
        self.done[wf.name] = estimate
        return estimate

    def _block(self, module: ModuleInfo, block: ast.Block, lists: dict[str, int]) -> _Estimate:
        total = _Estimate()
        for stmt in block.stmts:
            total = total.then(self._stmt(module, stmt, lists))
        return total

    def _stmt(self, module: ModuleInfo, stmt: ast.Stmt, lists: dict[str, int]) -> _Estimate:
        call = step_call(stmt)
        if call is not None and call.detached:
            # A detached child run has its own budget: its cost is not the caller's.
            return _Estimate()
        if call is not None:
            sym = called_symbol(module, call)
            if sym is None:
                return _Estimate()
            step = self._step(sym, call)
            return _Estimate(step.total, step if step.total > 0 else None)
        loop = nested_statement(stmt)
        if isinstance(loop, ast.For):
            body = self._block(module, loop.body, lists)
            count, note = _iterations(loop, lists)
            return body.times(count, note)
        if isinstance(stmt, ast.While):
            bound = stmt.max
            if isinstance(bound, ast.IntLit) and bound.value >= 1:
                return self._block(module, stmt.body, lists).times(bound.value, None)
            return self._block(module, stmt.body, lists).times(DEFAULT_ITEMS, None)
        if isinstance(stmt, ast.If):
            then = self._block(module, stmt.then, lists)
            if stmt.orelse is None:
                return then
            orelse = (
                self._stmt(module, stmt.orelse, lists)
                if isinstance(stmt.orelse, ast.If)
                else self._block(module, stmt.orelse, lists)
            )
            return _costliest([then, orelse])
        if isinstance(stmt, ast.Match | ast.Select):
            return _costliest([self._block(module, arm.body, lists) for arm in stmt.arms])
        if isinstance(stmt, ast.Parallel):
            total = _Estimate()
            for branch in stmt.branches:
                total = total.then(self._block(module, branch, lists))
            return total
        if isinstance(stmt, ast.Try):
            # Worst case: the body runs to its end and fails there, then a handler runs.
            handlers = _costliest([self._block(module, c.body, lists) for c in stmt.catches])
            total = self._block(module, stmt.body, lists).then(handlers)
            if stmt.final is not None:
                total = total.then(self._block(module, stmt.final, lists))
            return total
        return _Estimate()

    def _step(self, sym: Symbol, call: ast.Call) -> _StepCost:
        name = sym.decl.name.name
        opts = options_of(self.program, sym)
        retry = opts.get("retry")
        attempts = self._tries(retry)
        tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
        if retry is not None and any(e.attempts == UNLIMITED for e in retry.entries):
            tries += " (unlimited: as many as fit in the time allowed)"
        if sym.kind == "workflow":
            child = self.workflow(sym)
            budget = opts.get("budget")
            if isinstance(budget, Decimal) and budget < child.total:
                return _StepCost(
                    call.span, name, budget, f"capped by its `budget: {money(budget)}`"
                )
            return _StepCost(call.span, name, child.total, f"worst case of workflow `{name}`")
        if sym.kind == "agent":
            return self._agent_step(sym, call, attempts, tries)
        price = opts.get("cost")
        each = price if isinstance(price, Decimal) else Decimal(0)
        return _StepCost(call.span, name, attempts * each, f"{tries} {_TIMES} {money(each)}")

    def _agent_step(self, sym: Symbol, call: ast.Call, attempts: int, tries: str) -> _StepCost:
        opts = options_of(self.program, sym)
        name = sym.decl.name.name
        models = _price_entries(opts) or ["?"]
        model = " + ".join(models)
        max_tokens: int = opts.get("max_tokens", DEFAULT_MAX_TOKENS)
        turns: int = opts.get("max_turns", 1)
        prompt = _prompt_tokens(opts.get("prompt"))
        if "system" in opts:  # the system prompt's text, the overhead counted once
            prompt += _prompt_tokens(opts["system"]) - PROMPT_OVERHEAD_TOKENS
        # At worst every request fails over through every model: each is paid for.
        model_cost = sum(
            (
                conversation_worst_case(self.prices.model(m), prompt, max_tokens, turns)
                for m in models
            ),
            Decimal(0),
        )
        tool_cost = turns * self._costliest_tool(opts.get("tools", []))
        each = attempts * (model_cost + tool_cost)
        per_turn = f"{turns} turns {_TIMES} " if turns > 1 else ""
        assumed = "" if "max_tokens" in opts else " (no `max_tokens`: assumed)"
        detail = f"{tries} {_TIMES} {per_turn}{max_tokens} tokens{assumed} at {model}"
        return _StepCost(call.span, name, each, detail)

    def _costliest_tool(self, names: list[str]) -> Decimal:
        """The most one call of any of an agent's tools can cost, retries included."""
        most = Decimal(0)
        for qualified in names:
            tool = self.program.symbols.get(qualified)
            if tool is None:
                continue
            opts = options_of(self.program, tool)
            price = opts.get("cost")
            retry = opts.get("retry")
            if isinstance(price, Decimal):
                most = max(most, price * self._tries(retry))
        return most

    def _tries(self, retry: RetryPolicy | None) -> int:
        """The most tries of one call; an unbounded policy is E240, reported before this
        pass runs, and counted as one try."""
        return worst_case_tries(retry, self.deadline_ms) or 1


def _prompt_tokens(prompt: object) -> int:
    """An estimate of a prompt's input tokens: its literal text, each interpolated value, and
    what the runtime adds (instructions and the output schema)."""
    if not isinstance(prompt, ast.StrLit):
        return PROMPT_OVERHEAD_TOKENS
    chars = sum(len(p) for p in prompt.parts if isinstance(p, str))
    values = sum(1 for p in prompt.parts if not isinstance(p, str))
    return template_tokens(chars, values)


def _list_lengths(body: ast.Block) -> dict[str, int]:
    """Variables assigned exactly once, from a list literal: their lengths are known."""
    lengths: dict[str, int] = {}
    counts: dict[str, int] = {}
    for stmt in walk(body):
        if isinstance(stmt, ast.Assign):
            name = stmt.target.name
            counts[name] = counts.get(name, 0) + 1
            if isinstance(stmt.value, ast.ListLit):
                lengths[name] = len(stmt.value.items)
    return {name: n for name, n in lengths.items() if counts[name] == 1}


def _iterations(loop: ast.For, lists: dict[str, int]) -> tuple[int, str | None]:
    """How many times a `for` body runs at worst, and a note when that was assumed."""
    iterable = loop.iterable
    if isinstance(iterable, ast.ListLit):
        return len(iterable.items), None
    if isinstance(iterable, ast.Name) and iterable.name in lists:
        return lists[iterable.name], None
    line = loop.span.line
    if loop.parallel and isinstance(loop.limit, ast.IntLit) and loop.limit.value >= 1:
        n = loop.limit.value
        return n, f"the `parallel for` on line {line} is counted as its `limit` of {n} items"
    return DEFAULT_ITEMS, (
        f"the loop on line {line} runs over a list of unknown length: "
        f"{DEFAULT_ITEMS} items are assumed"
    )
