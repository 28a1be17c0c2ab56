"""Python implementations of the saga example's tools and effects.

Each calls the travel service (`travel.py`) at `MNC_TRAVEL_URL` (default
http://127.0.0.1:8642) over HTTP. A declined card (402) is raised as the declared
error `PaymentDeclined` with `mnlang.errors.named`; a refused confirmation (409) is
`Rejected`; a request that takes too long is Python's `TimeoutError` (kind `timeout`).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from decimal import Decimal
from typing import Any

from mnlang.errors import Rejected, named


def _call(
    method: str, path: str, ctx: Any, body: dict[str, Any] | None = None, timeout: float = 10
) -> Any:
    url = os.environ.get("MNC_TRAVEL_URL", "http://127.0.0.1:8642") + path
    data = json.dumps(body or {}).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if ctx is not None and ctx.key is not None and method != "GET":
        request.add_header("Idempotency-Key", ctx.key)  # the service performs a key once
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as e:
        answer = json.loads(e.read() or b"{}")
        if e.code == 402:
            raise named("PaymentDeclined", answer.get("error", "card declined")) from None
        if e.code == 404:
            return None
        if e.code == 409:
            raise Rejected(answer.get("error", "refused")) from None
        raise


def reserve_flight(trip: str, *, ctx: Any = None) -> str:
    return str(_call("POST", f"/flight/{trip}", ctx)["id"])


def cancel_flight(trip: str, *, ctx: Any = None) -> bool:
    return bool(_call("DELETE", f"/flight/{trip}", ctx)["cancelled"])


def reserve_car(trip: str, *, ctx: Any = None) -> str:
    return str(_call("POST", f"/car/{trip}", ctx)["id"])


def cancel_car(trip: str, *, ctx: Any = None) -> bool:
    return bool(_call("DELETE", f"/car/{trip}", ctx)["cancelled"])


def charge(trip: str, amount: Decimal, *, ctx: Any = None) -> str:
    body = {"amount": str(amount)}
    # The client gives up after a second, as the effect's `timeout: 1s` does.
    return str(_call("POST", f"/charge/{trip}", ctx, body, timeout=1)["id"])


def find_charge(trip: str, *, ctx: Any = None) -> str | None:
    """The bank's answer to "was this trip charged?": the charge's id, or None."""
    found = _call("GET", f"/charge/{trip}", ctx)
    return None if found is None else str(found["id"])


def refund(trip: str, *, ctx: Any = None) -> bool:
    return bool(_call("DELETE", f"/charge/{trip}", ctx)["cancelled"])


def confirm(trip: str, *, ctx: Any = None) -> bool:
    return bool(_call("POST", f"/confirm/{trip}", ctx)["confirmed"])


def notify(trip: str, text: str, *, ctx: Any = None) -> bool:
    return bool(_call("POST", f"/notify/{trip}", ctx, {"text": text})["sent"])
