"""`mnc serve`: the API and the console in one uvicorn process."""

from __future__ import annotations

import sys
from typing import TextIO

from starlette.applications import Starlette

from mnlang.stores.base import Store
from mnlang.ui.auth import Authenticator


def _app(store: Store, auth: Authenticator, execute: bool) -> Starlette:
    from mnlang.server.app import create_server_app

    return create_server_app(store, auth, execute=execute)


def serve(
    db: str | None,
    host: str,
    port: int,
    token: str | None,
    execute: bool,
    out: TextIO = sys.stderr,
    log_format: str = "text",
) -> None:
    """Serve until interrupted; `mnlang.ui.server.ConsoleError` when it cannot start."""
    from mnlang.ui.server import serve as serve_console

    serve_console(
        db,
        host,
        port,
        token,
        execute,
        out,
        make_app=_app,
        name="mnc serve",
        log_format=log_format,
    )
