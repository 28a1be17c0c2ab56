"""Answers from a recording: tool and effect attempts, model replies, now() and uuid().

Every answer is looked up by what the new program asks, never by position in the old
journal alone: a tool or effect call by its callee and arguments (so the items of a
`parallel for` each get their own result, whatever order they run in), an agent call by
its agent and rendered prompt, `now()` and `uuid()` by the workflow and branch that take
them. A call's recorded failed attempts are answered as the same failures, in order, and
its last attempt as recorded; nothing is injected that the run did not see. A question
with no recorded answer is noted as a miss (the replay reports it) and fails the call.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mnlang.errors import ALL_KINDS, TOOL_ERROR, MnError
from mnlang.ir.model import IRProgram, ToolIR
from mnlang.models.base import ModelCallError, ModelReply, ModelRequest, ToolCall, Usage
from mnlang.replay.recording import Recording, decided_name
from mnlang.runtime.convert import ConversionError, Converter, to_tool
from mnlang.runtime.evaluate import Evaluator
from mnlang.stores.base import Json

CALL_KINDS = ("tool", "effect")


@dataclass(frozen=True)
class Attempt:
    """One recorded attempt of a call: its result, or the failure it raised."""

    result: Json = None
    kind: str | None = None
    message: str = ""

    def answer(self) -> Any:
        if self.kind is None:
            return self.result
        raise MnError(self.kind if self.kind in ALL_KINDS else TOOL_ERROR, self.message)


@dataclass
class Miss:
    """A question the recording has no answer for: the new program asked something new."""

    kind: str
    callee: str
    detail: str


@dataclass
class _ToolCalls:
    plain: list[tuple[Json, list[Attempt]]] = field(default_factory=list)
    keyed: dict[str, deque[list[Attempt]]] | None = None


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


class RecordedAnswers:
    """Answers every external question of a replay from one recording."""

    def __init__(self, recording: Recording, program: IRProgram, old: IRProgram) -> None:
        self.program = program
        self.old = old
        self.converter = Converter(program.types, Evaluator())
        self.misses: list[Miss] = []
        self._lock = threading.Lock()
        self._tools: dict[str, _ToolCalls] = defaultdict(_ToolCalls)
        self._current: dict[tuple[str, str], list[Attempt]] = {}
        self._replies: dict[tuple[str, str], deque[list[Json]]] = defaultdict(deque)
        self._active: dict[tuple[str, str], list[list[Json]]] = defaultdict(list)
        self._externals: dict[tuple[str, str, str], deque[Json]] = defaultdict(deque)
        self.decisions: dict[tuple[str, str], deque[Json]] = defaultdict(deque)
        self.signals: dict[tuple[str, str, str | None], deque[Json]] = defaultdict(deque)
        for run in recording.root.walk():
            self._read(run.record.workflow, run.events)

    # --- reading the recording ---------------------------------------------------------

    def _read(self, workflow: str, events: list[Any]) -> None:
        failed: dict[tuple[str, str | None, str], list[Attempt]] = defaultdict(list)
        replies: dict[tuple[str, str | None, str], list[Json]] = defaultdict(list)
        failed_for_good: tuple[str | None, str, int] | None = None
        for e in events:
            data = e.data if isinstance(e.data, dict) else {}
            where = (e.branch, e.state)
            if e.kind in ("retry", "attempt_failed") and "callee" in data:
                failed[(*where, data["callee"])].append(
                    Attempt(kind=data.get("kind"), message=str(data.get("message", "")))
                )
            elif e.kind in (*CALL_KINDS, "compensated", "replayed") and "args" in data:
                callee = str(data.get("effect") or data.get("tool"))
                attempts = [*failed.pop((*where, callee), []), Attempt(result=data.get("result"))]
                self._tools[callee].plain.append((data["args"], attempts))
            elif e.kind == "call_failed" and data.get("kind_of_call") in CALL_KINDS:
                callee = str(data["callee"])
                last = Attempt(kind=data.get("kind"), message=str(data.get("message", "")))
                attempts = [*failed.pop((*where, callee), []), last]
                failed_for_good = (e.state, callee, len(self._tools[callee].plain))
                self._tools[callee].plain.append((data.get("args"), attempts))
            elif (
                e.kind == "retried"
                and failed_for_good is not None
                and failed_for_good[0] == data.get("step")
            ):
                # The run was retried in place from the call that failed: it ran again,
                # and its answer is the one recorded after the retry.
                _, callee, index = failed_for_good
                del self._tools[callee].plain[index]
                failed_for_good = None
            elif e.kind == "model_reply":
                replies[(*where, str(data.get("agent")))].append(data)
            elif e.kind == "agent":
                agent = str(data.get("agent"))
                got = replies.pop((*where, agent), [])
                self._replies[(agent, str(data.get("prompt", "")))].append(got)
            elif e.kind == "call_failed" and data.get("kind_of_call") == "agent":
                agent = str(data.get("callee"))
                self._replies[(agent, "")].append(replies.pop((*where, agent), []))
            elif e.kind in ("now", "uuid"):
                self._externals[(workflow, e.branch, e.kind)].append(data.get("value"))
            elif e.kind == "decided" and "repair" not in data:
                self.decisions[(workflow, decided_name(self.old, workflow, e))].append(data)
            elif e.kind == "signal":
                self.signals[(workflow, str(data.get("event")), data.get("key"))].append(
                    data.get("payload")
                )

    # --- tools and effects (the runtime's `CallDoubles`) --------------------------------

    def stand_in(
        self, tool: ToolIR, args: dict[str, Any], attempt: int
    ) -> Callable[[], Any] | None:
        key = canonical(args)
        with self._lock:
            if attempt <= 1 or (tool.name, key) not in self._current:
                queue = self._keyed(tool).get(key)
                if not queue:
                    self.misses.append(Miss("call", tool.name, key))
                    return _unrecorded(tool.name)
                self._current[(tool.name, key)] = queue.popleft()
            attempts = self._current[(tool.name, key)]
        answer = attempts[min(attempt, len(attempts)) - 1]
        return answer.answer

    def _keyed(self, tool: ToolIR) -> dict[str, deque[list[Attempt]]]:
        """The recorded calls of `tool` by their arguments as the tool receives them."""
        calls = self._tools[tool.name]
        if calls.keyed is None:
            calls.keyed = defaultdict(deque)
            types = {p.name: p.type for p in tool.params}
            for plain, attempts in calls.plain:
                calls.keyed[self._tool_key(plain, types)].append(attempts)
        return calls.keyed

    def _tool_key(self, plain: Json, types: dict[str, Any]) -> str:
        if not isinstance(plain, dict):
            return canonical(plain)
        received: dict[str, Any] = {}
        for name, value in plain.items():
            try:
                received[name] = to_tool(self.converter.inbound(value, types[name], name))
            except (ConversionError, KeyError):
                received[name] = value
        return canonical(received)

    # --- agents (a model provider) ------------------------------------------------------

    name = "replay"

    def complete(self, request: ModelRequest) -> ModelReply:
        key = (request.agent, request.prompt)
        with self._lock:
            active = self._active[key]
            call = next((c for c in active if c[0] == request.request_number), None)
            if call is None:
                queue = self._replies.get(key) or self._replies.get((request.agent, ""))
                if not queue:
                    self.misses.append(Miss("agent", request.agent, request.prompt))
                    raise ModelCallError(
                        TOOL_ERROR, f"replay: no recorded reply for `{request.short_agent}`"
                    )
                call = [request.request_number, queue.popleft()]
                active.append(call)
            replies: list[Json] = call[1]
            n = call[0]
            call[0] = n + 1
        if n >= len(replies):
            self.misses.append(Miss("agent", request.agent, "one more model request"))
            raise ModelCallError(TOOL_ERROR, "replay: the run made fewer model requests")
        return _reply(replies[n])

    # --- now() and uuid() ---------------------------------------------------------------

    def external(self, workflow: str, name: str, branch: str) -> Json:
        """The recorded value of the next `now()` or `uuid()` here, or None when none."""
        with self._lock:
            queue = self._externals.get((workflow, branch, name))
            if not queue:
                self.misses.append(Miss(name, workflow, branch))
                return None
            value = queue.popleft()
        if name == "now" and isinstance(value, str):
            from datetime import datetime

            return round(datetime.fromisoformat(value).timestamp() * 1000)
        return value


def _unrecorded(callee: str) -> Callable[[], Any]:
    def fail() -> Any:
        raise MnError(TOOL_ERROR, f"replay: no recorded call of `{callee}` with these arguments")

    return fail


def _reply(data: dict[str, Any]) -> ModelReply:
    error = data.get("error")
    if isinstance(error, dict):
        kind = str(error.get("kind", TOOL_ERROR))
        raise ModelCallError(
            kind if kind in ALL_KINDS else TOOL_ERROR, str(error.get("message", ""))
        )
    usage = data.get("usage")
    return ModelReply(
        text=data.get("text"),
        tool_calls=[
            ToolCall(str(c["id"]), str(c["name"]), str(c["arguments"]))
            for c in data.get("tool_calls") or []
        ],
        usage=Usage(int(usage["input_tokens"]), int(usage["output_tokens"]))
        if isinstance(usage, dict)
        else None,
        model=str(data.get("model", "")),
    )
