"""Which provider answers each agent of a run: `mnc run --models SPEC` and `provider:`.

`SPEC` is one of:

- `scripted:FILE`: every agent is answered from FILE (see `mnlang.models.scripted`),
  whatever its `provider:` says; nothing goes over the network.
- `scripted`: the same with `replies.json` beside the program.
- `openai`: real providers: an agent's `provider:` picks its own (`openai` or
  `scripted`), and the others use `openai`.

Without a spec (no `--models`, no `MNC_MODELS`), a run uses the scripted replies named
by `MNC_REPLIES`, else `replies.json` beside the program when there is one, else real
providers; so an example that ships replies runs offline by default.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from mnlang.errors import TOOL_ERROR
from mnlang.ir.model import AgentIR
from mnlang.models.base import ModelCallError, ModelReply, ModelRequest, Provider
from mnlang.models.prices import PriceTable
from mnlang.models.scripted import LazyScriptedProvider

MODELS_ENV = "MNC_MODELS"
REPLIES_ENV = "MNC_REPLIES"
REPLIES_FILE = "replies.json"
PROVIDERS = ("openai", "scripted")


class ModelSpecError(ValueError):
    """A `--models` value that names no known setup."""


class _FailingProvider:
    """Stands for a provider that could not be set up: each request fails, saying why."""

    def __init__(self, name: str, why: str) -> None:
        self.name = name
        self.why = why

    def complete(self, request: ModelRequest) -> ModelReply:
        raise ModelCallError(TOOL_ERROR, self.why)


def _openai() -> Provider:
    from mnlang.models.openai import OpenAIProvider

    try:
        return OpenAIProvider()
    except ValueError as e:
        return _FailingProvider("openai", f"the `openai` provider is misconfigured: {e}")


class ModelSetup:
    """The providers of one run. `override` answers every agent (a scripted run);
    otherwise an agent's `provider:` or `default` names its provider in `factories`."""

    def __init__(
        self,
        *,
        spec: str,
        override: Provider | None = None,
        factories: Mapping[str, Callable[[], Provider]] | None = None,
        default: str = "openai",
        scripted_file: Path | None = None,
    ) -> None:
        self.spec = spec
        self.override = override
        self.default = default
        self._factories: dict[str, Callable[[], Provider]] = {"openai": _openai}
        if scripted_file is not None:
            self._factories["scripted"] = lambda: LazyScriptedProvider(scripted_file)
        self._factories.update(factories or {})
        self._made: dict[str, Provider] = {}

    @classmethod
    def from_spec(
        cls, spec: str | None, program_dir: str | Path, environ: Mapping[str, str] | None = None
    ) -> ModelSetup:
        """The setup a spec names; `spec` None picks the default described above."""
        env = os.environ if environ is None else environ
        folder = Path(program_dir)
        beside = folder / REPLIES_FILE
        if spec is None:
            spec = env.get(MODELS_ENV, "").strip() or None
        if spec is None:
            replies = env.get(REPLIES_ENV, "").strip()
            if replies:
                return cls.scripted(Path(replies), f"scripted:{replies}")
            if beside.is_file():
                return cls.scripted(beside, f"scripted:{beside}")
            return cls(spec="openai", scripted_file=beside)
        name, sep, rest = spec.partition(":")
        if name == "scripted":
            path = Path(rest) if sep and rest else beside
            if not path.is_absolute() and sep:
                path = Path.cwd() / path
            return cls.scripted(path, f"scripted:{path}")
        if name == "openai" and not sep:
            return cls(spec="openai", scripted_file=beside)
        raise ModelSpecError(
            f"unknown model setup `{spec}`: use `scripted:FILE`, `scripted` or `openai`"
        )

    @classmethod
    def scripted(cls, path: Path, spec: str) -> ModelSetup:
        return cls(spec=spec, override=LazyScriptedProvider(path), scripted_file=path)

    def known(self) -> list[str]:
        """The provider names this setup can make."""
        return sorted({*self._factories, *([self.override.name] if self.override else [])})

    def knows(self, name: str) -> bool:
        return name in self.known()

    def provider_name(self, agent: AgentIR) -> str:
        if self.override is not None:
            return self.override.name
        return agent.provider or self.default

    def provider_for(self, agent: AgentIR) -> Provider:
        if self.override is not None:
            return self.override
        name = self.provider_name(agent)
        made = self._made.get(name)
        if made is None:
            factory = self._factories.get(name)
            if factory is None:
                known = ", ".join(f"`{p}`" for p in sorted(self._factories))
                made = _FailingProvider(
                    name, f"agent `{agent.name}` names an unknown provider `{name}` ({known})"
                )
            else:
                made = factory()
            self._made[name] = made
        return made

    def price_entry(self, agent: AgentIR, prices: PriceTable) -> str:
        """The price table entry a call of `agent` is priced by: `scripted` replies cost
        nothing; a real model is priced as the model that answers when the table has it,
        else as the agent's declared model."""
        provider = self.provider_for(agent)
        if provider.name == "scripted":
            return "scripted"
        used = getattr(provider, "model_for", None)
        model = used(agent.model) if callable(used) else agent.model
        return model if prices.model(model) is not None else agent.model
