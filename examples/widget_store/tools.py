"""Python implementations of the widget store's tools and effects.

The stock is fixed (100 widgets); each effect call is appended as one JSON line to the
ledger (`MNC_EXAMPLE_LEDGER`, default `.ledger.jsonl` here) so that tests can count what
the outside world saw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mnlang.effect_log import record

HERE = Path(__file__).resolve().parent


def _ledger(effect: str, ctx: Any, args: dict[str, Any]) -> None:
    record(effect, ctx, args, HERE / ".ledger.jsonl")


def stock(product: str, *, ctx: Any = None) -> int:
    return 100


def reserve(order_id: str, product: str, quantity: int, *, ctx: Any = None) -> int:
    _ledger("reserve", ctx, {"order_id": order_id, "product": product, "quantity": quantity})
    return 100 - quantity


def release(order_id: str, product: str, quantity: int, *, ctx: Any = None) -> int:
    _ledger("release", ctx, {"order_id": order_id, "product": product, "quantity": quantity})
    return 100


def mark_paid(order_id: str, *, ctx: Any = None) -> bool:
    _ledger("mark_paid", ctx, {"order_id": order_id})
    return True


def ship(order_id: str, *, ctx: Any = None) -> str:
    _ledger("ship", ctx, {"order_id": order_id})
    return f"track-{order_id}"
