"""Secret references and their resolution at call time.

A value of type `secret` is journaled as what it refers to, never as its value:
`env:NAME` (the environment variable `NAME` of the process that calls the tool) or
`file:NAME` (the file `NAME` in the secrets folder, `MNC_SECRETS_DIR`, by default
`/run/secrets` as Docker and Kubernetes mount them; an absolute path is read as is; one
trailing newline is dropped). `Secret` keeps literal text around references, so
`"Bearer {token}"` stays a secret. Only `reveal` turns one into text, when a tool or
effect is called; it registers the value with `mnlang.redact`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from mnlang import redact

REFERENCE = re.compile(r"^(env|file):[^\s{}]+$")
DEFAULT_SECRETS_DIR = "/run/secrets"


class SecretUnavailable(Exception):
    """A reference that names no value here; the message names the reference only."""


@dataclass(frozen=True, slots=True)
class Secret:
    """Literal text and references, alternating: `parts[0]` text, `parts[1]` a reference,
    `parts[2]` text, and so on (an odd number of parts)."""

    parts: tuple[str, ...]

    @staticmethod
    def of(reference: str) -> Secret:
        return Secret(("", reference, ""))

    @property
    def references(self) -> tuple[str, ...]:
        return self.parts[1::2]

    def shown(self) -> str:
        """The secret as people may see it: its text with each reference in braces."""
        return "".join(p if i % 2 == 0 else "{" + p + "}" for i, p in enumerate(self.parts))


def from_shown(text: str) -> Secret:
    """The secret `Secret.shown` gave (`"Bearer {env:TOKEN}"`), from a run's plain JSON."""
    return Secret(tuple(_SHOWN_REFERENCE.split(text)))


_SHOWN_REFERENCE = re.compile(r"\{((?:env|file):[^\s{}]+)\}")


def is_reference(text: str) -> bool:
    return REFERENCE.match(text) is not None


def concat(pieces: list[str | Secret]) -> str | Secret:
    """Text and secrets joined, a `Secret` when any piece is one (template interpolation)."""
    if not any(isinstance(p, Secret) for p in pieces):
        return "".join(p for p in pieces if isinstance(p, str))
    parts: list[str] = [""]
    for piece in pieces:
        if isinstance(piece, str):
            parts[-1] += piece
            continue
        parts[-1] += piece.parts[0]
        parts.extend(piece.parts[1:])
    return Secret(tuple(parts))


def reveal(secret: Secret) -> str:
    """The secret's text, every reference resolved now; `SecretUnavailable` when one is not."""
    out: list[str] = []
    for i, part in enumerate(secret.parts):
        if i % 2 == 0:
            out.append(part)
            continue
        value = _resolve(part)
        redact.register(value)
        out.append(value)
    return "".join(out)


def _resolve(reference: str) -> str:
    scheme, _, name = reference.partition(":")
    if scheme == "env":
        value = os.environ.get(name)
        if value is None:
            raise SecretUnavailable(f"secret `{reference}`: the environment has no `{name}`")
        return value
    folder = Path(os.environ.get("MNC_SECRETS_DIR", DEFAULT_SECRETS_DIR))
    path = folder / name
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
        raise SecretUnavailable(f"secret `{reference}`: cannot read {path}: {reason}") from None
    return text[:-1] if text.endswith("\n") else text
