"""What `mnc run` refuses before it creates anything (no journal, no run): input that
does not fit the workflow, a tool or effect whose `impl` cannot be imported here, and an
agent whose provider is unknown. Each check is its own function, so the checks of other
parts (a provider that needs a key without one) join `preflight` as one more line."""

from __future__ import annotations

from typing import Any

from mnlang.ir.model import IRProgram
from mnlang.runtime.run import RunError, prepare_args
from mnlang.runtime.tools import ToolLoadError, resolve


def preflight(program: IRProgram, workflow: str, given: Any, models: str | None) -> None:
    """Raise `RunError` (an `InputError` for the input) when the run would surely fail."""
    wf = program.workflows.get(workflow)
    if wf is None:
        known = ", ".join(f"`{w}`" for w in program.workflows) or "none"
        raise RunError(f"no workflow `{workflow}` in the program", help=f"workflows: {known}")
    prepare_args(program, wf, given)
    unimportable_impls(program)
    unknown_providers(program, models)


def unimportable_impls(program: IRProgram) -> None:
    """Every tool's and effect's `impl` imports here, and names a function."""
    problems: list[str] = []
    for tool in [*program.tools.values(), *program.effects.values()]:
        try:
            resolve(program, tool)
        except ToolLoadError as e:
            problems.append(str(e))
    if problems:
        raise RunError(
            "cannot start: " + "; ".join(problems),
            help="install the code, run from the project, or name its folder in MNC_PATH "
            "(docs/deploy.md, 'Where code is found')",
        )


def unknown_providers(program: IRProgram, models: str | None) -> None:
    """Every agent's provider is one this setup knows."""
    from mnlang.models.setup import ModelSetup, ModelSpecError

    try:
        setup = ModelSetup.from_spec(models, program.source.dir)
    except ModelSpecError as e:
        raise RunError(str(e)) from None
    unknown = sorted(
        f"agent `{a.name}` names provider `{setup.provider_name(a)}`"
        for a in program.agents.values()
        if not setup.knows(setup.provider_name(a))
    )
    if unknown:
        raise RunError(
            "cannot start: " + "; ".join(unknown),
            help=f"known providers: {', '.join(setup.known())}",
        )
