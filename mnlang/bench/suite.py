"""A bench suite: every scenario of the `.mn` files under a folder, ready to run.

A `Case` is one scenario with its values evaluated to JSON: the workflow's input, the
scripted replies (as a scripted replies file holds them), the decisions and events the
harness hands the run, the expectation written into the run's `meta` for the metrics,
and the scenario's `under_faults`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnlang.diagnostics import Diagnostic
from mnlang.ir.model import IRProgram
from mnlang.ir.scenarios import ScenarioFaultOutcomeIR, ScenarioIR, ScenarioReplyIR
from mnlang.metrics.expect import Expectation, ExpectedCall
from mnlang.models.scripted import Script, load_script, script_key
from mnlang.runtime.evaluate import Evaluator, MapEnv
from mnlang.runtime.values import to_plain

_NO_ENV = MapEnv({})


class SuiteError(Exception):
    """A suite that cannot be run: no scenarios, or a file with errors."""

    def __init__(
        self, message: str, *, help: str | None = None, diagnostics: list[Diagnostic] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.help = help
        self.diagnostics = diagnostics or []
        self.file: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    choice: str
    by: str
    comment: str | None
    late: bool
    """It comes after the checkpoint's timeout (`timeout`, or `after:` past it)."""


@dataclass
class Case:
    file: str
    """The `.mn` file, relative to the suite's folder."""
    program: IRProgram
    scenario: ScenarioIR
    workflow: str
    workflow_class: str
    args: dict[str, Any]
    script: Script
    decisions: dict[str, list[Decision]]
    events: dict[str, list[Any]]
    expectation: Expectation
    under_faults: list[ScenarioFaultOutcomeIR] = field(default_factory=list)
    live: str | None = None
    """Live mode: the provider (`openai` or a project's) that answers the agents instead of
    the scenario's replies."""

    @property
    def name(self) -> str:
        return self.scenario.name.rsplit(".", 1)[-1]

    @property
    def id(self) -> str:
        return f"{self.file}::{self.name}"

    @property
    def model_error(self) -> str | None:
        return self.scenario.model_error


def load_suite(path: str | Path) -> list[Case]:
    """The cases of every `.mn` file under `path` (or of the one file) that has scenarios,
    in file order; `SuiteError` on a file with errors or a suite without scenarios."""
    from mnlang.ir.compile import compile_file

    root = Path(path)
    files = sorted(root.rglob("*.mn")) if root.is_dir() else [root]
    base = root if root.is_dir() else root.parent
    cases: list[Case] = []
    for file in files:
        program, diagnostics = compile_file(file)
        errors = [d for d in diagnostics if d.severity == "error"]
        if program is None or errors:
            error = SuiteError(f"`{file}` has errors", diagnostics=errors)
            error.file = str(file)
            raise error
        rel = str(file.relative_to(base)) if file != base else file.name
        cases.extend(case_of(program, s, rel) for s in program.scenarios.values())
    if not cases:
        raise SuiteError(
            f"no scenarios under `{path}`",
            help="a bench suite is `.mn` files with `scenario` declarations",
        )
    return cases


def case_of(program: IRProgram, scenario: ScenarioIR, file: str) -> Case:
    evaluator = Evaluator()

    def plain(expr: Any) -> Any:
        return to_plain(evaluator.eval(expr, _NO_ENV))

    workflow = program.workflows[scenario.workflow]
    script: Script
    if scenario.replies_file is not None:
        script = load_script(Path(program.source.dir) / scenario.replies_file)
    else:
        script = {}
        for agent, replies in scenario.replies.items():
            first = program.agents[agent].model
            for reply in replies:
                key = script_key(agent, first, reply.model)
                script.setdefault(key, []).append(_entry(program, agent, reply, plain))
    expect = scenario.expect
    calls = None
    if scenario.expect_calls is not None:
        acting = set(program.tools) | set(program.effects)
        calls = tuple(
            ExpectedCall(
                c.callee.rsplit(".", 1)[-1],
                None if c.args is None else {k: plain(v) for k, v in c.args.items()},
            )
            for c in scenario.expect_calls
            if c.callee in acting
        )
    expectation = Expectation(
        status=expect.status,
        result=plain(expect.output) if expect.output is not None else None,
        has_result=expect.output is not None,
        error=expect.message,
        calls=calls,
        scenario=scenario.name,
    )
    decisions = {
        name: [
            Decision(
                d.choice,
                d.by,
                d.comment,
                d.choice == "timeout"
                or _after_timeout(program, scenario.workflow, name, d.after_ms),
            )
            for d in items
        ]
        for name, items in scenario.decisions.items()
    }
    return Case(
        file=file,
        program=program,
        scenario=scenario,
        workflow=scenario.workflow,
        workflow_class=workflow.options.class_ or "",
        args={k: plain(v) for k, v in scenario.args.items()},
        script=script,
        decisions=decisions,
        events={k: [plain(p) for p in v] for k, v in scenario.events.items()},
        expectation=expectation,
        under_faults=list(scenario.under_faults),
    )


def _after_timeout(
    program: IRProgram, workflow: str, checkpoint: str, after_ms: int | None
) -> bool:
    from mnlang.ir.states import CheckpointState

    if after_ms is None:
        return False
    for state in program.workflows[workflow].states.values():
        if isinstance(state, CheckpointState) and state.name == checkpoint:
            return state.timeout_ms is not None and after_ms >= state.timeout_ms
    return False


def _entry(program: IRProgram, agent: str, reply: ScenarioReplyIR, plain: Any) -> Any:
    """One reply as a scripted replies file holds it (the form `mnc test` gives it too)."""
    entry: dict[str, Any]
    if reply.tool_call is not None:
        call = reply.tool_call
        names = program.agents[agent].tools
        short = call.callee.rsplit(".", 1)[-1]
        clash = sum(1 for n in names if n.rsplit(".", 1)[-1] == short) > 1
        args = {k: plain(v) for k, v in (call.args or {}).items()}
        name = call.callee.replace(".", "__") if clash else short
        entry = {"$tool_calls": [{"name": name, "arguments": args}]}
    else:
        entry = {"$reply": plain(reply.value)}
    if reply.prompt_has is not None:
        entry["$match"] = reply.prompt_has
    return entry
