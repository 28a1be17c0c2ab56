"""Callback tokens: what a wait hands to a tool or an outside system so that it can
answer later without knowing the run's id, the event's name or the key.

A token names the run, the event and the correlation key, and is signed with the
journal's secret (`Store.callback_secret`, created with the journal and kept out of every
run's rows): whoever holds a token can signal that one wait, and nobody can make a token
for another wait from the tokens they were given. A token is derived, not drawn at
random, so the same wait gives the same token in every process: a run that crashed after
a tool received its token and before the commit hands out the same token when the call
is made again, and the first one still works.

`mnt1.<base64url JSON [run, event, key]>.<base64url HMAC-SHA256>`: the prefix is the
format's version. The names inside are readable, by design: a token is a capability,
not a secret about what it names.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass

PREFIX = "mnt1"


class BadToken(ValueError):
    """Not a token of this journal: malformed, or signed with another secret."""


@dataclass(frozen=True, slots=True)
class TokenTarget:
    run_id: str
    event: str
    key: str | None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, body: str) -> str:
    return _b64(hmac.new(secret, f"{PREFIX}.{body}".encode("ascii"), hashlib.sha256).digest())


def make_token(secret: bytes, run_id: str, event: str, key: str | None) -> str:
    body = _b64(json.dumps([run_id, event, key], separators=(",", ":")).encode("utf-8"))
    return f"{PREFIX}.{body}.{_mac(secret, body)}"


def read_token(secret: bytes, token: str) -> TokenTarget:
    """The wait a token names; `BadToken` unless this journal's secret signed it."""
    parts = token.strip().split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise BadToken("not a callback token (it should start with `mnt1.`)")
    _, body, mac = parts
    if not hmac.compare_digest(mac, _mac(secret, body)):
        raise BadToken("the token was not issued by this journal, or it was altered")
    try:
        run_id, event, key = json.loads(_unb64(body))
    except (binascii.Error, ValueError, TypeError) as e:
        raise BadToken(f"the token's body is unreadable: {e}") from None
    return TokenTarget(str(run_id), str(event), None if key is None else str(key))
