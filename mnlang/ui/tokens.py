"""Per-user access tokens of the web console (`mnc ui token add NAME`).

Tokens live in a JSON file beside the journal (`ui-tokens.json` next to a SQLite file;
for a PostgreSQL journal `./.mnc/ui-tokens.json`; `MNC_UI_TOKENS` names another file).
Only a SHA-256 of each token is kept, so the file does not give the tokens away; the
token itself is shown once, when it is made. The console re-reads the file when it
changes, so an added token works and a removed one stops working without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from mnlang.jsonin import decode_json

TOKENS_ENV = "MNC_UI_TOKENS"
TOKENS_FILE = "ui-tokens.json"
ADMIN = "admin"
"""The name of whoever holds the admin token (`--token`, `MNC_UI_TOKEN`)."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")
_PREFIX = "mnc_"


class TokenError(Exception):
    """A token file that cannot be used, or a name that cannot be added or removed."""

    def __init__(self, message: str, *, help: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.help = help


ROLES = ("viewer", "operator", "admin")
"""What a user may do: viewers read; operators also start, signal, decide and cancel
runs (of the workflows they are scoped to); admins also register programs and decide
any checkpoint. A token file written before roles existed gives its users `operator`,
what they could do then."""
DEFAULT_ROLE = "operator"


@dataclass(frozen=True)
class TokenEntry:
    name: str
    created_at: float
    role: str = DEFAULT_ROLE
    workflows: tuple[str, ...] | None = None
    """The workflows the user may act on (`None`: all of them)."""


def tokens_path(journal: str) -> Path:
    """Where the token file of a journal (a path or a URL) is."""
    override = os.environ.get(TOKENS_ENV, "").strip()
    if override:
        return Path(override)
    scheme, sep, rest = journal.partition("://")
    if sep and scheme in ("postgres", "postgresql"):
        return Path(".mnc") / TOKENS_FILE
    if sep and scheme == "sqlite":
        journal = rest[1:] if rest.startswith("/") else rest
    return Path(journal).parent / TOKENS_FILE


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_name(name: str) -> None:
    # `admin` is the admin token's user; `timeout` is how a checkpoint's timeout signs.
    if name in (ADMIN, "timeout") or not _NAME.fullmatch(name):
        raise TokenError(
            f"`{name}` cannot name a console user",
            help="use letters, digits and `._@+-` (at most 64), and not `admin` or `timeout`",
        )


class TokenFile:
    """The token file of one journal; safe to use from several threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._by_digest: dict[str, TokenEntry] = {}

    def _read(self) -> dict[str, dict[str, object]]:
        try:
            text = self.path.read_text("utf-8")
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise TokenError(f"cannot read token file `{self.path}`: {e.strerror or e}") from e
        try:
            data = decode_json(text, f"`{self.path}`")
            users = data["users"]
            if not isinstance(users, dict):
                raise TypeError("`users` is not an object")
        except (ValueError, KeyError, TypeError) as e:
            raise TokenError(
                f"token file `{self.path}` is damaged ({e})",
                help="remove it and add the users again with `mnc ui token add NAME`",
            ) from None
        return users

    def _write(self, users: dict[str, dict[str, object]]) -> None:
        temporary = self.path.with_name(self.path.name + ".tmp")
        text = json.dumps({"users": users}, indent=2, sort_keys=True) + "\n"
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(temporary, self.path)
        except OSError as e:  # a read-only folder, a full disk
            raise TokenError(
                f"cannot write token file `{self.path}`: {(e.strerror or str(e)).lower()}",
                help=f"make `{self.path.parent}` writable, or name another file in ${TOKENS_ENV}",
            ) from None

    def add(
        self, name: str, role: str = DEFAULT_ROLE, workflows: tuple[str, ...] | None = None
    ) -> str:
        """Make a token for a new user; returns the token (it is not kept)."""
        check_name(name)
        if role not in ROLES:
            raise TokenError(f"no role `{role}`", help="roles: " + ", ".join(ROLES))
        with self._lock:
            users = self._read()
            if name in users:
                raise TokenError(
                    f"user `{name}` already has a token",
                    help=f"remove it first with `mnc ui token remove {name}`",
                )
            token = _PREFIX + secrets.token_urlsafe(32)
            entry: dict[str, object] = {
                "sha256": digest(token),
                "created_at": time.time(),
                "role": role,
            }
            if workflows is not None:
                entry["workflows"] = list(workflows)
            users[name] = entry
            self._write(users)
        return token

    def remove(self, name: str) -> bool:
        """Revoke a user's token; `False` when the user had none."""
        with self._lock:
            users = self._read()
            if users.pop(name, None) is None:
                return False
            self._write(users)
        return True

    def entries(self) -> list[TokenEntry]:
        with self._lock:
            users = self._read()
        return [_entry(name, entry) for name, entry in sorted(users.items())]

    def user_of(self, token: str) -> str | None:
        """The user a token belongs to, or `None`."""
        entry = self.entry_of(token)
        return None if entry is None else entry.name

    def entry_of(self, token: str) -> TokenEntry | None:
        """The user a token belongs to, with their role and scope, or `None`."""
        wanted = digest(token)
        with self._lock:
            self._refresh()
            for known, entry in self._by_digest.items():
                if hmac.compare_digest(known, wanted):
                    return entry
        return None

    def has_users(self) -> bool:
        with self._lock:
            self._refresh()
            return bool(self._by_digest)

    def _refresh(self) -> None:
        try:
            stat = self.path.stat()
            # A rewrite replaces the file, so its inode changes even within one mtime tick.
            seen: tuple[int, int, int] | None = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            seen = None
        if seen == self._seen:
            return
        users = self._read()
        self._by_digest = {
            str(entry.get("sha256")): _entry(name, entry)
            for name, entry in users.items()
            if entry.get("sha256")
        }
        self._seen = seen


def _entry(name: str, entry: dict[str, object]) -> TokenEntry:
    role = entry.get("role")
    scoped = entry.get("workflows")
    return TokenEntry(
        name,
        float(str(entry.get("created_at") or 0)),
        role if isinstance(role, str) and role in ROLES else DEFAULT_ROLE,
        tuple(str(w) for w in scoped) if isinstance(scoped, list) else None,
    )
