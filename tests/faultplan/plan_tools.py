"""A receiving system that keeps every call (`PLAN_LOG`, one JSON line each) with the
key it was sent, so tests count performances by key."""

from __future__ import annotations

import json
import os
from typing import Any


def _log(action: str, order_id: str, ctx: Any) -> str:
    with open(os.environ["PLAN_LOG"], "a", encoding="utf-8") as f:
        f.write(json.dumps({"action": action, "order": order_id, "key": ctx.wire_key}) + "\n")
    return f"{action}-{order_id}"


def pay(order_id: str, *, ctx: Any) -> str:
    return _log("pay", order_id, ctx)


def refund(order_id: str, *, ctx: Any) -> str:
    return _log("refund", order_id, ctx)
