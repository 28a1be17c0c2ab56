"""A scenario's stand-ins: mocked tool results, scripted replies, and injected faults.

`ScenarioDoubles` answers the runtime's `CallDoubles` questions: a tool or effect with a
fault still to inject fails with it; a call that an answer matched by arguments fits gets
that answer's result (answers with the same arguments answer successive calls, the last
one any further call); else a mocked tool returns its next plain result (the last one
answers any further call), and one with answers but no plain result fails the call,
naming its arguments; anything else runs for real. `scenario_models` builds the
scripted provider of the scenario's replies (or its replies file), wrapped so that the
faults injected into agents fail their first requests.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from mnlang.errors import MALFORMED_OUTPUT, TOOL_ERROR, MnError, NamedError, is_error_name
from mnlang.ir.model import IRProgram, ToolIR
from mnlang.ir.scenarios import ScenarioIR, ScenarioReplyIR
from mnlang.models.base import ModelCallError, ModelReply, ModelRequest, Provider
from mnlang.models.scripted import Script, ScriptedProvider, ScriptError, script_key
from mnlang.models.setup import ModelSetup
from mnlang.runtime.convert import to_tool
from mnlang.runtime.evaluate import Evaluator, MapEnv
from mnlang.runtime.values import to_plain

WORKER_CRASH = "worker_crash"
MALFORMED_REPLY = "{this reply is not JSON"
"""What an agent answers when a scenario injects `malformed_output` into it."""

_NO_ENV = MapEnv({})


class ScenarioSetupError(Exception):
    """A scenario that cannot be set up (its replies file is missing or malformed)."""


class _Faults:
    """Faults still to inject, per callee: how many of its next attempts fail, and how
    (the kind, and the message when the scenario gives one)."""

    def __init__(self, scenario: ScenarioIR) -> None:
        self._left: dict[str, list[list[Any]]] = {}
        for fault in scenario.faults:
            if fault.kind != WORKER_CRASH:
                entry = [fault.kind, fault.times, fault.message]
                self._left.setdefault(fault.at, []).append(entry)
        self._lock = threading.Lock()

    def take(self, callee: str) -> tuple[str, str] | None:
        """The kind and message this attempt of `callee` fails with, if a fault is left."""
        with self._lock:
            for entry in self._left.get(callee, []):
                if entry[1] > 0:
                    entry[1] -= 1
                    kind = str(entry[0])
                    short = callee.rsplit(".", 1)[-1]
                    return kind, entry[2] or f"injected fault: {kind} in `{short}`"
        return None


def _failing(kind: str, message: str) -> Callable[[], Any]:
    def fail() -> Any:
        if is_error_name(kind):
            raise NamedError(kind, message)
        raise MnError(kind, message)

    return fail


class _Answer:
    """An answer matched by arguments, as the tool would receive them: equal values match
    (`$42.5` equals `$42.50`), whatever their order in a `parallel for`."""

    def __init__(self, args: dict[str, Any], result: Any) -> None:
        self.args = args
        self.result = result
        self.used = 0

    def fits(self, args: dict[str, Any]) -> bool:
        return all(name in args and args[name] == want for name, want in self.args.items())


class ScenarioDoubles:
    def __init__(self, scenario: ScenarioIR, faults: _Faults, evaluator: Evaluator) -> None:
        def value(expr: Any) -> Any:
            return to_tool(evaluator.eval(expr, _NO_ENV))

        def arg(expr: Any) -> Any:  # as the stand-in sees arguments: secrets as references
            return to_tool(evaluator.eval(expr, _NO_ENV), reveal=False)

        self.results = {
            name: [value(r) for r in results] for name, results in scenario.tools.items()
        }
        self.answers = {
            name: [
                _Answer({k: arg(v) for k, v in a.args.items()}, value(a.result)) for a in answers
            ]
            for name, answers in (scenario.answers or {}).items()
        }
        self.faults = faults
        self._calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def _answer(self, tool: str, args: dict[str, Any]) -> Callable[[], Any] | None:
        """The result of the first answer fitting `args` not used yet (the last fitting one
        once all are), or None when none fits."""
        fitting = [a for a in self.answers.get(tool, []) if a.fits(args)]
        if not fitting:
            return None
        with self._lock:
            answer = next((a for a in fitting if a.used == 0), fitting[-1])
            answer.used += 1
        result = answer.result
        return lambda: result

    def stand_in(
        self, tool: ToolIR, args: dict[str, Any], attempt: int
    ) -> Callable[[], Any] | None:
        fault = self.faults.take(tool.name)
        if fault is not None:
            return _failing(*fault)
        answered = self._answer(tool.name, args)
        if answered is not None:
            return answered
        results = self.results.get(tool.name)
        if results is None:
            return _unanswered(tool.name, args) if tool.name in self.answers else None
        with self._lock:
            n = self._calls.get(tool.name, 0)
            self._calls[tool.name] = n + 1
        result = results[min(n, len(results) - 1)]
        return lambda: result


def _unanswered(callee: str, args: dict[str, Any]) -> Callable[[], Any]:
    def fail() -> Any:
        shown = ", ".join(f"{k}: {json.dumps(v, default=str)}" for k, v in args.items())
        raise MnError(
            TOOL_ERROR,
            f"scenario: no answer of `{callee.rsplit('.', 1)[-1]}` for {{ {shown} }} "
            "(add one, or a plain result for any other call)",
        )

    return fail


class _FaultyProvider:
    """A provider whose first requests of some agents fail as the scenario says. A failed
    request does not use up a scripted reply: the replies keep their numbers."""

    def __init__(self, inner: Provider, faults: _Faults) -> None:
        self.inner = inner
        self.faults = faults
        self.name = inner.name
        self._skipped: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def complete(self, request: ModelRequest) -> ModelReply:
        fault = self.faults.take(request.agent)
        # Each model of an agent numbers its requests on its own (`agent@model`), so a
        # failed request renumbers only the later requests to the same model.
        agent, call = (request.agent, request.model), (request.agent, request.prompt)
        if fault is not None:
            kind, message = fault
            with self._lock:
                self._skipped[agent] += 1
                self._skipped[call] += 1
            if kind == MALFORMED_OUTPUT:
                return ModelReply(MALFORMED_REPLY, model="scenario")
            raise ModelCallError(kind, message)
        with self._lock:
            unskipped = msgspec.structs.replace(
                request,
                call_number=request.call_number - self._skipped[agent],
                request_number=max(request.request_number - self._skipped[call], 0),
            )
        return self.inner.complete(unskipped)


def _script(program: IRProgram, scenario: ScenarioIR, evaluator: Evaluator) -> Script:
    """The scenario's replies as a scripted replies file would hold them."""
    script: Script = {}
    for agent, replies in scenario.replies.items():
        first = program.agents[agent].model
        for reply in replies:
            key = script_key(agent, first, reply.model)
            script.setdefault(key, []).append(_entry(program, agent, reply, evaluator))
    return script


def _entry(program: IRProgram, agent: str, reply: ScenarioReplyIR, evaluator: Evaluator) -> Any:
    entry: dict[str, Any]
    if reply.tool_call is not None:
        call = reply.tool_call
        args = {k: to_plain(evaluator.eval(v, _NO_ENV)) for k, v in (call.args or {}).items()}
        entry = {
            "$tool_calls": [{"name": _tool_name(program, agent, call.callee), "arguments": args}]
        }
    else:
        assert reply.value is not None
        entry = {"$reply": to_plain(evaluator.eval(reply.value, _NO_ENV))}
    if reply.prompt_has is not None:
        entry["$match"] = reply.prompt_has
    return entry


def _tool_name(program: IRProgram, agent: str, tool: str) -> str:
    """The name the model calls `tool` by: its short name, as the runtime offers it."""
    names = program.agents[agent].tools
    short = tool.rsplit(".", 1)[-1]
    clash = sum(1 for n in names if n.rsplit(".", 1)[-1] == short) > 1
    return tool.replace(".", "__") if clash else short


def scenario_doubles(
    program: IRProgram, scenario: ScenarioIR, evaluator: Evaluator
) -> tuple[ScenarioDoubles, ModelSetup]:
    """The tool doubles and the model setup of one run of `scenario`."""
    faults = _Faults(scenario)
    source = f"scenario `{scenario.name}`"
    if scenario.replies_file is not None:
        path = Path(program.source.dir) / scenario.replies_file
        try:
            provider: Provider = ScriptedProvider.from_file(path)
        except ScriptError as e:
            raise ScenarioSetupError(str(e)) from None
    else:
        provider = ScriptedProvider(_script(program, scenario, evaluator), source)
    models = ModelSetup(
        spec=f"scenario:{scenario.name}", override=_FaultyProvider(provider, faults)
    )
    return ScenarioDoubles(scenario, faults, evaluator), models
