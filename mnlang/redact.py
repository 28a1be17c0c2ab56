"""The one redaction function: every output path removes secret values through `redact`.

A secret's value exists only in the process that called a tool with it: `mnlang.secrets`
resolves a reference (`env:NAME`, `file:NAME`) at call time and registers the value here,
with its base64 and sha256 forms. From then on `redact` replaces each of them with
`[secret]` wherever text leaves the process: the journal (`Journal.commit` passes every
batch through `redact_json`), tool results and errors before they become values, and
log records (`RedactingFilter`). An output path added later (spans, JSON logs, run to
scenario) calls `redact` / `redact_json` too; there is no second implementation.

Values shorter than `MIN_LENGTH` characters are not registered: redacting every `a` in
a journal would destroy it, and such a value is no secret worth the name.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from typing import Any

MASK = "[secret]"
MIN_LENGTH = 4

_lock = threading.Lock()
_known: set[str] = set()
_pattern: re.Pattern[str] | None = None


def register(value: str) -> None:
    """Remember a secret's value (and its base64 and sha256 forms) so outputs lose it."""
    global _pattern
    if len(value) < MIN_LENGTH:
        return
    import hashlib  # here: a program without secrets never hashes one

    raw = value.encode("utf-8")
    forms = {
        value,
        base64.b64encode(raw).decode("ascii"),
        base64.urlsafe_b64encode(raw).decode("ascii"),
        base64.b64encode(raw).decode("ascii").rstrip("="),
        hashlib.sha256(raw).hexdigest(),
    }
    with _lock:
        if forms <= _known:
            return
        _known.update(forms)
        # Longest first, so a value inside another's base64 never leaves a fragment.
        alternatives = sorted(_known, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(a) for a in alternatives))


def active() -> bool:
    """Whether this process has resolved a secret (nothing to redact otherwise)."""
    return _pattern is not None


def redact(text: str) -> str:
    """`text` with every known secret value, its base64 and its sha256 replaced by `[secret]`."""
    pattern = _pattern
    if pattern is None:
        return text
    return pattern.sub(MASK, text)


def redact_json(value: Any) -> Any:
    """A JSON-like value (dicts, lists, scalars) with `redact` applied to every string in it,
    keys too; other objects are returned as they are."""
    if _pattern is None:
        return value
    return _walk(value)


def _walk(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {(redact(k) if isinstance(k, str) else k): _walk(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_walk(v) for v in value)
    return value


class RedactingFilter(logging.Filter):
    """A logging filter that formats a record's message (and its traceback) and redacts it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _pattern is None:
            return True
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install_log_filter(logger: logging.Logger | None = None) -> None:
    """Add `RedactingFilter` to every handler of `logger` (the root logger by default), once."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
