"""What a run needs of the worker that executes it, and what a worker can serve.

A run records its needs when it is created (`NewRun.needs`, `runs.needs`): each tool
module of its program, with the sha256 of the file it started with, and each model
provider its agents call (`openai`, a project's `[providers.NAME]`; scripted replies
need none). A worker works out, for every program in the journal, which of its tool
modules it can find here (as it would load them, `runtime.tools.module_ref`: the
program's folder, this folder's project and `MNC_PATH`, installed modules) and the
sha256 of each, and which providers it can call (their keys and settings are here),
and advertises that (`Store.advertise`). The store's claim gives a worker only runs
whose every need it advertised, so a worker without a run's code or key never claims
it, and the run waits for one that has them.

Changed code: a worker that pins (`--changed-code pin`) serves a module need only with
the run's digest; one that allows (the default) serves it with whatever file of the
module it has, and logs that the module changed since the run started.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import msgspec

from mnlang.stores.base import Json, Need, Offer

if TYPE_CHECKING:  # `mnc show` imports this module: it must not load pydantic
    from mnlang.ir.model import IRProgram, SourceIR

ChangedCode = Literal["allow", "pin"]
CHANGED_CODE_POLICIES: tuple[ChangedCode, ...] = ("allow", "pin")
DEFAULT_CHANGED_CODE: ChangedCode = "allow"
CHANGED_CODE_ENV = "MNC_CHANGED_CODE"
SCRIPTED = "scripted"
"""The provider of scripted replies, which needs no key and no server."""


def changed_code_policy(given: str | None, environ: Mapping[str, str] | None = None) -> ChangedCode:
    """The policy for changed code: `given` (the worker's flag), else `MNC_CHANGED_CODE`
    (which the project file's `[workers] changed_code` fills in), else `allow`."""
    env = os.environ if environ is None else environ
    value = given or env.get(CHANGED_CODE_ENV, "").strip() or DEFAULT_CHANGED_CODE
    for policy in CHANGED_CODE_POLICIES:
        if value == policy:
            return policy
    raise ValueError(f"the changed-code policy must be `allow` or `pin`, not `{value}`")


def module_scope(program_hash: str, impl_dir: str) -> str:
    """Where a module need applies: a program's tool modules of one folder."""
    return f"{program_hash}:{impl_dir}"


# --- what a run needs -----------------------------------------------------------------------


def run_needs(program: IRProgram, meta: Mapping[str, Json]) -> tuple[Need, ...]:
    """What a run of `program` with this `meta` (its `tool_modules` digests and model
    setup) needs of a worker."""
    from mnlang.models.setup import MODELS_META

    recorded = meta.get("tool_modules")
    digests = recorded if isinstance(recorded, dict) else {}
    needs: list[Need] = []
    for module in program.source.tool_modules:
        digest = digests.get(module.path)
        needs.append(
            Need(
                "module",
                module_scope(program.hash, module.impl_dir),
                module.module,
                digest if isinstance(digest, str) else None,
            )
        )
    spec = meta.get(MODELS_META)
    for provider in called_providers(program, spec if isinstance(spec, str) else None):
        needs.append(Need("provider", "", provider))
    return tuple(needs)


def called_providers(program: IRProgram, spec: str | None) -> list[str]:
    """The providers over the network (`openai`, a project's `[providers.NAME]`) that the
    agents of `program` use under `spec` (None: the setup this process's environment
    picks); scripted replies need none."""
    if not program.agents:
        return []
    from mnlang.models.setup import ModelSetup, ModelSpecError

    try:
        setup = ModelSetup.from_spec(spec, program.source.dir)
    except ModelSpecError:
        return []  # preflight refuses such a run; a worker's call reports it
    if setup.override is not None:
        return []
    return sorted({setup.provider_name(agent) for agent in program.agents.values()} - {SCRIPTED})


# --- what a worker serves -------------------------------------------------------------------


def program_offers(program_hash: str, source: SourceIR) -> list[Need]:
    """The tool modules of a program (its hash and `source`) this process can load, each
    with its file's sha256."""
    import hashlib  # here: `mnc show` reads offers through this module without hashing

    from mnlang.runtime.tools import module_ref_from

    offers = []
    for module in source.tool_modules:
        ref = module_ref_from(source.dir, module.impl_dir, module.module)
        path = Path(ref.path) if ref.path is not None else _installed_file(ref.name)
        if path is None:
            continue
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            continue
        offers.append(
            Need("module", module_scope(program_hash, module.impl_dir), module.module, digest)
        )
    return offers


def _installed_file(name: str) -> Path | None:
    """The file of an installed module, without importing it (its parent packages are)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None or not os.path.isfile(spec.origin):
        return None
    return Path(spec.origin)


def provider_offers() -> list[Need]:
    """The providers this process can call: `openai` and the project's `[providers.NAME]`
    (from `MNC_PROVIDERS`), each when it holds its key (or, for `openai`, points it at a
    server of its own) and its settings are right."""
    from mnlang.models.setup import ModelSetup, ModelSpecError

    try:
        setup = ModelSetup.from_spec("openai", ".")
    except ModelSpecError:
        return []  # MNC_PROVIDERS is broken: the worker's own calls say so
    names = sorted({"openai", "anthropic", *setup.tables, *setup.plugins})
    return [Need("provider", "", name) for name in names if setup.unusable(name) is None]


# --- why a run waits ------------------------------------------------------------------------


class Unserved(msgspec.Struct, frozen=True):
    """A run's needs that no live worker serves whole."""

    needs: tuple[Need, ...]
    workers: int
    """How many workers are live."""

    def describe(self, *, runnable: bool = True) -> str:
        """Why the run waits (`runnable`: it could go on now), or, for a run that waits
        for something else first, what no live worker has."""
        wanted = " / ".join(describe_need(n) for n in self.needs)
        if not runnable:
            return f"no live worker has {wanted}"
        none = " (no live worker)" if not self.workers else ""
        return f"waiting for a worker with {wanted}{none}"


def describe_need(need: Need) -> str:
    if need.kind == "provider":
        return f"provider {need.name}"
    digest = f" (sha256 {need.digest[:12]}…)" if need.digest else ""
    return f"module {need.name}{digest}"


def unserved(
    needs: Sequence[Need], offers: Iterable[Offer], workers: Iterable[str]
) -> Unserved | None:
    """Why none of the live `workers` can claim a run with these needs (the needs missing
    for the worker that lacks fewest), or None when one can (or the run needs nothing)."""
    if not needs:
        return None
    by_worker: dict[str, list[Offer]] = {worker: [] for worker in workers}
    for offer in offers:
        if offer.worker_id in by_worker:
            by_worker[offer.worker_id].append(offer)
    best: tuple[Need, ...] | None = None
    for worker_offers in by_worker.values():
        missing = tuple(n for n in needs if not any(_serves(o, n) for o in worker_offers))
        if not missing:
            return None
        if best is None or len(missing) < len(best):
            best = missing
    return Unserved(best if best is not None else tuple(needs), len(by_worker))


def _serves(offer: Offer, need: Need) -> bool:
    have = offer.need
    if (have.kind, have.scope, have.name) != (need.kind, need.scope, need.name):
        return False
    return not offer.pinned or need.digest is None or have.digest == need.digest
