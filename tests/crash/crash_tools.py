"""Tools of the crash-test workflow: deterministic, and every effect call is appended to the
ledger file named by `MNC_EXAMPLE_LEDGER`, so a test can count what the outside world saw."""

from __future__ import annotations

import json
import os
import time
from decimal import Decimal
from typing import Any

from mnlang.errors import Transient, named


def _ledger(effect: str, ctx: Any, args: dict[str, Any]) -> None:
    path = os.environ["MNC_EXAMPLE_LEDGER"]
    row = {"effect": effect, "key": ctx.key, "attempt": ctx.attempt, "args": args}
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, default=str, sort_keys=True) + "\n")


def price(id: str) -> Decimal:
    return Decimal(7 * len(id)) + Decimal("0.25")


def check(id: str, *, ctx: Any) -> bool:
    if id.endswith("2") and ctx.attempt == 1:
        raise Transient("the checker is busy")
    return not id.endswith("3")


def reserve(id: str, qty: int, *, ctx: Any) -> str:
    _ledger("reserve", ctx, {"id": id, "qty": qty})
    return f"r-{id}-{qty}"


def note(order: str, id: str, *, ctx: Any) -> bool:
    _ledger("note", ctx, {"order": order, "id": id})
    return True


def tick(order: str, n: int, *, ctx: Any) -> int:
    _ledger("tick", ctx, {"order": order, "n": n})
    return n + 1


def charge(order: str, amount: Decimal, *, ctx: Any) -> str:
    _ledger("charge", ctx, {"order": order, "amount": amount})
    return f"c-{order}-{amount}"


def announce(order: str, text: str, *, ctx: Any) -> bool:
    _ledger("announce", ctx, {"order": order, "text": text})
    return True


# --- tests/crash/chain.mn ------------------------------------------------------------------


def double(n: int, *, ctx: Any) -> int:
    if ctx.attempt == 1 and n % 3 == 0:
        raise Transient("the doubler is busy")
    return 2 * n


def put(order: str, n: int, *, ctx: Any) -> int:
    _ledger("put", ctx, {"order": order, "n": n})
    return 3 * n + 1


def mark(order: str, tag: str, *, ctx: Any) -> str:
    _ledger("mark", ctx, {"order": order, "tag": tag})
    return f"m-{tag}"


def shout(order: str, text: str, *, ctx: Any) -> bool:
    _ledger("shout", ctx, {"order": order, "text": text})
    return True


# --- tests/crash/short_wait.mn -------------------------------------------------------------


def flaky(order: str, *, ctx: Any) -> bool:
    """Fails its first try, so that its retry waits on a durable timer."""
    if ctx.attempt == 1:
        raise Transient("not yet")
    return True


# --- tests/crash/quorum.mn -----------------------------------------------------------------


def sense(sensor: str, ms: int) -> dict[str, Any]:
    time.sleep(ms / 1000)
    return {"sensor": sensor, "celsius": 20 + ord(sensor[0]) % 5}


def store_reading(order: str, sensor: str, celsius: int, *, ctx: Any) -> bool:
    _ledger("store_reading", ctx, {"order": order, "sensor": sensor, "celsius": celsius})
    return True


def page_operator(order: str, sensor: str, *, ctx: Any) -> bool:
    """Slow: still running when the quorum is reached, so its branch loses mid-call."""
    _ledger("page_operator", ctx, {"order": order, "sensor": sensor})
    time.sleep(0.4)
    return True


# --- tests/crash/retries.mn ----------------------------------------------------------------


def hesitant(order: str, *, ctx: Any) -> str:
    """transient, Declined, transient, then an answer: by the try, so that a resumed run's
    tries go on where its committed counts stood."""
    if ctx.attempt in (1, 3):
        raise Transient(f"{order}: busy")
    if ctx.attempt == 2:
        raise named("Declined", f"{order}: declined")
    return f"{order} answered on try {ctx.attempt}"


def settle(order: str, *, ctx: Any) -> str:
    """transient, Declined, transient, Declined, then an answer (see `hesitant`)."""
    if ctx.attempt in (1, 3):
        raise Transient(f"{order}: busy")
    if ctx.attempt in (2, 4):
        raise named("Declined", f"{order}: declined")
    _ledger("settle", ctx, {"order": order})
    return f"settled {order} on try {ctx.attempt}"
