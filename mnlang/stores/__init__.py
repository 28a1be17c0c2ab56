"""Journal stores: where runs, their journal and their pending work are kept.

`open_store()` picks the store from, in order, its argument (the CLI's `--db`), the
`MNC_DB` environment variable, the `[journal] db` of the project file (`mnlang.toml` in
the current folder or above, `mnlang.project`) and the default `./.mnc/journal.db`.
With `existing=True` (the commands that only read or act on runs) a SQLite journal that
does not exist is an error naming where it looked, never a new empty journal. A plain path or a
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


class JournalNotFound(StoreError):
    """A command that reads runs found no journal where it looked."""


def journal_places(url_or_path: str | Path | None = None) -> list[tuple[str, str | None]]:
    """Where the journal may be named, in order: (what, the location it names or None)."""
    from mnlang.project import find_project

    given = str(url_or_path) if url_or_path is not None and str(url_or_path) else None
    project = find_project()
    return [
        ("--db", given),
        ("$MNC_DB", os.environ.get("MNC_DB") or None),
        (
            f"the project file {project.file}"
            if project
            else "a project file (mnlang.toml, none found)",
            project.journal if project else None,
        ),
        ("the default", str(DEFAULT_PATH)),
    ]


def store_location(url_or_path: str | Path | None = None) -> str:
    """Where `open_store` would open the journal, before any URL scheme is resolved."""
    if url_or_path is not None and str(url_or_path):
        return str(url_or_path)
    if os.environ.get("MNC_DB"):
        return os.environ["MNC_DB"]
    from mnlang.project import find_project

    project = find_project()
    if project is not None and project.journal is not None:
        return project.journal
    return str(DEFAULT_PATH)


def open_store(
    url_or_path: str | Path | None = None,
    durability: Durability = "full",
    *,
    busy_timeout: float = 5.0,
    existing: bool = False,
) -> Store:
    """Open (creating and migrating if needed) the journal store.

    `durability="fast"` trades the last few commits before a power loss for throughput
    (see `mnlang.stores.sqlite`); a crash of the process alone loses nothing either way.
    `busy_timeout` is how long a write waits for another process's lock before
    `StoreLocked` is raised. `existing=True` refuses to create a SQLite journal
    (`JournalNotFound`, naming where it looked).
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
    if existing and not Path(location).exists():
        raise _not_found(url_or_path, location)
    return SQLiteStore(location, durability=durability, busy_timeout=busy_timeout)


def _not_found(url_or_path: str | Path | None, location: str) -> JournalNotFound:
    looked = "; ".join(
        f"{what}: {named}" if named else f"{what}: not set"
        for what, named in journal_places(url_or_path)
    )
    return JournalNotFound(
        f"no journal at {location} (looked at {looked})",
        help="start a run first (`mnc run`), or name the journal with --db, MNC_DB or "
        "the project file's `[journal] db`",
    )


def _open_postgres(url: str, durability: Durability, busy_timeout: float) -> Store:
    try:
        from mnlang.stores.postgres import PostgresStore
    except ImportError as e:
        raise StoreError(
            f"a PostgreSQL journal needs psycopg, which is not installed ({e})",
            help="install it with `pip install 'mnlang[postgres]'`",
        ) from e
    return PostgresStore(url, durability=durability, busy_timeout=busy_timeout)
