"""Python implementations of the saga example's tools and effects.

Each calls the travel service (`travel.py`) over HTTP at `MNC_TRAVEL_URL`, or, when it
is not set, an in-process travel service (its bookings last as long as the process).
Each effect first appends one line to the ledger file (`MNC_EXAMPLE_LEDGER`, default
`.ledger.jsonl` here), so tests can count what the client sent. A declined card (402)
is raised as the declared error `PaymentDeclined` with `mnlang.errors.named`; a refused
confirmation (409) is `Rejected`; a request that takes too long is Python's
`TimeoutError` (kind `timeout`).
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

from mnlang.effect_log import record
from mnlang.errors import Rejected, ToolError, named

sys.path.insert(0, str(Path(__file__).resolve().parent))
from travel import TravelService

HERE = Path(__file__).resolve().parent
_LOCAL = TravelService()


def _ledger(effect: str, ctx: Any, args: dict[str, Any]) -> None:
    record(effect, ctx, args, HERE / ".ledger.jsonl")


def _call(
    method: str, path: str, ctx: Any, body: dict[str, Any] | None = None, timeout: float = 10
) -> Any:
    key = ctx.key if ctx is not None and method != "GET" else None
    base = os.environ.get("MNC_TRAVEL_URL")
    if base is None:
        status, answer = _LOCAL.request(method, path, body or {}, key)
        return _answer(status, answer)
    url = base + path
    data = json.dumps(body or {}).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if key is not None:
        request.add_header("Idempotency-Key", key)  # the service performs a key once
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as e:
        return _answer(e.code, json.loads(e.read() or b"{}"))


def _answer(status: int, answer: Any) -> Any:
    if status == 402:
        raise named("PaymentDeclined", answer.get("error", "card declined"))
    if status == 404:
        return None
    if status == 409:
        raise Rejected(answer.get("error", "refused"))
    if status >= 400:
        raise ToolError(f"the travel service answered {status}: {answer}")
    return answer


def reserve_flight(trip: str, *, ctx: Any = None) -> str:
    _ledger("reserve_flight", ctx, {"trip": trip})
    return str(_call("POST", f"/flight/{trip}", ctx)["id"])


def cancel_flight(trip: str, *, ctx: Any = None) -> bool:
    _ledger("cancel_flight", ctx, {"trip": trip})
    return bool(_call("DELETE", f"/flight/{trip}", ctx)["cancelled"])


def reserve_car(trip: str, *, ctx: Any = None) -> str:
    _ledger("reserve_car", ctx, {"trip": trip})
    return str(_call("POST", f"/car/{trip}", ctx)["id"])


def cancel_car(trip: str, *, ctx: Any = None) -> bool:
    _ledger("cancel_car", ctx, {"trip": trip})
    return bool(_call("DELETE", f"/car/{trip}", ctx)["cancelled"])


def charge(trip: str, amount: Decimal, *, ctx: Any = None) -> str:
    _ledger("charge", ctx, {"trip": trip, "amount": amount})
    body = {"amount": str(amount)}
    # The client gives up after a second, as the effect's `timeout: 1s` does.
    return str(_call("POST", f"/charge/{trip}", ctx, body, timeout=1)["id"])


def find_charge(trip: str, *, ctx: Any = None) -> str | None:
    """The bank's answer to "was this trip charged?": the charge's id, or None."""
    found = _call("GET", f"/charge/{trip}", ctx)
    return None if found is None else str(found["id"])


def refund(trip: str, *, ctx: Any = None) -> bool:
    _ledger("refund", ctx, {"trip": trip})
    return bool(_call("DELETE", f"/charge/{trip}", ctx)["cancelled"])


def confirm(trip: str, *, ctx: Any = None) -> bool:
    _ledger("confirm", ctx, {"trip": trip})
    return bool(_call("POST", f"/confirm/{trip}", ctx)["confirmed"])


def notify(trip: str, text: str, *, ctx: Any = None) -> bool:
    _ledger("notify", ctx, {"trip": trip, "text": text})
    return bool(_call("POST", f"/notify/{trip}", ctx, {"text": text})["sent"])
