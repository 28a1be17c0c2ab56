"""LALR(1) tables for the grammar and the loop that runs them.

Lark builds the tables from `grammar/mnlang.lark`; they are cached on disk
(marshal format) keyed by a checksum of the grammar, so `mnc check` neither imports Lark nor
rebuilds the tables once the cache is warm. The driver below replaces Lark's
parser loop: it shapes each rule's children the way Lark's tree builder does
(tokens named `_X` are dropped, rules named `_x` are spliced into their parent,
`?rule` passes a single child through) and hands them to a builder method
named after the rule or its alias. Chains of single-child `?rule`s, which make
up most reductions in expressions, cost one table lookup each.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import zlib
from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from pathlib import Path
from typing import Any, Protocol

import msgspec

# Bump when the cached layout changes.
_FORMAT = 1
_START_SYMBOLS = ("start", "expr")

DROP, KEEP, SPLICE = 0, 1, 2


class _TokenLike(Protocol):
    type: str


class Rule(msgspec.Struct, frozen=True):
    origin: str
    shape: tuple[int, ...]  # per right-hand-side symbol: DROP, KEEP or SPLICE
    inline: bool  # `_rule`: its value is the list of its children, spliced into the parent
    expand1: bool  # `?rule` without an alias: a single child is passed through
    method: str  # the builder method: the alias, else the rule's name


class Tables(msgspec.Struct, frozen=True):
    # Per state: terminal -> shift state (>= 0) or ~rule (< 0); nonterminal -> goto state.
    actions: list[dict[str, int]]
    rules: list[Rule]
    start_states: dict[str, int]
    end_states: dict[str, int]

    def to_data(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "actions": self.actions,
            "rules": [[r.origin, list(r.shape), r.inline, r.expand1, r.method] for r in self.rules],
            "start_states": self.start_states,
            "end_states": self.end_states,
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Tables:
        if data.get("format") != _FORMAT:
            raise ValueError("stale table format")
        rules = [Rule(o, tuple(s), i, e, m) for o, s, i, e, m in data["rules"]]
        return cls(data["actions"], rules, data["start_states"], data["end_states"])


def build_tables(grammar: str, *, strict: bool = False) -> Tables:
    """Build the tables with Lark (slow: imports Lark and runs the LALR analysis)."""
    from lark import Lark
    from lark.lexer import Lexer

    class _NoLexer(Lexer):
        """Lark needs a lexer class to build; tokens come from `mnlang.syntax.lexer`."""

        def __init__(self, lexer_conf: Any) -> None:
            pass

        def lex(self, lexer_state: Any, parser_state: Any) -> Iterator[Any]:
            return iter(())

    lark = Lark(
        grammar,
        parser="lalr",
        lexer=_NoLexer,
        start=list(_START_SYMBOLS),
        maybe_placeholders=False,
        strict=strict,
    )
    index = {rule: i for i, rule in enumerate(lark.rules)}
    rules: list[Rule] = []
    for rule in lark.rules:
        origin = str(rule.origin.name)  # Lark names are `Token`s, a `str` subclass
        shape = tuple(
            DROP
            if sym.is_term and getattr(sym, "filter_out", False)
            else SPLICE
            if not sym.is_term and sym.name.startswith("_")
            else KEEP
            for sym in rule.expansion
        )
        inline = origin.startswith("_")
        expand1 = bool(rule.options.expand1) and not rule.alias
        if inline and expand1:
            raise ValueError(f"rule `{origin}` cannot be both inlined (`_`) and `?`")
        rules.append(Rule(origin, shape, inline, expand1, str(rule.alias or origin)))
    table = lark.parser.parser.parser.parse_table
    actions: list[dict[str, int]] = []
    for state in range(len(table.states)):
        row: dict[str, int] = {}
        for symbol, (action, arg) in table.states[state].items():
            row[str(symbol)] = int(arg) if action.name == "Shift" else ~index[arg]
        actions.append(row)
    return Tables(
        actions,
        rules,
        {str(k): int(v) for k, v in table.start_states.items()},
        {str(k): int(v) for k, v in table.end_states.items()},
    )


def cache_dir() -> Path | None:
    """Where parse tables are cached: `$MNC_CACHE_DIR`, else `$XDG_CACHE_HOME/mnlang`,
    else `~/.cache/mnlang`; None when no home can be found."""
    explicit = os.environ.get("MNC_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / "mnlang"
    try:
        return Path.home() / ".cache" / "mnlang"
    except RuntimeError:  # no HOME and no passwd entry
        return None


def load_tables(grammar: str, directory: Path | None) -> Tables:
    """The tables for `grammar`, from the cache when it holds them, else built and cached.

    A missing, unreadable or read-only cache only costs time: the tables are
    then built in memory.
    """
    checksum = zlib.crc32(grammar.encode())
    name = f"parser-{_FORMAT}-{checksum:08x}-{len(grammar)}.marshal"
    path = directory / name if directory is not None else None
    if path is not None:
        try:
            return Tables.from_data(marshal.loads(path.read_bytes()))
        except (OSError, ValueError, EOFError, KeyError, TypeError):
            pass
    tables = build_tables(grammar)
    if path is not None:
        _write_atomically(path, marshal.dumps(tables.to_data()))
    return tables


def _write_atomically(path: Path, data: bytes) -> None:
    """Write the cache file whole or not at all; failing to cache only costs time later."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


class ParseError(Exception):
    """The parser met `token` where the grammar allows none of `expected`."""

    def __init__(self, token: Any, expected: set[str], previous: Any) -> None:
        super().__init__(f"unexpected {token.type}")
        self.token = token
        self.expected = expected  # terminals that would have been shifted
        self.previous = previous  # the last token shifted before the error, if any


Reducer = Callable[[list[Any]], Any]


class Driver:
    """Runs the tables over a token stream, calling a builder method at each reduction."""

    def __init__(self, tables: Tables, builder: object) -> None:
        self.tables = tables
        self.actions = tables.actions
        # Per rule: (nonterminal, length of its right-hand side, reducer); reducer None
        # marks a single-child `?rule` whose value is its child's.
        self.rules: list[tuple[str, int, Reducer | None]] = [
            (rule.origin, len(rule.shape), _reducer(rule, builder)) for rule in tables.rules
        ]
        self.chains: dict[tuple[int, int, str], int] = {}

    def parse(self, tokens: Iterable[_TokenLike], start: str, end: _TokenLike) -> Any:
        """The builder's value for the whole input; `end` stands for the end of the input."""
        actions = self.actions
        rules = self.rules
        end_state = self.tables.end_states[start]
        states = [self.tables.start_states[start]]
        values: list[Any] = []
        previous: Any = None
        for token in chain(tokens, (end,)):
            kind = token.type
            while True:
                act = actions[states[-1]].get(kind)
                if act is None:
                    # The end state has no actions: reaching it on `$END` is success.
                    if states[-1] == end_state and token is end:
                        return values[-1]
                    raise ParseError(token, self.expected(states), previous)
                if act >= 0:
                    states.append(act)
                    values.append(token)
                    previous = token
                    break
                origin, size, reduce = rules[~act]
                if reduce is None:
                    states[-1] = self.pass_through(states[-2], states[-1], kind)
                    continue
                if size:
                    children = values[-size:]
                    del values[-size:]
                    del states[-size:]
                else:
                    children = []
                values.append(reduce(children))
                states.append(actions[states[-1]][origin])
        raise AssertionError("the end token is always consumed above")

    def pass_through(self, below: int, top: int, kind: str) -> int:
        """The top state after the run of single-child `?rule` reductions that `kind` causes
        on top of `below` (e.g. `name` -> `postfix` -> ... -> `expr`): it depends only on
        these three, so it is computed once and remembered."""
        key = (below, top, kind)
        found = self.chains.get(key)
        if found is not None:
            return found
        state = top
        while True:
            act = self.actions[state].get(kind)
            if act is None or act >= 0:
                break
            origin, _, reduce = self.rules[~act]
            if reduce is not None:
                break
            state = self.actions[below][origin]
        self.chains[key] = state
        return state

    def expected(self, states: list[int]) -> set[str]:
        """The terminals the parser could shift next from this stack (after reductions)."""
        candidates = [s for s in self.actions[states[-1]] if s.isupper()]
        return {kind for kind in candidates if self._shifts(states, kind)}

    def _shifts(self, states: list[int], kind: str) -> bool:
        stack = list(states)
        while True:
            act = self.actions[stack[-1]].get(kind)
            if act is None:
                return False
            if act >= 0:
                return True
            origin, size, _ = self.rules[~act]
            if size:
                del stack[-size:]
            goto = self.actions[stack[-1]].get(origin)
            if goto is None:
                return False
            stack.append(goto)
            if kind == "$END" and stack[-1] in self.tables.end_states.values():
                return True


def _reducer(rule: Rule, builder: object) -> Reducer | None:
    """The function that turns a rule's right-hand-side values into its value."""
    if rule.expand1 and rule.shape == (KEEP,):
        return None
    method: Reducer | None = None if rule.inline else getattr(builder, rule.method, None)
    if not rule.inline and method is None:
        raise TypeError(f"the AST builder has no method for grammar rule `{rule.method}`")
    plan = [(i, kind == SPLICE) for i, kind in enumerate(rule.shape) if kind != DROP]
    plan_needed = len(plan) != len(rule.shape) or any(splice for _, splice in plan)
    first_spliced = bool(plan) and plan[0][1]
    rest = plan[1:] if first_spliced else plan

    def shape(values: list[Any]) -> list[Any]:
        # A spliced first child (left recursion: `xs: xs "," x`) is extended in place, as
        # each value is used once; copying it would make long lists quadratic.
        children: list[Any] = values[plan[0][0]] if first_spliced else []
        for i, splice in rest:
            if splice:
                children.extend(values[i])
            else:
                children.append(values[i])
        return children

    if rule.inline:
        return shape if plan_needed else list
    assert method is not None
    build: Reducer = method
    if rule.expand1:
        if plan_needed:
            return lambda values: _one_or(shape(values), build)
        return lambda values: values[0] if len(values) == 1 else build(values)
    if plan_needed:
        return lambda values: build(shape(values))
    return build


def _one_or(children: list[Any], build: Reducer) -> Any:
    return children[0] if len(children) == 1 else build(children)
