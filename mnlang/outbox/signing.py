"""HMAC-SHA256 webhook signatures over the raw bytes of a body, in the two header styles
senders use: Stripe's (`t=TIMESTAMP,v1=HEX`, signing `TIMESTAMP.BODY`, with a tolerance on
the timestamp against replays) and GitHub's (`sha256=HEX` of the body). mnlang signs the
webhooks it sends in Stripe's style (`Mnc-Signature`), so a receiver can verify them with
`verify_stripe` or any Stripe-style verifier.

The signature covers the bytes as sent: a receiver must verify before parsing, since a
JSON value re-serialized (other spacing, key order, `\\u` escapes) is other bytes.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

TOLERANCE: Final = 300.0
"""Seconds a Stripe-style timestamp may be from the receiver's clock."""


class BadSignature(Exception):
    """The signature is missing, malformed, stale or does not match."""


def _mac(secret: bytes, message: bytes) -> str:
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def sign_stripe(secret: bytes, body: bytes, timestamp: int) -> str:
    """The `t=...,v1=...` header value for `body` sent at `timestamp`."""
    return f"t={timestamp},v1={_mac(secret, str(timestamp).encode() + b'.' + body)}"


def verify_stripe(
    secret: bytes, body: bytes, header: str | None, now: float, tolerance: float = TOLERANCE
) -> None:
    if not header:
        raise BadSignature("no signature header")
    timestamp: str | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            timestamp = value
        elif name == "v1":
            signatures.append(value)
    if timestamp is None or not timestamp.isdigit() or not signatures:
        raise BadSignature("the signature header is not `t=...,v1=...`")
    if abs(now - int(timestamp)) > tolerance:
        raise BadSignature(f"the signature's timestamp is more than {tolerance:g} s off")
    expected = _mac(secret, timestamp.encode() + b"." + body)
    if not any(hmac.compare_digest(expected, s) for s in signatures):
        raise BadSignature("the signature does not match the body")


def sign_github(secret: bytes, body: bytes) -> str:
    """The `X-Hub-Signature-256` header value for `body`."""
    return f"sha256={_mac(secret, body)}"


def verify_github(secret: bytes, body: bytes, header: str | None) -> None:
    if not header or not header.startswith("sha256="):
        raise BadSignature("no `sha256=...` signature header")
    if not hmac.compare_digest(sign_github(secret, body), header):
        raise BadSignature("the signature does not match the body")
