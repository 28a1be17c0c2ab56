"""Python implementations of the invoice example's tools and effects.

`lookup_vendor` reads `vendors.json` beside this file and returns None for an
unknown vendor (the tool is declared `-> Vendor?`). The effects pretend to call
a bank, a bookkeeping system and a mail server; each call is appended as one
JSON line to the ledger (`MNC_EXAMPLE_LEDGER`, default `.ledger.jsonl` here)
so that crash tests can count what the outside world saw.

Failures are raised as `mnlang.errors` kinds, which a workflow's `retry.on`
and `catch` name.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from mnlang.effect_log import record
from mnlang.errors import Rejected

HERE = Path(__file__).resolve().parent


def _ledger(effect: str, ctx: Any, args: dict[str, Any]) -> None:
    record(effect, ctx, args, HERE / ".ledger.jsonl")


def lookup_vendor(name: str, *, ctx: Any = None) -> dict[str, Any] | None:
    vendors: dict[str, dict[str, Any]] = json.loads((HERE / "vendors.json").read_text("utf-8"))
    return vendors.get(name)


def pay_invoice(invoice_id: str, iban: str, amount: Decimal, *, ctx: Any = None) -> dict[str, Any]:
    if amount <= 0:
        raise Rejected(f"payment amount must be positive, got {amount}")
    _ledger("pay_invoice", ctx, {"invoice_id": invoice_id, "iban": iban, "amount": amount})
    # The bank derives the payment id from the invoice, so a repeated call finds the same payment.
    digest = hashlib.sha256(invoice_id.encode()).hexdigest()[:10]
    return {"payment_id": f"pay-{digest}", "amount": amount}


def cancel_payment(invoice_id: str, *, ctx: Any = None) -> bool:
    _ledger("cancel_payment", ctx, {"invoice_id": invoice_id})
    return True


def record_invoice(invoice_id: str, amount: Decimal, reference: str, *, ctx: Any = None) -> bool:
    _ledger(
        "record_invoice", ctx, {"invoice_id": invoice_id, "amount": amount, "reference": reference}
    )
    return True


def notify_finance(invoice_id: str, text: str, *, ctx: Any = None) -> bool:
    _ledger("notify_finance", ctx, {"invoice_id": invoice_id, "text": text})
    return True
