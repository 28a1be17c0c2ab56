"""The effect ledger's vocabulary: keys, argument hashes and what a ledger row means.

A keyed effect's key is its `key` template evaluated over the call's arguments; a
`once` effect, which has no key, gets one derived from the run, the state and the
iteration (its branch and loop positions), so each execution of the statement is
committed at most once. The args hash is the sha256 of the arguments' canonical JSON,
with money normalised (`42.5` and `42.50` are one amount).
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any

from mnlang.errors import KEY_CONFLICT
from mnlang.ir.model import EffectIR
from mnlang.runtime.evaluate import Evaluator, MapEnv
from mnlang.runtime.failures import StepFailure
from mnlang.runtime.values import Value, to_plain
from mnlang.stores.base import LedgerRow


def effect_key(effect: EffectIR, args: dict[str, Value], evaluator: Evaluator, place: str) -> str:
    """The ledger key of one call; `place` names the statement's execution, for `once`."""
    if effect.key is not None:
        return evaluator.text(effect.key, MapEnv(args))
    return f"once:{effect.name}:{place}"


def _canonical(value: Value) -> Any:
    if isinstance(value, Decimal):
        normal = value.normalize()
        return {"$money": format(normal if normal != 0 else Decimal(0), "f")}
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return to_plain(value)


def args_hash(args: dict[str, Value]) -> str:
    text = json.dumps(_canonical(args), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def conflict(effect: EffectIR, key: str, row: LedgerRow) -> StepFailure:
    return StepFailure(
        KEY_CONFLICT,
        f"effect `{effect.name}`: key `{key}` was already used with other arguments "
        f"(by run `{row.run_id}`, state `{row.state}`)",
    )
