"""Which provider a name gives in `ModelSetup`, with plugins installed (`mnlang.providers`
entry points): a plugin cannot take a built-in name (`openai`, `anthropic`, `scripted`)
nor a project table's, the factories a setup is given come before a plugin of the same
name, and every other plugin name is answered by the plugin. The installed packages'
metadata is read only when a name is none of the built-in, configured or given ones:
a run whose providers are all known without it never reads it (nor imports
`importlib.metadata`, see tests/test_run_imports.py)."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import mnlang.models.setup as models_setup
from mnlang.models.base import ModelReply, ModelRequest, Usage
from mnlang.models.setup import ModelSetup


class PluginProvider:
    """What a plugin's factory makes: a provider that says it is the plugin's."""

    name = "plugin"

    def complete(self, request: ModelRequest) -> ModelReply:
        return ModelReply('{"text": "plugin"}', [], Usage(1, 1), request.model)


class GivenProvider(PluginProvider):
    name = "given"


POINTS = {
    name: EntryPoint(name, f"{__name__}:PluginProvider", "mnlang.providers")
    for name in ("openai", "anthropic", "scripted", "house", "echo", "given")
}


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Installs the plugins of POINTS; the list grows by one at each read of them."""
    counted: list[int] = []

    def listed() -> dict[str, EntryPoint]:
        counted.append(1)
        return dict(POINTS)

    monkeypatch.setattr(models_setup, "plugin_entry_points", listed)
    return counted


def make(tmp_path: Path) -> ModelSetup:
    return ModelSetup(
        spec="openai",
        tables={"house": {"base_url": "http://127.0.0.1:9/v1", "api_key": "k"}},
        scripted_file=tmp_path / "replies.json",
        factories={"given": GivenProvider},
    )


def test_a_plugin_takes_no_built_in_configured_or_given_name(
    tmp_path: Path, reads: list[int]
) -> None:
    models = make(tmp_path)
    assert type(models.provider_for_name("openai")).__name__ == "OpenAIProvider"
    assert type(models.provider_for_name("anthropic")).__name__ == "AnthropicProvider"
    assert type(models.provider_for_name("house")).__name__ == "OpenAIProvider"
    assert models.provider_for_name("house").name == "house"
    assert models.provider_for_name("scripted").name == "scripted"
    assert isinstance(models.provider_for_name("given"), GivenProvider)
    for name in ("openai", "anthropic", "house", "scripted", "given"):
        assert models.knows(name)
    for name in ("openai", "anthropic", "house", "scripted"):
        assert "plugin" not in (models.unusable(name) or "")
    assert reads == [], "no name here needs the installed packages' metadata"
    assert isinstance(models.provider_for_name("echo"), PluginProvider)
    assert models.knows("echo") and models.unusable("echo") is None
    assert models.unusable("given") is None
    assert isinstance(models.provider_for_name("given"), GivenProvider)
    assert reads == [1], "read once, when a name is not otherwise known"


def test_the_plugins_listed_and_known_are_as_before(tmp_path: Path, reads: list[int]) -> None:
    models = make(tmp_path)
    # `given` is overridden by the factory given, but still listed as installed.
    assert models.plugins == ["echo", "given"]
    assert models.known() == ["anthropic", "echo", "given", "house", "openai", "scripted"]
    assert not models.knows("nobody")
    failing = models.provider_for_name("nobody", "helper")
    with pytest.raises(Exception, match="unknown provider `nobody`") as raised:
        failing.complete(ModelRequest(agent="a", model="m", messages=[], output_schema={}))
    assert "`echo`" in str(raised.value) and "`house`" in str(raised.value)
    assert models.unusable("nobody") is None


def test_scripted_is_no_plugin_without_a_replies_file(reads: list[int]) -> None:
    models = ModelSetup(spec="openai")
    assert not models.knows("scripted")
    assert "scripted" not in models.plugins
    assert models.plugins == ["echo", "given", "house"]


def test_a_scripted_run_reads_no_plugins(tmp_path: Path, reads: list[int]) -> None:
    models = ModelSetup.from_spec(f"scripted:{tmp_path / 'replies.json'}", tmp_path, {})
    assert models.refusal([]) is None
    assert models.knows(models.override.name if models.override else "")
    assert models.describe([]).startswith("scripted")
    assert reads == []
