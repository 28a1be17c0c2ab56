"""Python implementations of the refund example's tools and effects.

`fetch_order` reads `orders.json` beside this file. The effects pretend to call
a payment provider and a mail server; each call is appended as one JSON line
to the ledger (`MNC_EXAMPLE_LEDGER`, default `.ledger.jsonl` here) so that
crash tests can count what the outside world saw.

Failures are raised as `mnlang.errors` kinds, which a workflow's `retry.on`
and `catch` name.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from mnlang.effect_log import record
from mnlang.errors import Rejected, ToolError

HERE = Path(__file__).resolve().parent


def _ledger(effect: str, ctx: Any, args: dict[str, Any]) -> None:
    record(effect, ctx, args, HERE / ".ledger.jsonl")


def fetch_order(order_id: str, *, ctx: Any = None) -> dict[str, Any]:
    orders = json.loads((HERE / "orders.json").read_text("utf-8"))
    if order_id not in orders:
        raise ToolError(f"no order {order_id}")
    order: dict[str, Any] = orders[order_id]
    return {**order, "total": Decimal(order["total"])}


def refund_payment(order_id: str, amount: Decimal, *, ctx: Any = None) -> dict[str, Any]:
    if amount <= 0:
        raise Rejected(f"refund amount must be positive, got {amount}")
    _ledger("refund_payment", ctx, {"order_id": order_id, "amount": amount})
    return {"refund_id": f"rf-{order_id}", "amount": amount}


def send_email(customer: str, text: str, *, ctx: Any = None) -> bool:
    _ledger("notify", ctx, {"customer": customer, "text": text})
    return True
