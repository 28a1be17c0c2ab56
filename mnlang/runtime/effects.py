"""The effect ledger's vocabulary: keys, argument hashes and what a ledger row means.

A keyed effect's key is its `key` template evaluated over the call's arguments; a
`once` effect, which has no key, gets one derived from the run, the state and the
iteration (its branch and loop positions), so each execution of the statement is
committed at most once. The args hash is the sha256 of the arguments' canonical JSON,
with money normalised (`42.5` and `42.50` are one amount).

The **wire key** is what a tool sends to the receiving system (`ctx.wire_key`, the
`Idempotency-Key` of `std.http`): it names the effect at its declared scope. For
`scope: run` it is the run's nonce (`WIRE_NONCE`, random, created with the run and kept
in its `meta`) joined to the ledger key, so two runs never send the same key even when
their run ids or key templates agree; for `scope: global` it is the ledger key itself.
It is printable ASCII of at most `MAX_WIRE_KEY` characters: a key that is not is sent
as its sha256. The wire key is computed once, when the intent is committed, and stored
in it; a resumed intent sends the stored one, never a recomputed one.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from decimal import Decimal
from typing import Any

from mnlang.errors import KEY_CONFLICT
from mnlang.ir.model import EffectIR
from mnlang.runtime.evaluate import Evaluator, MapEnv
from mnlang.runtime.failures import StepFailure
from mnlang.runtime.values import Value, to_plain
from mnlang.stores.base import LedgerRow, RunRecord

WIRE_NONCE = "wire_nonce"
"""The key of a run's `meta` that keeps its nonce for wire keys."""
MAX_WIRE_KEY = 255
"""Stripe's limit for an `Idempotency-Key`, and a safe one for any HTTP header."""


def effect_key(effect: EffectIR, args: dict[str, Value], evaluator: Evaluator, place: str) -> str:
    """The key template's value for one call; `place` names the statement's execution,
    for `once`."""
    if effect.key is not None:
        return evaluator.text(effect.key, MapEnv(args))
    return f"once:{effect.name}:{place}"


def ledger_key(effect: EffectIR, template_key: str, asked: str | None) -> str:
    """The ledger key of a call whose key template gave `template_key`. `asked` says
    where a model asked for the call (its agent call's place, reply and index): a
    `scope: run` key of an effect an agent calls includes it, so a new request is a new
    action and the same request resumed is the same one; a `scope: global` key does not,
    so it deduplicates across requests (and with workflow calls of the key)."""
    if asked is not None and effect.scope == "run" and effect.key is not None:
        return f"{template_key} <asked: {asked}>"
    return template_key


def new_wire_nonce() -> str:
    """A fresh run's nonce: 128 random bits, so no other run, here or in another journal,
    has it."""
    return secrets.token_hex(16)


def run_wire_nonce(record: RunRecord) -> str:
    """The run's nonce; a run started before wire keys has none in its `meta`, and gets
    one derived from its id and its creation time (a run id reused after its run was
    removed gets another)."""
    nonce = record.meta.get(WIRE_NONCE)
    if isinstance(nonce, str):
        return nonce
    seed = f"{record.run_id}\0{record.created_at!r}"
    return hashlib.sha256(seed.encode("utf-8")).hexdigest()[:32]


def wire_key(key: str, scope: str, nonce: str) -> str:
    """What the receiving system is sent for the ledger key `key` (see the module's text)."""
    prefix = f"run-{nonce}:" if scope == "run" else ""
    text = prefix + key
    if len(text) <= MAX_WIRE_KEY and text.isascii() and text.isprintable() and text == text.strip():
        return text
    return prefix + "sha256-" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def noted_template_key(noted: dict[str, Any]) -> str:
    """The key template's value of an intent as noted; an intent noted before agent calls
    had their own ledger keys has only its ledger key, which was that value."""
    template = noted.get("template")
    return template if isinstance(template, str) else str(noted["key"])


def noted_wire_key(noted: dict[str, Any]) -> str:
    """The wire key of an intent as noted in the journal. An intent committed before wire
    keys has none: it sends what that release sent, the ledger key."""
    wire = noted.get("wire")
    return wire if isinstance(wire, str) else str(noted["key"])


def _canonical(value: Value) -> Any:
    if isinstance(value, Decimal):
        normal = value.normalize()
        return {"$money": format(normal if normal != 0 else Decimal(0), "f")}
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return to_plain(value)


_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
"""`json.dumps` with these options, without building an encoder for each effect call."""


def args_hash(args: dict[str, Value]) -> str:
    text = _CANONICAL_JSON.encode(_canonical(args))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def conflict(effect: EffectIR, key: str, row: LedgerRow) -> StepFailure:
    return StepFailure(
        KEY_CONFLICT,
        f"effect `{effect.name}`: key `{key}` was already used with other arguments "
        f"(by run `{row.run_id}`, state `{row.state}`)",
    )
