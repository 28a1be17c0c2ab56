"""`mnc ui`: serve the console with uvicorn, and manage its user tokens.

The console binds 127.0.0.1 unless told otherwise; any other address (a LAN address,
`0.0.0.0`) is refused unless an admin token or user tokens exist, so the console is
never reachable from the network without a token.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
import sys
from typing import TYPE_CHECKING, Any, TextIO

from mnlang.stores.base import StoreError
from mnlang.ui.tokens import TokenError, TokenFile, tokens_path

if TYPE_CHECKING:
    from collections.abc import Callable

    import uvicorn
    from starlette.applications import Starlette

    from mnlang.stores.base import Store
    from mnlang.ui.auth import Authenticator
    from mnlang.ui.live import LiveHub

TOKEN_ENV = "MNC_UI_TOKEN"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8737


class ConsoleError(Exception):
    def __init__(self, message: str, *, help: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.help = help


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def console_server(config: uvicorn.Config, live: LiveHub[Any]) -> uvicorn.Server:
    """A uvicorn server that ends the console's event streams (`live`) as soon as it is
    told to stop (Ctrl-C, SIGTERM, `should_exit`): uvicorn lets open responses finish
    before it exits, and an event stream never finishes by itself."""
    import uvicorn

    class ConsoleServer(uvicorn.Server):
        async def on_tick(self, counter: int) -> bool:
            should_exit = await super().on_tick(counter)
            if should_exit:
                live.close()
            return should_exit

    return ConsoleServer(config)


def serve(
    db: str | None,
    host: str,
    port: int,
    token: str | None,
    execute: bool,
    out: TextIO = sys.stderr,
    make_app: Callable[[Store, Authenticator, bool], Starlette] | None = None,
    name: str = "mnc ui",
    open_console: bool = False,
    log_format: str = "text",
) -> None:
    """Run the console (or the application `make_app` builds around it) until
    interrupted; `ConsoleError` when it cannot start. Log records are written in
    `log_format` (`text` or `json`, `mnlang.telemetry.logs`), and so are the lines that
    say where it serves with `json`."""
    import uvicorn

    from mnlang.redact import redact
    from mnlang.stores import open_store, store_location
    from mnlang.telemetry.logs import json_line, log_config
    from mnlang.ui.app import create_app
    from mnlang.ui.auth import Authenticator

    admin_token = token or os.environ.get(TOKEN_ENV) or None
    location = store_location(db)
    tokens = TokenFile(tokens_path(location))
    loopback = is_loopback(host)
    try:
        has_users = tokens.has_users()
    except TokenError as e:
        raise ConsoleError(e.message, help=e.help) from None
    if not loopback and admin_token is None and not has_users:
        raise ConsoleError(
            f"the console would be open to the network on `{host}` without a token",
            help=f"pass `--token`, set {TOKEN_ENV}, or add users with `mnc ui token add NAME`; "
            f"or bind {DEFAULT_HOST}",
        )
    if admin_token is not None and len(admin_token) < 16:
        raise ConsoleError(
            "the admin token is shorter than 16 characters",
            help="use a long random token, e.g. `python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'`",
        )
    try:
        store = open_store(db)
    except StoreError as e:
        raise ConsoleError(e.message, help=e.help) from None
    # With no token at all, a secret of this start only (in the printed link) keeps the
    # machine's other accounts out, unless --open says the machine has no others.
    start_token = None
    if admin_token is None and not has_users and not open_console:
        start_token = secrets.token_urlsafe(32)
    auth = Authenticator(
        admin_token=admin_token, tokens=tokens, loopback=loopback, start_token=start_token
    )
    app = (
        make_app(store, auth, execute)
        if make_app is not None
        else create_app(store, auth, execute=execute)
    )
    try:
        # Bound here, so that `--port 0` takes a free port and the line below names it.
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = tcp_listener(host.strip("[]"), port, family)
    except OSError as e:
        store.close()
        raise ConsoleError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    port = listener.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host

    def say(text: str) -> None:
        """A line of the banner: as it is, or as a JSON log object."""
        if log_format == "json":
            text = json_line(text.strip(), False, worker_id=None) + "\n"
        out.write(redact(text))

    say(f"{name}: journal `{store.location}`, serving http://{shown}:{port}/\n")
    if auth.open_local:
        say(
            "  WARNING: --open: every local account can use this console as "
            f"`{auth.local_user.name}` (an admin); use it on a single-user machine only\n"
        )
    elif start_token is not None:
        say("  open it with this link (its secret lasts until the console stops):\n")
        say(f"  http://{shown}:{port}/login?token={start_token}\n")
    else:
        say(f"  tokens required: log in at http://{shown}:{port}/login\n")
    if not execute:
        say("  runs are not executed here (--no-execute): run `mnc worker` beside it\n")
    out.flush()
    try:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            log_config=log_config(log_format),
        )
        console_server(config, app.state.console.live).run(sockets=[listener])
    finally:
        listener.close()
        store.close()


def tcp_listener(host: str, port: int, family: socket.AddressFamily) -> socket.socket:
    """A listening socket, as `socket.create_server` makes one but with its protocol
    named (`IPPROTO_TCP`, not 0): asyncio sets TCP_NODELAY only on accepted sockets whose
    protocol says TCP. Without it, a response that uvicorn writes as headers then body
    waits on a kept-alive connection for the client's delayed ACK (40 ms on Linux)."""
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        if os.name != "nt":
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        listener.bind((host, port))
        listener.listen()
    except BaseException:
        listener.close()
        raise
    return listener


def token_command(
    action: str,
    name: str | None,
    db: str | None,
    out: TextIO,
    *,
    role: str = "operator",
    workflows: tuple[str, ...] | None = None,
) -> None:
    """`mnc ui token add|list|remove [NAME]`; `ConsoleError` on a mistake."""
    from mnlang.stores import store_location

    tokens = TokenFile(tokens_path(store_location(db)))
    try:
        if action == "list":
            entries = tokens.entries()
            if not entries:
                out.write(f"no users in `{tokens.path}`\n")
            for entry in entries:
                scope = ", ".join(entry.workflows) if entry.workflows is not None else "all"
                out.write(f"{entry.name}\t{entry.role}\t{scope}\n")
            return
        if name is None:
            raise ConsoleError(f"`mnc ui token {action}` needs a NAME")
        if action == "add":
            token = tokens.add(name, role, workflows)
            out.write(f"token for `{name}` (shown once; kept hashed in `{tokens.path}`):\n")
            out.write(token + "\n")
        elif not tokens.remove(name):
            raise ConsoleError(
                f"no user `{name}` in `{tokens.path}`", help="`mnc ui token list` shows them"
            )
        else:
            out.write(f"removed the token of `{name}`\n")
    except TokenError as e:
        raise ConsoleError(e.message, help=e.help) from None
