"""The model of the bench: a scenario's scripted replies, answered the way a model would
answer under faults, and priced as the agent's declared model.

The replies are the scenario's (in the `mnlang.models.scripted` file format: entries per
agent, `$match` for prompt-matched conversations, `$tool_calls` for tool turns). What
differs from the `scripted` provider is which entry answers a request: the entry of the
conversation's turn, where a turn is a round of tool calls that the model made and that
were well formed. A request repeated after a transient failure, a timeout, a malformed
(injected) reply or a crash is therefore answered as the first time, like a model that
answers a retried question again; the scripted provider would move on to the next entry.

Cost: a reply's usage is its `$usage` when the script gives one, else an estimate of
four characters a token over the request's messages and the reply; the provider is not
named `scripted`, so the runtime prices the call as the agent's model
(`mnlang.models.setup.ModelSetup.price_entry`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

from mnlang.errors import TOOL_ERROR
from mnlang.models.base import ModelCallError, ModelReply, ModelRequest, ToolCall, Usage
from mnlang.models.scripted import Script

if TYPE_CHECKING:
    from mnlang.bench.suite import Case
    from mnlang.models.base import Provider
    from mnlang.models.setup import ModelSetup

NAME: Final = "bench"
CHARS_PER_TOKEN: Final = 4


def _directive(entry: Any) -> bool:
    return isinstance(entry, dict) and bool(entry) and all(str(k).startswith("$") for k in entry)


def _well_formed_turns(messages: list[dict[str, Any]]) -> int:
    """Rounds of tool calls in the conversation whose arguments parsed as JSON objects."""
    turns = 0
    for message in messages:
        calls = message.get("tool_calls") if message.get("role") == "assistant" else None
        if not calls:
            continue
        try:
            parsed = [json.loads(c["function"]["arguments"] or "{}") for c in calls]
        except (KeyError, TypeError, ValueError):
            continue
        if all(isinstance(p, dict) for p in parsed):
            turns += 1
    return turns


def _tokens(chars: int) -> int:
    return max(1, chars // CHARS_PER_TOKEN)


def scenario_model(case: Case) -> Provider:
    """Who answers a case's agents: its scripted replies, or in live mode the provider it
    names (made anew in each process that runs the case, as its HTTP client cannot be
    handed to another process)."""
    if case.live is None:
        return BenchModel(case.script, f"scenario `{case.name}`")
    return _live_setup(case.live).provider_for_name(case.live)


def live_refusal(name: str) -> str | None:
    """Why provider `name` cannot answer a live bench here (unknown, no key, misconfigured);
    None when it can."""
    setup = _live_setup(name)
    if name == "scripted" or not setup.knows(name):
        known = ", ".join(f"`{p}`" for p in setup.known() if p != "scripted")
        return f"unknown provider `{name}` for a live bench (providers: {known})"
    return setup.unusable(name)


def _live_setup(name: str) -> ModelSetup:
    """The providers a live bench can name: built in, the project's, plugins."""
    import os

    from mnlang.models.setup import ModelSetup, project_providers

    return ModelSetup(spec=name, tables=project_providers(os.environ))


class BenchModel:
    name = NAME

    def __init__(self, script: Script, source: str) -> None:
        self.script = script
        self.source = source

    def complete(self, request: ModelRequest) -> ModelReply:
        entry = self._entry(request)
        usage = entry.get("$usage") if _directive(entry) else None
        if _directive(entry) and "$tool_calls" in entry:
            calls = [
                ToolCall(
                    f"call_{request.call_number}_{i}",
                    call["name"],
                    json.dumps(call.get("arguments", {}), ensure_ascii=False),
                )
                for i, call in enumerate(entry["$tool_calls"])
            ]
            reply = ModelReply(None, calls, None, NAME)
            out = sum(len(c.name) + len(c.arguments) for c in calls)
        else:
            if _directive(entry) and "$text" in entry:
                text = str(entry["$text"])
            else:
                answer = entry["$reply"] if _directive(entry) else entry
                text = json.dumps(answer, ensure_ascii=False)
            reply = ModelReply(text, [], None, NAME)
            out = len(text)
        if usage is None:
            sent = sum(len(json.dumps(m, ensure_ascii=False)) for m in request.messages)
            sent += sum(len(json.dumps(t.parameters)) + len(t.description) for t in request.tools)
            used = Usage(_tokens(sent), _tokens(out))
        else:
            used = Usage(int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0)))
        return ModelReply(reply.text, reply.tool_calls, used, NAME)

    def _entry(self, request: ModelRequest) -> Any:
        agent = request.short_agent
        entries = self.script.get(request.agent, self.script.get(agent))
        if entries is None:
            raise ModelCallError(TOOL_ERROR, f"{self.source} has no replies for agent `{agent}`")
        prompt = request.prompt
        matched = [e for e in entries if _directive(e) and "$match" in e]
        pool = [e for e in matched if str(e["$match"]) in prompt]
        if not matched:
            pool = list(entries)
        turn = _well_formed_turns(request.messages)
        if turn >= len(pool):
            raise ModelCallError(
                TOOL_ERROR,
                f"{self.source} has {len(pool)} replies for agent `{agent}` for this "
                f"conversation; turn {turn + 1} has none",
            )
        entry = pool[turn]
        if _directive(entry) and "$error" in entry:
            error = entry["$error"]
            kind = error.get("kind") if isinstance(error, dict) else error
            raise ModelCallError(str(kind), f"scripted {kind}")
        return entry
