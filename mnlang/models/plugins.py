"""Providers from other packages: a Python entry point in the `mnlang.providers` group.

A package registers a provider under the name agents use in `provider:`::

    [project.entry-points."mnlang.providers"]
    bedrock = "mnlang_bedrock:BedrockProvider"

The object it names is called with no arguments and returns a `Provider` (an object
with a `name` and `complete(request) -> ModelReply`; a class with such instances does).
It reads its own settings (environment variables), as the `openai` provider does.
Entry points are listed from the installed packages' metadata without importing them;
a plugin's module is imported when a run first needs the provider, or when `mnc run`
and `mnc worker` ask whether they can use it. The built-in providers and the project's
`[providers.NAME]` tables come first: a plugin cannot take their names.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from mnlang.models.base import Provider

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

ENTRY_POINT_GROUP = "mnlang.providers"


class PluginError(Exception):
    """A provider plugin that cannot be loaded or does not make a provider."""


@functools.cache
def plugin_entry_points() -> dict[str, EntryPoint]:
    """The installed packages' provider entry points by name (the first of a name wins,
    as `importlib.metadata` orders them). Imported and read only when asked: a run whose
    providers are all built in or configured never reads the packages' metadata."""
    from importlib.metadata import entry_points

    found: dict[str, EntryPoint] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(point.name, point)
    return found


def load_plugin(name: str, point: EntryPoint) -> Provider:
    """The provider a plugin's entry point makes; PluginError says what went wrong."""
    where = f"provider plugin `{name}` ({point.value}"
    dist = point.dist
    where += f", from {dist.name} {dist.version})" if dist is not None else ")"
    try:
        factory = point.load()
    except Exception as e:  # any import failure of foreign code is reported
        raise PluginError(f"{where} failed to import: {type(e).__name__}: {e}") from None
    if not callable(factory):
        raise PluginError(f"{where} names {type(factory).__name__}, not a provider factory")
    try:
        made = factory()
    except Exception as e:  # the plugin's own code: whatever it raises is reported
        raise PluginError(f"{where} failed to start: {type(e).__name__}: {e}") from None
    if not callable(getattr(made, "complete", None)) or not isinstance(
        getattr(made, "name", None), str
    ):
        raise PluginError(f"{where} made {type(made).__name__}, which has no `name` and `complete`")
    provider: Provider = made
    return provider
