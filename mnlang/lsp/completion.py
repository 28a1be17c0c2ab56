"""Completion: what may be written at the cursor, read from the tokens before it.

The text being typed rarely parses, so the context comes from the lexer alone:
the open brackets before the cursor and what opened them (`tool ... {` holds
tool options, `retry: {` retry options, `on: [` error kinds), the token just
before the cursor (`:` after a parameter wants a type, `retry:` a policy) and
the names of the last analysis that parsed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from mnlang.checker.builtins import BUILTINS
from mnlang.checker.expressions import RUN_FIELDS
from mnlang.checker.options import (
    AGENT_OPTIONS,
    CHECKPOINT_OPTIONS,
    EFFECT_OPTIONS,
    ERROR_KINDS,
    RETRY_OPTIONS,
    SCHEDULE_OPTIONS,
    TOOL_OPTIONS,
    WAIT_OPTIONS,
    WORKFLOW_OPTIONS,
)
from mnlang.checker.program import Program
from mnlang.checker.types import PRIMITIVES, Type
from mnlang.lsp.analysis import walk
from mnlang.syntax import ast
from mnlang.syntax.lexer import LexError, Token, tokenize

DECLARATION_WORDS = (
    *("import", "type", "enum", "tool", "effect", "agent", "event", "policy", "schedule"),
    *("workflow", "scenario"),
)
STATEMENT_WORDS = (
    *("if", "else", "match", "for", "parallel", "while", "checkpoint", "wait", "try"),
    *("return", "fail", "log", "yield", "publish", "start"),
)
OPTION_KEYS: dict[str, tuple[str, ...]] = {
    "tool": tuple(TOOL_OPTIONS),
    "effect": tuple(EFFECT_OPTIONS),
    "agent": tuple(AGENT_OPTIONS),
    "workflow": tuple(WORKFLOW_OPTIONS),
    "schedule": tuple(SCHEDULE_OPTIONS),
    "policy": tuple(RETRY_OPTIONS),
    "retry": tuple(RETRY_OPTIONS),
    "checkpoint": CHECKPOINT_OPTIONS,
    "wait": WAIT_OPTIONS,
}
# Option values that are one of a few words.
_WORDS: dict[str, tuple[str, ...]] = {
    "scope": ("run", "global"),
    "isolation": ("thread", "process"),
    "requires": ("approval",),
    "timeout": ("never",),
    "jitter": ("true", "false"),
    "once": ("true", "false"),
}
# Option values that name declarations of these kinds.
_NAMES: dict[str, tuple[str, ...]] = {
    "retry": ("policy",),
    "run": ("workflow",),
    "compensate": ("effect",),
    "tools": ("tool", "effect"),
}
_DECL_KINDS = {
    "TOOL": "tool",
    "EFFECT": "effect",
    "AGENT": "agent",
    "POLICY": "policy",
    "SCHEDULE": "schedule",
    "SCENARIO": "scenario",
    "WORKFLOW": "workflow",
    "TYPE": "type",
    "ENUM": "enum",
    "IMPORT": "import",
    "EVENT": "event",
}
_PARTIAL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Item:
    label: str
    kind: str  # keyword option type error_kind declaration variable builtin member
    detail: str = ""


@dataclass
class Names:
    """What the last analysis that parsed knows: declarations in scope by name (with their
    kind), local variables, record fields and enum members by type name."""

    declarations: dict[str, str] = field(default_factory=dict)
    locals: dict[str, str] = field(default_factory=dict)  # name -> type, as shown
    fields: dict[str, tuple[str, ...]] = field(default_factory=dict)
    members: dict[str, tuple[str, ...]] = field(default_factory=dict)
    modules: dict[str, dict[str, str]] = field(default_factory=dict)  # `import m`: m's names


@dataclass
class _Frame:
    """An open bracket before the cursor and what it holds."""

    bracket: str  # LBRACE LPAR LSQB
    kind: str  # a declaration kind, checkpoint, wait, block, record, params, call, list, ...
    key: str = ""  # for an option value: its key (`retry` in `retry: {`)


@dataclass
class _Context:
    frames: list[_Frame]
    statement: list[Token]  # the tokens of the current statement or entry before the cursor
    line_start: bool  # nothing but blanks between the statement's start and the cursor


def complete(text: str, offset: int, names: Names) -> list[Item]:
    """Completion items for the cursor at `offset`; the editor filters them by prefix."""
    prefix = text[:offset]
    partial = _PARTIAL.search(prefix)
    before = prefix[: partial.start()] if partial else prefix
    context = _context(before)
    if context is None:
        return []
    return list(_dedupe(_items(context, names)))


def _dedupe(items: Iterable[Item]) -> Iterable[Item]:
    seen: set[str] = set()
    for item in items:
        if item.label not in seen:
            seen.add(item.label)
            yield item


def _tokens(text: str) -> list[Token] | None:
    """The tokens of `text`; None when it ends inside a string or a comment."""
    end = len(text)
    for _ in range(8):
        try:
            return [t for t in tokenize(text[:end]) if t.type != "$END"]
        except LexError as e:
            if e.code == "E001":
                return None
            end = e.pos
    return None


def _context(before: str) -> _Context | None:
    line = before[before.rfind("\n") + 1 :]
    if _in_comment(line):
        return None
    tokens = _tokens(before)
    if tokens is None:
        return None
    frames: list[_Frame] = []
    statement: list[Token] = []
    for tok in tokens:
        kind = tok.type
        if kind in ("LBRACE", "LPAR", "LSQB"):
            frames.append(_open(kind, statement, frames))
            statement = [] if kind == "LBRACE" else [*statement, tok]
        elif kind in ("RBRACE", "RPAR", "RSQB"):
            if frames:
                frames.pop()
            statement = [] if kind == "RBRACE" else [*statement, tok]
        elif kind == "_NL" or (kind == "COMMA" and frames and frames[-1].bracket == "LBRACE"):
            statement = []
        else:
            statement.append(tok)
    if tokens and tokens[-1].type == "RBRACE":
        statement = [tokens[-1]]  # `} catch`, `} else`
    after_last = before[tokens[-1].end_pos :] if tokens else before
    line_start = not statement or ("\n" in after_last and statement[-1].type not in _CONTINUES)
    if line_start:
        statement = []
    return _Context(frames, statement, line_start)


# A statement goes on past a line break after these.
_CONTINUES = frozenset(
    {"COLON", "COMMA", "ASSIGN", "ARROW", "FATARROW", "LPAR", "LSQB", "DOT"}
    | {"EQ", "NE", "LT", "GT", "LE", "GE", "PLUS", "MINUS", "STAR", "SLASH", "PERCENT"}
    | {"QQ", "AND", "OR", "NOT"}
)


def _in_comment(line: str) -> bool:
    """Whether a `#` outside a string starts a comment before the end of `line`."""
    quoted = False
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and quoted:
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif ch == "#" and not quoted:
            return True
        i += 1
    return False


def _open(bracket: str, statement: list[Token], frames: list[_Frame]) -> _Frame:
    """What the bracket being opened after `statement` holds."""
    types = [t.type for t in statement]
    first = _DECL_KINDS.get(types[0], "") if types else ""
    key = statement[-2].value if len(types) >= 2 and types[-1] == "COLON" else ""
    if bracket == "LPAR":
        in_head = first in ("tool", "effect", "agent", "workflow") and "ARROW" not in types
        return _Frame(bracket, "params" if in_head else "call")
    if bracket == "LSQB":
        if types and types[-1] == "NAME" and statement[-1].value in ("list", "map"):
            return _Frame(bracket, "type")
        return _Frame(bracket, "list", key)
    if key:
        return _Frame(bracket, "value", key)
    if first == "type":
        return _Frame(bracket, "fields")
    if first and first != "import":
        return _Frame(bracket, first)
    if "CHECKPOINT" in types:
        return _Frame(bracket, "checkpoint")
    if "WAIT" in types:
        return _Frame(bracket, "wait")
    if types and types[-1] == "TYPE_NAME":
        return _Frame(bracket, "record")
    if "MATCH" in types:
        return _Frame(bracket, "match")
    if first == "import":
        return _Frame(bracket, "import")
    inherited = frames[-1].kind if frames else ""
    return _Frame(bracket, "block" if inherited in ("workflow", "block", "match") else "object")


def _items(context: _Context, names: Names) -> Iterable[Item]:
    frames = context.frames
    top = frames[-1] if frames else None
    statement = context.statement
    types = [t.type for t in statement]
    last = types[-1] if types else ""
    if last == "DOT" and len(statement) >= 2:
        yield from _after_dot(statement[-2], names)
        return
    if _wants_type(context, top, types):
        yield from _types(names)
        return
    if types[:2] == ["RBRACE", "CATCH"] or (types and types[0] == "CATCH"):
        yield from (Item(k, "error_kind") for k in (*ERROR_KINDS, "any"))
        return
    if top is not None and top.kind == "list" and top.key == "on":
        yield from (Item(k, "error_kind") for k in ERROR_KINDS)
        return
    if top is not None and top.kind == "list" and top.key in _NAMES:
        yield from _declarations(names, _NAMES[top.key])
        return
    if last == "COLON" and len(statement) >= 2:
        yield from _option_value(statement[-2].value, names)
        return
    if last == "WAIT":
        yield from _declarations(names, ("event",))
        return
    if top is None:
        if context.line_start:
            yield from (Item(w, "keyword") for w in DECLARATION_WORDS)
        return
    if context.line_start:
        option_kind = top.key if top.kind == "value" else top.kind
        for key in OPTION_KEYS.get(option_kind, ()):
            yield Item(key, "option", f"option of {_article(option_kind)}")
        if top.kind in ("workflow", "block"):
            yield from (Item(w, "keyword") for w in STATEMENT_WORDS)
        if top.kind in ("workflow", "block", "call", "list"):
            yield from _values(names)
        return
    if _after_parallel_iterable(types):
        # `parallel for x in xs |`: the header's options, `limit` before `first`.
        if "LIMIT" not in types and "FIRST" not in types:
            yield Item("limit", "keyword", "at most this many items at once")
        if "FIRST" not in types:
            yield Item("first", "keyword", "a quorum: go on when this many items have won")
        return
    if top.kind in ("workflow", "block", "call", "list", "value", "match") or last in (
        "ASSIGN",
        "IF",
        "RETURN",
        "FAIL",
        "LOG",
        "YIELD",
        "IN",
    ):
        yield from _values(names)


def _after_parallel_iterable(types: list[str]) -> bool:
    """Whether the cursor follows a complete iterable (or limit) of a `parallel for`."""
    at = next((i for i in range(len(types) - 1) if types[i : i + 2] == ["PARALLEL", "FOR"]), -1)
    if at < 0 or "IN" not in types[at:]:
        return False
    return types[-1] in ("NAME", "RPAR", "RSQB", "INT") and types[-2] not in ("FOR", "DOT")


def _wants_type(context: _Context, top: _Frame | None, types: list[str]) -> bool:
    last = types[-1] if types else ""
    if last == "ARROW":
        return True
    if top is None:
        return False
    return top.kind == "type" or (last == "COLON" and top.kind in ("params", "fields"))


def _types(names: Names) -> Iterable[Item]:
    for name in (*PRIMITIVES, "list", "map"):
        yield Item(name, "type", "builtin type")
    for name, kind in sorted(names.declarations.items()):
        if kind in ("type", "enum"):
            yield Item(name, "type", kind)


def _declarations(names: Names, kinds: tuple[str, ...]) -> Iterable[Item]:
    for name, kind in sorted(names.declarations.items()):
        if kind in kinds:
            yield Item(name, "declaration", kind)


def _option_value(key: str, names: Names) -> Iterable[Item]:
    for word in _WORDS.get(key, ()):
        yield Item(word, "keyword")
    if key in _NAMES:
        yield from _declarations(names, _NAMES[key])


def _values(names: Names) -> Iterable[Item]:
    for name, shown in sorted(names.locals.items()):
        yield Item(name, "variable", shown)
    for name, kind in sorted(names.declarations.items()):
        if kind in ("tool", "effect", "agent", "workflow"):
            yield Item(name, "declaration", kind)
    for name, kind in sorted(names.declarations.items()):
        if kind in ("enum", "type"):
            yield Item(name, "type", kind)
    for builtin in BUILTINS.values():
        yield Item(builtin.name, "builtin", builtin.signature)
    for word in ("true", "false", "null", "not"):
        yield Item(word, "keyword")


def _after_dot(before: Token, names: Names) -> Iterable[Item]:
    if before.type == "TYPE_NAME":
        for member in names.members.get(before.value, ()):
            yield Item(member, "member", before.value)
    elif before.value in names.modules:
        for name, kind in sorted(names.modules[before.value].items()):
            yield Item(name, "declaration", kind)
    elif before.value == "run" and "run" not in names.locals:
        for name, ty in RUN_FIELDS.items():
            yield Item(name, "member", str(ty))
    else:
        shown = names.locals.get(before.value, "").rstrip("?")
        for name in names.fields.get(shown, ()):
            yield Item(name, "member", shown)


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


_DECISION_FIELDS = ("choice", "approved", "by", "comment", "at")
_ERROR_FIELDS = ("kind", "message", "step")


def names_of(program: Program) -> Names:
    """The names a completion may offer, from a checked program."""
    module = program.root
    names = Names()
    for name, sym in module.scope.items():
        names.declarations[name] = sym.kind
    for alias, target in module.aliases.items():
        names.modules[alias] = {n: s.kind for n, s in target.scope.items() if s.module is target}
    for sym in program.symbols.values():
        shown = sym.decl.name.name
        if isinstance(sym.decl, ast.TypeDecl):
            names.fields[shown] = tuple(f.name.name for f in sym.decl.fields)
        elif isinstance(sym.decl, ast.EnumDecl):
            names.members[shown] = tuple(m.name for m in sym.decl.members)
    for decl in module.tree.decls:
        if isinstance(decl, ast.WorkflowDecl):
            for node in walk(decl):
                if isinstance(node, ast.Name) and node.ref in ("var", "param", "loop"):
                    ty = node.ty
                    if ty is not None:
                        names.locals.setdefault(node.name, str(ty))
                        _special_fields(names, ty)
    return names


def _special_fields(names: Names, ty: Type) -> None:
    inner = ty.unwrap()
    if inner.kind == "decision":
        names.fields[str(inner)] = _DECISION_FIELDS
    elif inner.kind == "error":
        names.fields[str(inner)] = _ERROR_FIELDS
