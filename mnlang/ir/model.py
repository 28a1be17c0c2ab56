"""The compiled program: declarations and one state machine per workflow.

`IRProgram` is what `mnc compile` writes as JSON and what the runtime loads.
Declarations are keyed by qualified name (`refund`, `std.policies.x`).
"""

from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

import msgspec

from mnlang.ir.base import HASH_OMITS_NONE, IR_VERSION, IRModel, RetryIR, SpanIR, TypeIR
from mnlang.ir.expr import Expr, Template
from mnlang.ir.scenarios import ScenarioIR
from mnlang.ir.states import State


class FieldIR(IRModel, kw_only=True):
    name: str
    type: TypeIR
    default: Expr | None = None


class RecordTypeIR(IRModel, kw_only=True, tag_field="kind", tag="record"):
    kind: ClassVar[Literal["record"]] = "record"
    name: str
    fields: list[FieldIR]
    span: SpanIR


class EnumTypeIR(IRModel, kw_only=True, tag_field="kind", tag="enum"):
    kind: ClassVar[Literal["enum"]] = "enum"
    name: str
    members: list[str]
    span: SpanIR


TypeDeclIR = RecordTypeIR | EnumTypeIR


class ParamIR(IRModel, kw_only=True):
    name: str
    type: TypeIR
    default: Expr | None = None
    description: Annotated[str | None, HASH_OMITS_NONE] = None
    """`hotel: str "..."`: sent as the parameter's `description` in a tool's JSON Schema."""


class LimitIR(IRModel, kw_only=True):
    """Held across all workers: at most `concurrent` calls in flight, `per_second` started."""

    concurrent: int | None = None
    per_second: float | None = None


class ToolIR(IRModel, kw_only=True):
    """A pure, retry-safe call of Python code.

    `impl` is `module:function`; the module is looked up in `impl_dir`, a folder
    relative to the root source's folder (`IRProgram.source.dir`). The per-attempt timeout
    is `timeout_ms`, or `timeout`, an expression over the parameters evaluated per call.
    """

    name: str
    params: list[ParamIR]
    returns: TypeIR
    impl: str
    impl_dir: str
    timeout_ms: int | None = None
    timeout: Annotated[Expr | None, HASH_OMITS_NONE] = None
    retry: RetryIR
    limit: LimitIR | None = None
    cost: Decimal | None = None
    isolation: Literal["thread", "process"] = "thread"
    span: SpanIR
    description: Annotated[str | None, HASH_OMITS_NONE] = None
    """`description:`, what the model is told the tool does; without it the runtime reads
    the impl function's docstring (left out of the IR, so a docstring edit keeps the hash)."""


class CompensateIR(IRModel, kw_only=True):
    """The effect call undoing a committed effect; `args` read the original effect's params."""

    effect: str
    args: dict[str, Expr]


class ApprovalIR(IRModel, kw_only=True):
    """The checkpoint an agent opens before an effect that requires approval: decided
    `on_timeout` when `timeout_ms` passes; no timeout (`timeout: never`) waits."""

    timeout_ms: int | None = None
    on_timeout: Literal["approve", "reject"] | None = None


DEFAULT_APPROVAL = ApprovalIR(timeout_ms=24 * 3600 * 1000, on_timeout="reject")
"""When neither the effect nor the agent says: a person has a day, then it is rejected
(the model is told so)."""


class ReconcileIR(IRModel, kw_only=True):
    """The tool asking the receiving system whether the effect's keyed action happened:
    it returns the effect's result (done) or null (not done), and a failure means unknown.
    `args` read the effect's params; `settle_ms` is how long after an uncertain attempt
    the runtime waits before it asks (for receivers that apply a request late)."""

    tool: str
    args: dict[str, Expr]
    settle_ms: int | None = None


class EffectIR(ToolIR, kw_only=True):
    """A side effect: committed at most once per key (`key` reads the effect's params).

    Exactly one of `key` and `once` is set. `scope` says whether the key is
    per run or shared by every run.
    """

    key: Template | None = None
    once: bool = False
    scope: Literal["run", "global"] = "run"
    requires: list[str] = []
    compensate: CompensateIR | None = None
    approval: Annotated[ApprovalIR | None, HASH_OMITS_NONE] = None
    """For `requires: approval`: the timeout of the checkpoint an agent opens."""
    reconcile: Annotated[ReconcileIR | None, HASH_OMITS_NONE] = None


class AgentIR(IRModel, kw_only=True):
    """A model call whose reply must validate against `output_schema` (from `returns`).

    `prompt` reads the agent's params. `tools` are qualified names of the tools and
    effects the model may call, at most `max_turns` rounds.
    """

    name: str
    params: list[ParamIR]
    returns: TypeIR
    model: str
    provider: str | None = None
    prompt: Template
    max_tokens: int | None = None
    temperature: float | None = None
    timeout_ms: int | None = None
    retry: RetryIR
    tools: list[str] = []
    max_turns: int | None = None
    approval: Annotated[ApprovalIR | None, HASH_OMITS_NONE] = None
    """The timeout of the approvals it asks for (an effect's own `approval` comes first)."""
    output_schema: dict[str, Any]
    span: SpanIR
    system: Annotated[Template | None, HASH_OMITS_NONE] = None
    """`system:`, read like `prompt`, sent first in the system message."""
    description: Annotated[str | None, HASH_OMITS_NONE] = None
    bound: Annotated[dict[str, dict[str, Expr]] | None, HASH_OMITS_NONE] = None
    """Parameters of `tools` the workflow fixes (`book_hotel({ passenger: pid })`), by
    tool and parameter; they read the agent's params. The model never sees them."""
    fallback: Annotated[list[str] | None, HASH_OMITS_NONE] = None
    """`model: [first, ...rest]`: the rest, tried in order when a request to the one before
    fails (`transient`, `timeout`, `tool_error`) or its reply is malformed."""
    cache_ms: Annotated[int | None, HASH_OMITS_NONE] = None
    """`cache:`: how long a reply is kept for the same request of another run."""
    conversation: Annotated[str | None, HASH_OMITS_NONE] = None
    """`conversation:`: the `list[std.chat.Turn]` parameter sent as the messages before the
    prompt."""

    @property
    def models(self) -> list[str]:
        """The models tried in order: `model`, then `fallback`."""
        return [self.model, *(self.fallback or [])]


class EventIR(IRModel, kw_only=True):
    name: str
    payload: TypeIR | None = None
    span: SpanIR


class ScheduleIR(IRModel, kw_only=True):
    """Start `workflow` with `args` every `every_ms`, or on a `cron` line in `timezone`."""

    name: str
    workflow: str
    args: dict[str, Expr]
    every_ms: int | None = None
    cron: str | None = None
    timezone: str | None = None
    span: SpanIR


class WorkflowOptionsIR(IRModel, kw_only=True):
    class_: str | None = msgspec.field(default=None, name="class")
    budget: Decimal | None = None
    deadline_ms: int | None = None
    deadline: Annotated[Expr | None, HASH_OMITS_NONE] = None
    """A deadline computed from the arguments when the run starts (`deadline: sla`)."""
    limit: int | None = None


class OnFailureIR(IRModel, kw_only=True):
    """`on_failure as e { ... }`: run from `entry` (None: an empty body) with the run's
    failure in `var`, after the compensations of a failed run."""

    var: str | None = None
    entry: str | None = None


class WorkflowIR(IRModel, kw_only=True):
    """A workflow's signature, options and state machine; execution starts at `start`.

    `states` is in source order. `start` is None only for an empty body.
    """

    name: str
    params: list[ParamIR]
    returns: TypeIR
    options: WorkflowOptionsIR
    published: Annotated[dict[str, TypeIR] | None, HASH_OMITS_NONE] = None
    """The names the workflow publishes (`publish name = value`) and their types; None when
    it publishes none."""
    start: str | None = None
    states: dict[str, State]
    on_failure: Annotated[OnFailureIR | None, HASH_OMITS_NONE] = None
    span: SpanIR


class ToolModuleIR(IRModel, kw_only=True):
    """A Python module that tools name in `impl`, and its sha256 when the file exists."""

    impl_dir: str
    module: str
    path: str
    sha256: str | None = None


class SourceIR(IRModel, kw_only=True):
    """Where the program came from; outside the content hash (it depends on the machine)."""

    file: str
    dir: str
    tool_modules: list[ToolModuleIR] = []


class IRProgram(IRModel, kw_only=True):
    ir_version: str = IR_VERSION
    hash: str = ""
    source: SourceIR
    types: dict[str, TypeDeclIR] = {}
    tools: dict[str, ToolIR] = {}
    effects: dict[str, EffectIR] = {}
    agents: dict[str, AgentIR] = {}
    events: dict[str, EventIR] = {}
    schedules: dict[str, ScheduleIR] = {}
    workflows: dict[str, WorkflowIR] = {}
    errors: Annotated[list[str] | None, HASH_OMITS_NONE] = None
    """The declared error names (`error PaymentDeclined`), qualified; absent when none."""
    scenarios: dict[str, ScenarioIR] = {}
    """The root file's scenarios (tests, outside the content hash)."""
