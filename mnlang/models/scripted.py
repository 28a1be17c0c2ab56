"""The `scripted` provider: replies from a file, so that examples and tests need no network.

The file maps agent names (short or qualified) to lists of entries::

    {
      "triage": [{"category": "damaged", "confidence": 0.93, "summary": "cracked mug"}],
      "read_source": [
        {"$match": "Four-day week trial", "$reply": {"claims": ["..."], "relevant": true}},
        {"$match": "Hospital rotas", "$reply": {"claims": [], "relevant": false}}
      ],
      "critique": [
        {"$tool_calls": [{"name": "search", "arguments": {"query": "...", "max_results": 3}}]},
        {"verdict": "approve"}
      ]
    }

An entry is the answer itself (any JSON value), or an object whose keys all start with
`$`: `$reply` (the answer), `$text` (the answer's raw text, e.g. malformed on purpose),
`$tool_calls` (this turn calls tools instead of answering), `$usage`
(`{"input_tokens": N, "output_tokens": M}`, reported as the call's usage), `$error`
(`"timeout"` or `{"kind": "transient", "message": "..."}`: the request fails so) and
`$match` (a piece of text the rendered prompt must contain).

Entries with `$match` answer by prompt: the first request of an agent call whose prompt
contains the text gets the first matching entry, and each later request of the same call
(a later turn, or a new attempt) gets the next one. The other
entries answer in call order: the agent's n-th model request in the run gets the n-th.
A request with no entry is a `tool_error` that names the agent and the call. Scripted
calls cost nothing.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from mnlang.errors import ALL_KINDS, TOOL_ERROR
from mnlang.models.base import ModelCallError, ModelReply, ModelRequest, ToolCall, Usage

_KEYS = ("$reply", "$text", "$tool_calls", "$usage", "$error", "$match")

Script = dict[str, list[Any]]


class ScriptError(Exception):
    """A replies file that cannot be read or does not have the expected shape."""


def load_script(path: str | Path) -> Script:
    """Read and check a replies file; `ScriptError` says what is wrong with it."""
    try:
        data = json.loads(Path(path).read_text("utf-8"))
    except FileNotFoundError:
        raise ScriptError(f"no replies file `{path}`") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ScriptError(f"cannot read replies file `{path}`: {e}") from None
    except ValueError as e:
        raise ScriptError(f"replies file `{path}` is not JSON: {e}") from None
    return check_script(data, str(path))


def check_script(data: Any, where: str) -> Script:
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ScriptError(f"`{where}` must map agent names to lists of replies")
    for agent, entries in data.items():
        for i, entry in enumerate(entries):
            _check_entry(entry, f"{where}: `{agent}` reply {i + 1}")
    return data


def _check_entry(entry: Any, where: str) -> None:
    if not _is_directive(entry):
        return
    unknown = sorted(k for k in entry if k not in _KEYS)
    if unknown:
        raise ScriptError(f"{where}: unknown key `{unknown[0]}` (keys: {', '.join(_KEYS)})")
    answers = [k for k in ("$reply", "$text", "$tool_calls", "$error") if k in entry]
    if len(answers) != 1:
        raise ScriptError(
            f"{where}: give exactly one of `$reply`, `$text`, `$tool_calls` and `$error`"
        )
    if "$match" in entry and not isinstance(entry["$match"], str):
        raise ScriptError(f"{where}: `$match` takes a string")
    if "$text" in entry and not isinstance(entry["$text"], str):
        raise ScriptError(f"{where}: `$text` takes a string")
    calls = entry.get("$tool_calls", [])
    if not isinstance(calls, list) or not all(
        isinstance(c, dict) and isinstance(c.get("name"), str) for c in calls
    ):
        raise ScriptError(f'{where}: `$tool_calls` takes `[{{"name": ..., "arguments": ...}}]`')
    usage = entry.get("$usage", {})
    if not isinstance(usage, dict) or not all(
        isinstance(usage.get(k, 0), int) for k in ("input_tokens", "output_tokens")
    ):
        raise ScriptError(f"{where}: `$usage` takes `input_tokens` and `output_tokens`")
    error = entry.get("$error")
    kind = error.get("kind") if isinstance(error, dict) else error
    if "$error" in entry and kind not in ALL_KINDS:
        raise ScriptError(f"{where}: `$error` takes an error kind, not {kind!r}")


def _is_directive(entry: Any) -> bool:
    return isinstance(entry, dict) and bool(entry) and all(str(k).startswith("$") for k in entry)


def script_key(agent: str, first_model: str, model: str | None) -> str:
    """The key of a replies file that scripts `agent`'s requests to `model`: the agent's
    own for its first model (or None), `agent@model` for a fallback model."""
    return agent if model is None or model == first_model else f"{agent}@{model}"


class ScriptedProvider:
    name = "scripted"

    def __init__(self, script: Script, source: str) -> None:
        self.script = script
        self.source = source
        """Where the replies come from, as messages name it: "`replies.json`"."""

    @classmethod
    def from_file(cls, path: str | Path) -> ScriptedProvider:
        return cls(load_script(path), f"`{path}`")

    def _entries(self, agent: str) -> list[Any] | None:
        short = agent.rsplit(".", 1)[-1]
        return self.script.get(agent, self.script.get(short))

    def _model_entries(self, request: ModelRequest) -> tuple[str, list[Any] | None]:
        """The entries for a request to one of the agent's fallback models: keyed
        `agent@model`, so each model is scripted on its own."""
        keys = [script_key(a, "", request.model) for a in (request.agent, request.short_agent)]
        for key in keys:
            if key in self.script:
                return key, self.script[key]
        return keys[1], None

    def complete(self, request: ModelRequest) -> ModelReply:
        entry = self.entry(request)
        if not _is_directive(entry):
            return ModelReply(json.dumps(entry, ensure_ascii=False), model=self.name)
        if "$error" in entry:
            error = entry["$error"]
            kind = str(error.get("kind") if isinstance(error, dict) else error)
            message = error.get("message") if isinstance(error, dict) else None
            raise ModelCallError(kind, str(message or f"scripted {kind}"))
        usage = entry.get("$usage")
        used = Usage(usage.get("input_tokens", 0), usage.get("output_tokens", 0)) if usage else None
        if "$tool_calls" in entry:
            calls = [
                ToolCall(
                    str(call.get("id") or f"call_{request.call_number}_{i}"),
                    call["name"],
                    json.dumps(call.get("arguments", {}), ensure_ascii=False),
                )
                for i, call in enumerate(entry["$tool_calls"])
            ]
            return ModelReply(None, calls, used, self.name)
        text = entry["$text"] if "$text" in entry else json.dumps(entry["$reply"])
        return ModelReply(text, [], used, self.name)

    def entry(self, request: ModelRequest) -> Any:
        """The scripted entry that answers `request`."""
        agent = request.short_agent
        entries = self._entries(request.agent)
        if request.fallback:
            agent, entries = self._model_entries(request)
        if entries is None:
            raise ModelCallError(TOOL_ERROR, f"{self.source} has no replies for agent `{agent}`")
        prompt = request.prompt
        matching = [e for e in entries if _is_directive(e) and e.get("$match", None) is not None]
        if matching:
            chosen = [e for e in matching if e["$match"] in prompt]
            if chosen:
                k = request.request_number
                if k < len(chosen):
                    return chosen[k]
                raise ModelCallError(
                    TOOL_ERROR,
                    f"{self.source} has {len(chosen)} replies for agent `{agent}` matching "
                    f"its prompt; request {k + 1} of this call has none",
                )
        ordered = [e for e in entries if not (_is_directive(e) and "$match" in e)]
        n = request.call_number
        if n < len(ordered):
            return ordered[n]
        shown = prompt if len(prompt) <= 80 else prompt[:77] + "..."
        raise ModelCallError(
            TOOL_ERROR,
            f"{self.source} has {len(ordered)} replies for agent `{agent}` in call order; "
            f"call {n + 1} has none (prompt: {shown!r})",
        )


class LazyScriptedProvider:
    """A `ScriptedProvider` whose file is read at its first request (a run with no agent
    call needs no replies file)."""

    name = "scripted"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._provider: ScriptedProvider | None = None
        self._lock = threading.Lock()

    def complete(self, request: ModelRequest) -> ModelReply:
        with self._lock:
            if self._provider is None:
                try:
                    self._provider = ScriptedProvider.from_file(self.path)
                except ScriptError as e:
                    raise ModelCallError(TOOL_ERROR, str(e)) from None
        return self._provider.complete(request)
