"""Journal stores: where runs, their journal and their pending work are kept.

`open_store()` picks the store from, in order, its argument (the CLI's `--db`), the
`MNC_DB` environment variable, and the default `./.mnc/journal.db`. A plain path or a
`sqlite:///relative/path` / `sqlite:////absolute/path` URL opens the embedded SQLite store;
a `postgresql://` URL opens the shared PostgreSQL store (`mnlang.stores.postgres`, which
needs the `postgres` extra and is imported only then). The interpreter only ever sees
the `Store` interface.
"""

from __future__ import annotations

import os
from pathlib import Path

from mnlang.stores.base import Durability, Store, StoreError
from mnlang.stores.sqlite import SQLiteStore

DEFAULT_PATH = Path(".mnc") / "journal.db"
DURABILITIES: tuple[Durability, ...] = ("full", "fast")


def store_location(url_or_path: str | Path | None = None) -> str:
    """Where `open_store` would open the journal, before any URL scheme is resolved."""
    if url_or_path is not None and str(url_or_path):
        return str(url_or_path)
    return os.environ.get("MNC_DB") or str(DEFAULT_PATH)


def open_store(
    url_or_path: str | Path | None = None,
    durability: Durability = "full",
    *,
    busy_timeout: float = 5.0,
) -> Store:
    """Open (creating and migrating if needed) the journal store.

    `durability="fast"` trades the last few commits before a power loss for throughput
    (see `mnlang.stores.sqlite`); a crash of the process alone loses nothing either way.
    `busy_timeout` is how long a write waits for another process's lock before
    `StoreLocked` is raised.
    """
    if durability not in DURABILITIES:
        raise StoreError(
            f"unknown durability `{durability}`", help="use `full` (the default) or `fast`"
        )
    location = store_location(url_or_path)
    scheme, sep, rest = location.partition("://")
    if sep and scheme == "sqlite":
        location = rest[1:] if rest.startswith("/") else rest
    elif sep and scheme in ("postgres", "postgresql"):
        return _open_postgres(location, durability, busy_timeout)
    elif sep:
        raise StoreError(
            f"unknown journal URL scheme `{scheme}://`",
            help="pass a file path, a `sqlite:///path` URL or a `postgresql://` URL",
        )
    return SQLiteStore(location, durability=durability, busy_timeout=busy_timeout)


def _open_postgres(url: str, durability: Durability, busy_timeout: float) -> Store:
    try:
        from mnlang.stores.postgres import PostgresStore
    except ImportError as e:
        raise StoreError(
            f"a PostgreSQL journal needs psycopg, which is not installed ({e})",
            help="install it with `pip install 'mnlang[postgres]'`",
        ) from e
    return PostgresStore(url, durability=durability, busy_timeout=busy_timeout)
