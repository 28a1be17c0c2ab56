"""Tools of the golden support workflows: a shop's orders, customers, shipments and
warranties (`data.json`), and its side effects (payments, emails, RMAs, credits).

Every call is recorded, and every side effect is carried out through
`mnlang.bench.world`, as the receiving systems would: the payment and ticketing APIs
take idempotency keys, the SMS gateway does not.
"""

from __future__ import annotations

import functools
import json
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


def _order(order_id: str) -> dict[str, Any]:
    order = _data()["orders"].get(order_id)
    if order is None:
        raise ToolError(f"no order {order_id}")
    return dict(order)


def fetch_order(order_id: str, *, ctx: Any = None) -> dict[str, Any]:
    with calling("fetch_order", ctx):
        order = _order(order_id)
        return {k: order[k] for k in ("id", "customer", "total", "paid", "sku", "tracking")}


def lookup_customer(email: str, *, ctx: Any = None) -> dict[str, Any]:
    with calling("lookup_customer", ctx):
        customer = _data()["customers"].get(email.strip().lower())
        if customer is None:
            raise ToolError(f"no customer {email}")
        return {k: customer[k] for k in ("email", "name", "tier", "verified")}


def track_shipment(tracking: str, *, ctx: Any = None) -> dict[str, Any]:
    with calling("track_shipment", ctx):
        shipment = _data()["shipments"].get(tracking)
        if shipment is None:
            raise ToolError(f"no shipment {tracking}")
        return {"tracking": tracking, **shipment}


def search_kb(query: str, *, ctx: Any = None) -> list[dict[str, Any]]:
    with calling("search_kb", ctx):
        words = set(query.lower().split())
        hits = [a for a in _data()["kb"] if words & set(a["tags"])]
        return [{"id": a["id"], "title": a["title"]} for a in hits[:3]]


def warranty_months(sku: str, *, ctx: Any = None) -> int:
    with calling("warranty_months", ctx):
        warranty = _data()["warranties"].get(sku)
        if warranty is None:
            raise ToolError(f"no product {sku}")
        return int(warranty["months"])


def fetch_subscription(subscription_id: str, *, ctx: Any = None) -> dict[str, Any]:
    with calling("fetch_subscription", ctx):
        sub = _data()["subscriptions"].get(subscription_id)
        if sub is None:
            raise ToolError(f"no subscription {subscription_id}")
        return dict(sub)


def refund_payment(order_id: str, amount: Decimal, *, ctx: Any = None) -> dict[str, Any]:
    with calling("refund_payment", ctx):
        if amount <= 0:
            raise Rejected(f"refund amount must be positive, got {amount}")
        args = {"order_id": order_id, "amount": amount}
        return perform(
            "refund_payment", args, ctx, lambda: {"refund_id": f"rf-{order_id}", "amount": amount}
        )


def issue_credit(customer: str, amount: Decimal, reason: str, *, ctx: Any = None) -> str:
    with calling("issue_credit", ctx):
        args = {"customer": customer, "amount": amount, "reason": reason}
        return str(perform("issue_credit", args, ctx, lambda: f"cr-{customer.split('@')[0]}"))


def send_email(to: str, text: str, *, ctx: Any = None) -> bool:
    with calling("send_email", ctx):
        return bool(perform("send_email", {"to": to, "text": text}, ctx, lambda: True))


def send_sms(phone: str, text: str, *, ctx: Any = None) -> bool:
    """The SMS gateway takes no idempotency key: every call sends a message."""
    with calling("send_sms", ctx):
        args = {"phone": phone, "text": text}
        return bool(perform("send_sms", args, ctx, lambda: True, idempotent=False))


def create_rma(order_id: str, reason: str, *, ctx: Any = None) -> str:
    with calling("create_rma", ctx):
        args = {"order_id": order_id, "reason": reason}
        return str(perform("create_rma", args, ctx, lambda: f"rma-{order_id}"))


def print_label(order_id: str, carrier: str, *, ctx: Any = None) -> str:
    """The carrier's label API takes no idempotency key: every call buys a label."""
    with calling("print_label", ctx):
        args = {"order_id": order_id, "carrier": carrier}
        return str(
            perform(
                "print_label",
                args,
                ctx,
                lambda: f"lbl-{carrier}-{order_id}",
                idempotent=False,
                referenced=True,
            )
        )


def find_label(order_id: str, carrier: str, *, ctx: Any = None) -> str | None:
    """The carrier's shipment search by the reference sent with a label (`ctx.wire_key`)."""
    with calling("find_label", ctx):
        found = find("print_label", ctx)
        return None if found is None else str(found)


def cancel_subscription(subscription_id: str, *, ctx: Any = None) -> bool:
    with calling("cancel_subscription", ctx):
        return bool(
            perform("cancel_subscription", {"subscription_id": subscription_id}, ctx, lambda: True)
        )


def apply_discount(subscription_id: str, percent: int, months: int, *, ctx: Any = None) -> str:
    with calling("apply_discount", ctx):
        args = {"subscription_id": subscription_id, "percent": percent, "months": months}
        return str(perform("apply_discount", args, ctx, lambda: f"disc-{subscription_id}"))


def send_reset_link(email: str, *, ctx: Any = None) -> str:
    with calling("send_reset_link", ctx):
        return str(perform("send_reset_link", {"email": email}, ctx, lambda: f"reset-{email}"))


def lock_account(email: str, reason: str, *, ctx: Any = None) -> bool:
    with calling("lock_account", ctx):
        return bool(perform("lock_account", {"email": email, "reason": reason}, ctx, lambda: True))


def post_reply(ticket_id: str, text: str, *, ctx: Any = None) -> str:
    with calling("post_reply", ctx):
        args = {"ticket_id": ticket_id, "text": text}
        return str(perform("post_reply", args, ctx, lambda: f"msg-{ticket_id}"))


def escalate_ticket(ticket_id: str, reason: str, *, ctx: Any = None) -> bool:
    with calling("escalate_ticket", ctx):
        args = {"ticket_id": ticket_id, "reason": reason}
        return bool(perform("escalate_ticket", args, ctx, lambda: True))
