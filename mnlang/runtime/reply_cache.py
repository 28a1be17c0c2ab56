"""Agents' replies kept across runs (`cache: 1h` on an agent).

A request's digest is the sha256 of what decides the answer: the provider, the model, the
whole conversation so far (the system prompt, the prompt, earlier replies and the tools'
results), the output schema, the tools offered and the sampling settings. A run that
sends a request with the digest of a kept, unexpired reply uses that reply instead of
asking: it journals it as its own reply, marked `cached`, at no cost, so resume and
replay read it from the run's journal like any other reply. What is kept is a reply the
run accepted: a text answer once it validated, a round of tool calls as it came.
Agents that may call effects never cache (E260): acting on another run's answer would
repeat that run's actions.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from mnlang.models.base import ModelReply, ModelRequest, ToolCall


def request_digest(provider: str, request: ModelRequest) -> str:
    """The key of a request's reply in the cache."""
    decisive: dict[str, Any] = {
        "provider": provider,
        "model": request.model,
        "messages": request.messages,
        "output_schema": request.output_schema,
        "tools": [[t.name, t.description, t.parameters] for t in request.tools],
        "tool_choice": request.tool_choice,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
    }
    text = json.dumps(decisive, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def reply_json(reply: ModelReply) -> str:
    """A reply as kept: its text or tool calls and the model that gave it (no usage: a
    run that uses it spends nothing)."""
    return json.dumps(
        {
            "text": reply.text,
            "tool_calls": [[c.id, c.name, c.arguments] for c in reply.tool_calls],
            "model": reply.model,
        },
        ensure_ascii=False,
    )


def kept_reply(text: str) -> ModelReply:
    """A kept reply, as the provider's reply would have been (without usage)."""
    data = json.loads(text)
    calls = [ToolCall(str(i), str(n), str(a)) for i, n, a in data.get("tool_calls") or []]
    return ModelReply(data.get("text"), calls, None, str(data.get("model") or ""))
