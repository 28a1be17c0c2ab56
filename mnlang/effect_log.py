"""A log of what the outside world saw: one JSON line per effect invocation.

Tool authors call `record` from an effect's implementation so that tests (and
the crash tests of this project) can count how often a side effect really
happened, independently of the journal:

    from mnlang.effect_log import record

    def refund_payment(order_id: str, amount: Decimal, *, ctx=None) -> dict:
        record("refund_payment", ctx, {"order_id": order_id, "amount": amount})
        ...

The file is `MNC_EXAMPLE_LEDGER` when set, else `default` (typically a
`.ledger.jsonl` beside the tools module).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def record(effect: str, ctx: Any, args: dict[str, Any], default: Path | str | None = None) -> None:
    """Append one invocation: the effect's name, the runtime's idempotency key and the arguments."""
    target = os.environ.get("MNC_EXAMPLE_LEDGER") or default
    if target is None:
        return
    row = {"effect": effect, "key": getattr(ctx, "key", None), "args": args}
    with Path(target).open("a", encoding="utf-8") as f:
        f.write(json.dumps(row, default=str, sort_keys=True) + "\n")
