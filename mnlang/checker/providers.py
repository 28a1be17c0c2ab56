"""`mnc check` looks up each agent's `provider:` where the program would run: the built-in
`openai` and `scripted`, the project's `[providers.NAME]` tables (`MNC_PROVIDERS`) and
the providers installed packages register (`mnlang.providers` entry points, listed
without importing them). Like the tool modules' checks, this depends on the
environment, so it is not part of the language's checks (`mnlang.checker.check`)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from mnlang.checker.program import Program
from mnlang.checker.steps import written_option
from mnlang.checker.suggest import did_you_mean
from mnlang.diagnostics import Diagnostic, Diagnostics

BUILT_IN = ("openai", "anthropic", "scripted")


def known_providers(environ: Mapping[str, str] | None = None) -> list[str]:
    from mnlang.models.plugins import plugin_entry_points
    from mnlang.models.setup import ModelSpecError, project_providers

    try:
        tables = project_providers(os.environ if environ is None else environ)
    except ModelSpecError:
        tables = {}  # a broken MNC_PROVIDERS is reported when a run reads it
    return sorted({*BUILT_IN, *tables, *plugin_entry_points()})


def check_providers(program: Program, environ: Mapping[str, str] | None = None) -> list[Diagnostic]:
    out = Diagnostics()
    known: list[str] | None = None
    for agent in program.symbols_of("agent"):
        name = program.options.get(agent.name, {}).get("provider")
        entry = written_option(agent, "provider")
        if not isinstance(name, str) or entry is None:
            continue
        known = known_providers(environ) if known is None else known
        if name in known:
            continue
        shown = ", ".join(f"`{k}`" for k in known)
        out.add(
            "E254",
            entry.value,
            f"agent `{agent.decl.name.name}` names provider `{name}`, which is not known here",
            notes=[f"known providers: {shown}"],
            help=did_you_mean(name, known)
            or f"add a `[providers.{name}]` table to mnlang.toml, or install the package that "
            f'registers it (entry point group "mnlang.providers")',
        )
    return out.items
