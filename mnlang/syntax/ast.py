"""The abstract syntax tree: plain dataclasses, each node with a `Span`.

The checker annotates expressions in place (`Expr.ty`); later stages read the
annotated tree and never re-parse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from mnlang.span import Span

if TYPE_CHECKING:
    from mnlang.syntax.lexer import Comment


@dataclass(slots=True)
class Node:
    span: Span


@dataclass(slots=True)
class Ident(Node):
    name: str


# ---- types -----------------------------------------------------------------


@dataclass(slots=True)
class TypeRef(Node):
    """`str`, `Order`, `list[Order]`, `map[int]`, `T?`."""

    name: str
    args: list[TypeRef] = field(default_factory=list)
    optional: bool = False


# ---- expressions -----------------------------------------------------------


@dataclass(slots=True)
class Expr(Node):
    ty: Any = field(default=None, kw_only=True, compare=False, repr=False)


@dataclass(slots=True)
class Name(Expr):
    name: str
    # What the name refers to, set by the checker: a Symbol, or "var", "param", "loop", "enum".
    ref: Any = field(default=None, kw_only=True, compare=False, repr=False)


@dataclass(slots=True)
class IntLit(Expr):
    value: int


@dataclass(slots=True)
class FloatLit(Expr):
    value: float


@dataclass(slots=True)
class MoneyLit(Expr):
    value: Decimal


@dataclass(slots=True)
class DurationLit(Expr):
    millis: int
    text: str


@dataclass(slots=True)
class StrLit(Expr):
    """A string; `parts` alternate literal text and interpolated expressions."""

    parts: list[str | Expr]
    triple: bool = False

    @property
    def constant(self) -> str | None:
        """The text when there is no interpolation, else None."""
        if all(isinstance(p, str) for p in self.parts):
            return "".join(p for p in self.parts if isinstance(p, str))
        return None


@dataclass(slots=True)
class BoolLit(Expr):
    value: bool


@dataclass(slots=True)
class NullLit(Expr):
    pass


@dataclass(slots=True)
class ListLit(Expr):
    items: list[Expr | ObjectLit]


@dataclass(slots=True)
class Entry(Node):
    key: Ident
    value: Expr | ObjectLit


@dataclass(slots=True)
class ObjectLit(Expr):
    """`{ key: value, ... }`: option blocks and scenario data."""

    entries: list[Entry]

    def get(self, key: str) -> Entry | None:
        for entry in self.entries:
            if entry.key.name == key:
                return entry
        return None


@dataclass(slots=True)
class ErrorName(Expr):
    """A bare declared error name in a list: `on: [timeout, PaymentDeclined]`."""

    name: str


@dataclass(slots=True)
class RecordLit(Expr):
    type_name: Ident
    entries: list[Entry]


@dataclass(slots=True)
class EnumMember(Expr):
    """`Category.damaged`."""

    type_name: Ident
    member: Ident


@dataclass(slots=True)
class Field(Expr):
    obj: Expr
    name: Ident


@dataclass(slots=True)
class Index(Expr):
    obj: Expr
    index: Expr


@dataclass(slots=True)
class Call(Expr):
    callee: Expr
    args: list[Expr]
    # Set by the checker: the called Symbol (tool, effect, agent, workflow) or a builtin's name.
    target: Any = field(default=None, kw_only=True, compare=False, repr=False)
    detached: bool = field(default=False, kw_only=True)
    """`start child(...)`: a detached child run; the call's value is its run id."""

    @property
    def is_step(self) -> bool:
        return self.target is not None and not isinstance(self.target, str)


@dataclass(slots=True)
class Unary(Expr):
    op: str  # "not" or "-"
    operand: Expr


@dataclass(slots=True)
class Binary(Expr):
    op: str  # "+", "==", "and", "??", ...
    left: Expr
    right: Expr


@dataclass(slots=True)
class Paren(Expr):
    inner: Expr


# ---- statements ------------------------------------------------------------


@dataclass(slots=True)
class Stmt(Node):
    label: Ident | None = field(default=None, kw_only=True)  # explicit `@id`


@dataclass(slots=True)
class Block(Node):
    stmts: list[Stmt]


@dataclass(slots=True)
class Checkpoint(Stmt):
    name: Ident
    options: ObjectLit


@dataclass(slots=True)
class Wait(Stmt):
    """`wait 2h` (event is None), `wait payment_received { timeout: 2d }`, or a wait for
    one correlated signal: `wait restored for o.key { timeout: 2d }` (`key`)."""

    duration: Expr | None
    event: Ident | None
    options: ObjectLit | None
    key: Expr | None = None


@dataclass(slots=True)
class SelectArm(Node):
    """One arm of a `select`: a wait for an event (`wait`, with its `key`), a checkpoint
    it opens (`checkpoint`), or its timer (`after`: a duration, or `never`); `var` is
    bound to the event's payload or the decision while `body` runs."""

    wait: Wait | None
    checkpoint: Checkpoint | None
    after: Expr | None
    var: Ident | None
    body: Block


@dataclass(slots=True)
class Select(Stmt):
    """`select { arm ... }`: waits for the first of its arms to happen, then runs that
    arm's body alone."""

    arms: list[SelectArm]


@dataclass(slots=True)
class For(Stmt):
    var: Ident
    iterable: Expr
    body: Block
    parallel: bool = False
    limit: Expr | None = None
    first: Expr | None = None
    """`parallel for x in xs first 2`: a quorum join, the first N items to end win."""


AssignValue = Expr | Checkpoint | Wait | For


@dataclass(slots=True)
class Assign(Stmt):
    target: Ident
    value: AssignValue


@dataclass(slots=True)
class Publish(Stmt):
    """`publish progress = value`: a named value the outside can read once committed."""

    name: Ident
    value: Expr


@dataclass(slots=True)
class ExprStmt(Stmt):
    expr: Expr


@dataclass(slots=True)
class OptionStmt(Stmt):
    """`class: "support"` inside a workflow body."""

    key: Ident
    value: Expr | ObjectLit


@dataclass(slots=True)
class If(Stmt):
    cond: Expr
    then: Block
    orelse: Block | If | None = None


@dataclass(slots=True)
class MatchArm(Node):
    patterns: list[Ident]
    body: Block


@dataclass(slots=True)
class Match(Stmt):
    subject: Expr
    arms: list[MatchArm]


@dataclass(slots=True)
class While(Stmt):
    cond: Expr
    max_key: Ident
    max: Expr
    body: Block


@dataclass(slots=True)
class Parallel(Stmt):
    """`parallel { ... }`: each statement, or each `{ ... }` group, is one branch."""

    branches: list[Block]


@dataclass(slots=True)
class Catch(Node):
    kinds: list[Ident]
    var: Ident | None
    body: Block


@dataclass(slots=True)
class Try(Stmt):
    body: Block
    catches: list[Catch]
    final: Block | None = None


@dataclass(slots=True)
class Return(Stmt):
    value: Expr | None


@dataclass(slots=True)
class Fail(Stmt):
    message: Expr


@dataclass(slots=True)
class Log(Stmt):
    message: Expr


@dataclass(slots=True)
class Yield(Stmt):
    value: Expr


# ---- declarations ----------------------------------------------------------


@dataclass(slots=True)
class Decl(Node):
    name: Ident


@dataclass(slots=True)
class Import(Node):
    path: list[Ident]
    names: list[Ident]

    @property
    def dotted(self) -> str:
        return ".".join(p.name for p in self.path)


@dataclass(slots=True)
class FieldDecl(Node):
    name: Ident
    type: TypeRef
    default: Expr | None = None


@dataclass(slots=True)
class TypeDecl(Decl):
    fields: list[FieldDecl]


@dataclass(slots=True)
class ErrorDecl(Decl):
    """`error PaymentDeclined`: a failure's name, for `fail`, `catch` and `retry.on`."""


@dataclass(slots=True)
class OnFailure(Node):
    """`on_failure as e { ... }` after a workflow: runs once its compensations are done."""

    var: Ident | None
    body: Block


@dataclass(slots=True)
class EnumDecl(Decl):
    members: list[Ident]


@dataclass(slots=True)
class Param(Node):
    name: Ident
    type: TypeRef
    default: Expr | None = None
    description: StrLit | None = None
    """`hotel: str "The hotel's id, from search_hotels"`: told to the model, shown on hover."""


@dataclass(slots=True)
class CallableDecl(Decl):
    """`tool`, `effect` or `agent`: a typed signature and an option block."""

    kind: str
    params: list[Param]
    returns: TypeRef
    options: ObjectLit


@dataclass(slots=True)
class EventDecl(Decl):
    payload: TypeRef | None


@dataclass(slots=True)
class PolicyDecl(Decl):
    options: ObjectLit


@dataclass(slots=True)
class ScheduleDecl(Decl):
    options: ObjectLit


@dataclass(slots=True)
class ScenarioDecl(Decl):
    options: ObjectLit


@dataclass(slots=True)
class WorkflowDecl(Decl):
    params: list[Param]
    returns: TypeRef
    options: list[OptionStmt]
    body: Block
    on_failure: OnFailure | None = None

    def blocks(self) -> list[Block]:
        """The body, and the `on_failure` body when there is one: every statement's block."""
        return [self.body] if self.on_failure is None else [self.body, self.on_failure.body]


@dataclass(slots=True)
class Module(Node):
    """One parsed `.mn` file."""

    path: str
    imports: list[Import]
    decls: list[Decl]
    comments: list[Comment] = field(default_factory=list)
    source: str = ""
