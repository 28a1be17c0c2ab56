"""Tools of the golden finance workflows: vendors, purchase orders, expenses, FX rates,
accounts and credit reports, sanctions and company registries, and the general ledger
(`data.json`); side effects (payments, transfers, ledger postings) go through
`mnlang.bench.world`, the banks and the ERP taking idempotency keys.
"""

from __future__ import annotations

import functools
import json
import zlib
from decimal import Decimal
from pathlib import Path
from typing import Any

from mnlang.bench.world import calling, find, perform
from mnlang.errors import Rejected, ToolError

HERE = Path(__file__).resolve().parent


@functools.cache
def _data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((HERE / "data.json").read_text("utf-8"))
    return data


def _get(table: str, key: str, what: str) -> dict[str, Any]:
    row = _data()[table].get(key)
    if row is None:
        raise ToolError(f"no {what} {key}")
    return dict(row)


def lookup_vendor(vendor_id: str, *, ctx: Any = None) -> dict[str, Any]:
    with calling("lookup_vendor", ctx):
        return _get("vendors", vendor_id, "vendor")


def fetch_po(po_number: str, *, ctx: Any = None) -> dict[str, Any]:
    with calling("fetch_po", ctx):
        return _get("purchase_orders", po_number, "purchase order")


def fetch_expense(expense_id: str, *, ctx: Any = None) -> dict[str, Any]:
    with calling("fetch_expense", ctx):
        return _get("expenses", expense_id, "expense report")


def get_employee(employee_id: str, *, ctx: Any = None) -> dict[str, Any]:
    with calling("get_employee", ctx):
        return _get("employees", employee_id, "employee")


def get_policy(category: str, *, ctx: Any = None) -> dict[str, Any]:
    with calling("get_policy", ctx):
        policy = _get("policies", category, "expense policy for")
        return {"category": category, "limit": policy["limit"]}


def get_quote(pair: str, amount: Decimal, *, ctx: Any = None) -> dict[str, Any]:
    """The desk's quote: the rate, and the amount converted and rounded to the cent."""
    with calling("get_quote", ctx):
        rate = _data()["rates"].get(pair)
        if rate is None:
            raise ToolError(f"no rate for {pair}")
        converted = (amount * Decimal(rate)).quantize(Decimal("0.01"))
        return {"pair": pair, "rate": float(rate), "amount": converted}


def fetch_account(account_id: str, *, ctx: Any = None) -> dict[str, Any]:
    with calling("fetch_account", ctx):
        return _get("accounts", account_id, "account")


def credit_report(account_id: str, *, ctx: Any = None) -> dict[str, Any]:
    with calling("credit_report", ctx):
        return _get("credit_reports", account_id, "credit report for")


def sanctions_screen(name: str, *, ctx: Any = None) -> bool:
    """True when the name is on a sanctions list."""
    with calling("sanctions_screen", ctx):
        return name in _data()["sanctions"]


def search_registry(name: str, *, ctx: Any = None) -> dict[str, Any]:
    with calling("search_registry", ctx):
        entry = _data()["registry"].get(name)
        if entry is None:
            raise ToolError(f"no company registered as {name}")
        return {"name": name, **entry}


def ledger_balance(account: str, *, ctx: Any = None) -> dict[str, Any]:
    with calling("ledger_balance", ctx):
        row = _get("ledger", account, "ledger account")
        return {"account": account, "book": row["book"], "bank": row["bank"]}


def pay_vendor(vendor_id: str, amount: Decimal, reference: str, *, ctx: Any = None) -> str:
    with calling("pay_vendor", ctx):
        if amount <= 0:
            raise Rejected(f"payment amount must be positive, got {amount}")
        args = {"vendor_id": vendor_id, "amount": amount, "reference": reference}
        return str(perform("pay_vendor", args, ctx, lambda: f"pay-{reference}"))


def post_ledger(account: str, amount: Decimal, memo: str, *, ctx: Any = None) -> str:
    with calling("post_ledger", ctx):
        args = {"account": account, "amount": amount, "memo": memo}
        return str(perform("post_ledger", args, ctx, lambda: f"je-{account}-{amount}"))


def reimburse(employee_id: str, amount: Decimal, expense_id: str, *, ctx: Any = None) -> str:
    with calling("reimburse", ctx):
        args = {"employee_id": employee_id, "amount": amount, "expense_id": expense_id}
        return str(perform("reimburse", args, ctx, lambda: f"rb-{expense_id}"))


def transfer_funds(
    from_account: str, to_iban: str, amount: Decimal, currency: str, *, ctx: Any = None
) -> str:
    with calling("transfer_funds", ctx):
        args = {
            "from_account": from_account,
            "to_iban": to_iban,
            "amount": amount,
            "currency": currency,
        }
        return str(perform("transfer_funds", args, ctx, lambda: f"tx-{to_iban[-6:]}-{amount}"))


def set_credit_limit(account_id: str, limit: Decimal, *, ctx: Any = None) -> bool:
    with calling("set_credit_limit", ctx):
        args = {"account_id": account_id, "limit": limit}
        return bool(perform("set_credit_limit", args, ctx, lambda: True))


def create_vendor(name: str, iban: str, country: str, *, ctx: Any = None) -> str:
    with calling("create_vendor", ctx):
        args = {"name": name, "iban": iban, "country": country}
        return str(
            perform(
                "create_vendor", args, ctx, lambda: f"V-{zlib.crc32(name.encode()) % 900 + 400}"
            )
        )


def send_email(to: str, text: str, *, ctx: Any = None) -> bool:
    with calling("send_email", ctx):
        return bool(perform("send_email", {"to": to, "text": text}, ctx, lambda: True))


def send_fax(number: str, text: str, *, ctx: Any = None) -> bool:
    """The fax service takes no idempotency key: every call sends a fax. It keeps the tag
    sent with a fax (`ctx.wire_key`) and lists faxes by tag, as Phaxio's API does."""
    with calling("send_fax", ctx):
        args = {"number": number, "text": text}
        return bool(perform("send_fax", args, ctx, lambda: True, idempotent=False, referenced=True))


def find_fax(number: str, *, ctx: Any = None) -> bool | None:
    """The faxes sent with this call's tag, if any."""
    with calling("find_fax", ctx):
        found = find("send_fax", ctx)
        return None if found is None else bool(found)
