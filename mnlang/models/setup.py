"""Which provider answers each agent of a run: `mnc run --models SPEC` and `provider:`.

`SPEC` is one of:

- `scripted:FILE`: every agent is answered from FILE (see `mnlang.models.scripted`),
  whatever its `provider:` says; nothing goes over the network.
- `scripted`: the same with `replies.json` beside the program.
- `openai`: real providers: an agent's `provider:` picks its own (`openai`,
  `scripted`, or a provider the project's `[providers.NAME]` tables name), and the
  others use `openai`.

Without a spec (no `--models`, no `MNC_MODELS`), a run uses the scripted replies named
by `MNC_REPLIES`, else real providers. A `replies.json` beside the program is never
picked up on its own: a deployed folder that ships test replies must not answer its
agents with them (`mnc test` and `mnc bench` script replies their own way).

The project's provider tables reach a run as JSON in `MNC_PROVIDERS` (set by
`mnlang.project.apply_defaults`), so that a worker reads them as it reads every other
setting: from its environment.

`ModelSetup.refusal` says why a run cannot start (a provider that needs a key has
none), so that `mnc run` refuses before a run is created; `ModelSetup.describe` says
who answers, for `mnc run` to print.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnlang.errors import TOOL_ERROR
from mnlang.ir.model import AgentIR
from mnlang.models.base import ModelCallError, ModelReply, ModelRequest, Provider
from mnlang.models.plugins import PluginError, load_plugin, plugin_entry_points
from mnlang.models.prices import PriceTable
from mnlang.models.scripted import LazyScriptedProvider
from mnlang.project import provider_kind

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from mnlang.models.openai import OpenAIConfig

MODELS_ENV = "MNC_MODELS"
REPLIES_ENV = "MNC_REPLIES"
PROVIDERS_ENV = "MNC_PROVIDERS"
REPLIES_FILE = "replies.json"
MODELS_META = "models"
"""The key of a run's `meta` that keeps the model setup it started with."""


class ModelSpecError(ValueError):
    """A `--models` value that names no known setup."""


class _FailingProvider:
    """Stands for a provider that could not be set up: each request fails, saying why."""

    def __init__(self, name: str, why: str) -> None:
        self.name = name
        self.why = why

    def complete(self, request: ModelRequest) -> ModelReply:
        raise ModelCallError(TOOL_ERROR, self.why)


def _openai_config(name: str, table: Mapping[str, Any]) -> OpenAIConfig:
    """The OpenAIConfig of provider `name`; ValueError says what is wrong."""
    from mnlang.models.openai import OpenAIConfig

    return OpenAIConfig.from_table(name, table)


def _anthropic(name: str = "anthropic", table: Mapping[str, Any] | None = None) -> Provider:
    from mnlang.models.anthropic import AnthropicConfig, AnthropicProvider

    try:
        return AnthropicProvider(AnthropicConfig.from_table(name, table or {}), name=name)
    except ValueError as e:
        return _FailingProvider(name, f"the `{name}` provider is misconfigured: {e}")


def _openai(name: str = "openai", table: Mapping[str, Any] | None = None) -> Provider:
    from mnlang.models.openai import OpenAIProvider

    try:
        return OpenAIProvider(_openai_config(name, table or {}), name=name)
    except ValueError as e:
        return _FailingProvider(name, f"the `{name}` provider is misconfigured: {e}")


def project_providers(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The `[providers.NAME]` tables handed down in `MNC_PROVIDERS`."""
    given = environ.get(PROVIDERS_ENV, "").strip()
    if not given:
        return {}
    try:
        tables = json.loads(given)
    except ValueError:
        tables = None
    if not isinstance(tables, dict) or not all(isinstance(t, dict) for t in tables.values()):
        raise ModelSpecError(
            f"{PROVIDERS_ENV} must be a JSON object of provider tables "
            '(`{"NAME": {"base_url": ...}}`), as the project file\'s [providers.NAME] give'
        )
    return tables


def sdk_modules(environ: Mapping[str, str]) -> list[str]:
    """The model SDKs a worker with this environment is likely to need: `openai` unless
    its runs are scripted, `anthropic` when it has an Anthropic key or a table of that
    kind. A worker imports them once it starts (`mnlang.api.run_worker`), so that the
    first agent request of a run it claims does not wait for the import."""
    spec = environ.get(MODELS_ENV, "").strip()
    if spec.startswith("scripted") or (not spec and environ.get(REPLIES_ENV, "").strip()):
        return []
    modules = ["openai"]
    try:
        tables = project_providers(environ)
    except ModelSpecError:
        tables = {}
    keyed = any(environ.get(v) for v in ("MNC_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY"))
    if keyed or any(provider_kind(n, t) == "anthropic" for n, t in tables.items()):
        modules.append("anthropic")
    return modules


def import_sdks() -> None:
    """Import the SDKs `sdk_modules` names for this process's environment; one that does
    not import is left for the request that needs it to report."""
    import importlib

    for module in sdk_modules(os.environ):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)


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
        tables: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.spec = spec
        self.override = override
        self.default = default
        self.tables = dict(tables or {})
        """The project's provider settings by name (`kind` openai or anthropic)."""
        self._factories: dict[str, Callable[[], Provider]] = {
            "openai": _openai,
            "anthropic": _anthropic,
        }
        for name, table in self.tables.items():
            make = _anthropic if provider_kind(name, table) == "anthropic" else _openai
            self._factories[name] = functools.partial(make, name, table)
        # A plugin cannot take a built-in name, a table's or `scripted`; the factories
        # given (and `scripted`'s) take precedence over a plugin's (see `_factory`).
        self._taken = {*self._factories, "scripted"}
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
            return cls(spec="openai", scripted_file=beside, tables=project_providers(env))
        name, sep, rest = spec.partition(":")
        if name == "scripted":
            path = Path(rest) if sep and rest else beside
            if not path.is_absolute() and sep:
                path = Path.cwd() / path
            return cls.scripted(path, f"scripted:{path}")
        if name == "openai" and not sep:
            return cls(spec="openai", scripted_file=beside, tables=project_providers(env))
        raise ModelSpecError(
            f"unknown model setup `{spec}`: use `scripted:FILE`, `scripted` or `openai`"
        )

    @classmethod
    def scripted(cls, path: Path, spec: str) -> ModelSetup:
        return cls(spec=spec, override=LazyScriptedProvider(path), scripted_file=path)

    @functools.cached_property
    def _plugins(self) -> dict[str, EntryPoint]:
        """The plugins by name, read from the installed packages' metadata only when a
        name is neither built in, configured nor given (or all names are listed)."""
        return {
            name: point for name, point in plugin_entry_points().items() if name not in self._taken
        }

    @property
    def plugins(self) -> list[str]:
        """The providers installed packages register (`mnlang.providers` entry points)."""
        return sorted(self._plugins)

    def known(self) -> list[str]:
        """The provider names this setup can make."""
        override = [self.override.name] if self.override else []
        return sorted({*self._factories, *self._plugins, *override})

    def knows(self, name: str) -> bool:
        if name in self._factories or (self.override is not None and name == self.override.name):
            return True
        return name in self._plugins

    def _factory(self, name: str) -> Callable[[], Provider] | None:
        factory = self._factories.get(name)
        if factory is None and name in self._plugins:
            return functools.partial(self._plugin, name)
        return factory

    def provider_name(self, agent: AgentIR) -> str:
        if self.override is not None:
            return self.override.name
        return agent.provider or self.default

    def provider_for(self, agent: AgentIR) -> Provider:
        if self.override is not None:
            return self.override
        return self.provider_for_name(self.provider_name(agent), agent.name)

    def provider_for_name(self, name: str, agent: str | None = None) -> Provider:
        made = self._made.get(name)
        if made is None:
            factory = self._factory(name)
            if factory is None:
                known = ", ".join(f"`{p}`" for p in sorted({*self._factories, *self._plugins}))
                who = f"agent `{agent}` names" if agent else "a run names"
                made = _FailingProvider(name, f"{who} an unknown provider `{name}` ({known})")
            else:
                made = factory()
            self._made[name] = made
        return made

    def _plugin(self, name: str) -> Provider:
        try:
            return load_plugin(name, self._plugins[name])
        except PluginError as e:
            return _FailingProvider(name, str(e))

    def _used_names(self, agents: Iterable[AgentIR]) -> list[str]:
        return sorted({self.provider_name(agent) for agent in agents})

    def refusal(self, agents: Iterable[AgentIR]) -> str | None:
        """Why these agents cannot be answered at all, before anything runs: a provider
        that needs a key and has none, or one configured wrongly. None when they can."""
        if self.override is not None:
            return None
        for name in self._used_names(agents):
            why = self.unusable(name)
            if why is not None:
                return why
        return None

    def unusable(self, name: str) -> str | None:
        """Why provider `name` (`openai` or a project's) cannot send a request here: no
        key, or configured wrongly; a plugin that does not load; None when it can, or is
        not such a provider."""
        if name not in ("openai", "anthropic") and name not in self.tables:
            if name != "scripted" and name in self._plugins:  # never a plugin's name
                made = self.provider_for_name(name)
                return made.why if isinstance(made, _FailingProvider) else None
            return None
        table = self.tables.get(name, {})
        if provider_kind(name, table) == "anthropic":
            from mnlang.models.anthropic import AnthropicConfig
            from mnlang.models.anthropic import missing_key as anthropic_key

            try:
                config = AnthropicConfig.from_table(name, table)
            except ValueError as e:
                return f"the `{name}` provider is misconfigured: {e}"
            return self._unset_key(name, table, config.api_key) or anthropic_key(config, name)
        from mnlang.models.openai import missing_key

        try:
            openai_config = _openai_config(name, table)
        except ValueError as e:
            return f"the `{name}` provider is misconfigured: {e}"
        unset = self._unset_key(name, table, openai_config.api_key)
        return unset or (missing_key(openai_config) if name == "openai" else None)

    @staticmethod
    def _unset_key(name: str, table: Mapping[str, Any], key: str | None) -> str | None:
        """Why a table that names its key's variable cannot be used: the variable is unset."""
        variable = table.get("api_key_env")
        if variable is None or key:
            return None
        return (
            f"no API key for the `{name}` provider: its [providers.{name}] table "
            f"reads it from `{variable}`, which is not set"
        )

    def describe(self, agents: Iterable[AgentIR]) -> str:
        """Who answers these agents, in one line: `scripted (replies from FILE)`, or each
        provider with where it sends requests."""
        if self.override is not None:
            if self.override.name == "scripted":
                return f"scripted (replies from {self.spec.partition(':')[2] or self.spec})"
            return self.override.name
        parts = []
        for name in self._used_names(agents):
            provider = self.provider_for_name(name)
            where = getattr(provider, "describe", None)
            parts.append(f"{name} ({where()})" if callable(where) else name)
        return ", ".join(parts) or "no agents"

    def price_entry(self, agent: AgentIR, prices: PriceTable, model: str | None = None) -> str:
        """The price table entry a request of `agent` to `model` (its first by default) is
        priced by: `scripted` replies cost nothing; a real model is priced as the model
        that answers when the table has it, else as the model asked for."""
        provider = self.provider_for(agent)
        if provider.name == "scripted":
            return "scripted"
        asked = model or agent.model
        used = getattr(provider, "model_for", None)
        answering = used(asked) if callable(used) else asked
        return answering if prices.model(answering) is not None else asked
