"""The abstract syntax tree: plain records, each node with a `Span`.

The checker annotates expressions in place (`Expr.ty`, `Name.ref`, `Call.target`); later
stages read the annotated tree and never re-parse.

Nodes are `msgspec.Struct`s, not dataclasses, for start-up: creating this module's 61
classes took 22 to 35 ms as slotted dataclasses (about 0.4 ms a class, the largest import
of `mnc check`) and takes about 2 ms as Structs, and a node is built faster too (the
parser builds about 28,000 for a 7,000-line file). They behave as the dataclasses did:
mutable, slotted, compared by value, unhashable; `field_names` lists a class's fields in
order, keyword-only ones (`ty`, `label`) last. One difference: `==` compares the
checker's annotations too (`ANNOTATIONS`), which the dataclasses left out; passes that
compare trees by meaning skip them (and spans) by name.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

import msgspec

from mnlang.span import Span

if TYPE_CHECKING:
    from mnlang.syntax.lexer import Comment


class Node(msgspec.Struct):
    span: Span


# Fields the checker sets on a parsed tree; not part of what a program says.
ANNOTATIONS = frozenset({"ty", "ref", "target"})


def field_names(cls: type[Node]) -> tuple[str, ...]:
    """The fields of a node class, in order: positional ones, then keyword-only ones."""
    return cls.__struct_fields__


class Ident(Node):
    name: str


# ---- types -----------------------------------------------------------------


class TypeRef(Node):
    """`str`, `Order`, `list[Order]`, `map[int]`, `T?`."""

    name: str
    args: list[TypeRef] = msgspec.field(default_factory=list)
    optional: bool = False


# ---- expressions -----------------------------------------------------------


class Expr(Node, kw_only=True):
    # Set by the checker: the expression's type.
    ty: Any = None


class Name(Expr):
    name: str
    # What the name refers to, set by the checker: a Symbol, or "var", "param", "loop", "enum".
    ref: Any = None


class IntLit(Expr):
    value: int


class FloatLit(Expr):
    value: float


class MoneyLit(Expr):
    value: Decimal


class DurationLit(Expr):
    millis: int
    text: str


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


class BoolLit(Expr):
    value: bool


class NullLit(Expr):
    pass


class ListLit(Expr):
    items: list[Expr | ObjectLit]


class Entry(Node):
    key: Ident
    value: Expr | ObjectLit


class ObjectLit(Expr):
    """`{ key: value, ... }`: option blocks and scenario data."""

    entries: list[Entry]

    def get(self, key: str) -> Entry | None:
        for entry in self.entries:
            if entry.key.name == key:
                return entry
        return None


class ErrorName(Expr):
    """A bare declared error name in a list: `on: [timeout, PaymentDeclined]`."""

    name: str


class RecordLit(Expr):
    type_name: Ident
    entries: list[Entry]


class EnumMember(Expr):
    """`Category.damaged`."""

    type_name: Ident
    member: Ident


class Field(Expr):
    obj: Expr
    name: Ident


class Index(Expr):
    obj: Expr
    index: Expr


class Call(Expr):
    callee: Expr
    args: list[Expr]
    # Set by the checker: the called Symbol (tool, effect, agent, workflow) or a builtin's name.
    target: Any = None
    detached: bool = False
    """`start child(...)`: a detached child run; the call's value is its run id."""

    @property
    def is_step(self) -> bool:
        return self.target is not None and not isinstance(self.target, str)


class Unary(Expr):
    op: str  # "not" or "-"
    operand: Expr


class Binary(Expr):
    op: str  # "+", "==", "and", "??", ...
    left: Expr
    right: Expr


class Paren(Expr):
    inner: Expr


# ---- statements ------------------------------------------------------------


class Stmt(Node, kw_only=True):
    label: Ident | None = None  # explicit `@id`


class Block(Node):
    stmts: list[Stmt]


class Checkpoint(Stmt):
    name: Ident
    options: ObjectLit


class Wait(Stmt):
    """`wait 2h` (event is None), `wait payment_received { timeout: 2d }`, or a wait for
    one correlated signal: `wait restored for o.key { timeout: 2d }` (`key`)."""

    duration: Expr | None
    event: Ident | None
    options: ObjectLit | None
    key: Expr | None = None


class SelectArm(Node):
    """One arm of a `select`: a wait for an event (`wait`, with its `key`), a checkpoint
    it opens (`checkpoint`), or its timer (`after`: a duration, or `never`); `var` is
    bound to the event's payload or the decision while `body` runs."""

    wait: Wait | None
    checkpoint: Checkpoint | None
    after: Expr | None
    var: Ident | None
    body: Block


class Select(Stmt):
    """`select { arm ... }`: waits for the first of its arms to happen, then runs that
    arm's body alone."""

    arms: list[SelectArm]


class For(Stmt):
    var: Ident
    iterable: Expr
    body: Block
    parallel: bool = False
    limit: Expr | None = None
    first: Expr | None = None
    """`parallel for x in xs first 2`: a quorum join, the first N items to end win."""


AssignValue = Expr | Checkpoint | Wait | For


class Assign(Stmt):
    target: Ident
    value: AssignValue


class Publish(Stmt):
    """`publish progress = value`: a named value the outside can read once committed."""

    name: Ident
    value: Expr


class ExprStmt(Stmt):
    expr: Expr


class OptionStmt(Stmt):
    """`class: "support"` inside a workflow body."""

    key: Ident
    value: Expr | ObjectLit


class If(Stmt):
    cond: Expr
    then: Block
    orelse: Block | If | None = None


class MatchArm(Node):
    patterns: list[Ident]
    body: Block


class Match(Stmt):
    subject: Expr
    arms: list[MatchArm]


class While(Stmt):
    cond: Expr
    max_key: Ident
    max: Expr
    body: Block


class Parallel(Stmt):
    """`parallel { ... }`: each statement, or each `{ ... }` group, is one branch."""

    branches: list[Block]


class Catch(Node):
    kinds: list[Ident]
    var: Ident | None
    body: Block


class Try(Stmt):
    body: Block
    catches: list[Catch]
    final: Block | None = None


class Return(Stmt):
    value: Expr | None


class Fail(Stmt):
    message: Expr


class Log(Stmt):
    message: Expr


class Yield(Stmt):
    value: Expr


# ---- declarations ----------------------------------------------------------


class Decl(Node):
    name: Ident


class Import(Node):
    path: list[Ident]
    names: list[Ident]

    @property
    def dotted(self) -> str:
        return ".".join(p.name for p in self.path)


class FieldDecl(Node):
    name: Ident
    type: TypeRef
    default: Expr | None = None


class TypeDecl(Decl):
    fields: list[FieldDecl]


class ErrorDecl(Decl):
    """`error PaymentDeclined`: a failure's name, for `fail`, `catch` and `retry.on`."""


class OnFailure(Node):
    """`on_failure as e { ... }` after a workflow: runs once its compensations are done."""

    var: Ident | None
    body: Block


class EnumDecl(Decl):
    members: list[Ident]


class Param(Node):
    name: Ident
    type: TypeRef
    default: Expr | None = None
    description: StrLit | None = None
    """`hotel: str "The hotel's id, from search_hotels"`: told to the model, shown on hover."""


class CallableDecl(Decl):
    """`tool`, `effect` or `agent`: a typed signature and an option block."""

    kind: str
    params: list[Param]
    returns: TypeRef
    options: ObjectLit


class EventDecl(Decl):
    payload: TypeRef | None


class PolicyDecl(Decl):
    options: ObjectLit


class ScheduleDecl(Decl):
    options: ObjectLit


class ScenarioDecl(Decl):
    options: ObjectLit


class WorkflowDecl(Decl):
    params: list[Param]
    returns: TypeRef
    options: list[OptionStmt]
    body: Block
    on_failure: OnFailure | None = None

    def blocks(self) -> list[Block]:
        """The body, and the `on_failure` body when there is one: every statement's block."""
        return [self.body] if self.on_failure is None else [self.body, self.on_failure.body]


class Module(Node):
    """One parsed `.mn` file."""

    path: str
    imports: list[Import]
    decls: list[Decl]
    comments: list[Comment] = msgspec.field(default_factory=list)
    source: str = ""
