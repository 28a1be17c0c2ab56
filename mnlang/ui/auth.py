"""Who is asking: tokens, the login cookie, CSRF and the checks every request passes.

Bound to a loopback address with no tokens configured, the console is open to the
local user (as an admin named after the operating-system account). As soon as there is
an admin token (`--token`, `MNC_UI_TOKEN`) or a user token (`mnc ui token add`), and
always on any other address, every request needs a token: an `Authorization: Bearer`
header (scripts) or the HttpOnly cookie that `/login` sets (browsers). Requests without
one are refused (a page redirects to the login form).

State changes are POSTs carrying a CSRF token (a form field or the `X-CSRF-Token`
header htmx sends) derived from the session's secret, so another site cannot make a
logged-in browser act. A bearer-token request needs none: no browser adds that header
on its own. In the open local mode the Host header must name the loopback address, so
a DNS-rebinding page cannot reach the console either.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urlsplit

from mnlang.ui.tokens import ADMIN, DEFAULT_ROLE, TokenFile

COOKIE = "mnc_ui_token"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Paths anyone may fetch: the login form and the packaged static files.
# `/hooks/`: inbound webhooks (`mnlang.server.webhooks`), verified by their HMAC instead.
_PUBLIC_PREFIXES = ("/login", "/static/", "/api/v1/openapi.json", "/hooks/")
API_PREFIX = "/api/v1/"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class User:
    """The person behind a request. `secret` is what their CSRF tokens are derived from."""

    name: str
    admin: bool
    secret: str
    via_header: bool = False
    """Authenticated by an `Authorization` header, which a browser never sends by itself."""
    role: str = DEFAULT_ROLE
    workflows: tuple[str, ...] | None = None
    """The workflows this user may act on (`None`: all)."""

    @property
    def role_name(self) -> str:
        return "admin" if self.admin else self.role

    def may_act_on(self, workflow: str) -> bool:
        """Start, signal, decide or cancel runs of `workflow`: operators in their scope."""
        if self.admin:
            return True
        return self.role == "operator" and (self.workflows is None or workflow in self.workflows)

    def may_decide(self, assignee: str | None) -> bool:
        """A checkpoint with an `assignee` is decided by that user (or an admin) only."""
        return self.admin or assignee is None or assignee == self.name


class Authenticator:
    def __init__(
        self,
        *,
        admin_token: str | None,
        tokens: TokenFile | None,
        loopback: bool,
        start_token: str | None = None,
    ) -> None:
        self.admin_token = admin_token or None
        self.tokens = tokens
        self.loopback = loopback
        self.csrf_key = secrets.token_bytes(32)
        self.local_user = User(getpass.getuser() or "local", admin=True, secret="local")
        self.start_token = start_token
        """A secret made when the console starts, shown only in the link it prints (as
        Jupyter does): its holder is the console's owner, an admin by their account name."""

    @property
    def open_local(self) -> bool:
        """No token is needed: loopback only, and none configured."""
        has_users = self.tokens is not None and self.tokens.has_users()
        return (
            self.loopback
            and self.admin_token is None
            and self.start_token is None
            and not has_users
        )

    def user_of(self, token: str) -> User | None:
        if self.start_token is not None and _same_secret(token, self.start_token):
            return User(self.local_user.name, admin=True, secret=token)
        if self.admin_token is not None and hmac.compare_digest(
            hashlib.sha256(token.encode()).digest(),
            hashlib.sha256(self.admin_token.encode()).digest(),
        ):
            return User(ADMIN, admin=True, secret=token)
        entry = self.tokens.entry_of(token) if self.tokens is not None else None
        if entry is None:
            return None
        admin = entry.role == "admin"
        return User(entry.name, admin, token, role=entry.role, workflows=entry.workflows)

    def csrf_token(self, user: User) -> str:
        return hmac.new(self.csrf_key, user.secret.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, user: User, given: str | None) -> bool:
        if user.via_header:
            return True
        return given is not None and hmac.compare_digest(self.csrf_token(user), given)


def _same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(
        hashlib.sha256(given.encode()).digest(), hashlib.sha256(expected.encode()).digest()
    )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _cookie(scope: Scope, name: str) -> str | None:
    raw = _header(scope, b"cookie") or ""
    for part in raw.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None


# RFC 9110's Host: a registered name or IPv4 address, or an IPv6 address in brackets,
# then an optional port; anything else (`127.0.0.1:8737@evil.example`) names no host.
_HOST = re.compile(r"(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9._~-]+))(?::[0-9]{1,5})?")


def _host_name(host_header: str) -> str:
    """The host of a Host header, without its port (`[::1]:8737` gives `::1`); empty for
    a header that is not a host and port."""
    found = _HOST.fullmatch(host_header)
    if found is None:
        return ""
    return found.group("ipv6") or found.group("name")


class AuthMiddleware:
    """Resolves the user of every request into `request.state.user`, or refuses it."""

    def __init__(self, app: ASGIApp, auth: Authenticator) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        host = _header(scope, b"host") or ""
        if self.auth.open_local and _host_name(host).lower() not in LOOPBACK_HOSTS:
            await _refuse(send, 403, "this console answers on its loopback address only")
            return
        if scope["method"] not in ("GET", "HEAD") and not _same_origin(scope, host):
            await _refuse(send, 403, "a request from another site was refused")
            return
        user = self._user(scope)
        scope.setdefault("state", {})["user"] = user
        if user is None and not path.startswith(_PUBLIC_PREFIXES):
            await self._unauthenticated(scope, send, path)
            return
        await self.app(scope, receive, send)

    def _user(self, scope: Scope) -> User | None:
        if self.auth.open_local:
            return self.auth.local_user
        header = _header(scope, b"authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            found = self.auth.user_of(token.strip())
            if found is None:
                return None
            return replace(found, via_header=True)
        cookie = _cookie(scope, COOKIE)
        return self.auth.user_of(cookie) if cookie else None

    async def _unauthenticated(self, scope: Scope, send: Send, path: str) -> None:
        wants_page = (
            scope["method"] == "GET"
            and not path.startswith(("/api/", "/fragments/", "/events/"))
            and path != "/metrics"
            and _header(scope, b"hx-request") is None
        )
        if wants_page:
            query = scope.get("query_string", b"").decode("latin-1")
            target = path + ("?" + query if query else "")
            location = "/login?next=" + quote(target, safe="")
            await send(
                {
                    "type": "http.response.start",
                    "status": 303,
                    "headers": [(b"location", location.encode("latin-1"))],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        if path.startswith(API_PREFIX):
            await _refuse_api(send)
            return
        # A page's live part whose login ended sends the browser to the login form.
        extra = [(b"hx-redirect", b"/login")] if _header(scope, b"hx-request") else []
        await _refuse(
            send, 401, "a token is needed: log in, or send `Authorization: Bearer`", extra
        )


def _same_origin(scope: Scope, host: str) -> bool:
    """False when the browser says the request comes from a page of another origin."""
    origin = _header(scope, b"origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc.lower() == host.lower()


async def _refuse(
    send: Send, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-type", b"application/json"), *(extra or [])]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps({"error": message}).encode()})


async def _refuse_api(send: Send) -> None:
    """The API's error body (docs/api.md, "Errors") for a request without a valid token."""
    body = {
        "error": {
            "type": "authentication",
            "code": "token_required",
            "message": "a valid token is needed: send `Authorization: Bearer TOKEN`",
            "help": "`mnc ui token add NAME --role ROLE` makes one",
            "details": None,
        }
    }
    headers = [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})
