"""The hotel's booking API for `hotel.mn`: POSTs to the idempotent receiver named by
`HOTEL_RECEIVER`, with the effect's wire key as the `Idempotency-Key` (std.http's)."""

from __future__ import annotations

import os
from typing import Any

from mnlang.stdlib_tools.http import http_post


def _send(action: str, hotel: int, ctx: Any) -> str:
    url = f"{os.environ['HOTEL_RECEIVER']}/{action}"
    http_post(url, {"hotel": hotel}, ctx.template_key, [], ctx=ctx)
    return f"{action} {hotel}: done"


def book_hotel(hotel: int, *, ctx: Any) -> str:
    return _send("book", hotel, ctx)


def cancel_hotel(hotel: int, *, ctx: Any) -> str:
    return _send("cancel", hotel, ctx)
