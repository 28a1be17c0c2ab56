"""Scenarios in the IR: the golden tests of the root file's workflows, for `mnc test`.

Values (input, mocked results, replies, payloads, the expected output) are expressions
without variables, evaluated by the test runner. Scenarios are not part of the content
hash: adding a test does not change what runs.
"""

from typing import Annotated, Literal

from mnlang.ir.base import HASH_OMITS_NONE, IRModel, SpanIR
from mnlang.ir.expr import Expr

ScenarioStatus = Literal["completed", "failed", "waiting", "cancelled"]
FaultExpectation = Literal["same", "repair", "failed"]
FaultLateness = Literal["past", "near"]


class ScenarioCallIR(IRModel, kw_only=True):
    """A call a scenario names: the callee's qualified name and, when given, its arguments
    (None: any arguments)."""

    callee: str
    args: dict[str, Expr] | None = None


class ScenarioReplyIR(IRModel, kw_only=True):
    """A scripted model reply: the answer (`value`) or a turn that calls a tool
    (`tool_call`); with `prompt_has` it answers only requests whose prompt contains it;
    with `model` only the requests sent to that model of the agent's `model:` list."""

    value: Expr | None = None
    tool_call: ScenarioCallIR | None = None
    prompt_has: str | None = None
    model: Annotated[str | None, HASH_OMITS_NONE] = None


class ScenarioAnswerIR(IRModel, kw_only=True):
    """A mocked result for the calls whose arguments named in `args` equal these (the
    parameters not named match any value)."""

    args: dict[str, Expr]
    result: Expr


class ScenarioKeyedPayloadIR(IRModel, kw_only=True):
    """An event's payload, sent to the wait whose correlation key is `key` (a `str`)."""

    key: Expr
    payload: Expr


class ScenarioDecisionIR(IRModel, kw_only=True):
    """A person's decision at a checkpoint: an option, or `timeout` (its timeout decides).
    `after_ms` is when it arrives; past the checkpoint's timeout, the timeout decides."""

    choice: str
    by: str = "scenario"
    comment: str | None = None
    after_ms: int | None = None


class ScenarioFaultIR(IRModel, kw_only=True):
    """`kind` (an error kind, or `worker_crash`) injected into the calls of `at`, with
    `message` as the failure's message (absent: `injected fault: KIND in `NAME``)."""

    kind: str
    at: str
    times: int = 1
    message: str | None = None


class ScenarioFaultOutcomeIR(IRModel, kw_only=True):
    """`under_faults`: the outcome expected when `mnc bench` injects fault class `fault`
    (`mnlang.runtime.faults`) at `at` (a qualified callee, or a checkpoint's name for
    `approval_delay`; None: a call the bench picks), `late` `past` or `near` a timeout."""

    fault: str
    expect: FaultExpectation
    at: str | None = None
    late: FaultLateness | None = None


class ScenarioExpectIR(IRModel, kw_only=True):
    status: ScenarioStatus = "completed"
    output: Expr | None = None
    error: str | None = None
    message: str | None = None


class ScenarioIR(IRModel, kw_only=True):
    """One scenario: run `workflow` with `args` against the doubles, then compare.

    `tools` are mocked results per tool or effect (the n-th call gets the n-th, the last
    answers any further call); `replies` are scripted replies per agent, or
    `replies_file` names a scripted replies file relative to the source folder;
    `decisions` are per checkpoint name, in the order they are taken; `events` are
    payloads per event, sent when the run waits for them.
    """

    name: str
    workflow: str
    args: dict[str, Expr]
    tools: dict[str, list[Expr]] = {}
    answers: dict[str, list[ScenarioAnswerIR]] | None = None
    """Results matched by arguments, per tool or effect; they come before `tools`, which
    answer the calls no answer matches. Absent when none, like `keyed_events`, so IR files
    of scenarios without them stay as they were (no new IR version)."""
    replies: dict[str, list[ScenarioReplyIR]] = {}
    replies_file: str | None = None
    decisions: dict[str, list[ScenarioDecisionIR]] = {}
    events: dict[str, list[Expr]] = {}
    keyed_events: dict[str, list[ScenarioKeyedPayloadIR]] | None = None
    faults: list[ScenarioFaultIR] = []
    expect: ScenarioExpectIR
    expect_calls: list[ScenarioCallIR] | None = None
    under_faults: list[ScenarioFaultOutcomeIR] = []
    model_error: str | None = None
    """Which scripted reply is wrong on purpose: the run is not expected to meet `expect`."""
    span: SpanIR
