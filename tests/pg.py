"""A private PostgreSQL server for the tests: `initdb` into a temporary folder, started on
a free localhost port with `pg_ctl`, stopped and deleted when the test session ends.

Never a shared system instance. The binaries come from `MNC_PG_BIN` (a folder), else
the newest `/usr/lib/postgresql/*/bin` (Debian's layout), else `PATH`; without them the
PostgreSQL tests are skipped, with the reason. `initdb` refuses to run as root, so as
root the server runs as the `postgres` user that Debian's package creates.

The cluster trades durability for speed (`fsync=off`): the tests kill clients, not the
server, and a test that needs an fsyncing server starts its own `PostgresCluster`.
Each test gets its own schema (`?schema=...` in the URL) in one database, which is far
cheaper than a database per test.

Fixtures: `pg_cluster` (one per session) and `pg_url` (a fresh schema per test); for a
test of both stores, `journal` (a new journal's location, parametrized over `STORES`: ids
`[sqlite]` and `[postgres]`) and `store` (that journal, opened; closed at the end).
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from mnlang.stores.base import Store

DATABASE = "mnc"
SUPERUSER = "mnc"
START_TIMEOUT = 30

STORES = ("sqlite", "postgres")

FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def find_bin_dir() -> Path | None:
    """The folder holding `initdb`, `pg_ctl` and `postgres`, or `None`."""
    configured = os.environ.get("MNC_PG_BIN")
    if configured:
        return Path(configured)
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    for folder in reversed(debian):
        if (folder / "initdb").is_file():
            return folder
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def missing_reason() -> str | None:
    """Why no cluster can be started here, or `None` when one can."""
    if importlib.util.find_spec("psycopg") is None:
        return "psycopg is not installed (pip install 'mnlang[postgres]')"
    folder = find_bin_dir()
    if folder is None:
        return (
            "PostgreSQL server binaries not found (install Debian's `postgresql` package "
            "or set MNC_PG_BIN to the folder holding initdb and pg_ctl)"
        )
    for name in ("initdb", "pg_ctl", "postgres"):
        if not (folder / name).is_file():
            return f"`{name}` not found in {folder}"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run the server as"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PostgresCluster:
    """One PostgreSQL server of our own; `start()` it, connect with `url()`, `stop()` it."""

    def __init__(self, settings: dict[str, str] | None = None) -> None:
        self.bin_dir = find_bin_dir()
        self.settings = dict(FAST_SETTINGS if settings is None else settings)
        self.root = Path(tempfile.mkdtemp(prefix="mnc-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self._user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            self._user = pwd.getpwnam("postgres")
            os.chown(self.root, self._user.pw_uid, self._user.pw_gid)

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        assert self.bin_dir is not None
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self._user is not None:
            command = ["runuser", "-u", self._user.pw_name, "--", *command]
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
            check=False,
            cwd=self.root,
        )

    def _checked(self, *args: str) -> None:
        done = self._run(*args)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"`{' '.join(args[:2])}` failed:\n{done.stdout}{done.stderr}{log}")

    def start(self) -> None:
        self._checked(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        options = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.root}",
                "-c max_connections=200",
                *(f"-c {name}={value}" for name, value in self.settings.items()),
            ]
        )
        # The port is free when probed but may be taken before the server binds it.
        for _ in range(3):
            self.port = free_port()
            done = self._run(
                "pg_ctl",
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-w",
                "-t",
                str(START_TIMEOUT),
                "-o",
                f"-p {self.port} {options}",
                "start",
            )
            if done.returncode == 0:
                break
        else:
            raise RuntimeError(f"pg_ctl start failed:\n{self.log.read_text(errors='replace')}")
        self._checked(
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            SUPERUSER,
            "-d",
            "postgres",
            "-q",
            "-c",
            f"CREATE DATABASE {DATABASE}",
        )

    def url(self, schema: str | None = None) -> str:
        base = f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"
        return base if schema is None else f"{base}?schema={schema}"

    def stop(self) -> None:
        if self.port and (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running_cluster(settings: dict[str, str] | None = None) -> Iterator[PostgresCluster]:
    """A started cluster, stopped and deleted on exit; skips the test if none can start."""
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    cluster = PostgresCluster(settings)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    with running_cluster() as cluster:
        yield cluster


_schema_numbers = itertools.count(1)


@pytest.fixture
def pg_url(pg_cluster: PostgresCluster) -> str:
    """The URL of a journal in a schema no other test uses."""
    return pg_cluster.url(f"t{os.getpid()}_{next(_schema_numbers)}")


def journal_location(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty journal on store `kind` (one of `STORES`): a SQLite file in `tmp_path`,
    or a schema of its own on the session's server (skipped where none can start)."""
    if kind == "postgres":
        url: str = request.getfixturevalue("pg_url")
        return url
    return str(tmp_path / "journal.db")


@pytest.fixture(params=STORES)
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new journal's location on each store."""
    return journal_location(request.param, request, tmp_path)


@pytest.fixture
def store(journal: str) -> Iterator[Store]:
    """The test's `journal`, opened; closed when the test ends."""
    from mnlang.stores import open_store

    with open_store(journal) as opened:
        yield opened
